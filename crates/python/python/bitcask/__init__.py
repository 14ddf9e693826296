"""bitcask: a Bitcask-style key-value store, the Rust engine embedded in Python.

::

    import bitcask

    with bitcask.open("data") as store:
        store[b"greeting"] = b"hello"
        print(store[b"greeting"])           # b'hello'
        print(store.text.get("greeting"))   # 'hello'

Keys and values are ``bytes`` (``str`` is accepted and stored as UTF-8).
A ``Store`` is a mutable mapping, a context manager, and safe to share
between threads; the full API is in docs/PYTHON.md of the repository.
"""

from __future__ import annotations

import atexit
import collections.abc
import os
import threading
import weakref
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple, Union

from . import _bitcask
from ._errors import (
    ALL as _ALL_ERRORS,
    ClosedError,
    ConditionFailed,
    CorruptionError,
    Error,
    InvalidArgument,
    KeyTooLarge,
    LockedError,
    PoisonedError,
    ReadOnlyError,
    ValueTooLarge,
)

if tuple(c.__name__ for c in _ALL_ERRORS) != tuple(_bitcask.ERROR_NAMES):
    raise ImportError("bitcask: the extension module and the package disagree on the errors")
_bitcask._register_errors(*_ALL_ERRORS)

Batch = _bitcask.Batch
Versioned = _bitcask.Versioned
__version__ = _bitcask.__version__

__all__ = [
    "open",
    "Store",
    "TextView",
    "Batch",
    "Versioned",
    "check",
    "repair",
    *(error.__name__ for error in _ALL_ERRORS),
]

# Stores still open when the interpreter exits are closed then (synced,
# the directory's lock released), whatever the garbage collector does.
_open_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()
_open_lock = threading.Lock()


@atexit.register
def _close_open_stores() -> None:
    with _open_lock:
        stores = list(_open_stores)
    for store in stores:
        try:
            store.close()
        except Error:
            pass


class Store(_bitcask.Store):
    """An open store: a mutable mapping of ``bytes`` keys to ``bytes`` values.

    Made by :func:`open`. ``store[key]``, ``store[key] = value``,
    ``del store[key]``, ``key in store``, ``len(store)``, ``iter(store)``
    (keys in byte order) and ``store.get(key, default)`` work as on a dict;
    :meth:`put`, :meth:`delete`, :meth:`get_versioned`, :meth:`keys`,
    :meth:`items`, :meth:`values`, :meth:`batch`, :meth:`sync`,
    :meth:`merge`, :meth:`backup` and :meth:`stats` go beyond it.
    """

    def __init__(self, *args, **kwargs) -> None:
        with _open_lock:
            _open_stores.add(self)

    @property
    def text(self) -> "TextView":
        """The same store seen as ``str`` keys and values (UTF-8)."""
        return TextView(self)

    def update(
        self,
        other: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]] = (),
        /,
        **kwargs: Any,
    ) -> None:
        """Stores every pair of ``other`` (a mapping or pairs) and of the
        keyword arguments, as one batch: all or nothing, one write."""
        pairs = other.items() if isinstance(other, collections.abc.Mapping) else other
        with self.batch() as batch:
            for key, value in pairs:
                batch.put(key, value)
            for key, value in kwargs.items():
                batch.put(key, value)

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns its value (``default``, or
        ``KeyError``, if absent). Atomic: the value returned is the one
        deleted, even with other writers."""
        while True:
            found = self.get_versioned(key)
            if found is None:
                if default is Store._MISSING:
                    raise KeyError(key)
                return default
            try:
                self.delete(key, if_version=found.version)
                return found.value
            except ConditionFailed:
                continue  # written meanwhile: read it again

    def setdefault(self, key: Any, default: Any = b"") -> bytes:
        """The value of ``key``; if absent, stores ``default`` first
        (atomically: of two racing callers, one stores)."""
        while True:
            value = self.get(key)
            if value is not None:
                return value
            try:
                self.put(key, default, if_absent=True)
                return default.encode() if isinstance(default, str) else bytes(default)
            except ConditionFailed:
                continue

    def clear(self) -> None:
        """Deletes every key (page by page; not atomic)."""
        while True:
            page = list(self.keys(limit=1000))
            if not page:
                return
            with self.batch() as batch:
                for key in page:
                    batch.delete(key)


collections.abc.MutableMapping.register(Store)


class TextView:
    """A store seen through ``str``: keys are encoded, values decoded (UTF-8).

    ``view[key]``, ``view[key] = value``, ``del view[key]``, ``key in view``,
    ``len(view)``, ``iter(view)``, ``view.get(key, default)``,
    ``view.keys(prefix)``, ``view.items(prefix)`` and ``view.values(prefix)``.
    """

    __slots__ = ("store",)

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getitem__(self, key: str) -> str:
        return self.store[key].decode()

    def __setitem__(self, key: str, value: str) -> None:
        self.store[key] = value

    def __delitem__(self, key: str) -> None:
        del self.store[key]

    def __contains__(self, key: str) -> bool:
        return key in self.store

    def __len__(self) -> int:
        return len(self.store)

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.store)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        value = self.store.get(key)
        return default if value is None else value.decode()

    def keys(self, prefix: Optional[str] = None, **kwargs) -> Iterator[str]:
        return (key.decode() for key in self.store.keys(prefix, **kwargs))

    def items(self, prefix: Optional[str] = None, **kwargs) -> Iterator["tuple[str, str]"]:
        return ((k.decode(), v.decode()) for k, v in self.store.items(prefix, **kwargs))

    def values(self, prefix: Optional[str] = None, **kwargs) -> Iterator[str]:
        return (v.decode() for v in self.store.values(prefix, **kwargs))


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    sync: Union[str, float, None] = None,
    read_only: bool = False,
    max_file_size: Optional[int] = None,
    max_key_size: Optional[int] = None,
    max_value_size: Optional[int] = None,
) -> Store:
    """Opens the store in directory ``path``, creating it if needed.

    ``sync`` says when writes reach the disk: ``"always"`` (the default:
    each write returns after its fsync), ``"never"`` (the kernel decides;
    ``sync()`` and ``close()`` fsync), or an interval (``"100ms"``,
    ``"1s"``, or seconds as a number) at which a background thread fsyncs.
    ``read_only`` opens without the writer lock (no writes). Raises
    :class:`LockedError` if another handle has it open for writing.
    """
    return Store(
        os.fspath(path),
        sync=sync,
        read_only=read_only,
        max_file_size=max_file_size,
        max_key_size=max_key_size,
        max_value_size=max_value_size,
    )


def check(path: Union[str, "os.PathLike[str]"]) -> dict:
    """Verifies every record of the store in ``path``; a report (a dict
    whose ``damaged`` says whether anything is)."""
    return _bitcask.check(os.fspath(path))


def repair(path: Union[str, "os.PathLike[str]"]) -> dict:
    """Repairs the store in ``path`` (closed everywhere); a report."""
    return _bitcask.repair(os.fspath(path))
