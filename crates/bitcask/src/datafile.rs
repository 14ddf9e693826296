//! Data files: naming, the 32-byte file header, positioned reads and writes,
//! and the sequential record scanner used by recovery.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::readmap::ReadMap;
use crate::record::{self, HEADER_LEN as RECORD_HEADER_LEN, RecordHeader};
use crate::writemap::WriteMap;

/// The magic bytes every data file starts with.
pub(crate) const MAGIC: [u8; 8] = *b"BITCASK\0";
/// The on-disk format version this build writes.
pub(crate) const FORMAT_VERSION: u16 = 4;
/// The oldest format version this build reads (each version's files are a
/// subset of the next one's: version 1 has no batch records and no merge
/// outputs, version 2 no marks, version 3 no header flags).
const OLDEST_READABLE_VERSION: u16 = 1;
/// `file_kind` of a data file.
pub(crate) const KIND_DATA: u16 = 1;
/// `file_kind` of a hint file.
pub(crate) const KIND_HINT: u16 = 2;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const KIND_AT: usize = VERSION_AT + 2;
const FILE_ID_AT: usize = KIND_AT + 2;
const SEQ_FLOOR_AT: usize = FILE_ID_AT + 4;
const FLAGS_AT: usize = SEQ_FLOOR_AT + 8;
const HEADER_CRC_AT: usize = FLAGS_AT + 4;
/// Header flag (format version 4): the file is a rewrite (a merge's or a
/// repair's output), holding copies of some records of its seq range, not
/// every write of it: the change feed never reads it (docs/WATCH.md).
pub(crate) const FLAG_REWRITTEN: u32 = 1;
/// Every flag this build knows; a header with another is corrupt.
const KNOWN_FLAGS: u32 = FLAG_REWRITTEN;
/// Length of the file header in bytes.
pub(crate) const FILE_HEADER_LEN: usize = HEADER_CRC_AT + 4;

/// Suffix of data file names.
const DATA_SUFFIX: &str = ".data";
/// Suffix of hint file names.
const HINT_SUFFIX: &str = ".hint";
/// Suffix added to a file's final name while it is being written.
const TMP_SUFFIX: &str = ".tmp";

/// What a data file is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading only (sealed files, merge, scrub, check, read-only opens).
    Read,
    /// Reading and appending (the active file of a writable store).
    Append,
}

/// Name of data file `id`: ten zero-padded decimal digits and `.data`.
pub(crate) fn data_file_name(id: u32) -> String {
    format!("{id:010}{DATA_SUFFIX}")
}

/// Name of the hint file of data file `id`.
pub(crate) fn hint_file_name(id: u32) -> String {
    format!("{id:010}{HINT_SUFFIX}")
}

/// The name a file has while it is written: its final name and `.tmp`.
pub(crate) fn tmp_name(final_name: &str) -> String {
    format!("{final_name}{TMP_SUFFIX}")
}

/// Parses a data file name back into its id; `None` for any other file.
pub(crate) fn parse_data_file_name(name: &str) -> Option<u32> {
    parse_id(name.strip_suffix(DATA_SUFFIX)?)
}

fn parse_id(digits: &str) -> Option<u32> {
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the engine's files in a store directory are.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    /// Ids of data files, ascending.
    pub data: Vec<u32>,
    /// Ids of hint files, ascending.
    pub hints: Vec<u32>,
    /// Files left half-written by a crash (`*.data.tmp`, `*.hint.tmp`).
    pub tmp: Vec<PathBuf>,
    /// The highest file number any of those files carries.
    pub max_id: u32,
}

