//! `/metrics` in the Prometheus text format: requests and their latency by
//! route, method and status; connections refused and closed by the server,
//! and failed authentications; the store's keys, bytes, files and merges.
//!
//! Every label value comes from a closed set (route patterns, known
//! methods, enums here), never from what a client sent: made-up methods
//! once created a series each and bloated every scrape.
//!
//! Each server owns its registry (no process-global state), so several
//! servers in one process (the tests) count separately.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

/// Latency buckets in seconds: 50 µs to 5 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// A listener, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The HTTP API.
    Http,
    /// The Redis-protocol listener.
    Resp,
    /// The cluster's peer listener.
    Peer,
}

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Resp => "resp",
            Self::Peer => "peer",
        }
    }
}

/// Why the server closed a RESP connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// A reply would have taken the connection over its output limit.
    OutputLimit,
    /// A token is set and the connection did not authenticate in time.
    AuthTimeout,
    /// Nothing was sent for the configured idle time-out.
    IdleTimeout,
    /// Too many failed `AUTH` attempts.
    AuthFailures,
    /// The connection sent an HTTP request (`POST`, `Host:`).
    CrossProtocol,
    /// A malformed or oversized command.
    ProtocolError,
    /// The client stopped reading its replies.
    WriteStalled,
}

impl Disconnect {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::OutputLimit => "output_limit",
            Self::AuthTimeout => "auth_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::AuthFailures => "auth_failures",
            Self::CrossProtocol => "cross_protocol",
            Self::ProtocolError => "protocol_error",
            Self::WriteStalled => "write_stalled",
        }
    }
}

/// The server's request and connection metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    refused: IntCounterVec,
    disconnects: IntCounterVec,
    auth_failures: IntCounterVec,
    resp_commands: crate::resp::counts::CommandCounts,
    /// HTTP requests being answered now.
    http_in_flight: AtomicUsize,
    /// RESP connections open now.
    resp_connections: AtomicUsize,
    /// HTTP connections open now.
    http_connections: AtomicUsize,
    /// The series of the commonest answer, resolved on first use.
    key_read: std::sync::OnceLock<KeyReadSeries>,
}

/// The series a found key's read (`GET /kv/{key}`, 200) counts in, held
/// so that the key-read lane does not look its labels up (hash and lock)
/// per request.
struct KeyReadSeries {
    answered: prometheus::IntCounter,
    latency: prometheus::Histogram,
}

