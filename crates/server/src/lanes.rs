//! The service each HTTP connection runs: a plain read of one key answered
//! at once (the key-read lane), every other request by the router.
//!
//! A `GET /kv/{key}` through the router passes eight layers (request id,
//! trace span, metrics, admission, cap on requests in flight, load shed,
//! time-out, body limit), the route's boxed service and the handler's
//! extractors; together they cost more CPU than the read itself and the
//! socket's system calls (docs/BENCHMARKS.md, "HTTP against the stack's own
//! limit"). The lane answers the same request with the same steps written
//! out in order, none of them boxed:
//!
//! - the request id, the span and its log lines: the same helpers as the
//!   router's layers ([`crate::middleware::request_id`],
//!   [`crate::app::request_span`]);
//! - admission (host, bearer token): [`crate::middleware::refusal`], the
//!   admission layer's own check;
//! - the answer: [`crate::routes::kv::get_value`], the handler's own code;
//! - the metrics: the same series, and the in-flight gauge.
//!
//! It leaves out the cap on requests in flight and the time-out: both
//! exist for requests that wait (for a body, an fsync, a cluster), and this
//! one cannot: it is answered inside the call, before the connection reads
//! anything more, as the router's handler would answer it without ever
//! yielding. A read that must wait for the disk (a record not in the page
//! cache) blocks the worker for the read, exactly as it does in the
//! handler; the time-out could not cut it there either.
//!
//! Only the plainest reads take the lane: `GET`, a path under `/kv/` with a
//! key, no query string, the store open, a single node (a cluster read
//! waits for its read barrier) and no rate limit (which keys on the
//! client's address, in the router). Everything else goes to the router,
//! unchanged. The test below sends the same requests through both and
//! compares the answers and the metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::http::{Method, Request, Response};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{Either, Map, Ready, ready};
use http_body_util::Full;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::routes::kv::{KeyPath, get_value};
use crate::state::AppState;

/// The body of an answer: the key-read lane's bytes, or the router's body
/// (boxed; the lane's needs no box).
pub type LaneBody = http_body_util::Either<Full<Bytes>, axum::body::Body>;

/// An answer of [`Lanes`].
pub type Answer = Response<LaneBody>;

/// The router's answer as one of [`Lanes`].
type FromRouter = fn(Result<axum::response::Response, Infallible>) -> Result<Answer, Infallible>;

/// The service of one HTTP connection (see the module's documentation).
#[derive(Clone)]
pub struct Lanes {
    router: axum::Router,
    /// The key-read lane's state; `None` turns the lane off (the cluster's
    /// peer port, a rate limit, a cluster node).
    key_reads: Option<AppState>,
    /// The client's address, for the router's rate limit.
    peer: SocketAddr,
}

impl Lanes {
    /// The service of a connection from `peer`, serving `router` and, if
    /// `key_reads` is given and its settings allow, the key-read lane.
    pub fn new(router: axum::Router, key_reads: Option<AppState>, peer: SocketAddr) -> Self {
        let key_reads =
            key_reads.filter(|state| !state.is_clustered() && state.config().rate_limit.is_none());
        Self {
            router,
            key_reads,
            peer,
        }
    }
}

impl<B> hyper::service::Service<Request<B>> for Lanes
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Answer, Infallible>>,
        Map<Oneshot<axum::Router, Request<B>>, FromRouter>,
    >;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        if let Some(state) = &self.key_reads
            && let Some(answer) = answer_key_read(state, &request)
        {
            return Either::Left(ready(Ok(answer)));
        }
        // The rate limit keys on the client's address.
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let from_router: FromRouter = |answer| answer.map(routed);
        Either::Right(self.router.clone().oneshot(request).map(from_router))
    }
}

/// An answer of the router as one of the lanes'.
fn routed(response: axum::response::Response) -> Answer {
    response.map(http_body_util::Either::Right)
}

