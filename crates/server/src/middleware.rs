//! Layers every request passes: the request id, admission (foreign hosts,
//! cross-site writes, the bearer token), and the rewrite of every error
//! answer into the contract's `{"detail": ...}` JSON.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};

use crate::config::{AllowedHosts, Config};
use crate::error::{ApiError, detail_response};
use crate::state::AppState;

/// The request's id: the client's `x-request-id`, or a fresh UUID.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Takes `x-request-id` (or makes a UUID), keeps it in the request's
/// extensions for the logs, and answers it as `request-id`.
///
/// A tower layer written out, as [`AdmissionLayer`] is: `from_fn` would
/// box a future and clone the inner service per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RequestIdService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = WithRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_id(request.headers());
        request.extensions_mut().insert(RequestId(id.clone()));
        WithRequestId {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequestIdService`]: the inner answer with
    /// `request-id` added.
    pub struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F> std::future::Future for WithRequestId<F>
where
    F: std::future::Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.poll(cx));
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The header a client may name its request with.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The header every answer carries its request's id in (a constant: a
/// name given as a string is parsed on every use).
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The id of a request with `headers`: its `x-request-id` (if not empty and
/// at most 200 bytes), or a fresh UUID.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            // A UUID is always a valid header value; written on the stack
            // and copied once into the value.
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let text = fresh_request_id().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown"))
        })
}

/// A random (version 4) UUID for a request that brought no id of its own.
///
/// From a per-thread SplitMix64 stream seeded once from the operating
/// system, not `Uuid::new_v4` (a `getrandom` system call per request: 2.6%
/// of the server's time at 70k requests/s, docs/BENCHMARKS.md). A request
/// id correlates log lines; it is no secret, so a fast generator suffices.
fn fresh_request_id() -> uuid::Uuid {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    let next = || {
        STATE.with(|state| {
            let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let bytes = (u128::from(next()) << 64 | u128::from(next())).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Admits a request or answers it at once, before it takes a place under
/// the cap on requests in flight:
///
/// - a `Host` the server does not answer to: 400. A web page whose name an
///   attacker points at 127.0.0.1 (DNS rebinding) is same-origin with the
///   server in the browser's eyes, and could read and write everything;
/// - a state-changing request a browser sent from another site: 403. A page
///   can make a browser `POST` to a local server without any CORS
///   preflight; the browser says where a request comes from
///   (`Sec-Fetch-Site`, `Origin`), and clients that are not browsers send
///   neither (the same rule as Go's `http.CrossOriginProtection`);
/// - with a token configured, a request to any route but `/health` and the
///   console's files (`/ui`, which hold no data) without
///   `Authorization: Bearer <token>`: 401. The token is never logged.
///
/// A tower layer written out rather than `axum::middleware::from_fn`: the
/// checks are synchronous, and `from_fn` costs a boxed future and a clone
/// of the inner service per request (measured: about 7% of GET and PUT
/// throughput at 64 connections, docs/BENCHMARKS.md).
#[derive(Clone)]
pub struct AdmissionLayer {
    state: AppState,
}

impl AdmissionLayer {
    /// Admission under `state`'s settings.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`AdmissionLayer`].
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Admission<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match refusal(&self.state, &request) {
            Some(response) => Either::Left(ready(Ok(response))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

/// The answer refusing `request`, if it is refused (also asked by the
/// key-read lane, [`crate::lanes`], which bypasses this layer).
pub(crate) fn refusal<B>(state: &AppState, request: &axum::http::Request<B>) -> Option<Response> {
    let config = state.config();
    if let Some(host) = request_host(request)
        && !host_allowed(config, host)
    {
        return Some(
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "this server does not answer to the host {:?} (see --allowed-hosts)",
                    String::from_utf8_lossy(host)
                ),
            )
            .into_response(),
        );
    }
    if !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && let Some(why) = cross_site(request.headers())
    {
        return Some(ApiError::new(StatusCode::FORBIDDEN, why).into_response());
    }
    let token = config.auth_token.as_ref()?.expose();
    let path = request.uri().path();
    if path == "/health" || crate::routes::ui::is_ui_path(path) {
        return None;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if given.is_some_and(|g| token_matches(g, token.as_bytes())) {
        return None;
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
    Some(response)
}

/// The host name a request was sent to (without the port), if it names
/// one: the request target's authority (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(request: &axum::http::Request<B>) -> Option<&[u8]> {
    if let Some(host) = request.uri().host() {
        return Some(host.trim_matches(['[', ']']).as_bytes());
    }
    let value = request.headers().get(header::HOST)?;
    Some(host_of_authority(value.as_bytes()))
}

/// The host of `name`, `name:port`, `[v6]` or `[v6]:port`.
fn host_of_authority(authority: &[u8]) -> &[u8] {
    let authority = authority.trim_ascii();
    if let Some(rest) = authority.strip_prefix(b"[") {
        return rest.split(|&b| b == b']').next().unwrap_or_default();
    }
    match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if authority[colon + 1..].iter().all(u8::is_ascii_digit) => &authority[..colon],
        _ => authority,
    }
}

/// Whether the server answers to `host` (any case) under its settings.
fn host_allowed(config: &Config, host: &[u8]) -> bool {
    let ends_with = |host: &[u8], suffix: &[u8]| {
        host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    match &config.allowed_hosts {
        Some(AllowedHosts::Any) => true,
        None => {
            !config.host.is_loopback()
                // (The common case first, before parsing an address.)
                || host == b"127.0.0.1"
                || host.eq_ignore_ascii_case(b"localhost")
                || ends_with(host, b".localhost")
                || std::str::from_utf8(host)
                    .ok()
                    .and_then(|h| h.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback())
        }
        Some(AllowedHosts::Only(names)) => names.iter().any(|name| {
            host.eq_ignore_ascii_case(name.as_bytes())
                || name.strip_prefix('*').is_some_and(|domain| {
                    domain.starts_with('.') && ends_with(host, domain.as_bytes())
                })
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
            host_of_authority(a.as_bytes()).eq_ignore_ascii_case(host_of_authority(host.as_bytes()))
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

/// Constant-time comparison of secrets: the cluster crate's (one
/// implementation for the client, RESP and peer ports).
pub(crate) use bitcask_cluster::peer::token_matches;

/// Error answers made outside the handlers (unknown route, wrong method, a
/// body over the limit, a time-out, a malformed query) come as plain text;
/// this turns them into `{"detail": ...}` JSON like every other error.
/// Called by [`crate::metrics::track_layer`] on the answers
/// [`needs_json_rewrite`] picks (one layer instead of two), and only on
/// those.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
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

/// Whether `response` is an error answer that is not JSON yet.
pub fn needs_json_rewrite(response: &Response) -> bool {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    (status.is_client_error() || status.is_server_error()) && !is_json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_version_4_uuids_and_differ() {
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..10_000).map(|_| fresh_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
        assert!(
            ids.iter()
                .all(|id| id.get_variant() == uuid::Variant::RFC4122)
        );
    }

    #[test]
    fn host_names_are_taken_from_authorities() {
        assert_eq!(host_of_authority(b"Example.COM:8000"), b"Example.COM");
        assert_eq!(host_of_authority(b"[::1]:8000"), b"::1");
        assert_eq!(host_of_authority(b"[::1]"), b"::1");
        assert_eq!(host_of_authority(b"localhost"), b"localhost");
    }

    #[test]
    fn hosts_are_allowed_by_the_settings() {
        let config = |flags: &[&str]| {
            let argv = std::iter::once("bitcask-server").chain(flags.iter().copied());
            Config::from_args(argv).expect("config")
        };
        let loopback = config(&[]);
        for host in [
            "localhost",
            "LocalHost",
            "db.localhost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
        ] {
            assert!(host_allowed(&loopback, host.as_bytes()), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "xlocalhost",
        ] {
            assert!(!host_allowed(&loopback, host.as_bytes()), "{host}");
        }
        let everywhere = config(&["--host", "0.0.0.0"]);
        assert!(host_allowed(&everywhere, b"evil.example"));
        let listed = config(&["--allowed-hosts", "db.example.com,*.internal"]);
        assert!(host_allowed(&listed, b"DB.example.com"));
        assert!(host_allowed(&listed, b"a.b.internal"));
        assert!(!host_allowed(&listed, b"internal"));
        assert!(!host_allowed(&listed, b"localhost"));
        assert!(host_allowed(
            &config(&["--allowed-hosts", "*"]),
            b"anything"
        ));
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
