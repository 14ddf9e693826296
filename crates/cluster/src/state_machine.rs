//! The store as openraft's state machine.
//!
//! Each entry is applied as one atomic engine batch whose mark holds the
//! entry's log id and the membership in force (`docs/CLUSTER.md`, "The
//! state machine"): after any crash the store and its applied position
//! agree. A normal entry's requests run, in order, through the
//! application's [`Applier`] against an [`Overlay`] of the store, with the
//! thread's clock stopped at the leader's time. The store is opened with
//! `sync=never`: the raft log's fsync is what acknowledges a write, and
//! raft re-applies whatever a power cut took off the store's tail.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bitcask::{Batch, Bitcask, Options, SyncPolicy};
use futures_util::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use crate::clock::{self, ApplyClock};
use crate::codec;
use crate::overlay::Overlay;
use crate::snapshot::{self, SnapshotDir, StorePaths};
use crate::types::{
    Entry, LogId, Outcome, Proposal, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};

/// What the application does with one request of an entry: run it against
/// `store` (the entry's view of the store) and return the reply for the
/// client that sent it. It must depend on nothing but the request and the
/// store (and `clock::now_ms`), so that every node computes the same.
pub trait Applier: Send + Sync + 'static {
    /// Applies `request`; the reply is returned to the proposer as is.
    fn apply(&self, store: &Overlay<'_>, request: &[u8]) -> Vec<u8>;
}

/// What a mark holds: the state machine's applied position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedMark {
    applied: Option<LogId>,
    membership: StoredMembership,
}

/// The state machine of one node (cheap to clone: clones share it).
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

struct Shared {
    paths: StorePaths,
    snapshots: PathBuf,
    options: Options,
    /// `None` only while a snapshot is being installed.
    db: RwLock<Option<Arc<Bitcask>>>,
    applier: Arc<dyn Applier>,
    applied: Mutex<AppliedMark>,
    /// The index of the last applied entry plus one (0: none), for readers.
    applied_index: AtomicU64,
    /// Snapshots built and installed since the node started.
    snapshots_built: AtomicU64,
    snapshots_installed: AtomicU64,
}

