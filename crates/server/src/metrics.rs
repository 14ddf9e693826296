//! `/metrics` in the Prometheus text format: requests and their latency by
//! route, method and status, and the store's keys, bytes, files and merges.
//!
//! Each server owns its registry (no process-global state), so several
//! servers in one process (the tests) count separately.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
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

/// The server's request metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
        })
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The text exposition: request metrics, then the store's gauges.
    fn render(&self, store: Option<&bitcask::Bitcask>) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a metric family that does
        // not encode is left out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8_lossy(&out).into_owned();
        let gauge = |text: &mut String, name: &str, help: &str, kind: &str, value: u64| {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
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
                "bitcask_fsyncs_total",
                "fsyncs issued by group commit since the store opened",
                "counter",
                s.fsyncs,
            );
        }
        text
    }
}

/// Counts every answered request by its route pattern (not its path, so a
/// key never becomes a label), method and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state.metrics().observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics().render(state.try_store().map(|s| &**s));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}