/// Counts one in a gauge while it lives (a request in flight, an open
/// connection): dropped on every path out, a cancelled one too.
#[derive(Debug)]
pub struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Fresh counters in a registry of their own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("bitcask_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "bitcask_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "bitcask_connections_refused_total",
                "Connections refused because the listener had as many as it allows",
            ),
            &["listener"],
        )?;
        let disconnects = IntCounterVec::new(
            Opts::new(
                "bitcask_resp_disconnects_total",
                "RESP connections the server closed, by reason",
            ),
            &["reason"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "bitcask_auth_failures_total",
                "Requests or AUTH commands with a missing or wrong token",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(disconnects.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            refused,
            disconnects,
            auth_failures,
            resp_commands: crate::resp::counts::CommandCounts::default(),
            http_in_flight: AtomicUsize::new(0),
            resp_connections: AtomicUsize::new(0),
            http_connections: AtomicUsize::new(0),
            key_read: std::sync::OnceLock::new(),
        })
    }

    /// Counts a connection refused at the connection limit.
    pub fn connection_refused(&self, listener: Listener) {
        self.refused.with_label_values(&[listener.label()]).inc();
    }

    /// Counts a RESP connection the server closed.
    pub fn disconnected(&self, reason: Disconnect) {
        self.disconnects.with_label_values(&[reason.label()]).inc();
    }

    /// Counts a failed authentication.
    pub fn auth_failed(&self, listener: Listener) {
        self.auth_failures
            .with_label_values(&[listener.label()])
            .inc();
    }

    /// HTTP requests being answered now.
    pub fn http_in_flight(&self) -> usize {
        self.http_in_flight.load(Ordering::Relaxed)
    }

    /// RESP connections open now.
    pub fn resp_connections(&self) -> usize {
        self.resp_connections.load(Ordering::Relaxed)
    }

    /// Counts a RESP connection as open until the guard is dropped.
    pub fn resp_connection_opened(&self) -> Counted<'_> {
        Counted::new(&self.resp_connections)
    }

    /// HTTP connections open now.
    pub fn http_connections(&self) -> usize {
        self.http_connections.load(Ordering::Relaxed)
    }

    /// Counts an HTTP connection as open until the guard is dropped.
    pub fn http_connection_opened(&self) -> Counted<'_> {
        Counted::new(&self.http_connections)
    }

    /// RESP commands run, by command.
    pub fn resp_commands(&self) -> &crate::resp::counts::CommandCounts {
        &self.resp_commands
    }

    /// Counts an HTTP request in flight until the guard is dropped.
    pub(crate) fn http_request_started(&self) -> Counted<'_> {
        Counted::new(&self.http_in_flight)
    }

    /// Counts an answer to `GET /kv/{key}` given by the key-read lane
    /// ([`crate::lanes`]), in the series the router's would count in.
    pub(crate) fn observe_key_read(&self, status: axum::http::StatusCode, seconds: f64) {
        if status != axum::http::StatusCode::OK {
            return self.observe(crate::app::KEY_ROUTE, "GET", status, seconds);
        }
        let series = self.key_read.get_or_init(|| KeyReadSeries {
            answered: self
                .requests
                .with_label_values(&[crate::app::KEY_ROUTE, "GET", "200"]),
            latency: self
                .latency
                .with_label_values(&[crate::app::KEY_ROUTE, "GET"]),
        });
        series.answered.inc();
        series.latency.observe(seconds);
    }

    fn observe(&self, route: &str, method: &str, status: axum::http::StatusCode, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The text exposition: request metrics, then the store's gauges.
    pub(crate) fn render(&self, store: Option<&bitcask::Bitcask>) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a metric family that does
        // not encode is left out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8_lossy(&out).into_owned();
        text.push_str(
            "# HELP bitcask_resp_commands_total RESP commands run, by command \
             (`unknown`: a name no command has)\n\
             # TYPE bitcask_resp_commands_total counter\n",
        );
        for (command, count) in self.resp_commands.by_command() {
            text.push_str(&format!(
                "bitcask_resp_commands_total{{command=\"{command}\"}} {count}\n"
            ));
        }
        let gauge = sample;
        gauge(
            &mut text,
            "bitcask_http_requests_in_flight",
            "HTTP requests being answered",
            "gauge",
            self.http_in_flight() as u64,
        );
        gauge(
            &mut text,
            "bitcask_http_connections",
            "HTTP connections open",
            "gauge",
            self.http_connections() as u64,
        );
        gauge(
            &mut text,
            "bitcask_resp_connections",
            "RESP connections open",
            "gauge",
            self.resp_connections() as u64,
        );
        gauge(
            &mut text,
            "bitcask_store_open",
            "1 once the store is open, 0 while it is opening",
            "gauge",
            u64::from(store.is_some()),
        );
        if let Some(store) = store {
            let s = store.stats();
            gauge(&mut text, "bitcask_keys", "Live keys", "gauge", s.keys);
            gauge(
                &mut text,
                "bitcask_data_files",
                "Data files",
                "gauge",
                s.data_files,
            );
            gauge(
                &mut text,
                "bitcask_bytes_total",
                "Bytes in data files",
                "gauge",
                s.total_bytes,
            );
            gauge(
                &mut text,
                "bitcask_live_bytes",
                "Bytes of live records",
                "gauge",
                s.live_bytes,
            );
            gauge(
                &mut text,
                "bitcask_dead_bytes",
                "Bytes a merge could reclaim",
                "gauge",
                s.dead_bytes,
            );
            gauge(
                &mut text,
                "bitcask_merge_running",
                "1 while a merge runs",
                "gauge",
                u64::from(s.merge_running),
            );
            gauge(
                &mut text,
                "bitcask_merges_completed_total",
                "Merges completed since the store opened",
                "counter",
                s.merges_completed,
            );
            gauge(
                &mut text,
                "bitcask_damaged_records",
                "Damaged records met since the store opened (by reads, merges and scrubs)",
                "gauge",
                s.damaged_records,
            );
            gauge(
                &mut text,
                "bitcask_damaged_reads_total",
                "Reads that failed on a damaged record since the store opened",
                "counter",
                s.damaged_reads,
            );
            gauge(
                &mut text,
                "bitcask_scrubs_completed_total",
                "Scrub passes completed since the store opened",
                "counter",
                s.scrubs_completed,
            );
            gauge(
                &mut text,
                "bitcask_fsyncs_total",
                "fsyncs issued by group commit since the store opened",
                "counter",
                s.fsyncs,
            );
        }
        text
    }
}

