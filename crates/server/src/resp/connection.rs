//! One client connection: read what it sent, run every complete command in
//! order, answer them with one write; close on QUIT, a protocol error, the
//! client's end, or the server's shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::commands;
use super::frame::{self, Limits, ProtocolError};
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
    let config = shared.state().config().clone();
    let limits = Limits::for_values(config.max_value_size);
    // Under `sync=always` a write waits for an fsync: run such batches on
    // the blocking pool, not on an async worker.
    let blocking = config.sync == bitcask::SyncPolicy::Always;
    let mut session = Session::new(shared);
    let mut input = BytesMut::with_capacity(READ_ROOM);
    let mut out = Out::new(Protocol::Resp2);
    loop {
        if input.capacity() - input.len() < READ_ROOM {
            input.reserve(READ_ROOM);
        }
        let read = tokio::select! {
            read = stream.read_buf(&mut input) => read,
            () = super::stopped(&mut shutdown) => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (commands, protocol_error) = parse_all(&mut input, &limits);
        let flow;
        if blocking && commands.iter().any(|c| writes(c)) {
            let batch = tokio::task::spawn_blocking(move || {
                let flow = execute_all(&mut session, &commands, &mut out);
                (session, out, flow)
            })
            .await;
            let Ok((s, o, f)) = batch else {
                break; // the batch panicked: drop the connection
            };
            (session, out, flow) = (s, o, f);
        } else {
            flow = execute_all(&mut session, &commands, &mut out);
        }
        if let Some(error) = &protocol_error {
            out.error(&format!("ERR {error}"));
        }
        if !out.is_empty() {
            if stream.write_all(out.bytes()).await.is_err() {
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

/// Every complete command in `input`, and the protocol error that stopped
/// parsing, if one did (the commands before it still run).
fn parse_all(input: &mut BytesMut, limits: &Limits) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    let mut commands = Vec::new();
    loop {
        match frame::next_command(input, limits) {
            Ok(Some(command)) => commands.push(command),
            Ok(None) => return (commands, None),
            Err(error) => return (commands, Some(error)),
        }
    }
}

/// Runs `commands` in order; stops after a QUIT.
fn execute_all(session: &mut Session, commands: &[Vec<Bytes>], out: &mut Out) -> Flow {
    session.run_all(commands, out)
}

fn writes(command: &[Bytes]) -> bool {
    command
        .first()
        .and_then(|name| commands::lookup(name))
        .is_some_and(|spec| spec.write)
}
