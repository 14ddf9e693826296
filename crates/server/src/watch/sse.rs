//! The change feed as Server-Sent Events: the framing of events, progress
//! and endings, and the task that feeds one client through a queue of
//! bounded size.
//!
//! Each client has a producer task that reads its [`Feed`] and puts whole
//! chunks (whole batches, about [`CHUNK`] bytes) into a queue of at most
//! `--watch-max-backlog` bytes; the response body takes them out as the
//! connection can send them. A client that reads slowly only slows its own
//! producer (history stays in the files, not in memory); one that takes
//! nothing for `--watch-stall-timeout` while its queue is full is cut
//! off: its connection is closed, and it resumes from its last event.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;

use bitcask_wire::{Compacted, WatchEvent, WatchProgress};

use super::{Feed, FeedError};
use crate::state::AppState;

/// Bytes of events put in one queued chunk (a batch may make it larger).
pub const CHUNK: usize = 64 * 1024;

/// Appends `event` framed as an SSE message: `id` its seq (a reconnecting
/// `EventSource` sends it back as `Last-Event-ID`), `event` its op.
pub fn event(out: &mut Vec<u8>, event: &WatchEvent) {
    out.extend_from_slice(
        format!("id: {}\nevent: {}\ndata: ", event.seq, event.op.as_str()).as_bytes(),
    );
    // Serialising plain fields into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"\n\n");
}

/// Appends a `progress` message: every change below `next_seq` has been
/// looked at. Its `id` is `next_seq - 1`, so a reconnect resumes there.
pub fn progress(out: &mut Vec<u8>, next_seq: u64) {
    if let Some(last) = next_seq.checked_sub(1) {
        out.extend_from_slice(format!("id: {last}\n").as_bytes());
    }
    out.extend_from_slice(b"event: progress\ndata: ");
    let _ = serde_json::to_writer(&mut *out, &WatchProgress { next_seq });
    out.extend_from_slice(b"\n\n");
}

