//! The change feed served to watchers (docs/WATCH.md): the [`Hub`] every
//! watcher shares (told of each commit by the engine, the cap on watchers,
//! the stop signal), the [`Filter`] a watcher asks for, and the [`Feed`]
//! that reads one watcher's events from the store's data files. The HTTP
//! route (`routes::watch`) streams them as Server-Sent Events or answers a
//! long poll; the RESP listener turns them into keyspace notifications.

mod feed;
mod filter;
pub mod sse;
mod tail;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bitcask::Bitcask;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub use feed::{Feed, FeedError, Read, change_size, op_of};
pub use filter::Filter;

/// What every watcher shares. One per server.
#[derive(Debug)]
pub struct Hub {
    /// The last seq the store said it committed: watchers wait for it to
    /// change, then read the files. Only a wake-up: the seq itself is read
    /// from the store.
    committed: Arc<watch::Sender<u64>>,
    /// Set once when the server stops: every watch ends.
    stop: watch::Sender<bool>,
    /// One permit per open watcher, of `max_watchers` (`--watch-max`).
    slots: Arc<Semaphore>,
    max_watchers: usize,
    /// One permit per read of history on the blocking pool: replays share
    /// a few threads (each thread the pool adds costs its stack and its
    /// allocator's heap) and leave the rest of the pool to requests.
    replays: Arc<Semaphore>,
    /// The store whose commits `committed` follows (a cluster node replaces
    /// its store when it installs a snapshot: the new one is listened to
    /// when a watcher first meets it). Weak, and compared by address: its
    /// allocation cannot be reused while this is held.
    listening: Mutex<Weak<Bitcask>>,
    /// The shared reader of the newest changes.
    tail: tail::Tail,
    /// Events sent to watchers, and watchers cut for not reading.
    events_sent: AtomicU64,
    cut: AtomicU64,
}

impl Hub {
    /// A hub for at most `max_watchers` watchers at once.
    pub fn new(max_watchers: usize) -> Self {
        Self {
            committed: Arc::new(watch::channel(0).0),
            stop: watch::channel(false).0,
            slots: Arc::new(Semaphore::new(max_watchers)),
            max_watchers,
            replays: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            )),
            listening: Mutex::new(Weak::new()),
            tail: tail::Tail::default(),
            events_sent: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        }
    }

    /// Makes sure `store`'s commits wake the watchers.
    pub fn listen(&self, store: &Arc<Bitcask>) {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if std::ptr::eq(listening.as_ptr(), Arc::as_ptr(store)) {
            return;
        }
        let committed = Arc::clone(&self.committed);
        let listener = move |seq: u64| {
            // No watcher, no wake-up (an atomic load on the write path).
            if committed.receiver_count() > 0 {
                committed.send_replace(seq);
            }
        };
        if let Err(error) = store.on_commit(listener) {
            // Someone else listens (not in this server): watchers then see
            // writes only at their progress ticks.
            tracing::warn!(%error, "cannot follow the store's commits");
        }
        *listening = Arc::downgrade(store);
    }

    /// The shared reader of the newest changes.
    pub fn tail(&self) -> &tail::Tail {
        &self.tail
    }

    /// A receiver that changes after each commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// A watcher's place, if one is free.
    pub fn slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Waits for a turn to read history on the blocking pool.
    pub async fn replay_turn(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.replays).acquire_owned().await.ok()
    }

    /// Watchers open now.
    pub fn open(&self) -> usize {
        self.max_watchers
            .saturating_sub(self.slots.available_permits())
    }

    /// A receiver that turns true when the server stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Ends every watch (the server is stopping).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Counts `n` events sent.
    pub fn sent(&self, n: usize) {
        self.events_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a watcher cut for not reading.
    pub fn cut_one(&self) {
        self.cut.fetch_add(1, Ordering::Relaxed);
    }

    /// Events sent to watchers so far.
    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(Ordering::Relaxed)
    }

    /// Watchers cut for not reading so far.
    pub fn watchers_cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }
}
