//! The change feed's reader (docs/WATCH.md): the committed puts and deletes
//! of the store in `seq` order, read from the data files the writer wrote
//! (never from a rewritten one: a merge's or a repair's output), up to the
//! writer's published committed position, so that no record of a write
//! still in flight and no half of a batch is ever read.
//!
//! A [`Changes`] keeps only its place (a file, an offset in it, the next
//! seq to yield); each [`Changes::next_batch`] reads on from there. If a
//! merge deletes the file it is in, the history it was reading is gone and
//! it fails with [`Error::Compacted`].

use std::sync::{Arc, Weak};

use crate::datafile::{FILE_HEADER_LEN, FLAG_REWRITTEN, FileHeader, KIND_DATA, ReadHandle};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::record::{self, RecordKind};

/// Bytes read from a file at a time (a record larger than this is read
/// whole by itself), and at least that many if a read's byte budget is
/// small: a budget of 64 KiB reads about that much, not a whole chunk.
const CHUNK: usize = 1 << 20;
const MIN_CHUNK: usize = 64 << 10;

/// How much one read of changes gathers at most (a batch may overshoot).
#[derive(Debug, Clone, Copy)]
struct Limit {
    changes: usize,
    bytes: usize,
}

impl Limit {
    fn reached(self, changes: usize, bytes: usize) -> bool {
        changes >= self.changes || bytes >= self.bytes
    }
}

/// One committed change of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The write's sequence number: the key's version after it.
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// What happened to it.
    pub op: ChangeOp,
}

/// Where the change feed stands ([`crate::Bitcask::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The seq the next readable write will have: a watch "from now"
    /// starts here.
    pub next_seq: u64,
    /// The oldest seq still in the history (docs/WATCH.md): a watch from
    /// below it is [`Error::Compacted`].
    pub compacted_seq: u64,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// The key was set to `value`, expiring at `expires_at_ms` (Unix
    /// milliseconds) if any.
    Put {
        /// The value.
        value: Vec<u8>,
        /// When it expires, if it does.
        expires_at_ms: Option<u64>,
    },
    /// The key was deleted.
    Delete,
    /// The key was deleted because its time-to-live had passed (by the
    /// store's active expiry, `Options::expire_interval`).
    Expire,
}

/// A reader of the store's committed changes from a seq on (see the module
/// docs). From [`crate::Bitcask::changes`].
#[derive(Debug)]
pub struct Changes {
    /// Weak: a reader does not keep a closed store (its lock) alive.
    shared: Weak<Shared>,
    /// The writer's file being read, and where in it.
    file: u32,
    offset: u64,
    /// The lowest seq still to yield.
    next_seq: u64,
    /// The writer's files in log order as last listed (listed again only
    /// when the next file is not in it: a rotation since).
    files: Vec<(u64, u32)>,
}

/// The writer's files (not rewritten ones) in log order: `(seq_floor, id)`.
/// Floors and flags come from the space accounts (recovery, rotation and
/// merge note them there); a file not accounted yet has its header read.
fn writer_files(shared: &Shared) -> Result<Vec<(u64, u32)>> {
    let accounts = shared.accounts().snapshot();
    let mut files = Vec::new();
    for (id, handle) in shared.files().snapshot() {
        let (seq_floor, rewritten) = match accounts.get(&id) {
            Some(account) => (account.seq_floor, account.rewritten),
            None => {
                let header = header_of(&handle, id)?;
                (header.seq_floor, header.flags & FLAG_REWRITTEN != 0)
            }
        };
        if !rewritten {
            files.push((seq_floor, id));
        }
    }
    files.sort_unstable();
    Ok(files)
}

fn header_of(handle: &ReadHandle, id: u32) -> Result<FileHeader> {
    let mut head = [0u8; FILE_HEADER_LEN];
    handle.read_record(&mut head, 0)?;
    FileHeader::decode(&head, handle.path(), KIND_DATA, id)
}

impl Changes {
    /// A reader from `from_seq` on, or [`Error::Compacted`] if a merge may
    /// have dropped some of that history.
    pub(crate) fn new(shared: Arc<Shared>, from_seq: u64) -> Result<Self> {
        let compacted = shared.compacted_seq();
        if from_seq < compacted {
            return Err(Error::Compacted {
                compacted_seq: compacted,
            });
        }
        let files = writer_files(&shared)?;
        // The last file that starts at or before `from_seq` holds it (or
        // it is not written yet); before the first file, start there.
        let file = files
            .iter()
            .rev()
            .find(|(floor, _)| *floor <= from_seq)
            .or(files.first())
            .map_or(0, |(_, id)| *id);
        Ok(Self {
            shared: Arc::downgrade(&shared),
            file,
            offset: FILE_HEADER_LEN as u64,
            next_seq: from_seq,
            files,
        })
    }

