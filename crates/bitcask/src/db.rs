//! The store handle, [`Bitcask`]: the write path, the read path and the
//! lifecycle (open, sync, close). Merge, backup and the background thread
//! live in their own modules and work on the same [`Shared`] state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::damage::{DamageLog, Finder, Place};
use crate::datafile::{DataFile, FILE_HEADER_LEN, ReadHandle};
use crate::durability::GroupCommit;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::filetable::FileTable;
use crate::keydir::{Entry, KeyDir, KeyRange, Keys};
use crate::lock::{DeleteLock, DirLock};
use crate::merge::MergeState;
use crate::options::{MAX_RECORD_PAYLOAD_LIMIT, Options, SyncPolicy};
use crate::record::{self, RecordKind};
use crate::recovery::{self, Mark, RecoverOptions};
use crate::scrub::{ScrubHistory, Scrubber};
use crate::stats::{Accounts, BackupReport, FileStats, MergeReport, ScrubReport, Stats};
use crate::worker::Worker;
use crate::write::{Batch, Condition, Versioned, WriteOptions};

/// An open store. `Send + Sync`: share it between threads with `Arc`.
///
/// Reads run in parallel and never wait for a write's disk I/O; writes are
/// serialised by one writer lock. Dropping the handle closes it (best
/// effort); call [`Bitcask::close`] to see errors.
#[derive(Debug)]
pub struct Bitcask {
    shared: Arc<Shared>,
    flusher: Option<Flusher>,
    worker: Option<Worker>,
    scrubber: Option<Scrubber>,
    closed: bool,
}

/// State shared by the handle, the background threads and merge.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) keydir: KeyDir,
    /// How to read every data file, by id.
    pub(crate) files: FileTable,
    /// `None` for a read-only handle.
    pub(crate) writer: Option<Mutex<Writer>>,
    /// `None` for a read-only handle.
    pub(crate) commit: Option<GroupCommit>,
    /// Held for the life of a writable handle.
    lock: Option<DirLock>,
    /// Space accounts of every data file.
    pub(crate) accounts: Accounts,
    /// The number the next new data file takes (rotation and merge outputs).
    pub(crate) next_file_id: AtomicU32,
    /// One merge at a time, and what the last one did.
    pub(crate) merge: MergeState,
    /// Asks the background thread to write a sealed file's hint. `None`
    /// when read-only or closed.
    pub(crate) hint_requests: Mutex<Option<mpsc::Sender<u32>>>,
    /// Set by close: background work stops at the next chance.
    pub(crate) closing: AtomicBool,
    /// The current mark; replaced under the writer lock.
    pub(crate) mark: Mutex<Option<Mark>>,
    /// Damage met by reads, merges and scrubs since open.
    pub(crate) damage: DamageLog,
    /// Scrub passes completed.
    pub(crate) scrubs: ScrubHistory,
}

/// What only the writer touches, behind the writer lock.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) active: Arc<DataFile>,
    /// Where the next record goes in the active file.
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
    /// The active file's length: its records up to `offset`, then
    /// preallocated zeros (docs/FORMAT.md, "Preallocation").
    allocated: u64,
    /// Whether to preallocate (off once the filesystem says it cannot).
    preallocate: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

/// How far ahead of the last record the active file is allocated.
const PREALLOCATE_STEP: u64 = 1 << 20;

/// One put or delete on its way to the log.
#[derive(Debug, Clone, Copy)]
struct Op<'a> {
    key: &'a [u8],
    /// `Some(value)` for a put.
    value: Option<&'a [u8]>,
    expires_at_ms: u64,
}

