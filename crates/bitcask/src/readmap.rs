//! Read-only memory maps of data files: the read path without a syscall.
//!
//! A get verifies its record in the map and lends the value from there
//! (`Bitcask::get` copies it once, into the vector it returns) instead of
//! calling `pread`. This is one of the four places the engine uses `unsafe`
//! (the others: the writable map of `writemap.rs`, a CPU-feature call in
//! `crc.rs` and a prefetch hint in `prefetch.rs`); it pays for itself in the
//! measurements recorded in `docs/BENCHMARKS.md` (random gets over
//! 1,000,000 keys, pread vs. map). If a map cannot be made, reads fall back
//! to `pread`.

use std::fs::File;
use std::io;

/// A read-only, shared mapping of the first `len` bytes of a data file.
#[derive(Debug)]
pub(crate) struct ReadMap {
    map: memmap2::Mmap,
}

impl ReadMap {
    /// Maps `len` bytes of `file` (which may extend past its current end:
    /// the active file is mapped to its full capacity once, and written into
    /// with `pwrite`, which the shared mapping sees at once).
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: `Mmap` hands out `&[u8]` to the mapped bytes, which is sound
        // only if those bytes do not change, and are not cut off, while a
        // reference to them lives. The engine keeps to that for every byte it
        // reads through the map:
        // - it reads only through `ReadMap::bytes` (and `copy_out`, which
        //   uses it), and only at the offsets and lengths of complete
        //   records that the key directory points to; those bytes were
        //   written (pwrite returned) before the key directory pointed at
        //   them, so they lie below the file's end. A get lends them to its
        //   caller's closure after verifying them, while it holds the file
        //   table's guard, which keeps this map alive;
        // - data files are append-only: the engine never rewrites a byte of
        //   a record (the zero fill of preallocated space writes only past
        //   the last record), and it shortens a file only past every record
        //   the key directory knows (cutting a torn tail at open, before
        //   mapping, cutting preallocated space, or undoing a failed append
        //   whose record was never indexed);
        // - the directory lock keeps other handles of this engine from
        //   writing; a read-only handle only reads.
        // What no engine can rule out is another program truncating or
        // editing a data file behind its back; `docs/FORMAT.md` states that
        // this is not allowed while a store is open (as LMDB and other
        // mmap-based stores do). A get verifies a record's checksum, key and
        // version on the mapped bytes before lending them, so an edit made
        // before the get is reported as corruption; one made while the
        // caller holds the bytes is outside what any map can guard against.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        // Point reads are random: do not read ahead around each fault.
        // Advice is only a hint; failing to give it changes nothing.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Self { map })
    }

    /// Number of bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The `len` mapped bytes at `offset`, or `None` if that range is
    /// outside the map. Only for a complete record the key directory points
    /// to (the safety argument in [`ReadMap::new`]); the caller verifies it
    /// before using it.
    pub(crate) fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        self.map.get(start..end)
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `false` (nothing
    /// copied) if that range is outside the map.
    pub(crate) fn copy_out(&self, buf: &mut [u8], offset: u64) -> bool {
        match self.bytes(offset, buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}
