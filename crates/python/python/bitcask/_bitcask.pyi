"""Type stubs of the extension module (src/*.rs); use it through `bitcask`."""

from __future__ import annotations

import datetime
import os
from types import TracebackType
from typing import Any, Iterator, Optional, Sequence, Tuple, Type, TypeVar, Union, overload

Key = Union[bytes, bytearray, str]
Value = Union[bytes, bytearray, str]
Seconds = Union[int, float, datetime.timedelta]
_S = TypeVar("_S", bound="Store")
_D = TypeVar("_D")

ERROR_NAMES: Sequence[str]
__version__: str

class Versioned:
    """A value with its version and expiry."""

    @property
    def value(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def expires_at_ms(self) -> Optional[int]: ...

class Listing(Iterator[Any]):
    """A lazy listing in key order (keys, (key, value) pairs, or values)."""

    def __iter__(self) -> Listing: ...
    def __next__(self) -> Any: ...

class Batch:
    """Writes and conditions applied together, all or nothing."""

    def put(self, key: Key, value: Value, *, ttl: Optional[Seconds] = None) -> None: ...
    def delete(self, key: Key) -> None: ...
    def require(
        self,
        key: Key,
        *,
        version: Optional[int] = None,
        absent: bool = False,
        present: bool = False,
    ) -> None: ...
    def apply(self) -> Optional[int]: ...
    def discard(self) -> None: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Batch: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Store:
    """An open store (see `bitcask.Store`)."""

    def __new__(
        cls: Type[_S],
        path: Union[str, os.PathLike[str]],
        *,
        sync: Union[str, float, None] = None,
        read_only: bool = False,
        max_file_size: Optional[int] = None,
        max_key_size: Optional[int] = None,
        max_value_size: Optional[int] = None,
    ) -> _S: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    def __enter__(self: _S) -> _S: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @overload
    def get(self, key: Key) -> Optional[bytes]: ...
    @overload
    def get(self, key: Key, default: _D) -> Union[bytes, _D]: ...
    def __getitem__(self, key: Key) -> bytes: ...
    def __setitem__(self, key: Key, value: Value) -> None: ...
    def __delitem__(self, key: Key) -> None: ...
    def __contains__(self, key: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def put(
        self,
        key: Key,
        value: Value,
        *,
        ttl: Optional[Seconds] = None,
        if_version: Optional[int] = None,
        if_absent: bool = False,
        if_present: bool = False,
        durable: Optional[bool] = None,
    ) -> int: ...
    def get_versioned(self, key: Key) -> Optional[Versioned]: ...
    def delete(
        self, key: Key, *, if_version: Optional[int] = None, durable: Optional[bool] = None
    ) -> bool: ...
    def keys(
        self,
        prefix: Optional[Key] = None,
        *,
        start_after: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[bytes]: ...
    def items(
        self,
        prefix: Optional[Key] = None,
        *,
        start_after: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Tuple[bytes, bytes]]: ...
    def values(
        self,
        prefix: Optional[Key] = None,
        *,
        start_after: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[bytes]: ...
    def batch(self, *, durable: bool = False) -> Batch: ...
    def sync(self) -> None: ...
    def merge(self) -> dict[str, Any]: ...
    def backup(self, dest: Union[str, os.PathLike[str]]) -> dict[str, Any]: ...
    def stats(self) -> dict[str, Any]: ...

def check(path: Union[str, os.PathLike[str]]) -> dict[str, Any]: ...
def repair(path: Union[str, os.PathLike[str]]) -> dict[str, Any]: ...
def _register_errors(*classes: type) -> None: ...
