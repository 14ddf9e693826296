//! [`Store`] on a data directory, through the engine: for offline admin
//! work, and for reads beside a running server (read-only).

use std::path::Path;
use std::time::Duration;

use bitcask::{Bitcask, KeyRange, Options, WriteOptions};
use bitcask_client::{Condition, MergeReport, Stats};
use serde_json::json;

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
        let s = self.db.stats();
        let value = json!({
            "keys": s.keys,
            "data_files": s.data_files,
            "total_bytes": s.total_bytes,
            "live_bytes": s.live_bytes,
            "dead_bytes": s.dead_bytes,
            "merge_running": s.merge_running,
            "merge_progress": s.merge_progress.map(|p| json!({
                "bytes_read": p.bytes_read,
                "bytes_total": p.bytes_total,
            })),
            "merges_completed": s.merges_completed,
            "last_merge": s.last_merge.as_ref().map(merge_json),
            "fsyncs": s.fsyncs,
            "files": s.files.iter().map(|f| json!({
                "id": f.id,
                "active": f.active,
                "total_bytes": f.total_bytes,
                "live_bytes": f.live_bytes,
                "dead_bytes": f.dead_bytes,
                "live_keys": f.live_keys,
            })).collect::<Vec<_>>(),
        });
        serde_json::from_value(value).map_err(|e| Failure::failed(format!("stats: {e}")))
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
        serde_json::from_value(merge_json(&report))
            .map_err(|e| Failure::failed(format!("merge report: {e}")))
    }

    fn close(self: Box<Self>) -> Result<(), Failure> {
        Ok(self.db.close()?)
    }
}

/// An engine merge report in the server's JSON shape.
fn merge_json(r: &bitcask::MergeReport) -> serde_json::Value {
    json!({
        "started_at_ms": r.started_at_ms,
        "duration_ms": u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        "files_merged": r.files_merged,
        "files_written": r.files_written,
        "bytes_read": r.bytes_read,
        "bytes_written": r.bytes_written,
        "bytes_reclaimed": r.bytes_reclaimed(),
        "records_kept": r.records_kept,
        "records_dropped": r.records_dropped,
    })
}
