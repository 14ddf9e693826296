//! Opening a store: rebuilding the key directory from hint and data files,
//! cleaning up what a crash left half-done, and cutting a torn tail off the
//! active file.
//!
//! The protocol is specified in `docs/FORMAT.md` ("Open (recovery)").

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::datafile::{self, Access, DataFile, FILE_HEADER_LEN, ReadHandle, Scan};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::hint::{EntryKind, Hint, HintEntry};
use crate::keydir::{Entry, KeyDir, KeyDirLoader, LoadOp, LoadSource};
use crate::options::OpenProgress;
use crate::record::{self, MAX_MARK_LEN, RecordKind};
use crate::stats::Accounts;
use crate::survival::{self, BadRecord, Batch, FileRole};

/// What recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Read handles of every sealed data file, by id. Their file descriptors
    /// are closed as soon as each is loaded and mapped, so recovery holds one
    /// descriptor at a time however many files there are.
    pub sealed: BTreeMap<u32, ReadHandle>,
    /// The active file (last in log order) and the offset where its valid
    /// records end, if any data file exists.
    pub newest: Option<(Arc<DataFile>, u64)>,
    /// The sequence number the next write takes.
    pub next_seq: u64,
    /// The number the next new file takes.
    pub next_file_id: u32,
    /// The rebuilt key directory.
    pub keydir: KeyDir,
    /// Space accounts of every data file.
    pub accounts: Accounts,
    /// Sealed files that had no valid hint file (scanned instead).
    pub missing_hints: Vec<u32>,
    /// The current mark (the committed one with the highest `seq`), if any.
    pub mark: Option<Mark>,
}

/// A mark and the sequence number of its record (see `docs/FORMAT.md`, "Marks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The mark record's sequence number.
    pub seq: u64,
    /// The application's value.
    pub value: Arc<[u8]>,
}

/// Where the newest mark seen so far is.
#[derive(Debug, Clone, Copy, Default)]
struct MarkAt {
    seq: u64,
    file_id: u32,
    offset: u64,
    len: u64,
}

impl MarkAt {
    fn offer(newest: &mut Option<Self>, found: Self) {
        if newest.is_none_or(|n| found.seq > n.seq) {
            *newest = Some(found);
        }
    }
}

/// How recovery reads the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoverOptions<'a> {
    /// Change nothing on disk.
    pub read_only: bool,
    /// Read hint files where valid (otherwise scan every data file).
    pub use_hints: bool,
    /// The time by which expiry is judged.
    pub now_ms: u64,
    /// Where to report progress, if anywhere.
    pub progress: Option<&'a OpenProgress>,
}

