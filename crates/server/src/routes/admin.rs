//! `GET /stats` and `POST /admin/merge`: the engine's space accounts and
//! merge, as JSON.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// [`bitcask::Stats`] as JSON.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsBody {
    keys: u64,
    data_files: u64,
    total_bytes: u64,
    live_bytes: u64,
    dead_bytes: u64,
    merge_running: bool,
    /// How far the running merge is; `null` when none runs.
    merge_progress: Option<MergeProgressBody>,
    merges_completed: u64,
    last_merge: Option<MergeBody>,
    fsyncs: u64,
    files: Vec<FileBody>,
}

/// [`bitcask::MergeProgress`] as JSON.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MergeProgressBody {
    /// Record bytes of the inputs read so far.
    bytes_read: u64,
    /// Record bytes of all inputs.
    bytes_total: u64,
}

/// One data file in [`StatsBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct FileBody {
    id: u32,
    active: bool,
    total_bytes: u64,
    live_bytes: u64,
    dead_bytes: u64,
    live_keys: u64,
}

/// [`bitcask::MergeReport`] as JSON.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MergeBody {
    started_at_ms: u64,
    duration_ms: u64,
    files_merged: u64,
    files_written: u64,
    bytes_read: u64,
    bytes_written: u64,
    bytes_reclaimed: u64,
    records_kept: u64,
    records_dropped: u64,
}

impl From<&bitcask::MergeReport> for MergeBody {
    fn from(r: &bitcask::MergeReport) -> Self {
        Self {
            started_at_ms: r.started_at_ms,
            duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
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

/// `GET /stats`.
#[utoipa::path(get, path = "/stats", tag = "admin",
    responses((status = 200, description = "Keys, space per data file, merges", body = StatsBody)))]
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let s = state.store()?.stats();
    Ok(axum::Json(StatsBody {
        keys: s.keys,
        data_files: s.data_files,
        total_bytes: s.total_bytes,
        live_bytes: s.live_bytes,
        dead_bytes: s.dead_bytes,
        merge_running: s.merge_running,
        merge_progress: s.merge_progress.map(|p| MergeProgressBody {
            bytes_read: p.bytes_read,
            bytes_total: p.bytes_total,
        }),
        merges_completed: s.merges_completed,
        last_merge: s.last_merge.as_ref().map(MergeBody::from),
        fsyncs: s.fsyncs,
        files: s
            .files
            .iter()
            .map(|f| FileBody {
                id: f.id,
                active: f.active,
                total_bytes: f.total_bytes,
                live_bytes: f.live_bytes,
                dead_bytes: f.dead_bytes,
                live_keys: f.live_keys,
            })
            .collect(),
    })
    .into_response())
}

/// `POST /admin/merge`: runs a merge now and answers with its report.
#[utoipa::path(post, path = "/admin/merge", tag = "admin",
    responses((status = 200, description = "The merge ran; what it did", body = MergeBody)))]
pub async fn merge(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store()?;
    let report = tokio::task::spawn_blocking(move || store.merge()).await??;
    Ok(axum::Json(MergeBody::from(&report)).into_response())
}
