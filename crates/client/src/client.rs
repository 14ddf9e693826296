//! The async [`Client`]: one pooled HTTP client, a request id on every
//! request, time-outs, typed errors, and retries with backoff for requests
//! that are safe to repeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, Stream, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::types::{
    BackupReport, Batch, BatchResult, ClusterStatus, Condition, Health, ListOptions, MergeReport,
    Page, ScrubReport, Stats, Versioned, WriteOptions,
};

/// The server a client talks to when told nothing else (as in the seed).
pub const DEFAULT_URL: &str = "http://localhost:8000";
/// The environment variable that names the server (as in the seed).
pub const SERVER_ENV: &str = "BITCASK_SERVER";

/// Bytes of a key left as they are in a URL path: RFC 3986's unreserved
/// characters. Everything else, `/` included, is percent-encoded, so a key
/// is always one path segment (URL normalisation cannot touch it).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const OCTET_STREAM: &str = "application/octet-stream";
const REQUEST_ID: &str = "x-request-id";
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Settings of a [`Client`]: `Client::builder(url).timeout(..).token(..).build()`.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    token: Option<String>,
    retries: u32,
    backoff: Duration,
}

impl ClientBuilder {
    /// Defaults: 30 s per request, 5 s to connect, no token, 2 retries
    /// starting at 50 ms.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            token: None,
            retries: 2,
            backoff: Duration::from_millis(50),
        }
    }

    /// The longest a request may take, from sending to the last byte of
    /// the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The bearer token the server requires (`--auth-token`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How many times a failed request is tried again, when that is safe:
    /// any request that could not connect (nothing was sent); reads,
    /// unconditional puts and deletes after a time-out, a dropped
    /// connection, 503 or 429. Never a conditional write, a batch or a
    /// merge once sent.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The first wait before a retry; each next one doubles (with jitter,
    /// at most 2 s). A `Retry-After` from the server is honoured up to 2 s.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the client. Fails on a base URL that is not `http(s)://...`.
    pub fn build(self) -> Result<Client> {
        let base = self.base_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| Error::InvalidArgument {
            reason: format!("server URL {base:?}: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(Error::InvalidArgument {
                reason: format!("server URL {base:?} must look like http://host:port"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|source| Error::Transport { source })?;
        // Streams (watch) last as long as they are read: no total time-out
        // (their silence is timed instead, `crate::watch`).
        let streams = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|source| Error::Transport { source })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                streams,
                base,
                timeout: self.timeout,
                token: self.token,
                retries: self.retries,
                backoff: self.backoff,
            }),
        })
    }
}

/// An async client of the bitcask server. Cheap to clone: clones share one
/// connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    streams: reqwest::Client,
    base: String,
    timeout: Duration,
    token: Option<String>,
    retries: u32,
    backoff: Duration,
}

/// One request, as each attempt sends it again.
struct Request {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    headers: HeaderMap,
    body: Option<(Bytes, &'static str)>,
    /// Whether sending it twice has the effect of sending it once.
    idempotent: bool,
}

impl Request {
    fn new(method: Method, path: String) -> Self {
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        Self {
            method,
            path,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            idempotent,
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Answered(reqwest::Response),
    Failed(reqwest::Error),
}

impl Client {
    /// A client of the server at `base_url` with default settings.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        ClientBuilder::new(base_url).build()
    }

    /// A client of the server named by `BITCASK_SERVER`, or
    /// `http://localhost:8000`.
    pub fn from_env() -> Result<Self> {
        Self::new(std::env::var(SERVER_ENV).unwrap_or_else(|_| DEFAULT_URL.to_string()))
    }

    /// Settings for a client of the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET /health`: `healthy`, or `loading` while the server opens its store.
    pub async fn health(&self) -> Result<Health> {
        let request = Request::new(Method::GET, "/health".into());
        let (response, request_id) = self.send_raw(&request).await?;
        // 503 with a health body is "loading", not a failure.
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body = read_body(response).await?;
            if let Ok(health) = serde_json::from_slice::<Health>(&body) {
                return Ok(health);
            }
            return Err(status_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &body,
                request_id,
            ));
        }
        json(check(response, request_id).await?).await
    }