/// Reads every data file in `dir` into a new key directory (see the module docs).
pub(crate) fn recover(dir: &Path, opts: RecoverOptions<'_>) -> Result<Recovered> {
    let listing = datafile::list_dir(dir)?;
    let mut ids = listing.data.clone();
    if !opts.read_only {
        remove_leftovers(dir, &listing)?;
    }
    if let Some(&newest) = ids.last()
        && is_torn_creation(dir, newest, opts.read_only)?
    {
        ids.pop();
    }

    // Log order: (seq_floor, id). Headers first, one descriptor at a time;
    // the loading pass below uses them without reading them again.
    let mut order = Vec::with_capacity(ids.len());
    for &id in &ids {
        order.push(DataFile::open(dir, id, Access::Read)?.read_header()?);
    }
    order.sort_unstable_by_key(|h| (h.seq_floor, h.file_id));
    if let Some(progress) = opts.progress {
        progress.set_total(order.len() as u64);
    }

    let mut loader = KeyDirLoader::new();
    // Threads that load hint files (each applies the entries of its shards).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let accounts = Accounts::default();
    let mut sealed = BTreeMap::new();
    let mut newest_file = None;
    let mut missing_hints = Vec::new();
    let mut max_seq = 0u64;
    let mut seq_floor = 1u64;
    let newest = order.last().map(|h| h.file_id);
    let mut hint_buf = Vec::new();
    let mut newest_mark: Option<MarkAt> = None;
    // The key directory's tables are sized once, at the first hint, for
    // the entries all hint files hold at that hint's bytes an entry (see
    // `KeyDirLoader::reserve`).
    let mut hint_bytes = opts.use_hints.then(|| {
        listing
            .hints
            .iter()
            .filter(|id| ids.binary_search(id).is_ok())
            .filter_map(|&id| std::fs::metadata(dir.join(datafile::hint_file_name(id))).ok())
            .map(|m| m.len())
            .sum::<u64>()
    });
    for header in order {
        let (id, floor) = (header.file_id, header.seq_floor);
        let file = Arc::new(DataFile::open(
            dir,
            id,
            if opts.read_only {
                Access::Read
            } else {
                Access::Append
            },
        )?);
        seq_floor = seq_floor.max(floor);
        let is_newest = Some(id) == newest;
        // The newest file's hint, if any, was written by a clean close; it
        // is used only if the file has not changed since (same length).
        let hint = if opts.use_hints {
            match Hint::load_into(dir, &header, file.len()?, std::mem::take(&mut hint_buf)) {
                Ok(hint) => Some(hint),
                Err(buf) => {
                    hint_buf = buf;
                    None
                }
            }
        } else {
            None
        };
        if is_newest && !opts.read_only {
            // The file is about to grow: its hint would go stale. No fsync:
            // a lost deletion leaves a hint that is still exact or that no
            // longer matches the file's length.
            let path = dir.join(datafile::hint_file_name(id));
            if let Err(error) = crate::disk::remove(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot remove the active file's hint");
            }
        }
        let end = match hint {
            Some(hint) => {
                if let Some(total) = hint_bytes.take_if(|_| hint.summary().entries > 0) {
                    let entries = u128::from(hint.summary().entries) * u128::from(total)
                        / (hint.byte_len() as u128).max(1);
                    loader.reserve(usize::try_from(entries).unwrap_or(0));
                }
                let end = load_hint(&file, &hint, &mut loader, &mut max_seq, threads);
                newest_mark_in_hint(id, &hint, &mut newest_mark);
                let end = end?;
                hint_buf = hint.into_buffer();
                end
            }
            None => {
                if !is_newest {
                    missing_hints.push(id);
                }
                let scan = Scanned {
                    is_newest,
                    read_only: opts.read_only,
                };
                scan_file(&file, &mut loader, scan, &mut max_seq, &mut newest_mark)?
            }
        };
        let rewritten = header.flags & datafile::FLAG_REWRITTEN != 0;
        accounts.add_file(id, floor, end, rewritten);
        if let Some(progress) = opts.progress {
            progress.loaded_one();
        }
        if is_newest {
            newest_file = Some((file, end));
        } else {
            sealed.insert(id, ReadHandle::sealed(file)?);
        }
    }
    let keydir = loader
        .finish(opts.now_ms)
        .map_err(|_| Error::KeyDirectoryFull)?;
    accounts.add_live(&keydir, threads);
    let mark = match newest_mark {
        Some(at) => Some(read_mark(dir, at)?),
        None => None,
    };
    Ok(Recovered {
        sealed,
        newest: newest_file,
        next_seq: (max_seq + 1).max(seq_floor),
        next_file_id: listing.max_id.saturating_add(1).max(1),
        keydir,
        accounts,
        missing_hints,
        mark,
    })
}

/// Offers the newest mark a hint file lists.
fn newest_mark_in_hint(file_id: u32, hint: &Hint, newest: &mut Option<MarkAt>) {
    if let Some((seq, offset, len)) = hint.summary().newest_mark {
        let found = MarkAt {
            seq,
            file_id,
            offset: u64::from(offset),
            len: u64::from(len),
        };
        MarkAt::offer(newest, found);
    }
}

/// Reads the value of the mark at `at`, verifying its record.
fn read_mark(dir: &Path, at: MarkAt) -> Result<Mark> {
    let file = DataFile::open(dir, at.file_id, Access::Read)?;
    let corrupt = |kind| Error::Corruption {
        path: file.path.clone(),
        offset: at.offset,
        kind,
    };
    let len = usize::try_from(at.len).map_err(|_| corrupt(CorruptionKind::Truncated))?;
    if len > record::HEADER_LEN + MAX_MARK_LEN {
        return Err(corrupt(CorruptionKind::Truncated));
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at.offset)?;
    let rec = record::decode_whole(&buf).map_err(corrupt)?;
    if rec.header.kind != RecordKind::Mark || rec.header.seq != at.seq {
        return Err(corrupt(CorruptionKind::BadChecksum));
    }
    Ok(Mark {
        seq: at.seq,
        value: Arc::from(rec.value),
    })
}

