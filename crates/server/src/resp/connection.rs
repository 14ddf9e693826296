//! One client connection: read what it sent, run every complete command in
//! order, send the replies; close on QUIT, a protocol error, the client's
//! end, a time-out, a limit, or the server's shutdown.
//!
//! What a connection holds is bounded. Its input holds at most one
//! unfinished command (within the parser's limits, which are tiny before
//! `AUTH`). Its output is sent whenever it reaches [`super::reply::FLUSH_AT`] bytes,
//! before more commands run, and nothing more is read until it is sent, so
//! a client that pipelines large reads without reading the replies is held
//! back by its own TCP window, not buffered (Redis's output-buffer limits
//! answer the same threat by disconnecting).

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::commands::{self, Progress};
use super::frame::{Commands, Parser};
use super::reply::{Out, Protocol};
use super::session::{Flow, Session, Shared};
use crate::metrics::Disconnect;
use crate::watch::{Feed, FeedError, Filter, op_of};

/// Bytes of free room kept in the read buffer before each read.
const READ_ROOM: usize = 16 * 1024;
/// With a token set, how long a new connection has to authenticate.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sending replies may make no progress (the client stopped
/// reading) before the connection is dropped; `--resp-idle-timeout` if
/// that is shorter.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What running commands needs, in one value so that it can move to the
/// blocking pool and back.
struct Work {
    session: Session,
    out: Out,
    /// Where the arguments of the commands of one parse lie (reused).
    spans: Vec<Range<usize>>,
    ends: Vec<usize>,
    progress: Progress,
}

impl Work {
    /// Runs the parsed commands (whose bytes are `data`) until they are
    /// done or the output is full.
    fn run(&mut self, data: &[u8]) -> Flow {
        let commands = Commands {
            data,
            spans: &self.spans,
            ends: &self.ends,
        };
        self.session
            .run_some(&commands, &mut self.progress, &mut self.out)
    }

    /// Whether every parsed command has run.
    fn done(&self) -> bool {
        self.progress.next >= self.ends.len()
    }
}

