//! Offline repair: rewrites damaged data files with the records that
//! survive, keeping the damaged originals aside, so that a store that fails
//! to open opens again.
//!
//! The protocol (and what a crash at each step leaves) is specified in
//! `docs/FORMAT.md` ("Check and repair").

use std::fmt;
use std::path::{Path, PathBuf};

use crate::check::{self, CheckReport};
use crate::datafile::{self, DataFile, FILE_HEADER_LEN};
use crate::error::{IoContext, Result};
use crate::lock::{DeleteLock, DirLock, LockMode};
use crate::options::Options;

/// Name of the report file written into the repair directory.
pub const REPORT_FILE: &str = "REPORT.txt";

/// What [`repair`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// What the check before the repair found.
    pub found: CheckReport,
    /// The directory (inside the store) that holds the damaged originals and
    /// [`REPORT_FILE`]; `None` if nothing was damaged.
    pub moved_to: Option<PathBuf>,
    /// Data files rewritten with their surviving records.
    pub files_rewritten: Vec<u32>,
    /// Data files removed because no record in them survived.
    pub files_removed: Vec<u32>,
    /// Hint files removed (of damaged data files, or not verifying).
    pub hints_removed: Vec<u32>,
}

/// Repairs the store in `dir` (see the module docs). Takes the writer lock:
/// fails with [`Error::Locked`](crate::Error::Locked) while a store is open on it.
pub fn repair(dir: impl AsRef<Path>) -> Result<RepairReport> {
    repair_with_progress(dir, &mut |_, _| {})
}