    /// The round-trip time of one `GET /health`.
    pub async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        self.health().await?;
        Ok(started.elapsed())
    }

    /// The value of `key` as text; `None` if absent. Fails with
    /// [`Error::NotUtf8`] for a binary value.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        match self.get_bytes(key).await? {
            None => Ok(None),
            Some(bytes) => {
                String::from_utf8(bytes.to_vec())
                    .map(Some)
                    .map_err(|_| Error::NotUtf8 {
                        key: key.to_string(),
                    })
            }
        }
    }

    /// The raw value of `key`; `None` if absent.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.get_versioned(key).await?.map(|v| v.value))
    }

    /// The raw value of `key` and its version; `None` if absent.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let mut request = Request::new(Method::GET, key_path(key)?);
        request
            .headers
            .insert(header::ACCEPT, HeaderValue::from_static(OCTET_STREAM));
        let (response, request_id) = self.send_raw(&request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check(response, request_id).await?;
        let version = etag(response.headers())?;
        let value = read_body(response).await?;
        Ok(Some(Versioned { value, version }))
    }

    /// Stores `value` (text or bytes) under `key`; returns its version.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        self.put_with(key, value, WriteOptions::new()).await
    }

    /// [`Self::put`] with a time-to-live, a condition and/or durability.
    pub async fn put_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<u64> {
        let mut request = Request::new(Method::PUT, key_path(key)?);
        write_options(&mut request, &options, true)?;
        request.body = Some((Bytes::copy_from_slice(value.as_ref()), OCTET_STREAM));
        let response = self.send(&request).await?;
        etag(response.headers())
    }

    /// Removes `key` (removing an absent key is not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.delete_with(key, WriteOptions::new()).await.map(|_| ())
    }

    /// [`Self::delete`] with a condition and/or durability; returns the
    /// delete's version, or `None` if the key was absent.
    pub async fn delete_with(&self, key: &str, options: WriteOptions) -> Result<Option<u64>> {
        let mut request = Request::new(Method::DELETE, key_path(key)?);
        write_options(&mut request, &options, false)?;
        let response = self.send(&request).await?;
        if response.headers().contains_key(header::ETAG) {
            etag(response.headers()).map(Some)
        } else {
            Ok(None)
        }
    }

    /// One page of keys (`GET /kv`).
    pub async fn list_page(&self, options: &ListOptions) -> Result<Page> {
        let mut request = Request::new(Method::GET, "/kv".into());
        request.query.push(("prefix", options.prefix.clone()));
        if let Some(after) = &options.start_after {
            request.query.push(("start_after", after.clone()));
        }
        if let Some(delimiter) = &options.delimiter {
            request.query.push(("delimiter", delimiter.clone()));
        }
        request
            .query
            .push(("limit", options.page_size.unwrap_or(1_000).to_string()));
        json(self.send(&request).await?).await
    }

    /// Every key the options select, in byte order, fetched a page at a
    /// time as the stream is read.
    pub fn list(
        &self,
        options: ListOptions,
    ) -> impl Stream<Item = Result<String>> + Send + 'static {
        let client = self.clone();
        stream::try_unfold(Some(options), move |state| {
            let client = client.clone();
            async move {
                let Some(options) = state else {
                    return Ok(None);
                };
                let page = client.list_page(&options).await?;
                let next = page.next_start_after.map(|cursor| ListOptions {
                    start_after: Some(cursor),
                    ..options
                });
                Ok(Some((stream::iter(page.keys.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
    }

    /// Applies `batch` all or nothing (`POST /batch`); `durable` waits for
    /// its fsync.
    pub async fn batch(&self, batch: &Batch, durable: bool) -> Result<BatchResult> {
        let mut request = Request::new(Method::POST, "/batch".into());
        if durable {
            request.query.push(("durable", "true".into()));
        }
        let body = serde_json::to_vec(batch).map_err(|e| Error::InvalidArgument {
            reason: format!("batch: {e}"),
        })?;
        request.body = Some((Bytes::from(body), "application/json"));
        json(self.send(&request).await?).await
    }

    /// The store's statistics (`GET /stats`).
    pub async fn stats(&self) -> Result<Stats> {
        let request = Request::new(Method::GET, "/stats".into());
        json(self.send(&request).await?).await
    }

    /// Runs a merge now and returns what it did (`POST /admin/merge`).
    pub async fn merge(&self) -> Result<MergeReport> {
        let request = Request::new(Method::POST, "/admin/merge".into());
        json(self.send(&request).await?).await
    }

    /// Has the server write a consistent copy of its store into a new
    /// directory `name` (default: named after the time) under its
    /// `--backup-dir` (`POST /admin/backup`).
    pub async fn backup(&self, name: Option<&str>) -> Result<BackupReport> {
        let mut request = Request::new(Method::POST, "/admin/backup".into());
        if let Some(name) = name {
            let body = bitcask_wire::BackupRequest {
                name: Some(name.to_string()),
            };
            let body = serde_json::to_vec(&body).map_err(|e| Error::InvalidArgument {
                reason: format!("backup: {e}"),
            })?;
            request.body = Some((Bytes::from(body), "application/json"));
        }
        json(self.send(&request).await?).await
    }

    /// Verifies every sealed data file now and returns what it read and
    /// found (`POST /admin/scrub`).
    pub async fn scrub(&self) -> Result<ScrubReport> {
        let request = Request::new(Method::POST, "/admin/scrub".into());
        json(self.send(&request).await?).await
    }

    /// A cluster node's view of its cluster (`GET /cluster`).
    pub async fn cluster(&self) -> Result<ClusterStatus> {
        let request = Request::new(Method::GET, "/cluster".into());
        json(self.send(&request).await?).await
    }

    /// Adds node `node_id` (its peer port at `peer_addr`) to the cluster,
    /// as a voter once it has caught up (`POST /cluster/members`).
    pub async fn add_member(&self, node_id: u64, peer_addr: &str) -> Result<ClusterStatus> {
        let mut request = Request::new(Method::POST, "/cluster/members".into());
        let body = serde_json::json!({ "node_id": node_id, "peer_addr": peer_addr });
        request.body = Some((Bytes::from(body.to_string()), "application/json"));
        json(self.send(&request).await?).await
    }

    /// Removes node `node_id` from the cluster (`DELETE /cluster/members/{id}`).
    pub async fn remove_member(&self, node_id: u64) -> Result<ClusterStatus> {
        let request = Request::new(Method::DELETE, format!("/cluster/members/{node_id}"));
        json(self.send(&request).await?).await
    }

    /// Sends `request` (with retries) and turns an error answer into an error.
    async fn send(&self, request: &Request) -> Result<reqwest::Response> {
        let (response, request_id) = self.send_raw(request).await?;
        check(response, request_id).await
    }

    /// Sends `request`, retrying where safe; returns any answer, with the
    /// request id it carried.
    async fn send_raw(&self, request: &Request) -> Result<(reqwest::Response, String)> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut attempt = 0u32;
        loop {
            let outcome = self.attempt(request, &request_id).await;
            let retry_after = match &outcome {
                Attempt::Failed(e) if e.is_connect() => Some(None),
                Attempt::Failed(_) if request.idempotent => Some(None),
                Attempt::Answered(r)
                    if request.idempotent
                        && matches!(
                            r.status(),
                            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                        ) =>
                {
                    Some(retry_after(r.headers()))
                }
                _ => None,
            };
            match retry_after {
                Some(hint) if attempt < self.inner.retries => {
                    tokio::time::sleep(self.backoff(attempt, hint)).await;
                    attempt += 1;
                }
                _ => {
                    return match outcome {
                        Attempt::Answered(response) => Ok((response, request_id)),
                        Attempt::Failed(e) => Err(self.transport_error(e)),
                    };
                }
            }
        }
    }

    async fn attempt(&self, request: &Request, request_id: &str) -> Attempt {
        let url = format!("{}{}", self.inner.base, request.path);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .headers(request.headers.clone())
            .header(REQUEST_ID, request_id);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(token) = &self.inner.token {
            builder = builder.bearer_auth(token);
        }
        if let Some((body, content_type)) = &request.body {
            builder = builder
                .header(header::CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        match builder.send().await {
            Ok(response) => Attempt::Answered(response),
            Err(e) => Attempt::Failed(e),
        }
    }

    /// Opens a stream: `GET path?query` on the client without a total
    /// time-out, with the token and a request id; an error answer is the
    /// error it stands for. Not retried (the caller resumes).
    pub(crate) async fn open_stream(
        &self,
        path: &str,
        query: &[(&'static str, String)],
        headers: HeaderMap,
    ) -> Result<reqwest::Response> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut builder = self
            .inner
            .streams
            .get(format!("{}{}", self.inner.base, path))
            .headers(headers)
            .header(REQUEST_ID, &request_id)
            .query(query);
        if let Some(token) = &self.inner.token {
            builder = builder.bearer_auth(token);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        check(response, request_id).await
    }

    /// How many times in a row a failed attempt is retried.
    pub(crate) fn retries(&self) -> u32 {
        self.inner.retries
    }

    /// The wait before retry number `attempt + 1`: doubling from the base,
    /// with jitter so that many clients do not retry in step.
    pub(crate) fn backoff(&self, attempt: u32, server_hint: Option<Duration>) -> Duration {
        if let Some(hint) = server_hint {
            return hint.min(MAX_BACKOFF);
        }
        let base = self
            .inner
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(MAX_BACKOFF);
        // Jitter from the clock's nanoseconds: 50% to 100% of the wait.
        // (Not worth a random-number crate: any spread will do.)
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
    }

    fn transport_error(&self, source: reqwest::Error) -> Error {
        let url = self.inner.base.clone();
        if source.is_connect() {
            // reqwest's own message only says "error sending request"; the
            // innermost cause says why.
            let mut cause: &dyn std::error::Error = &source;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let reason = cause.to_string();
            Error::Connect {
                url,
                reason,
                source,
            }
        } else if source.is_timeout() {
            Error::Timeout {
                url,
                after: self.inner.timeout,
            }
        } else {
            Error::Transport { source }
        }
    }
}

/// `/kv/<key>`, the key percent-encoded as one path segment.
fn key_path(key: &str) -> Result<String> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(Error::InvalidArgument {
            reason: format!("the key {key:?} cannot be sent in a URL"),
        });
    }
    Ok(format!("/kv/{}", utf8_percent_encode(key, KEY_ENCODE)))
}

/// Adds a write's options to its request.
fn write_options(request: &mut Request, options: &WriteOptions, is_put: bool) -> Result<()> {
    request.idempotent = options.is_idempotent();
    if options.durable {
        request.query.push(("durable", "true".into()));
    }
    if let Some(ttl) = options.ttl {
        if !is_put {
            return Err(Error::InvalidArgument {
                reason: "a time-to-live applies to puts only".into(),
            });
        }
        // Whole seconds, rounded up.
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if secs == 0 {
            return Err(Error::InvalidArgument {
                reason: "a time-to-live must be at least one second".into(),
            });
        }
        request.query.push(("ttl", secs.to_string()));
    }
    let (name, value) = match options.condition {
        Condition::None => return Ok(()),
        Condition::Absent if is_put => (header::IF_NONE_MATCH, "*".to_string()),
        Condition::Absent => {
            return Err(Error::InvalidArgument {
                reason: "a delete cannot require the key to be absent".into(),
            });
        }
        Condition::Present => (header::IF_MATCH, "*".to_string()),
        Condition::Version(v) => (header::IF_MATCH, format!("\"{v}\"")),
    };
    let value = HeaderValue::from_str(&value).map_err(|e| Error::InvalidArgument {
        reason: e.to_string(),
    })?;
    request.headers.insert(name, value);
    Ok(())
}

/// The version in an `ETag: "42"` header.
fn etag(headers: &HeaderMap) -> Result<u64> {
    headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
        .ok_or_else(|| Error::InvalidResponse {
            detail: "no version (ETag) in the answer".into(),
        })
}

/// A `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

async fn read_body(response: reqwest::Response) -> Result<Bytes> {
    response
        .bytes()
        .await
        .map_err(|source| Error::Transport { source })
}

async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let body = read_body(response).await?;
    serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse {
        detail: format!("{e}: {}", String::from_utf8_lossy(&body)),
    })
}

/// Passes a success through; turns an error answer into its [`Error`].
async fn check(response: reqwest::Response, request_id: String) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_body(response).await?;
    Err(status_error(status, &body, request_id))
}

/// The error for an error answer: the `detail` of its JSON body, or the
/// body itself.
fn status_error(status: StatusCode, body: &[u8], request_id: String) -> Error {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            }
        });
    match status {
        StatusCode::GONE => match serde_json::from_slice::<bitcask_wire::Compacted>(body) {
            Ok(gone) => Error::Compacted {
                compacted_seq: gone.compacted_seq,
            },
            Err(_) => Error::Server {
                status: status.as_u16(),
                detail,
                request_id,
            },
        },
        StatusCode::UNAUTHORIZED => Error::Unauthorized { detail },
        StatusCode::PRECONDITION_FAILED => Error::PreconditionFailed { detail },
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge { detail },
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Error::Unavailable {
            status: status.as_u16(),
            detail,
        },
        _ => Error::Server {
            status: status.as_u16(),
            detail,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_path_segment_whatever_they_hold() {
        assert_eq!(key_path("a/b").expect("path"), "/kv/a%2Fb");
        assert_eq!(key_path("a/../b").expect("path"), "/kv/a%2F..%2Fb");
        assert_eq!(
            key_path("sp ace?#%").expect("path"),
            "/kv/sp%20ace%3F%23%25"
        );
        assert_eq!(
            key_path("ключ").expect("path"),
            "/kv/%D0%BA%D0%BB%D1%8E%D1%87"
        );
        for bad in ["", ".", ".."] {
            assert!(matches!(key_path(bad), Err(Error::InvalidArgument { .. })));
        }
    }

    #[test]
    fn conditional_writes_are_not_retried_and_plain_ones_are() {
        let mut request = Request::new(Method::PUT, "/kv/k".into());
        write_options(&mut request, &WriteOptions::new(), true).expect("options");
        assert!(request.idempotent);
        let mut request = Request::new(Method::PUT, "/kv/k".into());
        let options = WriteOptions::new().condition(Condition::Version(3));
        write_options(&mut request, &options, true).expect("options");
        assert!(!request.idempotent);
        assert_eq!(request.headers[header::IF_MATCH], "\"3\"");
        assert!(!Request::new(Method::POST, "/batch".into()).idempotent);
    }

    #[test]
    fn ttl_is_sent_in_whole_seconds_rounded_up() {
        let mut request = Request::new(Method::PUT, "/kv/k".into());
        let options = WriteOptions::new().ttl(Duration::from_millis(1500));
        write_options(&mut request, &options, true).expect("options");
        assert_eq!(request.query, vec![("ttl", "2".to_string())]);
        let mut request = Request::new(Method::PUT, "/kv/k".into());
        let zero = WriteOptions::new().ttl(Duration::ZERO);
        assert!(write_options(&mut request, &zero, true).is_err());
    }

    #[test]
    fn error_answers_become_typed_errors_with_their_detail() {
        let body = br#"{"detail": "precondition failed: the key is at version 7"}"#;
        match status_error(StatusCode::PRECONDITION_FAILED, body, "id".into()) {
            Error::PreconditionFailed { detail } => assert!(detail.contains("version 7")),
            other => panic!("{other:?}"),
        }
        match status_error(StatusCode::BAD_GATEWAY, b"upstream down", "id-1".into()) {
            Error::Server {
                status,
                detail,
                request_id,
            } => assert_eq!(
                (status, detail.as_str(), request_id.as_str()),
                (502, "upstream down", "id-1")
            ),
            other => panic!("{other:?}"),
        }
    }
}
