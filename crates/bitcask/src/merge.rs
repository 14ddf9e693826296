//! Merge (compaction): rewrites the live records of sealed data files into
//! new files, drops overwritten, deleted and expired records, and deletes
//! the old files, while reads and writes go on.
//!
//! The protocol, what a crash leaves at each step and why no deleted key can
//! come back are in `docs/FORMAT.md` ("Merge"). In short: inputs are chosen
//! under the writer lock (a moment); outputs are written under `.tmp` names,
//! fsynced and renamed before the key directory points at them (key by key,
//! only where the key still points at the input); inputs are deleted last,
//! oldest first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::datafile::{
    self, Access, DataFile, FILE_HEADER_LEN, FileHeader, KIND_DATA, ReadHandle, Scan,
};
use crate::db::Shared;
use crate::error::{Error, IoContext, Result, disk_u32};
use crate::hint::{EntryKind, HintEntry, HintWriter};
use crate::keydir::Entry;
use crate::lock::{DeleteLock, LockMode};
use crate::lock_order::{Rank, Ranked, ranked};
use crate::record::{self, RecordKind};
use crate::stats::{MergeProgress, MergeReport};
use crate::throttle::Throttle;

/// An output is finished after this many records even if it is not full, to
/// bound the memory of the key list kept until the key directory switches.
const MAX_RECORDS_PER_OUTPUT: usize = 1 << 20;
/// Output bytes buffered before a write.
const WRITE_BUFFER: usize = 1 << 20;

/// One merge at a time, and what merges have done.
#[derive(Debug, Default)]
pub(crate) struct MergeState {
    lock: Mutex<()>,
    running: AtomicBool,
    /// Record bytes the running merge has read, and will read in all.
    bytes_read: AtomicU64,
    bytes_total: AtomicU64,
    history: Mutex<MergeHistory>,
}

/// The merges kept for `Stats`: the last [`RECENT_MERGES`], and a count.
#[derive(Debug, Default)]
struct MergeHistory {
    /// Newest first.
    recent: std::collections::VecDeque<MergeReport>,
    completed: u64,
}

/// Completed merges whose reports `Stats::recent_merges` keeps.
pub const RECENT_MERGES: usize = 16;