/// Deletes `.tmp` files (writes a crash cut short) and hint files whose data
/// file is gone.
fn remove_leftovers(dir: &Path, listing: &datafile::DirListing) -> Result<()> {
    let orphan_hints = listing
        .hints
        .iter()
        .filter(|id| listing.data.binary_search(id).is_err())
        .map(|&id| dir.join(datafile::hint_file_name(id)));
    let mut removed = false;
    for path in listing.tmp.iter().cloned().chain(orphan_hints) {
        tracing::info!(path = %path.display(), "removing a file left unfinished by a crash");
        crate::disk::remove(&path).at(&path)?;
        removed = true;
    }
    if removed {
        datafile::sync_dir(dir)?;
    }
    Ok(())
}

/// A newest file no longer than its header whose header does not verify was
/// being created in place (by a format-version-1 writer) when the process
/// died: it never held a record. Removes it (unless read-only) and reports
/// whether it was one.
fn is_torn_creation(dir: &Path, id: u32, read_only: bool) -> Result<bool> {
    let file = DataFile::open(dir, id, Access::Read)?;
    if file.len()? > FILE_HEADER_LEN as u64 || file.read_header().is_ok() {
        return Ok(false);
    }
    if read_only {
        tracing::debug!(path = %file.path.display(),
            "read-only open skips a data file whose creation is not complete");
    } else {
        tracing::warn!(path = %file.path.display(),
            "removing a data file whose creation was cut short");
        crate::disk::remove(&file.path).at(&file.path)?;
        datafile::sync_dir(dir)?;
    }
    Ok(true)
}

/// Applies a verified hint file's entries; returns the data file's length.
fn load_hint(
    file: &DataFile,
    hint: &Hint,
    loader: &mut KeyDirLoader,
    max_seq: &mut u64,
    threads: usize,
) -> Result<u64> {
    let file_id = file.id;
    loader.apply_parallel(&HintSource { hint, file_id }, threads);
    *max_seq = (*max_seq).max(hint.summary().max_seq);
    file.len()
}

/// A hint file's entries as the records of a key-directory load.
struct HintSource<'h> {
    hint: &'h Hint,
    file_id: u32,
}

impl<'h> HintSource<'h> {
    /// What applying `entry` does to the key directory.
    fn op(&self, entry: HintEntry<'h>) -> LoadOp<'h> {
        LoadOp {
            key: entry.key,
            put: (entry.kind == EntryKind::Put).then_some(Entry {
                file_id: self.file_id,
                offset: entry.offset,
                len: entry.len,
                seq: entry.seq,
                expires_at_ms: entry.expires_at_ms,
            }),
            seq: entry.seq,
        }
    }
}

impl<'h> LoadSource<'h> for HintSource<'h> {
    fn parts(&self) -> usize {
        self.hint.parts()
    }

    fn for_each_in(&self, part: usize, mut f: impl FnMut(u64, LoadOp<'h>)) {
        for (at, entry) in self.hint.entries_in(part) {
            if entry.kind != EntryKind::Mark {
                f(at, self.op(entry));
            }
        }
    }

    fn op_at(&self, at: u64) -> LoadOp<'h> {
        self.op(self.hint.entry_at(at))
    }

    fn prefetch(&self, at: u64) {
        self.hint.prefetch(at);
    }
}

/// One operation of a batch read but not yet committed.
struct PendingOp {
    key: Vec<u8>,
    /// The entry for a put; `None` for a delete.
    put: Option<Entry>,
    seq: u64,
}

/// How [`scan_file`] treats the file it scans.
#[derive(Debug, Clone, Copy)]
struct Scanned {
    /// The newest file (which may end in a torn write).
    is_newest: bool,
    /// Change nothing on disk.
    read_only: bool,
}

