//! The router: routes, and the layers every request passes through.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::metrics;
use crate::middleware::{self, RequestId};
use crate::routes::{admin, batch, health, kv};
use crate::state::AppState;

/// Body bytes allowed beyond the value limit: JSON quoting and escapes of a
/// value, or a batch's framing.
const BODY_SLACK: usize = 64 * 1024;

/// Builds the application for `state`.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    // A JSON-escaped value can take up to six bytes per byte (\u00XX).
    let body_limit = config
        .max_value_size
        .saturating_mul(6)
        .saturating_add(BODY_SLACK);
    Router::new()
        .route("/health", get(health::health))
        .route("/kv", get(kv::list_keys))
        .route(
            "/kv/{*key}",
            get(kv::get_key).put(kv::put_key).delete(kv::delete_key),
        )
        .route("/batch", post(batch::batch))
        .route("/stats", get(admin::stats))
        .route("/admin/merge", post(admin::merge))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.0.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
                })
                .on_response(
                    |response: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                            "answered"
                        );
                    },
                ),
        )
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}
