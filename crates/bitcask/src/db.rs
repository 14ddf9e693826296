//! The store handle, [`Bitcask`]: the write path, the read path and the
//! lifecycle (open, sync, close).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::datafile::{DataFile, FILE_HEADER_LEN, ReadHandle};
use crate::durability::GroupCommit;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::keydir::{Entry, KeyDir, Keys};
use crate::lock::DirLock;
use crate::options::{Options, SyncPolicy};
use crate::record::{self, RecordKind};
use crate::recovery;

/// An open store. `Send + Sync`: share it between threads with `Arc`.
///
/// Reads run in parallel and never wait for a write's disk I/O; writes are
/// serialised by one writer lock. Dropping the handle closes it (best
/// effort); call [`Bitcask::close`] to see errors.
#[derive(Debug)]
pub struct Bitcask {
    shared: Arc<Shared>,
    flusher: Option<Flusher>,
    closed: bool,
}

/// State shared with the background flusher thread.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    options: Options,
    keydir: KeyDir,
    /// How to read every data file, by id; readers clone an `Arc` out.
    files: RwLock<BTreeMap<u32, Arc<ReadHandle>>>,
    /// `None` for a read-only handle.
    writer: Option<Mutex<Writer>>,
    /// `None` for a read-only handle.
    commit: Option<GroupCommit>,
    /// Held for the life of a writable handle.
    lock: Option<DirLock>,
}

