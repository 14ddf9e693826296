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
    /// The whole failure, for the log only (it may name files).
    cause: Option<String>,
    /// Seconds to send as `Retry-After`, if any.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// The same answer, telling the client to retry after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The same answer, with the whole failure behind it for the log line
    /// (the client sees only `detail`).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
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
            // One line per failure, with the file it concerns if any.
            match &self.cause {
                Some(cause) => tracing::error!(status = self.status.as_u16(),
                    detail = %self.detail, %cause, "request failed"),
                None => tracing::error!(status = self.status.as_u16(),
                    detail = %self.detail, "request failed"),
            }
        }
        let mut response = detail_response(self.status, &self.detail);
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

impl From<bitcask_cluster::node::ClusterError> for ApiError {
    /// No leader, or no commit within the wait: 503 with `Retry-After` (a
    /// time-out may or may not have applied the write, as any time-out);
    /// a refused change: 409; another membership change under way: 503
    /// with `Retry-After`; a failed node: 500.
    fn from(error: bitcask_cluster::node::ClusterError) -> Self {
        use bitcask_cluster::node::ClusterError as E;
        match error {
            E::NoLeader | E::NotLeader => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cluster has no leader (no quorum, or an election is under way); retry shortly",
            )
            .retry_after(1),
            E::Timeout => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cluster did not answer in time; a write may or may not have been applied",
            )
            .retry_after(1),
            E::Refused(why) => Self::new(StatusCode::CONFLICT, why),
            busy @ E::Busy(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, busy.to_string()).retry_after(1)
            }
            E::Fatal(why) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the cluster node failed")
                    .with_cause(why)
            }
        }
    }
}

/// What a client is told of an engine failure: all of it but the paths of
/// files, which tell how the server's disk is laid out and are logged
/// instead (as an [`ApiError`]'s cause, or by [`log_if_it_names_a_file`]).
pub fn public_message(error: &bitcask::Error) -> String {
    use bitcask::Error as E;
    match error {
        E::Io { source, .. } => format!("I/O error in the store: {source}"),
        E::Corruption { offset, kind, .. } => format!(
            "corrupt data in the store (record at offset {offset}): {kind}; \
             the server log names the file"
        ),
        E::UnsupportedVersion {
            found, supported, ..
        } => format!("a data file has format version {found}; this build reads {supported}"),
        E::Locked { .. } => "the data directory is locked by another writer".to_string(),
        other => other.to_string(),
    }
}

/// Whether an engine failure names a file (what [`public_message`] leaves
/// out).
fn names_a_file(error: &bitcask::Error) -> bool {
    use bitcask::Error as E;
    matches!(
        error,
        E::Io { .. } | E::Corruption { .. } | E::UnsupportedVersion { .. } | E::Locked { .. }
    )
}

/// Logs, at error level, an engine failure that names a file, for answers
/// that are not an [`ApiError`] (RESP's): the log is where the path goes.
pub fn log_if_it_names_a_file(error: &bitcask::Error) {
    if names_a_file(error) {
        tracing::error!(%error, "store error");
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
            // Like a full disk: the write did not happen, reads go on.
            E::KeyDirectoryFull => StatusCode::INSUFFICIENT_STORAGE,
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
        let answer = Self::new(status, public_message(&error));
        if names_a_file(&error) {
            answer.with_cause(error)
        } else {
            answer
        }
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
        assert_eq!(
            status_of(bitcask::Error::KeyDirectoryFull),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(status_of(io(libc::EIO)), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status_of(bitcask::Error::Poisoned),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(bitcask::Error::ReadOnly),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // The client hears what happened, not where: the path is logged.
        let detail = ApiError::from(io(libc::ENOSPC)).detail;
        assert!(!detail.contains("0000000001.data"), "{detail}");
        assert!(detail.contains("I/O error"), "{detail}");
        // ... and the log line (the cause) says where.
        let cause = ApiError::from(io(libc::ENOSPC)).cause.unwrap_or_default();
        assert!(cause.contains("0000000001.data"), "{cause}");
        let corrupt = ApiError::from(bitcask::Error::Corruption {
            path: "/srv/secret/0000000002.data".into(),
            offset: 42,
            kind: bitcask::CorruptionKind::BadChecksum,
        })
        .detail;
        assert!(!corrupt.contains("/srv/secret"), "{corrupt}");
        assert!(corrupt.contains("offset 42"), "{corrupt}");
    }
}
