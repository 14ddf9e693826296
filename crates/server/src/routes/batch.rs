//! `POST /batch`: puts and deletes applied all or nothing.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bitcask_wire::{BatchBody, BatchOp, BatchResult};
use serde::Deserialize;

use crate::error::ApiError;
use crate::replicated::WriteRequest;
use crate::state::AppState;

/// Query parameters of a batch.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchParams {
    /// Wait for the fsync of the batch.
    #[serde(default)]
    durable: bool,
}

/// `POST /batch`.
#[utoipa::path(
    post,
    path = "/batch",
    tag = "kv",
    params(BatchParams),
    request_body = BatchBody,
    responses(
        (status = 200, description = "Every operation applied", body = BatchResult),
        (status = 400, description = "Malformed JSON", body = crate::error::Detail),
        (status = 413, description = "A key or value over the limit: nothing applied", body = crate::error::Detail),
        (status = 415, description = "The body is not application/json", body = crate::error::Detail),
        (status = 422, description = "An operation of the wrong shape: nothing applied", body = crate::error::Detail),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    Query(params): Query<BatchParams>,
    headers: axum::http::HeaderMap,
    crate::body::Body(body): crate::body::Body,
) -> Result<Response, ApiError> {
    super::require_json(&headers)?;
    let parsed: BatchBody = super::parse_json_body(
        &body,
        r#"{"ops": [{"op": "put", "key": "...", "value": "..."}, {"op": "delete", "key": "..."}]}"#,
    )?;
    let mut ops = Vec::with_capacity(parsed.ops.len());
    for op in parsed.ops {
        match op {
            BatchOp::Put { key, value, ttl } => {
                let ttl = ttl.map(super::ttl_from_secs).transpose()?;
                let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                ops.push((key.into_bytes(), Some(value.into_bytes()), ttl_ms));
            }
            BatchOp::Delete { key } => ops.push((key.into_bytes(), None, None)),
        }
    }
    let count = ops.len();
    let version = state
        .apply(params.durable, WriteRequest::Batch(ops))
        .await??;
    Ok(axum::Json(BatchResult {
        status: "success".into(),
        count,
        version,
    })
    .into_response())
}
