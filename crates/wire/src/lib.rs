//! The JSON bodies of the bitcask HTTP API (and the Server-Sent Events
//! framing of its change feed), declared once: the server
//! writes them, the client and the CLI read them, the CLI's local mode
//! builds them from the engine (feature `engine`), and the server's
//! OpenAPI document describes them (feature `openapi`). The engine itself
//! stays free of serde: the conversions live here.
//!
//! Fields added later are `#[serde(default)]`, so a client reads an older
//! server's answers.

mod backup;
mod batch;
mod cluster;
#[cfg(feature = "engine")]
mod engine;
mod health;
mod page;
mod sse;
mod stats;
mod watch;

pub use backup::{BackupReport, BackupRequest};
pub use batch::{BatchBody, BatchConflict, BatchOp, BatchResult, Expect, FailedCondition};
pub use cluster::{ClusterHealth, ClusterMember, ClusterStatus, MemberLag, NewMember};
pub use health::{Health, Loading};
pub use page::Page;
pub use sse::{SseDecoder, SseMessage, TooLong};
pub use stats::{FileStats, MergeProgress, MergeReport, ScrubReport, Stats};
pub use watch::{Compacted, Encoding, WatchEvent, WatchOp, WatchPage, WatchProgress};
