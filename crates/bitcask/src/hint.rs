//! Hint files: a sealed data file's key-directory entries, so that open reads
//! a few bytes per key instead of every value.
//!
//! Layout (see `docs/FORMAT.md`, "Hint file"): a file header of kind 2, one
//! entry per record of the data file (seq, expiry, put/delete, key length,
//! offset, record length, key), and a trailer with the entry count, the
//! length of the data file described and a CRC-32C of everything before it.
//! A hint that does not verify, or describes a data file of another length,
//! is ignored and the data file is scanned instead.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::datafile::{
    self, Access, DataFile, FILE_HEADER_LEN, FileHeader, KIND_HINT, Scan, hint_file_name, tmp_name,
};
use crate::error::{IoContext, Result, disk_u32};

/// Fixed part of an entry: seq, expiry, kind, key length, offset, record length.
const ENTRY_FIXED_LEN: usize = 8 + 8 + 1 + 4 + 4 + 4;
/// Trailer: entry count, data file length, reserved, crc.
const TRAILER_LEN: usize = 8 + 8 + 4 + 4;

/// What a hint entry's record does: its `kind` byte (a batch's records are
/// listed as the plain put or delete they amount to once committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// Sets the key.
    Put = 0,
    /// Removes the key.
    Delete = 1,
    /// A mark (no key).
    Mark = 4,
}

impl EntryKind {
    /// The entry kind of a committed record of kind `kind`.
    pub(crate) fn of(kind: crate::record::RecordKind) -> Self {
        use crate::record::RecordKind;
        match kind {
            RecordKind::Put | RecordKind::BatchPut => Self::Put,
            RecordKind::Delete | RecordKind::BatchDelete => Self::Delete,
            RecordKind::Mark => Self::Mark,
        }
    }
}

/// One entry of a hint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HintEntry<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's expiry (0 = never).
    pub expires_at_ms: u64,
    /// Put, delete or mark.
    pub kind: EntryKind,
    /// The record's key.
    pub key: &'a [u8],
    /// Offset of the record in the data file.
    pub offset: u32,
    /// Length of the whole record.
    pub len: u32,
}

/// Writes a hint file under its `.tmp` name; [`Self::finish`] publishes it.
pub(crate) struct HintWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    out: BufWriter<crate::disk::Appender>,
    crc: u32,
    count: u64,
}

impl HintWriter {
    /// Starts the hint of the data file whose header is `data_header`.
    pub(crate) fn create(dir: &Path, data_header: &FileHeader) -> Result<Self> {
        let final_path = dir.join(hint_file_name(data_header.file_id));
        let tmp_path = dir.join(tmp_name(&hint_file_name(data_header.file_id)));
        let file = crate::disk::create(&tmp_path).at(&tmp_path)?;
        let mut writer = Self {
            tmp_path,
            final_path,
            out: BufWriter::with_capacity(1 << 16, crate::disk::Appender::new(file)),
            crc: 0,
            count: 0,
        };
        let header = FileHeader {
            file_kind: KIND_HINT,
            ..*data_header
        };
        writer.write(&header.encode())?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crate::crc::append(self.crc, bytes);
        self.out.write_all(bytes).at(&self.tmp_path)
    }

    /// Adds the entry of one record.
    pub(crate) fn add(&mut self, entry: &HintEntry<'_>) -> Result<()> {
        let mut fixed = [0u8; ENTRY_FIXED_LEN];
        fixed[0..8].copy_from_slice(&entry.seq.to_le_bytes());
        fixed[8..16].copy_from_slice(&entry.expires_at_ms.to_le_bytes());
        fixed[16] = entry.kind as u8;
        // Keys are at most 1 GiB (options), so the length fits.
        let key_len = disk_u32(entry.key.len(), "a key longer than a hint entry holds")?;
        fixed[17..21].copy_from_slice(&key_len.to_le_bytes());
        fixed[21..25].copy_from_slice(&entry.offset.to_le_bytes());
        fixed[25..29].copy_from_slice(&entry.len.to_le_bytes());
        self.write(&fixed)?;
        self.write(entry.key)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer, fsyncs, and renames the hint to its final name.
    /// The caller fsyncs the directory.
    pub(crate) fn finish(mut self, data_file_len: u64) -> Result<()> {
        let mut trailer = [0u8; TRAILER_LEN - 4];
        trailer[0..8].copy_from_slice(&self.count.to_le_bytes());
        trailer[8..16].copy_from_slice(&data_file_len.to_le_bytes());
        self.write(&trailer)?;
        let crc = self.crc;
        self.out.write_all(&crc.to_le_bytes()).at(&self.tmp_path)?;
        let out = self
            .out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .at(&self.tmp_path)?;
        crate::disk::sync_all(out.file()).at(&self.tmp_path)?;
        crate::disk::rename(&self.tmp_path, &self.final_path).at(&self.final_path)
    }

    /// Removes the unfinished hint (best effort; the next open removes a
    /// leftover `.tmp` file too).
    pub(crate) fn abandon(self) {
        let _ = crate::disk::remove(&self.tmp_path);
    }
}

/// A hint file read whole and verified against its data file.
#[derive(Debug)]
pub(crate) struct Hint {
    bytes: Vec<u8>,
    /// What the verifying pass saw, so that recovery needs no pass of its
    /// own for it.
    summary: Summary,
}

/// Facts about a hint's entries, gathered while verifying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The highest sequence number of any entry (0 for none).
    pub max_seq: u64,
    /// The newest mark's entry: seq, offset and record length.
    pub newest_mark: Option<(u64, u32, u32)>,
    /// Where each part of [`PART_ENTRIES`] entries starts, so that threads
    /// can read parts of one hint side by side.
    part_starts: Vec<u64>,
    /// How many entries the hint holds (puts, deletes and marks).
    pub entries: u64,
}

