//! `GET /health`: the seed's shape once the store is open; 503 with
//! `{"status": "loading", ...}` while it is opening.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bitcask_wire::{ClusterHealth, Health, Loading};

use crate::state::AppState;

/// What `/health` says of a store that met damage.
const DAMAGE_DETAIL: &str = "the store met damaged records (the server log names them); the \
    rest is served. Run `bitcask check --data-dir DIR` beside the server, then `bitcask repair` \
    with the server stopped (docs/OPERATIONS.md)";

/// The damaged records `store` has met, if any.
fn damage(store: &bitcask::Bitcask) -> Option<u64> {
    Some(store.damaged_records()).filter(|&n| n > 0)
}

/// `GET /health` (needs no token, so it tells nothing about the machine:
/// not even the data directory's path while the store opens).
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses(
        (status = 200, description = "Open and serving (`degraded`: damaged records were met; \
            the rest is served)", body = Health),
        (status = 503, description = "The store is still opening (`Loading`), or a cluster \
            node has no leader (`Health` with status `no_leader`)", body = Loading),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let Some(store) = state.try_store() else {
        let elapsed = state.started().elapsed();
        let loading = Loading::new(
            version,
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            state.open_progress().files_loaded(),
            state.open_progress().files_total(),
        );
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(loading)).into_response();
    };
    // Damage met does not make the server unavailable: it serves every
    // other record, so a liveness probe must not restart it.
    let damaged_records = damage(&store);
    let mut health = Health::new(
        if damaged_records.is_some() {
            "degraded"
        } else {
            "healthy"
        },
        version,
    );
    health.damaged_records = damaged_records;
    health.detail = damaged_records.map(|_| DAMAGE_DETAIL.to_string());
    let mut code = StatusCode::OK;
    if let Some(node) = state.cluster() {
        let status = node.status();
        if status.leader_id.is_none() {
            health.status = "no_leader".into();
            code = StatusCode::SERVICE_UNAVAILABLE;
        }
        health.cluster = Some(ClusterHealth::new(
            status.node_id,
            status.role,
            status.leader_id,
        ));
    }
    (code, axum::Json(health)).into_response()
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
            crate::routes::kv::KeyPath(b"k".to_vec()),
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