impl MergeState {
    /// Excludes merges (and hint writes, which must not race a merge's
    /// deletes). First in the lock order (see `Shared`).
    pub(crate) fn lock(&self) -> Ranked<MutexGuard<'_, ()>> {
        ranked(Rank::Merge, || {
            self.lock.lock().unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Whether a merge is running.
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// How far the running merge is, if one runs.
    pub(crate) fn progress(&self) -> Option<MergeProgress> {
        self.is_running().then(|| MergeProgress {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
        })
    }

    /// The last [`RECENT_MERGES`] completed merges, newest first, and the
    /// number completed.
    pub(crate) fn history(&self) -> (Vec<MergeReport>, u64) {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        (history.recent.iter().copied().collect(), history.completed)
    }
}

/// Clears the running flag however the merge ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Which files a merge may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Sealed files only (the background merge: the active file is still
    /// growing, and sealing it early would only make small files).
    SealedFiles,
    /// First seal the active file if it has anything to reclaim, so that it
    /// is merged too (an explicit merge: "reclaim space now", which a store
    /// smaller than one data file could otherwise never do).
    IncludingActive,
}

/// Runs one merge (see the module docs).
pub(crate) fn run(shared: &Shared, scope: Scope) -> Result<MergeReport> {
    let _one_at_a_time = shared.merge().lock();
    shared.merge().running.store(true, Ordering::Relaxed);
    let _running = Running(&shared.merge().running);
    let started = Instant::now();
    let now_ms = shared.options().clock.now_ms();
    let mut report = MergeReport {
        started_at_ms: now_ms,
        ..MergeReport::default()
    };

    // Step 1: choose the inputs, under the writer lock so that no rotation
    // runs meanwhile. No I/O here. Also note where the history the merge
    // leaves whole begins: the active file's first seq (every input is
    // older than it).
    let (inputs, history_from): (Vec<u32>, u64) = {
        let (mut writer, commit) = shared.lock_writer()?;
        if scope == Scope::IncludingActive
            && writer.offset > FILE_HEADER_LEN as u64
            && shared
                .accounts()
                .snapshot()
                .get(&writer.active.id)
                .is_some_and(|account| account.needs_merge(now_ms))
        {
            // The rotation a full file would get (crash-tested there): cut,
            // fsync, seal, start the next file.
            shared.rotate(&mut writer, commit)?;
        }
        let active = writer.active.id;
        let accounts = shared.accounts().snapshot();
        let history_from = accounts
            .get(&active)
            .map_or(writer.next_seq, |a| a.seq_floor);
        let mut chosen: Vec<(u64, u32)> = accounts
            .iter()
            .filter(|(id, account)| **id != active && account.needs_merge(now_ms))
            .map(|(id, account)| (account.seq_floor, *id))
            .collect();
        chosen.sort_unstable();
        let total: u64 = chosen
            .iter()
            .map(|(_, id)| {
                accounts[id]
                    .total_bytes
                    .saturating_sub(FILE_HEADER_LEN as u64)
            })
            .sum();
        shared.merge().bytes_read.store(0, Ordering::Relaxed);
        shared.merge().bytes_total.store(total, Ordering::Relaxed);
        (chosen.into_iter().map(|(_, id)| id).collect(), history_from)
    };
    if inputs.is_empty() {
        return Ok(finish_report(shared, report, started));
    }
    tracing::info!(inputs = inputs.len(), "merge started");

    // Steps 2 and 3: copy the live records into outputs.
    let mut copier = Copier {
        shared,
        now_ms,
        output: None,
        expired: Vec::new(),
        throttle: Throttle::new(shared.options().merge_bytes_per_sec),
        report: &mut report,
        mark_seq: shared.lock_mark().as_ref().map(|m| m.seq),
    };
    let copied = inputs.iter().try_for_each(|&id| copier.copy_file(id));
    let copied = copied.and_then(|()| copier.finish_output());
    let Copier {
        output, expired, ..
    } = copier;
    if let Some(output) = output {
        output.file.discard();
    }
    match copied {
        Ok(()) => {}
        Err(Stopped::Closing) => {
            // Not recorded as a completed merge: the inputs are still there,
            // beside the outputs published so far (a state every open reads
            // correctly), and the next merge finishes the work.
            tracing::info!("merge stopped early: the store is closing");
            report.duration = started.elapsed();
            return Ok(report);
        }
        Err(Stopped::Failed(error)) => return Err(error),
    }

    // Step 4: forget expired keys, then delete the inputs, oldest first.
    for (key, entry) in expired {
        if shared.keydir().remove_if(&key, &entry) {
            shared.accounts().dead(&entry);
        }
    }
    // Deleting an input drops its superseded records for good; what
    // superseded them must be on disk first (see `finish_output`, and a
    // merge whose inputs held nothing live writes no output at all).
    if let Some(commit) = shared.commit() {
        commit.sync_through(commit.written())?;
    }
    #[cfg(test)]
    crate::failpoint::step("merge: before deleting inputs");
    // The change feed's promise shrinks before the history goes
    // (crate::history; docs/FORMAT.md, "Merge", step 4).
    shared.raise_compacted_seq(history_from)?;
    #[cfg(test)]
    crate::failpoint::step("merge: compacted seq raised");
    shared.files().update(|files| {
        for id in &inputs {
            files.remove(id);
        }
    });
    // Wait for read-only opens that are reading the directory.
    let _deleting = DeleteLock::acquire(shared.dir(), LockMode::Exclusive)?;
    for &id in &inputs {
        remove_if_exists(&shared.dir().join(datafile::hint_file_name(id)))?;
        remove_if_exists(&shared.dir().join(datafile::data_file_name(id)))?;
        shared.accounts().remove_file(id);
        report.files_merged += 1;
        #[cfg(test)]
        crate::failpoint::step("merge: deleted an input");
    }
    datafile::sync_dir(shared.dir())?;
    let report = finish_report(shared, report, started);
    tracing::info!(?report, "merge finished");
    Ok(report)
}

fn finish_report(shared: &Shared, mut report: MergeReport, started: Instant) -> MergeReport {
    report.duration = started.elapsed();
    let mut history = shared
        .merge()
        .history
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    history.recent.truncate(RECENT_MERGES - 1);
    history.recent.push_front(report);
    history.completed += 1;
    report
}

fn remove_if_exists(path: &std::path::Path) -> Result<()> {
    match crate::disk::remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Why copying stopped before the end.
enum Stopped {
    /// The store is closing.
    Closing,
    Failed(Error),
}

impl From<Error> for Stopped {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// Steps 2 and 3 of a merge.
struct Copier<'a> {
    shared: &'a Shared,
    now_ms: u64,
    output: Option<Output>,
    /// Live but expired records: dropped, their keys forgotten at step 4.
    expired: Vec<(Vec<u8>, Entry)>,
    throttle: Throttle,
    report: &'a mut MergeReport,
    /// The `seq` of the store's current mark when the merge began: the one
    /// mark an input may hold that must be copied (docs/FORMAT.md, "Marks").
    mark_seq: Option<u64>,
}

/// A merge output being written.
struct Output {
    file: DataFile,
    seq_floor: u64,
    /// Bytes written so far, header included (also where `buf` goes).
    written: u64,
    buf: Vec<u8>,
    /// Key, location in the input, location in this output.
    moved: Vec<(Vec<u8>, Entry, Entry)>,
    /// The current mark, if copied here: its seq, offset and length.
    mark: Option<(u64, u32, u32)>,
}

impl Output {
    fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.written)
            .at(&self.file.path)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Copier<'_> {
    fn copy_file(&mut self, id: u32) -> Result<(), Stopped> {
        let file = DataFile::open(self.shared.dir(), id, Access::Read)?;
        let mut scanner = file.scanner()?;
        loop {
            if self.shared.is_closing() {
                return Err(Stopped::Closing);
            }
            let rec = match scanner.next_record()? {
                Scan::Record(rec) => rec,
                Scan::End => return Ok(()),
                Scan::Stop(stop) => {
                    let place = crate::damage::Place {
                        file_id: id,
                        path: &file.path,
                        offset: stop.offset,
                        key: None,
                    };
                    let finder = crate::damage::Finder::Merge;
                    self.shared.damage().found(finder, place, stop.kind);
                    return Err(Stopped::Failed(Error::Corruption {
                        path: file.path.clone(),
                        offset: stop.offset,
                        kind: stop.kind,
                    }));
                }
            };
            let len = rec.header.record_len();
            self.report.bytes_read += len;
            (self.shared.merge().bytes_read).store(self.report.bytes_read, Ordering::Relaxed);
            self.throttle.spend(len);
            if rec.header.kind == RecordKind::Mark {
                if Some(rec.header.seq) == self.mark_seq {
                    let out = self.output_with_room(len, rec.header.seq)?;
                    let offset = out.len();
                    record::encode_into(
                        &mut out.buf,
                        rec.header.seq,
                        0,
                        RecordKind::Mark,
                        &[],
                        rec.value,
                    )?;
                    // Outputs stay below max_file_size plus one record (< 4 GiB).
                    let at = disk_u32(offset, "a merge output file past 4 GiB")?;
                    let len32 = disk_u32(len, "a record longer than 4 GiB")?;
                    out.mark = Some((rec.header.seq, at, len32));
                    self.report.bytes_written += len;
                    self.report.records_kept += 1;
                } else {
                    self.report.records_dropped += 1;
                }
                continue;
            }
            let current = self.shared.keydir().get(rec.key);
            let live = match current {
                Some(e)
                    if rec.header.kind.is_put()
                        && e.file_id == id
                        && u64::from(e.offset) == rec.offset =>
                {
                    e
                }
                _ => {
                    self.report.records_dropped += 1;
                    continue;
                }
            };
            if live.is_expired(self.now_ms) {
                self.expired.push((rec.key.to_vec(), live));
                self.report.records_dropped += 1;
                continue;
            }
            let out = self.output_with_room(len, rec.header.seq)?;
            let offset = out.len();
            record::encode_into(
                &mut out.buf,
                rec.header.seq,
                rec.header.expires_at_ms,
                RecordKind::Put,
                rec.key,
                rec.value,
            )?;
            let moved_to = Entry {
                file_id: out.file.id,
                // Outputs stay below max_file_size plus one record (< 4 GiB).
                offset: disk_u32(offset, "a merge output file past 4 GiB")?,
                ..live
            };
            out.moved.push((rec.key.to_vec(), live, moved_to));
            if out.buf.len() >= WRITE_BUFFER {
                out.flush()?;
            }
            self.report.bytes_written += len;
            self.report.records_kept += 1;
            self.throttle.spend(len);
        }
    }

    /// The output the next record (`len` bytes, sequence number `seq`)
    /// goes into: the current one, or a new one if it is full.
    fn output_with_room(&mut self, len: u64, seq: u64) -> Result<&mut Output, Stopped> {
        if let Some(out) = &self.output
            && out.len() > FILE_HEADER_LEN as u64
            && (out.len() + len > self.shared.options().max_file_size
                || out.moved.len() >= MAX_RECORDS_PER_OUTPUT)
        {
            self.finish_output()?;
        }
        let out = match self.output.take() {
            Some(out) => out,
            None => self.new_output(seq)?,
        };
        Ok(self.output.insert(out))
    }

    fn new_output(&mut self, seq_floor: u64) -> Result<Output> {
        let id = self.shared.next_file_id().fetch_add(1, Ordering::Relaxed);
        let file = DataFile::create_tmp(
            self.shared.dir(),
            id,
            seq_floor,
            crate::datafile::FLAG_REWRITTEN,
        )?;
        self.report.files_written += 1;
        Ok(Output {
            file,
            seq_floor,
            written: FILE_HEADER_LEN as u64,
            buf: Vec::with_capacity(WRITE_BUFFER + 4096),
            moved: Vec::new(),
            mark: None,
        })
    }

    /// Step 3 for the current output: make it durable, publish it with its
    /// hint, then point the key directory at it.
    fn finish_output(&mut self) -> Result<(), Stopped> {
        let Some(mut out) = self.output.take() else {
            return Ok(());
        };
        let dir = &self.shared.dir();
        // The records this output leaves out were superseded by later ones,
        // which may still be only in the page cache (`sync=never`, an
        // interval, or a write not yet acknowledged). Once the output is
        // published a power cut takes the inputs' copies with the merge, so
        // the later records must be on disk first, or the cut loses both and
        // a key vanishes that was never deleted (found by the power-loss
        // test, src/power_loss.rs). One fsync per output.
        let superseding_durable = match self.shared.commit() {
            Some(commit) => commit.sync_through(commit.written()),
            None => Ok(()),
        };
        let published = superseding_durable
            .and_then(|()| out.flush())
            .and_then(|()| out.file.sync_all().at(&out.file.path))
            .and_then(|()| {
                #[cfg(test)]
                crate::failpoint::step("merge: output written, not renamed");
                out.file.publish(dir)
            });
        if let Err(error) = published {
            out.file.discard();
            return Err(error.into());
        }
        #[cfg(test)]
        crate::failpoint::step("merge: output renamed");
        let len = out.written;
        if let Err(error) = write_hint(dir, &out, len) {
            // The hint only speeds up open; the data file is complete.
            tracing::warn!(path = %out.file.path.display(), %error, "could not write the hint of a merge output");
        }
        #[cfg(test)]
        crate::failpoint::step("merge: output hint written");

        let file = Arc::new(out.file);
        let handle = ReadHandle::sealed(Arc::clone(&file))?;
        let id = file.id;
        drop(file);
        self.shared
            .accounts()
            .add_file(id, out.seq_floor, len, true);
        self.shared.files().update(|files| {
            files.insert(id, Arc::new(handle));
        });
        for (key, from, to) in &out.moved {
            if self.shared.keydir().compare_and_set(key, from, *to) {
                self.shared.accounts().dead(from);
                self.shared.accounts().live(to);
            }
        }
        #[cfg(test)]
        crate::failpoint::step("merge: key directory switched to an output");
        Ok(())
    }
}

fn write_hint(dir: &std::path::Path, out: &Output, data_len: u64) -> Result<()> {
    let header = FileHeader {
        file_kind: KIND_DATA,
        file_id: out.file.id,
        seq_floor: out.seq_floor,
        flags: crate::datafile::FLAG_REWRITTEN,
    };
    let mut hint = HintWriter::create(dir, &header)?;
    for (key, _, to) in &out.moved {
        let entry = HintEntry {
            seq: to.seq,
            expires_at_ms: to.expires_at_ms,
            kind: EntryKind::Put,
            key,
            offset: to.offset,
            len: to.len,
        };
        if let Err(error) = hint.add(&entry) {
            hint.abandon();
            return Err(error);
        }
    }
    // The mark's entry comes last, wherever its record is in the file:
    // loading compares marks by seq, not by position.
    if let Some((seq, offset, len)) = out.mark {
        let entry = HintEntry {
            seq,
            expires_at_ms: 0,
            kind: EntryKind::Mark,
            key: &[],
            offset,
            len,
        };
        if let Err(error) = hint.add(&entry) {
            hint.abandon();
            return Err(error);
        }
    }
    hint.finish(data_len)?;
    datafile::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    //! Crash safety of the merge protocol: the directory is copied at every
    //! step (what a process killed there would leave), and every copy must
    //! open with exactly the data the store held before the merge.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::clock::ManualClock;
    use crate::failpoint;
    use crate::{Batch, Bitcask, Options, SyncPolicy, WriteOptions};

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn options(clock: &Arc<ManualClock>) -> Options {
        Options::new()
            .sync(SyncPolicy::Never)
            .max_file_size(400)
            .clock(Arc::clone(clock) as Arc<dyn crate::clock::Clock>)
    }

    /// Writes a history with every kind of dead record spread over many
    /// files: overwrites, deletes of keys whose puts sit in older files,
    /// expired puts hiding older values, a batch. Returns what must be there.
    fn write_history(db: &Bitcask, clock: &ManualClock) -> Model {
        let mut model = Model::new();
        for i in 0..30u32 {
            let (k, v) = (format!("k{i:02}"), format!("v{i}-first"));
            db.put(k.as_bytes(), v.as_bytes()).expect("put");
            model.insert(k.into_bytes(), v.into_bytes());
        }
        for i in (0..30u32).step_by(3) {
            let (k, v) = (format!("k{i:02}"), format!("v{i}-second"));
            db.put(k.as_bytes(), v.as_bytes()).expect("overwrite");
            model.insert(k.into_bytes(), v.into_bytes());
        }
        for i in (1..30u32).step_by(4) {
            let k = format!("k{i:02}");
            db.delete(k.as_bytes()).expect("delete");
            model.remove(k.as_bytes());
        }
        for i in (2..30u32).step_by(5) {
            let k = format!("k{i:02}");
            let ttl = WriteOptions::new().ttl(Duration::from_millis(100));
            db.put_with(k.as_bytes(), b"short-lived", ttl)
                .expect("put ttl");
            model.remove(k.as_bytes()); // expires before the merge
        }
        let mut batch = Batch::new();
        batch.put("k00", "batched").delete("k03").put("new", "x");
        db.write_batch(&batch).expect("batch");
        model.insert(b"k00".to_vec(), b"batched".to_vec());
        model.remove(&b"k03"[..]);
        model.insert(b"new".to_vec(), b"x".to_vec());
        // Fill the active file so that all of the above is sealed.
        for i in 0..8u32 {
            let k = format!("z{i}");
            db.put(k.as_bytes(), &[b'z'; 40]).expect("filler");
            model.insert(k.into_bytes(), vec![b'z'; 40]);
        }
        clock.advance(1_000);
        model
    }

    fn contents(db: &Bitcask) -> Model {
        db.keys()
            .map(|k| {
                let v = db.get(&k).expect("get").expect("listed keys read back");
                (k, v)
            })
            .collect()
    }

    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }

