//! A client of the bitcask HTTP server, async ([`Client`]) and blocking
//! ([`blocking::Client`]).
//!
//! ```no_run
//! # async fn run() -> bitcask_client::Result<()> {
//! use std::time::Duration;
//! use bitcask_client::{Client, Condition, WriteOptions};
//!
//! let client = Client::builder("http://localhost:8000")
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! let version = client.put("greeting", "hello").await?;
//! assert_eq!(client.get("greeting").await?.as_deref(), Some("hello"));
//! // Compare-and-set: only if nobody wrote since.
//! let only_if_unchanged = WriteOptions::new().condition(Condition::Version(version));
//! client.put_with("greeting", "hi", only_if_unchanged).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every request carries a fresh `x-request-id` (the server logs it and
//! echoes it). Errors are typed ([`Error`]): cannot connect, timed out,
//! unauthorised, precondition failed, too large, unavailable, or another
//! answer with the server's `detail`. Requests that are safe to repeat are
//! retried with backoff (see [`ClientBuilder::retries`]).

pub mod blocking;
mod client;
mod error;
mod types;
mod watch;

pub use bitcask_wire::{WatchEvent, WatchOp};
pub use client::{Client, ClientBuilder, DEFAULT_URL, SERVER_ENV};
pub use error::{Error, Result};
pub use types::{
    BackupReport, Batch, BatchResult, ClusterMember, ClusterStatus, Condition, FileStats, Health,
    ListOptions, MemberLag, MergeProgress, MergeReport, Page, ScrubReport, Stats, Versioned,
    WriteOptions,
};
pub use watch::WatchOptions;
