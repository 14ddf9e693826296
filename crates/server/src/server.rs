//! Running the server: bind, open the store in the background (answering
//! `/health` with "loading" meanwhile), serve until a shutdown signal, then
//! finish in-flight requests, sync and close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bitcask::Bitcask;
use tokio::net::TcpListener;

use crate::app::router;
use crate::config::{Config, show_duration};
use crate::state::AppState;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Open(bitcask::Error),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// Closing the store reported an error (writes may not be durable).
    #[error("closing the store failed: {0}")]
    Close(bitcask::Error),
    /// A background task panicked.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The cluster node could not start or stop.
    #[error("cluster node: {0}")]
    Cluster(std::io::Error),
}

/// The bound sockets: HTTP, and RESP if configured.
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP listener.
    pub http: TcpListener,
    /// The Redis-protocol listener, if `resp_port` is set.
    pub resp: Option<TcpListener>,
    /// The cluster's peer listener, if `node_id` is set.
    pub peer: Option<TcpListener>,
}

impl Listeners {
    /// The HTTP address (port 0 in the settings picks a free one).
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The RESP address, if that listener is on.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The peer address, in cluster mode.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Binds the configured addresses; their local addresses are the ones to
/// use (port 0 picks a free port).
pub async fn bind(config: &Config) -> Result<Listeners, ServeError> {
    let bind_one = |port| async move {
        let addr = SocketAddr::new(config.host, port);
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let http = bind_one(config.port).await?;
    let resp = match config.resp_port {
        Some(port) => Some(bind_one(port).await?),
        None => None,
    };
    let peer = match (config.node_id, config.peer_port) {
        (Some(_), Some(port)) => Some(bind_one(port).await?),
        _ => None,
    };
    Ok(Listeners { http, resp, peer })
}

/// Serves on `listener` until `shutdown` completes, then drains requests
/// (for up to `shutdown_timeout`) and closes the store.
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_until(listeners, config, shutdown, std::future::pending()).await
}

/// [`serve`], and when `immediate` completes (a second signal) during the
/// drain, stop waiting for requests: sync the store and return at once.
pub async fn serve_until(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    immediate: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_state(listeners, new_state(config)?, shutdown, immediate).await
}

fn new_state(config: Config) -> Result<AppState, ServeError> {
    AppState::new(config).map_err(|e| ServeError::Serve(std::io::Error::other(e)))
}

/// Logs what the server is about to do: its version, addresses, store,
/// durability, authentication and limits, and each setting that is not at
/// its default with where it came from.
fn announce(listeners: &Listeners, state: &AppState) {
    let config = state.config();
    let caps = state.caps();
    let show = |addr: Option<SocketAddr>| addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let mode = config.node_id.map_or_else(
        || "single node".to_string(),
        |id| format!("cluster node {id}"),
    );
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        http = %show(listeners.http_addr().ok()),
        resp = %show(listeners.resp_addr()),
        peer = %show(listeners.peer_addr()),
        data_dir = %data_dir.display(),
        sync = %crate::config::show_sync(config.sync),
        auth = if config.auth_token.is_some() { "on" } else { "off" },
        %mode,
        "bitcask-server starting"
    );
    tracing::info!(
        max_connections = caps.http,
        resp_max_connections = caps.resp,
        max_concurrent_requests = config.max_concurrent_requests,
        rate_limit = %config.rate_limit.map_or_else(|| "off".to_string(), |r| format!("{r}/s")),
        request_timeout = %show_duration(config.request_timeout),
        idle_timeout = %show_duration(config.idle_timeout),
        shutdown_timeout = %show_duration(config.shutdown_timeout),
        max_key_size = config.max_key_size,
        max_value_size = config.max_value_size,
        max_file_size = config.max_file_size,
        body_min_rate = config.body_min_rate,
        resp_max_output = config.resp_max_output,
        watch_max = config.watch_max,
        watch_max_backlog = config.watch_max_backlog,
        "limits"
    );
    let given: Vec<String> = config.origins.iter().map(ToString::to_string).collect();
    tracing::info!(
        given = %if given.is_empty() { "none".to_string() } else { given.join(", ") },
        "settings from flags, the environment or the file (the rest are defaults)"
    );
}