/// Lists the engine's files in `dir`. Other files are ignored.
pub(crate) fn list_dir(dir: &Path) -> Result<DirListing> {
    let mut listing = DirListing::default();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = if let Some(id) = parse_data_file_name(name) {
            listing.data.push(id);
            id
        } else if let Some(id) = name.strip_suffix(HINT_SUFFIX).and_then(parse_id) {
            listing.hints.push(id);
            id
        } else if let Some(id) = name
            .strip_suffix(TMP_SUFFIX)
            .and_then(|n| {
                n.strip_suffix(DATA_SUFFIX)
                    .or_else(|| n.strip_suffix(HINT_SUFFIX))
            })
            .and_then(parse_id)
        {
            listing.tmp.push(entry.path());
            id
        } else {
            continue;
        };
        listing.max_id = listing.max_id.max(id);
    }
    listing.data.sort_unstable();
    listing.hints.sort_unstable();
    Ok(listing)
}

/// The decoded file header (of a data file or, with `file_kind` 2, a hint file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// [`KIND_DATA`] or [`KIND_HINT`].
    pub file_kind: u16,
    /// The file's id, as in its name.
    pub file_id: u32,
    /// Every seq handed out before this file was created is below this.
    pub seq_floor: u64,
    /// [`FLAG_REWRITTEN`] or 0 (always 0 in files before version 4).
    pub flags: u32,
}

