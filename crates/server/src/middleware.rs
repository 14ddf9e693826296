//! Layers every request passes: the request id, the guard against foreign
//! hosts and cross-site writes, the bearer token, the request body read
//! within a size and a minimum rate, and the rewrite of every error answer
//! into the contract's `{"detail": ...}` JSON.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::config::{AllowedHosts, Config};
use crate::error::{ApiError, detail_response};
use crate::state::AppState;

/// How long a request body may take before the minimum rate applies.
pub const BODY_GRACE: Duration = Duration::from_secs(5);

/// The request's id: the client's `x-request-id`, or a fresh UUID.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Takes `x-request-id` (or makes a UUID), keeps it in the request's
/// extensions for the logs, and answers it as `request-id`.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            // A UUID is always a valid header value.
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"))
        });
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert("request-id", id);
    response
}

/// Refuses, before anything else runs:
///
/// - a `Host` the server does not answer to (400): a web page whose name an
///   attacker points at 127.0.0.1 (DNS rebinding) is same-origin with the
///   server in the browser's eyes, and could read and write everything;
/// - a write sent by a browser from another site (403): a page can make a
///   browser `POST` to a local server without any CORS preflight. The
///   browser says where a request comes from (`Sec-Fetch-Site`, `Origin`);
///   clients that are not browsers send neither and are not affected (the
///   same rule as Go's `http.CrossOriginProtection`).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    if let Some(host) = request_host(&request)
        && !host_allowed(config, &host)
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("this server does not answer to the host {host:?} (see --allowed-hosts)"),
        )
        .into_response();
    }
    if !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && let Some(why) = cross_site(request.headers())
    {
        return ApiError::new(StatusCode::FORBIDDEN, why).into_response();
    }
    next.run(request).await
}

/// The host name a request was sent to (lower case, without the port), if
/// it names one: HTTP/2's authority or HTTP/1.1's `Host`.
fn request_host(request: &Request) -> Option<String> {
    if let Some(host) = request.uri().host() {
        return Some(host.trim_matches(['[', ']']).to_ascii_lowercase());
    }
    let value = request.headers().get(header::HOST)?.to_str().ok()?;
    Some(host_of_authority(value))
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`, as a lower-case host name.
fn host_of_authority(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.to_ascii_lowercase()
}

/// Whether the server answers to `host` under its settings.
fn host_allowed(config: &Config, host: &str) -> bool {
    let is_loopback_name = |host: &str| {
        host == "localhost"
            || host.ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    match &config.allowed_hosts {
        AllowedHosts::Any => true,
        AllowedHosts::Default => !config.host.is_loopback() || is_loopback_name(host),
        AllowedHosts::Only(names) => names.iter().any(|name| {
            name == host
                || name
                    .strip_prefix("*.")
                    .is_some_and(|domain| host.ends_with(&format!(".{domain}")))
        }),
    }
}

/// Why a state-changing request is refused as cross-site, if it is.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            other => Some(format!(
                "cross-site request refused (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(other)
            )),
        };
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("null");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let default_port = if origin.starts_with("https://") {
        443
    } else {
        80
    };
    let same = origin
        .split_once("://")
        .map(|(_, a)| a.trim_end_matches('/'))
        .is_some_and(|a| {
            host_of_authority(a) == host_of_authority(host)
                && port_of(a, default_port) == port_of(host, default_port)
        });
    if same {
        None
    } else {
        Some(format!(
            "cross-origin request refused (Origin {origin:?} is not this server)"
        ))
    }
}

/// The port of an authority, or `default` when it names none.
fn port_of(authority: &str, default: u16) -> u16 {
    let port = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").map(|(_, p)| p),
        None => authority.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(default)
}

/// Reads a request's body before the handler runs: at most `limit` bytes
/// (413 beyond), and no slower than `min_rate` bytes a second once
/// [`BODY_GRACE`] has passed (408: a body trickling in a byte at a time
/// would otherwise hold a request slot for the whole request time-out).
pub async fn read_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    use axum::body::HttpBody as _;
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let limit = crate::app::body_limit(state.config());
    let min_rate = state.config().body_min_rate;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than the server accepts (see max_value_size)",
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, mut body) = request.into_parts();
    let started = Instant::now();
    let mut bytes = bytes::BytesMut::with_capacity(
        declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit)),
    );
    loop {
        let frame = if min_rate == 0 {
            body.frame().await
        } else {
            // Allowed: the grace, plus the time `min_rate` takes for what
            // has arrived, so the deadline moves on as bytes come.
            let earned = Duration::from_secs_f64(bytes.len() as f64 / min_rate as f64);
            let deadline = started + BODY_GRACE + earned;
            match tokio::time::timeout_at(deadline.into(), body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    return ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body arrived too slowly (under {min_rate} bytes a \
                             second after {} s); cut off",
                            BODY_GRACE.as_secs()
                        ),
                    )
                    .into_response();
                }
            }
        };
        match frame {
            None => break,
            Some(Err(error)) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {error}"),
                )
                .into_response();
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > limit {
                        return too_large();
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes.freeze())))
        .await
}

/// With a token configured, every route but `/health` needs
/// `Authorization: Bearer <token>`; 401 otherwise. The token is never logged.
pub async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = state.config().auth_token.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| token_matches(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    state.metrics().auth_failed(crate::metrics::Listener::Http);
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token; send Authorization: Bearer <token>",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether `given` is the token `expected`, in a time that tells nothing
/// about either: both are hashed (SHA-256) and the fixed-size digests
/// compared without an early exit, so neither the position of the first
/// wrong byte nor a wrong length shows in the time taken.
pub(crate) fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Error answers made outside the handlers (unknown route, wrong method, a
/// body over the limit, a time-out, a malformed query) come as plain text;
/// this turns them into `{"detail": ...}` JSON like every other error.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Such bodies are short messages from axum or tower.
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed".to_string(),
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was cancelled".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the server accepts (see max_value_size)".to_string()
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
    };
    let mut rebuilt = detail_response(status, &detail);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_taken_from_authorities() {
        assert_eq!(host_of_authority("Example.COM:8000"), "example.com");
        assert_eq!(host_of_authority("[::1]:8000"), "::1");
        assert_eq!(host_of_authority("[::1]"), "::1");
        assert_eq!(host_of_authority("localhost"), "localhost");
    }

    #[test]
    fn writes_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(cross_site(&headers(&[("host", "127.0.0.1:8000")])).is_none());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        let same = [
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ];
        assert!(cross_site(&headers(&same)).is_none());
        let default_port = [("host", "localhost"), ("origin", "http://localhost")];
        assert!(cross_site(&headers(&default_port)).is_none());
        let other_port = [
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:9000"),
        ];
        assert!(cross_site(&headers(&other_port)).is_some());
        let other = [
            ("host", "127.0.0.1:8000"),
            ("origin", "http://evil.example"),
        ];
        assert!(cross_site(&headers(&other)).is_some());
        assert!(cross_site(&headers(&[("host", "x"), ("origin", "null")])).is_some());
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cret", b"s3cres"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"", b"s3cret"));
    }
}