/// Entries in one part of a hint (the last part may hold fewer).
const PART_ENTRIES: u64 = 1 << 16;

impl Hint {
    /// Reads the hint of the data file with header `data_header` and length
    /// `data_len`. `None` if there is none or it does not verify (the caller
    /// scans the data file instead).
    pub(crate) fn load(dir: &Path, data_header: &FileHeader, data_len: u64) -> Option<Self> {
        Self::load_into(dir, data_header, data_len, Vec::new()).ok()
    }

    /// [`Self::load`], reading into `buf` (whose memory is reused: a store
    /// of many files then faults in the pages of one hint buffer, not of
    /// one per file). Gives `buf` back if there is no usable hint.
    pub(crate) fn load_into(
        dir: &Path,
        data_header: &FileHeader,
        data_len: u64,
        mut buf: Vec<u8>,
    ) -> Result<Self, Vec<u8>> {
        use std::io::Read;
        let path = dir.join(hint_file_name(data_header.file_id));
        buf.clear();
        match std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(buf),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read hint file; scanning its data file");
                return Err(buf);
            }
        }
        let mut hint = Self {
            bytes: buf,
            summary: Summary::default(),
        };
        match hint.verify(&path, data_header, data_len) {
            Ok(summary) => {
                hint.summary = summary;
                Ok(hint)
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "ignoring hint file; scanning its data file");
                Err(hint.bytes)
            }
        }
    }

    /// The hint's memory, for the next [`Self::load_into`].
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// A hint from `bytes`, if it verifies (the fuzz target's way in).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_bytes_for_fuzzing(
        bytes: Vec<u8>,
        data_header: &FileHeader,
        data_len: u64,
    ) -> Option<Self> {
        let mut hint = Self {
            bytes,
            summary: Summary::default(),
        };
        hint.summary = hint
            .verify(Path::new("fuzz.hint"), data_header, data_len)
            .ok()?;
        Some(hint)
    }

    fn verify(
        &self,
        path: &Path,
        data_header: &FileHeader,
        data_len: u64,
    ) -> Result<Summary, &'static str> {
        let b = &self.bytes;
        if b.len() < FILE_HEADER_LEN + TRAILER_LEN {
            return Err("too short");
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "too short")?);
        if crate::crc::crc32c(body) != crc {
            return Err("checksum mismatch");
        }
        let mut head = [0u8; FILE_HEADER_LEN];
        head.copy_from_slice(&b[..FILE_HEADER_LEN]);
        let header = FileHeader::decode(&head, path, KIND_HINT, data_header.file_id)
            .map_err(|_| "bad header")?;
        if header.seq_floor != data_header.seq_floor {
            return Err("describes another data file");
        }
        let trailer = &body[body.len() - (TRAILER_LEN - 4)..];
        let count = u64::from_le_bytes(trailer[0..8].try_into().map_err(|_| "bad trailer")?);
        let described_len =
            u64::from_le_bytes(trailer[8..16].try_into().map_err(|_| "bad trailer")?);
        if described_len != data_len {
            return Err("data file length differs");
        }
        let mut seen = 0u64;
        let mut summary = Summary::default();
        for (at, entry) in self.parse_from(FILE_HEADER_LEN) {
            let entry = entry.ok_or("malformed entry")?;
            if u64::from(entry.offset) + u64::from(entry.len) > data_len {
                return Err("entry points past the data file");
            }
            if seen.is_multiple_of(PART_ENTRIES) {
                summary.part_starts.push(at);
            }
            seen += 1;
            summary.max_seq = summary.max_seq.max(entry.seq);
            if entry.kind == EntryKind::Mark
                && summary.newest_mark.is_none_or(|(seq, ..)| entry.seq > seq)
            {
                summary.newest_mark = Some((entry.seq, entry.offset, entry.len));
            }
        }
        if seen != count {
            return Err("entry count differs");
        }
        summary.entries = seen;
        Ok(summary)
    }

    /// What verifying the entries found.
    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The hint file's length in bytes.
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Number of parts the entries can be read in ([`Self::entries_in`]).
    pub(crate) fn parts(&self) -> usize {
        self.summary.part_starts.len()
    }

    /// The entries, in data-file order. [`Self::load`] verified that every
    /// entry parses. (Recovery reads them in parts: [`Self::entries_in`].)
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn entries(&self) -> impl Iterator<Item = HintEntry<'_>> {
        self.parse().map_while(|entry| entry)
    }

    /// The entries of part `part` (of [`Self::parts`]) with their
    /// positions in the hint, for [`Self::entry_at`]. Parts in order list
    /// every entry once, in data-file order.
    pub(crate) fn entries_in(&self, part: usize) -> impl Iterator<Item = (u64, HintEntry<'_>)> {
        let starts = &self.summary.part_starts;
        let start = starts.get(part).copied().unwrap_or(u64::MAX);
        let end = starts.get(part + 1).copied().unwrap_or(u64::MAX);
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        self.parse_from(start)
            .map_while(|(at, entry)| Some((at, entry?)))
            .take_while(move |&(at, _)| at < end)
    }

    /// The entry at a position [`Self::entries_in`] gave.
    ///
    /// # Panics
    /// If `at` is not such a position (a bug in the caller).
    pub(crate) fn entry_at(&self, at: u64) -> HintEntry<'_> {
        let rest = usize::try_from(at)
            .ok()
            .and_then(|at| self.bytes.get(at..))
            .and_then(parse_entry);
        match rest {
            Some((entry, _)) => entry,
            None => panic!("no hint entry at {at}"),
        }
    }

    /// Asks the CPU to start loading the entry at `at` into its cache.
    pub(crate) fn prefetch(&self, at: u64) {
        if let Some(entry) = usize::try_from(at).ok().and_then(|at| self.bytes.get(at..)) {
            crate::prefetch::read(entry);
        }
    }

    /// Parses the entries; `None` marks a malformed one (and ends the list).
    #[cfg(any(test, feature = "fuzzing"))]
    fn parse(&self) -> impl Iterator<Item = Option<HintEntry<'_>>> {
        self.parse_from(FILE_HEADER_LEN).map(|(_, entry)| entry)
    }

    /// Parses the entries from position `start` (an entry's first byte, or
    /// past the end for none), with each entry's position.
    fn parse_from(&self, start: usize) -> impl Iterator<Item = (u64, Option<HintEntry<'_>>)> {
        let end = self.bytes.len().saturating_sub(TRAILER_LEN);
        let mut at = start;
        let mut rest = self.bytes.get(start..end).unwrap_or(&[]);
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let here = at as u64;
            match parse_entry(rest) {
                Some((entry, tail)) => {
                    at += rest.len() - tail.len();
                    rest = tail;
                    Some((here, Some(entry)))
                }
                None => {
                    rest = &[];
                    Some((here, None))
                }
            }
        })
    }
}