/// [`repair`], calling `progress(bytes_done, bytes_total)` while it reads the store.
pub fn repair_with_progress(
    dir: impl AsRef<Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RepairReport> {
    let dir = dir.as_ref();
    let lock = DirLock::acquire(dir)?;
    let scan = check::scan_store(dir, progress)?;
    let mut report = RepairReport {
        found: scan.report.clone(),
        ..RepairReport::default()
    };
    if scan.report.is_damaged() {
        let aside = make_repair_dir(dir)?;
        // A damaged file's history has a hole: before any file changes,
        // the change feed stops promising any history written so far
        // (`HISTORY` to the top; the next open clamps it to the next seq,
        // crate::history).
        crate::history::store(dir, u64::MAX)?;
        // Read-only opens must not list a file that then disappears.
        let _no_readers_listing = DeleteLock::acquire(dir, LockMode::Exclusive)?;
        for (file, found) in scan.files.iter().zip(&scan.report.files) {
            if found.damage.is_empty() {
                continue;
            }
            let id = found.file_id;
            let path = dir.join(datafile::data_file_name(id));
            let name = datafile::data_file_name(id);
            if file.kept.is_empty() {
                remove_hint(dir, id, &mut report)?;
                keep_original(&path, &aside.join(&name))?;
                crate::disk::remove(&path).at(&path)?;
                datafile::sync_dir(dir)?;
                report.files_removed.push(id);
                continue;
            }
            let seq_floor = file
                .header
                .map(|h| h.seq_floor)
                .or(file.min_seq)
                .unwrap_or(1);
            // The file cannot have changed since the check read it: this
            // process holds the writer lock.
            let bytes = std::fs::read(&path).at(&path)?;
            let mut out =
                DataFile::create_tmp(dir, id, seq_floor, crate::datafile::FLAG_REWRITTEN)?;
            let written = write_records(&out, &bytes, &file.kept);
            if let Err(error) = written {
                out.discard();
                return Err(error);
            }
            #[cfg(test)]
            crate::failpoint::step("repair: wrote the new file");
            remove_hint(dir, id, &mut report)?;
            keep_original(&path, &aside.join(&name))?;
            #[cfg(test)]
            crate::failpoint::step("repair: kept the original");
            out.publish(dir)?;
            #[cfg(test)]
            crate::failpoint::step("repair: replaced the file");
            report.files_rewritten.push(id);
        }
        report.moved_to = Some(aside);
    }
    for &id in &scan.report.bad_hints {
        if !report.hints_removed.contains(&id) {
            remove_hint(dir, id, &mut report)?;
        }
    }
    if let Some(aside) = &report.moved_to {
        let path = aside.join(REPORT_FILE);
        let file = crate::disk::create(&path).at(&path)?;
        crate::disk::write_at(&file, report.to_string().as_bytes(), 0).at(&path)?;
        crate::disk::sync_all(&file).at(&path)?;
    }
    // Open once: recovery cuts a torn tail the usual way, and proves the
    // store opens.
    drop(lock);
    crate::Bitcask::open_with(dir, Options::new().merge_trigger(None))?.close()?;
    Ok(report)
}

/// Creates `repair-<unix ms>/` in `dir` (a later number if taken).
fn make_repair_dir(dir: &Path) -> Result<PathBuf> {
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    loop {
        let path = dir.join(format!("repair-{ms}"));
        match crate::disk::create_dir(&path) {
            Ok(()) => {
                datafile::sync_dir(dir)?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ms += 1,
            Err(e) => return Err(e).at(&path),
        }
    }
}

/// Hard-links the damaged original into the repair directory and makes the
/// link durable, so its bytes survive whatever happens next.
fn keep_original(path: &Path, dest: &Path) -> Result<()> {
    crate::disk::hard_link(path, dest).at(dest)?;
    datafile::sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Removes the hint file of data file `id`, if there is one.
fn remove_hint(dir: &Path, id: u32, report: &mut RepairReport) -> Result<()> {
    let path = dir.join(datafile::hint_file_name(id));
    match crate::disk::remove(&path) {
        Ok(()) => {
            datafile::sync_dir(dir)?;
            report.hints_removed.push(id);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(&path),
    }
}

/// Copies the surviving records into the new file after its header, and
/// fsyncs it.
fn write_records(out: &DataFile, bytes: &[u8], kept: &[std::ops::Range<usize>]) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut offset = FILE_HEADER_LEN as u64;
    let mut buf = Vec::with_capacity(CHUNK);
    let flush = |buf: &mut Vec<u8>, offset: &mut u64| -> Result<()> {
        out.write_all_at(buf, *offset).at(&out.path)?;
        *offset += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    for range in kept {
        buf.extend_from_slice(&bytes[range.clone()]);
        if buf.len() >= CHUNK {
            flush(&mut buf, &mut offset)?;
        }
    }
    flush(&mut buf, &mut offset)?;
    out.sync_all().at(&out.path)
}

/// A key for a person: the text if it is UTF-8, else hex.
fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{text:?}"),
        Err(_) => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} data files, {} bytes, {} records verified",
            self.files.len(),
            self.bytes(),
            self.records()
        )?;
        for (file, damage) in self.damage() {
            write!(
                f,
                "DAMAGE {} offset {} ({} bytes): {}",
                file.path.display(),
                damage.offset,
                damage.len,
                damage.kind
            )?;
            match (damage.seq_after, damage.seq_before) {
                (Some(a), Some(b)) => write!(f, "; lost versions between {a} and {b}")?,
                (Some(a), None) => write!(f, "; lost versions above {a}")?,
                (None, Some(b)) => write!(f, "; lost versions below {b}")?,
                (None, None) => {}
            }
            if !damage.keys.is_empty() {
                let keys: Vec<String> = damage.keys.iter().map(|k| show_key(k)).collect();
                write!(f, "; keys: {}", keys.join(", "))?;
            }
            writeln!(f)?;
        }
        for file in &self.files {
            if let Some(at) = file.torn_tail {
                writeln!(
                    f,
                    "torn tail {} from offset {} ({} bytes): the next open cuts it",
                    file.path.display(),
                    at,
                    file.len.saturating_sub(at)
                )?;
            }
        }
        for id in &self.bad_hints {
            writeln!(
                f,
                "hint file {} does not verify: open reads the data file instead",
                datafile::hint_file_name(*id)
            )?;
        }
        if self.is_damaged() {
            writeln!(f, "damage found")
        } else {
            writeln!(f, "no damage")
        }
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.found)?;
        let Some(aside) = &self.moved_to else {
            return writeln!(f, "nothing to repair");
        };
        for id in &self.files_rewritten {
            writeln!(
                f,
                "rewrote {} with its surviving records",
                datafile::data_file_name(*id)
            )?;
        }
        for id in &self.files_removed {
            writeln!(
                f,
                "removed {}: no record in it survived",
                datafile::data_file_name(*id)
            )?;
        }
        writeln!(f, "damaged originals kept in {}", aside.display())?;
        writeln!(
            f,
            "a lost record may have been its key's newest write: such a key now \
             shows its previous value, or is absent (a lost delete brings the \
             previous value back); check the keys and versions listed above"
        )
    }
}

#[cfg(test)]
mod tests {
    //! Crash safety of repair: the directory is copied at every step of the
    //! protocol (what a process killed there would leave); in every copy the
    //! damaged originals are still somewhere, and repairing the copy gives
    //! the same store as the uninterrupted repair.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::{Bitcask, SyncPolicy};

