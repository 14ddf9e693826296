//! The journal: an append-only log of numbered records in segment files,
//! for the cluster's raft log. The format and every crash protocol are in
//! `docs/FORMAT.md` ("Journal"); this module implements them.
//!
//! A [`Journal`] holds the records from its *floor* (the first index kept)
//! to its last. [`Journal::append`] writes; nothing is durable until
//! [`Journal::sync`] (or a [`Syncer`] taken after the append), so several
//! appends can share one fsync. [`Journal::truncate_after`] and
//! [`Journal::purge_through`] are durable when they return. Every change
//! to the files goes through `disk.rs`, so the simulated disk of the
//! power-loss tests covers the journal as it covers the store.

mod segment;
mod state_file;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use segment::MAX_PAYLOAD;
pub use state_file::{MAX_STATE_LEN, read_state_file, write_state_file};

use crate::disk;
use crate::error::{CorruptionKind, Error, IoContext, Result};

/// Default size at which the newest segment is sealed and another begun.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// The state file that holds the floor.
const FLOOR_FILE: &str = "FLOOR";

/// An open journal directory (see the module docs). One writer: the
/// directory must not be opened twice at once (the cluster holds its node
/// directory's lock).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segment_size: u64,
    /// The first index kept.
    floor: u64,
    /// Ascending by first index; the last one is appended to.
    segments: Vec<Segment>,
    /// Set when a failed append could not be undone: appends are refused
    /// until the journal is reopened.
    poisoned: bool,
    buf: Vec<u8>,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Where each record starts (record `i` has index `first + i`).
    offsets: Vec<u64>,
    /// Where the last record ends.
    end: u64,
}

impl Segment {
    /// The index after this segment's last record.
    fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }
}

/// Makes durable the appends made before it was taken
/// ([`Journal::syncer`]), without holding the journal: a caller that keeps
/// the journal behind a lock syncs with this after releasing it.
#[derive(Debug, Clone)]
pub struct Syncer {
    file: Arc<File>,
    path: PathBuf,
}

impl Syncer {
    /// `fdatasync` of the segment the appends went to.
    pub fn sync(&self) -> Result<()> {
        disk::sync_data(&self.file).at(&self.path)
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, with the default
    /// segment size.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, DEFAULT_SEGMENT_SIZE)
    }

