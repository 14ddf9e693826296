//! [`Store`] on a data directory, through the engine: for offline admin
//! work, and for reads beside a running server (read-only).

use std::path::Path;
use std::time::Duration;

use bitcask::{Bitcask, KeyRange, Options, WriteOptions};
use bitcask_client::{BackupReport, BatchResult, Condition, MergeReport, ScrubReport, Stats};
use bitcask_wire::{BatchBody, BatchOp};

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

    fn batch(&self, body: BatchBody, durable: bool) -> Result<BatchResult, Failure> {
        let count = body.ops.len();
        let mut batch = bitcask::Batch::new();
        // For each condition, the operation that asked for it.
        let mut asked_by = Vec::new();
        for (i, op) in body.ops.iter().enumerate() {
            if let Some(expect) = op.expect().map_err(Failure::usage)? {
                batch.require(op.key().as_bytes(), expect.into());
                asked_by.push(i);
            }
            match op {
                BatchOp::Put {
                    key,
                    value,
                    ttl: Some(secs),
                    ..
                } => {
                    batch.put_with_ttl(key.as_bytes(), value.as_bytes(), Duration::from_secs(*secs))
                }
                BatchOp::Put { key, value, .. } => batch.put(key.as_bytes(), value.as_bytes()),
                BatchOp::Delete { key, .. } => batch.delete(key.as_bytes()),
                BatchOp::Check { .. } => &mut batch,
            };
        }
        batch.durable(durable);
        match self.db.write_batch(&batch) {
            Ok(version) => Ok(BatchResult {
                status: "success".into(),
                count,
                version,
            }),
            Err(bitcask::Error::ConditionFailed { current, index }) => {
                let op = asked_by.get(index).copied().unwrap_or_default();
                let now = match current {
                    Some(v) => format!("is at version {v}"),
                    None => "is absent".to_string(),
                };
                Err(Failure::new(
                    crate::failure::code::CONDITION,
                    format!(
                        "precondition failed: operation {op} (key {:?}): the key {now}; nothing was applied",
                        body.ops[op].key()
                    ),
                ))
            }
            Err(other) => Err(other.into()),
        }
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
