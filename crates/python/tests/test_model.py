"""The store against a dict, over random sequences of operations with
reopens (hypothesis's stateful testing)."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import bitcask

KEYS = st.binary(min_size=0, max_size=6) | st.sampled_from([b"a", b"b", b"ab", b"abc"])
VALUES = st.binary(max_size=64)


class StoreAgainstDict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.store = bitcask.open(self.dir, sync="never", max_file_size=4096)
        self.model: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(key=KEYS, value=VALUES)
    def set_item(self, key: bytes, value: bytes) -> None:
        self.store[key] = value
        self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.store.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.store.get(key) == self.model.get(key)
        assert (key in self.store) == (key in self.model)

    @rule(key=KEYS, value=VALUES)
    def put_if_absent(self, key: bytes, value: bytes) -> None:
        try:
            self.store.put(key, value, if_absent=True)
            assert key not in self.model
            self.model[key] = value
        except bitcask.ConditionFailed:
            assert key in self.model

    @rule(pairs=st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=5), fail=st.booleans())
    def batch(self, pairs, fail: bool) -> None:
        try:
            with self.store.batch() as b:
                for key, value in pairs:
                    if value is None:
                        b.delete(key)
                    else:
                        b.put(key, value)
                if fail:
                    raise RuntimeError("abandon the batch")
        except RuntimeError:
            return
        for key, value in pairs:
            if value is None:
                self.model.pop(key, None)
            else:
                self.model[key] = value

    @rule(prefix=st.binary(max_size=2))
    def list_prefix(self, prefix: bytes) -> None:
        want = sorted(k for k in self.model if k.startswith(prefix))
        assert list(self.store.keys(prefix)) == want
        assert list(self.store.items(prefix)) == [(k, self.model[k]) for k in want]

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = bitcask.open(self.dir, sync="never", max_file_size=4096)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def merge(self) -> None:
        self.store.merge()

    @invariant()
    def same_size_and_order(self) -> None:
        assert len(self.store) == len(self.model)


StoreAgainstDict.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_store_against_dict = StoreAgainstDict.TestCase