/// Applies every record of `file` to `loader` and offers its committed
/// marks to `newest_mark`; returns the offset where the valid (and
/// committed) records end.
fn scan_file(
    file: &DataFile,
    loader: &mut KeyDirLoader,
    scan: Scanned,
    max_seq: &mut u64,
    newest_mark: &mut Option<MarkAt>,
) -> Result<u64> {
    let Scanned {
        is_newest,
        read_only,
    } = scan;
    let mut scanner = file.scanner()?;
    // Records of a batch whose committing record has not been read yet.
    let mut batch: Batch<PendingOp> = Batch::default();
    let stop = loop {
        match scanner.next_record()? {
            Scan::Record(rec) => {
                *max_seq = (*max_seq).max(rec.header.seq);
                let put = if rec.header.kind.is_put() {
                    Some(Entry {
                        file_id: file.id,
                        offset: offset_u32(file, rec.offset)?,
                        len: offset_u32(file, rec.header.record_len())?,
                        seq: rec.header.seq,
                        expires_at_ms: rec.header.expires_at_ms,
                    })
                } else {
                    None
                };
                if rec.header.kind.commits() {
                    batch.commit(|op| {
                        loader.apply(LoadOp {
                            key: &op.key,
                            put: op.put,
                            seq: op.seq,
                        });
                    });
                    if rec.header.kind == RecordKind::Mark {
                        let found = MarkAt {
                            seq: rec.header.seq,
                            file_id: file.id,
                            offset: rec.offset,
                            len: rec.header.record_len(),
                        };
                        MarkAt::offer(newest_mark, found);
                    } else {
                        loader.apply(LoadOp {
                            key: rec.key,
                            put,
                            seq: rec.header.seq,
                        });
                    }
                } else {
                    let op = PendingOp {
                        key: rec.key.to_vec(),
                        put,
                        seq: rec.header.seq,
                    };
                    batch.hold(rec.offset, op);
                }
            }
            // The length seen when the scan began: a live writer beside a
            // read-only open may have appended since.
            Scan::End => match batch.start() {
                None => return Ok(scanner.scanned_len()),
                Some(start) => {
                    break datafile::ScanStop {
                        offset: start,
                        kind: CorruptionKind::UnfinishedBatch,
                        declared_end: None,
                    };
                }
            },
            Scan::Stop(stop) => break stop,
        }
    };

    let corruption = Error::Corruption {
        path: file.path.clone(),
        offset: stop.offset,
        kind: stop.kind,
    };
    // A verified record anywhere after the bad one: it was not the end of
    // the log (the rest of the newest file is read once, only here). A
    // batch left open at the clean end has no bad record after it. A
    // read-only open does not look: a writer beside it may be appending
    // to this very file, and it cuts nothing anyway.
    let at_end = stop.kind == CorruptionKind::UnfinishedBatch;
    let verified_after = is_newest && !read_only && !at_end && {
        let end = scanner.scanned_len();
        let mut rest = vec![0u8; usize::try_from(end.saturating_sub(stop.offset)).unwrap_or(0)];
        file.read_exact_at(&mut rest, stop.offset)?;
        survival::next_record_after(&rest).is_some()
    };
    let role = if is_newest {
        FileRole::Newest
    } else {
        FileRole::Sealed
    };
    let cut_at = match survival::judge(role, stop.offset, batch.start(), verified_after) {
        BadRecord::Damage => {
            let place = if is_newest {
                "in the middle of the active data file"
            } else {
                "in a sealed data file"
            };
            tracing::error!(path = %file.path.display(), offset = stop.offset, kind = %stop.kind,
                "corruption {place}");
            return Err(corruption);
        }
        // If it falls inside a batch, the whole batch goes with it.
        BadRecord::TornTail { cut_at } => cut_at,
    };
    let len = file.len()?;
    if read_only {
        tracing::debug!(path = %file.path.display(), offset = cut_at,
            "read-only open ignores an incomplete tail");
    } else {
        // Keep the cut bytes beside the data: a torn write is expected after a
        // crash, but if this was damage, the bytes are there to inspect.
        let dir = file.path.parent().unwrap_or(Path::new("."));
        let saved = dir.join(format!("{:010}-{}.torn", file.id, cut_at));
        let kept = file.save_tail(cut_at, &saved)?;
        if kept {
            tracing::warn!(path = %file.path.display(), offset = cut_at,
                dropped_bytes = len - cut_at, kind = %stop.kind,
                saved_to = %saved.display(), "cutting a torn tail off the active data file");
            datafile::sync_dir(dir)?;
        } else {
            // All zero: the preallocated space a crash left (docs/FORMAT.md).
            tracing::debug!(path = %file.path.display(), offset = cut_at,
                dropped_bytes = len - cut_at, "dropping preallocated space after the last record");
        }
        file.truncate(cut_at).at(&file.path)?;
        file.sync_all().at(&file.path)?;
    }
    Ok(cut_at)
}

/// Offsets and lengths fit in 32 bits because files are at most 4 GiB.
fn offset_u32(file: &DataFile, value: u64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corruption {
        path: file.path.clone(),
        offset: value,
        kind: CorruptionKind::FileTooLarge,
    })
}