/// The raft gauges of a cluster node.
fn cluster_metrics(node: &bitcask_cluster::node::Node) -> String {
    use std::fmt::Write;
    let status = node.status();
    let counters = node.counters();
    let mut text = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, value: u64| {
        sample(&mut text, name, help, kind, value);
    };
    metric(
        "bitcask_raft_term",
        "The current term",
        "gauge",
        status.term,
    );
    metric(
        "bitcask_raft_is_leader",
        "1 on the leader",
        "gauge",
        u64::from(status.role == "leader"),
    );
    metric(
        "bitcask_raft_leader_changes_total",
        "Times the known leader changed since the node started",
        "counter",
        counters.leader_changes,
    );
    metric(
        "bitcask_raft_last_log_index",
        "Index of the last log entry",
        "gauge",
        status.last_log_index.unwrap_or(0),
    );
    metric(
        "bitcask_raft_commit_index",
        "Index of the last committed entry",
        "gauge",
        status.committed.unwrap_or(0),
    );
    metric(
        "bitcask_raft_applied_index",
        "Index of the last entry applied to the store",
        "gauge",
        status.last_applied.unwrap_or(0),
    );
    metric(
        "bitcask_raft_snapshots_built_total",
        "Snapshots built since the node started",
        "counter",
        counters.snapshots_built,
    );
    metric(
        "bitcask_raft_snapshots_installed_total",
        "Snapshots installed since the node started",
        "counter",
        counters.snapshots_installed,
    );
    if let Some(replication) = &status.replication {
        let _ = write!(
            text,
            "# HELP bitcask_raft_replication_lag Entries a member is behind the leader\n\
             # TYPE bitcask_raft_replication_lag gauge\n"
        );
        for member in replication {
            let _ = writeln!(
                text,
                "bitcask_raft_replication_lag{{node=\"{}\"}} {}",
                member.node_id, member.lag
            );
        }
    }
    text
}

/// Appends one unlabelled sample with its `HELP` and `TYPE` lines.
fn sample(text: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    use std::fmt::Write;
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

/// Counts every answered request by its route pattern (not its path, so a
/// key never becomes a label), method and status, after turning an error
/// made outside the handlers into JSON ([`crate::middleware::json_errors`]);
/// keeps the in-flight gauge.
///
/// A tower service written out (its layer from `layer_fn`), as the
/// request-id and admission layers are: `axum::middleware::from_fn` boxes
/// a future and clones the inner service per request (docs/BENCHMARKS.md
/// has what that cost).
pub fn track_layer<S>(state: AppState) -> impl tower::Layer<S, Service = Track<S>> + Clone {
    tower::layer::layer_fn(move |inner| Track {
        inner,
        state: state.clone(),
    })
}

/// The service of [`track_layer`].
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        self.state
            .metrics()
            .http_in_flight
            .fetch_add(1, Ordering::Relaxed);
        Tracked {
            inner: self.inner.call(request),
            rewrite: None,
            state: self.state.clone(),
            route,
            method,
            started: Instant::now(),
        }
    }
}

