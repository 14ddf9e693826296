//! The directory lock: one writer per data directory.
//!
//! The writer holds an exclusive `flock` on `LOCK` for the life of its handle
//! and writes its pid into the file so that a refused second writer can name
//! the holder. `flock` locks belong to the open file description, so a second
//! open in the same process is refused just like one from another process,
//! and the kernel drops the lock when the holder dies: a crash never leaves a
//! stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Name of the lock file inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir`, or fails with [`Error::Locked`] naming the holder.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Err(Error::Locked { path, pid });
            }
            Err(TryLockError::Error(source)) => return Err(Error::Io { path, source }),
        }
        // The pid is information for people and error messages, not part of
        // the locking protocol, so it needs no fsync.
        file.set_len(0).at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        Ok(Self { _file: file, path })
    }

    /// Path of the lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
