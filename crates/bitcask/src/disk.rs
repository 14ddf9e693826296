//! Every change the engine makes to the filesystem goes through here:
//! creating, writing, sizing, syncing, renaming and removing files, and
//! syncing directories. Reads do not (they change nothing). Public so
//! that code built on the engine that keeps files of its own beside a
//! store (the cluster's snapshots and their install) is seen by the same
//! simulated power cuts.
//!
//! In a normal build each function is the plain system call. Built for
//! tests (`cfg(test)`, or the `simulated-disk` feature for other crates),
//! each also tells the simulated disk (`sim.rs`) what happened, so a test
//! can take the directory as a power cut would leave it: every file rolled
//! back to what its last fsync made durable, plus an arbitrary subset of
//! the pages written since, and directory changes never fsynced undone.
//! The files themselves are written as usual, so the running store (its
//! memory maps included) sees what it wrote. One seam, chosen at compile
//! time: a release build carries no trace of the simulation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

#[cfg(any(test, feature = "simulated-disk"))]
use crate::sim;

/// Opens `path` for reading and writing, creating it (empty) or emptying it.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::created(path, &file);
    Ok(file)
}

/// Writes all of `buf` at `offset`.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let written = file.write_all_at(buf, offset);
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::written(file, offset, buf.len() as u64);
    written
}

/// Copies all of `buf` to `offset` through `map`, a writable shared map of
/// `file`, and returns `true`; `false` (nothing written) if the range is
/// outside the map. The range must lie inside the file (docs/FORMAT.md,
/// "Mapped appends").
pub(crate) fn write_mapped(
    map: &mut crate::writemap::WriteMap,
    file: &File,
    buf: &[u8],
    offset: u64,
) -> bool {
    let copied = map.copy_in(offset, buf);
    #[cfg(any(test, feature = "simulated-disk"))]
    if copied {
        sim::written(file, offset, buf.len() as u64);
    }
    #[cfg(not(any(test, feature = "simulated-disk")))]
    let _ = file;
    copied
}

/// Sets the file's length (cutting it, or extending it with zeros).
pub fn set_len(file: &File, len: u64) -> io::Result<()> {
    #[cfg(any(test, feature = "simulated-disk"))]
    let before = file.metadata().map(|m| m.len()).unwrap_or(0);
    let result = file.set_len(len);
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::resized(file, before, len);
    result
}

/// Makes the file `len` bytes long with its blocks allocated (zeros).
/// `Unsupported` where the platform or filesystem cannot preallocate.
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(any(test, feature = "simulated-disk"))]
    let before = file.metadata().map(|m| m.len()).unwrap_or(0);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let result = {
        // Mode 0: allocate and extend the size; the new bytes read as zero.
        use rustix::io::Errno;
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len).map_err(|errno| {
            match errno {
                // The filesystem (or kernel) cannot preallocate.
                Errno::OPNOTSUPP | Errno::NOSYS => io::Error::from(io::ErrorKind::Unsupported),
                other => io::Error::from(other),
            }
        })
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let result = {
        let _ = (file, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    };
    #[cfg(any(test, feature = "simulated-disk"))]
    if result.is_ok() {
        sim::resized(file, before, before.max(len));
    }
    result
}

/// `fdatasync`: the file's written bytes (and its size) become durable.
pub fn sync_data(file: &File) -> io::Result<()> {
    sync_with(file, File::sync_data)
}

/// `fsync`: the file's bytes and metadata become durable.
pub fn sync_all(file: &File) -> io::Result<()> {
    sync_with(file, File::sync_all)
}

/// Runs one of the two syncs, telling the simulation when it starts (what
/// it covers) and when it returns (when that is durable).
fn sync_with(file: &File, sync: fn(&File) -> io::Result<()>) -> io::Result<()> {
    #[cfg(any(test, feature = "simulated-disk"))]
    let started = sim::sync_started(file);
    sync(file)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::sync_ended(file, started);
    Ok(())
}

/// Renames `from` to `to` (replacing `to`); durable once the directory is
/// synced.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::renamed(from, to);
    Ok(())
}

/// Removes `path`; durable once the directory is synced.
pub fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::removed(path);
    Ok(())
}

/// Creates directory `path` (and any missing parents); its name is durable
/// once its parent is synced.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::dir_created(path);
    Ok(())
}

/// Creates directory `path` (its parent must exist; `AlreadyExists` if it
/// does); its name is durable once its parent is synced.
pub fn create_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::dir_created(path);
    Ok(())
}

