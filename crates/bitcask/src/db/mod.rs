//! The store handle, [`Bitcask`], and the state its parts share
//! ([`Shared`]): open, the public API, sync and close here; the write path,
//! the read path, the active file and rotation, and the sync thread in the
//! submodules. Merge, backup, scrub and the maintenance thread live in
//! their own modules and work on the same [`Shared`] state.

mod active_file;
mod expiry_thread;
mod read_path;
mod sync_thread;
pub use expiry_thread::Purged;
mod write_path;

pub(crate) use active_file::Writer;

/// The writer lock's guard, with its place in the lock order.
pub(crate) type WriterGuard<'a> = Ranked<MutexGuard<'a, Writer>>;
use write_path::{Framing, Op, Wait};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::damage::DamageLog;
use crate::datafile::{DataFile, FILE_HEADER_LEN, ReadHandle};
use crate::durability::GroupCommit;
use crate::error::{Error, IoContext, Result};
use crate::filetable::FileTable;
use crate::keydir::{KeyDir, KeyRange, Keys};
use crate::lock::{DeleteLock, DirLock, LockMode};
use crate::lock_order::{Rank, Ranked, ranked};
use crate::merge::MergeState;
use crate::options::{MAX_RECORD_PAYLOAD_LIMIT, Options, ReadOptions, SyncPolicy};
use crate::periodic::Periodic;
use crate::record;
use crate::recovery::{self, Mark, RecoverOptions};
use crate::scrub::ScrubHistory;
use crate::stats::{Accounts, BackupReport, FileStats, MergeReport, ScrubReport, Stats};
use crate::worker::Worker;
use crate::write::{Batch, Condition, Versioned, VersionedRef, WriteOptions};

/// An open store. `Send + Sync`: share it between threads with `Arc`.
///
/// Reads run in parallel and never wait for a write's disk I/O; writes are
/// serialised by one writer lock. Dropping the handle closes it (best
/// effort); call [`Bitcask::close`] to see errors.
#[derive(Debug)]
pub struct Bitcask {
    shared: Arc<Shared>,
    /// The interval-sync thread (`SyncPolicy::Interval`, writable).
    flusher: Option<Periodic>,
    worker: Option<Worker>,
    /// The scrub thread (`Options::scrub`, writable).
    scrubber: Option<Periodic>,
    /// The active-expiry thread (`Options::expire_interval`, writable).
    expirer: Option<Periodic>,
    closed: bool,
}

/// State shared by the handle, the background threads and merge.
///
/// **Lock order.** A thread that holds more than one of these locks takes
/// them in this order, and never the other way round:
///
/// 1. the merge lock (`merge.lock()`: one merge, or one hint written, at a
///    time; held for a whole merge);
/// 2. the writer lock (`lock_writer()`: one write or rotation at a time;
///    merge takes it only while it chooses its inputs and switches the key
///    directory, backup only while it lists the files);
/// 3. under the writer lock, briefly: the current
///    mark (`mark`), the space accounts, a key-directory shard, the hint
///    request channel (`hint_requests`), group commit's state;
/// 4. leaves, taken with nothing else waited on under them: the damage
///    log's set of records met, the file table's swap (lock-free reads).
///
/// Reads take only key-directory shards (read locks, one at a time) and
/// the file table, so they never wait for the writer lock or a merge.
///
/// The merge lock, the writer lock, the mark and the hint channel are
/// taken only through `MergeState::lock`, [`Shared::lock_writer`] /
/// [`Shared::writer_guard`], [`Shared::lock_mark`] and
/// [`Shared::lock_hint_requests`], which check this order in debug builds
/// (`lock_order.rs`): every test runs with the check on.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    options: Options,
    keydir: KeyDir,
    /// How to read every data file, by id.
    files: FileTable,
    /// `None` for a read-only handle.
    writer: Option<Mutex<Writer>>,
    /// `None` for a read-only handle.
    commit: Option<GroupCommit>,
    /// Held for the life of a writable handle.
    lock: Option<DirLock>,
    /// Space accounts of every data file.
    accounts: Accounts,
    /// The number the next new data file takes (rotation and merge outputs).
    next_file_id: AtomicU32,
    /// One merge at a time, and what the last one did.
    merge: MergeState,
    /// Asks the background thread to write a sealed file's hint. `None`
    /// when read-only or closed.
    hint_requests: Mutex<Option<mpsc::Sender<u32>>>,
    /// Set by close: background work stops at the next chance.
    closing: AtomicBool,
    /// The current mark; replaced under the writer lock.
    mark: Mutex<Option<Mark>>,
    /// Damage met by reads, merges and scrubs since open.
    damage: DamageLog,
    /// Scrub passes completed.
    scrubs: ScrubHistory,
    /// Active-expiry passes so far: which shard the next one visits.
    purge_turn: std::sync::atomic::AtomicUsize,
    /// The compacted seq (`crate::history`): history below it may be gone.
    compacted_seq: AtomicU64,
    /// Where the last completed write ends: the active file's id in the
    /// high 32 bits, the end offset in the low 32 (files are under 4 GiB).
    /// Raised after each write (under `always`, once its fsync returns, by
    /// writers that may finish out of order: so only ever raised, never
    /// lowered); the change feed reads no further (`crate::changes`).
    committed: AtomicU64,
    /// The seq of the last write published in `committed` (raised with it):
    /// a watch "from now" starts after it.
    committed_seq: AtomicU64,
    /// Told the last seq of every write once the change feed can read it
    /// ([`Bitcask::on_commit`]).
    commit_listener: std::sync::OnceLock<CommitListener>,
}