    /// The lowest seq this reader has not yielded yet (where a watcher
    /// resumes).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next committed changes, at most about `max` (a batch is never
    /// split: its changes all come in one call), in seq order. Empty when
    /// the reader has caught up with the writer.
    /// [`Error::Closed`] once the store is closed.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Change>> {
        self.next_batch_within(max, usize::MAX)
    }

    /// [`Self::next_batch`], stopping also once the changes read hold about
    /// `max_bytes` of keys and values (a batch is still never split: one
    /// larger batch comes whole), so a reader's memory stays bounded
    /// whatever the values' sizes.
    pub fn next_batch_within(&mut self, max: usize, max_bytes: usize) -> Result<Vec<Change>> {
        let limit = Limit {
            changes: max,
            bytes: max_bytes,
        };
        let mut gathered = 0usize;
        let shared = self.shared.upgrade().ok_or(Error::Closed)?;
        if shared.is_closing() {
            return Err(Error::Closed);
        }
        let mut out = Vec::new();
        loop {
            let (committed_file, committed_offset) = shared.committed_position();
            let handle = shared.files().get(self.file);
            let Some(handle) = handle else {
                // A merge deleted the file: the history being read is gone.
                return Err(Error::Compacted {
                    compacted_seq: shared.compacted_seq(),
                });
            };
            let end = if self.file == committed_file {
                committed_offset
            } else {
                handle.len()?
            };
            let done = self.read_file(&handle, end, limit, &mut out, &mut gathered)?;
            if !done || self.file == committed_file || limit.reached(out.len(), gathered) {
                return Ok(out);
            }
            // The file is sealed and read to its end: on to the next
            // writer's file in log order, if any.
            let floor = match self.files.iter().find(|&&(_, id)| id == self.file) {
                Some(&(floor, _)) => floor,
                None => header_of(&handle, self.file)?.seq_floor,
            };
            let after = |files: &[(u64, u32)]| {
                files
                    .iter()
                    .copied()
                    .find(|&(f, id)| (f, id) > (floor, self.file))
            };
            let mut next = after(&self.files);
            if next.is_none() {
                self.files = writer_files(&shared)?;
                next = after(&self.files);
            }
            match next {
                Some((_, id)) => {
                    self.file = id;
                    self.offset = FILE_HEADER_LEN as u64;
                }
                None => return Ok(out),
            }
        }
    }

    /// Reads records of `handle` from the reader's offset up to `end`,
    /// appending changes to `out` and their keys' and values' bytes to
    /// `gathered`. True if it reached `end`, false if it stopped at a batch
    /// boundary with the limit reached.
    fn read_file(
        &mut self,
        handle: &ReadHandle,
        end: u64,
        limit: Limit,
        out: &mut Vec<Change>,
        gathered: &mut usize,
    ) -> Result<bool> {
        let mut buf = Vec::new();
        while self.offset < end {
            let want = usize::try_from(end - self.offset)
                .unwrap_or(usize::MAX)
                .min(CHUNK)
                .min(limit.bytes.saturating_add(MIN_CHUNK));
            buf.resize(want, 0);
            handle.read_record(&mut buf, self.offset)?;
            let mut at = 0usize;
            while at < buf.len() {
                let record = match record::read_from(&buf, at) {
                    Ok(record) => record,
                    // Cut by the chunk: read on from this record.
                    Err(bad) if bad.kind == crate::error::CorruptionKind::Truncated && at > 0 => {
                        break;
                    }
                    Err(bad) if bad.kind == crate::error::CorruptionKind::Truncated => {
                        // One record larger than a chunk: read it whole.
                        let len = bad
                            .header
                            .map_or(0, |h| usize::try_from(h.record_len()).unwrap_or(usize::MAX));
                        if len <= buf.len() || self.offset + len as u64 > end {
                            return Err(self.corrupt(handle, bad.kind));
                        }
                        buf.resize(len, 0);
                        handle.read_record(&mut buf, self.offset)?;
                        continue;
                    }
                    Err(bad) => return Err(self.corrupt(handle, bad.kind)),
                };
                let header = record.header;
                let len = header.record_len() as usize;
                if header.seq >= self.next_seq && header.kind != RecordKind::Mark {
                    let op = if header.kind.is_put() {
                        ChangeOp::Put {
                            value: record.value.to_vec(),
                            expires_at_ms: (header.expires_at_ms != 0)
                                .then_some(header.expires_at_ms),
                        }
                    } else if header.expires_at_ms != 0 {
                        ChangeOp::Expire
                    } else {
                        ChangeOp::Delete
                    };
                    *gathered = gathered.saturating_add(record.key.len() + record.value.len());
                    out.push(Change {
                        seq: header.seq,
                        key: record.key.to_vec(),
                        op,
                    });
                }
                at += len;
                self.offset += len as u64;
                if header.kind.commits() {
                    // Yielded up to here, batch included.
                    self.next_seq = self.next_seq.max(header.seq + 1);
                    if limit.reached(out.len(), *gathered) {
                        return Ok(self.offset >= end);
                    }
                }
            }
        }
        Ok(true)
    }

    fn corrupt(&self, handle: &ReadHandle, kind: crate::error::CorruptionKind) -> Error {
        Error::Corruption {
            path: handle.path().to_path_buf(),
            offset: self.offset,
            kind,
        }
    }
}
