//! The router: routes, and the layers every request passes through.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{MethodRouter, get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::OnOff;
use crate::metrics;
use crate::middleware::{self, RequestId};
use crate::routes::{admin, backup, batch, cluster, health, kv, listing, ui, watch};
use crate::state::AppState;

/// Body bytes allowed beyond the value limit: JSON quoting and escapes of a
/// value, or a batch's framing.
const BODY_SLACK: usize = 64 * 1024;

/// The route of one key (`GET`, `PUT`, `DELETE /kv/{key}`), as axum
/// writes its pattern and the metrics label it.
pub(crate) const KEY_ROUTE: &str = "/kv/{*key}";

/// One route: its path, the methods it answers, and its handlers.
struct Route {
    path: &'static str,
    methods: &'static [&'static str],
    handlers: fn() -> MethodRouter<AppState>,
    /// Which limits apply to it.
    class: Class,
}

/// The limits a route is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Under the cap on requests in flight and the request time-out.
    Work,
    /// Answered even while requests are being shed (`/health`, `/metrics`:
    /// an overloaded server must still say how it is); only the time-out.
    /// Such routes take no body and are cheap.
    Essential,
    /// Long-lived (`/watch`): neither the cap on requests in flight nor the
    /// request time-out, which would end every watch; the watchers' own
    /// cap (`--watch-max`), waits and backlog limits apply instead.
    Stream,
}

/// Every route of the server, in one table that builds the router and that
/// the OpenAPI test compares with the document.
const ROUTES: &[Route] = &[
    Route {
        path: "/health",
        methods: &["GET"],
        handlers: || get(health::health),
        class: Class::Essential,
    },
    Route {
        path: "/kv",
        methods: &["GET"],
        handlers: || get(listing::list_keys),
        class: Class::Work,
    },
    Route {
        path: KEY_ROUTE,
        methods: &["GET", "PUT", "DELETE"],
        handlers: || get(kv::get_key).put(kv::put_key).delete(kv::delete_key),
        class: Class::Work,
    },
    Route {
        path: "/watch",
        methods: &["GET"],
        handlers: || get(watch::watch),
        class: Class::Stream,
    },
    Route {
        path: "/batch",
        methods: &["POST"],
        handlers: || post(batch::batch),
        class: Class::Work,
    },
    Route {
        path: "/stats",
        methods: &["GET"],
        handlers: || get(admin::stats),
        class: Class::Work,
    },
    Route {
        path: "/admin/merge",
        methods: &["POST"],
        handlers: || post(admin::merge),
        class: Class::Work,
    },
    Route {
        path: "/admin/scrub",
        methods: &["POST"],
        handlers: || post(admin::scrub),
        class: Class::Work,
    },
    Route {
        path: "/admin/backup",
        methods: &["POST"],
        handlers: || post(backup::backup),
        class: Class::Work,
    },
    Route {
        path: "/cluster",
        methods: &["GET"],
        handlers: || get(cluster::status),
        class: Class::Work,
    },
    Route {
        path: "/cluster/members",
        methods: &["POST"],
        handlers: || post(cluster::add),
        class: Class::Work,
    },
    Route {
        path: "/cluster/members/{id}",
        methods: &["DELETE"],
        handlers: || axum::routing::delete(cluster::remove),
        class: Class::Work,
    },
    Route {
        path: "/metrics",
        methods: &["GET"],
        handlers: || get(metrics::metrics),
        class: Class::Essential,
    },
    Route {
        path: "/openapi.json",
        methods: &["GET"],
        handlers: || get(crate::openapi::openapi_json),
        class: Class::Work,
    },
];

/// `(method, path)` of every route, paths as OpenAPI writes them
/// (`/kv/{key}` for axum's catch-all `/kv/{*key}`).
pub fn route_table() -> Vec<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(|m| (m.to_string(), r.path.replace("{*", "{")))
        })
        .collect()
}

/// Answers a request shed because `max_concurrent_requests` are running.
async fn overloaded(_: tower::BoxError) -> axum::response::Response {
    crate::error::detail_response(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "the server is handling as many requests as it allows; retry shortly",
    )
}

/// The largest request body accepted: a value JSON-escaped at up to six
/// bytes per byte (`\u00XX`), and a batch's framing.
pub fn body_limit(config: &crate::config::Config) -> usize {
    config
        .max_value_size
        .saturating_mul(6)
        .saturating_add(BODY_SLACK)
}