/// A function told of every committed write ([`Bitcask::on_commit`]).
#[derive(Clone)]
struct CommitListener(Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for CommitListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitListener")
    }
}

impl Bitcask {
    /// Opens (creating if needed) the store in `dir` with default [`Options`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, Options::default())
    }

    /// Opens the store in `dir` with `options`.
    ///
    /// A writable open creates the directory if needed, takes its lock
    /// (failing with [`Error::Locked`] if another handle holds it), removes
    /// files a crash left unfinished, rebuilds the key directory (from hint
    /// files where valid) and cuts a torn tail off the active file. A
    /// read-only open changes nothing on disk.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let read_only = options.read_only;
        let lock = if read_only {
            None
        } else {
            // A new store's directory is durable before anything is
            // written in it: a later fsync inside must not be lost with it.
            crate::disk::create_dir_durably(&dir).at(&dir)?;
            Some(DirLock::acquire(&dir)?)
        };
        // A read-only open beside a writer holds the delete lock shared while
        // it reads, so the writer's merge cannot delete a file it listed.
        let reading = if read_only {
            DeleteLock::acquire(&dir, LockMode::Shared)?
        } else {
            DeleteLock::create(&dir)?;
            None
        };
        let recovered = recovery::recover(
            &dir,
            RecoverOptions {
                read_only,
                use_hints: options.use_hints,
                now_ms: options.clock.now_ms(),
                progress: options.open_progress.as_deref(),
            },
        )?;
        let keydir = recovered.keydir;
        let next_seq = recovered.next_seq;
        let accounts = recovered.accounts;
        let next_file_id = AtomicU32::new(recovered.next_file_id);
        let mark = recovered.mark;
        // The read path: sealed files through a map of the whole file, their
        // descriptors closed (recovery did that); the active file through its
        // handle, mapped to its full capacity. A read-only view treats its
        // newest file as sealed too: it never sees later writes.
        let mut readers: BTreeMap<u32, Arc<ReadHandle>> = recovered
            .sealed
            .into_iter()
            .map(|(id, handle)| (id, Arc::new(handle)))
            .collect();

        // The change feed's compacted seq: a new store's history starts now
        // (written before its first data file), an older store's at its
        // active file unless `HISTORY` says more (crate::history).
        let active_floor = recovered
            .newest
            .as_ref()
            .and_then(|(newest, _)| accounts.snapshot().get(&newest.id).map(|a| a.seq_floor))
            .unwrap_or(next_seq);
        let compacted_seq = crate::history::load(
            &dir,
            recovered.newest.is_none(),
            active_floor,
            next_seq,
            read_only,
        )?;
        // Where the change feed may read to (see `committed`).
        let pack = |id: u32, end: u64| u64::from(id) << 32 | (end & u64::from(u32::MAX));
        let mut committed = 0;
        let (writer, commit) = if read_only {
            if let Some((newest, end)) = recovered.newest {
                committed = pack(newest.id, end);
                readers.insert(newest.id, Arc::new(ReadHandle::sealed(newest)?));
            }
            (None, None)
        } else {
            // A file a repair rewrote is never appended to: the change feed
            // does not read rewritten files, so new writes go to a new file
            // (docs/WATCH.md).
            let newest = match recovered.newest {
                Some((file, offset)) => {
                    let rewritten = accounts
                        .snapshot()
                        .get(&file.id)
                        .is_some_and(|a| a.rewritten);
                    if rewritten {
                        readers.insert(file.id, Arc::new(ReadHandle::sealed(file)?));
                        None
                    } else {
                        Some((file, offset))
                    }
                }
                None => None,
            };
            let (active, offset) = match newest {
                Some(newest) => newest,
                None => {
                    let id = next_file_id.fetch_add(1, Ordering::Relaxed);
                    accounts.add_file(id, next_seq, FILE_HEADER_LEN as u64, false);
                    (
                        Arc::new(DataFile::create(&dir, id, next_seq)?),
                        FILE_HEADER_LEN as u64,
                    )
                }
            };
            // A crashed predecessor may have left records that reached the
            // kernel but not the disk. fsync the active file once so that
            // everything recovered really is durable, as group commit assumes.
            active.sync_all().at(&active.path)?;
            active.map_for_reads(active.len()?.max(options.max_file_size));
            readers.insert(active.id, Arc::new(ReadHandle::Open(Arc::clone(&active))));
            let commit = GroupCommit::new(Arc::clone(&active), next_seq - 1);
            committed = pack(active.id, offset);
            let allocated = active.len()?;
            let mut writer = Writer {
                active,
                offset,
                next_seq,
                allocated,
                preallocate: true,
                map: None,
                mapped_appends: options.mapped_appends,
                buf: Vec::new(),
            };
            writer.map_allocated();
            (Some(writer), Some(commit))
        };
        // Every file is mapped (or open): deletions may go ahead.
        drop(reading);
        tracing::info!(dir = %dir.display(), keys = keydir.len(), files = readers.len(),
            read_only, "opened store");

        let shared = Arc::new(Shared {
            dir,
            options,
            keydir,
            files: FileTable::new(readers),
            writer: writer.map(Mutex::new),
            commit,
            lock,
            accounts,
            next_file_id,
            merge: MergeState::default(),
            hint_requests: Mutex::new(None),
            closing: AtomicBool::new(false),
            mark: Mutex::new(mark),
            damage: DamageLog::default(),
            scrubs: ScrubHistory::default(),
            purge_turn: std::sync::atomic::AtomicUsize::new(0),
            compacted_seq: AtomicU64::new(compacted_seq),
            committed: AtomicU64::new(committed),
            committed_seq: AtomicU64::new(next_seq - 1),
            commit_listener: std::sync::OnceLock::new(),
        });
        let flusher = match shared.options.sync {
            SyncPolicy::Interval(every) if !read_only => Some(sync_thread::start(&shared, every)?),
            _ => None,
        };
        let worker = if read_only {
            None
        } else {
            let worker = Worker::start(&shared)?;
            for id in recovered.missing_hints {
                shared.request_hint(id);
            }
            Some(worker)
        };
        let scrubber = match shared.options.scrub {
            Some(scrub) if !read_only => Some(crate::scrub::start(&shared, scrub)?),
            _ => None,
        };
        let expirer = match shared.options.expire_interval {
            Some(every) if !read_only => Some(expiry_thread::start(&shared, every)?),
            _ => None,
        };
        Ok(Self {
            shared,
            flusher,
            worker,
            scrubber,
            expirer,
            closed: false,
        })
    }

    /// Stores `value` under `key`, replacing any earlier value (and its
    /// expiry). Returns the new version.
    ///
    /// Refuses an oversized key or value with [`Error::KeyTooLarge`] /
    /// [`Error::ValueTooLarge`] before anything is written. Under
    /// [`SyncPolicy::Always`] it returns once the write is durable.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64> {
        self.put_with(key, value, WriteOptions::new())
    }

    /// [`Self::put`] with a time-to-live, a condition on the current version
    /// and/or durability for this write (see [`WriteOptions`]). Fails with
    /// [`Error::ConditionFailed`] (writing nothing) if the condition does not hold.
    pub fn put_with(&self, key: &[u8], value: &[u8], options: WriteOptions) -> Result<u64> {
        self.shared.check_sizes(key, value)?;
        let expires_at_ms = match options.expires_at_ms {
            Some(0) => {
                return Err(Error::InvalidArgument {
                    reason: "an expiry time must be after 1970",
                });
            }
            Some(at) => at,
            None => self.shared.expiry_for(options.ttl)?,
        };
        let op = Op {
            key,
            value: Some(value),
            expires_at_ms,
        };
        let seq = self.shared.write(
            &[op],
            None,
            &[(key, options.condition)],
            Wait::durable(options.durable),
            Framing::Single,
        )?;
        // A put always writes, so there is a sequence number.
        seq.ok_or(Error::InvalidArgument {
            reason: "a put wrote nothing",
        })
    }

    /// Removes `key`. Returns whether it was present; removing an absent
    /// (or expired) key writes nothing and is not an error.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.delete_with(key, WriteOptions::new())
            .map(|version| version.is_some())
    }

    /// [`Self::delete`] with a condition on the current version and/or
    /// durability for this write (a time-to-live in `options` is ignored).
    /// Returns the version of the delete (the tombstone's sequence number),
    /// or `None` if the key was absent and nothing was written.
    pub fn delete_with(&self, key: &[u8], options: WriteOptions) -> Result<Option<u64>> {
        self.shared.check_sizes(key, b"")?;
        let op = Op {
            key,
            value: None,
            expires_at_ms: 0,
        };
        self.shared.write(
            &[op],
            None,
            &[(key, options.condition)],
            Wait::durable(options.durable),
            Framing::Single,
        )
    }

    /// Applies every operation of `batch`, all or nothing, also across a
    /// crash. Returns the version of its last operation (each operation
    /// takes the next version), or `None` for an empty batch. A batch with
    /// conditions but nothing to write checks them all at one instant
    /// (under the writer lock) and writes nothing: how a read-only
    /// transaction learns that what it read was still current together.
    pub fn write_batch(&self, batch: &Batch) -> Result<Option<u64>> {
        if batch.is_empty() {
            if !batch.conditions.is_empty() {
                let conditions: Vec<(&[u8], Condition)> = batch.conditions().collect();
                let _writer = self.shared.lock_writer()?;
                self.shared.check_conditions(&conditions)?;
            }
            return Ok(None);
        }
        let mark = batch.mark.as_deref();
        if mark.is_some_and(|m| m.len() > record::MAX_MARK_LEN) {
            return Err(Error::InvalidArgument {
                reason: "a mark must be at most 64 KiB",
            });
        }
        let mut total = mark.map_or(0, |m| record::encoded_len(&[], m));
        let mut ops = Vec::with_capacity(batch.ops.len());
        for op in &batch.ops {
            let value = op.value.as_deref();
            self.shared
                .check_sizes(&op.key, value.unwrap_or_default())?;
            total = total.saturating_add(record::encoded_len(&op.key, value.unwrap_or_default()));
            let expires_at_ms = match (value, op.expires_at_ms) {
                (None, _) => 0,
                (Some(_), Some(0)) => {
                    return Err(Error::InvalidArgument {
                        reason: "an expiry time must be after 1970",
                    });
                }
                (Some(_), Some(at)) => at,
                (Some(_), None) => self.shared.expiry_for(op.ttl)?,
            };
            ops.push(Op {
                key: &op.key,
                value,
                expires_at_ms,
            });
        }
        if total > MAX_RECORD_PAYLOAD_LIMIT {
            return Err(Error::InvalidArgument {
                reason: "a batch must be at most 1 GiB encoded",
            });
        }
        let conditions: Vec<(&[u8], Condition)> = batch.conditions().collect();
        self.shared.write(
            &ops,
            mark,
            &conditions,
            Wait::durable(batch.durable),
            Framing::Batch,
        )
    }

    /// Refuses a key or value over this store's limits with
    /// [`Error::KeyTooLarge`] / [`Error::ValueTooLarge`], as a write would,
    /// without writing.
    pub fn check_sizes(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.shared.check_sizes(key, value)
    }

    /// The longest value this store takes (`Options::max_value_size`), for
    /// a caller that would build a value of a computed length: check first,
    /// allocate after.
    pub fn max_value_size(&self) -> usize {
        self.shared.options.max_value_size
    }

    /// The version (sequence number) the next write's first record will
    /// take, if no other writer gets there first; `None` for a read-only
    /// handle. A single writer (the cluster's state machine) uses it to
    /// know the versions of a batch before writing it: its records take
    /// consecutive numbers from here, its mark last.
    pub fn next_version(&self) -> Option<u64> {
        Some(self.shared.writer_guard()?.next_seq)
    }

    /// The compacted seq of the change feed (docs/WATCH.md): every
    /// committed write with a version at or above it is still in the data
    /// files as written; history below it may have been dropped by a merge.
    /// 0 for a store no merge has compacted since this version created it.
    pub fn compacted_seq(&self) -> u64 {
        self.shared.compacted_seq()
    }

    /// Calls `listener` with the last version of every write, once the
    /// write can be read by [`Bitcask::changes`] (under
    /// [`SyncPolicy::Always`], after its fsync), from the writing thread,
    /// outside every lock. It must be quick and must not block: it is
    /// meant to wake watchers (the server turns it into a notification of
    /// its async runtime). One listener per store: a second call is
    /// [`Error::InvalidArgument`].
    pub fn on_commit(&self, listener: impl Fn(u64) + Send + Sync + 'static) -> Result<()> {
        self.shared
            .commit_listener
            .set(CommitListener(Arc::new(listener)))
            .map_err(|_| Error::InvalidArgument {
                reason: "a commit listener is already set",
            })
    }

    /// Where the change feed stands: the seq a watch "from now" starts at
    /// (the one after the last write it can read) and the compacted seq.
    /// Taken before a listing, `next_seq` is where a watch that follows it
    /// loses nothing: every write below it is in the listing.
    pub fn position(&self) -> crate::Position {
        crate::Position {
            next_seq: self.shared.next_committed_seq(),
            compacted_seq: self.shared.compacted_seq(),
        }
    }

    /// The store's committed changes from version `from_seq` on, in order
    /// (the change feed's source, docs/WATCH.md); [`Error::Compacted`] if
    /// a merge may have dropped some of them. Read-only handles read the
    /// files as they were at open.
    pub fn changes(&self, from_seq: u64) -> Result<crate::Changes> {
        crate::Changes::new(Arc::clone(&self.shared), from_seq)
    }

    /// The store's current mark: the one written with the newest batch
    /// that carried one ([`Batch::mark`]), as recovered after a crash.
    /// `None` if no batch ever carried one.
    pub fn mark(&self) -> Option<Vec<u8>> {
        self.shared.lock_mark().as_ref().map(|m| m.value.to_vec())
    }

    /// The value stored under `key`, or `None` (absent or expired).
    ///
    /// Costs one lookup in memory and one copy of the value out of a memory
    /// map of its file (or one `pread` where no map covers it); the record's
    /// checksum, key and version are verified before the value is copied.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.map(|v| v.value))
    }

    /// Calls `f` with the value stored under `key` and returns what it
    /// returns, or `None` (absent or expired). The value is lent from the
    /// data file's memory map, so a read copies and allocates nothing: for
    /// callers that copy the value somewhere anyway (a network buffer).
    /// Verified exactly as [`Self::get`] verifies, before `f` sees it. `f`
    /// may call the store again; until it returns, the file it reads from
    /// stays mapped even if a merge deletes it.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.get_with_options(key, ReadOptions::new(), f)
    }

    /// [`Self::get_with`], with the read's options: whether the record's
    /// checksum is computed ([`ReadOptions::verify_checksum`]; its framing,
    /// key and version are checked either way).
    pub fn get_with_options<R>(
        &self,
        key: &[u8],
        read: ReadOptions,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        // Used only where no map covers the record (`pread`); empty, it
        // costs nothing.
        let mut scratch = Vec::new();
        self.shared
            .read_live(key, read, &mut scratch, |_, value| f(value))
    }

    /// The value under `key` with its version and expiry, or `None`.
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>> {
        self.get_versioned_with(key, |v| v.to_versioned())
    }

    /// [`Self::get_with`], with the value's version and expiry: `f` gets
    /// them with the value lent from the data file's map (verified as
    /// [`Self::get`] verifies). For a server that writes a value and its
    /// version straight into an answer.
    pub fn get_versioned_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(VersionedRef<'_>) -> R,
    ) -> Result<Option<R>> {
        let mut scratch = Vec::new();
        self.shared
            .read_live(key, ReadOptions::new(), &mut scratch, |entry, value| {
                f(VersionedRef {
                    value,
                    version: entry.seq,
                    expires_at_ms: (entry.expires_at_ms != 0).then_some(entry.expires_at_ms),
                })
            })
    }

    /// The current version of `key`, or `None` (absent or expired).
    /// Answered from memory, without disk I/O.
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        self.shared.live_entry(key).map(|e| e.seq)
    }

    /// `key`'s expiry: `None` if it is absent (or expired), `Some(None)` if
    /// it never expires, `Some(Some(unix_ms))` otherwise. Answered from
    /// memory, without disk I/O.
    pub fn expiry(&self, key: &[u8]) -> Option<Option<u64>> {
        self.shared
            .live_entry(key)
            .map(|e| (e.expires_at_ms != 0).then_some(e.expires_at_ms))
    }

    /// Whether `key` is present (and not expired). Answered from memory,
    /// without disk I/O.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.shared.live_entry(key).is_some()
    }

    /// Number of keys in the key directory. Keys that expired since the
    /// last merge or open still count until then.
    pub fn len(&self) -> usize {
        self.shared.keydir.len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All live keys, in lexicographic byte order. See [`Keys`] for what it
    /// sees of writes made while it runs.
    pub fn keys(&self) -> Keys<'_> {
        self.keys_in(KeyRange::all())
    }

    /// The live keys in `range` (a prefix and/or a start key), in
    /// lexicographic byte order. Take a page with `.take(limit)`, and ask for
    /// the next page with `start_after(last key)`: a page costs the same
    /// whatever the number of keys in the store.
    pub fn keys_in(&self, range: KeyRange) -> Keys<'_> {
        Keys::new(
            &self.shared.keydir,
            range,
            self.shared.options.clock.now_ms(),
        )
    }

    /// Deletes keys whose expiry has passed from one shard of the key
    /// directory (the next one each call), looking at up to `sample` of its
    /// keys that carry an expiry; what the background thread
    /// ([`Options::expire_interval`]) does on each tick. An expired key
    /// reads as absent either way; deleting it frees its memory and takes
    /// it out of [`Self::len`]. A key rewritten meanwhile is left alone.
    pub fn purge_expired(&self, sample: usize) -> Result<Purged> {
        self.shared.purge_pass(sample)
    }

    /// Makes every write that has returned durable (fsync), whatever the
    /// policy. Concurrent callers share one fsync. A no-op when read-only.
    pub fn sync(&self) -> Result<()> {
        match &self.shared.commit {
            Some(commit) => commit.sync_through(commit.written()),
            None => Ok(()),
        }
    }

    /// Merges now: seals the active file if it has anything to reclaim
    /// (so a store smaller than one data file shrinks too), rewrites the
    /// live records of every sealed data file that has anything to
    /// reclaim, and deletes the old files. Reads and writes go on meanwhile
    /// (writers wait only while the inputs are chosen). If a merge is
    /// already running, waits for it and then merges. See
    /// `docs/FORMAT.md` ("Merge") for the protocol and its crash safety.
    pub fn merge(&self) -> Result<MergeReport> {
        crate::merge::run(&self.shared, crate::merge::Scope::IncludingActive)
    }

    /// Verifies every record of every sealed data file now, as fast as the
    /// disk goes (the background scrub, [`Options::scrub`], paces itself).
    /// Damage found is logged once per record with its file and offset and
    /// counted in [`Stats::damaged_records`]; the report says how much was
    /// read and found. Reads and writes go on meanwhile.
    pub fn scrub(&self) -> Result<ScrubReport> {
        crate::scrub::pass(&self.shared, None, &|| false)?.ok_or_else(|| Error::Io {
            path: self.shared.dir.clone(),
            source: std::io::Error::other("the store is closing; the scrub stopped"),
        })
    }

    /// Copies a consistent view of the store into `dest`, which must not
    /// exist, so that it opens as a normal store; returns what was copied.
    /// Writers wait only while the files are listed. See `docs/FORMAT.md`
    /// ("Backup").
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        crate::backup::run(&self.shared, dest.as_ref()).map(|(report, _)| report)
    }

    /// [`Self::backup`], returning the mark the copy holds (its current
    /// mark, see [`Self::mark`]): the position of the copy in whatever
    /// sequence the marks number.
    pub fn backup_with_mark(&self, dest: impl AsRef<Path>) -> Result<Option<Vec<u8>>> {
        crate::backup::run(&self.shared, dest.as_ref()).map(|(_, mark)| mark)
    }

    /// Damaged records met since open ([`Stats::damaged_records`]),
    /// without the rest of [`Self::stats`]: for health checks polled often.
    pub fn damaged_records(&self) -> u64 {
        self.shared.damage.records()
    }

    /// Sizes, space use per data file and merge activity.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.writer.is_none()
    }

    /// Number of fsyncs group commit has issued since open (rotation and
    /// close not counted). Lets callers see group commit at work.
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsync_count()
    }

    /// Whether an earlier I/O failure (a failed fsync, or a failed write
    /// that could not be undone) makes the store refuse writes until it is
    /// reopened. Reads go on.
    pub fn is_poisoned(&self) -> bool {
        self.shared
            .commit
            .as_ref()
            .is_some_and(GroupCommit::is_poisoned)
    }

    /// Syncs outstanding writes, stops the background threads (a running
    /// background merge stops early, leaving a consistent store) and
    /// releases the directory lock. Dropping the handle does the same but can
    /// only log errors. Returns [`Error::Poisoned`] (after releasing
    /// everything) if an earlier failure means not every write can be
    /// promised durable.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.shared.closing.store(true, Ordering::SeqCst);
        if let Some(expirer) = self.expirer.take() {
            expirer.stop();
        }
        if let Some(scrubber) = self.scrubber.take() {
            scrubber.stop();
        }
        if let Some(worker) = self.worker.take() {
            self.shared.lock_hint_requests().take();
            worker.stop();
        }
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // A poisoned store cannot promise that its writes are on disk: say so.
        match &self.shared.commit {
            Some(commit) => commit.sync_through(commit.written()),
            None => Ok(()),
        }?;
        // Leave the active file ending at its last record. If this fails,
        // the next open drops the preallocated space instead.
        // Then write its hint, so that the next open reads no data file
        // (docs/FORMAT.md, "Close"). The open that used the last one
        // deleted it; if this fails, the next open scans the file.
        if let Some(mut w) = self.shared.writer_guard() {
            match Shared::cut_preallocated(&mut w)
                .and_then(|()| w.active.sync_all().at(&w.active.path))
            {
                Ok(()) => {
                    #[cfg(test)]
                    crate::failpoint::step("close: active file cut, no hint yet");
                    if let Err(error) =
                        crate::hint::write_for_data_file(&self.shared.dir, w.active.id)
                    {
                        tracing::warn!(%error, "could not write the active file's hint at close");
                    }
                    #[cfg(test)]
                    crate::failpoint::step("close: hint written");
                }
                Err(error) => {
                    tracing::warn!(%error, "could not cut the active file's preallocated space at close");
                }
            }
        }
        if let Some(lock) = &self.shared.lock {
            tracing::debug!(lock = %lock.path().display(), "closing store");
        }
        Ok(())
    }
}

