//! What every handler shares: the store (once it is open) and the settings.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::StatusCode;
use bitcask::{Bitcask, OpenProgress};

use crate::config::Config;
use crate::descriptors::{self, Caps};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Shared by all handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: OnceLock<Arc<Bitcask>>,
    config: Config,
    started: Instant,
    metrics: Metrics,
    progress: Arc<OpenProgress>,
    caps: Caps,
}

impl AppState {
    /// State for a server whose store is not open yet.
    /// The connection caps are fitted to the process's descriptor limit
    /// as it is now (see [`crate::descriptors`]).
    pub fn new(config: Config) -> Result<Self, prometheus::Error> {
        let caps = descriptors::plan(
            config.max_connections,
            config.resp_port.map(|_| config.resp_max_connections),
            descriptors::descriptor_limit(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                caps,
                store: OnceLock::new(),
                config,
                started: Instant::now(),
                metrics: Metrics::new()?,
                progress: Arc::new(OpenProgress::new()),
            }),
        })
    }

    /// How far the store's open has got.
    pub fn open_progress(&self) -> &Arc<OpenProgress> {
        &self.inner.progress
    }

    /// How many connections each listener may hold.
    pub fn caps(&self) -> Caps {
        self.inner.caps
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Installs the opened store; routes answer from now on.
    pub fn set_store(&self, store: Arc<Bitcask>) {
        let _ = self.inner.store.set(store);
    }

    /// The store, or 503 while it is still opening.
    pub fn store(&self) -> Result<Arc<Bitcask>, ApiError> {
        self.inner.store.get().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is still opening; retry shortly",
            )
        })
    }

    /// The store if open.
    pub fn try_store(&self) -> Option<&Arc<Bitcask>> {
        self.inner.store.get()
    }

    /// Runs a write: on the async worker when it will not wait for an
    /// fsync (a `pwrite` into the page cache, a few microseconds), on the
    /// blocking pool when it will (`sync=always`, or `durable` asked). See
    /// docs/ARCHITECTURE.md for the measurements behind this.
    pub async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        write: impl FnOnce(&Bitcask) -> bitcask::Result<T> + Send + 'static,
    ) -> Result<bitcask::Result<T>, ApiError> {
        let store = self.store()?;
        let result = if durable || self.config().sync == bitcask::SyncPolicy::Always {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || write(&store)).await?
        } else {
            write(&store)
        };
        match result {
            // The failure poisoned the store (a failed fsync): say what
            // happened, and that writes stop until a restart.
            Err(error @ bitcask::Error::Io { .. }) if store.is_poisoned() => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{}; the store refuses writes until the server is restarted \
                     (reads go on); this write may or may not be on disk",
                    crate::error::public_message(&error)
                ),
            )
            .with_cause(error)),
            other => Ok(other),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// When the server started (for the loading status).
    pub fn started(&self) -> Instant {
        self.inner.started
    }
}
