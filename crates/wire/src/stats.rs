//! `GET /stats`, `POST /admin/merge` and `POST /admin/scrub`: the store's
//! space, merges and scrubs.

use serde::{Deserialize, Serialize};

/// The store's keys, space use, merges, scrubs and damage met.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Stats {
    /// Live keys.
    pub keys: u64,
    /// Of those, the keys that carry an expiry.
    #[serde(default)]
    pub keys_with_expiry: u64,
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
    /// How far the running merge is; `null` when none runs.
    #[serde(default)]
    pub merge_progress: Option<MergeProgress>,
    /// Merges completed since the server opened the store.
    pub merges_completed: u64,
    /// The last completed merge.
    pub last_merge: Option<MergeReport>,
    /// The last completed merges since open (up to 16), newest first.
    #[serde(default)]
    pub recent_merges: Vec<MergeReport>,
    /// fsyncs issued since open.
    pub fsyncs: u64,
    /// Damaged records met since open (by reads, merges and scrubs).
    #[serde(default)]
    pub damaged_records: u64,
    /// Reads that failed on a damaged record since open.
    #[serde(default)]
    pub damaged_reads: u64,
    /// Scrub passes completed since open.
    #[serde(default)]
    pub scrubs_completed: u64,
    /// The last completed scrub pass.
    #[serde(default)]
    pub last_scrub: Option<ScrubReport>,
    /// Per data file, in log order.
    pub files: Vec<FileStats>,
}

/// How far a running merge is, in [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct MergeProgress {
    /// Record bytes of the inputs read so far.
    pub bytes_read: u64,
    /// Record bytes of all inputs.
    pub bytes_total: u64,
}

/// One data file in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What a scrub pass did (`POST /admin/scrub`, and `last_scrub` in
/// [`Stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ScrubReport {
    /// When it started, Unix milliseconds.
    pub started_at_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Sealed data files read.
    pub files_verified: u64,
    /// Record bytes verified.
    pub bytes_verified: u64,
    /// Damaged records found (a file is read up to its first).
    pub damaged_records: u64,
}