impl FileHeader {
    /// Encodes the header.
    pub(crate) fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        b[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
        b[VERSION_AT..KIND_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[KIND_AT..FILE_ID_AT].copy_from_slice(&self.file_kind.to_le_bytes());
        b[FILE_ID_AT..SEQ_FLOOR_AT].copy_from_slice(&self.file_id.to_le_bytes());
        b[SEQ_FLOOR_AT..FLAGS_AT].copy_from_slice(&self.seq_floor.to_le_bytes());
        b[FLAGS_AT..HEADER_CRC_AT].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crate::crc::crc32c(&b[..HEADER_CRC_AT]);
        b[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a header read from the file `path`, which must be
    /// of kind `expected_kind` and named `expected_id`.
    pub(crate) fn decode(
        b: &[u8; FILE_HEADER_LEN],
        path: &Path,
        expected_kind: u16,
        expected_id: u32,
    ) -> Result<Self> {
        let corrupt = |kind| Error::Corruption {
            path: path.to_path_buf(),
            offset: 0,
            kind,
        };
        if b[MAGIC_AT..VERSION_AT] != MAGIC {
            return Err(corrupt(CorruptionKind::BadMagic));
        }
        let stored_crc = u32::from_le_bytes(field(b, HEADER_CRC_AT));
        if crate::crc::crc32c(&b[..HEADER_CRC_AT]) != stored_crc {
            return Err(corrupt(CorruptionKind::BadFileHeader));
        }
        let version = u16::from_le_bytes(field(b, VERSION_AT));
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let kind = u16::from_le_bytes(field(b, KIND_AT));
        if kind != expected_kind {
            return Err(corrupt(CorruptionKind::UnknownFileKind(kind)));
        }
        let file_id = u32::from_le_bytes(field(b, FILE_ID_AT));
        if file_id != expected_id {
            return Err(corrupt(CorruptionKind::FileIdMismatch));
        }
        // Zero ("reserved") before version 4.
        let flags = u32::from_le_bytes(field(b, FLAGS_AT));
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt(CorruptionKind::BadFileHeader));
        }
        Ok(Self {
            file_kind: kind,
            file_id,
            seq_floor: u64::from_le_bytes(field(b, SEQ_FLOOR_AT)),
            flags,
        })
    }
}

fn field<const N: usize>(b: &[u8; FILE_HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// An open data file: its id, path and handle. Shared by readers through `Arc`.
#[derive(Debug)]
pub(crate) struct DataFile {
    /// The file's id.
    pub id: u32,
    /// Full path, for error messages.
    pub path: PathBuf,
    file: File,
    /// Map for the read path, set once the file's records are known.
    map: OnceLock<ReadMap>,
}

impl DataFile {
    /// Creates data file `id` in `dir` with its header, all at once: writes
    /// it under its `.tmp` name, fsyncs it, renames it and fsyncs the
    /// directory. On failure the `.tmp` file is removed (or, after a crash,
    /// left for the next open to remove).
    pub(crate) fn create(dir: &Path, id: u32, seq_floor: u64) -> Result<Self> {
        let mut file = Self::create_tmp(dir, id, seq_floor, 0)?;
        let created = file
            .sync_all()
            .at(&file.path)
            .and_then(|()| file.publish(dir));
        if created.is_err() {
            file.discard();
        }
        created.map(|()| file)
    }

    /// Creates `id.data.tmp` with its header (not yet fsynced; `flags`
    /// [`FLAG_REWRITTEN`] for a merge's or a repair's output): a data file
    /// being written that no open will read until [`Self::publish`].
    /// Replaces a leftover file of that name.
    pub(crate) fn create_tmp(dir: &Path, id: u32, seq_floor: u64, flags: u32) -> Result<Self> {
        let path = dir.join(tmp_name(&data_file_name(id)));
        let file = crate::disk::create(&path).at(&path)?;
        let this = Self {
            id,
            path,
            file,
            map: OnceLock::new(),
        };
        let header = FileHeader {
            file_kind: KIND_DATA,
            file_id: id,
            seq_floor,
            flags,
        };
        #[cfg(any(test, feature = "failpoints"))]
        if let Err(e) = crate::failpoint::check("create-header") {
            this.discard();
            return Err(e).at(&this.path);
        }
        if let Err(e) = crate::disk::write_at(&this.file, &header.encode(), 0) {
            this.discard();
            return Err(e).at(&this.path);
        }
        Ok(this)
    }

    /// Gives a `.tmp` data file its final name and fsyncs the directory.
    /// The caller has fsynced the file.
    pub(crate) fn publish(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(data_file_name(self.id));
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("publish").at(&path)?;
        crate::disk::rename(&self.path, &path).at(&path)?;
        self.path = path;
        sync_dir(dir)
    }

    /// Removes a file that failed to be written (best effort: a leftover
    /// `.tmp` file is removed by the next open).
    pub(crate) fn discard(&self) {
        if let Err(error) = crate::disk::remove(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "could not remove an unfinished file");
        }
    }

    /// Opens an existing data file, for reading and, with
    /// [`Access::Append`], appending.
    pub(crate) fn open(dir: &Path, id: u32, access: Access) -> Result<Self> {
        let path = dir.join(data_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(access == Access::Append)
            .open(&path)
            .at(&path)?;
        Ok(Self {
            id,
            path,
            file,
            map: OnceLock::new(),
        })
    }

    /// Current length of the file in bytes.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().at(&self.path)?.len())
    }

    /// Reads exactly `buf.len()` bytes at `offset` with `pread`.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset).at(&self.path)
    }

    /// Maps the first `len` bytes of the file for [`Self::read_record`].
    /// Call once the file's indexed records are final (after recovery, or at
    /// creation). If the map cannot be made, reads keep using `pread`.
    pub(crate) fn map_for_reads(&self, len: u64) {
        if len == 0 || self.map.get().is_some() {
            return;
        }
        match ReadMap::new(&self.file, len) {
            Ok(map) => {
                let _ = self.map.set(map);
            }
            Err(error) => tracing::warn!(path = %self.path.display(), %error,
                "cannot map data file; reads use pread"),
        }
    }

    /// The mapped bytes of a complete, indexed record, if the map covers
    /// them (see the safety argument in `readmap.rs`).
    pub(crate) fn mapped(&self, offset: u64, len: usize) -> Option<&[u8]> {
        self.map.get()?.bytes(offset, len)
    }

    /// Reads a complete, indexed record: from the map when it covers the
    /// range, else with `pread`. Only for ranges the key directory points
    /// to (see the safety argument in `readmap.rs`).
    pub(crate) fn read_record(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if let Some(map) = self.map.get()
            && map.copy_out(buf, offset)
        {
            return Ok(());
        }
        self.read_exact_at(buf, offset)
    }

    /// Writes all of `buf` at `offset`.
    pub(crate) fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.append_at(None, buf, offset)
    }

