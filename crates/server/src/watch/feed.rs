//! One watcher's reader: the store's changes from a seq on, filtered.
//! History is read from the files on the blocking pool (it may come from
//! disk); once a watcher has caught up it takes the shared tail's batches
//! (`super::tail`), going back to the files on a gap or when it falls
//! behind. Consumers turn the changes into what they send.

use std::sync::Arc;

use bitcask::Change;
use bitcask::{Bitcask, Changes};
use bitcask_wire::WatchOp;

use tokio::sync::{broadcast, watch};

use super::Filter;
use super::tail::TailBatch;
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
    /// The matching changes, whole batches, in seq order (each consumer
    /// turns them into what it sends: wire events, RESP messages).
    pub events: Vec<Change>,
    /// True if the read reached the writer (there was less than one read's
    /// worth to read): wait for the next commit before reading again.
    pub caught_up: bool,
    /// Instead of `events` (a read has one or the other): whole batches of
    /// the shared tail already encoded as Server-Sent Events, for a stream
    /// that wants every change ([`Feed::share_sse`]).
    pub sse: Vec<bytes::Bytes>,
    /// How many events `sse` holds.
    pub sse_events: usize,
}

/// A watcher's place in the change feed.
pub struct Feed {
    state: AppState,
    /// The store being read (weakly held by `changes`); compared to the
    /// current one after a [`bitcask::Error::Closed`].
    store: std::sync::Weak<Bitcask>,
    /// The watcher's own reader of the files, at `next_seq` whenever the
    /// feed reads them. `None` only while a read has it on the blocking
    /// pool.
    changes: Option<Changes>,
    filter: Arc<Filter>,
    next_seq: u64,
    /// Read on the task (caught up) or on the blocking pool (replaying).
    inline: bool,
    /// Woken by each commit (while reading the files).
    commits: watch::Receiver<u64>,
    /// The shared tail ([`super::tail`]), for a feed that uses it:
    /// subscribed before the files are read to their end, so that nothing
    /// is missed between the two.
    tail: Option<broadcast::Receiver<Arc<TailBatch>>>,
    /// Whether the feed takes its changes from the tail now (it caught up
    /// reading the files), and a batch received while waiting.
    on_tail: bool,
    pending: Option<Arc<TailBatch>>,
    /// Whether whole tail batches may be returned encoded (`Read::sse`).
    share_sse: bool,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("next_seq", &self.next_seq)
            .field("filter", &self.filter)
            .field("on_tail", &self.on_tail)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed of `store`'s changes from `from_seq` on that match `filter`.
    /// `shared` feeds take the newest changes from the shared tail once
    /// they have caught up (streams); others always read the files (a long
    /// poll, whose `limit` counts write batches the tail's batches merge).
    pub fn open(
        state: &AppState,
        store: &Arc<Bitcask>,
        from_seq: u64,
        filter: Filter,
        shared: bool,
    ) -> Result<Self, FeedError> {
        let hub = state.watchers();
        hub.listen(store);
        let changes = store.changes(from_seq).map_err(feed_error)?;
        Ok(Self {
            state: state.clone(),
            store: Arc::downgrade(store),
            changes: Some(changes),
            filter: Arc::new(filter),
            next_seq: from_seq,
            inline: false,
            commits: hub.commits(),
            tail: shared.then(|| hub.tail().subscribe(state)),
            on_tail: false,
            pending: None,
            share_sse: false,
        })
    }

    /// Lets reads return the shared tail's batches already encoded as
    /// Server-Sent Events (`Read::sse`) when the filter wants every change.
    pub fn share_sse(mut self) -> Self {
        self.share_sse = self.filter.is_all();
        self
    }

    /// Where the watcher stands: every change below this seq has been
    /// looked at (and returned if it matched).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits until there may be more to read: a commit, or a batch of the
    /// shared tail. (Returns at once if the server's hub is gone.)
    pub async fn wait(&mut self) {
        if self.on_tail && self.pending.is_none() {
            if let Some(tail) = self.tail.as_mut() {
                match tail.recv().await {
                    Ok(batch) => self.pending = Some(batch),
                    // Fell behind the tail: the files have it all.
                    Err(_) => self.leave_tail(),
                }
            }
            return;
        }
        if self.pending.is_none() {
            let _ = self.commits.changed().await;
        }
    }

