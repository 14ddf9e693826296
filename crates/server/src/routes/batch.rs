//! `POST /batch`: puts and deletes applied all or nothing, with conditions
//! on keys' versions checked together first (412 names the first that
//! failed).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bitcask_wire::{BatchBody, BatchConflict, BatchOp, BatchResult, FailedCondition};
use serde::Deserialize;

use crate::error::ApiError;
use crate::replicated::{Cond, WriteRequest};
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
        (status = 200, description = "Every condition held and every operation applied", body = BatchResult),
        (status = 400, description = "Malformed JSON", body = crate::error::Detail),
        (status = 412, description = "A condition did not hold: nothing applied; `failed` names the first", body = BatchConflict),
        (status = 413, description = "A key or value over the limit: nothing applied", body = crate::error::Detail),
        (status = 415, description = "The body is not application/json", body = crate::error::Detail),
        (status = 422, description = "An operation of the wrong shape (or with more than one condition, or a check with none): nothing applied", body = crate::error::Detail),
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
    let count = parsed.ops.len();
    let mut ops = Vec::with_capacity(count);
    let mut conditions = Vec::new();
    // For each condition, the operation that asked for it.
    let mut asked_by = Vec::new();
    for (i, op) in parsed.ops.into_iter().enumerate() {
        let expect = op
            .expect()
            .map_err(|why| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why))?;
        if let Some(expect) = expect {
            conditions.push((
                op.key().as_bytes().to_vec(),
                Cond::from(bitcask::Condition::from(expect)),
            ));
            asked_by.push(i);
        }
        match op {
            BatchOp::Put {
                key, value, ttl, ..
            } => {
                let ttl = ttl.map(super::ttl_from_secs).transpose()?;
                let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                ops.push((key.into_bytes(), Some(value.into_bytes()), ttl_ms));
            }
            BatchOp::Delete { key, .. } => ops.push((key.into_bytes(), None, None)),
            BatchOp::Check { .. } => {}
        }
    }
    let keys: Vec<Vec<u8>> = conditions.iter().map(|(k, _)| k.clone()).collect();
    let request = if conditions.is_empty() {
        WriteRequest::Batch(ops)
    } else {
        WriteRequest::CheckedBatch { ops, conditions }
    };
    match state.apply(params.durable, request).await? {
        Ok(version) => Ok(axum::Json(BatchResult {
            status: "success".into(),
            count,
            version,
        })
        .into_response()),
        Err(bitcask::Error::ConditionFailed { current, index }) => {
            let op = asked_by.get(index).copied().unwrap_or_default();
            let key = keys
                .get(index)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let now = match current {
                Some(v) => format!("is at version {v}"),
                None => "is absent".to_string(),
            };
            let conflict = BatchConflict {
                detail: format!(
                    "precondition failed: operation {op} (key {key:?}): the key {now}; nothing was applied"
                ),
                failed: FailedCondition {
                    op,
                    key,
                    current_version: current,
                },
            };
            Ok((StatusCode::PRECONDITION_FAILED, axum::Json(conflict)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}