    /// [`Self::write_all_at`], copying through `map` (the file's writable
    /// map) when one is given and covers the range; the caller passes a map
    /// only for a range inside the file's allocated length ("Mapped
    /// appends" in docs/FORMAT.md).
    pub(crate) fn append_at(
        &self,
        map: Option<&mut WriteMap>,
        buf: &[u8],
        offset: u64,
    ) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        if crate::failpoint::check("append-half").is_err() {
            // A write that stops half-way, as on a full disk.
            crate::disk::write_at(&self.file, &buf[..buf.len() / 2], offset)?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        if let Some(map) = map
            && map.file_id() == self.id
            && crate::disk::write_mapped(map, &self.file, buf, offset)
        {
            return Ok(());
        }
        crate::disk::write_at(&self.file, buf, offset)
    }

    /// A writable shared map of the file's bytes `start..end` (allocated
    /// space), for the writer's appends while the file is active; `None`
    /// (appends use `pwrite`) where it cannot be made.
    pub(crate) fn map_for_appends(&self, start: u64, end: u64) -> Option<WriteMap> {
        match WriteMap::new(&self.file, self.id, start, end) {
            Ok(map) => Some(map),
            Err(error) => {
                tracing::info!(path = %self.path.display(), %error,
                    "no writable map of the active file; appends use pwrite until reopened");
                None
            }
        }
    }

    /// Makes the file `len` bytes long with its blocks allocated (zeros), so
    /// that writes below `len` do not change its size (see "Preallocation"
    /// in docs/FORMAT.md). `Unsupported` where the platform or filesystem
    /// cannot preallocate.
    pub(crate) fn allocate(&self, len: u64) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("fallocate")?;
        crate::disk::allocate(&self.file, len)
    }

    /// Writes zeros over bytes `from..to`, which must lie inside the file's
    /// allocated length (so its size does not change): turns `fallocate`d
    /// space into written space ("Zero fill" in docs/FORMAT.md).
    pub(crate) fn zero_fill(&self, from: u64, to: u64) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("zero-fill")?;
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let mut at = from;
        while at < to {
            let n = usize::try_from(to - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
            crate::disk::write_at(&self.file, &ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Cuts the file to `len` bytes.
    pub(crate) fn truncate(&self, len: u64) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("truncate")?;
        crate::disk::set_len(&self.file, len)
    }

    /// `fdatasync`: makes written records durable.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("fsync")?;
        crate::disk::sync_data(&self.file)
    }

    /// `fsync`: makes records and the file's size/metadata durable.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        #[cfg(any(test, feature = "failpoints"))]
        crate::failpoint::check("sync_all")?;
        crate::disk::sync_all(&self.file)
    }

    /// Copies bytes `from..` of this file into a new file `dest` (replacing
    /// any earlier one) and fsyncs it. Returns `false` (and creates nothing)
    /// when those bytes are all zero. Streams: the tail can be large.
    pub(crate) fn save_tail(&self, from: u64, dest: &Path) -> Result<bool> {
        let len = self.len()?;
        let tail = || {
            BufReader::with_capacity(
                1 << 16,
                PositionedReader {
                    file: &self.file,
                    pos: from,
                },
            )
            .take(len.saturating_sub(from))
        };
        let mut scan = tail();
        let all_zero = loop {
            let chunk = scan.fill_buf().at(&self.path)?;
            if chunk.is_empty() {
                break true;
            }
            if chunk.iter().any(|&b| b != 0) {
                break false;
            }
            let n = chunk.len();
            scan.consume(n);
        };
        if all_zero {
            return Ok(false);
        }
        let mut out = crate::disk::Appender::new(crate::disk::create(dest).at(dest)?);
        io::copy(&mut tail(), &mut out).map_err(|source| Error::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        crate::disk::sync_all(out.file()).at(dest)?;
        Ok(true)
    }

    /// Reads and verifies the file header.
    pub(crate) fn read_header(&self) -> Result<FileHeader> {
        let mut b = [0u8; FILE_HEADER_LEN];
        match self.file.read_exact_at(&mut b, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Error::Corruption {
                    path: self.path.clone(),
                    offset: 0,
                    kind: CorruptionKind::Truncated,
                });
            }
            Err(e) => return Err(e).at(&self.path),
        }
        FileHeader::decode(&b, &self.path, KIND_DATA, self.id)
    }

    /// A sequential reader over the records after the header.
    pub(crate) fn scanner(&self) -> Result<Scanner<'_>> {
        let len = self.len()?;
        Ok(Scanner {
            file: self,
            reader: BufReader::with_capacity(1 << 20, PositionedReader::new(&self.file)),
            offset: FILE_HEADER_LEN as u64,
            len,
            body: Vec::new(),
        })
    }
}

