"""The mapping protocol, the extra methods, the text view."""

from __future__ import annotations

import datetime
import time

import pytest

import bitcask


def test_mapping_protocol(store):
    store[b"a"] = b"1"
    store["b"] = "2"  # str is stored as UTF-8
    store[bytearray(b"c")] = bytearray(b"3")
    assert store[b"a"] == b"1"
    assert store["b"] == b"2" and store[b"b"] == b"2"
    assert store["c"] == b"3"
    assert len(store) == 3
    assert list(store) == [b"a", b"b", b"c"]
    assert "a" in store and b"b" in store and "zz" not in store
    assert store.get("zz") is None
    assert store.get("zz", b"dflt") == b"dflt"
    del store["a"]
    assert "a" not in store and len(store) == 2
    with pytest.raises(KeyError) as missing:
        store["a"]
    assert missing.value.args == ("a",)
    with pytest.raises(KeyError):
        del store["a"]


def test_keys_and_values_must_be_bytes_or_str(store):
    with pytest.raises(TypeError, match="key must be bytes or str, not int"):
        store[1] = b"x"
    with pytest.raises(TypeError, match="value must be bytes or str, not NoneType"):
        store[b"k"] = None
    with pytest.raises(TypeError):
        store.get(1.5)
    assert len(store) == 0


def test_unicode_and_binary_round_trip(store):
    store["ключ ✓"] = "значение ✓"
    assert store["ключ ✓"].decode() == "значение ✓"
    blob = bytes(range(256)) * 4
    store[b"\x00\xff"] = blob
    assert store[b"\x00\xff"] == blob
    store[b"empty"] = b""
    assert store[b"empty"] == b"" and b"empty" in store


def test_put_returns_growing_versions_and_conditions_hold(store):
    v1 = store.put("k", "a")
    v2 = store.put("k", "b")
    assert v2 > v1
    got = store.get_versioned("k")
    assert (got.value, got.version, got.expires_at_ms) == (b"b", v2, None)
    assert store.get_versioned("nope") is None
    with pytest.raises(bitcask.ConditionFailed) as failed:
        store.put("k", "c", if_version=v1)
    assert failed.value.current_version == v2
    assert store["k"] == b"b"
    with pytest.raises(bitcask.ConditionFailed) as failed:
        store.put("k", "c", if_absent=True)
    assert failed.value.current_version == v2
    with pytest.raises(bitcask.ConditionFailed) as failed:
        store.put("new", "c", if_present=True)
    assert failed.value.current_version is None
    assert "new" not in store
    v3 = store.put("k", "c", if_version=v2, durable=True)
    assert store.get_versioned("k").version == v3
    with pytest.raises(bitcask.InvalidArgument):
        store.put("k", "d", if_version=v3, if_absent=True)
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError
        store.put("k", "d", if_absent=True, if_present=True)


def test_delete_says_whether_it_deleted_and_honours_its_condition(store):
    v = store.put("k", "v")
    assert store.delete("missing") is False
    with pytest.raises(bitcask.ConditionFailed):
        store.delete("k", if_version=v + 100)
    assert "k" in store
    assert store.delete("k", if_version=v) is True
    assert "k" not in store


def test_ttl_expires_keys(store):
    store.put("short", "v", ttl=0.05)
    store.put("long", "v", ttl=datetime.timedelta(hours=1))
    expires = store.get_versioned("long").expires_at_ms
    assert abs(expires - (time.time() + 3600) * 1000) < 60_000
    assert store["short"] == b"v"
    time.sleep(0.2)
    assert "short" not in store and store.get("short") is None
    assert store["long"] == b"v"
    for bad in (0, -1, float("nan")):
        with pytest.raises(bitcask.InvalidArgument):
            store.put("k", "v", ttl=bad)
    with pytest.raises(TypeError):
        store.put("k", "v", ttl="soon")


def test_listings_are_ordered_lazy_and_take_prefix_start_after_limit(store):
    for i in range(1000):
        store[f"user:{i:04}"] = str(i)
    store["other"] = "x"
    keys = store.keys("user:")
    assert next(keys) == b"user:0000"
    # Written after the listing began, ahead of it: seen.
    store["user:9999"] = "late"
    rest = list(keys)
    assert len(rest) == 1000 and rest[-1] == b"user:9999"
    assert list(store.keys("user:", start_after="user:0997")) == [
        b"user:0998",
        b"user:0999",
        b"user:9999",
    ]
    assert list(store.keys(limit=3)) == [b"other", b"user:0000", b"user:0001"]
    assert list(store.keys(limit=0)) == []
    items = list(store.items("user:000"))
    assert items == [(f"user:000{i}".encode(), str(i).encode()) for i in range(10)]
    assert list(store.values("user:000", limit=2)) == [b"0", b"1"]
    assert len(list(store)) == 1002
    assert list(store.keys("nothing")) == []


