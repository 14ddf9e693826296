//! The compacted seq `C` of the change feed (docs/WATCH.md): every seq
//! below it may have been dropped by a merge or a repair, every committed
//! record at or above it is still in a data file the writer wrote (not a
//! rewritten one). Kept in the state file `HISTORY` (an 8-byte
//! little-endian value in the journal's state-file framing), replaced
//! atomically: before a merge deletes its inputs, `C` rises to the active
//! file's `seq_floor` at the merge's start (docs/FORMAT.md, "Merge").
//!
//! Crash protocol: the file is replaced whole (temporary file, fsync,
//! rename, directory fsync), so a crash leaves the old value or the new one;
//! the old one with the inputs not yet deleted promises only what is there,
//! the new one before their deletion promises less than is there. A missing
//! or damaged file is replaced by a conservative value (see [`load`]).

use std::path::Path;

use crate::error::{Error, Result};
use crate::journal::{read_state_file, write_state_file};

/// The file's name in the store directory.
pub(crate) const FILE_NAME: &str = "HISTORY";

/// Writes `compacted` as the store's `C`, durably.
pub(crate) fn store(dir: &Path, compacted: u64) -> Result<()> {
    write_state_file(dir, FILE_NAME, &compacted.to_le_bytes())
}

/// The store's `C` at open. `new_store`: the directory holds no data file
/// yet (its history starts now: `C = 0`, written before the first data
/// file so that a crash in between leaves `C = 0` beside no file).
/// Otherwise, without a readable `HISTORY` (a store written by a version
/// before the change feed, whose merges flagged nothing, or a damaged
/// file), `C` is `active_floor`, the active file's `seq_floor`: only its
/// history is promised. Never above `next_seq`: a repair stores the top
/// (`u64::MAX`, "nothing written so far"), which the first open after it
/// turns into the seq the next write will take, and keeps (left at the top,
/// every later open would compact the history written since). Writes what
/// it decided unless `read_only`.
pub(crate) fn load(
    dir: &Path,
    new_store: bool,
    active_floor: u64,
    next_seq: u64,
    read_only: bool,
) -> Result<u64> {
    if new_store {
        if !read_only {
            store(dir, 0)?;
        }
        return Ok(0);
    }
    let found = match read_state_file(dir, FILE_NAME) {
        Ok(Some(bytes)) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(value) => Some(u64::from_le_bytes(value)),
            Err(_) => {
                tracing::warn!(dir = %dir.display(), "HISTORY holds no 8-byte value; replacing it");
                None
            }
        },
        Ok(None) => None,
        Err(Error::Corruption { path, .. }) => {
            tracing::warn!(path = %path.display(), "HISTORY does not verify; replacing it");
            None
        }
        Err(other) => return Err(other),
    };
    match found {
        Some(compacted) if compacted > next_seq => {
            if !read_only {
                store(dir, next_seq)?;
            }
            Ok(next_seq)
        }
        Some(compacted) => Ok(compacted),
        None => {
            if !read_only {
                store(dir, active_floor)?;
            }
            Ok(active_floor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_starts_at_zero_an_old_one_at_its_active_file_and_the_value_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path(), true, 1, 1, false).expect("new"), 0);
        assert_eq!(load(dir.path(), false, 50, 60, false).expect("kept"), 0);
        store(dir.path(), 42).expect("store");
        assert_eq!(load(dir.path(), false, 50, 60, false).expect("read"), 42);
        // Written by an older version: no file, so the active file's floor.
        let old = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            load(old.path(), false, 50, 60, true).expect("read-only"),
            50
        );
        assert!(
            !old.path().join(FILE_NAME).exists(),
            "read-only writes nothing"
        );
        assert_eq!(
            load(old.path(), false, 50, 60, false).expect("writable"),
            50
        );
        assert_eq!(
            load(old.path(), false, 99, 120, false).expect("persisted"),
            50
        );
    }

    #[test]
    fn a_damaged_file_is_replaced_by_the_conservative_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), 7).expect("store");
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, bytes).expect("damage");
        assert_eq!(
            load(dir.path(), false, 30, 40, false).expect("replaced"),
            30
        );
        assert_eq!(
            load(dir.path(), false, 99, 120, false).expect("now valid"),
            30
        );
    }

    #[test]
    fn a_repairs_top_value_becomes_the_next_seq_once_and_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), u64::MAX).expect("store");
        assert_eq!(
            load(dir.path(), false, 10, 100, true).expect("read-only"),
            100
        );
        assert_eq!(
            load(dir.path(), false, 10, 100, false).expect("clamped"),
            100
        );
        // Writes since: the history from 100 on stays promised.
        assert_eq!(load(dir.path(), false, 10, 250, false).expect("kept"), 100);
    }
}
