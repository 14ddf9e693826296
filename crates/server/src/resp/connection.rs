//! One client connection: read what it sent, run every complete command in
//! order, answer them with one write; close on QUIT, a protocol error, the
//! client's end, or the server's shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::commands;
use super::frame::{self, Commands, Limits};
use super::reply::{Out, Protocol};
use super::session::{Flow, Session, Shared};

/// Bytes of free room kept in the read buffer before each read.
const READ_ROOM: usize = 16 * 1024;

/// Counts the connection in `connected` while it lives.
struct Connected(Arc<Shared>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it ends. `_permit` is its place under the
/// connection limit.
pub async fn run(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let _connected = Connected(Arc::clone(&shared));
    let config = shared.state().config();
    let limits = Limits::for_values(config.max_value_size);
    // Under `sync=always` a write waits for an fsync: run such batches on
    // the blocking pool, not on an async worker.
    let blocking = config.sync == bitcask::SyncPolicy::Always;
    let mut session = Session::new(shared);
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut out = Out::new(Protocol::Resp2);
    // Where the arguments of the commands of one read lie (reused).
    let mut spans = Vec::new();
    let mut ends = Vec::new();
    loop {
        if input.capacity() - input.len() < READ_ROOM {
            input.reserve(READ_ROOM);
        }
        let ready = tokio::select! {
            ready = stream.readable() => ready,
            () = crate::server::stopped(&mut shutdown) => break,
        };
        if ready.is_err() {
            break;
        }
        match read_once(&stream, &mut input) {
            Read::Data => {}
            Read::NotYet => continue,
            Read::Closed => break,
        }
        spans.clear();
        ends.clear();
        let (used, protocol_error) = frame::parse_all(&input, &limits, &mut spans, &mut ends);
        let commands = Commands {
            data: &input[..used],
            spans: &spans,
            ends: &ends,
        };
        let flow;
        if blocking && (0..commands.len()).any(|i| writes(&commands, i)) {
            // What the blocking task needs, moved there and handed back after
            // (the commands' bytes are split off the buffer, not copied).
            let data = input.split_to(used).freeze();
            let moved = (std::mem::take(&mut spans), std::mem::take(&mut ends));
            let batch = tokio::task::spawn_blocking(move || {
                let (spans, ends) = moved;
                let commands = Commands {
                    data: &data,
                    spans: &spans,
                    ends: &ends,
                };
                let flow = session.run_all(&commands, &mut out);
                (session, out, flow, spans, ends)
            })
            .await;
            let Ok((s, o, f, sp, en)) = batch else {
                break; // the batch panicked: drop the connection
            };
            (session, out, flow, spans, ends) = (s, o, f, sp, en);
        } else {
            flow = session.run_all(&commands, &mut out);
            input.advance(used);
        }
        if let Some(error) = &protocol_error {
            out.error(&format!("ERR {error}"));
        }
        if !out.is_empty() {
            // A client that stops reading must not hold up a shutdown.
            let written = tokio::select! {
                biased;
                written = stream.write_all(out.bytes()) => written,
                () = crate::server::stopped(&mut shutdown) => break,
            };
            if written.is_err() {
                break;
            }
            out.clear();
        }
        if flow == Flow::Close || protocol_error.is_some() {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// What one read got.
enum Read {
    /// Bytes were appended to the buffer.
    Data,
    /// Nothing to read after all (a spurious wake-up).
    NotYet,
    /// The client closed the connection, or it failed.
    Closed,
}

/// Reads what the socket holds into `input`.
///
/// A read that does not fill the buffer drained the socket, so the socket's
/// readiness is cleared right away instead of by one more `read` that would
/// fail with `EAGAIN` (tokio's epoll is edge-triggered: bytes arriving later
/// raise a new event, and tokio keeps a readiness that arrived meanwhile).
/// That saves a system call per request; at one command per read it was
/// about 5% of the time (docs/BENCHMARKS.md).
fn read_once(stream: &TcpStream, input: &mut BytesMut) -> Read {
    let room = input.capacity() - input.len();
    let mut got = None;
    let result = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = stream.try_read_buf(input)?;
        got = Some(n);
        if n > 0 && n < room {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match (got, result) {
        (Some(0), _) => Read::Closed,
        (Some(_), _) => Read::Data,
        (None, Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Read::NotYet,
        (None, _) => Read::Closed,
    }
}

/// Whether command `i` may write.
fn writes(commands: &Commands<'_>, i: usize) -> bool {
    commands
        .arg(i, 0)
        .and_then(commands::lookup)
        .is_some_and(|spec| spec.write)
}
