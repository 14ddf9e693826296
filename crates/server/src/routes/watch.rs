//! `GET /watch`: the change feed (docs/WATCH.md): every committed change
//! of the keys a watcher asks for, in seq order, from any point the data
//! files still hold; as Server-Sent Events, or as a long poll with
//! `format=json`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bitcask_wire::{Compacted, WatchEvent, WatchPage};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;
use crate::watch::{Feed, FeedError, Filter, change_size, sse};

/// Default and largest number of events of one long poll answer.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 10_000;
/// Bytes of keys and values one long poll answer gathers at most (a
/// batch may make it larger).
const PAGE_BYTES: usize = 4 << 20;
/// The longest wait of a long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The header with the store's change-feed position (`GET /kv`, and a
/// long poll's answer).
pub const SEQ_HEADER: &str = "x-bitcask-seq";

/// How the events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Server-Sent Events (the default).
    Sse,
    /// A long poll: one JSON answer.
    Json,
}

/// Query parameters of a watch.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// Only keys that start with this.
    prefix: Option<String>,
    /// Only keys at or after this one (not with `prefix`).
    start: Option<String>,
    /// Only keys before this one (not with `prefix`).
    end: Option<String>,
    /// Only these ops, comma-separated: `put`, `delete`, `expire`.
    ops: Option<String>,
    /// The first seq to send (inclusive); default: from now. A
    /// `Last-Event-ID: s` header means `s + 1` and wins.
    from_seq: Option<u64>,
    /// `sse` (default) or `json` (a long poll).
    format: Option<Format>,
    /// Long poll: how long to wait for a first event, e.g. `30s` or `30`
    /// (seconds), at most 60 s and a second less than the server's idle
    /// time-out; default 0 (answer at once). Implies `format=json`.
    wait: Option<String>,
    /// Long poll: most events in the answer, 1 to 10,000 (default 1,000;
    /// a batch is never split, so its last may go over).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, detail)
}

/// A long poll's wait: `30s`, `1m`, `250ms`, or a number of seconds;
/// capped at [`MAX_WAIT`], and a second short of the idle time-out, which
/// closes a connection that has carried nothing for that long (a waiting
/// long poll carries nothing).
fn parse_wait(text: &str, idle_timeout: Duration) -> Result<Duration, ApiError> {
    let wait = match text.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => crate::config::parse_duration(text).ok_or_else(|| {
            bad(format!(
                "wait must be a duration such as 30s or 500ms, or seconds; got {text:?}"
            ))
        })?,
    };
    Ok(wait
        .min(MAX_WAIT)
        .min(idle_timeout.saturating_sub(Duration::from_secs(1))))
}

/// `Last-Event-ID`, if sent: the last seq the client saw.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        bad(format!(
            "Last-Event-ID must be a seq (a whole number); got {text:?}"
        ))
    })
}

/// The 410 answer: `{"detail", "compacted_seq"}`.
fn gone(compacted_seq: u64) -> Response {
    let body = Compacted {
        detail: FeedError::Compacted(compacted_seq).to_string(),
        compacted_seq,
    };
    (StatusCode::GONE, axum::Json(body)).into_response()
}

fn feed_failure(error: FeedError) -> Response {
    match error {
        FeedError::Compacted(seq) => gone(seq),
        FeedError::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not open; retry shortly",
        )
        .retry_after(1)
        .into_response(),
        FeedError::Failed(cause) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the change feed failed",
        )
        .with_cause(cause)
        .into_response(),
    }
}

/// `GET /watch?prefix=&start=&end=&ops=&from_seq=`: Server-Sent Events
/// (each event's `id` is its seq, `event` its op, `data` the event as
/// JSON; a `progress` event now and then and when the stream starts), or
/// with `format=json`/`wait=`, a long poll answering `{"events": [...],
/// "next_seq": N}` once at least one event matched or the wait ended.
#[utoipa::path(
    get,
    path = "/watch",
    tag = "watch",
    params(WatchParams),
    responses(
        (status = 200, description = "Server-Sent Events (text/event-stream), or a long poll's page",
            body = bitcask_wire::WatchPage),
        (status = 400, description = "A bad filter, seq, wait or limit", body = crate::error::Detail),
        (status = 410, description = "The history asked for was dropped by a merge",
            body = bitcask_wire::Compacted),
        (status = 503, description = "As many watchers as --watch-max allows, or the store is not open",
            body = crate::error::Detail),
    )
)]
pub async fn watch(
    State(state): State<AppState>,
    Query(params): Query<WatchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = Filter::parse(
        params.prefix.as_deref(),
        params.start.as_deref(),
        params.end.as_deref(),
        params.ops.as_deref(),
    )?;
    let idle_timeout = state.config().idle_timeout;
    let wait = params
        .wait
        .as_deref()
        .map(|w| parse_wait(w, idle_timeout))
        .transpose()?;
    let long_poll = params.format == Some(Format::Json) || wait.is_some();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let from = match last_event_id(&headers)? {
        Some(last) => Some(
            last.checked_add(1)
                .ok_or_else(|| bad("Last-Event-ID is too large"))?,
        ),
        None => params.from_seq,
    };
    let slot = state.watchers().slot().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server has as many watchers as it allows ({}, --watch-max); retry shortly",
                state.config().watch_max
            ),
        )
        .retry_after(1)
    })?;
    let store = state.store()?;
    let from = from.unwrap_or_else(|| store.position().next_seq);
    let feed = match Feed::open(&state, &store, from, filter, !long_poll) {
        Ok(feed) => feed,
        Err(error) => return Ok(feed_failure(error)),
    };
    drop(store);
    if long_poll {
        let answer = long_poll_page(&state, feed, wait.unwrap_or_default(), limit).await;
        drop(slot);
        return Ok(match answer {
            Ok(page) => axum::Json(page).into_response(),
            Err(error) => feed_failure(error),
        });
    }
    let mut response = sse::start(state.clone(), feed.share_sse(), slot).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx: pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Reads `feed` until at least one event matched (then as many as are
/// there, up to `limit`) or `wait` passed.
async fn long_poll_page(
    state: &AppState,
    mut feed: Feed,
    wait: Duration,
    limit: usize,
) -> Result<WatchPage, FeedError> {
    let deadline = tokio::time::Instant::now() + wait;
    let hub = state.watchers();
    let mut stopping = hub.stopping();
    let mut events = Vec::new();
    let mut bytes = 0usize;
    loop {
        let read = feed.read(limit - events.len(), PAGE_BYTES - bytes).await?;
        bytes += read.events.iter().map(change_size).sum::<usize>();
        events.extend(read.events);
        let full = events.len() >= limit || bytes >= PAGE_BYTES;
        if full || (read.caught_up && !events.is_empty()) {
            break;
        }
        if !read.caught_up {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            continue;
        }
        tokio::select! {
            () = feed.wait() => {}
            () = tokio::time::sleep_until(deadline) => break,
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    hub.sent(events.len());
    Ok(WatchPage {
        events: events.iter().map(WatchEvent::from).collect(),
        next_seq: feed.next_seq(),
    })
}
