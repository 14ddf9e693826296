//! `/kv/{key}`: the seed's get, put and delete of one key, exactly as its
//! clients expect them, plus raw binary values, versions (`ETag`,
//! `If-Match`, `If-None-Match: *`), per-request durability and
//! time-to-live. The listing, `GET /kv`, is [`super::listing`].

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::preconditions;
use crate::error::ApiError;
use crate::replicated::WriteRequest;
use crate::state::AppState;

/// The raw-bytes content type.
const OCTET_STREAM: &str = "application/octet-stream";

/// The key of `/kv/{key}`: the path after `/kv/`, percent-decoded into
/// bytes. Any bytes: `%FF` names a key that is not UTF-8 (as RESP clients
/// may write). Read from the URI rather than with `Path<String>` or
/// `RawPathParams`, which refuse a parameter that is not UTF-8 once
/// decoded; the route is at the root (never nested), so the path's
/// `/kv/` prefix is the route's.
pub struct KeyPath(pub Vec<u8>);

impl KeyPath {
    /// The key of a request path `/kv/<encoded>`, if the path is one
    /// (borrowed from the path when it has no `%` escapes).
    pub(crate) fn decode(path: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let encoded = path.strip_prefix("/kv/")?;
        Some(percent_encoding::percent_decode_str(encoded).into())
    }

    /// The key as text for messages and the seed's JSON `key` field
    /// (bytes that are not UTF-8 as U+FFFD).
    fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        Self::decode(parts.uri.path())
            .map(|key| Self(key.into_owned()))
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no key in the path"))
    }
}

/// Query parameters of a write.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Wait for the fsync of this write, whatever the server's sync policy.
    #[serde(default)]
    durable: bool,
    /// Time-to-live in seconds (puts only).
    #[param(minimum = 1, maximum = 4294967295_u64)]
    ttl: Option<u64>,
}

/// Query parameters of a delete.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Wait for the fsync of this delete, whatever the server's sync policy.
    #[serde(default)]
    durable: bool,
    /// Not a delete parameter: taken only to refuse it with a clear reason.
    #[param(ignore)]
    ttl: Option<String>,
}

/// Query parameters of a read.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// On a cluster node: `stale` answers from this node's own state at
    /// once (with its applied index in `X-Bitcask-Applied-Index`), even
    /// without a quorum; the default, `linearizable`, first makes sure the
    /// node holds every write committed before the read.
    consistency: Option<Consistency>,
}

/// How fresh a cluster read must be.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Every write committed before the read (the default).
    Linearizable,
    /// Whatever this node has applied.
    Stale,
}

impl ReadParams {
    fn stale(&self) -> bool {
        matches!(self.consistency, Some(Consistency::Stale))
    }
}

/// The header with the applied index a cluster read saw.
pub const APPLIED_INDEX_HEADER: &str = "x-bitcask-applied-index";

/// The header with a value's expiry, in Unix milliseconds (absent: never).
pub const EXPIRES_AT_HEADER: &str = "x-bitcask-expires-at";

/// The `ETag` and, if the value expires, `X-Bitcask-Expires-At` of `v`.
fn version_headers(headers: &mut HeaderMap, v: &bitcask::VersionedRef<'_>) {
    headers.insert(header::ETAG, etag(v.version));
    if let Some(at) = v.expires_at_ms {
        headers.insert(EXPIRES_AT_HEADER, HeaderValue::from(at));
    }
}

/// Adds the applied index a cluster read saw, if any.
pub(super) fn with_applied(mut response: Response, applied: Option<u64>) -> Response {
    if let Some(index) = applied {
        response
            .headers_mut()
            .insert(APPLIED_INDEX_HEADER, HeaderValue::from(index));
    }
    response
}

/// `GET /kv/{key}`: the seed's shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Found<'a> {
    /// The key asked for.
    key: &'a str,
    /// The value, or `null` when absent.
    value: Option<&'a str>,
    /// Whether the key is present.
    found: bool,
}

