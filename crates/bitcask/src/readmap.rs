//! Read-only memory maps of data files: the read path without a syscall.
//!
//! A get copies its record out of the map instead of calling `pread`. This
//! is one of the two places the engine uses `unsafe` (the other is a
//! CPU-feature call in `crc.rs`); it pays for itself in the
//! measurements recorded in `docs/BENCHMARKS.md` (random gets over 1,000,000
//! keys, pread vs. map). If a map cannot be made, reads fall back to `pread`.

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
        // - it reads only through `ReadMap::copy_out`, and only at the
        //   offsets and lengths of complete records that the key directory
        //   points to; those bytes were written (pwrite returned) before the
        //   key directory pointed at them, so they lie below the file's end;
        // - data files are append-only: the engine never rewrites a byte it
        //   wrote, and it shortens a file only past every record the key
        //   directory knows (cutting a torn tail at open, before mapping,
        //   or undoing a failed append whose record was never indexed);
        // - the directory lock keeps other handles of this engine from
        //   writing; a read-only handle only reads.
        // What no engine can rule out is another program truncating or
        // editing a data file behind its back; `docs/FORMAT.md` states that
        // this is not allowed while a store is open (as LMDB and other
        // mmap-based stores do). Bytes are copied out before their checksum
        // is verified, so an edit is reported as corruption, never returned.
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

    /// Copies `buf.len()` bytes at `offset` into `buf`; `false` (nothing
    /// copied) if that range is outside the map.
    pub(crate) fn copy_out(&self, buf: &mut [u8], offset: u64) -> bool {
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        let Some(end) = start.checked_add(buf.len()) else {
            return false;
        };
        match self.map.get(start..end) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}
