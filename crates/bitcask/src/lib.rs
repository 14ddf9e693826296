//! A Bitcask-style key-value storage engine: append-only, checksummed data
//! files and an in-memory key directory, so a write is one append and a read
//! is one positioned read.
//!
//! ```
//! use bitcask::{Bitcask, Options, SyncPolicy};
//!
//! # fn main() -> bitcask::Result<()> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never))?;
//! db.put(b"hello", b"world")?;
//! assert_eq!(db.get(b"hello")?.as_deref(), Some(&b"world"[..]));
//! assert!(db.delete(b"hello")?);
//! assert_eq!(db.get(b"hello")?, None);
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! Beyond get, put and delete: every write returns a version, and
//! [`WriteOptions`] adds a time-to-live, a [`Condition`] on the current
//! version (compare-and-set) or durability for that one write; [`Batch`]es
//! apply all or nothing; [`Bitcask::keys_in`] lists keys in order by prefix
//! and start key; [`Bitcask::merge`] reclaims the space of dead records
//! while reads and writes go on (or the background thread does, see
//! [`MergeTrigger`]); hint files make open fast; [`Bitcask::backup`] copies a
//! live store; [`Bitcask::stats`] reports space and merge activity.
//! Offline, [`check`] verifies every record of a store and [`repair`]
//! makes a damaged one open again, keeping what survives.
//!
//! Durability is a choice made at open ([`SyncPolicy`]); the on-disk format
//! and the crash protocols are specified in `docs/FORMAT.md`.

mod backup;
mod changes;
mod check;
pub mod clock;
mod crc;
mod damage;
mod datafile;
mod db;
pub mod disk;
mod durability;
mod error;
#[cfg(any(test, feature = "failpoints"))]
mod failpoint;
mod filetable;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod hint;
mod history;
pub mod journal;
mod keydir;
mod lock;
mod lock_order;
mod merge;
mod options;
mod periodic;
#[cfg(test)]
mod power_loss;
mod prefetch;
mod readmap;
mod record;
mod recovery;
mod repair;
mod scrub;
#[cfg(any(test, feature = "simulated-disk"))]
pub mod sim;
mod stats;
mod survival;
mod throttle;
mod worker;
mod write;
mod writemap;

pub use changes::{Change, ChangeOp, Changes, Position};
pub use check::{CheckReport, Damage, FileReport, check, check_with_progress};
pub use db::{Bitcask, Purged};
pub use error::{CorruptionKind, Error, Result};
pub use keydir::{KeyRange, Keys};
pub use merge::RECENT_MERGES;
pub use options::{MergeTrigger, OpenProgress, Options, ReadOptions, Scrub, SyncPolicy};
pub use repair::{REPORT_FILE, RepairReport, repair, repair_with_progress};
pub use stats::{BackupReport, FileStats, MergeProgress, MergeReport, ScrubReport, Stats};
pub use write::{Batch, BatchOpRef, Condition, Versioned, VersionedRef, WriteOptions};

/// Compiles the examples in the repository's README as doctests, so they
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Bitcask>();
        assert_send_sync::<Error>();
    }
}