/// The seed's answer to a successful write.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Success {
    status: &'static str,
    message: String,
}

fn success(message: String) -> axum::Json<Success> {
    axum::Json(Success {
        status: "success",
        message,
    })
}

/// `"<version>"`, the `ETag` of a version.
fn etag(version: u64) -> HeaderValue {
    // Written on the stack (`format!` took 5% of a key read's CPU) and
    // copied once into the value. Digits and quotes are always a valid
    // header value.
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(version).as_bytes();
    let mut tag = [b'"'; 22];
    tag[1..=digits.len()].copy_from_slice(digits);
    HeaderValue::from_bytes(&tag[..digits.len() + 2]).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn wants_raw(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(OCTET_STREAM)))
}

/// The key's version now (for an `If-Match` list of several versions).
fn current_version(state: &AppState, key: &[u8]) -> Result<Option<u64>, ApiError> {
    Ok(state.store()?.get_versioned(key)?.map(|v| v.version))
}

/// Turns a failed condition into 412 with the current version.
fn precondition(error: bitcask::Error) -> ApiError {
    match error {
        bitcask::Error::ConditionFailed { current, .. } => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            match current {
                Some(v) => format!("precondition failed: the key is at version {v}"),
                None => "precondition failed: the key is absent".to_string(),
            },
        ),
        other => other.into(),
    }
}

/// `GET /kv/{key}`.
#[utoipa::path(
    get,
    path = "/kv/{key}",
    tag = "kv",
    params(
        ("key" = String, Path, description = "The key, percent-encoded (may contain `/`; `%FF` and the like name bytes that are not UTF-8)"),
        ReadParams,
        ("If-None-Match" = Option<String>, Header, nullable = false,
            description = "Entity tags (weak comparison) or `*`: 304 if the value is at one of them"),
    ),
    responses(
        (status = 200, description = "The value (`found: false` when absent), with its version as `ETag`; \
            with `Accept: application/octet-stream`, the raw bytes", body = Found,
            headers(("X-Bitcask-Expires-At" = u64, description = "When the value expires, in Unix milliseconds; absent if it never does"))),
        (status = 304, description = "If-None-Match named the current version: no body, the `ETag`"),
        (status = 503, description = "Cluster mode: no leader within the wait (linearizable reads)", body = crate::error::Detail),
        (status = 404, description = "Raw mode only: the key is absent", body = crate::error::Detail),
        (status = 406, description = "The value is not UTF-8: ask for application/octet-stream", body = crate::error::Detail),
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    key: KeyPath,
    Query(read): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let applied = state.before_read(read.stale()).await?;
    let response = get_value(&*state.store()?, &key.0, &headers)?.map(axum::body::Body::from);
    Ok(with_applied(response, applied))
}

/// The answer to a read of `key` in `store` with the request's `headers`,
/// its body whole (a cluster read waits for its barrier first, in
/// [`get_key`]). Shared by the handler and the key-read lane
/// ([`crate::lanes`]), so that both answer alike.
///
/// The value is written into the answer straight from the data file's map
/// (one copy); a get is a lookup in memory and that copy, cheap enough to
/// run on the async worker (see docs/ARCHITECTURE.md).
pub(crate) fn get_value(
    store: &bitcask::Bitcask,
    key: &[u8],
    headers: &HeaderMap,
) -> Result<axum::http::Response<Bytes>, ApiError> {
    let raw = wants_raw(headers);
    let text = || String::from_utf8_lossy(key);
    let found = store.get_versioned_with(key, |v| {
        let mut response = if preconditions::not_modified(headers, v.version) {
            let mut response = axum::http::Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else if raw {
            fixed(OCTET_STREAM, Bytes::copy_from_slice(v.value))
        } else {
            let Ok(value) = std::str::from_utf8(v.value) else {
                return Err(ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "the value of '{}' is not UTF-8 text; \
                         request it with Accept: {OCTET_STREAM}",
                        text()
                    ),
                ));
            };
            found_json(&text(), value)?
        };
        version_headers(response.headers_mut(), &v);
        Ok(response)
    })?;
    match found {
        Some(answer) => answer,
        None if raw => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Key '{}' not found", text()),
        )),
        None => json(
            &Found {
                key: &text(),
                value: None,
                found: false,
            },
            key.len(),
        ),
    }
}

