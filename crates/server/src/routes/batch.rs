//! `POST /batch`: puts and deletes applied all or nothing.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

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

/// The body: `{"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 60}, {"op": "delete", "key": "k"}]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The operations, applied in order.
    ops: Vec<BatchOp>,
}

/// One operation of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchOp {
    /// Store `value` under `key`, expiring after `ttl` seconds if given.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Time-to-live in seconds.
        #[schema(minimum = 1, maximum = 4294967295_u64)]
        #[serde(default, deserialize_with = "whole_seconds")]
        ttl: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// The answer to a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Applied {
    status: &'static str,
    /// Operations applied.
    count: usize,
    /// Version of the last operation (each operation takes the next one).
    version: Option<u64>,
}

/// `POST /batch`.
#[utoipa::path(
    post,
    path = "/batch",
    tag = "kv",
    params(BatchParams),
    request_body = BatchBody,
    responses(
        (status = 200, description = "Every operation applied", body = Applied),
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
    Ok(axum::Json(Applied {
        status: "success",
        count,
        version,
    })
    .into_response())
}

/// A time-to-live: a JSON integer, or a number with no fraction (`60.0`,
/// which JSON Schema counts as an integer too).
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = n.as_u64() {
        return Ok(Some(n));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "ttl must be a whole number of seconds, not {n}"
        ))),
    }
}