/// How the read path reaches one data file.
///
/// A sealed file is read through a map of the whole file, and its file
/// descriptor is closed once no one else holds it, so a store of thousands of
/// data files keeps one descriptor open (the active file's), not thousands.
#[derive(Debug)]
pub(crate) enum ReadHandle {
    /// A sealed file, read through its map alone.
    Mapped {
        /// Full path, for error messages.
        path: PathBuf,
        /// Map of the whole file.
        map: ReadMap,
    },
    /// A file read through its open handle: the active file (mapped to its
    /// capacity, with `pread` as fallback), or a sealed file that could not
    /// be mapped.
    Open(Arc<DataFile>),
}

impl ReadHandle {
    /// The read handle of a sealed (complete, never again written) file:
    /// maps all of it, falling back to the open file if mapping fails.
    pub(crate) fn sealed(file: Arc<DataFile>) -> Result<Self> {
        let len = file.len()?;
        match ReadMap::new(&file.file, len) {
            Ok(map) => Ok(Self::Mapped {
                path: file.path.clone(),
                map,
            }),
            Err(error) => {
                tracing::warn!(path = %file.path.display(), %error,
                    "cannot map sealed data file; reads use pread");
                Ok(Self::Open(file))
            }
        }
    }

    /// Length of the file as this handle reads it.
    pub(crate) fn len(&self) -> Result<u64> {
        match self {
            Self::Mapped { map, .. } => Ok(map.len() as u64),
            Self::Open(file) => file.len(),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Mapped { path, .. } => path,
            Self::Open(file) => &file.path,
        }
    }

    /// The mapped bytes of a complete, indexed record, if a map covers
    /// them (see [`DataFile::mapped`]).
    pub(crate) fn mapped(&self, offset: u64, len: usize) -> Option<&[u8]> {
        match self {
            Self::Mapped { map, .. } => map.bytes(offset, len),
            Self::Open(file) => file.mapped(offset, len),
        }
    }

    /// Reads a complete, indexed record (see [`DataFile::read_record`]).
    pub(crate) fn read_record(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self {
            Self::Mapped { path, map } => {
                if map.copy_out(buf, offset) {
                    Ok(())
                } else {
                    // The key directory points past the end of a sealed file:
                    // only damage (or a file cut behind the engine's back) does that.
                    Err(Error::Corruption {
                        path: path.clone(),
                        offset,
                        kind: CorruptionKind::Truncated,
                    })
                }
            }
            Self::Open(file) => file.read_record(buf, offset),
        }
    }
}

/// fsyncs a directory so that files created or removed in it stay so.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::disk::sync_dir(dir).at(dir)
}

/// Adapts positioned reads to `Read`, starting after the file header, so the
/// scanner does not depend on (or move) the shared file cursor.
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> PositionedReader<'a> {
    fn new(file: &'a File) -> Self {
        Self {
            file,
            pos: FILE_HEADER_LEN as u64,
        }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One record found by the scanner.
#[derive(Debug)]
pub(crate) struct ScannedRecord<'a> {
    /// Offset of the record in the file.
    pub offset: u64,
    /// Its header.
    pub header: RecordHeader,
    /// Its key.
    pub key: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
}

