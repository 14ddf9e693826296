//! Offline verification of a store: every file header and record checksum,
//! with resynchronisation past damage, so that a report names every damaged
//! region and [`crate::repair`] knows which records survive.
//!
//! The protocol is specified in `docs/FORMAT.md` ("Check and repair").

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::datafile::{self, Access, DataFile, FILE_HEADER_LEN, FileHeader};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::hint::Hint;
use crate::lock::{DeleteLock, LockMode};
use crate::record::{self, HEADER_LEN, RecordHeader};
use crate::survival::{self, BadRecord, Batch, FileRole, plausible_record_at};

/// What [`check`] found in a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every data file, in log order.
    pub files: Vec<FileReport>,
    /// Hint files that do not verify (open reads their data files instead;
    /// no data is at risk). Ids of their data files.
    pub bad_hints: Vec<u32>,
}

impl CheckReport {
    /// Whether any data file holds damage (a torn tail is not damage: open
    /// cuts it by itself).
    pub fn is_damaged(&self) -> bool {
        self.files.iter().any(|f| !f.damage.is_empty())
    }

    /// Records that verified, in all files.
    pub fn records(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }

    /// Bytes read, in all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Every damaged region, with its file.
    pub fn damage(&self) -> impl Iterator<Item = (&FileReport, &Damage)> {
        self.files
            .iter()
            .flat_map(|f| f.damage.iter().map(move |d| (f, d)))
    }
}

/// What [`check`] found in one data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file's id (its number).
    pub file_id: u32,
    /// Its path.
    pub path: PathBuf,
    /// Its length in bytes when read.
    pub len: u64,
    /// Records that verified and would survive a repair.
    pub records: u64,
    /// Damaged regions, in file order.
    pub damage: Vec<Damage>,
    /// Offset of a torn tail (the newest file only): bytes after the last
    /// complete record that open cuts off by itself.
    pub torn_tail: Option<u64>,
}

/// One damaged region of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the region's first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// What was wrong at its start.
    pub kind: CorruptionKind,
    /// Keys of the records the region held, where they could be read: the
    /// damaged record's key when its header framed the region exactly, or
    /// the keys of an unfinished batch's intact records. Possibly damaged
    /// themselves in the first case.
    pub keys: Vec<Vec<u8>>,
    /// Writes lost here have versions above this one (the last good record
    /// before the region), if there was one.
    pub seq_after: Option<u64>,
    /// ... and below this one (the first good record after it), if any.
    pub seq_before: Option<u64>,
}

/// Verifies every data and hint file of the store in `dir` without changing
/// anything (see the module docs). Runs beside a live store: a merge cannot
/// delete a file while the check reads.
pub fn check(dir: impl AsRef<Path>) -> Result<CheckReport> {
    check_with_progress(dir, &mut |_, _| {})
}