/// [`serve`] with a state made by the caller (who may watch it).
async fn serve_state(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    immediate: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    announce(&listeners, &state);
    let Listeners {
        http: listener,
        resp,
        peer,
    } = listeners;
    let config = state.config().clone();
    let app = router(state.clone());
    let caps = state.caps();
    if caps.lowered {
        tracing::warn!(
            limit = crate::descriptors::descriptor_limit(),
            http = caps.http,
            resp = caps.resp,
            "connection caps lowered to fit the descriptor limit (ulimit -n); \
             raise it to allow more"
        );
    }

    // One stop signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(peer) = peer {
        let stop = (stop_tx, stop_rx);
        return serve_cluster(listener, resp, peer, state, (shutdown, immediate), stop).await;
    }

    // Open the store off the async workers; routes answer 503 until then.
    // If the open fails, the server stops.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    let opening = {
        let state = state.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let options = config
                .engine_options()
                .open_progress(state.open_progress().clone());
            let started = std::time::Instant::now();
            match Bitcask::open_with(&config.data_dir, options) {
                Ok(store) => {
                    let took = started.elapsed();
                    tracing::info!(keys = store.len(), took = ?took, "store open");
                    state.set_store(Arc::new(store));
                    Ok(())
                }
                Err(error) => {
                    // (Reported once, by whoever gets the error back.)
                    let _ = failed_tx.send(());
                    Err(error)
                }
            }
        })
    };
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            Ok(_) = failed_rx => {}
        }
        let _ = stop_tx.send(true);
    });
    let resp_task = resp
        .map(|listener| tokio::spawn(crate::resp::serve(listener, state.clone(), stop_rx.clone())));
    let cap = (state.caps().http, crate::metrics::Listener::Http);
    let drained = async {
        serve_http(listener, app, cap, state.clone(), stop_rx).await;
        if let Some(task) = resp_task {
            task.await?;
        }
        opening.await?.map_err(ServeError::Open)
    };
    tokio::select! {
        biased;
        drained = drained => drained?,
        () = immediate => tracing::warn!("second signal: not waiting any longer; syncing and stopping"),
    }
    tracing::info!("closing the store");
    let Some(store) = state.try_store() else {
        return Ok(());
    };
    drop(state);
    tokio::task::spawn_blocking(move || match Arc::try_unwrap(store) {
        Ok(store) => store.close().map_err(ServeError::Close),
        // Some task still holds the store (cannot happen once serving has
        // drained); sync what we can and let the drop close it.
        Err(store) => store.sync().map_err(ServeError::Close),
    })
    .await?
}

