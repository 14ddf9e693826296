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

/// Name of the lock file that keeps a merge from deleting data files while a
/// read-only open is reading the directory.
pub(crate) const DELETE_LOCK_FILE: &str = "DELETE.LOCK";

/// How [`DeleteLock`] is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// By those who list files and must not see them deleted meanwhile.
    Shared,
    /// By those who delete files.
    Exclusive,
}

/// A held `DELETE.LOCK`: shared by read-only opens while they list and load
/// the data files, exclusive while a merge deletes its inputs. So a read-only
/// open never lists a file that disappears before it reads it. Released when
/// dropped.
#[derive(Debug)]
pub(crate) struct DeleteLock {
    _file: File,
}

impl DeleteLock {
    /// Creates `DELETE.LOCK` in `dir` if missing (a writable open does this,
    /// so that later read-only opens find it).
    pub(crate) fn create(dir: &Path) -> Result<()> {
        let path = dir.join(DELETE_LOCK_FILE);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map(drop)
            .at(&path)
    }

    /// Waits for and takes the lock, shared or exclusive. `None` if the
    /// file does not exist (a store no writer of this version has opened:
    /// no merge of this version can run on it either).
    pub(crate) fn acquire(dir: &Path, mode: LockMode) -> Result<Option<Self>> {
        let path = dir.join(DELETE_LOCK_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        if mode == LockMode::Exclusive {
            file.lock().at(&path)?;
        } else {
            file.lock_shared().at(&path)?;
        }
        Ok(Some(Self { _file: file }))
    }
}
