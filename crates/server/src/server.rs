//! Running the server: bind, open the store in the background (answering
//! `/health` with "loading" meanwhile), serve until a shutdown signal, then
//! finish in-flight requests, sync and close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bitcask::Bitcask;
use tokio::net::TcpListener;

use crate::app::router;
use crate::config::Config;
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
}

/// Binds the configured address; the returned listener's local address is
/// the one to use (port 0 picks a free port).
pub async fn bind(config: &Config) -> Result<TcpListener, ServeError> {
    let addr = SocketAddr::new(config.host, config.port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves on `listener` until `shutdown` completes, then drains requests and
/// closes the store.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_state(listener, new_state(config)?, shutdown).await
}

fn new_state(config: Config) -> Result<AppState, ServeError> {
    AppState::new(config).map_err(|e| ServeError::Serve(std::io::Error::other(e)))
}

/// [`serve`] with a state made by the caller (who may watch it).
async fn serve_state(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = state.config().clone();
    let app = router(state.clone());
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(addr = %local, data_dir = %config.data_dir.display(), "listening");

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
            match Bitcask::open_with(&config.data_dir, options) {
                Ok(store) => {
                    tracing::info!(keys = store.len(), "store open");
                    state.set_store(Arc::new(store));
                    Ok(())
                }
                Err(error) => {
                    tracing::error!(%error, "cannot open the store");
                    let _ = failed_tx.send(());
                    Err(error)
                }
            }
        })
    };
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(_) = failed_rx => {}
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .map_err(ServeError::Serve)?;
    opening.await?.map_err(ServeError::Open)?;
    tracing::info!("stopped accepting; closing the store");
    let Some(store) = state.try_store().cloned() else {
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

/// A server running on its own thread and runtime, stopped gracefully when
/// dropped: for a program (or test) without a runtime of its own that wants
/// a server beside it.
pub struct Background {
    addr: SocketAddr,
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
        let listener = runtime.block_on(bind(&config))?;
        let addr = listener.local_addr().map_err(ServeError::Serve)?;
        let state = new_state(config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("bitcask-server".into())
            .spawn(move || {
                runtime.block_on(serve_state(listener, serving, async move {
                    let _ = stopped.await;
                }))
            })
            .map_err(ServeError::Serve)?;
        Ok(Self {
            addr,
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
