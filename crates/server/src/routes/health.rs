//! `GET /health`: the seed's shape once the store is open; 503 with
//! `{"status": "loading", ...}` while it is opening.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize)]
struct Healthy {
    status: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Loading {
    status: &'static str,
    version: &'static str,
    /// How long the store has been opening.
    elapsed_ms: u64,
    /// The directory being opened.
    data_dir: String,
}

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    if state.try_store().is_some() {
        return axum::Json(Healthy {
            status: "healthy",
            version,
        })
        .into_response();
    }
    let elapsed = state.started().elapsed();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(Loading {
            status: "loading",
            version,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            data_dir: state.config().data_dir.display().to_string(),
        }),
    )
        .into_response()
}