impl Drop for Bitcask {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(dir = %self.shared.dir.display(), %error, "closing the store failed");
        }
    }
}

impl Shared {
    /// The compacted seq (`crate::history`).
    pub(crate) fn compacted_seq(&self) -> u64 {
        self.compacted_seq.load(Ordering::Acquire)
    }

    /// The committed position: the file the last completed write went to,
    /// and where in it that write ends.
    pub(crate) fn committed_position(&self) -> (u32, u64) {
        let packed = self.committed.load(Ordering::Acquire);
        ((packed >> 32) as u32, packed & u64::from(u32::MAX))
    }

    /// Publishes the end of a completed write whose last record has
    /// `last_seq`. Writers under `always` publish after their fsync, in any
    /// order, so both only ever rise: a writer's file ids grow with each
    /// rotation, so `(file, end)` packed grows in log order too.
    pub(crate) fn publish_committed(&self, file_id: u32, end: u64, last_seq: u64) {
        self.committed.fetch_max(
            u64::from(file_id) << 32 | (end & u64::from(u32::MAX)),
            Ordering::AcqRel,
        );
        self.committed_seq.fetch_max(last_seq, Ordering::AcqRel);
    }

    /// The seq after the last write the change feed can read.
    pub(crate) fn next_committed_seq(&self) -> u64 {
        self.committed_seq.load(Ordering::Acquire) + 1
    }

