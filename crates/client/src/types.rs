//! What requests take and answers hold: write options, batches, pages,
//! health, stats and merge reports.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A condition on a key's current version, checked by the server atomically
/// with the write (HTTP `If-Match` / `If-None-Match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Condition {
    /// No condition. The default.
    #[default]
    None,
    /// The key must be absent (`If-None-Match: *`).
    Absent,
    /// The key must be present, at any version (`If-Match: *`).
    Present,
    /// The key must be at exactly this version (`If-Match: "42"`).
    Version(u64),
}

/// Options of one write: `WriteOptions::new().ttl(Duration::from_secs(60)).durable(true)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct WriteOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) condition: Condition,
    pub(crate) durable: bool,
}

impl WriteOptions {
    /// No time-to-live, no condition, the server's durability policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value expires this long after the write (puts only; whole
    /// seconds, at least one).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Write only if `condition` holds; otherwise the write fails with
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed).
    pub fn condition(mut self, condition: Condition) -> Self {
        self.condition = condition;
        self
    }

    /// The server answers only once the write is fsynced (`?durable=true`).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether repeating the write after a lost answer has the same effect
    /// as sending it once: true unless it carries a condition.
    pub(crate) fn is_idempotent(&self) -> bool {
        self.condition == Condition::None
    }
}

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The raw value.
    pub value: Bytes,
    /// Its version (the write's sequence number; the `ETag`).
    pub version: u64,
}

/// The server's health: `status` is `healthy` once its store is open,
/// `loading` while it opens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Health {
    /// `healthy` or `loading`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

impl Health {
    /// Whether the server serves requests.
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// One page of a key listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Page {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// The cursor for the next page; `None` on the last one.
    pub next_start_after: Option<String>,
}

/// Which keys a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys that start with this.
    pub prefix: String,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Keys fetched per request (the server allows 1 to 10,000; default 1,000).
    pub page_size: Option<usize>,
}

impl ListOptions {
    /// Keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Only keys after `key`.
    pub fn start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }

    /// Keys fetched per request.
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = Some(size);
        self
    }
}

/// Puts and deletes the server applies all or nothing (`POST /batch`).
/// Values are text: the batch body is JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum BatchOp {
    Put {
        key: String,
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    Delete {
        key: String,
    },
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
            ttl: None,
        });
        self
    }

    /// Adds a put that expires after `ttl` (whole seconds).
    pub fn put_with_ttl(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
            ttl: Some(ttl.as_secs()),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(BatchOp::Delete { key: key.into() });
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The server's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchResult {
    /// Operations applied.
    pub count: usize,
    /// Version of the last operation (`None` for an empty batch).
    pub version: Option<u64>,
}

/// `GET /stats`: the store's keys, space and merges.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Live keys.
    pub keys: u64,
    /// Number of data files.
    pub data_files: u64,
    /// Bytes in data files.
    pub total_bytes: u64,
    /// Bytes of live records.
    pub live_bytes: u64,
    /// Bytes a merge could reclaim.
    pub dead_bytes: u64,
    /// Whether a merge runs now.
    pub merge_running: bool,
    /// How far the running merge is (absent from servers before 0.1).
    #[serde(default)]
    pub merge_progress: Option<MergeProgress>,
    /// Merges completed since the server opened the store.
    pub merges_completed: u64,
    /// The last completed merge.
    pub last_merge: Option<MergeReport>,
    /// fsyncs issued since open.
    pub fsyncs: u64,
    /// Per data file, in log order.
    pub files: Vec<FileStats>,
}

/// How far a running merge is, in [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct MergeProgress {
    /// Record bytes of the inputs read so far.
    pub bytes_read: u64,
    /// Record bytes of all inputs.
    pub bytes_total: u64,
}

/// One data file in [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct FileStats {
    /// The file's number.
    pub id: u32,
    /// Whether it is the file being appended to.
    pub active: bool,
    /// Its length.
    pub total_bytes: u64,
    /// Bytes of its live records.
    pub live_bytes: u64,
    /// Bytes a merge could reclaim from it.
    pub dead_bytes: u64,
    /// Keys whose value is in it.
    pub live_keys: u64,
}

/// What a merge did (`POST /admin/merge`, and `last_merge` in [`Stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct MergeReport {
    /// When it started, Unix milliseconds.
    pub started_at_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Input files merged and deleted.
    pub files_merged: u64,
    /// Output files written.
    pub files_written: u64,
    /// Bytes read from inputs.
    pub bytes_read: u64,
    /// Bytes written to outputs.
    pub bytes_written: u64,
    /// Bytes of disk given back.
    pub bytes_reclaimed: u64,
    /// Records copied.
    pub records_kept: u64,
    /// Records dropped (overwritten, deleted, expired).
    pub records_dropped: u64,
}

/// `GET /cluster`: a cluster node's view of its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    /// The leader, if the node knows one.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of its last log entry.
    pub last_log_index: Option<u64>,
    /// The index of the last entry applied to its store.
    pub last_applied: Option<u64>,
    /// Every member.
    pub members: Vec<ClusterMember>,
    /// On the leader: how far each member has replicated.
    #[serde(default)]
    pub replication: Option<Vec<MemberLag>>,
}

/// One member in a [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ClusterMember {
    /// Its id.
    pub node_id: u64,
    /// Its peer address.
    pub peer_addr: String,
    /// Whether it votes (a learner does not).
    pub voter: bool,
}

/// How far a member has replicated, seen from the leader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct MemberLag {
    /// The member.
    pub node_id: u64,
    /// The last index known to be in its log.
    pub matched: Option<u64>,
    /// Entries it is behind the leader's last.
    pub lag: u64,
}
