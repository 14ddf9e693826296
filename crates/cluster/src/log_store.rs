//! The raft log on disk: openraft's [`RaftLogStorage`] over the engine's
//! journal (`bitcask::journal`), plus the vote and the last purged log id
//! in state files beside it. Layout and crash protocols:
//! `docs/FORMAT.md` ("Journal", "Cluster node directory").
//!
//! Appends are written at once (so replication can read them) and made
//! durable by one thread that fsyncs for every append queued meanwhile
//! before it tells openraft they are flushed (group commit). Truncation,
//! purge and the vote are durable before their calls return.
//!
//! Raft numbers its log from 0, the journal from 1: raft index `i` is
//! journal index `i + 1`.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bitcask::journal::{self, Journal, Syncer};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use crate::codec;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// The state file of the vote.
const VOTE_FILE: &str = "VOTE";
/// The state file of the last purged log id.
const PURGED_FILE: &str = "PURGED";
/// The journal's directory inside the raft directory.
const LOG_DIR: &str = "log";

/// The raft log of one node (cheap to clone: clones share it).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    /// Appends waiting for their fsync.
    flushes: mpsc::Sender<Flush>,
}

struct State {
    journal: Journal,
    /// The log id of the last entry, or the last purged one if none.
    last: Option<LogId>,
    purged: Option<LogId>,
}

/// An append waiting for the fsync that makes it durable.
struct Flush {
    syncer: Option<Syncer>,
    done: IOFlushed<TypeConfig>,
}

impl LogStore {
    /// Opens the raft log in `dir` (created if missing), recovering the
    /// journal as its format prescribes, and starts the flush thread.
    pub fn open(dir: &Path) -> io::Result<Self> {
        bitcask::disk::create_dir_durably(dir)?;
        let journal = Journal::open(dir.join(LOG_DIR)).map_err(io::Error::other)?;
        let purged = match journal::read_state_file(dir, PURGED_FILE).map_err(io::Error::other)? {
            Some(bytes) => Some(codec::decode::<LogId>(&bytes)?),
            None => None,
        };
        let last = match journal.last_index() {
            Some(index) => {
                Some(decode_entry(&journal.read(index).map_err(io::Error::other)?)?.log_id())
            }
            None => purged,
        };
        let (flushes, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(&queue))?;
        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                state: Mutex::new(State {
                    journal,
                    last,
                    purged,
                }),
                flushes,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state on a blocking thread (for calls that fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, &Path) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut state, &shared.dir)
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Waits for appends, fsyncs once for all those queued, then reports them.
fn flush_loop(queue: &mpsc::Receiver<Flush>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        // The newest append's segment: rotation fsyncs a segment before
        // it starts the next, so this covers every append in the batch.
        let result = match batch.iter().rev().find_map(|f| f.syncer.as_ref()) {
            Some(syncer) => syncer.sync().map_err(io::Error::other),
            None => Ok(()),
        };
        for flush in batch {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            flush.done.io_completed(result);
        }
    }
}

fn journal_index(raft_index: u64) -> u64 {
    raft_index + 1
}

fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    codec::encode(entry)
}

fn decode_entry(bytes: &[u8]) -> io::Result<Entry> {
    codec::decode(bytes)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX - 1,
        };
        // Page-cache reads of recent entries: short enough for the caller's
        // task.
        let payloads = self
            .state()
            .journal
            .read_range(journal_index(from), journal_index(to))
            .map_err(io::Error::other)?;
        payloads.iter().map(|p| decode_entry(p)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let dir = self.shared.dir.clone();
        match journal::read_state_file(&dir, VOTE_FILE).map_err(io::Error::other)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let state = self.state();
        Ok(LogState {
            last_purged_log_id: state.purged,
            last_log_id: state.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = codec::encode(vote)?;
        self.blocking(move |_, dir| {
            journal::write_state_file(dir, VOTE_FILE, &bytes).map_err(io::Error::other)
        })
        .await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut first = None;
        let mut last = None;
        let mut payloads = Vec::new();
        for entry in entries {
            first.get_or_insert(entry.index());
            last = Some(entry.log_id());
            payloads.push(encode_entry(&entry)?);
        }
        let syncer = {
            let mut state = self.state();
            if let Some(first) = first {
                state
                    .journal
                    .append(journal_index(first), payloads.iter().map(Vec::as_slice))
                    .map_err(io::Error::other)?;
                state.last = last;
            }
            state.journal.syncer()
        };
        self.shared
            .flushes
            .send(Flush {
                syncer,
                done: callback,
            })
            .map_err(|_| io::Error::other("the raft log's flush thread has stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.blocking(move |state, _| {
            let keep = last_log_id.map_or(0, |id| journal_index(id.index()));
            state
                .journal
                .truncate_after(keep)
                .map_err(io::Error::other)?;
            state.last = last_log_id.or(state.purged);
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let bytes = codec::encode(&log_id)?;
        self.blocking(move |state, dir| {
            // The purged id first: a crash after it leaves entries that are
            // never read, never a journal that has lost what it claims.
            journal::write_state_file(dir, PURGED_FILE, &bytes).map_err(io::Error::other)?;
            state.purged = Some(log_id);
            state
                .journal
                .purge_through(journal_index(log_id.index()))
                .map_err(io::Error::other)?;
            if state.last.is_none_or(|last| last.index() < log_id.index()) {
                state.last = Some(log_id);
            }
            Ok(())
        })
        .await
    }
}
