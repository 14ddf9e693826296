//! One watcher's reader: the store's changes from a seq on, filtered, as
//! wire events. History is read on the blocking pool (it may come from
//! disk); once a watcher has caught up it reads the tail of the active
//! file, just written and in the page cache, on its own task.

use std::sync::Arc;

use bitcask::{Bitcask, Changes};
use bitcask_wire::{WatchEvent, WatchOp};

use super::Filter;
use crate::state::AppState;

/// Changes one read looks at, at most (a batch may overshoot).
const MAX_CHANGES: usize = 1_000;

/// Why a feed cannot go on.
#[derive(Debug)]
pub enum FeedError {
    /// The history asked for is gone: a watch may start at this seq.
    Compacted(u64),
    /// The store is closed or not open (shutting down, or a cluster node
    /// between two stores for longer than a read).
    Unavailable,
    /// The store failed to read its files.
    Failed(bitcask::Error),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compacted(seq) => write!(
                f,
                "the history asked for has been compacted by a merge; the oldest seq \
                 still available is {seq}: list the keys (GET /kv answers X-Bitcask-Seq) \
                 and watch from the listing's seq"
            ),
            Self::Unavailable => f.write_str("the store is not open"),
            Self::Failed(error) => write!(f, "reading the change feed failed: {error}"),
        }
    }
}

fn feed_error(error: bitcask::Error) -> FeedError {
    match error {
        bitcask::Error::Compacted { compacted_seq } => FeedError::Compacted(compacted_seq),
        bitcask::Error::Closed => FeedError::Unavailable,
        other => FeedError::Failed(other),
    }
}

/// What one [`Feed::read`] found.
#[derive(Debug)]
pub struct Read {
    /// The matching events, whole batches, in seq order.
    pub events: Vec<WatchEvent>,
    /// True if the read reached the writer (there was less than one read's
    /// worth to read): wait for the next commit before reading again.
    pub caught_up: bool,
}

/// A watcher's place in the change feed.
pub struct Feed {
    state: AppState,
    /// The store being read (weakly held by `changes`); compared to the
    /// current one after a [`bitcask::Error::Closed`].
    store: std::sync::Weak<Bitcask>,
    /// `None` only while a read has it on the blocking pool.
    changes: Option<Changes>,
    filter: Arc<Filter>,
    next_seq: u64,
    /// Read on the task (caught up) or on the blocking pool (replaying).
    inline: bool,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("next_seq", &self.next_seq)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed of `store`'s changes from `from_seq` on that match `filter`.
    pub fn open(
        state: &AppState,
        store: &Arc<Bitcask>,
        from_seq: u64,
        filter: Filter,
    ) -> Result<Self, FeedError> {
        state.watchers().listen(store);
        let changes = store.changes(from_seq).map_err(feed_error)?;
        Ok(Self {
            state: state.clone(),
            store: Arc::downgrade(store),
            changes: Some(changes),
            filter: Arc::new(filter),
            next_seq: from_seq,
            inline: false,
        })
    }

    /// Where the watcher stands: every change below this seq has been
    /// looked at (and returned if it matched).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Reads on, up to about `max_changes` changes (at most
    /// [`MAX_CHANGES`]) and `max_bytes` of keys and values looked at.
    pub async fn read(&mut self, max_changes: usize, max_bytes: usize) -> Result<Read, FeedError> {
        let max_changes = max_changes.clamp(1, MAX_CHANGES);
        let max_bytes = max_bytes.max(1);
        loop {
            let Some(changes) = self.changes.take() else {
                return Err(FeedError::Unavailable);
            };
            let filter = Arc::clone(&self.filter);
            let work = move |mut changes: Changes| {
                let result = changes
                    .next_batch_within(max_changes, max_bytes)
                    .map(|batch| {
                        let size: usize = batch.iter().map(change_size).sum();
                        let caught_up = batch.len() < max_changes && size < max_bytes;
                        let events = batch
                            .iter()
                            .filter(|c| filter.matches(&c.key, op_of(&c.op)))
                            .map(WatchEvent::from)
                            .collect();
                        Read { events, caught_up }
                    });
                (changes, result)
            };
            let (changes, result) = if self.inline {
                work(changes)
            } else {
                let turn = self.state.watchers().replay_turn().await;
                let (changes, result) = tokio::task::spawn_blocking(move || work(changes))
                    .await
                    .map_err(|_| FeedError::Unavailable)?;
                drop(turn);
                (changes, result)
            };
            self.next_seq = changes.next_seq();
            self.changes = Some(changes);
            match result {
                Ok(read) => {
                    self.inline = read.caught_up;
                    return Ok(read);
                }
                Err(bitcask::Error::Closed) => self.reopen()?,
                Err(error) => return Err(feed_error(error)),
            }
        }
    }

    /// After the store said it is closed: a cluster node that installed a
    /// snapshot has a new one; go on reading it from where this feed is.
    fn reopen(&mut self) -> Result<(), FeedError> {
        let store = self.state.try_store().ok_or(FeedError::Unavailable)?;
        if std::ptr::eq(self.store.as_ptr(), Arc::as_ptr(&store)) {
            return Err(FeedError::Unavailable);
        }
        self.state.watchers().listen(&store);
        self.changes = Some(store.changes(self.next_seq).map_err(feed_error)?);
        self.store = Arc::downgrade(&store);
        self.inline = false;
        Ok(())
    }
}

/// The wire's name for what a change did.
fn op_of(op: &bitcask::ChangeOp) -> WatchOp {
    match op {
        bitcask::ChangeOp::Put { .. } => WatchOp::Put,
        bitcask::ChangeOp::Delete => WatchOp::Delete,
        bitcask::ChangeOp::Expire => WatchOp::Expire,
    }
}

/// Bytes of a change's key and value (what a read's budget counts).
fn change_size(change: &bitcask::Change) -> usize {
    change.key.len()
        + match &change.op {
            bitcask::ChangeOp::Put { value, .. } => value.len(),
            _ => 0,
        }
}
