//! The engine's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Shorthand for `Result<T, bitcask::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts a length or offset bound for a 32-bit field on disk. The
/// option limits keep every such number far below 4 GiB; one that is not
/// is refused with `what` (before anything is written), never cut short to
/// `u32::MAX` on disk.
pub(crate) fn disk_u32<T: TryInto<u32>>(value: T, what: &'static str) -> Result<u32> {
    value
        .try_into()
        .map_err(|_| Error::InvalidArgument { reason: what })
}

/// Everything that can go wrong in the engine.
///
/// A missing key is not an error: lookups return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error (its kind tells a full disk, permissions, ...).
        #[source]
        source: io::Error,
    },

    /// Bytes on disk failed verification: they are never returned as data.
    #[error("corrupt data in {} at offset {offset}: {kind}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged header or record in that file.
        offset: u64,
        /// What was wrong with it.
        kind: CorruptionKind,
    },

    /// A file was written by a format version this build does not read.
    #[error(
        "{} has format version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in its header.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },

    /// Another handle (in this or another process) holds the directory's write lock.
    #[error(
        "{} is locked by another writer{}",
        path.display(),
        match pid { Some(pid) => format!(" (pid {pid})"), None => String::new() }
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it into the lock file (if readable).
        pid: Option<u32>,
    },

    /// The key is longer than `Options::max_key_size`; nothing was written.
    #[error("key is {len} bytes; the limit is {max}")]
    KeyTooLarge {
        /// Length of the refused key.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// The value is longer than `Options::max_value_size`; nothing was written.
    #[error("value is {len} bytes; the limit is {max}")]
    ValueTooLarge {
        /// Length of the refused value.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// A write was attempted on a store opened read-only.
    #[error("the store was opened read-only")]
    ReadOnly,

    /// An earlier write or fsync failed in a way that leaves the on-disk state
    /// unknown; the store refuses writes until it is reopened. Reads go on.
    #[error("the store refuses writes after an earlier I/O failure; reopen it to recover")]
    Poisoned,

    /// The key directory holds as many key bytes as it can address (about
    /// 4 GiB of keys in each of its 16 shards, 64 GiB a store): a write of
    /// a new key is refused before it reaches the disk, and a store whose
    /// files hold more is not opened. Writes to keys the store holds, and
    /// deletes, go on.
    #[error(
        "the key directory is full: a store holds at most about 64 GiB of keys \
         (4 GiB in each of 16 shards); nothing was written"
    )]
    KeyDirectoryFull,

    /// A conditional write's condition did not hold; nothing was written.
    #[error("condition failed: the key's current version is {}",
        match current { Some(v) => v.to_string(), None => "none (absent)".into() })]
    ConditionFailed {
        /// The key's version when the write was tried (`None` = absent).
        current: Option<u64>,
        /// Which condition failed: its place among a batch's conditions,
        /// in the order [`Batch::require`](crate::Batch::require) added
        /// them (the first that failed); 0 for a single write's.
        index: usize,
    },

    /// An argument of a call is out of range (for example a zero time-to-live
    /// or an oversized batch); nothing was written.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: &'static str,
    },

    /// The store this handle belongs to was closed (a change feed reader
    /// outliving its store).
    #[error("the store was closed")]
    Closed,

    /// The change feed was asked for history a merge may have dropped:
    /// every version from `compacted_seq` on is still there (list the
    /// store, then watch from its position; docs/WATCH.md).
    #[error("the changes before version {compacted_seq} were compacted away")]
    Compacted {
        /// The lowest version whose history is kept.
        compacted_seq: u64,
    },

    /// An option passed to `open` is out of range.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option's name, as in [`Options`](crate::Options).
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// What exactly failed verification, for [`Error::Corruption`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file does not start with the data-file magic bytes.
    BadMagic,
    /// The file header's checksum does not match.
    BadFileHeader,
    /// The file header names a different file id than the file name.
    FileIdMismatch,
    /// The file header names a file kind this build does not know.
    UnknownFileKind(u16),
    /// A record's checksum does not match its bytes.
    BadChecksum,
    /// A record has a `kind` byte this format version does not define.
    UnknownRecordKind(u8),
    /// A record claims to extend past the end of its file.
    Truncated,
    /// The record at a key's indexed location is not the one indexed
    /// (another key or another version).
    KeyMismatch,
    /// The file is larger than format version 1 allows (4 GiB).
    FileTooLarge,
    /// A key points into a data file that is not open.
    MissingFile,
    /// A sealed file ends inside a batch that was never committed.
    UnfinishedBatch,
    /// A journal record or segment does not carry the index that follows
    /// the one before it (a gap or an overlap in the log).
    OutOfOrder,
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("not a bitcask data file (bad magic)"),
            Self::BadFileHeader => f.write_str("file header checksum mismatch"),
            Self::FileIdMismatch => f.write_str("file header names another file id"),
            Self::UnknownFileKind(k) => write!(f, "unknown file kind {k}"),
            Self::BadChecksum => f.write_str("record checksum mismatch"),
            Self::UnknownRecordKind(k) => write!(f, "unknown record kind {k}"),
            Self::Truncated => f.write_str("record runs past the end of the file"),
            Self::KeyMismatch => f.write_str("record is not the one the key directory indexed"),
            Self::FileTooLarge => f.write_str("file larger than the format's 4 GiB limit"),
            Self::MissingFile => f.write_str("indexed data file is not open"),
            Self::UnfinishedBatch => f.write_str("file ends inside an uncommitted batch"),
            Self::OutOfOrder => f.write_str("journal index out of order (a gap or an overlap)"),
        }
    }
}

/// Attaches a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    /// Converts the error into [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_too_large_for_its_field_on_disk_is_refused_not_cut() {
        assert_eq!(disk_u32(7usize, "x").expect("fits"), 7);
        assert_eq!(disk_u32(u64::from(u32::MAX), "x").expect("fits"), u32::MAX);
        match disk_u32(u64::from(u32::MAX) + 1, "a record past 4 GiB") {
            Err(Error::InvalidArgument { reason }) => assert_eq!(reason, "a record past 4 GiB"),
            other => panic!("{other:?}"),
        }
    }
}