/// The interval-sync thread and the channel that stops it.
#[derive(Debug)]
struct Flusher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
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
            DeleteLock::acquire(&dir, false)?
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

        let (writer, commit) = if read_only {
            if let Some((newest, _)) = recovered.newest {
                readers.insert(newest.id, Arc::new(ReadHandle::sealed(newest)?));
            }
            (None, None)
        } else {
            let (active, offset) = match recovered.newest {
                Some(newest) => newest,
                None => {
                    let id = next_file_id.fetch_add(1, Ordering::Relaxed);
                    accounts.add_file(id, next_seq, FILE_HEADER_LEN as u64);
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
            let allocated = active.len()?;
            let writer = Writer {
                active,
                offset,
                next_seq,
                allocated,
                preallocate: true,
                buf: Vec::new(),
            };
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
        });
        let flusher = match shared.options.sync {
            SyncPolicy::Interval(every) if !read_only => Some(Flusher::start(&shared, every)?),
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
            Some(scrub) if !read_only => Some(Scrubber::start(&shared, scrub)?),
            _ => None,
        };
        Ok(Self {
            shared,
            flusher,
            worker,
            scrubber,
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
        let seq = self
            .shared
            .write(&[op], None, options.condition, options.durable, false)?;
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
        self.shared
            .write(&[op], None, options.condition, options.durable, false)
    }

    /// Applies every operation of `batch`, all or nothing, also across a
    /// crash. Returns the version of its last operation (each operation
    /// takes the next version), or `None` for an empty batch.
    pub fn write_batch(&self, batch: &Batch) -> Result<Option<u64>> {
        if batch.is_empty() {
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
        self.shared
            .write(&ops, mark, Condition::None, batch.durable, true)
    }

    /// Refuses a key or value over this store's limits with
    /// [`Error::KeyTooLarge`] / [`Error::ValueTooLarge`], as a write would,
    /// without writing.
    pub fn check_sizes(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.shared.check_sizes(key, value)
    }

    /// The version (sequence number) the next write's first record will
    /// take, if no other writer gets there first; `None` for a read-only
    /// handle. A single writer (the cluster's state machine) uses it to
    /// know the versions of a batch before writing it: its records take
    /// consecutive numbers from here, its mark last.
    pub fn next_version(&self) -> Option<u64> {
        let writer = self.shared.writer.as_ref()?;
        Some(
            writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next_seq,
        )
    }

    /// The store's current mark: the one written with the newest batch
    /// that carried one ([`Batch::mark`]), as recovered after a crash.
    /// `None` if no batch ever carried one.
    pub fn mark(&self) -> Option<Vec<u8>> {
        self.shared
            .mark
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|m| m.value.to_vec())
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
        // Used only where no map covers the record (`pread`); empty, it
        // costs nothing.
        let mut scratch = Vec::new();
        self.shared
            .read_live(key, &mut scratch, |_, value| f(value))
    }

    /// The value under `key` with its version and expiry, or `None`.
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>> {
        let mut scratch = Vec::new();
        self.shared
            .read_live(key, &mut scratch, |entry, value| Versioned {
                value: value.to_vec(),
                version: entry.seq,
                expires_at_ms: (entry.expires_at_ms != 0).then_some(entry.expires_at_ms),
            })
    }

    /// The current version of `key`, or `None` (absent or expired).
    /// Answered from memory, without disk I/O.
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        self.shared.live_entry(key).map(|e| e.seq)
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
        if let Some(scrubber) = self.scrubber.take() {
            scrubber.stop();
        }
        if let Some(worker) = self.worker.take() {
            self.shared
                .hint_requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
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
        if let Some(writer) = &self.shared.writer {
            let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
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

    /// The entry of `key` if it is present and not expired now.
    pub(crate) fn live_entry(&self, key: &[u8]) -> Option<Entry> {
        self.keydir.get(key).filter(|e| self.unexpired(e))
    }

    /// Whether `entry` has not expired now (the clock is read only for
    /// entries that can expire).
    fn unexpired(&self, entry: &Entry) -> bool {
        entry.expires_at_ms == 0 || !entry.is_expired(self.options.clock.now_ms())
    }

    pub(crate) fn fsync_count(&self) -> u64 {
        self.commit.as_ref().map_or(0, GroupCommit::fsync_count)
    }

    pub(crate) fn lock_writer(&self) -> Result<(MutexGuard<'_, Writer>, &GroupCommit)> {
        let (Some(writer), Some(commit)) = (&self.writer, &self.commit) else {
            return Err(Error::ReadOnly);
        };
        let guard = writer.lock().unwrap_or_else(PoisonError::into_inner);
        if commit.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok((guard, commit))
    }

    /// Asks the background thread to write the hint file of sealed file `id`.
    pub(crate) fn request_hint(&self, id: u32) {
        if let Some(tx) = &*self
            .hint_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            // A closed channel means the store is closing: the next open
            // writes the hint instead.
            let _ = tx.send(id);
        }
    }

    /// Appends `ops` and then `mark`, if any, as one write (a batch if more
    /// than one record) and updates the key directory and the current mark.
    /// Returns the last seq, or `None` for a delete (not in a batch) of an
    /// absent key, which writes nothing. `condition` applies to the first
    /// op's key. At least one op or a mark.
    fn write(
        &self,
        ops: &[Op<'_>],
        mark: Option<&[u8]>,
        condition: Condition,
        durable: bool,
        in_batch: bool,
    ) -> Result<Option<u64>> {
        let (mut w, commit) = self.lock_writer()?;
        let single_delete = !in_batch && mark.is_none() && ops.len() == 1 && ops[0].value.is_none();
        if condition != Condition::None || single_delete {
            let current = self.live_entry(ops[0].key).map(|e| e.seq);
            if !condition.holds(current) {
                return Err(Error::ConditionFailed { current });
            }
            if single_delete && current.is_none() {
                return Ok(None);
            }
        }
        let mark_len = mark.map_or(0, |m| record::encoded_len(&[], m) as u64);
        let total: u64 = ops
            .iter()
            .map(|op| record::encoded_len(op.key, op.value.unwrap_or_default()) as u64)
            .sum::<u64>()
            + mark_len;
        if w.offset > FILE_HEADER_LEN as u64 && w.offset + total > self.options.max_file_size {
            self.rotate(&mut w, commit)?;
        }
        let first_seq = w.next_seq;
        let offset = w.offset;
        if offset + total > w.allocated {
            Self::allocate(&mut w, offset + total, self.options.max_file_size)?;
        }
        let Writer { buf, active, .. } = &mut *w;
        buf.clear();
        // The record that commits the write: the mark if there is one, else
        // the last op.
        let records = ops.len() + usize::from(mark.is_some());
        let last = records.saturating_sub(1);
        for (i, op) in ops.iter().enumerate() {
            let kind = RecordKind::for_op(op.value.is_some(), i == last);
            let value = op.value.unwrap_or_default();
            record::encode_into(
                buf,
                first_seq + i as u64,
                op.expires_at_ms,
                kind,
                op.key,
                value,
            )?;
        }
        if let Some(mark) = mark {
            let seq = first_seq + last as u64;
            record::encode_into(buf, seq, 0, RecordKind::Mark, &[], mark)?;
        }
        if let Err(source) = active.write_all_at(buf, offset) {
            // Cut off whatever part of the write reached the file, so the
            // next record does not land after garbage.
            if let Err(cut) = active.truncate(offset) {
                tracing::error!(path = %active.path.display(), error = %cut,
                    "could not undo a failed write; the store refuses writes until reopened");
                commit.poison();
            }
            let path = active.path.clone();
            w.allocated = offset;
            return Err(Error::Io { path, source });
        }
        let file_id = active.id;
        let mut at = offset;
        for (i, op) in ops.iter().enumerate() {
            let len = record::encoded_len(op.key, op.value.unwrap_or_default()) as u64;
            let live = op.value.map(|_| Entry {
                file_id,
                // Both fit: files are at most 4 GiB (see options).
                offset: at as u32,
                len: len as u32,
                seq: first_seq + i as u64,
                expires_at_ms: op.expires_at_ms,
            });
            let replaced = match live {
                Some(entry) => self.keydir.insert(op.key, entry),
                None => self.keydir.remove(op.key),
            };
            self.accounts.written(
                file_id,
                len,
                op.expires_at_ms,
                live.as_ref(),
                replaced.as_ref(),
            );
            at += len;
        }
        let last_seq = first_seq + last as u64;
        if let Some(mark) = mark {
            // Dead from the start: only the current mark matters, and it is
            // at most 64 KiB (docs/FORMAT.md, "Marks").
            self.accounts.written(file_id, mark_len, 0, None, None);
            *self.mark.lock().unwrap_or_else(PoisonError::into_inner) = Some(Mark {
                seq: last_seq,
                value: Arc::from(mark),
            });
        }
        w.offset += total;
        w.next_seq = last_seq + 1;
        commit.note_written(last_seq);
        drop(w);
        if durable || self.options.sync == SyncPolicy::Always {
            commit.sync_through(last_seq)?;
        }
        Ok(Some(last_seq))
    }

    /// Extends the active file so that it is allocated up to at least
    /// `end`: by [`PREALLOCATE_STEP`] past the last record, not past
    /// `max_file_size` unless the record itself goes further. If that much
    /// does not fit (a nearly full disk, a file-size limit), just what the
    /// record needs. A filesystem that cannot preallocate turns
    /// preallocation off; any other failure fails the write before anything
    /// is written. The new space past the record is then written with zeros
    /// ("Zero fill" in docs/FORMAT.md; a failure there is only logged).
    fn allocate(w: &mut Writer, end: u64, max_file_size: u64) -> Result<()> {
        if !w.preallocate {
            return Ok(());
        }
        let unsupported = |e: &std::io::Error| e.kind() == std::io::ErrorKind::Unsupported;
        let target = end.max((w.offset + PREALLOCATE_STEP).min(max_file_size));
        let result = match w.active.allocate(target) {
            Err(e) if target > end && !unsupported(&e) => w.active.allocate(end).map(|()| end),
            other => other.map(|()| target),
        };
        match result {
            Ok(allocated) => {
                // The record itself is written next; zero what lies past it.
                let from = w.allocated.max(end);
                if let Err(error) = w.active.zero_fill(from, allocated) {
                    tracing::debug!(path = %w.active.path.display(), %error,
                        "could not zero-fill preallocated space; it stays unwritten");
                }
                w.allocated = allocated;
                Ok(())
            }
            Err(e) if unsupported(&e) => {
                // Plain appends from now on.
                tracing::debug!(path = %w.active.path.display(), error = %e,
                    "the filesystem cannot preallocate; appending instead");
                w.preallocate = false;
                Ok(())
            }
            Err(source) => {
                // Whatever a failed call left, the bytes past the last
                // record are zeros; go on from the file's real length.
                w.allocated = w.active.len().unwrap_or(w.allocated);
                Err(Error::Io {
                    path: w.active.path.clone(),
                    source,
                })
            }
        }
    }

    /// Cuts the active file's preallocated space, so it ends at its last
    /// record (before sealing it, and at close).
    fn cut_preallocated(w: &mut Writer) -> Result<()> {
        if w.allocated > w.offset {
            w.active.truncate(w.offset).at(&w.active.path)?;
            w.allocated = w.offset;
        }
        Ok(())
    }

    /// Seals the active file (cut its preallocated space, fsync) and starts
    /// the next one.
    pub(crate) fn rotate(&self, w: &mut Writer, commit: &GroupCommit) -> Result<()> {
        // A failed cut seals nothing: the file stays active.
        Self::cut_preallocated(w)?;
        if let Err(source) = w.active.sync_all() {
            commit.poison();
            return Err(Error::Io {
                path: w.active.path.clone(),
                source,
            });
        }
        commit.note_durable(w.next_seq - 1);
        // The old file is sealed: read it through a map of all of it, and
        // let its descriptor close once in-flight reads drop their handles.
        // (Made before the new file, so a failure here leaves nothing behind.)
        let sealed = ReadHandle::sealed(Arc::clone(&w.active))?;
        let id = self.next_file_id.fetch_add(1, Ordering::Relaxed);
        if id == u32::MAX {
            return Err(Error::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("data file ids exhausted"),
            });
        }
        // On failure `create` removes its unfinished `.tmp` file; the id is
        // simply skipped.
        let file = Arc::new(DataFile::create(&self.dir, id, w.next_seq)?);
        file.map_for_reads(self.options.max_file_size);
        self.accounts
            .add_file(id, w.next_seq, FILE_HEADER_LEN as u64);
        self.files.update(|files| {
            files.insert(w.active.id, Arc::new(sealed));
            files.insert(id, Arc::new(ReadHandle::Open(Arc::clone(&file))));
        });
        commit.set_active(Arc::clone(&file));
        tracing::debug!(path = %file.path.display(), "rotated to a new data file");
        let sealed_id = w.active.id;
        w.active = file;
        w.offset = FILE_HEADER_LEN as u64;
        w.allocated = FILE_HEADER_LEN as u64;
        self.request_hint(sealed_id);
        Ok(())
    }

    /// Finds `key`'s live record, verifies it and calls `f` with its entry
    /// and value; returns what `f` returns, or `None` (absent or expired).
    /// The value is lent from the file's map while the file table's guard
    /// keeps the map alive (read into `scratch` with `pread` where no map
    /// covers it). `f` is called at most once, after verification.
    ///
    /// The first lookup goes by hash alone ([`KeyDir::get_by_hash`]: one
    /// slot, no key bytes touched), since the record's key is compared with
    /// `key` anyway. Anything unexpected (a record of another key, an
    /// expired candidate, a file a merge dropped meanwhile, an error
    /// reading the candidate) makes it look again, comparing key bytes;
    /// only an error found that way is reported.
    fn read_live<R>(
        &self,
        key: &[u8],
        scratch: &mut Vec<u8>,
        f: impl FnOnce(Entry, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut exact = false;
        loop {
            let found = if exact {
                self.keydir.get(key)
            } else {
                self.keydir.get_by_hash(key)
            };
            let Some(entry) = found else {
                return Ok(None);
            };
            if !self.unexpired(&entry) {
                if exact {
                    return Ok(None);
                }
                exact = true;
                continue;
            }
            let outcome = self.files.with(entry.file_id, |file| {
                let value = self.verified_value(file, key, entry, scratch)?;
                Ok(value.and_then(|value| f.take().map(|f| f(entry, value))))
            });
            match outcome {
                Ok(Some(result)) => return Ok(Some(result)),
                // A merge moved the key and dropped the file in between.
                Ok(None) => exact = true,
                // The candidate may be another key's record (which may even
                // be damaged): only what the exact lookup finds is `key`'s.
                Err(_) if !exact => exact = true,
                Err(e) => {
                    if let Error::Corruption { path, offset, kind } = &e {
                        let place = Place {
                            file_id: entry.file_id,
                            path,
                            offset: *offset,
                            key: Some(key),
                        };
                        self.damage.found(Finder::Read, place, *kind);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The verified value of the record `entry` points to in `file`: lent
    /// from the file's map, or read into `scratch` where no map covers it.
    /// `None` if the file is gone because a merge moved the key meanwhile
    /// (look it up again).
    fn verified_value<'a>(
        &self,
        file: Option<&'a ReadHandle>,
        key: &[u8],
        entry: Entry,
        scratch: &'a mut Vec<u8>,
    ) -> Result<Option<&'a [u8]>> {
        let Some(file) = file else {
            if self.keydir.get(key) != Some(entry) {
                return Ok(None);
            }
            return Err(Error::Corruption {
                path: self
                    .dir
                    .join(crate::datafile::data_file_name(entry.file_id)),
                offset: u64::from(entry.offset),
                kind: CorruptionKind::MissingFile,
            });
        };
        let offset = u64::from(entry.offset);
        let bytes = match file.mapped(offset, entry.len as usize) {
            Some(bytes) => bytes,
            None => {
                scratch.clear();
                scratch.resize(entry.len as usize, 0);
                file.read_record(scratch, offset)?;
                scratch.as_slice()
            }
        };
        let corrupt = |kind| Error::Corruption {
            path: file.path().to_path_buf(),
            offset,
            kind,
        };
        let rec = record::decode_whole(bytes).map_err(corrupt)?;
        if rec.key != key || rec.header.seq != entry.seq {
            return Err(corrupt(CorruptionKind::KeyMismatch));
        }
        Ok(Some(rec.value))
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
        let (last_merge, merges_completed) = self.merge.history();
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
            last_merge,
            fsyncs: self.fsync_count(),
            damaged_records: self.damage.records(),
            damaged_reads: self.damage.reads(),
            scrubs_completed,
            last_scrub,
        }
    }
}

impl Flusher {
    fn start(shared: &Arc<Shared>, every: Duration) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("bitcask-sync".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let Some(commit) = &shared.commit else { return };
                    if commit.is_poisoned() {
                        return;
                    }
                    if let Err(error) = commit.sync_through(commit.written()) {
                        tracing::error!(%error, "interval sync failed");
                    }
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("<sync thread>"),
                source,
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::error!("the interval sync thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Failure paths, driven by the test-only failpoints in the I/O layer.

    use super::*;
    use crate::failpoint;

    fn always() -> Options {
        Options::new().sync(SyncPolicy::Always)
    }

    fn value_of(db: &Bitcask, key: &[u8]) -> Option<Vec<u8>> {
        db.get(key).expect("reads keep working")
    }

    /// Copies the files of `from` as they are now (a crash's view: the
    /// page cache survives a killed process).
    fn copy_files(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).expect("meta").len()
    }

    /// Reads look keys up by hash alone first; with tags that mostly
    /// collide, nearly every such lookup meets another key's record, and
    /// every read path must still answer for the right key, through
    /// deletes, expiry, a merge and reopens.
    #[test]
    fn reads_answer_for_the_right_key_when_keys_share_their_hash_tags() {
        crate::keydir::colliding_tags_on_this_thread();
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(crate::clock::ManualClock::new(1_000));
        let options = || {
            Options::new()
                .sync(SyncPolicy::Never)
                .max_file_size(8 * 1024)
                .clock(clock.clone())
        };
        let key = |i: u32| format!("key/{i}").into_bytes();
        let value = |i: u32, round: u32| format!("value {i} of round {round}").into_bytes();
        let check = |db: &Bitcask, round: u32| {
            for i in 0..300u32 {
                let want = match i % 5 {
                    0 => None,              // deleted
                    1 if round > 0 => None, // expired
                    _ => Some(value(i, round)),
                };
                assert_eq!(db.get(&key(i)).expect("get"), want, "key {i}");
                let lent = db.get_with(&key(i), <[u8]>::to_vec).expect("get_with");
                assert_eq!(lent, want, "key {i}");
                assert_eq!(db.contains(&key(i)), want.is_some(), "key {i}");
                assert_eq!(db.version(&key(i)).is_some(), want.is_some(), "key {i}");
            }
            let listed: Vec<Vec<u8>> = db.keys().collect();
            let mut want: Vec<Vec<u8>> = (0..300u32)
                .filter(|i| i % 5 != 0 && (round == 0 || i % 5 != 1))
                .map(key)
                .collect();
            want.sort();
            assert_eq!(listed, want);
        };
        let db = Bitcask::open_with(dir.path(), options()).expect("open");
        for i in 0..300u32 {
            let write = if i % 5 == 1 {
                WriteOptions::new().ttl(std::time::Duration::from_secs(10))
            } else {
                WriteOptions::new()
            };
            db.put_with(&key(i), &value(i, 0), write).expect("put");
        }
        for i in (0..300u32).step_by(5) {
            assert!(db.delete(&key(i)).expect("delete"));
        }
        check(&db, 0);
        clock.advance(11_000);
        // Overwrite the live keys so that a merge has garbage to drop.
        for i in (0..300u32).filter(|i| i % 5 > 1) {
            db.put(&key(i), &value(i, 1)).expect("put");
        }
        check(&db, 1);
        db.merge().expect("merge");
        check(&db, 1);
        db.close().expect("close");
        let db = Bitcask::open_with(dir.path(), options()).expect("reopen from hints");
        check(&db, 1);
        // Damage one record: reading its key reports it, and no other key,
        // whichever slot its first lookup meets, is answered with that error.
        let damaged = key(2);
        let entry = db.shared.keydir.get(&damaged).expect("live");
        let path = dir
            .path()
            .join(crate::datafile::data_file_name(entry.file_id));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        let last = u64::from(entry.offset) + u64::from(entry.len) - 1;
        std::os::unix::fs::FileExt::write_at(&file, b"~", last).expect("damage");
        assert!(matches!(db.get(&damaged), Err(Error::Corruption { .. })));
        for i in (0..300u32).filter(|&i| i % 5 > 1 && i != 2) {
            assert_eq!(db.get(&key(i)).expect("get"), Some(value(i, 1)), "key {i}");
        }
        db.close().expect("close");
    }

    /// docs/FORMAT.md, "Close": the directory as a process killed at each
    /// step of a clean close leaves it (copied at the step) opens with every
    /// write, whether it holds no hint of the active file, an unrenamed one,
    /// or the finished one; an unrenamed one is removed at open.
    #[test]
    fn a_crash_at_any_step_of_close_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let copies = tempfile::tempdir().expect("tempdir");
        let options = || Options::new().sync(SyncPolicy::Never);
        // A first close writes a hint; the second open uses and deletes it.
        let db = Bitcask::open_with(dir.path(), options()).expect("open");
        db.put(b"before", b"reopen").expect("put");
        db.close().expect("close");
        let db = Bitcask::open_with(dir.path(), options()).expect("reopen");
        for i in 0..200u32 {
            db.put(&i.to_be_bytes(), &[3u8; 40]).expect("put");
        }
        db.delete(b"before").expect("delete");
        let expected: Vec<(Vec<u8>, Option<Vec<u8>>)> = db
            .keys()
            .map(|k| {
                let v = value_of(&db, &k);
                (k, v)
            })
            .collect();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = std::rc::Rc::clone(&seen);
        let (from, to) = (dir.path().to_path_buf(), copies.path().to_path_buf());
        failpoint::observe(move |step| {
            let copy = to.join(sink.borrow().len().to_string());
            std::fs::create_dir(&copy).expect("mkdir");
            copy_files(&from, &copy);
            sink.borrow_mut().push((step, copy));
        });
        let closed = db.close();
        failpoint::stop_observing();
        closed.expect("close");
        let mut seen = seen.borrow().clone();
        let steps: Vec<&str> = seen.iter().map(|(step, _)| *step).collect();
        assert_eq!(
            steps,
            ["close: active file cut, no hint yet", "close: hint written"]
        );
        // Between the hint's fsync and its rename (hint writing is shared
        // with sealed files and repair, so it marks no step of its own):
        // the finished copy with the hint back under its temporary name.
        let unrenamed = copies.path().join("unrenamed");
        std::fs::create_dir(&unrenamed).expect("mkdir");
        copy_files(&seen[1].1, &unrenamed);
        let hint = crate::datafile::hint_file_name(1);
        std::fs::rename(
            unrenamed.join(&hint),
            unrenamed.join(crate::datafile::tmp_name(&hint)),
        )
        .expect("unrename the hint");
        seen.push(("hint written, not renamed", unrenamed));
        for (step, copy) in &seen {
            let db = Bitcask::open_with(copy, options()).expect("open the copy");
            let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = db
                .keys()
                .map(|k| {
                    let v = value_of(&db, &k);
                    (k, v)
                })
                .collect();
            assert_eq!(got, expected, "killed at {step}");
            // (Checked while open: the copy's own close writes a hint again.)
            let leftovers = std::fs::read_dir(copy)
                .expect("list")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count();
            assert_eq!(leftovers, 0, "killed at {step}: a .tmp file survived open");
            db.close().expect("close the copy");
        }
    }

    #[test]
    fn the_active_file_is_preallocated_and_a_crash_leaves_only_zeros_to_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never)).expect("open");
        for i in 0..100u32 {
            db.put(&i.to_be_bytes(), &[7u8; 50]).expect("put");
        }
        let active = dir.path().join(crate::datafile::data_file_name(1));
        let end = db.stats().total_bytes;
        assert_eq!(
            end,
            FILE_HEADER_LEN as u64 + 100 * record::encoded_len(&[0; 4], &[7; 50]) as u64
        );
        let bytes = std::fs::read(&active).expect("read");
        if cfg!(target_os = "linux") {
            assert_eq!(
                bytes.len() as u64,
                FILE_HEADER_LEN as u64 + PREALLOCATE_STEP
            );
        }
        assert!(bytes[end as usize..].iter().all(|&b| b == 0));

        // A crash now leaves the zeros (written by the zero fill, or still
        // unwritten if the fill had not run: they read the same); they are
        // neither damage nor a tear.
        let crashed = tempfile::tempdir().expect("tempdir");
        copy_files(dir.path(), crashed.path());
        let report = crate::check(crashed.path()).expect("check");
        assert!(!report.is_damaged());
        assert!(
            report.files.iter().all(|f| f.torn_tail.is_none()),
            "{report:?}"
        );
        let reopened = Bitcask::open(crashed.path()).expect("open after the crash");
        assert_eq!(reopened.len(), 100);
        assert_eq!(
            value_of(&reopened, &7u32.to_be_bytes()),
            Some(vec![7u8; 50])
        );
        let torn = std::fs::read_dir(crashed.path())
            .expect("read dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".torn"))
            })
            .count();
        assert_eq!(torn, 0, "zeros are not kept as a torn tail");
        // Writing goes on after the last record.
        reopened.put(b"next", b"1").expect("put");
        drop(reopened);
        let reopened = Bitcask::open(crashed.path()).expect("reopen");
        assert_eq!(reopened.len(), 101);
        drop(reopened);

        // A clean close cuts the preallocated space.
        db.close().expect("close");
        assert_eq!(file_len(&active), end);
    }

    #[test]
    fn a_torn_record_in_preallocated_space_is_kept_aside_and_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never)).expect("open");
        db.put(b"a", b"1").expect("put");
        let end = db.stats().total_bytes;
        let crashed = tempfile::tempdir().expect("tempdir");
        copy_files(dir.path(), crashed.path());
        // Half a record reached the disk, zeros follow.
        let active = crashed.path().join(crate::datafile::data_file_name(1));
        let mut record = Vec::new();
        record::encode_into(&mut record, 2, 0, RecordKind::Put, b"b", b"22222222").expect("encode");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .expect("open");
        std::os::unix::fs::FileExt::write_all_at(&file, &record[..record.len() / 2], end)
            .expect("write");
        drop(file);
        let reopened = Bitcask::open(crashed.path()).expect("open");
        assert_eq!(reopened.len(), 1);
        assert_eq!(file_len(&active), end);
        assert!(
            crashed
                .path()
                .join(format!("0000000001-{end}.torn"))
                .exists()
        );
        drop(reopened);
        db.close().expect("close");
    }

    #[test]
    fn a_failed_preallocation_falls_back_to_the_record_then_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(dir.path(), always()).expect("open");
        let active = dir.path().join(crate::datafile::data_file_name(1));
        // The step fails; just what the record needs does not.
        failpoint::arm("fallocate");
        db.put(b"a", b"1").expect("put with the fallback");
        let end = db.stats().total_bytes;
        assert_eq!(file_len(&active), end);
        // Both fail (a full disk): the write fails, nothing is written.
        failpoint::arm("fallocate");
        failpoint::arm("fallocate");
        assert!(matches!(db.put(b"b", b"2"), Err(Error::Io { .. })));
        assert_eq!(file_len(&active), end);
        assert_eq!(value_of(&db, b"b"), None);
        // Not poisoned: the next write goes through.
        db.put(b"c", b"3").expect("put after the failure");
        db.close().expect("close");
        let db = Bitcask::open(dir.path()).expect("reopen");
        assert_eq!(db.len(), 2);
        assert_eq!(value_of(&db, b"c").as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn preallocated_space_is_zero_filled_and_a_failed_fill_fails_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(dir.path(), always()).expect("open");
        let active = dir.path().join(crate::datafile::data_file_name(1));
        // The first put preallocates, so it passes the zero fill (and
        // consumes the armed failure there); the put itself succeeds.
        failpoint::arm("zero-fill");
        db.put(b"a", &[7u8; 5000])
            .expect("put despite the failed fill");
        assert!(
            !failpoint::is_armed("zero-fill"),
            "the preallocation did not zero-fill"
        );
        let end = db.stats().total_bytes;
        if cfg!(target_os = "linux") {
            assert!(file_len(&active) > end, "preallocated past the record");
        }
        // Later puts land in the allocated space, filled or not.
        for i in 0..300u32 {
            db.put(&i.to_be_bytes(), &[i as u8; 4000]).expect("put");
        }
        db.close().expect("close");
        let db = Bitcask::open(dir.path()).expect("reopen");
        assert_eq!(db.len(), 301);
        assert_eq!(value_of(&db, b"a").as_deref(), Some(&[7u8; 5000][..]));
        for i in [0u32, 150, 299] {
            assert_eq!(
                value_of(&db, &i.to_be_bytes()).as_deref(),
                Some(&[i as u8; 4000][..])
            );
        }
    }

    #[test]
    fn rotation_seals_files_at_their_last_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new().sync(SyncPolicy::Never).max_file_size(4096);
        let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
        for i in 0..200u32 {
            db.put(&i.to_be_bytes(), &[1u8; 40]).expect("put");
        }
        let stats = db.stats();
        assert!(stats.files.len() > 2);
        let (active, sealed) = stats.files.split_last().expect("files");
        for file in sealed {
            let path = dir.path().join(crate::datafile::data_file_name(file.id));
            assert_eq!(file_len(&path), file.total_bytes, "sealed file {}", file.id);
        }
        if cfg!(target_os = "linux") {
            let path = dir.path().join(crate::datafile::data_file_name(active.id));
            assert_eq!(file_len(&path), 4096, "preallocated up to the size limit");
        }
        db.close().expect("close");
        let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
        assert_eq!(db.len(), 200);
    }

    #[test]
    fn a_failed_cut_before_sealing_seals_nothing_and_rotation_is_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new().sync(SyncPolicy::Never).max_file_size(200);
        let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
        db.put(b"a", &[1u8; 100]).expect("put");
        failpoint::arm("truncate");
        // This record does not fit: rotation, whose cut fails.
        assert!(matches!(db.put(b"b", &[2u8; 100]), Err(Error::Io { .. })));
        assert_eq!(db.stats().files.len(), 1, "nothing sealed, no new file");
        assert_eq!(value_of(&db, b"b"), None);
        db.put(b"b", &[2u8; 100]).expect("rotation retried");
        assert_eq!(db.stats().files.len(), 2);
        drop(db);
        let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
        assert_eq!(value_of(&db, b"a"), Some(vec![1u8; 100]));
        assert_eq!(value_of(&db, b"b"), Some(vec![2u8; 100]));
    }

    #[test]
    fn close_writes_the_hints_still_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(
            dir.path(),
            Options::new().sync(SyncPolicy::Never).max_file_size(2048),
        )
        .expect("open");
        // Stall the maintenance thread (hint writes take the merge lock)
        // while files are sealed, so their hints are still queued at close.
        let shared = Arc::clone(&db.shared);
        let stall = shared.merge.lock();
        for i in 0..300u32 {
            db.put(&i.to_be_bytes(), &[b'v'; 100]).expect("put");
        }
        let closing = std::thread::spawn(move || db.close());
        // Let close set its flag before the thread gets going again.
        std::thread::sleep(Duration::from_millis(200));
        drop(stall);
        closing.join().expect("close thread").expect("close");
        let mut data = crate::datafile::list_dir(dir.path()).expect("list").data;
        data.pop(); // the active file has no hint
        assert!(data.len() > 10);
        for id in data {
            let hint = dir.path().join(crate::datafile::hint_file_name(id));
            assert!(hint.exists(), "file {id} has no hint after close");
        }
    }

    #[test]
    fn a_failed_fsync_poisons_writes_but_not_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(dir.path(), always()).expect("open");
        db.put(b"before", b"1").expect("put");

        failpoint::arm("fsync");
        assert!(matches!(db.put(b"during", b"2"), Err(Error::Io { .. })));
        // Never reported as durable later, and no more writes are taken.
        assert!(matches!(db.sync(), Err(Error::Poisoned)));
        assert!(matches!(db.put(b"after", b"3"), Err(Error::Poisoned)));
        assert!(matches!(db.delete(b"before"), Err(Error::Poisoned)));
        assert_eq!(value_of(&db, b"before").as_deref(), Some(&b"1"[..]));
        assert!(matches!(db.close(), Err(Error::Poisoned)));

        // Reopening clears the state; the failed write may or may not be
        // there (its outcome is unknown), everything acknowledged is.
        let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
        assert_eq!(value_of(&db, b"before").as_deref(), Some(&b"1"[..]));
        assert_eq!(value_of(&db, b"after"), None);
        db.put(b"again", b"4").expect("writes work after reopening");
    }

    #[test]
    fn a_half_write_is_cut_back_and_the_store_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(dir.path(), always()).expect("open");
        db.put(b"a", b"1").expect("put");
        let active = dir.path().join(crate::datafile::data_file_name(1));
        // Where "b" would have started: the end of the last record (the
        // file itself is longer while preallocated).
        let len = (FILE_HEADER_LEN + record::encoded_len(b"a", b"1")) as u64;

        failpoint::arm("append-half");
        match db.put(b"b", b"22222222") {
            Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
            other => panic!("expected the injected ENOSPC, got {other:?}"),
        }
        assert_eq!(std::fs::metadata(&active).expect("meta").len(), len);
        assert_eq!(value_of(&db, b"b"), None);
        db.put(b"c", b"3").expect("not poisoned");
        drop(db);
        let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
        assert_eq!(db.len(), 2);
        assert_eq!(value_of(&db, b"c").as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_half_write_that_cannot_be_cut_back_poisons_and_recovery_cuts_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(dir.path(), always()).expect("open");
        db.put(b"a", b"1").expect("put");

        failpoint::arm("append-half");
        failpoint::arm("truncate");
        assert!(matches!(db.put(b"b", b"22222222"), Err(Error::Io { .. })));
        assert!(matches!(db.put(b"c", b"3"), Err(Error::Poisoned)));
        assert_eq!(value_of(&db, b"a").as_deref(), Some(&b"1"[..]));
        drop(db);

        // The half record is a torn tail to the next open.
        let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
        assert_eq!(db.len(), 1);
        assert_eq!(value_of(&db, b"a").as_deref(), Some(&b"1"[..]));
        db.put(b"c", b"3").expect("writes work after reopening");
    }

    #[test]
    fn a_failed_file_creation_leaves_no_file_and_rotation_is_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new().sync(SyncPolicy::Never).max_file_size(100);
        let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
        db.put(b"a", &[1; 50]).expect("fills the first file");
        let unfinished =
            dir.path()
                .join(crate::datafile::tmp_name(&crate::datafile::data_file_name(
                    2,
                )));

        failpoint::arm("create-header");
        assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Io { .. })));
        assert!(
            !unfinished.exists(),
            "the half-created file must be removed"
        );
        assert_eq!(
            crate::datafile::list_dir(dir.path()).expect("list").data,
            [1]
        );
        db.put(b"b", &[2; 50]).expect("rotation is retried");
        assert_eq!(
            crate::datafile::list_dir(dir.path()).expect("list").data,
            [1, 3]
        );
        drop(db);
        let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
        assert_eq!(value_of(&db, b"a"), Some(vec![1; 50]));
        assert_eq!(value_of(&db, b"b"), Some(vec![2; 50]));
    }

    #[test]
    fn a_failed_fsync_when_sealing_a_file_poisons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::new().sync(SyncPolicy::Never).max_file_size(100);
        let db = Bitcask::open_with(dir.path(), opts).expect("open");
        db.put(b"a", &[1; 50]).expect("fills the first file");

        failpoint::arm("sync_all");
        assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Io { .. })));
        assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Poisoned)));
        assert_eq!(value_of(&db, b"a"), Some(vec![1; 50]));
    }
}