    /// Tells the commit listener, if any, of a write ending at `last_seq`
    /// (called outside the writer lock, once the write is published).
    pub(crate) fn notify_commit(&self, last_seq: u64) {
        if let Some(listener) = self.commit_listener.get() {
            (listener.0)(last_seq);
        }
    }

    /// Raises the compacted seq to `to` (durably first: `HISTORY`), before
    /// a merge deletes inputs whose history ends below `to`.
    pub(crate) fn raise_compacted_seq(&self, to: u64) -> Result<()> {
        if to > self.compacted_seq.load(Ordering::Acquire) {
            crate::history::store(&self.dir, to)?;
            self.compacted_seq.store(to, Ordering::Release);
        }
        Ok(())
    }

    /// The store's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// The key directory.
    pub(crate) fn keydir(&self) -> &KeyDir {
        &self.keydir
    }

    /// How to read every data file, by id.
    pub(crate) fn files(&self) -> &FileTable {
        &self.files
    }

    /// The space accounts of every data file.
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The number the next new data file takes.
    pub(crate) fn next_file_id(&self) -> &AtomicU32 {
        &self.next_file_id
    }

    /// One merge at a time, and what the last one did.
    pub(crate) fn merge(&self) -> &MergeState {
        &self.merge
    }

    /// Group commit; `None` when read-only.
    pub(crate) fn commit(&self) -> Option<&GroupCommit> {
        self.commit.as_ref()
    }