/// What only the writer touches, behind the writer lock.
#[derive(Debug)]
struct Writer {
    active: Arc<DataFile>,
    /// Where the next record goes in the active file.
    offset: u64,
    next_seq: u64,
    /// Reused encoding buffer.
    buf: Vec<u8>,
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
    /// (failing with [`Error::Locked`] if another handle holds it), rebuilds
    /// the key directory and cuts a torn tail off the active file. A
    /// read-only open changes nothing on disk.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let read_only = options.read_only;
        let lock = if read_only {
            None
        } else {
            std::fs::create_dir_all(&dir).at(&dir)?;
            Some(DirLock::acquire(&dir)?)
        };
        let recovered = recovery::recover(&dir, read_only)?;
        let keydir = recovered.keydir;
        let next_seq = recovered.next_seq;
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
                None => (
                    Arc::new(DataFile::create(&dir, 1, next_seq)?),
                    FILE_HEADER_LEN as u64,
                ),
            };
            // A crashed predecessor may have left records that reached the
            // kernel but not the disk. fsync the active file once so that
            // everything recovered really is durable, as group commit assumes.
            active.sync_all().at(&active.path)?;
            active.map_for_reads(active.len()?.max(options.max_file_size));
            readers.insert(active.id, Arc::new(ReadHandle::Open(Arc::clone(&active))));
            let commit = GroupCommit::new(Arc::clone(&active), next_seq - 1);
            let writer = Writer {
                active,
                offset,
                next_seq,
                buf: Vec::new(),
            };
            (Some(writer), Some(commit))
        };
        tracing::info!(dir = %dir.display(), keys = keydir.len(), files = readers.len(),
            read_only, "opened store");

        let shared = Arc::new(Shared {
            dir,
            options,
            keydir,
            files: RwLock::new(readers),
            writer: writer.map(Mutex::new),
            commit,
            lock,
        });
        let flusher = match shared.options.sync {
            SyncPolicy::Interval(every) if !read_only => Some(Flusher::start(&shared, every)?),
            _ => None,
        };
        Ok(Self {
            shared,
            flusher,
            closed: false,
        })
    }

    /// Stores `value` under `key`, replacing any earlier value.
    ///
    /// Refuses an oversized key or value with [`Error::KeyTooLarge`] /
    /// [`Error::ValueTooLarge`] before anything is written. Under
    /// [`SyncPolicy::Always`] it returns once the write is durable.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.shared.check_sizes(key, value)?;
        self.shared.append(RecordKind::Put, key, value).map(|_| ())
    }

    /// Removes `key`. Returns whether it was present; removing an absent key
    /// writes nothing and is not an error.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.shared.check_sizes(key, b"")?;
        self.shared
            .append(RecordKind::Delete, key, b"")
            .map(|seq| seq.is_some())
    }

    /// The value stored under `key`, or `None`.
    ///
    /// Costs one lookup in memory and one copy of the record out of a
    /// memory map of its file (or one `pread` where no map covers it); the
    /// record's checksum, key and version are verified before the value is
    /// returned.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.shared.keydir.get(key) else {
            return Ok(None);
        };
        self.shared.read_value(key, entry).map(Some)
    }

    /// Whether `key` is present. Answered from memory, without disk I/O.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.shared.keydir.contains(key)
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.shared.keydir.len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All keys, in lexicographic byte order. See [`Keys`] for what it sees of
    /// writes made while it runs.
    pub fn keys(&self) -> Keys<'_> {
        Keys::new(&self.shared.keydir)
    }

    /// Makes every write that has returned durable (fsync), whatever the
    /// policy. Concurrent callers share one fsync. A no-op when read-only.
    pub fn sync(&self) -> Result<()> {
        match &self.shared.commit {
            Some(commit) => commit.sync_through(commit.written()),
            None => Ok(()),
        }
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
        self.shared
            .commit
            .as_ref()
            .map_or(0, GroupCommit::fsync_count)
    }

    /// Syncs outstanding writes, stops the background thread and releases
    /// the directory lock. Dropping the handle does the same but can only log
    /// errors. Returns [`Error::Poisoned`] (after releasing everything) if an
    /// earlier failure means not every write can be promised durable.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // A poisoned store cannot promise that its writes are on disk: say so.
        match &self.shared.commit {
            Some(commit) => commit.sync_through(commit.written()),
            None => Ok(()),
        }?;
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

    fn lock_writer(&self) -> Result<(MutexGuard<'_, Writer>, &GroupCommit)> {
        let (Some(writer), Some(commit)) = (&self.writer, &self.commit) else {
            return Err(Error::ReadOnly);
        };
        let guard = writer.lock().unwrap_or_else(PoisonError::into_inner);
        if commit.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok((guard, commit))
    }

    /// Appends one record and updates the key directory. Returns its seq, or
    /// `None` for a delete of an absent key (nothing written).
    fn append(&self, kind: RecordKind, key: &[u8], value: &[u8]) -> Result<Option<u64>> {
        let (mut w, commit) = self.lock_writer()?;
        if kind == RecordKind::Delete && !self.keydir.contains(key) {
            return Ok(None);
        }
        let len = record::encoded_len(key, value) as u64;
        if w.offset > FILE_HEADER_LEN as u64 && w.offset + len > self.options.max_file_size {
            self.rotate(&mut w, commit)?;
        }
        let seq = w.next_seq;
        let offset = w.offset;
        let Writer { buf, active, .. } = &mut *w;
        buf.clear();
        record::encode_into(buf, seq, 0, kind, key, value);
        if let Err(source) = active.write_all_at(buf, offset) {
            // Cut off whatever part of the record reached the file, so the
            // next record does not land after garbage.
            if let Err(cut) = active.truncate(offset) {
                tracing::error!(path = %active.path.display(), error = %cut,
                    "could not undo a failed write; the store refuses writes until reopened");
                commit.poison();
            }
            return Err(Error::Io {
                path: active.path.clone(),
                source,
            });
        }
        let entry = Entry {
            file_id: active.id,
            // Both fit: files are at most 4 GiB (see options).
            offset: offset as u32,
            len: len as u32,
            seq,
        };
        w.offset += len;
        w.next_seq += 1;
        match kind {
            RecordKind::Put => self.keydir.insert(key, entry),
            RecordKind::Delete => self.keydir.remove(key),
        };
        commit.note_written(seq);
        drop(w);
        if self.options.sync == SyncPolicy::Always {
            commit.sync_through(seq)?;
        }
        Ok(Some(seq))
    }

    /// Seals the active file (fsync) and starts the next one.
    fn rotate(&self, w: &mut Writer, commit: &GroupCommit) -> Result<()> {
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
        let id = w.active.id.checked_add(1).ok_or_else(|| Error::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("data file ids exhausted"),
        })?;
        let file = match DataFile::create(&self.dir, id, w.next_seq) {
            Ok(file) => Arc::new(file),
            Err(error) => {
                // A half-created file would become a sealed file with a bad
                // header once a later rotation succeeds: remove it.
                let path = self.dir.join(crate::datafile::data_file_name(id));
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e,
                            "could not remove a half-created data file");
                        commit.poison();
                    }
                }
                return Err(error);
            }
        };
        file.map_for_reads(self.options.max_file_size);
        {
            let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
            files.insert(w.active.id, Arc::new(sealed));
            files.insert(id, Arc::new(ReadHandle::Open(Arc::clone(&file))));
        }
        commit.set_active(Arc::clone(&file));
        tracing::debug!(path = %file.path.display(), "rotated to a new data file");
        w.active = file;
        w.offset = FILE_HEADER_LEN as u64;
        Ok(())
    }

    /// Reads and verifies the record `entry` points at; returns its value.
    fn read_value(&self, key: &[u8], entry: Entry) -> Result<Vec<u8>> {
        let file = self
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&entry.file_id)
            .cloned();
        let Some(file) = file else {
            return Err(Error::Corruption {
                path: self
                    .dir
                    .join(crate::datafile::data_file_name(entry.file_id)),
                offset: u64::from(entry.offset),
                kind: CorruptionKind::MissingFile,
            });
        };
        let mut buf = vec![0u8; entry.len as usize];
        file.read_record(&mut buf, u64::from(entry.offset))?;
        let corrupt = |kind| Error::Corruption {
            path: file.path().to_path_buf(),
            offset: u64::from(entry.offset),
            kind,
        };
        let rec = record::decode_whole(&buf).map_err(corrupt)?;
        if rec.key != key || rec.header.seq != entry.seq {
            return Err(corrupt(CorruptionKind::KeyMismatch));
        }
        let value_len = rec.value.len();
        let value_at = buf.len() - value_len;
        buf.copy_within(value_at.., 0);
        buf.truncate(value_len);
        Ok(buf)
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
        let len = std::fs::metadata(&active).expect("meta").len();

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
        let second = dir.path().join(crate::datafile::data_file_name(2));

        failpoint::arm("create-header");
        assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Io { .. })));
        assert!(!second.exists(), "the half-created file must be removed");
        db.put(b"b", &[2; 50]).expect("rotation is retried");
        assert!(second.exists());
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