/// A 200 answer of `content_type` with `body`.
fn fixed(content_type: &'static str, body: Bytes) -> axum::http::Response<Bytes> {
    let mut response = axum::http::Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 JSON answer, as `axum::Json` writes it, with room for `text`
/// bytes of strings in one allocation (serde_json grows it if escapes
/// take more).
fn json(body: &impl Serialize, text: usize) -> Result<axum::http::Response<Bytes>, ApiError> {
    let mut out = Vec::with_capacity(text + 48);
    serde_json::to_writer(&mut out, body).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot write the answer").with_cause(e)
    })?;
    Ok(fixed("application/json", Bytes::from(out)))
}

/// The answer for a found key, `{"key":…,"value":…,"found":true}`: the
/// bytes serde_json writes for [`Found`], written directly when neither
/// string needs an escape (the usual case), else by [`json`]. serde_json
/// checks each byte against its escape table in turn; the check here is
/// one pass the compiler vectorises, then two copies (the lane's own work
/// a request about 0.8 → 0.62 µs: docs/BENCHMARKS.md, "The tail and the
/// work a request does").
fn found_json(key: &str, value: &str) -> Result<axum::http::Response<Bytes>, ApiError> {
    const HEAD: &[u8] = br#"{"key":""#;
    const MIDDLE: &[u8] = br#"","value":""#;
    const TAIL: &[u8] = br#"","found":true}"#;
    if needs_escape(key) || needs_escape(value) {
        let found = Found {
            key,
            value: Some(value),
            found: true,
        };
        return json(&found, key.len() + value.len());
    }
    let mut out =
        Vec::with_capacity(HEAD.len() + key.len() + MIDDLE.len() + value.len() + TAIL.len());
    out.extend_from_slice(HEAD);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(MIDDLE);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(TAIL);
    Ok(fixed("application/json", Bytes::from(out)))
}

/// Whether JSON needs an escape for a byte of `text`: a quote, a backslash
/// or a control character below U+0020 (what serde_json escapes; it writes
/// everything else, U+007F and non-ASCII included, as it is). Written as
/// a fold without an early exit, so that it vectorises.
fn needs_escape(text: &str) -> bool {
    text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// The JSON body of a put: `{"value": "<string>"}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PutBody {
    value: String,
}

/// The value a put carries: raw bytes, or the `value` of a JSON body.
fn put_value(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>, ApiError> {
    match super::media_type(headers).as_deref() {
        Some(OCTET_STREAM) => Ok(body.to_vec()),
        None | Some("application/json") => {
            let parsed: PutBody = super::parse_json_body(&body, r#"{"value": "<string>"}"#)?;
            Ok(parsed.value.into_bytes())
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {other:?}; send application/json \
                 ({{\"value\": \"<string>\"}}) or {OCTET_STREAM} (raw bytes)"
            ),
        )),
    }
}

/// `PUT /kv/{key}`.
#[utoipa::path(
    put,
    path = "/kv/{key}",
    tag = "kv",
    params(
        ("key" = String, Path, description = "The key, percent-encoded (may contain `/`; `%FF` and the like name bytes that are not UTF-8)"),
        WriteParams,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#,
            description = "Write only at one of these versions (`\"42\"`, strong comparison: weak or other tags never match) or if present (`*`)"),
        ("If-None-Match" = Option<String>, Header, nullable = false, pattern = r"^\*$",
            description = "`*`: write only if absent"),
    ),
    request_body(
        content((PutBody = "application/json"), (Vec<u8> = "application/octet-stream")),
        description = "`{\"value\": \"<string>\"}`, or raw bytes"
    ),
    responses(
        (status = 200, description = "Stored; the new version is the `ETag`", body = Success),
        (status = 400, description = "Malformed JSON or parameters", body = crate::error::Detail),
        (status = 412, description = "If-Match / If-None-Match did not hold", body = crate::error::Detail),
        (status = 413, description = "Key or value over the limit", body = crate::error::Detail),
        (status = 415, description = "Unsupported content type", body = crate::error::Detail),
        (status = 422, description = "JSON of the wrong shape", body = crate::error::Detail),
    )
)]
pub async fn put_key(
    State(state): State<AppState>,
    key: KeyPath,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    crate::body::Body(body): crate::body::Body,
) -> Result<Response, ApiError> {
    let value = put_value(&headers, body)?;
    let ttl = params.ttl.map(super::ttl_from_secs).transpose()?;
    let request = WriteRequest::Put {
        key: key.0.clone(),
        value,
        ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        condition: preconditions::write_condition(&headers, || current_version(&state, &key.0))?
            .into(),
    };
    let version = state
        .apply(params.durable, request)
        .await?
        .map_err(precondition)?
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "a put wrote nothing"))?;
    let mut response = success(format!("Key '{}' stored successfully", key.text())).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    Ok(response)
}