fn parse_entry(b: &[u8]) -> Option<(HintEntry<'_>, &[u8])> {
    let (fixed, rest) = b.split_first_chunk::<ENTRY_FIXED_LEN>()?;
    let u32_at =
        |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    let u64_at = |at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&fixed[at..at + 8]);
        u64::from_le_bytes(x)
    };
    let kind = match fixed[16] {
        0 => EntryKind::Put,
        1 => EntryKind::Delete,
        4 => EntryKind::Mark,
        _ => return None,
    };
    let key_len = u32_at(17) as usize;
    if rest.len() < key_len {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    Some((
        HintEntry {
            seq: u64_at(0),
            expires_at_ms: u64_at(8),
            kind,
            key,
            offset: u32_at(21),
            len: u32_at(25),
        },
        rest,
    ))
}

/// Writes the hint file of sealed data file `id` by scanning it, and fsyncs
/// the directory. A data file that does not scan cleanly gets no hint (open
/// will scan it and report what is wrong).
pub(crate) fn write_for_data_file(dir: &Path, id: u32) -> Result<()> {
    let file = DataFile::open(dir, id, Access::Read)?;
    let header = file.read_header()?;
    let mut writer = HintWriter::create(dir, &header)?;
    let mut scanner = file.scanner()?;
    let written = loop {
        match scanner.next_record() {
            Ok(Scan::Record(rec)) => {
                // A sealed file is below 4 GiB (options).
                let placed = disk_u32(rec.offset, "a data file past 4 GiB").and_then(|offset| {
                    Ok((
                        offset,
                        disk_u32(rec.header.record_len(), "a record past 4 GiB")?,
                    ))
                });
                let (offset, len) = match placed {
                    Ok(placed) => placed,
                    Err(e) => break Err(e),
                };
                let entry = HintEntry {
                    seq: rec.header.seq,
                    expires_at_ms: rec.header.expires_at_ms,
                    kind: EntryKind::of(rec.header.kind),
                    key: rec.key,
                    offset,
                    len,
                };
                if let Err(e) = writer.add(&entry) {
                    break Err(e);
                }
            }
            Ok(Scan::End) => break Ok(scanner.scanned_len()),
            Ok(Scan::Stop(stop)) => {
                tracing::warn!(path = %file.path.display(), offset = stop.offset, kind = %stop.kind,
                    "not writing a hint for a data file that does not scan cleanly");
                writer.abandon();
                return Ok(());
            }
            Err(e) => break Err(e),
        }
    };
    match written {
        Ok(len) => {
            writer.finish(len)?;
            datafile::sync_dir(dir)
        }
        Err(e) => {
            writer.abandon();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datafile::KIND_DATA;

    fn header(id: u32) -> FileHeader {
        FileHeader {
            file_kind: KIND_DATA,
            file_id: id,
            seq_floor: 10,
            flags: 0,
        }
    }

    fn entry(key: &[u8], seq: u64, offset: u32) -> HintEntry<'_> {
        HintEntry {
            seq,
            expires_at_ms: seq * 2,
            kind: if seq.is_multiple_of(2) {
                EntryKind::Put
            } else {
                EntryKind::Delete
            },
            key,
            offset,
            len: 40,
        }
    }

    fn write_hint(dir: &Path) -> Vec<u8> {
        let mut w = HintWriter::create(dir, &header(3)).expect("create");
        w.add(&entry(b"alpha", 10, 32)).expect("add");
        w.add(&entry(b"", 11, 72)).expect("add");
        w.add(&entry(b"gamma", 12, 112)).expect("add");
        w.finish(152).expect("finish");
        std::fs::read(dir.join(hint_file_name(3))).expect("read")
    }

    #[test]
    fn a_hint_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_hint(dir.path());
        assert!(!dir.path().join(tmp_name(&hint_file_name(3))).exists());
        let hint = Hint::load(dir.path(), &header(3), 152).expect("valid hint");
        let got: Vec<HintEntry<'_>> = hint.entries().collect();
        assert_eq!(
            got,
            vec![
                entry(b"alpha", 10, 32),
                entry(b"", 11, 72),
                entry(b"gamma", 12, 112)
            ]
        );
    }

    #[test]
    fn parts_list_every_entry_once_in_order_with_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = HintWriter::create(dir.path(), &header(3)).expect("create");
        let n = 2 * PART_ENTRIES + 5;
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("key{i}").into_bytes()).collect();
        let mut mark = None;
        for (i, key) in keys.iter().enumerate() {
            let i = i as u32;
            let mut e = entry(key, 10 + u64::from(i), i * 40);
            if i % 1_000 == 7 {
                e.kind = EntryKind::Mark;
                mark = Some((e.seq, e.offset, e.len));
            }
            w.add(&e).expect("add");
        }
        let data_len = n * 40;
        w.finish(data_len).expect("finish");
        let hint = Hint::load(dir.path(), &header(3), data_len).expect("valid hint");
        assert_eq!(hint.parts(), 3);
        let all: Vec<HintEntry<'_>> = hint.entries().collect();
        let mut by_parts = Vec::new();
        for part in 0..hint.parts() {
            for (at, e) in hint.entries_in(part) {
                assert_eq!(hint.entry_at(at), e, "position {at}");
                by_parts.push(e);
            }
        }
        assert_eq!(by_parts, all);
        assert_eq!(all.len() as u64, n);
        assert_eq!(hint.entries_in(3).count(), 0, "no part past the last");
        assert_eq!(hint.summary().max_seq, 10 + n - 1);
        assert_eq!(hint.summary().newest_mark, mark);
    }

    #[test]
    fn a_hint_for_another_file_or_length_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_hint(dir.path());
        assert!(Hint::load(dir.path(), &header(3), 153).is_none(), "length");
        let other = FileHeader {
            seq_floor: 11,
            ..header(3)
        };
        assert!(Hint::load(dir.path(), &other, 152).is_none(), "seq_floor");
        assert!(
            Hint::load(dir.path(), &header(4), 152).is_none(),
            "no such hint"
        );
    }

    #[test]
    fn every_damaged_or_cut_hint_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write_hint(dir.path());
        let path = dir.path().join(hint_file_name(3));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&path, &bad).expect("write");
            assert!(
                Hint::load(dir.path(), &header(3), 152).is_none(),
                "flip at {i}"
            );
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).expect("write");
            assert!(
                Hint::load(dir.path(), &header(3), 152).is_none(),
                "cut at {cut}"
            );
        }
    }
}
