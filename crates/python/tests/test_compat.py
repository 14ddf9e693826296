"""The seed's (bitcaskpy's) embedded API: `open_store`, str keys and
values, put/get/delete/close_store, deleting a missing key is fine."""

from __future__ import annotations

from bitcask.compat import open_store


def test_seed_usage_patterns(path):
    store = open_store(str(path))
    store.put("hello", "world")
    store.put("name", "José ✓")
    assert store.get("hello") == "world"
    assert store.get("name") == "José ✓"
    assert store.get("missing") is None
    store.put("hello", "again")
    assert store.get("hello") == "again"
    store.delete("hello")
    store.delete("hello")  # not an error, as in the seed
    assert store.get("hello") is None
    store.close_store()
    reopened = open_store(path)
    assert reopened.get("name") == "José ✓" and reopened.get("hello") is None
    reopened.close_store()