def test_items_leave_out_keys_deleted_while_listing(store):
    for i in range(600):
        store[f"k{i:03}"] = "v"
    items = store.items()
    first = next(items)
    assert first[0] == b"k000"
    for i in range(300, 600):
        del store[f"k{i:03}"]
    rest = [k for k, _ in items]
    assert b"k599" not in rest and len(rest) < 599


def test_text_view(store):
    text = store.text
    text["naïve"] = "café"
    assert text["naïve"] == "café"
    assert text.get("absent") is None and text.get("absent", "d") == "d"
    assert "naïve" in text and len(text) == 1
    assert list(text) == ["naïve"]
    assert list(text.items()) == [("naïve", "café")]
    assert list(text.keys("na")) == ["naïve"]
    assert list(text.values("na")) == ["café"]
    del text["naïve"]
    assert len(store) == 0


def test_sync_merge_backup_stats(store, tmp_path):
    for i in range(100):
        store[f"k{i}"] = "x" * 100
    for i in range(100):
        store[f"k{i}"] = "y" * 100
    store.sync()
    stats = store.stats()
    assert stats["keys"] == 100 and stats["dead_bytes"] > 0
    assert stats["files"][-1]["active"] is True
    report = store.merge()
    assert report["records_kept"] >= 0 and "duration" in report
    copy = tmp_path / "backup"
    backup = store.backup(copy)
    assert backup["data_files"] >= 1 and backup["bytes"] > 0
    with bitcask.open(copy, read_only=True) as restored:
        assert len(restored) == 100 and restored["k7"] == b"y" * 100


def test_open_options(path):
    with bitcask.open(path, sync="100ms", max_key_size=8, max_value_size=16) as s:
        s["12345678"] = "x" * 16
        with pytest.raises(bitcask.KeyTooLarge):
            s["123456789"] = "x"
        with pytest.raises(bitcask.ValueTooLarge):
            s["k"] = "x" * 17
        with pytest.raises(ValueError):  # also a ValueError
            s["k"] = "x" * 17
    for sync in ("always", "never", "1s", "0.5s", 0.25, 2):
        bitcask.open(path, sync=sync).close()
    for bad in ("sometimes", "0ms", -1, 0):
        with pytest.raises(bitcask.InvalidArgument):
            bitcask.open(path, sync=bad)
    with pytest.raises(bitcask.InvalidArgument):
        bitcask.open(path, max_file_size=0)
    with bitcask.open(path, read_only=True) as ro:
        assert ro["12345678"] == b"x" * 16
        with pytest.raises(bitcask.ReadOnlyError):
            ro["k"] = "v"


def test_close_is_idempotent_and_a_closed_store_raises_closed_error(path):
    s = bitcask.open(path)
    s["k"] = "v"
    assert not s.closed
    s.close()
    s.close()
    assert s.closed and "closed" in repr(s)
    for use in (
        lambda: s["k"],
        lambda: s.get("k"),
        lambda: s.put("k", "v"),
        lambda: len(s),
        lambda: "k" in s,
        lambda: list(s),
        lambda: s.stats(),
        lambda: s.sync(),
    ):
        with pytest.raises(bitcask.ClosedError):
            use()
    with bitcask.open(path) as again:
        assert again["k"] == b"v"
    assert again.closed


def test_a_second_open_of_the_same_directory_is_locked(path):
    with bitcask.open(path):
        with pytest.raises(bitcask.LockedError) as locked:
            bitcask.open(path)
        assert isinstance(locked.value, bitcask.Error)
        with bitcask.open(path, read_only=True) as reader:
            assert len(reader) == 0


def test_the_readme_example(path, capsys):
    with bitcask.open(path) as store:  # sync="always" by default
        store[b"greeting"] = b"hello"  # str works too, stored as UTF-8
        version = store.put("n", "1", if_absent=True)
        print(store[b"greeting"], store.text["n"], list(store.keys(prefix="g")))
    assert version > 0
    assert capsys.readouterr().out == "b'hello' 1 [b'greeting']\n"


def test_mutable_mapping_extras(store):
    import collections.abc

    assert isinstance(store, collections.abc.MutableMapping)
    store.update({"a": "1", b"b": b"2"}, c="3")
    store.update([("d", "4")])
    assert dict(store.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    # update is one batch: a value over the limit leaves nothing written.
    with pytest.raises(bitcask.ValueTooLarge):
        store.update({"e": "5", "f": b"x" * (2 << 20)})
    assert "e" not in store
    assert store.pop("a") == b"1" and "a" not in store
    assert store.pop("a", None) is None
    with pytest.raises(KeyError):
        store.pop("a")
    assert store.setdefault("b", "other") == b"2"
    assert store.setdefault("z", "new") == b"new" and store["z"] == b"new"
    store.clear()
    assert len(store) == 0 and list(store) == []