/// Appends a comment line (ignored by `EventSource`, read by people and
/// by this project's client).
pub fn comment(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b": ");
    out.extend_from_slice(text.replace('\n', " ").as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends the `compacted` message that ends a stream whose history a
/// merge dropped while it was being read.
pub fn compacted(out: &mut Vec<u8>, compacted_seq: u64) {
    out.extend_from_slice(b"event: compacted\ndata: ");
    let body = Compacted {
        detail: FeedError::Compacted(compacted_seq).to_string(),
        compacted_seq,
    };
    let _ = serde_json::to_writer(&mut *out, &body);
    out.extend_from_slice(b"\n\n");
}

/// Starts streaming `feed` to a client: the response body. `slot` is the
/// watcher's place under `--watch-max`, held until the stream ends.
pub fn start(state: AppState, feed: Feed, slot: OwnedSemaphorePermit) -> axum::body::Body {
    let config = state.config();
    let backlog = config.watch_max_backlog;
    let (queue, chunks) = mpsc::channel(backlog.div_ceil(CHUNK).max(1));
    let (cut, cut_signal) = oneshot::channel();
    let producer = Producer {
        stall: config.watch_stall_timeout,
        // Often enough that an idle stream is not closed by the idle
        // time-out.
        progress_every: config.watch_progress_interval.min(config.idle_timeout / 2),
        state,
        queue,
        cut: Some(cut),
    };
    tokio::spawn(async move {
        let _slot = slot;
        producer.run(feed).await;
    });
    axum::body::Body::from_stream(EventBody {
        chunks,
        cut: Some(cut_signal),
    })
}

/// The task that reads one client's feed into its queue.
struct Producer {
    state: AppState,
    queue: mpsc::Sender<Bytes>,
    /// Fired to close the connection of a client that stopped reading.
    cut: Option<oneshot::Sender<()>>,
    stall: Duration,
    progress_every: Duration,
}

/// Whether the stream goes on after a send.
enum Sent {
    Ok,
    /// The client is gone or was cut: stop.
    Ended,
}

impl Producer {
    async fn run(mut self, mut feed: Feed) {
        let hub = std::sync::Arc::clone(self.state.watchers());
        let mut stopping = hub.stopping();
        let mut out = Vec::new();
        // First, where the stream starts (a watch "from now" learns it).
        progress(&mut out, feed.next_seq());
        if let Sent::Ended = self.send(&mut out).await {
            return;
        }
        let mut last_sent = Instant::now();
        loop {
            if *stopping.borrow() {
                comment(
                    &mut out,
                    &format!(
                        "closed: the server is stopping; resume from {}",
                        feed.next_seq()
                    ),
                );
                self.send_last(out);
                return;
            }
            let read = match feed.read(usize::MAX, CHUNK).await {
                Ok(read) => read,
                Err(FeedError::Compacted(seq)) => {
                    compacted(&mut out, seq);
                    self.send_last(out);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "a watch ended");
                    comment(
                        &mut out,
                        &format!("closed: {error}; resume from {}", feed.next_seq()),
                    );
                    self.send_last(out);
                    return;
                }
            };
            if !read.sse.is_empty() {
                // Whole batches encoded once for every such stream.
                hub.sent(read.sse_events);
                for chunk in read.sse {
                    if let Sent::Ended = self.send_bytes(chunk).await {
                        return;
                    }
                }
                last_sent = Instant::now();
                continue;
            }
            if !read.events.is_empty() {
                for change in &read.events {
                    event(&mut out, &WatchEvent::from(change));
                }
                hub.sent(read.events.len());
                if let Sent::Ended = self.send(&mut out).await {
                    return;
                }
                last_sent = Instant::now();
                continue;
            }
            let due = last_sent + self.progress_every;
            if !read.caught_up {
                // Replaying history the filter does not match: say how far
                // it has got now and then, and read on.
                if Instant::now() >= due {
                    progress(&mut out, feed.next_seq());
                    if let Sent::Ended = self.send(&mut out).await {
                        return;
                    }
                    last_sent = Instant::now();
                }
                // (The shared tail is read without waiting: let the other
                // tasks of this thread run between two reads.)
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = feed.wait() => {}
                () = tokio::time::sleep_until(due) => {
                    progress(&mut out, feed.next_seq());
                    if let Sent::Ended = self.send(&mut out).await {
                        return;
                    }
                    last_sent = Instant::now();
                }
                _ = stopping.changed() => {}
                () = self.queue.closed() => return,
            }
        }
    }

    /// Queues the stream's last message if there is room (an ending never
    /// waits for a client).
    fn send_last(&self, out: Vec<u8>) {
        let _ = self.queue.try_send(Bytes::from(out));
    }

    /// Queues `out` (emptied) for the client; cuts the client off if its
    /// queue stays full for the stall time-out.
    async fn send(&mut self, out: &mut Vec<u8>) -> Sent {
        self.send_bytes(Bytes::from(std::mem::take(out))).await
    }

    /// Queues `chunk` for the client (see [`Self::send`]).
    async fn send_bytes(&mut self, chunk: Bytes) -> Sent {
        match tokio::time::timeout(self.stall, self.queue.send(chunk)).await {
            Ok(Ok(())) => Sent::Ok,
            Ok(Err(_)) => Sent::Ended,
            Err(_) => {
                tracing::info!(
                    stall = ?self.stall,
                    "a watch stream was cut: its client took nothing while its backlog was full"
                );
                self.state.watchers().cut_one();
                if let Some(cut) = self.cut.take() {
                    let _ = cut.send(());
                }
                Sent::Ended
            }
        }
    }
}

/// The response body: the queued chunks, or an error (the connection is
/// closed at once) when the producer cuts the client off.
struct EventBody {
    chunks: mpsc::Receiver<Bytes>,
    cut: Option<oneshot::Receiver<()>>,
}

impl Stream for EventBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(cut) = self.cut.as_mut() {
            match Pin::new(cut).poll(cx) {
                Poll::Ready(Ok(())) => {
                    self.cut = None;
                    self.chunks.close();
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the watch's client took nothing for the stall time-out",
                    ))));
                }
                // The producer ended without cutting: just drain.
                Poll::Ready(Err(_)) => self.cut = None,
                Poll::Pending => {}
            }
        }
        self.chunks.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}
