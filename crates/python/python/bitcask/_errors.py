"""The exceptions bitcask raises. Every one is a :class:`bitcask.Error`."""

from __future__ import annotations

from typing import Optional


class Error(Exception):
    """Base of every bitcask exception; I/O failures are raised as this."""


class LockedError(Error):
    """Another handle, in this process or another, has the store open."""


class CorruptionError(Error):
    """Bytes on disk failed verification (they are never returned as data).

    ``bitcask.check(path)`` says where; ``bitcask.repair(path)`` keeps
    what survives.
    """


class ConditionFailed(Error):
    """A conditional write's condition did not hold; nothing was written.

    ``current_version`` is the key's version when the write was tried
    (``None`` if it was absent).
    """

    current_version: Optional[int] = None


class KeyTooLarge(Error, ValueError):
    """The key is longer than the store's ``max_key_size``."""


class ValueTooLarge(Error, ValueError):
    """The value is longer than the store's ``max_value_size``."""


class ReadOnlyError(Error):
    """A write on a store opened with ``read_only=True``."""


class ClosedError(Error):
    """The store was closed."""


class InvalidArgument(Error, ValueError):
    """An argument or an option of ``open`` is out of range."""


class PoisonedError(Error):
    """An earlier write or fsync failed; the store refuses writes until
    it is reopened (reads go on)."""


ALL = (
    Error,
    LockedError,
    CorruptionError,
    ConditionFailed,
    KeyTooLarge,
    ValueTooLarge,
    ReadOnlyError,
    ClosedError,
    InvalidArgument,
    PoisonedError,
)