/// `DELETE /kv/{key}`: deleting an absent key is not an error.
#[utoipa::path(
    delete,
    path = "/kv/{key}",
    tag = "kv",
    params(
        ("key" = String, Path, description = "The key, percent-encoded"),
        DeleteParams,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#,
            description = "Delete only at one of these versions (`\"42\"`, strong comparison) or if present (`*`)"),
    ),
    responses(
        (status = 200, description = "Deleted (or was absent); the delete's version is the `ETag`", body = Success),
        (status = 400, description = "A malformed If-Match, or an unknown parameter", body = crate::error::Detail),
        (status = 412, description = "If-Match did not hold", body = crate::error::Detail),
    )
)]
pub async fn delete_key(
    State(state): State<AppState>,
    key: KeyPath,
    Query(params): Query<DeleteParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if params.ttl.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ttl applies to puts, not deletes",
        ));
    }
    let request = WriteRequest::Delete {
        key: key.0.clone(),
        condition: preconditions::write_condition(&headers, || current_version(&state, &key.0))?
            .into(),
    };
    let deleted_at = state
        .apply(params.durable, request)
        .await?
        .map_err(precondition)?;
    let mut response =
        success(format!("Key '{}' deleted successfully", key.text())).into_response();
    if let Some(version) = deleted_at {
        response.headers_mut().insert(header::ETAG, etag(version));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The direct body is byte for byte serde_json's, escapes or not.
        #[test]
        fn a_found_body_is_what_serde_json_writes(
            key in prop_oneof![".*", "[a-z0-9/._-]{0,40}"],
            value in prop_oneof![".*", "[ -~]{0,300}", "[\\x00-\\x7f]{0,50}"],
        ) {
            let expected = serde_json::to_vec(&super::Found {
                key: &key,
                value: Some(&value),
                found: true,
            })
            .expect("serde_json");
            let written = super::found_json(&key, &value).expect("written");
            prop_assert_eq!(&written.headers()["content-type"], "application/json");
            prop_assert_eq!(written.into_body().to_vec(), expected);
        }
    }

    #[test]
    fn every_byte_serde_json_escapes_is_seen() {
        for byte in 0u8..=127 {
            let text = format!("a{}b", char::from(byte));
            let escaped = serde_json::to_string(&text).expect("json") != format!("\"{text}\"");
            assert_eq!(super::needs_escape(&text), escaped, "byte {byte:#x}");
        }
        assert!(!super::needs_escape("é\u{7f}\u{10ffff}"));
    }

    #[test]
    fn etags_are_quoted_versions() {
        for version in [0, 7, 42, 1_000_000, u64::MAX] {
            assert_eq!(super::etag(version), format!("\"{version}\"").as_str());
        }
    }
}