    /// Damage met since open.
    pub(crate) fn damage(&self) -> &DamageLog {
        &self.damage
    }

    /// Scrub passes completed.
    pub(crate) fn scrubs(&self) -> &ScrubHistory {
        &self.scrubs
    }

    /// Whether close has begun: background work stops at its next chance.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn check_sizes(&self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > self.options.max_key_size {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: self.options.max_key_size,
            });
        }
        if value.len() > self.options.max_value_size {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: self.options.max_value_size,
            });
        }
        Ok(())
    }

    /// `expires_at_ms` for a write with this time-to-live.
    fn expiry_for(&self, ttl: Option<Duration>) -> Result<u64> {
        let Some(ttl) = ttl else { return Ok(0) };
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Err(Error::InvalidArgument {
                reason: "a time-to-live must be at least one millisecond",
            });
        }
        Ok(self.options.clock.now_ms().saturating_add(ms))
    }

    pub(crate) fn fsync_count(&self) -> u64 {
        self.commit.as_ref().map_or(0, GroupCommit::fsync_count)
    }

    /// The writer lock, to write: refused on a read-only or poisoned store.
    pub(crate) fn lock_writer(&self) -> Result<(WriterGuard<'_>, &GroupCommit)> {
        let (Some(_), Some(commit)) = (&self.writer, &self.commit) else {
            return Err(Error::ReadOnly);
        };
        let guard = self.writer_guard().ok_or(Error::ReadOnly)?;
        if commit.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok((guard, commit))
    }

    /// The writer lock whatever the store's state (`None` when read-only):
    /// for close, backup and reading the next version.
    pub(crate) fn writer_guard(&self) -> Option<WriterGuard<'_>> {
        let writer = self.writer.as_ref()?;
        Some(ranked(Rank::Writer, || {
            writer.lock().unwrap_or_else(PoisonError::into_inner)
        }))
    }

    /// The current mark, under its lock (taken briefly, under the writer
    /// lock when it changes).
    pub(crate) fn lock_mark(&self) -> Ranked<MutexGuard<'_, Option<Mark>>> {
        ranked(Rank::UnderWriter, || {
            self.mark.lock().unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// The channel to the maintenance thread, under its lock.
    pub(crate) fn lock_hint_requests(&self) -> Ranked<MutexGuard<'_, Option<mpsc::Sender<u32>>>> {
        ranked(Rank::UnderWriter, || {
            self.hint_requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Asks the background thread to write the hint file of sealed file `id`.
    pub(crate) fn request_hint(&self, id: u32) {
        if let Some(tx) = &*self.lock_hint_requests() {
            // A closed channel means the store is closing: the next open
            // writes the hint instead.
            let _ = tx.send(id);
        }
    }

    fn stats(&self) -> Stats {
        let accounts = self.accounts.snapshot();
        let mut order: Vec<(u64, u32)> =
            accounts.iter().map(|(id, a)| (a.seq_floor, *id)).collect();
        order.sort_unstable();
        let active = order.last().map(|&(_, id)| id);
        let files: Vec<FileStats> = order
            .iter()
            .map(|(_, id)| {
                let a = &accounts[id];
                FileStats {
                    id: *id,
                    active: Some(*id) == active && self.writer.is_some(),
                    total_bytes: a.total_bytes,
                    live_bytes: a.live_bytes,
                    dead_bytes: a.dead_bytes(),
                    live_keys: a.live_keys,
                }
            })
            .collect();
        let (recent_merges, merges_completed) = self.merge.history();
        let (last_scrub, scrubs_completed) = self.scrubs.get();
        Stats {
            keys: self.keydir.len() as u64,
            keys_with_expiry: self.keydir.len_with_expiry() as u64,
            data_files: files.len() as u64,
            total_bytes: files.iter().map(|f| f.total_bytes).sum(),
            live_bytes: files.iter().map(|f| f.live_bytes).sum(),
            dead_bytes: files.iter().map(|f| f.dead_bytes).sum(),
            files,
            merge_running: self.merge.is_running(),
            merge_progress: self.merge.progress(),
            merges_completed,
            last_merge: recent_merges.first().copied(),
            recent_merges,
            fsyncs: self.fsync_count(),
            damaged_records: self.damage.records(),
            damaged_reads: self.damage.reads(),
            scrubs_completed,
            last_scrub,
        }
    }
}

#[cfg(test)]
mod tests;
