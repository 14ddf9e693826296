//! A writable shared map of the active data file: appends as a memory copy
//! instead of a `pwrite` system call ("Mapped appends" in docs/FORMAT.md).
//!
//! A shared map of a file is the kernel's page cache of that file, so a
//! copy into it is a write the kernel holds, as after `pwrite`: it survives
//! the process, is seen by every other reader at once, and is made durable
//! by the `fdatasync` that covers the file (on Linux, which is why only
//! Linux builds use the map; elsewhere [`WriteMap::new`] declines and the
//! writer keeps `pwrite`). One of the places the engine uses `unsafe` (see
//! `readmap.rs` for the read side); measured in docs/BENCHMARKS.md
//! ("Mapped appends").

use std::fs::File;
use std::io;

/// A writable, shared mapping of a window of the active file: its
/// allocated space from the next record on. The writer maps a new window
/// each time it allocates more space and drops the old one, so the pages
/// it filled stop counting in the process's resident memory (they stay in
/// the page cache, dirty until written back, like pages written with
/// `pwrite`).
#[derive(Debug)]
pub(crate) struct WriteMap {
    map: memmap2::MmapMut,
    /// The data file this maps (checked before every copy).
    file_id: u32,
    /// Offset in the file of the map's first byte (a multiple of the page
    /// size).
    origin: u64,
}

impl WriteMap {
    /// Maps bytes `start..end` of `file` (data file `file_id`) for writing,
    /// from the page holding `start`. The range must lie inside the file's
    /// allocated length. On systems other than Linux, `Unsupported`.
    pub(crate) fn new(file: &File, file_id: u32, start: u64, end: u64) -> io::Result<Self> {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        let page = rustix::param::page_size() as u64;
        let origin = start - start % page;
        let len = usize::try_from(end.saturating_sub(origin)).map_err(io::Error::other)?;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: `MmapMut` hands out `&mut [u8]` to the mapped bytes. That
        // is sound only if no other reference reads or writes the same bytes
        // while the engine writes them, and if every byte written lies in
        // the file (a page past its end faults). The engine keeps to that:
        // - only the writer, under the writer lock, holds this map, and it
        //   copies only into `offset..offset + record_len` of the active
        //   file, past the last record any key points to: no reader has
        //   been given those bytes (readers reach a record only after the
        //   key directory points to it, which happens after the copy);
        //   readers read through their own read-only map of the file (other
        //   addresses, the same page cache), never through this one. The
        //   bytes of the window's first page before `start` are records
        //   readers may hold: the writer never copies there (it copies at
        //   or past `start`, its next record's offset);
        // - it copies only below `allocated`, the file length that the
        //   writer itself set with `fallocate`, which nothing else changes
        //   while the file is active (the cuts of a failed write, rotation
        //   and close lower `allocated` with them, and no copy follows past
        //   it); the map is of the file the writer is appending to, which
        //   `DataFile::append_at` checks by id before each copy;
        // - the directory lock keeps other handles of this engine out.
        // As with the read map, another program truncating or writing a data
        // file behind the engine's back is outside this argument, and
        // docs/FORMAT.md forbids it while the store is open.
        #[allow(unsafe_code)]
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(origin)
                .len(len)
                .map_mut(file)?
        };
        Ok(Self {
            map,
            file_id,
            origin,
        })
    }

    /// The data file this maps.
    pub(crate) fn file_id(&self) -> u32 {
        self.file_id
    }

    /// Copies `buf` to file offset `offset` and returns `true`, or returns
    /// `false` (nothing copied) if that range is outside the window. The
    /// caller has made sure the range lies inside the file's allocated
    /// space.
    pub(crate) fn copy_in(&mut self, offset: u64, buf: &[u8]) -> bool {
        let Some(start) = offset
            .checked_sub(self.origin)
            .and_then(|at| usize::try_from(at).ok())
        else {
            return false;
        };
        let Some(end) = start.checked_add(buf.len()) else {
            return false;
        };
        match self.map.get_mut(start..end) {
            Some(bytes) => {
                bytes.copy_from_slice(buf);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_window_copies_inside_itself_only_and_the_file_sees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .expect("create");
        file.set_len(3 * 4096).expect("size");
        let mut map = WriteMap::new(&file, 7, 5000, 3 * 4096).expect("map");
        assert_eq!(map.file_id(), 7);
        assert!(map.copy_in(5000, b"record"));
        assert!(map.copy_in(3 * 4096 - 2, b"ok"));
        assert!(!map.copy_in(3 * 4096 - 1, b"ok"), "past the window's end");
        assert!(!map.copy_in(4095, b"x"), "before the window's first page");
        let mut back = [0u8; 6];
        file.read_exact_at(&mut back, 5000).expect("read");
        assert_eq!(&back, b"record", "a copy is a write the file shows at once");
        drop(map);
        file.read_exact_at(&mut back[..2], 3 * 4096 - 2)
            .expect("read");
        assert_eq!(&back[..2], b"ok");
    }
}
