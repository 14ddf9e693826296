//! `GET /stats`, `POST /admin/merge` and `POST /admin/scrub`: the engine's
//! space accounts, merge and scrub, as JSON (the bodies are `bitcask_wire`'s).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /stats`.
#[utoipa::path(get, path = "/stats", tag = "admin",
    responses((status = 200, description = "Keys, space per data file, merges, scrubs and \
        damaged records met", body = bitcask_wire::Stats)))]
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.store()?.stats();
    Ok(axum::Json(bitcask_wire::Stats::from(&stats)).into_response())
}

/// `POST /admin/merge`: runs a merge now and answers with its report.
#[utoipa::path(post, path = "/admin/merge", tag = "admin",
    responses((status = 200, description = "The merge ran; what it did", body = bitcask_wire::MergeReport)))]
pub async fn merge(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store()?;
    let report = tokio::task::spawn_blocking(move || store.merge()).await??;
    Ok(axum::Json(bitcask_wire::MergeReport::from(&report)).into_response())
}

/// `POST /admin/scrub`: verifies every sealed data file now, as fast as the
/// disk goes, and answers with what it read and found (damage is logged
/// with its file and offset, and counted in `/stats`, `/metrics` and
/// `/health`).
#[utoipa::path(post, path = "/admin/scrub", tag = "admin",
    responses((status = 200, description = "The scrub ran; what it verified and found", body = bitcask_wire::ScrubReport)))]
pub async fn scrub(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store()?;
    let report = tokio::task::spawn_blocking(move || store.scrub()).await??;
    Ok(axum::Json(bitcask_wire::ScrubReport::from(&report)).into_response())
}
