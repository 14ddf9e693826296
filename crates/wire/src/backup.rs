//! `POST /admin/backup`: a consistent copy of the store, written by the
//! server into its backup directory.

use serde::{Deserialize, Serialize};

/// The body of `POST /admin/backup` (optional: without one, the copy is
/// named after the time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The copy's directory name inside the server's `--backup-dir`: 1 to
    /// 128 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct BackupReport {
    /// The copy's directory name inside the backup directory.
    pub name: String,
    /// Data files copied (each sealed one with its hint file, if any).
    pub data_files: u64,
    /// Bytes of data files copied.
    pub bytes: u64,
    /// How long it took.
    pub duration_ms: u64,
}

impl BackupReport {
    /// A report of `name` with nothing copied yet.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}
