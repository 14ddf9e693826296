//! Backup: a consistent copy of a live store into another directory.
//!
//! Protocol (see `docs/FORMAT.md`, "Backup"): note every data file and the
//! active file's end under the writer lock (a moment, no I/O); copy into
//! `dest.partial/`, fsync; rename to `dest`. The read handles taken at the
//! first step keep every noted file readable even if a merge deletes it
//! while the copy runs.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::datafile::{self, ReadHandle};
use crate::db::Shared;
use crate::error::{Error, IoContext, Result};
use crate::stats::BackupReport;

/// A data file noted at step 1: its id and read handle.
type FileToCopy = (u32, Arc<ReadHandle>);

/// Bytes copied per read.
const CHUNK: usize = 1 << 20;

/// Copies the store behind `shared` into `dest` (see the module docs);
/// returns what was copied and the current mark the copy holds.
pub(crate) fn run(shared: &Shared, dest: &Path) -> Result<(BackupReport, Option<Vec<u8>>)> {
    let started = std::time::Instant::now();
    if dest.exists() {
        return Err(Error::Io {
            path: dest.to_path_buf(),
            source: std::io::Error::new(ErrorKind::AlreadyExists, "backup target exists"),
        });
    }
    let partial = partial_path(dest);
    // Step 1: what to copy, and how far into the active file.
    // The mark is replaced under the writer lock, so the one read here is
    // the newest in the noted bytes.
    // So is the compacted seq: a merge raises it before deleting a file,
    // so the value read with the snapshot holds for the files in it.
    let (files, active, mark, compacted) = {
        let guard = shared.writer_guard();
        let files: Vec<FileToCopy> = shared.files().snapshot();
        let mark = shared.lock_mark().as_ref().map(|m| m.value.to_vec());
        let compacted = shared.compacted_seq();
        (
            files,
            guard.map(|w| (w.active.id, w.offset)),
            mark,
            compacted,
        )
    };

    // Step 2: copy into `dest.partial`.
    if partial.exists() {
        std::fs::remove_dir_all(&partial).at(&partial)?;
    }
    crate::disk::create_dir_all(&partial).at(&partial)?;
    let mut report = BackupReport::default();
    for (id, handle) in &files {
        let len = match active {
            Some((active_id, end)) if active_id == *id => end,
            _ => handle.len()?,
        };
        let to = partial.join(datafile::data_file_name(*id));
        copy_from_handle(handle, len, &to)?;
        report.data_files += 1;
        report.bytes += len;
        if active.is_none_or(|(active_id, _)| active_id != *id) {
            copy_hint(shared.dir(), *id, &partial)?;
        }
    }
    // The copy keeps the change feed's history as far as the store did.
    crate::history::store(&partial, compacted)?;
    datafile::sync_dir(&partial)?;
    #[cfg(test)]
    crate::failpoint::step("backup: copied, not published");

    // Step 3: publish.
    crate::disk::rename(&partial, dest).at(dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        datafile::sync_dir(parent)?;
    }
    report.duration = started.elapsed();
    tracing::info!(dest = %dest.display(), files = files.len(), bytes = report.bytes, "backup written");
    Ok((report, mark))
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Copies the first `len` bytes of a data file to `to` and fsyncs it.
fn copy_from_handle(handle: &ReadHandle, len: u64, to: &Path) -> Result<()> {
    let out = crate::disk::create(to).at(to)?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(CHUNK, |left| left.min(CHUNK));
        handle.read_record(&mut buf[..n], at)?;
        crate::disk::write_at(&out, &buf[..n], at).at(to)?;
        at += n as u64;
    }
    crate::disk::sync_all(&out).at(to)
}

/// Copies the hint file of sealed file `id`, if it has one when looked
/// for. Without one the copy's open scans the data file: a merge may have
/// deleted the hint, or the background hint writer not yet renamed it into
/// place (it may do so a moment after the open failed, so the open's
/// answer is the one that counts).
fn copy_hint(dir: &Path, id: u32, partial: &Path) -> Result<()> {
    let from = dir.join(datafile::hint_file_name(id));
    let to = partial.join(datafile::hint_file_name(id));
    let source = match std::fs::File::open(&from) {
        Ok(source) => source,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(&from),
    };
    crate::disk::copy_opened(source, &to).at(&to)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! What a crash during a backup leaves: never a `dest` that looks
    //! complete; a leftover `dest.partial` is replaced by the next backup.

    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::{Bitcask, Options, SyncPolicy, failpoint};

    fn store(dir: &std::path::Path) -> Bitcask {
        let db = Bitcask::open_with(
            dir,
            Options::new().sync(SyncPolicy::Never).max_file_size(200),
        )
        .expect("open");
        for i in 0..20u32 {
            db.put(format!("k{i}").as_bytes(), &[7; 40]).expect("put");
        }
        db
    }

    #[test]
    fn before_the_rename_there_is_no_destination_only_the_partial_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        let dest = out.path().join("copy");
        let partial = out.path().join("copy.partial");
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&seen);
        let (d, p) = (dest.clone(), partial.clone());
        failpoint::observe(move |step| sink.borrow_mut().push((step, d.exists(), p.exists())));
        let result = db.backup(&dest);
        failpoint::stop_observing();
        result.expect("backup");
        assert_eq!(
            *seen.borrow(),
            vec![("backup: copied, not published", false, true)]
        );
        assert!(dest.exists() && !partial.exists());
    }

    #[test]
    fn a_partial_copy_left_by_a_crash_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = tempfile::tempdir().expect("tempdir");
        let db = store(dir.path());
        let dest = out.path().join("copy");
        let partial = out.path().join("copy.partial");
        std::fs::create_dir_all(&partial).expect("mkdir");
        std::fs::write(partial.join("0000000099.data"), b"half a file").expect("write");
        db.backup(&dest).expect("backup over a stale partial copy");
        assert!(!partial.exists());
        assert!(
            !dest.join("0000000099.data").exists(),
            "stale files are not carried over"
        );
        let copy = Bitcask::open(&dest).expect("open the backup");
        assert_eq!(copy.len(), 20);
    }

    #[test]
    fn a_hint_is_copied_when_present_and_skipped_when_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = tempfile::tempdir().expect("tempdir");
        let hint = crate::datafile::hint_file_name(4);
        std::fs::write(dir.path().join(&hint), b"hint bytes").expect("write");
        super::copy_hint(dir.path(), 4, out.path()).expect("copy a present hint");
        assert_eq!(
            std::fs::read(out.path().join(&hint)).expect("read the copy"),
            b"hint bytes"
        );
        super::copy_hint(dir.path(), 5, out.path()).expect("a missing hint is no error");
        assert!(!out.path().join(crate::datafile::hint_file_name(5)).exists());
    }
}