/// Why the scanner stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanStop {
    /// Offset of the first record that did not verify.
    pub offset: u64,
    /// What was wrong with it.
    pub kind: CorruptionKind,
    /// Where the bad record would end if its length fields are right, when
    /// that is inside the file; `None` if it runs past the end.
    pub declared_end: Option<u64>,
}

/// One step of a [`Scanner`].
#[derive(Debug)]
pub(crate) enum Scan<'a> {
    /// A verified record.
    Record(ScannedRecord<'a>),
    /// The clean end of the file.
    End,
    /// The first record that does not verify; scanning goes no further.
    Stop(ScanStop),
}

/// Fills `buf`; `false` if the input ended first (other errors are errors).
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads records one by one from a data file, verifying each checksum.
pub(crate) struct Scanner<'a> {
    file: &'a DataFile,
    reader: BufReader<PositionedReader<'a>>,
    offset: u64,
    len: u64,
    body: Vec<u8>,
}

impl Scanner<'_> {
    /// The next step of the scan. I/O errors are returned as errors; a record
    /// that does not verify is [`Scan::Stop`].
    pub(crate) fn next_record(&mut self) -> Result<Scan<'_>> {
        let offset = self.offset;
        let remaining = self.len - offset.min(self.len);
        if remaining == 0 {
            return Ok(Scan::End);
        }
        let stop = |kind, declared_end| {
            Ok(Scan::Stop(ScanStop {
                offset,
                kind,
                declared_end,
            }))
        };
        if remaining < RECORD_HEADER_LEN as u64 {
            return stop(CorruptionKind::Truncated, None);
        }
        let mut head = [0u8; RECORD_HEADER_LEN];
        // The file may be cut while it is scanned: a read-only open scans
        // the newest file while its writer cuts the preallocated zeros at
        // rotation. Bytes that are gone are a truncated record, not an I/O
        // error.
        if !read_fully(&mut self.reader, &mut head).at(&self.file.path)? {
            return stop(CorruptionKind::Truncated, None);
        }
        // The same two steps as every reader of records (record::read_from).
        let unframed = |bad: record::Unframed| stop(bad.kind, bad.declared_len.map(|l| offset + l));
        let header = match record::frame(&head, remaining) {
            Ok(header) => header,
            Err(bad) => return unframed(bad),
        };
        let record_len = header.record_len();
        let body_len = record_len as usize - RECORD_HEADER_LEN;
        self.body.clear();
        self.body.resize(body_len, 0);
        if !read_fully(&mut self.reader, &mut self.body).at(&self.file.path)? {
            return stop(CorruptionKind::Truncated, None);
        }
        if let Err(bad) = record::verify(&head, &header, &self.body) {
            return unframed(bad);
        }
        self.offset += record_len;
        let (key, value) = self.body.split_at(header.key_len as usize);
        Ok(Scan::Record(ScannedRecord {
            offset,
            header,
            key,
            value,
        }))
    }

    /// The file length this scan reads up to (taken when it began).
    pub(crate) fn scanned_len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_cut_while_it_is_scanned_ends_in_a_truncated_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = DataFile::create(dir.path(), 1, 1).expect("create");
        // More than the scanner's read buffer (1 MiB) holds, so the cut is seen.
        let mut records = Vec::new();
        for seq in 1..=10_000u64 {
            record::encode_into(
                &mut records,
                seq,
                0,
                record::RecordKind::Put,
                b"k",
                &[1; 120],
            )
            .expect("encode");
        }
        let end = FILE_HEADER_LEN as u64 + records.len() as u64;
        file.write_all_at(&records, FILE_HEADER_LEN as u64)
            .expect("write");
        // Preallocated zeros after the records, as the active file has.
        file.allocate(end + (1 << 20)).expect("allocate");
        let mut scanner = file.scanner().expect("scanner");
        assert!(matches!(
            scanner.next_record().expect("first"),
            Scan::Record(_)
        ));
        // The writer cuts the zeros (rotation); here with part of the last
        // record, so the scan runs into the new end inside a record.
        file.truncate(end - 10).expect("cut");
        let mut records_seen = 1;
        loop {
            match scanner.next_record().expect("no I/O error for a cut file") {
                Scan::Record(_) => records_seen += 1,
                Scan::Stop(stop) => {
                    assert_eq!(stop.kind, CorruptionKind::Truncated);
                    break;
                }
                Scan::End => panic!("the scan read past the cut"),
            }
        }
        assert_eq!(records_seen, 9_999);
    }

    #[test]
    fn header_offsets_follow_the_spec() {
        assert_eq!(
            (
                VERSION_AT,
                KIND_AT,
                FILE_ID_AT,
                SEQ_FLOOR_AT,
                FLAGS_AT,
                HEADER_CRC_AT
            ),
            (8, 10, 12, 16, 24, 28)
        );
        assert_eq!(FILE_HEADER_LEN, 32);
    }

    #[test]
    fn file_names_round_trip_and_others_are_ignored() {
        assert_eq!(data_file_name(1), "0000000001.data");
        assert_eq!(data_file_name(u32::MAX), "4294967295.data");
        assert_eq!(parse_data_file_name("0000000042.data"), Some(42));
        assert_eq!(parse_data_file_name("42.data"), None);
        assert_eq!(parse_data_file_name("000000004x.data"), None);
        assert_eq!(parse_data_file_name("0000000042.hint"), None);
        assert_eq!(parse_data_file_name("9999999999.data"), None);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let p = Path::new("x");
        let h = FileHeader {
            file_kind: KIND_DATA,
            file_id: 3,
            seq_floor: 77,
            flags: FLAG_REWRITTEN,
        };
        let bytes = h.encode();
        assert_eq!(
            FileHeader::decode(&bytes, p, KIND_DATA, 3).expect("valid"),
            h
        );
        assert!(matches!(
            FileHeader::decode(&bytes, p, KIND_DATA, 4),
            Err(Error::Corruption {
                kind: CorruptionKind::FileIdMismatch,
                ..
            })
        ));
        let mut bad = bytes;
        bad[SEQ_FLOOR_AT] ^= 1;
        assert!(matches!(
            FileHeader::decode(&bad, p, KIND_DATA, 3),
            Err(Error::Corruption {
                kind: CorruptionKind::BadFileHeader,
                ..
            })
        ));
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(matches!(
            FileHeader::decode(&bad, p, KIND_DATA, 3),
            Err(Error::Corruption {
                kind: CorruptionKind::BadMagic,
                ..
            })
        ));
        // A future version with a valid checksum is a version error, not corruption.
        let mut future = bytes;
        future[VERSION_AT] = 5;
        let crc = crate::crc::crc32c(&future[..HEADER_CRC_AT]);
        future[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            FileHeader::decode(&future, p, KIND_DATA, 3),
            Err(Error::UnsupportedVersion {
                found: 5,
                supported: 4,
                ..
            })
        ));
        // A flag this build does not know, under a valid checksum: corrupt.
        let mut unknown = bytes;
        unknown[FLAGS_AT] = 0b10;
        let crc = crate::crc::crc32c(&unknown[..HEADER_CRC_AT]);
        unknown[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            FileHeader::decode(&unknown, p, KIND_DATA, 3),
            Err(Error::Corruption {
                kind: CorruptionKind::BadFileHeader,
                ..
            })
        ));
        // A version-3 header (flags were reserved, zero) reads as unflagged.
        let mut v3 = FileHeader { flags: 0, ..h }.encode();
        v3[VERSION_AT] = 3;
        let crc = crate::crc::crc32c(&v3[..HEADER_CRC_AT]);
        v3[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        let read = FileHeader::decode(&v3, p, KIND_DATA, 3).expect("version 3 reads");
        assert_eq!((read.seq_floor, read.flags), (77, 0));
    }
}
