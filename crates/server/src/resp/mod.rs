//! The Redis-protocol (RESP) listener: redis-cli, redis-benchmark and Redis
//! client libraries against the same store as the HTTP API. What it
//! supports and how it differs from Redis: docs/RESP.md.
//!
//! Modules: `frame` (parsing commands, limits), `reply` (writing RESP2/3),
//! `session` (per-connection state and the connection/server commands),
//! `commands` (the data commands), `glob` (KEYS/SCAN patterns),
//! `connection` (the read-execute-write loop).

mod commands;
mod connection;
pub mod frame;
mod glob;
pub mod reply;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::state::AppState;
use session::Shared;

/// Accepts connections on `listener` until `shutdown` turns true, then
/// waits for every connection to finish the commands it has read.
pub async fn serve(listener: TcpListener, state: AppState, mut shutdown: watch::Receiver<bool>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let limit = Arc::new(Semaphore::new(state.config().resp_max_connections));
    let shared = Arc::new(Shared::new(state, port));
    tracing::info!(port, "RESP listener accepting");
    let mut connections = JoinSet::new();
    // Each connection watches its own copy of the stop signal.
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match Arc::clone(&limit).try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(connection::run(
                            stream,
                            Arc::clone(&shared),
                            for_connections.clone(),
                            permit,
                        ));
                    }
                    Err(_) => {
                        connections.spawn(async move {
                            let mut stream = stream;
                            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
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
    while connections.join_next().await.is_some() {}
}

/// Completes once `shutdown` is true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // (The guard `wait_for` returns is dropped here, not held across awaits.)
    let _ = shutdown.wait_for(|stop| *stop).await;
}
