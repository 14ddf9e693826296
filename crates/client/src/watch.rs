//! The change feed (`GET /watch`, docs/WATCH.md) as a stream of events that
//! reconnects by itself: after a dropped connection, a server restart or a
//! silent stream it asks again from the seq after the last one it yielded,
//! so no event is skipped or repeated. History a merge has dropped ends
//! the stream with [`Error::Compacted`].

use std::time::Duration;

use bitcask_wire::{SseDecoder, WatchEvent, WatchOp, WatchProgress};
use futures_util::stream::{self, Stream};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::client::Client;
use crate::error::{Error, Result};

/// Longest silence before a stream is taken for dead and reopened. The
/// server sends progress every 10 s by default.
const SILENCE: Duration = Duration::from_secs(35);
/// Longest SSE message accepted (a 1 MiB value in base64 and JSON, with
/// room to spare).
const MAX_MESSAGE: usize = 64 << 20;
/// Failed reconnections in a row before a watch gives up (at the client's
/// backoff, capped at 2 s: about a minute, enough for a restart), unless
/// the client's own retries are more.
const MIN_RETRIES: u32 = 30;

/// What to watch: a key prefix or range, some ops, from a seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only keys at or after this one (not with `prefix`).
    pub start: Option<String>,
    /// Only keys before this one (not with `prefix`).
    pub end: Option<String>,
    /// Only these ops (all if empty).
    pub ops: Vec<WatchOp>,
    /// The first seq (inclusive); `None`: from now.
    pub from_seq: Option<u64>,
}

impl WatchOptions {
    /// Every change from now on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys that start with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only keys in `[start, end)`.
    pub fn range(mut self, start: impl Into<String>, end: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self.end = Some(end.into());
        self
    }

    /// Only these ops.
    pub fn ops(mut self, ops: impl IntoIterator<Item = WatchOp>) -> Self {
        self.ops = ops.into_iter().collect();
        self
    }

    /// From `seq` on (inclusive), as far back as the server's files go.
    pub fn from_seq(mut self, seq: u64) -> Self {
        self.from_seq = Some(seq);
        self
    }

    fn query(&self, from: Option<u64>) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        for (name, value) in [
            ("prefix", &self.prefix),
            ("start", &self.start),
            ("end", &self.end),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if !self.ops.is_empty() {
            let ops: Vec<&str> = self.ops.iter().map(|op| op.as_str()).collect();
            query.push(("ops", ops.join(",")));
        }
        if let Some(from) = from {
            query.push(("from_seq", from.to_string()));
        }
        query
    }
}

/// A stream's state between two events.
struct Watching {
    client: Client,
    options: WatchOptions,
    /// Where to resume: the seq after the last event yielded (or the
    /// position the server last reported).
    next_seq: Option<u64>,
    open: Option<(reqwest::Response, SseDecoder)>,
    /// Failed attempts in a row.
    failures: u32,
    ended: bool,
}

/// What one message of the stream meant.
enum Message {
    Event(WatchEvent),
    Nothing,
    End(Error),
}

impl Watching {
    /// The next event, or the error that ends the stream.
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        while !self.ended {
            let Some((response, decoder)) = self.open.as_mut() else {
                if let Err(error) = self.connect().await {
                    let patience = self.client.retries().max(MIN_RETRIES);
                    if self.failures >= patience || !retryable(&error) {
                        self.ended = true;
                        return Some(Err(error));
                    }
                    tokio::time::sleep(self.client.backoff(self.failures, None)).await;
                    self.failures += 1;
                }
                continue;
            };
            if let Some(message) = decoder.next_message() {
                match self.take(message) {
                    Message::Event(event) => return Some(Ok(event)),
                    Message::Nothing => continue,
                    Message::End(error) => {
                        self.ended = true;
                        return Some(Err(error));
                    }
                }
            }
            match tokio::time::timeout(SILENCE, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    if let Err(too_long) = decoder.push(&bytes, MAX_MESSAGE) {
                        self.ended = true;
                        return Some(Err(Error::InvalidResponse {
                            detail: too_long.to_string(),
                        }));
                    }
                }
                // Ended, broken or silent: ask again from where it stood.
                Ok(Ok(None) | Err(_)) | Err(_) => self.open = None,
            }
        }
        None
    }

    async fn connect(&mut self) -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        let from = self.next_seq.or(self.options.from_seq);
        let response = self
            .client
            .open_stream("/watch", &self.options.query(from), headers)
            .await?;
        self.failures = 0;
        self.open = Some((response, SseDecoder::new()));
        Ok(())
    }

    fn take(&mut self, message: bitcask_wire::SseMessage) -> Message {
        let invalid = |detail: String| Message::End(Error::InvalidResponse { detail });
        match message.event.as_str() {
            "progress" => match serde_json::from_str::<WatchProgress>(&message.data) {
                Ok(progress) => {
                    self.next_seq = Some(progress.next_seq);
                    Message::Nothing
                }
                Err(e) => invalid(format!("a progress message that does not parse: {e}")),
            },
            "compacted" => match serde_json::from_str::<bitcask_wire::Compacted>(&message.data) {
                Ok(gone) => Message::End(Error::Compacted {
                    compacted_seq: gone.compacted_seq,
                }),
                Err(e) => invalid(format!("a compacted message that does not parse: {e}")),
            },
            "put" | "delete" | "expire" => {
                match serde_json::from_str::<WatchEvent>(&message.data) {
                    Ok(event) => {
                        self.next_seq = Some(event.seq + 1);
                        Message::Event(event)
                    }
                    Err(e) => invalid(format!("an event that does not parse: {e}")),
                }
            }
            // Comments (a closing reason) and messages of later versions.
            _ => Message::Nothing,
        }
    }
}

/// Whether a failed (re)connection is worth another try.
fn retryable(error: &Error) -> bool {
    matches!(
        error,
        Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Unavailable { .. }
            | Error::Transport { .. }
    )
}

impl Client {
    /// The changes `options` select, as they are committed (docs/WATCH.md):
    /// in seq order, each once, whole batches together. The stream
    /// reconnects by itself (a dropped connection, a server restart),
    /// resuming after the last event it yielded; it ends with
    /// [`Error::Compacted`] if the history it needs was dropped by a merge,
    /// or with the error of reconnections that failed for about a minute
    /// in a row (or the client's retries, if more).
    pub fn watch(
        &self,
        options: WatchOptions,
    ) -> impl Stream<Item = Result<WatchEvent>> + Send + 'static {
        let watching = Watching {
            client: self.clone(),
            options,
            next_seq: None,
            open: None,
            failures: 0,
            ended: false,
        };
        stream::unfold(watching, |mut watching| async move {
            let item = watching.next().await?;
            Some((item, watching))
        })
    }
}
