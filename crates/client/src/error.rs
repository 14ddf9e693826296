//! The client's error type: one variant per failure a caller handles
//! differently.

use std::time::Duration;

/// Shorthand for `Result<T, bitcask_client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with. A missing key is not an error:
/// lookups return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be made (refused, unreachable, name not
    /// resolved): the server is probably not running at `url`. Nothing was
    /// sent, so no write happened.
    #[error(
        "cannot connect to {url}: {reason} (is the server running? start it with `bitcask-server`)"
    )]
    Connect {
        /// The server's base URL.
        url: String,
        /// The innermost cause, for a person ("Connection refused (os error 111)").
        reason: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server did not answer within the time-out. A write may or may
    /// not have happened.
    #[error("no answer from {url} within {after:?}")]
    Timeout {
        /// The server's base URL.
        url: String,
        /// The time-out that passed.
        after: Duration,
    },

    /// The server wants a (different) bearer token (401).
    #[error("unauthorised: {detail}")]
    Unauthorized {
        /// The server's explanation.
        detail: String,
    },

    /// A conditional write's condition did not hold (412); nothing was written.
    #[error("precondition failed: {detail}")]
    PreconditionFailed {
        /// The server's explanation (it names the current version).
        detail: String,
    },

    /// The key, value or request is larger than the server accepts (413).
    #[error("too large: {detail}")]
    TooLarge {
        /// The server's explanation (it names the limit).
        detail: String,
    },

    /// The server cannot serve now: still opening its store, or overloaded
    /// (503), or rate limiting (429). Retried for requests that are safe to
    /// repeat before it is returned.
    #[error("server unavailable ({status}): {detail}")]
    Unavailable {
        /// 503 or 429.
        status: u16,
        /// The server's explanation.
        detail: String,
    },

    /// Any other error answer, with the server's `detail`.
    #[error("server answered {status}: {detail} (request id {request_id})")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        detail: String,
        /// The `x-request-id` sent, which the server logged.
        request_id: String,
    },

    /// A watch asked for history a merge has dropped (410): list the keys,
    /// then watch from the listing's seq, or from `compacted_seq`.
    #[error(
        "the change history asked for was compacted by a merge; the oldest seq still \
         available is {compacted_seq} (list the keys, then watch from the listing's seq)"
    )]
    Compacted {
        /// The oldest seq a watch may start from.
        compacted_seq: u64,
    },

    /// A value fetched as text is not UTF-8; fetch it as bytes.
    #[error("the value of {key:?} is not UTF-8 text; use get_bytes")]
    NotUtf8 {
        /// The key.
        key: String,
    },

    /// An argument the server cannot be asked: an empty key, or `.`/`..`
    /// (which URLs cannot carry), or a zero time-to-live.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },

    /// The server's answer was not what this client understands (a proxy
    /// in between, or a server of another version).
    #[error("unexpected answer from the server: {detail}")]
    InvalidResponse {
        /// What was unexpected.
        detail: String,
    },

    /// Another transport failure (connection reset mid-request, a bad
    /// base URL, ...).
    #[error("request failed: {source}")]
    Transport {
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::PreconditionFailed { .. } => Some(412),
            Self::TooLarge { .. } => Some(413),
            Self::Compacted { .. } => Some(410),
            Self::Unavailable { status, .. } | Self::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}