/// [`check`], calling `progress(bytes_done, bytes_total)` as it reads.
pub fn check_with_progress(
    dir: impl AsRef<Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CheckReport> {
    let dir = dir.as_ref();
    let _no_deletes = DeleteLock::acquire(dir, LockMode::Shared)?;
    Ok(scan_store(dir, progress)?.report)
}

/// The result of reading a whole store: the report, and per file what
/// survives (for repair).
pub(crate) struct StoreScan {
    pub report: CheckReport,
    pub files: Vec<ScannedFile>,
}

/// One data file as read by the check.
pub(crate) struct ScannedFile {
    /// The file header, or `None` if it did not verify.
    pub header: Option<FileHeader>,
    /// Byte ranges of the records that survive, in order: only for a
    /// damaged file (empty for a sound one).
    pub kept: Vec<Range<usize>>,
    /// Lowest `seq` among the kept records.
    pub min_seq: Option<u64>,
}

/// Reads every data file of `dir` (see [`check`]); the caller holds a lock
/// that keeps files from being deleted meanwhile.
pub(crate) fn scan_store(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<StoreScan> {
    let listing = datafile::list_dir(dir)?;
    // First pass: headers and lengths only, to find the newest file (the
    // one that may end in a torn tail) and the total for the progress.
    let mut heads = Vec::with_capacity(listing.data.len());
    let mut total = 0u64;
    for &id in &listing.data {
        let file = DataFile::open(dir, id, Access::Read)?;
        total += file.len()?;
        // Damage is reported; an unreadable format version stops the check.
        let header = match file.read_header() {
            Ok(header) => Ok(header),
            Err(Error::Corruption { kind, .. }) => Err(kind),
            Err(other) => return Err(other),
        };
        heads.push((id, file.path.clone(), header));
    }
    let newest_by_header = heads
        .iter()
        .filter_map(|(id, _, h)| h.as_ref().ok().map(|h| (h.seq_floor, *id)))
        .max()
        .map(|(_, id)| id);

    // Second pass: one file in memory at a time.
    let mut done = 0u64;
    progress(done, total);
    let mut files = Vec::with_capacity(heads.len());
    let mut reports = Vec::with_capacity(heads.len());
    for (id, path, header) in heads {
        let bytes = std::fs::read(&path).at(&path)?;
        done += bytes.len() as u64;
        let (file, report) = scan_file(id, path, header, &bytes, newest_by_header == Some(id));
        files.push(file);
        reports.push(report);
        progress(done.min(total), total);
    }

    let mut bad_hints = Vec::new();
    for &id in &listing.hints {
        let Some(i) = reports.iter().position(|r| r.file_id == id) else {
            continue; // an orphan hint: a writable open deletes it
        };
        let valid = files[i]
            .header
            .as_ref()
            .and_then(|h| Hint::load(dir, h, reports[i].len))
            .is_some();
        if !valid {
            bad_hints.push(id);
        }
    }

    // Log order by (seq_floor, id); a file whose header is damaged is
    // placed by its lowest seq.
    let mut both: Vec<(ScannedFile, FileReport)> = files.into_iter().zip(reports).collect();
    both.sort_by_key(|(file, report)| {
        let floor = file
            .header
            .map(|h| h.seq_floor)
            .or(file.min_seq)
            .unwrap_or(0);
        (floor, report.file_id)
    });
    let (files, reports): (Vec<_>, Vec<_>) = both.into_iter().unzip();
    Ok(StoreScan {
        report: CheckReport {
            files: reports,
            bad_hints,
        },
        files,
    })
}

/// Checks one data file's bytes. Keeps the ranges of its surviving records
/// only if it is damaged (repair needs them; a sound file is left alone).
fn scan_file(
    id: u32,
    path: PathBuf,
    header: std::result::Result<FileHeader, CorruptionKind>,
    bytes: &[u8],
    is_newest: bool,
) -> (ScannedFile, FileReport) {
    let mut damage = Vec::new();
    if let Err(kind) = &header {
        damage.push(Damage {
            offset: 0,
            len: (bytes.len() as u64).min(FILE_HEADER_LEN as u64),
            kind: *kind,
            keys: Vec::new(),
            seq_after: None,
            seq_before: None,
        });
    }
    let header = header.ok();
    let len = bytes.len() as u64;
    if header.is_none() && is_newest && bytes.len() <= FILE_HEADER_LEN {
        // A file creation cut short (format version 1): open removes it.
        let file = ScannedFile {
            header,
            kept: Vec::new(),
            min_seq: None,
        };
        let report = FileReport {
            file_id: id,
            path,
            len,
            records: 0,
            damage: Vec::new(),
            torn_tail: Some(0),
        };
        return (file, report);
    }
    let walk = walk(bytes, is_newest);
    damage.extend(walk.damage);
    let records = walk.kept.len() as u64;
    let kept = if damage.is_empty() {
        Vec::new()
    } else {
        walk.kept
    };
    let file = ScannedFile {
        header,
        kept,
        min_seq: walk.min_seq,
    };
    let report = FileReport {
        file_id: id,
        path,
        len,
        records,
        damage,
        torn_tail: walk.torn_tail,
    };
    (file, report)
}

/// A record found in a file's bytes.
struct Found {
    header: RecordHeader,
    range: Range<usize>,
}

/// Why no valid record starts at an offset.
struct NotFound {
    kind: CorruptionKind,
    /// The record's header, when it decoded.
    header: Option<RecordHeader>,
    /// Where the record would end if its length fields are right, when
    /// that is inside the file.
    declared_end: Option<usize>,
}

/// The record at `at`, verified: the engine's one record reader
/// ([`record::read_from`]), with the range it spans.
fn record_at(bytes: &[u8], at: usize) -> std::result::Result<Found, NotFound> {
    match record::read_from(bytes, at) {
        Ok(found) => Ok(Found {
            header: found.header,
            range: at..at + found.header.record_len() as usize,
        }),
        Err(bad) => Err(NotFound {
            kind: bad.kind,
            header: bad.header,
            declared_end: bad.declared_len.map(|len| at + len as usize),
        }),
    }
}

/// What walking one file's records found.
struct Walk {
    kept: Vec<Range<usize>>,
    damage: Vec<Damage>,
    torn_tail: Option<u64>,
    min_seq: Option<u64>,
}

/// The key of the record at `range`, given its header.
fn key_of(bytes: &[u8], start: usize, header: &RecordHeader) -> Option<Vec<u8>> {
    let from = start + HEADER_LEN;
    bytes
        .get(from..from.checked_add(header.key_len as usize)?)
        .map(<[u8]>::to_vec)
}

/// Walks the records of one data file (after its header, even if the header
/// is damaged), resynchronising after damage. `is_newest`: the file may end
/// in a torn tail.
fn walk(bytes: &[u8], is_newest: bool) -> Walk {
    let mut out = Walk {
        kept: Vec::new(),
        damage: Vec::new(),
        torn_tail: None,
        min_seq: None,
    };
    // Records of a batch not yet committed, and their keys.
    let mut batch: Batch<(Found, Vec<u8>)> = Batch::default();
    let mut last_seq: Option<u64> = None;
    let mut at = FILE_HEADER_LEN.min(bytes.len());
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok(found) => {
                let key = key_of(bytes, at, &found.header).unwrap_or_default();
                let commits = found.header.kind.commits();
                let seq = found.header.seq;
                at = found.range.end;
                if commits {
                    batch.commit(|(op, _)| keep(&mut out, op));
                    keep(&mut out, found);
                } else {
                    batch.hold(found.range.start as u64, (found, key));
                }
                last_seq = Some(seq);
            }
            Err(bad) => {
                // The rule open follows (survival::judge): in the newest
                // file, a bad record not followed by a verified one at its
                // declared end is a torn tail, and nothing after it counts.
                // One scan forward: it both judges the record (as open
                // does) and finds where to resynchronise.
                let next_record = survival::next_record_after(&bytes[at..]).map(|i| at + i);
                let verified_after = next_record.is_some();
                let role = if is_newest {
                    FileRole::Newest
                } else {
                    FileRole::Sealed
                };
                let judged = survival::judge(role, at as u64, batch.start(), verified_after);
                if let BadRecord::TornTail { cut_at } = judged {
                    let preallocated =
                        batch.start().is_none() && bytes[at..].iter().all(|&b| b == 0);
                    // (All zeros: preallocated space, not a tear; open drops
                    // it and loses nothing. docs/FORMAT.md.)
                    out.torn_tail = (!preallocated).then_some(cut_at);
                    return finish(out);
                }
                let resync = bad
                    .declared_end
                    .filter(|&end| record_at(bytes, end).is_ok())
                    .or(next_record);
                // A batch cut by the damage never commits. (Records after the
                // damage are kept even if they end a batch that began in it:
                // see docs/FORMAT.md, "Which records survive".)
                let cut_batch = unfinished(&mut batch);
                out.damage.extend(cut_batch);
                let Some(next) = resync else {
                    out.damage.push(Damage {
                        offset: at as u64,
                        len: (bytes.len() - at) as u64,
                        kind: bad.kind,
                        keys: Vec::new(),
                        seq_after: last_seq,
                        seq_before: None,
                    });
                    return finish(out);
                };
                let framed = bad.declared_end == Some(next);
                let next_seq = plausible_record_at(bytes, next).map(|r| r.header.seq);
                let keys = match (&bad.header, framed) {
                    (Some(h), true) => key_of(bytes, at, h).into_iter().collect(),
                    _ => Vec::new(),
                };
                out.damage.push(Damage {
                    offset: at as u64,
                    len: (next - at) as u64,
                    kind: bad.kind,
                    keys,
                    seq_after: last_seq,
                    seq_before: next_seq,
                });
                at = next;
            }
        }
    }
    // The clean end of the file: a batch still open never commits.
    if is_newest {
        // Open cuts an uncommitted batch at the end of the active file.
        out.torn_tail = batch.start();
    } else {
        out.damage.extend(unfinished(&mut batch));
    }
    finish(out)
}

/// Records a surviving record.
fn keep(out: &mut Walk, found: Found) {
    out.min_seq = Some(
        out.min_seq
            .map_or(found.header.seq, |s| s.min(found.header.seq)),
    );
    out.kept.push(found.range);
}

/// Turns the held records of a batch that will never commit into damage.
fn unfinished(batch: &mut Batch<(Found, Vec<u8>)>) -> Option<Damage> {
    let (first, ops) = batch.abandon()?;
    let end = ops
        .last()
        .map_or(first as usize, |(found, _)| found.range.end);
    let keys = ops.into_iter().map(|(_, key)| key).collect();
    // The records are intact: their versions are not lost, their batch is.
    Some(Damage {
        offset: first,
        len: end as u64 - first,
        kind: CorruptionKind::UnfinishedBatch,
        keys,
        seq_after: None,
        seq_before: None,
    })
}

/// Sorts a walk's damage into file order.
fn finish(mut out: Walk) -> Walk {
    out.damage.sort_by_key(|d| d.offset);
    out
}
