//! The Redis-protocol (RESP) listener: redis-cli, redis-benchmark and Redis
//! client libraries against the same store as the HTTP API. What it
//! supports and how it differs from Redis: docs/RESP.md.
//!
//! Modules: `frame` (parsing commands, limits), `reply` (writing RESP2/3),
//! `session` (per-connection state and the connection/server commands),
//! `commands` (the command table and the data commands), `counts` (commands
//! counted by command), `glob` (KEYS/SCAN patterns),
//! `reads` (the read commands on any store), `transaction`
//! (MULTI/EXEC/WATCH), `connection` (the read-execute-write loop).

mod commands;
pub use commands::{Cmd, Spec, lookup, write_command};
mod connection;
pub mod counts;
pub mod frame;
mod glob;
pub mod pubsub;
mod reads;
pub mod reply;
mod session;
mod settings;
mod strings;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::metrics::Listener;
use crate::state::AppState;
use session::Shared;

/// Longest time spent telling a refused connection why.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection handed to a worker: the socket, the client's address and
/// its place under the limit.
type Handoff = (
    std::net::TcpStream,
    std::net::SocketAddr,
    OwnedSemaphorePermit,
);

/// The answer to a connection over the limit (Redis's words).
const TOO_MANY: &[u8] = b"-ERR max number of clients reached\r\n";

/// Accepts connections on `listener` until `shutdown` turns true, then
/// waits for every connection to finish the commands it has read.
///
/// Connections are served by `resp_threads` worker threads, each running
/// its own single-threaded runtime (thread per core, as Redis's I/O threads
/// or KeyDB do): a connection stays on one thread, so waking it never
/// crosses threads, and the threads only meet in the engine. Measured
/// against tokio's work-stealing runtime in docs/BENCHMARKS.md.
pub async fn serve(listener: TcpListener, state: AppState, mut shutdown: watch::Receiver<bool>) {
    let local = listener.local_addr().ok();
    let port = local.map_or(0, |a| a.port());
    // The ceiling; `CONFIG SET maxclients` may lower the limit under it.
    let ceiling = state.caps().resp;
    let limit = Arc::new(Semaphore::new(ceiling));
    let threads = state.config().resp_threads;
    let shared = Arc::new(Shared::new(state, port));
    let mut workers = Vec::with_capacity(threads);
    let mut finished = JoinSet::new();
    for i in 0..threads {
        let (to_worker, from_acceptor) = mpsc::unbounded_channel::<Handoff>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (shared, stop) = (Arc::clone(&shared), shutdown.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bitcask-resp-{i}"))
            .spawn(move || {
                worker(from_acceptor, shared, stop);
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => {
                workers.push(to_worker);
                finished.spawn(done_rx);
            }
            Err(error) => tracing::error!(%error, "cannot start a RESP worker thread"),
        }
    }
    if workers.is_empty() {
        tracing::error!("no RESP worker thread: the RESP listener is off");
        return;
    }
    tracing::info!(
        addr = %local.map_or_else(String::new, |a| a.to_string()),
        port,
        threads = workers.len(),
        max_connections = limit.available_permits(),
        "RESP listener accepting"
    );
    let mut next = 0usize;
    loop {
        tokio::select! {
            () = crate::server::stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admit(&limit, ceiling, shared.settings().max_clients()) {
                    Some(permit) => {
                        // Move the socket to a worker's runtime.
                        let Ok(stream) = stream.into_std() else { continue };
                        let worker = &workers[next % workers.len()];
                        next = next.wrapping_add(1);
                        let _ = worker.send((stream, peer, permit));
                    }
                    None => {
                        shared.state().metrics().connection_refused(Listener::Resp);
                        tracing::debug!(%peer, "RESP connection refused: at the connection limit");
                        // The answer fits any socket's send buffer; the
                        // time-out is for form's sake.
                        tokio::spawn(async move {
                            let mut stream = stream;
                            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, stream.write_all(TOO_MANY)).await;
                        });
                    }
                },
                Err(error) => {
                    // Out of descriptors, usually: wait a moment, go on.
                    tracing::warn!(%error, "RESP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!("RESP listener stopping; finishing connections");
    drop(workers);
    while finished.join_next().await.is_some() {}
}

/// A place for one more connection, if fewer than `max_clients` of the
/// `ceiling` places of `limit` are taken.
fn admit(
    limit: &Arc<Semaphore>,
    ceiling: usize,
    max_clients: usize,
) -> Option<OwnedSemaphorePermit> {
    let open = ceiling.saturating_sub(limit.available_permits());
    if open >= max_clients {
        return None;
    }
    Arc::clone(limit).try_acquire_owned().ok()
}

/// One worker thread: serves the connections it is handed until the
/// acceptor is gone and they have all ended.
fn worker(
    mut connections: mpsc::UnboundedReceiver<Handoff>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start a RESP worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                handed = connections.recv() => match handed {
                    Some((stream, peer, permit)) => match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => {
                            running.spawn(connection::run(stream, peer, Arc::clone(&shared), stop.clone(), permit));
                        }
                        Err(error) => tracing::warn!(%error, "cannot adopt a RESP connection"),
                    },
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        while running.join_next().await.is_some() {}
    });
}
