//! The HTTP routes, one module per resource.

pub mod admin;
pub mod batch;
pub mod health;
pub mod kv;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A time-to-live of `secs` seconds; zero is refused (400).
/// The longest time-to-live accepted, in seconds (about 136 years).
pub(crate) const MAX_TTL_SECS: u64 = u32::MAX as u64;

pub(crate) fn ttl_from_secs(secs: u64) -> Result<std::time::Duration, ApiError> {
    if secs == 0 || secs > MAX_TTL_SECS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("ttl must be a whole number of seconds from 1 to {MAX_TTL_SECS}"),
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Reads a JSON request body of type `T`: 400 if it is not JSON at all, 422
/// if it is JSON of another shape; both details show `shape`, what to send.
pub(crate) fn parse_json_body<T: DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON ({e}); send {shape}"),
        )
    })?;
    serde_json::from_value(json).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {shape}: {e}"),
        )
    })
}
