//! What requests take and answers hold: write options, batches, pages,
//! health, stats and merge reports.

use std::time::Duration;

use bitcask_wire::{BatchBody, BatchOp};
use bytes::Bytes;
use serde::Serialize;

/// The server's answers, as the server declares them.
pub use bitcask_wire::{
    BackupReport, BatchResult, ClusterMember, ClusterStatus, FileStats, Health, MemberLag,
    MergeProgress, MergeReport, Page, ScrubReport, Stats,
};

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

/// A condition as a batch operation carries it.
fn expect(condition: Condition) -> Option<bitcask_wire::Expect> {
    match condition {
        Condition::None => None,
        Condition::Absent => Some(bitcask_wire::Expect::Absent),
        Condition::Present => Some(bitcask_wire::Expect::Present),
        Condition::Version(v) => Some(bitcask_wire::Expect::Version(v)),
    }
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

/// Which keys a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys that start with this.
    pub prefix: String,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Keys fetched per request (the server allows 1 to 10,000; default 1,000).
    pub page_size: Option<usize>,
    /// Fold keys into folders at this delimiter (`/`): a page's `prefixes`
    /// then lists each folder once (see `GET /kv?delimiter=`), and
    /// [`Client::list`](crate::Client::list) yields the keys outside them.
    pub delimiter: Option<String>,
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

    /// Folds keys into folders at `delimiter` (read them from
    /// [`Page::prefixes`](crate::Page::prefixes) with `list_page`).
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }
}

/// Puts and deletes the server applies all or nothing (`POST /batch`),
/// each maybe with a [`Condition`] on its key, and checks of keys the
/// batch does not write. Every condition is checked against the store as
/// it was before the batch, all at once; if one fails, nothing is applied
/// and the call fails with
/// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed), whose
/// detail names the first failed operation. Values are text: the batch
/// body is JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Batch {
    body: BatchBody,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.body.ops.push(BatchOp::put(key, value));
        self
    }

    /// Adds a put that applies only if `condition` holds for its key.
    pub fn put_if(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        condition: Condition,
    ) -> Self {
        self.body
            .ops
            .push(BatchOp::put(key, value).expecting(expect(condition)));
        self
    }

    /// Adds a delete that applies only if `condition` holds for its key.
    pub fn delete_if(mut self, key: impl Into<String>, condition: Condition) -> Self {
        self.body
            .ops
            .push(BatchOp::delete(key).expecting(expect(condition)));
        self
    }

    /// Adds a check: the batch applies only if `condition` holds for
    /// `key`, which it does not write. `Condition::None` adds nothing.
    pub fn check(mut self, key: impl Into<String>, condition: Condition) -> Self {
        if let Some(e) = expect(condition) {
            self.body.ops.push(BatchOp::check(key, e));
        }
        self
    }

    /// Adds a put that expires after `ttl` (whole seconds).
    pub fn put_with_ttl(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let mut op = BatchOp::put(key, value);
        if let BatchOp::Put { ttl: t, .. } = &mut op {
            *t = Some(ttl.as_secs());
        }
        self.body.ops.push(op);
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.body.ops.push(BatchOp::delete(key));
        self
    }

    /// A batch of the operations in a `POST /batch` body (as the CLI reads
    /// one from a file).
    pub fn from_body(body: BatchBody) -> Self {
        Self { body }
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.body.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.body.ops.is_empty()
    }
}
