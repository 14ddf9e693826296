//! Group commit: turning "written to the kernel" into "durable on disk".
//!
//! Writers record the highest sequence number they handed to the kernel
//! ([`GroupCommit::note_written`]). A caller that needs sequence `s` durable
//! calls [`GroupCommit::sync_through`]: if no fsync is running it becomes the
//! leader, fsyncs the active file once for everything written so far, and
//! wakes every waiter it covered; otherwise it waits for the running fsync
//! and, if that did not cover `s`, the next one. So N concurrent writers share
//! about two fsyncs instead of paying N.
//!
//! Correctness rests on one rule kept by the writer: a file is fsynced before
//! it stops being the active file (rotation), so every record not in the
//! active file is already durable.
//!
//! A failed fsync poisons the store: the kernel may have dropped the dirty
//! pages, so nothing written since the last good fsync is reported durable,
//! now or later.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::datafile::DataFile;
use crate::error::{Error, Result};

#[derive(Debug)]
struct State {
    /// Every seq at or below this is durable.
    durable: u64,
    /// A leader is inside fsync.
    syncing: bool,
}

/// Shared group-commit state of one open store.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    synced: Condvar,
    /// Highest seq handed to the kernel.
    written: AtomicU64,
    /// The file an fsync must cover: the active data file.
    active: Mutex<Arc<DataFile>>,
    /// Set after a failed write cleanup or fsync; writes are refused after.
    poisoned: AtomicBool,
    /// Number of fsyncs issued by [`Self::sync_through`] (for stats and tests).
    fsyncs: AtomicU64,
}

impl GroupCommit {
    /// State for a store whose records up to `durable_seq` are on disk.
    pub(crate) fn new(active: Arc<DataFile>, durable_seq: u64) -> Self {
        Self {
            state: Mutex::new(State {
                durable: durable_seq,
                syncing: false,
            }),
            synced: Condvar::new(),
            written: AtomicU64::new(durable_seq),
            active: Mutex::new(active),
            poisoned: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that everything up to `seq` has been handed to the kernel.
    /// Called by the (single) writer in seq order.
    pub(crate) fn note_written(&self, seq: u64) {
        self.written.store(seq, Ordering::Release);
    }

    /// Highest seq handed to the kernel.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Makes `file` the one later fsyncs cover. The caller fsynced the
    /// previous active file first.
    pub(crate) fn set_active(&self, file: Arc<DataFile>) {
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) = file;
    }

    /// Marks that all written records are durable (after the writer fsynced
    /// the active file itself, at rotation).
    pub(crate) fn note_durable(&self, seq: u64) {
        let mut st = self.lock_state();
        st.durable = st.durable.max(seq);
    }

    /// Refuses all later writes.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.synced.notify_all();
    }

    /// Whether the store refuses writes.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Number of fsyncs issued by group commit so far.
    pub(crate) fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// What a new leader's fsync covers: everything written so far, after
    /// giving writers that are running right now (typically the ones the
    /// previous fsync just woke) a chance to finish their appends. Without
    /// this the leader starts as soon as its own record is written and each
    /// fsync covers about half the concurrent writers (measured: 8 puts per
    /// fsync with 16 writers; see docs/BENCHMARKS.md). Yielding costs about
    /// a microsecond when no other thread is runnable, against an fsync's
    /// hundreds; it stops as soon as a yield saw no new write, and after at
    /// most `MAX_YIELDS`.
    fn gather_writes(&self) -> u64 {
        const MAX_YIELDS: usize = 16;
        let mut target = self.written();
        for _ in 0..MAX_YIELDS {
            std::thread::yield_now();
            let now = self.written();
            if now == target {
                break;
            }
            target = now;
        }
        target
    }

    /// Returns once every record up to `seq` is durable, fsyncing if needed.
    pub(crate) fn sync_through(&self, seq: u64) -> Result<()> {
        let mut st = self.lock_state();
        loop {
            if self.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if st.durable >= seq {
                return Ok(());
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Become the leader: cover everything written so far.
            st.syncing = true;
            drop(st);
            let target = self.gather_writes();
            let file = Arc::clone(&self.active.lock().unwrap_or_else(PoisonError::into_inner));
            let result = file.sync_data();
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            st = self.lock_state();
            st.syncing = false;
            match result {
                Ok(()) => st.durable = st.durable.max(target),
                Err(source) => {
                    tracing::error!(path = %file.path.display(), error = %source,
                        "fsync failed; the store refuses writes until reopened");
                    self.poisoned.store(true, Ordering::Release);
                    self.synced.notify_all();
                    return Err(Error::Io {
                        path: file.path.clone(),
                        source,
                    });
                }
            }
            self.synced.notify_all();
        }
    }
}
