//! The blocking client: the async [`crate::Client`] driven by a private
//! single-threaded runtime, for programs without one (the CLI, scripts).
//!
//! As with `reqwest::blocking`, do not call it from inside an async
//! runtime (that panics); use the async client there.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::ClientBuilder;
use crate::error::{Error, Result};
use crate::types::{
    Batch, BatchResult, Health, ListOptions, MergeReport, Page, Stats, Versioned, WriteOptions,
};
use crate::watch::WatchOptions;

/// A blocking client of the bitcask server; the methods are those of
/// [`crate::Client`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// A client of the server at `base_url` with default settings.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        Self::from_builder(ClientBuilder::new(base_url))
    }

    /// A client of the server named by `BITCASK_SERVER`, or
    /// `http://localhost:8000`.
    pub fn from_env() -> Result<Self> {
        Self::with_async(crate::Client::from_env()?)
    }

    /// A client with the settings of `builder`.
    pub fn from_builder(builder: ClientBuilder) -> Result<Self> {
        Self::with_async(builder.build()?)
    }

    fn with_async(inner: crate::Client) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::InvalidArgument {
                reason: format!("cannot start the client's runtime: {e}"),
            })?;
        Ok(Self {
            inner,
            runtime: Arc::new(runtime),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    /// See [`crate::Client::health`].
    pub fn health(&self) -> Result<Health> {
        self.runtime.block_on(self.inner.health())
    }

    /// See [`crate::Client::ping`].
    pub fn ping(&self) -> Result<Duration> {
        self.runtime.block_on(self.inner.ping())
    }

    /// See [`crate::Client::get`].
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        self.runtime.block_on(self.inner.get(key))
    }

    /// See [`crate::Client::get_bytes`].
    pub fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        self.runtime.block_on(self.inner.get_bytes(key))
    }

    /// See [`crate::Client::get_versioned`].
    pub fn get_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        self.runtime.block_on(self.inner.get_versioned(key))
    }

    /// See [`crate::Client::put`].
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        self.runtime.block_on(self.inner.put(key, value))
    }

    /// See [`crate::Client::put_with`].
    pub fn put_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: WriteOptions,
    ) -> Result<u64> {
        self.runtime
            .block_on(self.inner.put_with(key, value, options))
    }

    /// See [`crate::Client::delete`].
    pub fn delete(&self, key: &str) -> Result<()> {
        self.runtime.block_on(self.inner.delete(key))
    }

    /// See [`crate::Client::delete_with`].
    pub fn delete_with(&self, key: &str, options: WriteOptions) -> Result<Option<u64>> {
        self.runtime.block_on(self.inner.delete_with(key, options))
    }

    /// See [`crate::Client::list_page`].
    pub fn list_page(&self, options: &ListOptions) -> Result<Page> {
        self.runtime.block_on(self.inner.list_page(options))
    }

    /// Every key the options select, in byte order, fetched a page at a
    /// time as the iterator is read.
    pub fn list(&self, options: ListOptions) -> Keys {
        Keys {
            client: self.clone(),
            next: Some(options),
            buffered: VecDeque::new(),
        }
    }

    /// See [`crate::Client::batch`].
    pub fn batch(&self, batch: &Batch, durable: bool) -> Result<BatchResult> {
        self.runtime.block_on(self.inner.batch(batch, durable))
    }

    /// See [`crate::Client::stats`].
    pub fn stats(&self) -> Result<Stats> {
        self.runtime.block_on(self.inner.stats())
    }

    /// See [`crate::Client::merge`].
    pub fn merge(&self) -> Result<MergeReport> {
        self.runtime.block_on(self.inner.merge())
    }

    /// See [`crate::Client::backup`].
    pub fn backup(&self, name: Option<&str>) -> Result<crate::BackupReport> {
        self.runtime.block_on(self.inner.backup(name))
    }

    /// See [`crate::Client::scrub`].
    pub fn scrub(&self) -> Result<crate::ScrubReport> {
        self.runtime.block_on(self.inner.scrub())
    }

    /// See [`crate::Client::cluster`].
    pub fn cluster(&self) -> Result<crate::ClusterStatus> {
        self.runtime.block_on(self.inner.cluster())
    }

    /// See [`crate::Client::add_member`].
    pub fn add_member(&self, node_id: u64, peer_addr: &str) -> Result<crate::ClusterStatus> {
        self.runtime
            .block_on(self.inner.add_member(node_id, peer_addr))
    }

    /// See [`crate::Client::remove_member`].
    pub fn remove_member(&self, node_id: u64) -> Result<crate::ClusterStatus> {
        self.runtime.block_on(self.inner.remove_member(node_id))
    }
}

/// The keys of a listing, from [`Client::list`]. An error ends the iteration.
#[derive(Debug)]
pub struct Keys {
    client: Client,
    /// The request for the next page, if there is one.
    next: Option<ListOptions>,
    buffered: VecDeque<String>,
}

impl Iterator for Keys {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.buffered.pop_front() {
                return Some(Ok(key));
            }
            let options = self.next.take()?;
            match self.client.list_page(&options) {
                Ok(page) => {
                    self.next = page.next_start_after.map(|cursor| ListOptions {
                        start_after: Some(cursor),
                        ..options
                    });
                    self.buffered.extend(page.keys);
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The events of [`Client::watch`], one at a time, blocking for each.
pub struct Watch {
    runtime: Arc<tokio::runtime::Runtime>,
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bitcask_wire::WatchEvent>> + Send>,
    >,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl Iterator for Watch {
    type Item = Result<bitcask_wire::WatchEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        use futures_util::StreamExt;
        self.runtime.block_on(self.stream.next())
    }
}

impl Client {
    /// See [`crate::Client::watch`]: the same events, as an iterator that
    /// blocks until the next one (it never ends by itself unless the
    /// history is compacted or the server stays away).
    pub fn watch(&self, options: WatchOptions) -> Watch {
        Watch {
            runtime: Arc::clone(&self.runtime),
            stream: Box::pin(self.inner.watch(options)),
        }
    }
}
