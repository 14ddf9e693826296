//! `GET /health`.

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterHealth;

/// The server's health: `healthy` once the store is open, `degraded` when
/// it has met damaged records (it serves the rest), `no_leader` on a
/// cluster node without a leader (503). The seed's shape, `{"status",
/// "version"}`, with fields added only when they say something.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Health {
    /// `healthy`, `degraded`, `no_leader` (or `loading`, see [`Loading`]).
    pub status: String,
    /// The server's version.
    pub version: String,
    /// On a cluster node: its place in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
    /// Damaged records met since the store opened, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged_records: Option<u64>,
    /// What to do about what `status` reports, when it is not `healthy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Health {
    /// A health answer of `status` with nothing more to say.
    pub fn new(status: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            version: version.into(),
            cluster: None,
            damaged_records: None,
            detail: None,
        }
    }

    /// Whether the server serves requests (`degraded` does: every record
    /// but the damaged ones).
    pub fn is_healthy(&self) -> bool {
        matches!(self.status.as_str(), "healthy" | "degraded")
    }
}

/// `GET /health` while the store opens (503).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Loading {
    /// `loading`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// How long the store has been opening.
    pub elapsed_ms: u64,
    /// Data files read so far.
    pub files_loaded: u64,
    /// Data files to read (0 until the directory is listed).
    pub files_total: u64,
}

impl Loading {
    /// The answer while opening, `elapsed_ms` in, with this progress.
    pub fn new(version: impl Into<String>, elapsed_ms: u64, loaded: u64, total: u64) -> Self {
        Self {
            status: "loading".into(),
            version: version.into(),
            elapsed_ms,
            files_loaded: loaded,
            files_total: total,
        }
    }
}