    /// Opens (creating if needed) the journal in `dir`, sealing segments at
    /// `segment_size` bytes. Recovers as `docs/FORMAT.md` says ("Open"):
    /// deletes `.tmp` files and segments below the floor, checks every
    /// segment, cuts a torn tail off the newest (keeping the bytes in a
    /// `.torn` file).
    pub fn open_with(dir: impl AsRef<Path>, segment_size: u64) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        disk::create_dir_durably(&dir).at(&dir)?;
        let mut firsts = Vec::new();
        let mut leftovers = false;
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let path = entry.path();
                tracing::info!(path = %path.display(), "removing a journal file left unfinished by a crash");
                disk::remove(&path).at(&path)?;
                leftovers = true;
            } else if let Some(first) = segment::parse_file_name(name) {
                firsts.push(first);
            }
        }
        if leftovers {
            disk::sync_dir(&dir).at(&dir)?;
        }
        firsts.sort_unstable();
        let floor = match read_state_file(&dir, FLOOR_FILE)? {
            Some(bytes) => decode_floor(&bytes).ok_or_else(|| Error::Corruption {
                path: dir.join(FLOOR_FILE),
                offset: 0,
                kind: CorruptionKind::Truncated,
            })?,
            None => 1,
        };
        let mut journal = Self {
            dir,
            segment_size: segment_size.max(segment::HEADER_LEN as u64 + 1),
            floor,
            segments: Vec::new(),
            poisoned: false,
            buf: Vec::new(),
        };
        // Segments whose records are all below the floor (a purge cut short).
        let below: Vec<u64> = firsts
            .windows(2)
            .filter(|w| w[1] <= floor)
            .map(|w| w[0])
            .collect();
        firsts.retain(|first| !below.contains(first));
        journal.remove_segments(&below)?;
        let count = firsts.len();
        for (n, first) in firsts.into_iter().enumerate() {
            let segment = journal.load_segment(first, n + 1 == count)?;
            let expected = match journal.segments.last() {
                Some(prev) => prev.next(),
                None => first.min(floor),
            };
            if segment.first != expected {
                return Err(Error::Corruption {
                    path: segment.path,
                    offset: 0,
                    kind: CorruptionKind::OutOfOrder,
                });
            }
            journal.segments.push(segment);
        }
        // A purge past the last record leaves a newest segment that is all
        // below the floor too.
        if journal
            .segments
            .last()
            .is_some_and(|s| s.next() <= floor && s.first < floor)
        {
            let all: Vec<u64> = journal.segments.drain(..).map(|s| s.first).collect();
            journal.remove_segments(&all)?;
        }
        Ok(journal)
    }

    /// Reads and checks segment `first`; cuts a torn tail if it is the newest.
    fn load_segment(&self, first: u64, newest: bool) -> Result<Segment> {
        let path = self.dir.join(segment::file_name(first));
        let bytes = std::fs::read(&path).at(&path)?;
        segment::check_header(&bytes, &path, first)?;
        let mut offsets = Vec::new();
        let mut at = segment::HEADER_LEN;
        let torn = loop {
            if at == bytes.len() {
                break None;
            }
            match segment::parse_record(&bytes, at, first + offsets.len() as u64) {
                Ok((_, end)) => {
                    offsets.push(at as u64);
                    at = end;
                }
                Err(kind) => break Some(kind),
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        if let Some(kind) = torn {
            if !newest {
                return Err(Error::Corruption {
                    path,
                    offset: at as u64,
                    kind,
                });
            }
            self.cut_torn_tail(&file, &path, &bytes, at, kind)?;
        }
        Ok(Segment {
            first,
            path,
            file: Arc::new(file),
            offsets,
            end: at as u64,
        })
    }

    /// Keeps the bytes of a torn tail in a `.torn` file (unless all zero),
    /// then cuts them off the segment.
    fn cut_torn_tail(
        &self,
        file: &File,
        path: &Path,
        bytes: &[u8],
        at: usize,
        kind: CorruptionKind,
    ) -> Result<()> {
        let tail = &bytes[at..];
        if tail.iter().any(|&b| b != 0) {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("segment");
            let keep = self.dir.join(format!("{stem}-{at}.torn"));
            let copy = disk::create(&keep).at(&keep)?;
            disk::write_at(&copy, tail, 0).at(&keep)?;
            disk::sync_all(&copy).at(&keep)?;
            disk::sync_dir(&self.dir).at(&self.dir)?;
            tracing::warn!(path = %path.display(), offset = at, dropped_bytes = tail.len(),
                %kind, kept_in = %keep.display(), "cut a torn tail off the journal");
        }
        disk::set_len(file, at as u64).at(path)?;
        disk::sync_all(file).at(path)
    }

    /// Removes the segments that start at `firsts`, in that order, and
    /// fsyncs the directory once.
    fn remove_segments(&self, firsts: &[u64]) -> Result<()> {
        for &first in firsts {
            let path = self.dir.join(segment::file_name(first));
            disk::remove(&path).at(&path)?;
        }
        if !firsts.is_empty() {
            disk::sync_dir(&self.dir).at(&self.dir)?;
        }
        Ok(())
    }

    /// The first index kept (1 until a purge).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The index the next append must use.
    pub fn next_index(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.floor, |s| s.next().max(self.floor))
    }

    /// The index of the last record, if any record at or above the floor
    /// exists.
    pub fn last_index(&self) -> Option<u64> {
        let next = self.next_index();
        (next > self.floor).then(|| next - 1)
    }

    /// Appends `payloads` under consecutive indexes starting at `first`,
    /// which must be [`Self::next_index`], with one write. Not durable until
    /// a sync. If the write fails it is undone (the journal is as before);
    /// if undoing fails too, every later append fails until a reopen.
    pub fn append<'a>(
        &mut self,
        first: u64,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if first != self.next_index() {
            return Err(Error::InvalidArgument {
                reason: "a journal append must start at the next index",
            });
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut lens = Vec::new();
        for payload in payloads {
            if payload.len() > MAX_PAYLOAD {
                self.buf = buf;
                return Err(Error::InvalidArgument {
                    reason: "a journal record holds at most 256 MiB",
                });
            }
            if let Err(e) = segment::encode_record(&mut buf, first + lens.len() as u64, payload) {
                self.buf = buf;
                return Err(e);
            }
            lens.push(segment::record_len(payload.len()));
        }
        let result = self.write_records(first, &buf, &lens);
        self.buf = buf;
        result
    }

    fn write_records(&mut self, first: u64, buf: &[u8], lens: &[u64]) -> Result<()> {
        if lens.is_empty() {
            return Ok(());
        }
        let rotate = match self.segments.last() {
            None => true,
            // A segment emptied by a truncation below the floor's level
            // keeps its name; its first index is still the next one.
            Some(s) => s.end >= self.segment_size && !s.offsets.is_empty(),
        };
        if rotate {
            self.start_segment(first)?;
        }
        // `start_segment` above leaves one.
        let Some(active) = self.segments.last_mut() else {
            return Err(Error::InvalidArgument {
                reason: "the journal has no segment to append to",
            });
        };
        let start = active.end;
        if let Err(source) = disk::write_at(&active.file, buf, start) {
            if let Err(cut) = disk::set_len(&active.file, start) {
                tracing::error!(path = %active.path.display(), error = %cut,
                    "could not undo a failed journal append; appends refused until reopened");
                self.poisoned = true;
            }
            return Err(Error::Io {
                path: active.path.clone(),
                source,
            });
        }
        let mut at = start;
        for len in lens {
            active.offsets.push(at);
            at += len;
        }
        active.end = at;
        Ok(())
    }

    /// Seals the newest segment (fsync) and creates the next one, starting
    /// at `first`: written as `.tmp`, fsynced, renamed, directory fsynced.
    fn start_segment(&mut self, first: u64) -> Result<()> {
        if let Some(active) = self.segments.last() {
            disk::sync_all(&active.file).at(&active.path)?;
        }
        let path = self.dir.join(segment::file_name(first));
        let tmp = self.dir.join(format!("{}.tmp", segment::file_name(first)));
        let file = disk::create(&tmp).at(&tmp)?;
        disk::write_at(&file, &segment::encode_header(first), 0).at(&tmp)?;
        disk::sync_all(&file).at(&tmp)?;
        disk::rename(&tmp, &path).at(&path)?;
        disk::sync_dir(&self.dir).at(&self.dir)?;
        self.segments.push(Segment {
            first,
            path,
            file: Arc::new(file),
            offsets: Vec::new(),
            end: segment::HEADER_LEN as u64,
        });
        Ok(())
    }

    /// Makes every append so far durable.
    pub fn sync(&self) -> Result<()> {
        match self.syncer() {
            Some(syncer) => syncer.sync(),
            None => Ok(()),
        }
    }

    /// A handle that makes the appends made so far durable, to use
    /// without holding the journal (`None` when there is no segment yet:
    /// nothing to sync). Rotation fsyncs a sealed segment itself, so
    /// syncing the newest segment covers every earlier append.
    pub fn syncer(&self) -> Option<Syncer> {
        self.segments.last().map(|s| Syncer {
            file: Arc::clone(&s.file),
            path: s.path.clone(),
        })
    }

    /// The payload of record `index`, verified.
    pub fn read(&self, index: u64) -> Result<Vec<u8>> {
        let mut out = self.read_range(index, index + 1)?;
        out.pop().ok_or(Error::InvalidArgument {
            reason: "no journal record at that index",
        })
    }

    /// The payloads of records `from..to` (clamped to what the journal
    /// holds), verified, one read per segment.
    pub fn read_range(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        let from = from.max(self.floor);
        let to = to.min(self.next_index());
        let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
        let mut index = from;
        while index < to {
            let Some(seg) = self
                .segments
                .iter()
                .rev()
                .find(|s| s.first <= index && index < s.next())
            else {
                break;
            };
            let upto = to.min(seg.next());
            let start = seg.offsets[(index - seg.first) as usize];
            let end = match seg.offsets.get((upto - seg.first) as usize) {
                Some(&offset) => offset,
                None => seg.end,
            };
            let mut bytes = vec![0u8; (end - start) as usize];
            seg.file.read_exact_at(&mut bytes, start).at(&seg.path)?;
            let mut at = 0;
            for i in index..upto {
                let (payload, next) =
                    segment::parse_record(&bytes, at, i).map_err(|kind| Error::Corruption {
                        path: seg.path.clone(),
                        offset: start + at as u64,
                        kind,
                    })?;
                out.push(bytes[payload].to_vec());
                at = next;
            }
            index = upto;
        }
        Ok(out)
    }

    /// Removes every record after `last_kept` (none if `last_kept` is at
    /// or past the last record), durably: segments that start after it
    /// are deleted, newest first, each deletion fsynced, then the segment
    /// holding it is cut and fsynced. `last_kept` may not be below the
    /// floor minus one.
    pub fn truncate_after(&mut self, last_kept: u64) -> Result<()> {
        if last_kept.saturating_add(1) < self.floor {
            return Err(Error::InvalidArgument {
                reason: "cannot truncate a journal below its floor",
            });
        }
        if last_kept.saturating_add(1) >= self.next_index() {
            return Ok(());
        }
        while let Some(newest) = self.segments.last() {
            if newest.first <= last_kept {
                break;
            }
            if self.segments.len() == 1 {
                // Its first index is `last_kept + 1` (the oldest segment
                // holds the floor): emptied to its header below, it keeps
                // its name.
                break;
            }
            let path = newest.path.clone();
            disk::remove(&path).at(&path)?;
            disk::sync_dir(&self.dir).at(&self.dir)?;
            self.segments.pop();
        }
        if let Some(seg) = self.segments.last_mut() {
            let keep = usize::try_from(last_kept.saturating_add(1).saturating_sub(seg.first))
                .unwrap_or(usize::MAX)
                .min(seg.offsets.len());
            if keep < seg.offsets.len() {
                let cut_at = seg.offsets[keep];
                disk::set_len(&seg.file, cut_at).at(&seg.path)?;
                disk::sync_all(&seg.file).at(&seg.path)?;
                seg.offsets.truncate(keep);
                seg.end = cut_at;
            }
        }
        Ok(())
    }

    /// Lets go of every record up to `last_purged`, durably: the floor
    /// becomes `last_purged + 1` (written first), then the segments whose
    /// records are all below it are deleted. Purging past the last record
    /// empties the journal; the next append then starts at the floor.
    pub fn purge_through(&mut self, last_purged: u64) -> Result<()> {
        let floor = last_purged.saturating_add(1);
        if floor <= self.floor {
            return Ok(());
        }
        write_state_file(&self.dir, FLOOR_FILE, &floor.to_le_bytes())?;
        self.floor = floor;
        let mut below = 0;
        while below < self.segments.len() {
            let all_below = match self.segments.get(below + 1) {
                Some(next) => next.first <= floor,
                None => self.segments[below].next() <= floor,
            };
            if !all_below {
                break;
            }
            below += 1;
        }
        let removed: Vec<u64> = self.segments.drain(..below).map(|s| s.first).collect();
        self.remove_segments(&removed)
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn decode_floor(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?)).filter(|&f| f >= 1)
}

#[cfg(test)]
mod power_loss;
#[cfg(test)]
mod tests;
