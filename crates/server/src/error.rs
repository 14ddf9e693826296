//! Errors as the wire contract wants them: a JSON body `{"detail": "..."}`
//! with a fitting status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer: status and a sentence for a person.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub detail: String,
}

impl ApiError {
    /// An error with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

/// The JSON body of every error.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Detail<'a> {
    /// What went wrong, for a person.
    detail: &'a str,
}

/// The response for `status` with a `{"detail": ...}` body.
pub fn detail_response(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(Detail { detail })).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), detail = %self.detail, "request failed");
        }
        detail_response(self.status, &self.detail)
    }
}

impl From<bitcask::Error> for ApiError {
    fn from(error: bitcask::Error) -> Self {
        use bitcask::Error as E;
        let status = match &error {
            E::KeyTooLarge { .. } | E::ValueTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::ConditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            E::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            E::ReadOnly | E::Poisoned | E::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // Out of space (or over a file-size limit): the write did not
            // happen; reads go on; space must be freed before writes can.
            E::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull
                        | std::io::ErrorKind::QuotaExceeded
                        | std::io::ErrorKind::FileTooLarge
                ) =>
            {
                StatusCode::INSUFFICIENT_STORAGE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal task failed: {error}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(error: bitcask::Error) -> StatusCode {
        ApiError::from(error).status
    }

    #[test]
    fn engine_failures_map_to_statuses_a_client_can_act_on() {
        let io = |raw| bitcask::Error::Io {
            path: "/data/0000000001.data".into(),
            source: std::io::Error::from_raw_os_error(raw),
        };
        assert_eq!(
            status_of(io(libc::ENOSPC)),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            status_of(io(libc::EDQUOT)),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(status_of(io(libc::EFBIG)), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(status_of(io(libc::EIO)), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status_of(bitcask::Error::Poisoned),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(bitcask::Error::ReadOnly),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let detail = ApiError::from(io(libc::ENOSPC)).detail;
        assert!(detail.contains("0000000001.data"), "{detail}");
    }
}