    /// Reads on, up to about `max_changes` changes (at most
    /// [`MAX_CHANGES`]) and `max_bytes` of keys and values looked at.
    pub async fn read(&mut self, max_changes: usize, max_bytes: usize) -> Result<Read, FeedError> {
        let max_changes = max_changes.clamp(1, MAX_CHANGES);
        let max_bytes = max_bytes.max(1);
        if self.on_tail {
            if let Some(read) = self.read_tail(max_changes, max_bytes) {
                return Ok(read);
            }
            // A gap, or behind the tail: back to the files, from here.
            self.reposition()?;
        }
        self.commits.borrow_and_update();
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
                        Read {
                            events: matching(&filter, batch),
                            caught_up,
                            sse: Vec::new(),
                            sse_events: 0,
                        }
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
                    // Caught up: from now on, the shared tail (subscribed
                    // before this read, so it holds what came after).
                    self.on_tail = read.caught_up && self.tail.is_some();
                    return Ok(read);
                }
                Err(bitcask::Error::Closed) => self.reopen()?,
                Err(error) => return Err(feed_error(error)),
            }
        }
    }

    /// Takes the tail's batches received so far, up to about the limits.
    /// `None` if the feed must read the files instead (a gap before a
    /// batch, or it fell behind the tail).
    fn read_tail(&mut self, max_changes: usize, max_bytes: usize) -> Option<Read> {
        let mut events = Vec::new();
        let (mut sse, mut sse_events) = (Vec::new(), 0);
        let (mut looked_at, mut size) = (0usize, 0usize);
        loop {
            if looked_at >= max_changes || size >= max_bytes {
                return Some(Read {
                    events,
                    caught_up: false,
                    sse,
                    sse_events,
                });
            }
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => match self.tail.as_mut()?.try_recv() {
                    Ok(batch) => batch,
                    Err(broadcast::error::TryRecvError::Empty) => {
                        return Some(Read {
                            events,
                            caught_up: true,
                            sse,
                            sse_events,
                        });
                    }
                    Err(_) => {
                        self.leave_tail();
                        return partial(events, sse, sse_events);
                    }
                },
            };
            if batch.start_seq > self.next_seq {
                // Changes between here and the batch were not broadcast
                // to this feed: read them from the files.
                self.leave_tail();
                self.pending = None;
                return partial(events, sse, sse_events);
            }
            let whole = batch.start_seq == self.next_seq;
            if self.share_sse && whole && events.is_empty() {
                looked_at += batch.changes.len();
                size += batch.changes.iter().map(change_size).sum::<usize>();
                sse.push(batch.sse().clone());
                sse_events += batch.changes.len();
                self.next_seq = batch.end_seq;
                continue;
            }
            if !sse.is_empty() {
                // Encoded batches and events do not mix in one read: this
                // batch is the next read's.
                self.pending = Some(batch);
                return Some(Read {
                    events,
                    caught_up: false,
                    sse,
                    sse_events,
                });
            }
            // (A batch from before this feed caught up repeats changes it
            // has seen: those below next_seq are skipped.)
            let fresh: Vec<&bitcask::Change> = batch
                .changes
                .iter()
                .filter(|c| c.seq >= self.next_seq)
                .collect();
            looked_at += fresh.len();
            size += fresh.iter().map(|c| change_size(c)).sum::<usize>();
            events.extend(
                fresh
                    .into_iter()
                    .filter(|c| self.filter.matches(&c.key, op_of(&c.op)))
                    .cloned(),
            );
            self.next_seq = self.next_seq.max(batch.end_seq);
        }
    }

    /// Stops taking the tail: the files are read next.
    fn leave_tail(&mut self) {
        self.on_tail = false;
        self.inline = false;
    }

    /// Puts the feed's own reader of the files at `next_seq`, after reading
    /// the tail moved it on.
    fn reposition(&mut self) -> Result<(), FeedError> {
        self.on_tail = false;
        if self.changes.as_ref().map(Changes::next_seq) == Some(self.next_seq) {
            return Ok(());
        }
        match self.store.upgrade() {
            Some(store) => {
                self.changes = Some(store.changes(self.next_seq).map_err(feed_error)?);
                Ok(())
            }
            None => self.reopen(),
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
        self.on_tail = false;
        Ok(())
    }
}

/// What the tail gave before the feed had to turn to the files: the
/// events so far (the files are read at the next read), or `None` to read
/// them now.
fn partial(events: Vec<Change>, sse: Vec<bytes::Bytes>, sse_events: usize) -> Option<Read> {
    (!events.is_empty() || !sse.is_empty()).then_some(Read {
        events,
        caught_up: false,
        sse,
        sse_events,
    })
}

/// The changes `filter` wants.
fn matching(filter: &Filter, batch: Vec<Change>) -> Vec<Change> {
    batch
        .into_iter()
        .filter(|c| filter.matches(&c.key, op_of(&c.op)))
        .collect()
}

/// The wire's name for what a change did.
pub fn op_of(op: &bitcask::ChangeOp) -> WatchOp {
    match op {
        bitcask::ChangeOp::Put { .. } => WatchOp::Put,
        bitcask::ChangeOp::Delete => WatchOp::Delete,
        bitcask::ChangeOp::Expire => WatchOp::Expire,
    }
}

/// Bytes of a change's key and value (what a read's budget counts).
pub fn change_size(change: &bitcask::Change) -> usize {
    change.key.len()
        + match &change.op {
            bitcask::ChangeOp::Put { value, .. } => value.len(),
            _ => 0,
        }
}