/// Creates directory `path` and any missing parents, if missing, and
/// makes each created name durable (syncs the directory it was made in):
/// once this returns, a power cut keeps the directory. For directories
/// whose loss would lose what is later synced inside them.
pub fn create_dir_durably(path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path.ancestors().take_while(|p| !p.is_dir()).collect();
    for dir in missing.into_iter().rev() {
        if dir.as_os_str().is_empty() {
            continue;
        }
        match create_dir(dir) {
            Ok(()) => {}
            // Made meanwhile by someone else: still sync its name below.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        sync_dir(parent.unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Gives the file at `from` a second name `to`; durable once the
/// directory of `to` is synced.
pub fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::hard_link(from, to)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::linked(from, to);
    Ok(())
}

/// fsyncs a directory: the files created, renamed or removed in it stay so.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::dir_synced(dir);
    Ok(())
}

/// Removes directory `path` and everything in it (file by file, through
/// [`remove`]); durable once the parent is synced. Files removed before a
/// crash cut it short stay removed or not as their directory's sync left
/// them: a half-removed directory is possible, so callers remove only
/// what nothing needs any more (or what recovery removes again).
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_dir_all(&entry.path())?;
        } else {
            remove(&entry.path())?;
        }
    }
    std::fs::remove_dir(path)?;
    #[cfg(any(test, feature = "simulated-disk"))]
    sim::removed(path);
    Ok(())
}

/// Copies the file at `from` to a new file `to` (replacing it) and
/// fsyncs the copy; its name is durable once its directory is synced.
pub fn copy_file(from: &Path, to: &Path) -> io::Result<u64> {
    copy_opened(File::open(from)?, to)
}

/// Copies the open file `source` from its start to a new file `to`
/// (replacing it) and fsyncs the copy, as [`copy_file`] does: for callers
/// that must tell a missing source from a failing copy.
pub fn copy_opened(mut source: File, to: &Path) -> io::Result<u64> {
    let mut out = Appender::new(create(to)?);
    let copied = io::copy(&mut source, &mut out)?;
    sync_all(out.file())?;
    Ok(copied)
}

/// Sequential writes into a file, through [`write_at`]: what `BufWriter`
/// wraps for hint files and copies.
#[derive(Debug)]
pub(crate) struct Appender {
    file: File,
    at: u64,
}

impl Appender {
    /// Writes from the start of `file`.
    pub(crate) fn new(file: File) -> Self {
        Self { file, at: 0 }
    }

    /// The file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Write for Appender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_at(&self.file, buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appender_writes_one_chunk_after_another() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut out = Appender::new(create(&path).expect("create"));
        for chunk in [&b"one "[..], b"two ", b"three"] {
            out.write_all(chunk).expect("write");
        }
        // Larger than any buffer in front of it, in pieces of odd sizes.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for piece in big.chunks(7_777) {
            out.write_all(piece).expect("write");
        }
        sync_all(out.file()).expect("sync");
        let mut expected = b"one two three".to_vec();
        expected.extend_from_slice(&big);
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }

    #[test]
    fn directories_made_durably_survive_a_cut_with_what_was_synced_inside() {
        let root = tempfile::tempdir().expect("tempdir");
        sim::watch(root.path()).expect("watch");
        let deep = root.path().join("a").join("b");
        create_dir_durably(&deep).expect("mkdir");
        create_dir_durably(&deep).expect("a second call changes nothing");
        let file = create(&deep.join("f")).expect("create");
        write_at(&file, b"kept", 0).expect("write");
        sync_all(&file).expect("sync");
        sync_dir(&deep).expect("sync dir");
        // Made with a plain create_dir_all: only the innermost directory's
        // own sync, not its name in the parent.
        let plain = root.path().join("c");
        create_dir_all(&plain).expect("mkdir");
        let other = create(&plain.join("g")).expect("create");
        sync_all(&other).expect("sync");
        sync_dir(&plain).expect("sync dir");
        let cut = tempfile::tempdir().expect("tempdir");
        sim::power_cut(root.path(), cut.path(), sim::Keep::nothing()).expect("cut");
        sim::unwatch(root.path());
        let kept = std::fs::read(cut.path().join("a").join("b").join("f")).expect("kept");
        assert_eq!(kept, b"kept");
        assert!(!cut.path().join("c").exists(), "an unsynced name is lost");
    }
}
