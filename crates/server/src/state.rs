//! What every handler shares: the store (once it is open) and the settings.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::StatusCode;
use bitcask::{Bitcask, OpenProgress};

use crate::config::Config;
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
}

impl AppState {
    /// State for a server whose store is not open yet.
    pub fn new(config: Config) -> Result<Self, prometheus::Error> {
        Ok(Self {
            inner: Arc::new(Inner {
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
                    "{error}; the store refuses writes until the server is restarted \
                     (reads go on); this write may or may not be on disk"
                ),
            )),
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
