//! `GET /health`: the seed's shape once the store is open; 503 with
//! `{"status": "loading", ...}` while it is opening.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::AppState;

/// The seed's health answer (a cluster node adds `cluster`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Healthy {
    status: &'static str,
    version: &'static str,
    /// On a cluster node: its place in the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterHealth>,
}

/// A cluster node's part of `/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterHealth {
    node_id: u64,
    role: &'static str,
    /// The leader, or `null` when there is none (then the answer is 503:
    /// writes and linearizable reads wait; stale reads still answer).
    leader_id: Option<u64>,
}

/// The answer while the store opens.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Loading {
    status: &'static str,
    version: &'static str,
    /// How long the store has been opening.
    elapsed_ms: u64,
    /// Data files read so far.
    files_loaded: u64,
    /// Data files to read (0 until the directory is listed).
    files_total: u64,
}

/// `GET /health` (needs no token, so it tells nothing about the machine:
/// not even the data directory's path while the store opens).
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses(
        (status = 200, description = "Open and serving", body = Healthy),
        (status = 503, description = "The store is still opening (`Loading`), or a cluster \
            node has no leader (`Healthy` with status `no_leader`)", body = Loading),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    if let (Some(node), Some(_)) = (state.cluster(), state.try_store()) {
        let status = node.status();
        let healthy = Healthy {
            status: if status.leader_id.is_some() {
                "healthy"
            } else {
                "no_leader"
            },
            version,
            cluster: Some(ClusterHealth {
                node_id: status.node_id,
                role: status.role,
                leader_id: status.leader_id,
            }),
        };
        let code = if status.leader_id.is_some() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (code, axum::Json(healthy)).into_response();
    }
    if state.try_store().is_some() {
        return axum::Json(Healthy {
            status: "healthy",
            version,
            cluster: None,
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
            files_loaded: state.open_progress().files_loaded(),
            files_total: state.open_progress().files_total(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn while_the_store_opens_health_answers_503_loading_with_progress() {
        let config = Config::from_args(["bitcask-server", "--data-dir", "/some/dir"]);
        let state = AppState::new(config.expect("config")).expect("state");
        let response = health(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["status"], "loading");
        assert!(
            !String::from_utf8_lossy(&body).contains("/some/dir"),
            "an unauthenticated route shows no path"
        );
        assert_eq!(json["files_loaded"], 0);
        assert!(json["elapsed_ms"].is_u64());
    }

    #[tokio::test]
    async fn while_the_store_opens_other_routes_answer_503() {
        let config = Config::from_args(["bitcask-server"]);
        let state = AppState::new(config.expect("config")).expect("state");
        let response = crate::routes::kv::get_key(
            State(state.clone()),
            axum::extract::Path("k".into()),
            axum::extract::Query(Default::default()),
            axum::http::HeaderMap::new(),
        )
        .await
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = crate::routes::admin::stats(State(state))
            .await
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