/// [`serve_state`] for a cluster node: start the node (its state machine
/// is the store) before answering, serve the peer port beside the client
/// ones, and stop the node when they are drained.
async fn serve_cluster(
    listener: TcpListener,
    resp: Option<TcpListener>,
    peer: TcpListener,
    state: AppState,
    (shutdown, immediate): (
        impl Future<Output = ()> + Send + 'static,
        impl Future<Output = ()> + Send,
    ),
    (stop_tx, stop_rx): (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::watch::Receiver<bool>,
    ),
) -> Result<(), ServeError> {
    use bitcask_cluster::node::{Node, NodeConfig};
    let config = state.config().clone();
    let peer_local = peer.local_addr().map_err(ServeError::Serve)?;
    let node_id = config.node_id.unwrap_or_default();
    let founders = config.initial_cluster.as_ref().map(|c| c.0.clone());
    // The address the others know this node by: the founders' list says
    // it; otherwise the bound address.
    let advertised = founders
        .as_ref()
        .and_then(|f| f.get(&node_id).cloned())
        .unwrap_or_else(|| peer_local.to_string());
    let mut node_config = NodeConfig::new(node_id, config.data_dir.clone(), advertised);
    node_config.initial_cluster = founders;
    node_config.token = config
        .cluster_token
        .as_ref()
        .map(|t| t.expose().to_string());
    // Connect to peers from this node's own address, so that they (and the
    // network fault tests' proxies) see which node calls.
    node_config.bind_ip = (!config.host.is_unspecified()).then_some(config.host);
    if !node_config
        .peer_addr
        .ends_with(&format!(":{}", peer_local.port()))
    {
        // A proxy or a NAT in front: fine if it forwards to this port.
        tracing::warn!(advertised = %node_config.peer_addr, listening = %peer_local,
            "the cluster knows this node by a peer address with another port than the one it listens on");
    }
    node_config.store_options = config.engine_options();
    node_config.wait = config.cluster_wait;
    let node = Node::start(node_config, Arc::new(crate::replicated::Replicated))
        .await
        .map_err(ServeError::Cluster)?;
    state.set_cluster(node.clone());
    tracing::info!(node_id, peer = %peer_local, "cluster node started");

    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = bitcask_cluster::peer::PeerLimits {
        request_timeout: config.request_timeout,
        ..Default::default()
    };
    let token = config
        .cluster_token
        .as_ref()
        .map(|t| t.expose().to_string());
    let peer_app = bitcask_cluster::peer::router(node.clone(), token, limits);
    let peer_cap = (config.peer_max_connections, crate::metrics::Listener::Peer);
    let peer_task = tokio::spawn(serve_http(
        peer,
        peer_app,
        peer_cap,
        state.clone(),
        stop_rx.clone(),
    ));
    let resp_task = resp
        .map(|listener| tokio::spawn(crate::resp::serve(listener, state.clone(), stop_rx.clone())));
    let app = router(state.clone());
    let cap = (state.caps().http, crate::metrics::Listener::Http);
    let drained = async {
        serve_http(listener, app, cap, state.clone(), stop_rx).await;
        if let Some(task) = resp_task {
            task.await?;
        }
        peer_task.await?;
        Ok::<(), ServeError>(())
    };
    tokio::select! {
        biased;
        drained = drained => drained?,
        () = immediate => tracing::warn!("second signal: not waiting any longer; stopping the node"),
    }
    tracing::info!("stopping the cluster node");
    drop(state);
    node.shutdown().await.map_err(ServeError::Cluster)
}

