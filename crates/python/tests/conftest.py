"""Shared fixtures: a fresh store directory per test."""

from __future__ import annotations

import pathlib

import pytest

import bitcask


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "store"


@pytest.fixture
def store(path: pathlib.Path):
    s = bitcask.open(path, sync="never")
    yield s
    s.close()
