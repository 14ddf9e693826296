"""The seed project's (bitcaskpy's) embedded API over this engine.

A program written for bitcaskpy switches by changing one import::

    from bitcask.compat import open_store

    store = open_store("./data")
    store.put("hello", "world")
    assert store.get("hello") == "world"
    store.delete("hello")
    store.delete("hello")      # a missing key is not an error
    store.close_store()

Keys and values are ``str``; ``get`` of a missing key is ``None``.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import bitcask

__all__ = ["open_store", "CompatStore"]


class CompatStore:
    """bitcaskpy's store object: ``put``, ``get``, ``delete``, ``close_store``."""

    def __init__(self, store: "bitcask.Store") -> None:
        self._store = store

    def put(self, key: str, value: str) -> None:
        self._store[key] = value

    def get(self, key: str) -> Optional[str]:
        value = self._store.get(key)
        return None if value is None else value.decode()

    def delete(self, key: str) -> None:
        self._store.delete(key)

    def close_store(self) -> None:
        self._store.close()


def open_store(directory: Union[str, "os.PathLike[str]"] = "./data") -> CompatStore:
    """Opens (creating) the store in ``directory`` as bitcaskpy did."""
    return CompatStore(bitcask.open(directory))