    /// Merges `db`, copying its directory at every step of the protocol
    /// (what a process killed there would leave). Returns the merge's result
    /// and the copies, named by step.
    fn merge_with_snapshots(
        db: &Bitcask,
    ) -> (
        crate::Result<crate::MergeReport>,
        Vec<(&'static str, tempfile::TempDir)>,
    ) {
        let snapshots: Rc<RefCell<Vec<(&'static str, tempfile::TempDir)>>> = Rc::default();
        let sink = Rc::clone(&snapshots);
        let src = db.path().to_path_buf();
        failpoint::observe(move |step| {
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(&src, copy.path());
            sink.borrow_mut().push((step, copy));
        });
        let report = db.merge();
        failpoint::stop_observing();
        (report, snapshots.take())
    }

    fn check_copy(dir: &Path, clock: &Arc<ManualClock>, model: &Model, step: &str) {
        for use_hints in [true, false] {
            let db = Bitcask::open_with(dir, options(clock).use_hints(use_hints))
                .unwrap_or_else(|e| panic!("{step}: open failed: {e}"));
            assert_eq!(&contents(&db), model, "{step} (hints: {use_hints})");
            db.close().expect("close");
        }
        // Merging what the crash left, then reopening, changes nothing.
        let db = Bitcask::open_with(dir, options(clock)).expect("open");
        db.merge().expect("merge after crash");
        assert_eq!(&contents(&db), model, "{step}: merged after the crash");
        db.close().expect("close");
        let db = Bitcask::open_with(dir, options(clock)).expect("reopen");
        assert_eq!(
            &contents(&db),
            model,
            "{step}: reopened after merging again"
        );
    }

    /// The seqs of the records in the data files of `dir` the writer wrote
    /// (not merge or repair outputs): the history the change feed reads.
    fn history_on_disk(dir: &Path) -> std::collections::BTreeSet<u64> {
        use crate::datafile::{self, Access, DataFile, FLAG_REWRITTEN, Scan};
        let mut seqs = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let name = entry.expect("entry").file_name();
            let Some(id) = name.to_str().and_then(datafile::parse_data_file_name) else {
                continue;
            };
            let file = DataFile::open(dir, id, Access::Read).expect("open file");
            if file.read_header().expect("header").flags & FLAG_REWRITTEN != 0 {
                continue;
            }
            let mut scanner = file.scanner().expect("scanner");
            while let Scan::Record(record) = scanner.next_record().expect("scan") {
                seqs.insert(record.header.seq);
            }
        }
        seqs
    }

    /// At every step of a merge (and after it), every record the writer
    /// wrote at or above the compacted seq is still in a writer's file:
    /// the change feed never promises history the merge has deleted
    /// (`HISTORY` is raised before the inputs go), and the merge does
    /// raise it to the active file's first seq.
    #[test]
    fn at_every_step_of_a_merge_the_history_above_the_compacted_seq_is_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let db = Bitcask::open_with(dir.path(), options(&clock)).expect("open");
        assert_eq!(db.compacted_seq(), 0, "a new store's history is whole");
        write_history(&db, &clock);
        let written = history_on_disk(dir.path());
        let active_floor = db.stats().files.last().map(|f| f.id).and_then(|id| {
            let file =
                crate::datafile::DataFile::open(dir.path(), id, crate::datafile::Access::Read)
                    .expect("open");
            file.read_header().ok().map(|h| h.seq_floor)
        });
        let (report, snapshots) = merge_with_snapshots(&db);
        assert!(report.expect("merge").files_merged > 0);
        assert!(
            snapshots
                .iter()
                .any(|(step, _)| *step == "merge: compacted seq raised")
        );
        let mut states: Vec<(&str, &Path)> =
            snapshots.iter().map(|(s, d)| (*s, d.path())).collect();
        states.push(("after the merge", dir.path()));
        for (step, copy) in states {
            let compacted = if copy == dir.path() {
                db.compacted_seq()
            } else {
                let reopened = Bitcask::open_with(copy, options(&clock).read_only(true))
                    .unwrap_or_else(|e| panic!("{step}: {e}"));
                reopened.compacted_seq()
            };
            let on_disk = history_on_disk(copy);
            let missing: Vec<u64> = written
                .iter()
                .filter(|seq| **seq >= compacted && !on_disk.contains(seq))
                .copied()
                .collect();
            assert!(
                missing.is_empty(),
                "{step}: C = {compacted}, records gone: {missing:?}"
            );
        }
        assert_eq!(
            Some(db.compacted_seq()),
            active_floor,
            "raised to the active file's floor"
        );
        db.close().expect("close");
        let reopened = Bitcask::open_with(dir.path(), options(&clock)).expect("reopen");
        assert_eq!(Some(reopened.compacted_seq()), active_floor, "persisted");
    }