impl StateMachine {
    /// Opens the store under `node_dir` (`store/`, finishing or undoing a
    /// snapshot swap a crash cut short) with `options` (its clock and sync
    /// policy are set here), and reads its applied position.
    pub fn open(node_dir: &Path, options: Options, applier: Arc<dyn Applier>) -> io::Result<Self> {
        let paths = StorePaths::new(node_dir);
        paths.recover()?;
        let snapshots = node_dir.join("snapshots");
        bitcask::disk::create_dir_durably(&snapshots)?;
        snapshot::prune(&snapshots, true)?;
        let options = options.sync(SyncPolicy::Never).clock(Arc::new(ApplyClock));
        let db = Bitcask::open_with(&paths.live, options.clone()).map_err(io::Error::other)?;
        let applied = read_mark(&db)?;
        let shared = Shared {
            paths,
            snapshots,
            options,
            applied_index: AtomicU64::new(applied.applied.map_or(0, |id| id.index() + 1)),
            applied: Mutex::new(applied),
            snapshots_built: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            db: RwLock::new(Some(Arc::new(db))),
            applier,
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The store, for reads; `None` for the moment a snapshot is installed.
    pub fn store(&self) -> Option<Arc<Bitcask>> {
        self.shared
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The index of the last entry applied, if any.
    pub fn applied_index(&self) -> Option<u64> {
        self.shared
            .applied_index
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Snapshots built and installed since the node started.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (
            self.shared.snapshots_built.load(Ordering::Relaxed),
            self.shared.snapshots_installed.load(Ordering::Relaxed),
        )
    }

    /// Closes the store (waiting for readers to let go of it).
    pub fn close(&self) -> io::Result<()> {
        match self.shared.take_store()? {
            Some(db) => db.close().map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

fn read_mark(db: &Bitcask) -> io::Result<AppliedMark> {
    match db.mark() {
        Some(bytes) => codec::decode(&bytes),
        None => Ok(AppliedMark::default()),
    }
}

impl Shared {
    fn store(&self) -> io::Result<Arc<Bitcask>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::other("the store is closed"))
    }

    /// Takes the store out of service and waits (up to a minute) until no
    /// reader holds it, so it can be closed.
    fn take_store(&self) -> io::Result<Option<Bitcask>> {
        let Some(mut db) = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(None);
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => return Ok(Some(db)),
                Err(shared) if Instant::now() < deadline => {
                    db = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(shared) => {
                    *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(shared);
                    return Err(io::Error::other(
                        "readers held the store for a minute; cannot replace it",
                    ));
                }
            }
        }
    }

    /// Applies `entries` in order; returns the outcome of each.
    fn apply_all(&self, entries: &[Entry]) -> io::Result<Vec<Outcome>> {
        let db = self.store()?;
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let log_id = entry.log_id();
            let mut next = applied.clone();
            next.applied = Some(log_id);
            let outcome = match &entry.payload {
                EntryPayload::Normal(proposal) => self.apply_proposal(&db, proposal, &next)?,
                EntryPayload::Blank => {
                    write_mark(&db, &next)?;
                    Outcome::default()
                }
                EntryPayload::Membership(membership) => {
                    next.membership = StoredMembership::new(Some(log_id), membership.clone());
                    write_mark(&db, &next)?;
                    Outcome::default()
                }
            };
            *applied = next;
            self.applied_index
                .store(log_id.index() + 1, Ordering::Release);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn apply_proposal(
        &self,
        db: &Bitcask,
        proposal: &Proposal,
        next: &AppliedMark,
    ) -> io::Result<Outcome> {
        let mark = codec::encode(next)?;
        clock::at(proposal.now_ms, || {
            let overlay = Overlay::new(db, proposal.now_ms).map_err(io::Error::other)?;
            let replies = proposal
                .requests
                .iter()
                .map(|request| self.applier.apply(&overlay, request))
                .collect();
            overlay.commit(&mark).map_err(io::Error::other)?;
            Ok(Outcome { replies })
        })
    }

    /// Copies the store into a new snapshot directory; see
    /// `docs/CLUSTER.md` ("Snapshots") for why the store is synced after
    /// the copy.
    fn build(&self) -> io::Result<(SnapshotMeta, SnapshotDir)> {
        let db = self.store()?;
        let building = self.snapshots.join("building");
        if building.exists() {
            bitcask::disk::remove_dir_all(&building)?;
        }
        let mark = db.backup_with_mark(&building).map_err(io::Error::other)?;
        // Everything the copy holds is now durable in the store too, so
        // the log may be purged up to the copy's position.
        db.sync().map_err(io::Error::other)?;
        let applied: AppliedMark = match mark {
            Some(bytes) => codec::decode(&bytes)?,
            None => AppliedMark::default(),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.applied,
            last_membership: applied.membership,
        };
        let done = snapshot::publish(&building, &self.snapshots, &meta)?;
        snapshot::prune(&self.snapshots, false)?;
        self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %done.path.display(), last_log_id = ?meta.last_log_id, "snapshot built");
        Ok((meta, done))
    }

    /// Puts the snapshot in `dir` in place of the store.
    fn install(&self, meta: &SnapshotMeta, dir: &Path) -> io::Result<()> {
        if let Some(db) = self.take_store()? {
            db.close().map_err(io::Error::other)?;
        }
        let swapped = self.paths.install(dir);
        let db =
            Bitcask::open_with(&self.paths.live, self.options.clone()).map_err(io::Error::other)?;
        let applied = read_mark(&db)?;
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
        swapped?;
        if applied.applied != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the installed snapshot holds {:?}, its metadata says {:?}",
                    applied.applied, meta.last_log_id
                ),
            ));
        }
        self.applied_index.store(
            applied.applied.map_or(0, |id| id.index() + 1),
            Ordering::Release,
        );
        *self.applied.lock().unwrap_or_else(PoisonError::into_inner) = applied;
        self.snapshots_installed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(last_log_id = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }
}

fn write_mark(db: &Bitcask, mark: &AppliedMark) -> io::Result<()> {
    let mut batch = Batch::new();
    batch.mark(codec::encode(mark)?);
    db.write_batch(&batch).map_err(io::Error::other).map(drop)
}

/// Runs `f` (file work) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotDir;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let shared = Arc::clone(&self.shared);
        let (meta, dir) = blocking(move || shared.build()).await?;
        Ok(Snapshot {
            meta,
            snapshot: dir,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotDir;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self
            .shared
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok((applied.applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let (entries, responders): (Vec<Entry>, Vec<_>) =
            entries.try_collect::<Vec<_>>().await?.into_iter().unzip();
        let shared = Arc::clone(&self.shared);
        let outcomes = blocking(move || shared.apply_all(&entries)).await?;
        for (responder, outcome) in responders.into_iter().zip(outcomes) {
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotDir,
    ) -> Result<(), io::Error> {
        let shared = Arc::clone(&self.shared);
        let meta = meta.clone();
        blocking(move || shared.install(&meta, &snapshot.path)).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.shared.snapshots.clone();
        let newest = blocking(move || snapshot::list(&snapshots)).await?.pop();
        Ok(newest.map(|(meta, dir)| Snapshot {
            meta,
            snapshot: dir,
        }))
    }
}