/// Builds the application for `state`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the rate limit
/// keys on the client's address.
///
/// A request passes, outermost first: the request id, the trace span, the
/// metrics (which also rewrite errors made outside the handlers as JSON),
/// the rate limit (if set), admission
/// (host, cross-site, bearer token); then, for all but the essential
/// routes, the cap on requests in flight (503 over it) and the time-out
/// (408); the essential routes get only the time-out, the streaming ones
/// (`/watch`) neither, with limits of their own. So a stranger's
/// request is refused before it takes a place under the cap, and a full cap
/// never silences `/health`. Routes that take a body read it with
/// [`crate::body::Body`] (size and minimum rate).
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let timeout = || {
        TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        )
    };
    let routes = |class: Class| {
        ROUTES
            .iter()
            .filter(move |r| r.class == class)
            .fold(Router::new(), |router, route| {
                router.route(route.path, (route.handlers)())
            })
    };
    let work = routes(Class::Work)
        .layer(DefaultBodyLimit::max(body_limit(&config)))
        .layer(timeout())
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
                .layer(tower::load_shed::LoadShedLayer::new())
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    config.max_concurrent_requests,
                )),
        );
    let mut router = routes(Class::Essential)
        .layer(timeout())
        .merge(work)
        .merge(routes(Class::Stream));
    // The console's files: static, cheap, and apart from the API's routes
    // (docs/UI.md); served under the time-out, like /health.
    if config.ui == OnOff::On {
        router = router.merge(ui::router().layer(timeout()));
    }
    let router = router.layer(middleware::AdmissionLayer::new(state.clone()));
    // Per client address: `rate_limit` requests a second, in bursts of as many.
    let router = match config.rate_limit {
        Some(per_second) => with_rate_limit(router, per_second),
        None => router,
    };
    router
        .layer(metrics::track_layer(state.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request.extensions().get::<RequestId>().map(|id| &id.0);
                    request_span(id, request)
                })
                .on_request(|_: &Request<_>, _: &tracing::Span| log_request())
                .on_failure(
                    |class: tower_http::classify::ServerErrorsFailureClass,
                     latency: Duration,
                     _: &tracing::Span| log_failure(&class, latency),
                )
                .on_response(
                    |response: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                        log_answer(response.status(), latency);
                    },
                ),
        )
        .layer(middleware::RequestIdLayer)
        .with_state(state)
}

/// The span of one request's log lines: its id, method and path.
///
/// Fields are evaluated only when the span is enabled: nothing is
/// formatted or allocated below `info`.
pub(crate) fn request_span<B>(
    id: Option<&axum::http::HeaderValue>,
    request: &Request<B>,
) -> tracing::Span {
    let id = id.and_then(|id| id.to_str().ok()).unwrap_or("");
    tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path())
}

/// The debug line of a request as it starts, in its span.
pub(crate) fn log_request() {
    tracing::debug!("started processing request");
}

/// The error line of a failed request (an answer 5xx, or an error of the
/// stack below the handlers), in its span.
pub(crate) fn log_failure(class: &dyn std::fmt::Display, latency: Duration) {
    tracing::error!(
        classification = %class,
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "response failed"
    );
}

/// The log line of an answer, in the request's span.
pub(crate) fn log_answer(status: axum::http::StatusCode, latency: Duration) {
    tracing::info!(
        status = status.as_u16(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "answered"
    );
}

/// Adds the per-client rate limit: `per_second` requests a second, in
/// bursts of as many, keyed on the client's address.
fn with_rate_limit(router: Router<AppState>, per_second: u32) -> Router<AppState> {
    let period_ns = 1_000_000_000 / u64::from(per_second.max(1));
    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .period(Duration::from_nanos(period_ns.max(1)))
        .burst_size(per_second.max(1))
        .finish();
    match config {
        Some(config) => {
            // The limiter keeps a state per client address; forget idle ones
            // once a minute, for as long as the server (the layer) lives.
            let limiter = std::sync::Arc::downgrade(config.limiter());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(60));
                    loop {
                        tick.tick().await;
                        match limiter.upgrade() {
                            Some(limiter) => limiter.retain_recent(),
                            None => return,
                        }
                    }
                });
            }
            router.layer(tower_governor::GovernorLayer::new(config))
        }
        None => {
            tracing::error!(per_second, "invalid rate limit; serving without one");
            router
        }
    }
}