/// Serves one connection from `peer` until it ends. `_permit` is its place
/// under the connection limit.
pub async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    // (Its own handle: `shared` moves into the session.)
    let gauges = Arc::clone(&shared);
    let _connected = gauges.state().metrics().resp_connection_opened();
    let config = shared.state().config();
    // Under `sync=always` a write waits for an fsync: such commands run on
    // the blocking pool, not on the connection's thread; so do commands
    // that walk the key space.
    let sync_always = config.sync == bitcask::SyncPolicy::Always;
    let clustered = shared.state().is_clustered();
    // `CONFIG SET timeout` changes the idle time-out of every connection:
    // a waiting one is woken to take it.
    let mut timeout_changes = gauges.settings().watch_idle_timeout();
    let mut idle_timeout = *timeout_changes.borrow_and_update();
    let stall_for = |idle: Option<Duration>| {
        idle.map_or(WRITE_STALL_TIMEOUT, |idle| idle.min(WRITE_STALL_TIMEOUT))
    };
    let mut stall = stall_for(idle_timeout);
    let connected_at = Instant::now();
    let mut work = Work {
        session: Session::new(shared, peer),
        out: Out::new(Protocol::Resp2),
        spans: Vec::new(),
        ends: Vec::new(),
        progress: Progress::default(),
    };
    // Keyspace notifications: the change feed, read once the connection
    // subscribes, woken by each commit.
    let mut feed: Option<Feed> = None;
    let mut feed_behind = false;
    let mut parser = Parser::new();
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut need_bytes = true;
    let mut last_command = connected_at;
    loop {
        if need_bytes {
            // Send what is answered before waiting for more; but first let
            // every other connection with input ready run its commands
            // (`yield_now` puts this task behind them, until the runtime's
            // next look at its sockets), so that the replies of one round
            // leave together, as Redis sends its replies just before it
            // sleeps. Sent one connection at a time between commands, each
            // reply woke a client that had just gone to sleep: on the
            // pipelined INCR benchmark 89,000 client context switches a
            // second against 13,000, and 0.51-0.61x Redis's throughput
            // against 1.0x (docs/BENCHMARKS.md).
            if !work.out.is_empty() {
                tokio::task::yield_now().await;
            }
            if !work.out.is_empty()
                && !send(
                    &mut stream,
                    &mut work.out,
                    &mut shutdown,
                    &mut work.session,
                    stall,
                )
                .await
            {
                return;
            }
            if input.capacity() - input.len() < READ_ROOM {
                input.reserve(READ_ROOM);
            }
            match (work.session.subscriptions(), feed.is_some()) {
                (Some(subs), false) => {
                    feed = open_feed(gauges.state(), subs.from_seq);
                    feed_behind = feed.is_some();
                }
                (None, true) => feed = None,
                _ => {}
            }
            let deadline = if !work.session.is_authenticated() {
                Some((connected_at + AUTH_TIMEOUT, Disconnect::AuthTimeout))
            } else {
                idle_timeout.map(|idle| (last_command + idle, Disconnect::IdleTimeout))
            };
            let ready = tokio::select! {
                ready = stream.readable() => ready,
                () = crate::server::stopped(&mut shutdown) => break,
                Ok(()) = timeout_changes.changed() => {
                    idle_timeout = *timeout_changes.borrow_and_update();
                    stall = stall_for(idle_timeout);
                    continue;
                }
                // Keyspace notifications to send: the replies to commands
                // still come first (the loop's top sends them).
                () = std::future::ready(()), if feed_behind => {
                    feed_behind = notify(&mut feed, &mut work, gauges.settings()).await;
                    continue;
                }
                () = wait_feed(&mut feed), if feed.is_some() => {
                    feed_behind = notify(&mut feed, &mut work, gauges.settings()).await;
                    continue;
                }
                reason = expire(deadline) => {
                    tracing::debug!(%peer, reason = reason.label(), "closing a silent RESP connection");
                    work.session.close_for(reason);
                    break;
                }
            };
            if ready.is_err() {
                break;
            }
            match read_once(&stream, &mut input) {
                Read::Data => {}
                Read::NotYet => continue,
                Read::Closed => break,
            }
        }
        work.spans.clear();
        work.ends.clear();
        work.progress = Progress::default();
        // Before AUTH, one command at a time: the limits change once it
        // succeeds.
        let most = if work.session.is_authenticated() {
            usize::MAX
        } else {
            1
        };
        let limits = work.session.limits();
        let (used, protocol_error) =
            parser.parse(&input, &limits, most, &mut work.spans, &mut work.ends);
        // Parsed without a cap, every complete command was found: only new
        // bytes can make another (before AUTH, one at a time, parse again).
        need_bytes = work.ends.is_empty() || most == usize::MAX;
        let mut flow = Flow::Continue;
        if !work.ends.is_empty() {
            last_command = Instant::now();
            let to_pool = {
                let commands = Commands {
                    data: &input[..used],
                    spans: &work.spans,
                    ends: &work.ends,
                };
                clustered || needs_pool(&commands, sync_always)
            };
            // On the blocking pool the commands' bytes go along, split off
            // the buffer (not copied); inline they are read where they lie.
            let pooled = to_pool.then(|| input.split_to(used).freeze());
            loop {
                flow = match &pooled {
                    Some(data) => {
                        let data = data.clone();
                        let ran = tokio::task::spawn_blocking(move || {
                            let flow = work.run(&data);
                            (work, flow)
                        })
                        .await;
                        let Ok((back, ran)) = ran else {
                            return; // the commands panicked: drop the connection
                        };
                        work = back;
                        ran
                    }
                    None => work.run(&input[..used]),
                };
                if flow == Flow::Close || work.done() {
                    break;
                }
                if !send(
                    &mut stream,
                    &mut work.out,
                    &mut shutdown,
                    &mut work.session,
                    stall,
                )
                .await
                {
                    return;
                }
            }
            if pooled.is_none() {
                input.advance(used);
            }
        } else {
            input.advance(used);
        }
        if let Some(error) = &protocol_error {
            tracing::debug!(%peer, %error, "RESP protocol error; closing the connection");
            work.out.error(&format!("ERR {error}"));
            work.session.close_for(Disconnect::ProtocolError);
            flow = Flow::Close;
        }
        if flow == Flow::Close {
            // Replies so far are sent (QUIT's OK, the error), unless the
            // connection is dropped for what it asked or sent.
            if !matches!(
                work.session.disconnect(),
                Some(Disconnect::OutputLimit | Disconnect::CrossProtocol)
            ) && !work.out.is_empty()
            {
                let _ = send(
                    &mut stream,
                    &mut work.out,
                    &mut shutdown,
                    &mut work.session,
                    stall,
                )
                .await;
            }
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// A change feed for a subscribed connection, from `from_seq` (or from
/// now, if that history is gone); `None` while the store is not open.
fn open_feed(state: &crate::state::AppState, from_seq: u64) -> Option<Feed> {
    let store = state.try_store()?;
    let open = |from| Feed::open(state, &store, from, Filter::all(), true);
    match open(from_seq) {
        Ok(feed) => Some(feed),
        Err(FeedError::Compacted(_)) => open(store.position().next_seq).ok(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the change feed for keyspace notifications");
            None
        }
    }
}

/// Reads the feed on and writes the notifications the session subscribed
/// to into its output, up to about one output's worth. True if more are
/// waiting (send these first, then come back).
async fn notify(
    feed: &mut Option<Feed>,
    work: &mut Work,
    settings: &super::settings::Settings,
) -> bool {
    let Some(reader) = feed.as_mut() else {
        return false;
    };
    let flags = settings.keyspace_events();
    loop {
        let read = match reader.read(usize::MAX, super::reply::FLUSH_AT).await {
            Ok(read) => read,
            Err(error) => {
                // Opened again at the next turn, from where it stood (after
                // a pause: an error that stays must not spin).
                tracing::warn!(%error, "keyspace notifications: the change feed failed");
                *feed = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return false;
            }
        };
        work.session.notified_up_to(reader.next_seq());
        if let Some(subs) = work.session.subscriptions() {
            for change in &read.events {
                subs.deliver(flags, op_of(&change.op), &change.key, &mut work.out);
            }
        }
        if read.caught_up {
            return false;
        }
        if work.out.len() >= super::reply::FLUSH_AT {
            return true;
        }
    }
}

/// Completes when `feed` may have more to read; never without one.
async fn wait_feed(feed: &mut Option<Feed>) {
    match feed.as_mut() {
        Some(feed) => feed.wait().await,
        None => std::future::pending().await,
    }
}

/// Completes at `deadline` with its reason, or never if there is none.
async fn expire(deadline: Option<(Instant, Disconnect)>) -> Disconnect {
    match deadline {
        Some((at, reason)) => {
            tokio::time::sleep_until(at.into()).await;
            reason
        }
        None => std::future::pending().await,
    }
}

/// Sends and empties `out`. False if the connection is to be dropped: the
/// client went away, made no room for `stall`, or the
/// server is stopping (a client that does not read must not hold up a
/// shutdown).
///
/// Writes straight to the socket first; only a full socket makes it wait
/// (and set up the time-out), so the usual send costs one system call and
/// no timer.
async fn send(
    stream: &mut TcpStream,
    out: &mut Out,
    shutdown: &mut watch::Receiver<bool>,
    session: &mut Session,
    stall: Duration,
) -> bool {
    let mut sent = 0;
    while sent < out.len() {
        match stream.try_write(&out.bytes()[sent..]) {
            Ok(0) => return false,
            Ok(n) => {
                sent += n;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        let room = tokio::select! {
            biased;
            room = tokio::time::timeout(stall, stream.writable()) => room,
            () = crate::server::stopped(shutdown) => return false,
        };
        match room {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => {
                tracing::warn!(
                    peer = %session.peer(),
                    pending = out.len() - sent,
                    "RESP client stopped reading its replies; connection dropped"
                );
                session.close_for(Disconnect::WriteStalled);
                return false;
            }
        }
    }
    out.clear();
    out.shrink();
    true
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

/// Whether `commands` must run on the blocking pool: one walks the key
/// space, or, under `sync=always`, one writes. (On a cluster node every
/// command goes there: a data command waits for the cluster.)
fn needs_pool(commands: &Commands<'_>, sync_always: bool) -> bool {
    (0..commands.len()).any(|i| {
        let Some(name) = commands.arg(i, 0) else {
            return false;
        };
        commands::is_slow(name)
            || (sync_always && commands::lookup(name).is_some_and(|spec| spec.write))
    })
}
