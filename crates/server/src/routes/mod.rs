//! The HTTP routes, one module per resource.

pub mod admin;
pub mod backup;
pub mod batch;
pub mod cluster;
pub mod health;
pub mod kv;
pub mod listing;
mod preconditions;
pub mod ui;
pub mod watch;

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
///
/// Parsed straight into `T`: going through a `serde_json::Value` first took
/// about 28 times the body's size in memory.
pub(crate) fn parse_json_body<T: DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {shape}: {e}"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON ({e}); send {shape}"),
        ),
    })
}

/// The request's media type (`Content-Type` without its parameters, lower
/// case), if it has one.
pub(crate) fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Refuses (415) a body whose content type is not JSON. For routes that
/// only take JSON and may be reached by a browser's cross-site `POST`
/// (whose body is `text/plain`, a form, or has no type at all).
pub(crate) fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match media_type(headers).as_deref() {
        Some("application/json") => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {}; send application/json",
                other.map_or_else(|| "(none)".to_string(), |t| format!("{t:?}"))
            ),
        )),
    }
}