    type Contents = BTreeMap<Vec<u8>, Vec<u8>>;

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let dest = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_tree(&entry.path(), &dest);
            } else {
                std::fs::copy(entry.path(), dest).expect("copy");
            }
        }
    }

    fn contents(dir: &Path) -> Contents {
        let db = Bitcask::open_with(dir, Options::new().sync(SyncPolicy::Never)).expect("open");
        let out = db
            .keys()
            .map(|k| {
                let v = db.get(&k).expect("get").expect("listed key reads");
                (k, v)
            })
            .collect();
        db.close().expect("close");
        out
    }

    /// Whether `bytes` are in `dir` as data file `name`, in place or in a
    /// repair directory.
    fn original_kept(dir: &Path, name: &str, bytes: &[u8]) -> bool {
        let in_place = std::fs::read(dir.join(name)).is_ok_and(|b| b == bytes);
        in_place
            || std::fs::read_dir(dir).expect("read dir").any(|e| {
                let path = e.expect("entry").path();
                path.is_dir() && std::fs::read(path.join(name)).is_ok_and(|b| b == bytes)
            })
    }

    #[test]
    fn a_crash_at_any_step_of_a_repair_keeps_the_originals_and_a_rerun_finishes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(
            dir.path(),
            Options::new()
                .sync(SyncPolicy::Never)
                .max_file_size(2000)
                .use_hints(false)
                .merge_trigger(None),
        )
        .expect("open");
        let mut expected = Contents::new();
        for i in 0..60u32 {
            let (k, v) = (format!("key-{i:03}"), vec![i as u8; 50]);
            db.put(k.as_bytes(), &v).expect("put");
            expected.insert(k.into_bytes(), v);
        }
        db.close().expect("close");
        let listing = datafile::list_dir(dir.path()).expect("list");
        assert!(listing.data.len() >= 3);
        // Damage a value byte in the first record of the first two files.
        let mut damaged = Vec::new();
        for &id in &listing.data[..2] {
            let name = datafile::data_file_name(id);
            let path = dir.path().join(&name);
            let mut bytes = std::fs::read(&path).expect("read");
            let key_at = FILE_HEADER_LEN + crate::record::HEADER_LEN;
            let key = bytes[key_at..key_at + 7].to_vec();
            bytes[key_at + 10] ^= 0xff;
            std::fs::write(&path, &bytes).expect("write");
            expected.remove(&key);
            damaged.push((name, bytes));
        }

        let snapshots = tempfile::tempdir().expect("tempdir");
        let taken = Rc::new(RefCell::new(Vec::new()));
        {
            let (taken, from, root) = (
                Rc::clone(&taken),
                dir.path().to_path_buf(),
                snapshots.path().to_path_buf(),
            );
            crate::failpoint::observe(move |step| {
                // Repair's own steps; the close of the store it opens at the
                // end has steps of its own, tested in db.rs.
                if !step.starts_with("repair:") {
                    return;
                }
                let to = root.join(taken.borrow().len().to_string());
                copy_tree(&from, &to);
                taken.borrow_mut().push((step, to));
            });
        }
        let report = repair(dir.path());
        crate::failpoint::stop_observing();
        let report = report.expect("repair");
        assert_eq!(report.files_rewritten.len(), 2);
        assert_eq!(contents(dir.path()), expected);
        // No history from before the repair is promised any more.
        let reopened = crate::Bitcask::open(dir.path()).expect("open");
        assert_eq!(
            Some(reopened.compacted_seq()),
            reopened.next_version(),
            "compacted up to the next write"
        );
        // The history written after the repair stays promised across opens.
        let after_repair = reopened.compacted_seq();
        reopened.put(b"after-repair", b"v").expect("put");
        reopened.close().expect("close");
        let again = crate::Bitcask::open(dir.path()).expect("open again");
        assert_eq!(again.compacted_seq(), after_repair);
        assert_eq!(
            again
                .changes(after_repair)
                .expect("changes")
                .next_batch(10)
                .expect("read")
                .len(),
            1
        );
        again.close().expect("close");
        // A rewritten file is flagged so (its history has a hole where the
        // damage was: the change feed must not read it as the log).
        for id in &report.files_rewritten {
            let path = dir.path().join(crate::datafile::data_file_name(*id));
            let bytes = std::fs::read(&path).expect("read");
            let head = bytes.first_chunk().expect("header");
            let header =
                crate::datafile::FileHeader::decode(head, &path, crate::datafile::KIND_DATA, *id)
                    .expect("header");
            assert_eq!(header.flags, crate::datafile::FLAG_REWRITTEN, "file {id}");
        }

        let taken = taken.borrow();
        assert_eq!(taken.len(), 6, "three steps per damaged file");
        for (step, copy) in taken.iter() {
            for (name, bytes) in &damaged {
                assert!(
                    original_kept(copy, name, bytes),
                    "after {step:?}: the original of {name} is gone"
                );
            }
            repair(copy).unwrap_or_else(|e| panic!("after {step:?}: rerun failed: {e}"));
            assert_eq!(contents(copy), expected, "after {step:?}");
        }
    }
}
