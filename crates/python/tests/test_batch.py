"""Batches: all or nothing, with conditions."""

from __future__ import annotations

import pytest

import bitcask


def test_a_batch_applies_at_the_end_of_its_block(store):
    store["gone"] = "x"
    with store.batch() as b:
        b.put("a", "1")
        b.put("t", "2", ttl=60)
        b.delete("gone")
        b.delete("never-there")
        assert "a" not in store  # nothing before the block ends
    assert store["a"] == b"1" and store.get_versioned("t").expires_at_ms is not None
    assert "gone" not in store


def test_an_exception_in_the_block_discards_the_batch(store):
    with pytest.raises(KeyError):
        with store.batch() as b:
            b.put("a", "1")
            raise KeyError("boom")
    assert "a" not in store


def test_a_failed_condition_writes_nothing(store):
    v = store.put("balance:alice", "100")
    store.put("balance:bob", "0")
    with store.batch() as b:
        b.require("balance:alice", version=v)
        b.put("balance:alice", "50")
        b.put("balance:bob", "50")
    assert store["balance:bob"] == b"50"
    # The same transfer again, from the stale version: refused whole.
    with pytest.raises(bitcask.ConditionFailed):
        with store.batch() as b:
            b.require("balance:alice", version=v)
            b.put("balance:alice", "0")
            b.put("balance:bob", "100")
    assert (store["balance:alice"], store["balance:bob"]) == (b"50", b"50")
    with pytest.raises(bitcask.ConditionFailed):
        with store.batch() as b:
            b.require("nobody", present=True)
            b.put("x", "1")
    with store.batch() as b:
        b.require("nobody", absent=True)
        b.put("x", "1")
    assert store["x"] == b"1"


def test_a_batch_over_the_limits_is_refused_whole(path):
    with bitcask.open(path, max_value_size=4) as s:
        with pytest.raises(bitcask.ValueTooLarge):
            with s.batch() as b:
                b.put("ok", "1")
                b.put("big", "12345")
        assert len(s) == 0