/// The JSON rewrite of an error answer, when one is needed (rare).
type Rewrite = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project_lite::pin_project! {
    /// The answer of [`Track`]: the inner answer, rewritten as JSON if it is
    /// a plain-text error, counted when it is ready. The in-flight gauge
    /// goes down when this is dropped, answered or cancelled.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        rewrite: Option<Rewrite>,
        state: AppState,
        route: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            this.state
                .metrics()
                .http_in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<F> Future for Tracked<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.rewrite.as_mut() {
            Some(rewrite) => std::task::ready!(rewrite.as_mut().poll(cx)),
            None => {
                let Ok(response) = std::task::ready!(this.inner.as_mut().poll(cx));
                if crate::middleware::needs_json_rewrite(&response) {
                    let rewrite = this
                        .rewrite
                        .insert(Box::pin(crate::middleware::json_errors(response)));
                    std::task::ready!(rewrite.as_mut().poll(cx))
                } else {
                    response
                }
            }
        };
        this.state.metrics().observe(
            this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            this.method,
            response.status(),
            this.started.elapsed().as_secs_f64(),
        );
        Poll::Ready(Ok(response))
    }
}

/// The method as a label: the standard ones by name, anything else
/// `other` (a client can send any token as a method).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics().render(state.try_store().as_deref());
    body.push_str(&watch_metrics(&state));
    if let Some(node) = state.cluster() {
        body.push_str(&cluster_metrics(node));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

/// The change feed's metrics: watchers open, events sent, watchers cut,
/// and where the feed stands.
fn watch_metrics(state: &AppState) -> String {
    let hub = state.watchers();
    let mut text = String::new();
    let mut line = |name: &str, help: &str, kind: &str, value: u64| {
        sample(&mut text, name, help, kind, value);
    };
    line(
        "bitcask_watchers",
        "Watch streams and long polls open",
        "gauge",
        hub.open() as u64,
    );
    line(
        "bitcask_watch_events_sent_total",
        "Change-feed events sent to watchers",
        "counter",
        hub.events_sent(),
    );
    line(
        "bitcask_watchers_cut_total",
        "Watch streams cut off because their client took nothing while its backlog was full",
        "counter",
        hub.watchers_cut(),
    );
    if let Some(store) = state.try_store() {
        let position = store.position();
        line(
            "bitcask_watch_next_seq",
            "The change feed's next seq",
            "gauge",
            position.next_seq,
        );
        line(
            "bitcask_watch_compacted_seq",
            "The oldest seq a watch may start from",
            "gauge",
            position.compacted_seq,
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    fn state() -> AppState {
        let config = crate::config::Config::from_args(["bitcask-server"]).expect("config");
        AppState::new(config).expect("state")
    }

    #[tokio::test]
    async fn a_request_counts_in_flight_until_answered_or_dropped() {
        let state = state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = std::sync::Mutex::new(Some(rx));
        let waits = tower::service_fn(move |_: Request| {
            let rx = rx.lock().expect("lock").take();
            async move {
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                Ok::<_, Infallible>(Response::new(axum::body::Body::from("done")))
            }
        });
        let mut service = track_layer(state.clone()).layer(waits);
        let service = service.ready().await.expect("ready");
        let first = service.call(Request::new(axum::body::Body::empty()));
        let second = service.call(Request::new(axum::body::Body::empty()));
        assert_eq!(state.metrics().http_in_flight(), 2);
        drop(second);
        assert_eq!(state.metrics().http_in_flight(), 1, "a dropped request");
        tx.send(()).expect("send");
        let response = first.await.expect("answer");
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(state.metrics().http_in_flight(), 0, "an answered request");
    }

    #[tokio::test]
    async fn a_plain_text_error_is_answered_as_json_and_counted() {
        let state = state();
        let fails = tower::service_fn(|_: Request| async {
            let mut response = Response::new(axum::body::Body::from("no such thing"));
            *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(response)
        });
        let response = track_layer(state.clone())
            .layer(fails)
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
            .expect("answer");
        assert_eq!(response.status(), axum::http::StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["detail"], "Not Found");
        let text = state.metrics().render(None);
        assert!(
            text.contains(
                r#"bitcask_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert_eq!(state.metrics().http_in_flight(), 0);
    }
}