/// The answer to `request` if it is a plain read of one key (see the
/// module's documentation); `None` leaves it to the router.
pub fn answer_key_read<B>(state: &AppState, request: &Request<B>) -> Option<Answer> {
    if request.method() != Method::GET || request.uri().query().is_some() {
        return None;
    }
    let key = KeyPath::decode(request.uri().path()).filter(|key| !key.is_empty())?;
    // While the store opens, the router says so (503, `Retry-After`).
    let store = state.local_store()?;
    let started = Instant::now();
    let id = crate::middleware::request_id(request.headers());
    let span = crate::app::request_span(Some(&id), request);
    let _entered = span.enter();
    crate::app::log_request();
    let metrics = state.metrics();
    let _in_flight = metrics.http_request_started();
    let mut answer = match crate::middleware::refusal(state, request) {
        Some(refused) => routed(refused),
        None => match get_value(store, &key, request.headers()) {
            Ok(fixed) => fixed.map(|body| http_body_util::Either::Left(Full::new(body))),
            Err(error) => routed(error.into_response()),
        },
    };
    let status = answer.status();
    let latency = started.elapsed();
    metrics.observe_key_read(status, latency.as_secs_f64());
    if status.is_server_error() {
        crate::app::log_failure(&format_args!("Status code: {status}"), latency);
    }
    crate::app::log_answer(status, latency);
    // (No `Content-Length`: hyper writes it from the body, as it does for
    // the router's answers, where axum set the header.)
    answer
        .headers_mut()
        .insert(crate::middleware::REQUEST_ID, id);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;

    /// A state over `store`, with extra server flags.
    fn state(store: &Arc<bitcask::Bitcask>, flags: &[&str]) -> AppState {
        let argv = std::iter::once("bitcask-server").chain(flags.iter().copied());
        let config = crate::config::Config::from_args(argv).expect("config");
        let state = AppState::new(config).expect("state");
        state.set_store(Arc::clone(store));
        state
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::get(path).header("host", "127.0.0.1:8000");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    /// An answer as the client sees it: status, headers (the request id
    /// apart, checked on its own) and body. `Content-Length` is what hyper
    /// writes: none on a 304, else the header if the answer has one, else
    /// the body's exact size (the wire test in tests/contract.rs checks
    /// the bytes themselves).
    async fn seen<B>(response: Response<B>) -> (StatusCode, Vec<(String, Vec<u8>)>, Vec<u8>)
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        use http_body_util::BodyExt;
        let status = response.status();
        let mut headers: Vec<(String, Vec<u8>)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "request-id" | "content-length"))
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let length = response
            .headers()
            .get("content-length")
            .map(|v| v.as_bytes().to_vec())
            .or_else(|| {
                let exact = http_body::Body::size_hint(response.body()).exact()?;
                Some(exact.to_string().into_bytes())
            })
            .filter(|_| status != StatusCode::NOT_MODIFIED);
        headers.extend(length.map(|l| ("content-length".to_string(), l)));
        headers.sort();
        assert!(response.headers().contains_key("request-id"));
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, body.to_vec())
    }

    /// The lines of the request counter and the latency counts.
    fn request_series(state: &AppState) -> Vec<String> {
        state
            .metrics()
            .render(None)
            .lines()
            .filter(|l| {
                l.starts_with("bitcask_http_requests_total{")
                    || l.starts_with("bitcask_http_request_duration_seconds_count{")
            })
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn the_lane_answers_reads_as_the_router_does() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(bitcask::Bitcask::open(dir.path()).expect("open"));
        store.put(b"text", b"hello").expect("put");
        store.put(b"dir/with/slashes", b"nested").expect("put");
        store.put(b"\xff\xfe", b"binary key").expect("put");
        store.put(b"raw", b"\x00\xff not utf-8").expect("put");
        store
            .put_with(
                b"expiring",
                b"soon",
                bitcask::WriteOptions::new().ttl(std::time::Duration::from_secs(3600)),
            )
            .expect("put");
        let version = store
            .get_versioned(b"text")
            .expect("get")
            .expect("some")
            .version;
        let etag = format!("\"{version}\"");
        let weak = format!("W/\"{version}\"");
        for flags in [
            &[][..],
            &["--auth-token", "s3cret-token-of-16+"][..],
            &["--allowed-hosts", "db.example"][..],
        ] {
            let (lane, routed) = (state(&store, flags), state(&store, flags));
            let router = crate::app::router(routed.clone());
            let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
                ("/kv/text", vec![]),
                ("/kv/absent", vec![]),
                ("/kv/dir/with/slashes", vec![]),
                ("/kv/dir%2Fwith%2Fslashes", vec![]),
                ("/kv/%FF%FE", vec![]),
                ("/kv/%FF%FE", vec![("accept", "application/octet-stream")]),
                ("/kv/raw", vec![]),
                ("/kv/raw", vec![("accept", "application/octet-stream")]),
                (
                    "/kv/absent",
                    vec![("accept", "text/plain, application/octet-stream")],
                ),
                ("/kv/expiring", vec![]),
                ("/kv/text", vec![("if-none-match", etag.as_str())]),
                ("/kv/text", vec![("if-none-match", weak.as_str())]),
                ("/kv/text", vec![("if-none-match", "\"1\", *")]),
                ("/kv/text", vec![("if-none-match", "\"999999\"")]),
                ("/kv/text", vec![("if-none-match", "not a tag")]),
                (
                    "/kv/text",
                    vec![("authorization", "Bearer s3cret-token-of-16+")],
                ),
                ("/kv/text", vec![("authorization", "Bearer wrong")]),
                ("/kv/text", vec![("host", "evil.example")]),
                ("/kv/text", vec![("origin", "http://evil.example")]),
            ];
            for (path, headers) in &cases {
                let what = format!("{flags:?} {path} {headers:?}");
                let direct = answer_key_read(&lane, &request(path, headers))
                    .unwrap_or_else(|| panic!("the lane declined {what}"));
                let routed = router
                    .clone()
                    .oneshot(request(path, headers))
                    .await
                    .expect("answer");
                assert_eq!(seen(direct).await, seen(routed).await, "{what}");
            }
            // A request's own id comes back from both.
            let given = [("x-request-id", "abc-123")];
            let direct = answer_key_read(&lane, &request("/kv/text", &given)).expect("lane");
            assert_eq!(direct.headers()["request-id"], "abc-123");
            let series = request_series(&lane);
            assert!(!series.is_empty());
            assert!(
                series
                    .iter()
                    .all(|l| l.contains("route=\"/kv/{*key}\"") && l.contains("method=\"GET\"")),
                "{series:?}"
            );
            // The extra request with an id counts as a 200 (or a refusal).
            let routed_extra = router
                .clone()
                .oneshot(request("/kv/text", &given))
                .await
                .expect("answer");
            assert_eq!(routed_extra.headers()["request-id"], "abc-123");
            assert_eq!(series, request_series(&routed), "{flags:?}");
            assert_eq!(lane.metrics().http_in_flight(), 0);
        }
    }

    #[tokio::test]
    async fn other_requests_are_left_to_the_router() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(bitcask::Bitcask::open(dir.path()).expect("open"));
        let state = state(&store, &[]);
        for (method, path) in [
            (Method::PUT, "/kv/k"),
            (Method::DELETE, "/kv/k"),
            (Method::HEAD, "/kv/k"),
            (Method::GET, "/kv/k?consistency=stale"),
            (Method::GET, "/kv/"),
            (Method::GET, "/kv"),
            (Method::GET, "/kvx/k"),
            (Method::GET, "/health"),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(Body::empty())
                .expect("request");
            assert!(
                answer_key_read(&state, &request).is_none(),
                "{method} {path}"
            );
        }
        assert!(answer_key_read(&state, &request("/kv/k", &[])).is_some());
        // Not while the store opens, nor under a rate limit or in a cluster.
        let opening =
            AppState::new(crate::config::Config::from_args(["bitcask-server"]).expect("config"))
                .expect("state");
        assert!(answer_key_read(&opening, &request("/kv/k", &[])).is_none());
        let router = crate::app::router(state.clone());
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert!(
            Lanes::new(router.clone(), Some(state.clone()), peer)
                .key_reads
                .is_some()
        );
        assert!(Lanes::new(router.clone(), None, peer).key_reads.is_none());
        let limited = self::state(&store, &["--rate-limit", "100"]);
        assert!(Lanes::new(router, Some(limited), peer).key_reads.is_none());
    }
}
