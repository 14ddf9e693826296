//! What the key-value commands need from a store, so that `put`, `get`,
//! `delete`, `batch`, `keys`, `stats`, `merge`, `scrub` and `backup` are written
//! once for a server
//! ([`crate::remote`]) and for a data directory ([`crate::local`]).

use bitcask_client::{BackupReport, BatchResult, Condition, MergeReport, ScrubReport, Stats};
use bitcask_wire::BatchBody;

use crate::failure::Failure;

/// How a put is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Time-to-live in seconds.
    pub ttl: Option<u64>,
    /// A condition on the current version.
    pub condition: Condition,
    /// Wait for the fsync.
    pub durable: bool,
}

/// Keys, one at a time; an error ends the listing.
pub type KeyIter<'a> = Box<dyn Iterator<Item = Result<Vec<u8>, Failure>> + 'a>;

/// A store the commands work on: a server or a data directory.
pub trait Store {
    /// Stores `value` under `key`; returns its version.
    fn put(&self, key: &str, value: &[u8], options: PutOptions) -> Result<u64, Failure>;
    /// The value and version of `key`, if present.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, Failure>;
    /// Removes `key` (if at `if_version`, when given); returns the
    /// delete's version, or `None` if the key was absent.
    fn delete(
        &self,
        key: &str,
        if_version: Option<u64>,
        durable: bool,
    ) -> Result<Option<u64>, Failure>;
    /// Keys with `prefix`, after `start_after`, in byte order; `limit` (if
    /// given) is how many the caller will take, so a server need not send more.
    fn keys<'a>(
        &'a self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> KeyIter<'a>;
    /// Applies `batch` all or nothing, if every condition in it holds (a
    /// failed one is a [`crate::failure::code::CONDITION`] failure naming
    /// the operation).
    fn batch(&self, batch: BatchBody, durable: bool) -> Result<BatchResult, Failure>;
    /// Space and merge statistics.
    fn stats(&self) -> Result<Stats, Failure>;
    /// Runs a merge now.
    fn merge(&self) -> Result<MergeReport, Failure>;
    /// Verifies every sealed data file now.
    fn scrub(&self) -> Result<ScrubReport, Failure>;
    /// Writes a consistent copy into `dest` (a server: a name under its
    /// backup directory, or one after the time; a directory: a new path).
    fn backup(&self, dest: Option<&str>) -> Result<BackupReport, Failure>;
    /// Finishes: a local store syncs and releases its lock.
    fn close(self: Box<Self>) -> Result<(), Failure>;
}
