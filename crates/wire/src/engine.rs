//! The engine's reports as wire bodies (feature `engine`): for the server,
//! and for the CLI's local mode, which answers as the server would.

use crate::{BackupReport, Expect, FileStats, MergeProgress, MergeReport, ScrubReport, Stats};

impl From<Expect> for bitcask::Condition {
    fn from(expect: Expect) -> Self {
        match expect {
            Expect::Version(v) => Self::Version(v),
            Expect::Absent => Self::Absent,
            Expect::Present => Self::Present,
        }
    }
}

/// Milliseconds of `d`, saturating.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&bitcask::MergeReport> for MergeReport {
    fn from(r: &bitcask::MergeReport) -> Self {
        Self {
            started_at_ms: r.started_at_ms,
            duration_ms: millis(r.duration),
            files_merged: r.files_merged,
            files_written: r.files_written,
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            bytes_reclaimed: r.bytes_reclaimed(),
            records_kept: r.records_kept,
            records_dropped: r.records_dropped,
        }
    }
}

impl BackupReport {
    /// What the engine's backup into `name` copied.
    pub fn of(name: impl Into<String>, r: &bitcask::BackupReport) -> Self {
        Self {
            name: name.into(),
            data_files: r.data_files,
            bytes: r.bytes,
            duration_ms: millis(r.duration),
        }
    }
}

impl From<&bitcask::ScrubReport> for ScrubReport {
    fn from(r: &bitcask::ScrubReport) -> Self {
        Self {
            started_at_ms: r.started_at_ms,
            duration_ms: millis(r.duration),
            files_verified: r.files_verified,
            bytes_verified: r.bytes_verified,
            damaged_records: r.damaged_records,
        }
    }
}

impl From<&bitcask::Stats> for Stats {
    fn from(s: &bitcask::Stats) -> Self {
        Self {
            keys: s.keys,
            keys_with_expiry: s.keys_with_expiry,
            data_files: s.data_files,
            total_bytes: s.total_bytes,
            live_bytes: s.live_bytes,
            dead_bytes: s.dead_bytes,
            merge_running: s.merge_running,
            merge_progress: s.merge_progress.map(|p| MergeProgress {
                bytes_read: p.bytes_read,
                bytes_total: p.bytes_total,
            }),
            merges_completed: s.merges_completed,
            last_merge: s.last_merge.as_ref().map(MergeReport::from),
            recent_merges: s.recent_merges.iter().map(MergeReport::from).collect(),
            fsyncs: s.fsyncs,
            damaged_records: s.damaged_records,
            damaged_reads: s.damaged_reads,
            scrubs_completed: s.scrubs_completed,
            last_scrub: s.last_scrub.as_ref().map(ScrubReport::from),
            files: s
                .files
                .iter()
                .map(|f| FileStats {
                    id: f.id,
                    active: f.active,
                    total_bytes: f.total_bytes,
                    live_bytes: f.live_bytes,
                    dead_bytes: f.dead_bytes,
                    live_keys: f.live_keys,
                })
                .collect(),
        }
    }
}

impl From<&bitcask::Change> for crate::WatchEvent {
    fn from(change: &bitcask::Change) -> Self {
        use crate::WatchOp;
        match &change.op {
            bitcask::ChangeOp::Put {
                value,
                expires_at_ms,
            } => Self::new(
                change.seq,
                WatchOp::Put,
                &change.key,
                Some(value),
                *expires_at_ms,
            ),
            bitcask::ChangeOp::Delete => {
                Self::new(change.seq, WatchOp::Delete, &change.key, None, None)
            }
            bitcask::ChangeOp::Expire => {
                Self::new(change.seq, WatchOp::Expire, &change.key, None, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_store_reports_as_the_server_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = bitcask::Bitcask::open(dir.path()).expect("open");
        db.put(b"k", b"v1").expect("put");
        db.put(b"k", b"v2").expect("put");
        let merged = MergeReport::from(&db.merge().expect("merge"));
        let scrubbed = ScrubReport::from(&db.scrub().expect("scrub"));
        let stats = Stats::from(&db.stats());
        assert_eq!(stats.keys, 1);
        assert_eq!(stats.merges_completed, 1);
        assert_eq!(stats.last_merge, Some(merged));
        assert_eq!(stats.last_scrub, Some(scrubbed));
        assert_eq!(stats.files.len() as u64, stats.data_files);
        let json = serde_json::to_value(&stats).expect("json");
        let back: Stats = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, stats);
    }
}
