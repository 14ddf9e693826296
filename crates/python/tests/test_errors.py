"""Engine errors arrive as the package's exceptions, never a bare
RuntimeError; damage on disk is found by check and survived by repair."""

from __future__ import annotations

import pathlib

import pytest

import bitcask


def test_every_exception_is_a_bitcask_error_and_value_errors_are_value_errors():
    for cls in (
        bitcask.LockedError,
        bitcask.CorruptionError,
        bitcask.ConditionFailed,
        bitcask.KeyTooLarge,
        bitcask.ValueTooLarge,
        bitcask.ReadOnlyError,
        bitcask.ClosedError,
        bitcask.InvalidArgument,
        bitcask.PoisonedError,
    ):
        assert issubclass(cls, bitcask.Error)
    for cls in (bitcask.KeyTooLarge, bitcask.ValueTooLarge, bitcask.InvalidArgument):
        assert issubclass(cls, ValueError)
    assert not issubclass(bitcask.Error, RuntimeError)


def test_an_unusable_directory_is_a_bitcask_error(tmp_path: pathlib.Path):
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    with pytest.raises(bitcask.Error) as raised:
        bitcask.open(file)
    assert type(raised.value) is bitcask.Error


def damage_a_value(path: pathlib.Path, value: bytes) -> None:
    """Flips a byte of `value` where it lies in the store's data file."""
    for data in sorted(path.glob("*.data")):
        raw = bytearray(data.read_bytes())
        at = raw.find(value)
        if at >= 0:
            raw[at] ^= 0xFF
            data.write_bytes(bytes(raw))
            return
    raise AssertionError("value not found on disk")


def test_a_damaged_record_raises_corruption_error_check_finds_it_repair_keeps_the_rest(path):
    with bitcask.open(path) as s:
        s["good"] = "fine value"
        s["bad"] = "value to be damaged"
        s["after"] = "a record after it (else the damage is a torn tail)"
    damage_a_value(path, b"value to be damaged")
    report = bitcask.check(path)
    assert report["damaged"] is True
    damaged = [d for f in report["files"] for d in f["damage"]]
    assert len(damaged) == 1 and damaged[0]["kind"]
    with bitcask.open(path) as s:
        assert s["good"] == b"fine value"
        with pytest.raises(bitcask.CorruptionError):
            s["bad"]
    repaired = bitcask.repair(path)
    assert repaired["found"]["damaged"] is True and repaired["moved_to"]
    assert bitcask.check(path)["damaged"] is False
    with bitcask.open(path) as s:
        assert s["good"] == b"fine value" and s["after"].startswith(b"a record")
        assert "bad" not in s


def test_repair_of_an_open_store_is_locked(path):
    with bitcask.open(path):
        with pytest.raises(bitcask.LockedError):
            bitcask.repair(path)


def test_a_batch_applies_once(store):
    batch = store.batch()
    batch.put("k", "v")
    assert len(batch) == 1
    assert batch.apply() is not None
    with pytest.raises(bitcask.Error, match="already applied"):
        batch.apply()
    with pytest.raises(bitcask.InvalidArgument):
        store.batch().require("k", version=1, absent=True)