/// A server running on its own thread and runtime, stopped gracefully when
/// dropped: for a program (or test) without a runtime of its own that wants
/// a server beside it.
pub struct Background {
    addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    /// To watch the open; dropped before stopping, so that the server holds
    /// the only handle of the store and can close it.
    state: Option<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Background {
    /// Binds `config`'s address and starts serving on a new thread. Returns
    /// once the address is bound; the store opens in the background as with
    /// [`serve`] (`/health` answers "loading" until it is open).
    pub fn start(config: Config) -> Result<Self, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ServeError::Serve)?;
        let listeners = runtime.block_on(bind(&config))?;
        let addr = listeners.http_addr().map_err(ServeError::Serve)?;
        let resp_addr = listeners.resp_addr();
        let state = new_state(config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("bitcask-server".into())
            .spawn(move || {
                let stop = async move {
                    let _ = stopped.await;
                };
                runtime.block_on(serve_state(
                    listeners,
                    serving,
                    stop,
                    std::future::pending(),
                ))
            })
            .map_err(ServeError::Serve)?;
        Ok(Self {
            addr,
            resp_addr,
            state: Some(state),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Waits until the store is open (true), the server has stopped (an
    /// open that failed: false, and [`Self::stop`] returns the error), or
    /// `timeout` passes (false).
    pub fn wait_until_open(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.state.as_ref().is_some_and(|s| s.try_store().is_some()) {
                return true;
            }
            let stopped = self.thread.as_ref().is_none_or(|t| t.is_finished());
            if stopped || std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The RESP listener's address, if it is on.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drains requests, closes the store and waits.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), ServeError> {
        self.state = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServeError::Serve(std::io::Error::other(
                "the server thread panicked",
            ))),
        }
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Err(error) = self.shut_down() {
            tracing::error!(%error, "background server stopped with an error");
        }
    }
}

/// Completes once the server's stop signal is true (or its sender is
/// gone): how the HTTP and RESP accept loops and connections learn of a stop.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // (The guard `wait_for` returns is dropped here, not held across awaits.)
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The answer to a connection over the cap, written before closing it.
fn too_many() -> String {
    let body = r#"{"detail":"the server has as many connections as it allows; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Bytes an HTTP connection buffers at most (see `serve_http`).
const HTTP_BUFFER: usize = 64 * 1024;

/// Longest time spent telling a refused connection why.
const REFUSAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves HTTP on `listener` until `stop`, then lets requests in flight
/// finish (idle connections are closed at once).
///
/// Written out instead of `axum::serve` for what it does not do: a time
/// limit on reading a request's header, without which a client sending a
/// byte a second holds a connection (and a task) forever; a cap on
/// connections (each holds a descriptor), answering those over it 503; and
/// closing connections that go silent ([`crate::idle`]).
///
/// HTTP/1.1 only. hyper-util's auto-detecting builder, used before, also
/// answered HTTP/2 with prior knowledge (h2c): a protocol no client of
/// this server uses, documented nowhere, whose own limits (streams,
/// header lists, resets) were never set or tested here; it also put a
/// version sniffer in front of every read. An HTTP/2 preface is now a
/// malformed request: the connection is closed.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    (cap, label): (usize, crate::metrics::Listener),
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper::server::conn::http1::Builder;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::io::AsyncWriteExt;

    let config = state.config().clone();
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.request_timeout)
        // What a connection buffers to read a request's head or to write
        // its answer: hyper's default (about 400 KiB) times the connections
        // that stop reading (watch streams especially) was most of the
        // server's memory; 64 KiB is still a whole chunk of a stream, and
        // the longest request head accepted.
        .max_buf_size(HTTP_BUFFER);
    let limit = Arc::new(tokio::sync::Semaphore::new(cap));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, usually: wait a moment, go on.
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            state.metrics().connection_refused(label);
            tracing::debug!(%peer, ?label, "connection refused: at the connection cap");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ =
                    tokio::time::timeout(REFUSAL_TIMEOUT, stream.write_all(too_many().as_bytes()))
                        .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let key_reads = (label == crate::metrics::Listener::Http).then(|| state.clone());
        let service = crate::lanes::Lanes::new(app.clone(), key_reads, peer);
        let io = TokioIo::new(crate::idle::Idle::new(stream, config.idle_timeout));
        let connection = builder.serve_connection(io, service);
        let connection = graceful.watch(connection);
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = (label == crate::metrics::Listener::Http)
                .then(|| state.metrics().http_connection_opened());
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    // Watch streams never end by themselves: end them, so that the drain
    // below is not held up by them (their clients resume elsewhere or
    // after the restart).
    state.watchers().stop();
    let limit = config.shutdown_timeout;
    // (The count is of the client API's requests; peer requests are short.)
    let in_flight = state.metrics().http_in_flight();
    if label == crate::metrics::Listener::Http && in_flight > 0 {
        tracing::info!(
            "stopped accepting; waiting for {in_flight} request(s) in flight (up to {})",
            show_duration(limit)
        );
    }
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = ?label,
            "gave up waiting for requests after the shutdown time-out ({})",
            show_duration(limit)
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_is_well_formed() {
        let answer = super::too_many();
        let (head, body) = answer.split_once("\r\n\r\n").expect("head");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert!(json["detail"].is_string());
    }
}
