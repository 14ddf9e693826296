//! [`Store`] on a data directory, through the engine: for offline admin
//! work, and for reads beside a running server (read-only).

use std::path::Path;
use std::time::Duration;

use bitcask::{Bitcask, KeyRange, Options, WriteOptions};
use bitcask_client::{BackupReport, Condition, MergeReport, ScrubReport, Stats};

use crate::failure::Failure;
use crate::output;
use crate::store::{KeyIter, PutOptions, Store};

/// What a command will do to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only read: opens read-only if another process holds the store.
    Read,
    /// Write to an existing store.
    Write,
    /// Write, creating the store if the directory is new (put, import).
    Create,
}

/// An open data directory.
pub struct Local {
    db: Bitcask,
}

/// The engine options the CLI opens stores with: no background merges (a
/// command is short), the engine's default limits, and no fsync per write:
/// [`Store::close`] syncs before the command reports success, so a write
/// the command reports done is on disk either way, and an import does not
/// pay one fsync per record.
fn options() -> Options {
    Options::new()
        .merge_trigger(None)
        .sync(bitcask::SyncPolicy::Never)
}

impl Local {
    /// Opens the store in `dir` for `access` (see [`Access`]).
    pub fn open(dir: &Path, access: Access) -> Result<Self, Failure> {
        if access != Access::Create && !dir.is_dir() {
            return Err(Failure::failed(format!("no store at {}", dir.display()))
                .hint("check the --data-dir path"));
        }
        match Bitcask::open_with(dir, options()) {
            Ok(db) => Ok(Self { db }),
            Err(bitcask::Error::Locked { pid, .. }) if access == Access::Read => {
                output::note(&format!(
                    "note: {} is in use by {}; reading it read-only, as it was when opened",
                    dir.display(),
                    holder(pid)
                ));
                let db = Bitcask::open_with(dir, options().read_only(true))?;
                Ok(Self { db })
            }
            Err(bitcask::Error::Locked { pid, .. }) => Err(Failure::failed(format!(
                "{} is in use by {}; it cannot be written here meanwhile",
                dir.display(),
                holder(pid)
            ))
            .hint("stop that process first (put, delete and merge can also go to the server: --server URL)")),
            Err(e) => Err(e.into()),
        }
    }

    /// The engine handle.
    pub fn db(&self) -> &Bitcask {
        &self.db
    }
}

/// Who holds a lock, for a message.
pub fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid} (a running bitcask-server?)"),
        None => "another process".to_string(),
    }
}

fn condition(condition: Condition) -> bitcask::Condition {
    match condition {
        Condition::None => bitcask::Condition::None,
        Condition::Absent => bitcask::Condition::Absent,
        Condition::Present => bitcask::Condition::Present,
        Condition::Version(v) => bitcask::Condition::Version(v),
    }
}

impl Store for Local {
    fn put(&self, key: &str, value: &[u8], options: PutOptions) -> Result<u64, Failure> {
        let mut write = WriteOptions::new()
            .condition(condition(options.condition))
            .durable(options.durable);
        if let Some(secs) = options.ttl {
            write = write.ttl(Duration::from_secs(secs));
        }
        Ok(self.db.put_with(key.as_bytes(), value, write)?)
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, Failure> {
        Ok(self
            .db
            .get_versioned(key.as_bytes())?
            .map(|v| (v.value, v.version)))
    }

    fn delete(
        &self,
        key: &str,
        if_version: Option<u64>,
        durable: bool,
    ) -> Result<Option<u64>, Failure> {
        let condition = if_version.map_or(bitcask::Condition::None, bitcask::Condition::Version);
        let options = WriteOptions::new().condition(condition).durable(durable);
        Ok(self.db.delete_with(key.as_bytes(), options)?)
    }

    fn keys<'a>(
        &'a self,
        prefix: &str,
        start_after: Option<&str>,
        _limit: Option<usize>,
    ) -> KeyIter<'a> {
        let mut range = KeyRange::prefix(prefix.as_bytes().to_vec());
        if let Some(after) = start_after {
            range = range.start_after(after.as_bytes().to_vec());
        }
        Box::new(self.db.keys_in(range).map(Ok))
    }

    fn stats(&self) -> Result<Stats, Failure> {
        Ok(Stats::from(&self.db.stats()))
    }

    fn backup(&self, dest: Option<&str>) -> Result<BackupReport, Failure> {
        let dest = dest.ok_or_else(|| {
            Failure::usage(
                "with --data-dir, name the new directory: bitcask backup DEST --data-dir DIR",
            )
        })?;
        let report = output::run_with_progress("backing up", || self.db.backup(dest), || None)?;
        Ok(BackupReport::of(dest, &report))
    }

    fn scrub(&self) -> Result<ScrubReport, Failure> {
        let report = output::run_with_progress("scrubbing", || self.db.scrub(), || None)?;
        Ok(ScrubReport::from(&report))
    }

    fn merge(&self) -> Result<MergeReport, Failure> {
        let report = output::run_with_progress(
            "merging",
            || self.db.merge(),
            || {
                let p = self.db.stats().merge_progress?;
                Some((p.bytes_read, p.bytes_total))
            },
        )?;
        Ok(MergeReport::from(&report))
    }

    fn close(self: Box<Self>) -> Result<(), Failure> {
        Ok(self.db.close()?)
    }
}