    #[test]
    fn a_crash_at_any_step_of_a_merge_loses_nothing_and_resurrects_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let db = Bitcask::open_with(dir.path(), options(&clock)).expect("open");
        let model = write_history(&db, &clock);
        assert_eq!(contents(&db), model);

        let (report, snapshots) = merge_with_snapshots(&db);
        let report = report.expect("merge");
        assert!(
            report.files_merged > 1 && report.files_written >= 1,
            "{report:?}"
        );
        assert!(report.records_dropped > 0 && report.bytes_reclaimed() > 0);
        assert_eq!(contents(&db), model, "the live store after the merge");

        let steps: Vec<&str> = snapshots.iter().map(|(s, _)| *s).collect();
        for expected in [
            "merge: output written, not renamed",
            "merge: output renamed",
            "merge: output hint written",
            "merge: key directory switched to an output",
            "merge: before deleting inputs",
            "merge: deleted an input",
        ] {
            assert!(
                steps.contains(&expected),
                "never reached {expected}: {steps:?}"
            );
        }
        for (step, copy) in &snapshots {
            check_copy(copy.path(), &clock, &model, step);
        }
        drop(db);
        check_copy(dir.path(), &clock, &model, "after the merge");
    }

    #[test]
    fn an_explicit_merge_reclaims_a_store_that_fits_in_its_active_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open(dir.path()).expect("open");
        for round in 0..200u32 {
            for key in 0..10u32 {
                db.put(format!("k{key}").as_bytes(), format!("v{round}").as_bytes())
                    .expect("put");
            }
        }
        let before = db.stats();
        assert_eq!(before.data_files, 1, "everything sits in the active file");
        assert!(before.dead_bytes > 0);
        let report = db.merge().expect("merge");
        assert!(
            report.bytes_read > 0,
            "the active file was sealed and merged"
        );
        let after = db.stats();
        assert!(
            after.total_bytes < before.total_bytes / 10,
            "{} bytes before, {} after",
            before.total_bytes,
            after.total_bytes
        );
        assert_eq!(after.dead_bytes, 0);
        // Nothing left to reclaim: a second merge seals nothing.
        let again = db.merge().expect("merge");
        assert_eq!(again.bytes_read, 0);
        assert_eq!(db.stats().data_files, after.data_files);
        db.close().expect("close");
        let db = Bitcask::open(dir.path()).expect("reopen");
        for key in 0..10u32 {
            assert_eq!(
                db.get(format!("k{key}").as_bytes())
                    .expect("get")
                    .as_deref(),
                Some(&b"v199"[..])
            );
        }
        db.close().expect("close");
    }

    #[test]
    fn a_merge_with_an_io_budget_gives_the_same_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let opts = options(&clock).merge_bytes_per_sec(Some(50_000_000));
        let db = Bitcask::open_with(dir.path(), opts).expect("open");
        let model = write_history(&db, &clock);
        let report = db.merge().expect("merge");
        assert!(report.bytes_read > 0);
        assert_eq!(contents(&db), model);
    }

    #[test]
    fn a_failed_output_leaves_the_inputs_and_no_unfinished_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let db = Bitcask::open_with(dir.path(), options(&clock)).expect("open");
        let model = write_history(&db, &clock);
        let before = crate::datafile::list_dir(dir.path()).expect("list");

        failpoint::arm("publish");
        assert!(db.merge().is_err());
        let after = crate::datafile::list_dir(dir.path()).expect("list");
        assert_eq!(
            after.data, before.data,
            "inputs untouched, no output published"
        );
        // (A `.hint.tmp` may be the background thread writing a hint.)
        let unfinished_data = after
            .tmp
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".data.tmp"))
            .count();
        assert_eq!(unfinished_data, 0, "the unfinished output is removed");
        assert_eq!(contents(&db), model);
        db.merge().expect("a later merge succeeds");
        assert_eq!(contents(&db), model);
    }

    /// One step of a random history for the property below.
    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, u8),
        PutTtl(u8, u8, u64),
        Delete(u8),
        Batch(Vec<(u8, Option<u8>)>),
        Advance(u64),
        Merge,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0u8..10, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
            2 => (0u8..10, any::<u8>(), 1u64..40).prop_map(|(k, v, t)| Step::PutTtl(k, v, t)),
            3 => (0u8..10).prop_map(Step::Delete),
            1 => proptest::collection::vec((0u8..10, proptest::option::of(any::<u8>())), 1..4)
                .prop_map(Step::Batch),
            2 => (0u64..30).prop_map(Step::Advance),
            1 => Just(Step::Merge),
        ]
    }

    fn run_history(db: &Bitcask, clock: &ManualClock, steps: &[Step]) -> Model {
        // Model: value and expiry (0 = never) per key.
        let mut model: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = BTreeMap::new();
        let key = |k: u8| format!("key-{k}").into_bytes();
        let value = |v: u8| vec![v; 20 + usize::from(v % 30)];
        for step in steps {
            let now = crate::clock::Clock::now_ms(clock);
            match step {
                Step::Put(k, v) => {
                    db.put(&key(*k), &value(*v)).expect("put");
                    model.insert(key(*k), (value(*v), 0));
                }
                Step::PutTtl(k, v, ttl) => {
                    let opts = WriteOptions::new().ttl(Duration::from_millis(*ttl));
                    db.put_with(&key(*k), &value(*v), opts).expect("put");
                    model.insert(key(*k), (value(*v), now + ttl));
                }
                Step::Delete(k) => {
                    db.delete(&key(*k)).expect("delete");
                    model.remove(&key(*k));
                }
                Step::Batch(ops) => {
                    let mut batch = Batch::new();
                    for (k, v) in ops {
                        match v {
                            Some(v) => {
                                batch.put(key(*k), value(*v));
                                model.insert(key(*k), (value(*v), 0));
                            }
                            None => {
                                batch.delete(key(*k));
                                model.remove(&key(*k));
                            }
                        }
                    }
                    db.write_batch(&batch).expect("batch");
                }
                Step::Advance(ms) => clock.advance(*ms),
                Step::Merge => {
                    db.merge().expect("merge");
                }
            }
        }
        let now = crate::clock::Clock::now_ms(clock);
        model
            .into_iter()
            .filter(|(_, (_, exp))| *exp == 0 || now < *exp)
            .map(|(k, (v, _))| (k, v))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

        /// Random histories (overwrites, deletes, expiry, batches, earlier
        /// merges), then a merge copied at every step: every copy opens to
        /// the same data.
        #[test]
        fn a_crash_at_any_step_of_a_merge_after_any_history_changes_nothing(
            steps in proptest::collection::vec(step(), 20..120),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let clock = Arc::new(ManualClock::new(1_000_000));
            let opts = options(&clock).max_file_size(300);
            let db = Bitcask::open_with(dir.path(), opts).expect("open");
            let model = run_history(&db, &clock, &steps);
            proptest::prop_assert_eq!(&contents(&db), &model);

            let (merged, snapshots) = merge_with_snapshots(&db);
            merged.expect("merge");
            proptest::prop_assert_eq!(&contents(&db), &model);
            for (step, copy) in &snapshots {
                check_copy(copy.path(), &clock, &model, step);
            }
        }
    }
}
