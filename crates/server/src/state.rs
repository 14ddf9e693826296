//! What every handler shares: the store (once it is open) and the settings.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::StatusCode;
use bitcask::{Bitcask, OpenProgress};

use bitcask_cluster::codec;
use bitcask_cluster::node::Node;

use crate::config::Config;
use crate::descriptors::{self, Caps};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::replicated::{WriteReply, WriteRequest};

/// Shared by all handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: OnceLock<Arc<Bitcask>>,
    /// The cluster node, in cluster mode (its state machine is the store),
    /// and the runtime it runs on (for code outside async tasks that waits
    /// for it: the RESP commands on the blocking pool).
    cluster: OnceLock<(Node, tokio::runtime::Handle)>,
    config: Config,
    started: Instant,
    metrics: Metrics,
    progress: Arc<OpenProgress>,
    caps: Caps,
    /// One backup at a time (`POST /admin/backup`).
    backup: tokio::sync::Mutex<()>,
    /// What the change feed's watchers share.
    watchers: Arc<crate::watch::Hub>,
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
        let watchers = Arc::new(crate::watch::Hub::new(config.watch_max));
        Ok(Self {
            inner: Arc::new(Inner {
                watchers,
                caps,
                store: OnceLock::new(),
                cluster: OnceLock::new(),
                config,
                started: Instant::now(),
                metrics: Metrics::new()?,
                progress: Arc::new(OpenProgress::new()),
                backup: tokio::sync::Mutex::new(()),
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

    /// Held while a backup runs.
    pub fn backup_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.backup
    }

    /// What the change feed's watchers share.
    pub fn watchers(&self) -> &Arc<crate::watch::Hub> {
        &self.inner.watchers
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Installs the opened store; routes answer from now on.
    pub fn set_store(&self, store: Arc<Bitcask>) {
        let _ = self.inner.store.set(store);
    }

    /// Installs the started cluster node (cluster mode); routes answer
    /// from now on.
    /// Must be called on the runtime that serves the node.
    pub fn set_cluster(&self, node: Node) {
        let runtime = tokio::runtime::Handle::current();
        let _ = self.inner.cluster.set((node, runtime));
    }

    /// The cluster node, in cluster mode once started.
    pub fn cluster(&self) -> Option<&Node> {
        self.inner.cluster.get().map(|(node, _)| node)
    }

    /// The runtime the cluster node runs on; the current one before it
    /// started. (Only cluster code waits on it.)
    pub fn runtime(&self) -> tokio::runtime::Handle {
        match self.inner.cluster.get() {
            Some((_, runtime)) => runtime.clone(),
            None => tokio::runtime::Handle::current(),
        }
    }

    /// Whether this server is (configured as) a cluster node.
    pub fn is_clustered(&self) -> bool {
        self.inner.config.node_id.is_some()
    }

    /// The store, or 503 while it is still opening (or, on a cluster node,
    /// for the moment a snapshot replaces it).
    pub fn store(&self) -> Result<Arc<Bitcask>, ApiError> {
        let not_yet =
            |why: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why).retry_after(1);
        if self.is_clustered() {
            let node = self
                .cluster()
                .ok_or_else(|| not_yet("the node is still starting; retry shortly"))?;
            return node
                .store()
                .ok_or_else(|| not_yet("the node is installing a snapshot; retry shortly"));
        }
        self.inner
            .store
            .get()
            .cloned()
            .ok_or_else(|| not_yet("the store is still opening; retry shortly"))
    }

    /// A single node's store once open, borrowed (no reference counted):
    /// for the key-read lane, which serves single nodes only. `None` on a
    /// cluster node and while the store opens.
    pub fn local_store(&self) -> Option<&Bitcask> {
        if self.is_clustered() {
            return None;
        }
        self.inner.store.get().map(|store| &**store)
    }

    /// The store if open (a single node's; a cluster node's while it is
    /// not replacing it with a snapshot).
    pub fn try_store(&self) -> Option<Arc<Bitcask>> {
        match self.cluster() {
            Some(node) => node.store(),
            None => self.inner.store.get().cloned(),
        }
    }

    /// Runs `request` as a write: at once on a single node (as
    /// [`Self::write`]), through the cluster on a cluster node (where
    /// every acknowledged write is durable on a quorum, so `durable` is
    /// always met). The engine's refusal, if any, is the inner error.
    pub async fn apply(
        &self,
        durable: bool,
        request: WriteRequest,
    ) -> Result<bitcask::Result<Option<u64>>, ApiError> {
        if !self.is_clustered() {
            return self
                .write(durable, move |store| request.execute(store, durable))
                .await;
        }
        let node = self.cluster().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is still starting",
            )
            .retry_after(1)
        })?;
        let encoded = codec::encode(&request).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode a write: {e}"),
            )
        })?;
        let reply = node.write(encoded).await?;
        match codec::decode::<WriteReply>(&reply) {
            Ok(WriteReply::Version(version)) => Ok(Ok(version)),
            Ok(WriteReply::Failed(refusal)) => refusal.into_error().map(Err),
            Ok(WriteReply::Resp(_)) | Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the cluster answered a write with something else",
            )),
        }
    }

    /// Before a read: on a cluster node, waits until the store holds every
    /// write committed before the call (linearizable), unless `stale`
    /// asks for the node's own state as it is. Returns the applied index
    /// the read sees (none on a single node).
    pub async fn before_read(&self, stale: bool) -> Result<Option<u64>, ApiError> {
        if !self.is_clustered() {
            return Ok(None);
        }
        let node = self.cluster().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is still starting",
            )
            .retry_after(1)
        })?;
        if !stale {
            node.read_barrier().await?;
        }
        Ok(node.applied_index())
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
