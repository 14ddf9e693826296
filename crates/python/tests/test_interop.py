"""Data written from Python is read by the Rust CLI on the same directory,
and the reverse; a store left open at interpreter exit loses nothing and
leaves no lock behind."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import bitcask

REPO = pathlib.Path(__file__).resolve().parents[3]


def cli() -> str:
    """The `bitcask` CLI: $BITCASK_CLI, else the workspace's build."""
    given = os.environ.get("BITCASK_CLI")
    if given:
        return given
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "bitcask"
        if candidate.exists():
            return str(candidate)
    pytest.fail("no bitcask CLI: build it (cargo build -p bitcask-cli) or set BITCASK_CLI")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli(), *args], capture_output=True, timeout=60)


def test_python_writes_the_cli_reads(path):
    with bitcask.open(path) as s:
        s["from-python"] = "héllo"
        s[b"bin"] = b"\x00\x01"
        s.put("expiring", "soon", ttl=3600)
        del s["bin"]
    got = run_cli("get", "--data-dir", str(path), "from-python")
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode() == "héllo"
    assert run_cli("get", "--data-dir", str(path), "bin").returncode == 1
    assert run_cli("get", "--data-dir", str(path), "expiring").stdout == b"soon"


def test_the_cli_writes_python_reads(path):
    put = run_cli("put", "--data-dir", str(path), "from-cli", "wörld")
    assert put.returncode == 0, put.stderr
    with bitcask.open(path) as s:
        assert s.text["from-cli"] == "wörld"


def test_a_store_left_open_at_exit_is_closed_cleanly(path):
    program = f"""
import bitcask
s = bitcask.open({str(path)!r}, sync="never")
for i in range(1000):
    s[f"k{{i}}"] = str(i)
keep = s  # never closed; still referenced at exit
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Closed, not just abandoned: a close writes the active file's hint
    # (a process that dies leaves none; see the control below).
    assert list(path.glob("*.hint")), sorted(p.name for p in path.iterdir())
    # The lock is free and every write is there.
    with bitcask.open(path) as s:
        assert len(s) == 1000 and s["k999"] == b"999"


def test_control_a_process_that_dies_leaves_no_hint_but_loses_no_write(tmp_path):
    path = tmp_path / "died"
    program = f"""
import os, bitcask
s = bitcask.open({str(path)!r}, sync="never")
for i in range(1000):
    s[f"k{{i}}"] = str(i)
os._exit(0)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not list(path.glob("*.hint"))
    with bitcask.open(path) as s:
        assert len(s) == 1000
