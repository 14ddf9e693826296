//! Backup: a consistent copy of a live store into another directory.
//!
//! Protocol (see `docs/FORMAT.md`, "Backup"): note every data file and the
//! active file's end under the writer lock (a moment, no I/O); copy into
//! `dest.partial/`, fsync; rename to `dest`. The read handles taken at the
//! first step keep every noted file readable even if a merge deletes it
//! while the copy runs.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use crate::datafile::{self, ReadHandle};
use crate::db::Shared;
use crate::error::{Error, IoContext, Result};

/// A data file noted at step 1: its id and read handle.
type FileToCopy = (u32, Arc<ReadHandle>);

/// Bytes copied per read.
const CHUNK: usize = 1 << 20;

/// Copies the store behind `shared` into `dest` (see the module docs).
pub(crate) fn run(shared: &Shared, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::Io {
            path: dest.to_path_buf(),
            source: std::io::Error::new(ErrorKind::AlreadyExists, "backup target exists"),
        });
    }
    let partial = partial_path(dest);
    // Step 1: what to copy, and how far into the active file.
    let (files, active): (Vec<FileToCopy>, Option<(u32, u64)>) = {
        let guard = shared
            .writer
            .as_ref()
            .map(|writer| writer.lock().unwrap_or_else(PoisonError::into_inner));
        let files = shared
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, handle)| (*id, Arc::clone(handle)))
            .collect();
        (files, guard.map(|w| (w.active.id, w.offset)))
    };

    // Step 2: copy into `dest.partial`.
    if partial.exists() {
        std::fs::remove_dir_all(&partial).at(&partial)?;
    }
    std::fs::create_dir_all(&partial).at(&partial)?;
    for (id, handle) in &files {
        let len = match active {
            Some((active_id, end)) if active_id == *id => end,
            _ => handle.len()?,
        };
        let to = partial.join(datafile::data_file_name(*id));
        copy_from_handle(handle, len, &to)?;
        if active.is_none_or(|(active_id, _)| active_id != *id) {
            copy_hint(&shared.dir, *id, &partial)?;
        }
    }
    datafile::sync_dir(&partial)?;

    // Step 3: publish.
    std::fs::rename(&partial, dest).at(dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        datafile::sync_dir(parent)?;
    }
    tracing::info!(dest = %dest.display(), files = files.len(), "backup written");
    Ok(())
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Copies the first `len` bytes of a data file to `to` and fsyncs it.
fn copy_from_handle(handle: &ReadHandle, len: u64, to: &Path) -> Result<()> {
    let mut out = File::create(to).at(to)?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(CHUNK, |left| left.min(CHUNK));
        handle.read_record(&mut buf[..n], at)?;
        out.write_all(&buf[..n]).at(to)?;
        at += n as u64;
    }
    out.sync_all().at(to)
}

/// Copies the hint file of sealed file `id`, if it has one (a merge may have
/// deleted it meanwhile: then the copy's open scans the data file).
fn copy_hint(dir: &Path, id: u32, partial: &Path) -> Result<()> {
    let from = dir.join(datafile::hint_file_name(id));
    let to = partial.join(datafile::hint_file_name(id));
    match std::fs::copy(&from, &to) {
        Ok(_) => File::open(&to).and_then(|f| f.sync_all()).at(&to),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(&from),
    }
}
