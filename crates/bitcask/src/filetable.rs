//! The file table: how to read every data file, by id, for the read path.
//!
//! Every get looks its record's file up here, so the lookup must not write
//! to memory other threads read. A `RwLock` around the map did (two atomic
//! read-modify-writes on the lock word and two on the handle's reference
//! count, all on cache lines every reader shares), and random reads on two
//! threads ran barely faster than on one (docs/BENCHMARKS.md). The table is
//! instead an immutable map behind an [`ArcSwap`]: a reader borrows the
//! current map through a guard that arc-swap keeps in a per-thread slot,
//! reads its record, and drops the guard; the rare writers (rotation, a
//! merge adding or dropping files) copy the map, change the copy and swap
//! it in. A reader that loaded the old map keeps its handles (and their
//! memory maps) alive until it drops the guard, so a file dropped by merge
//! is unmapped only after the last read through it.
//!
//! arc-swap is the ecosystem's standard crate for this pattern; it has no
//! dependencies of its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::datafile::ReadHandle;

type Map = BTreeMap<u32, Arc<ReadHandle>>;

/// Every data file's read handle, by file id.
#[derive(Debug)]
pub(crate) struct FileTable {
    current: ArcSwap<Map>,
    /// Serialises updates, so two of them (rotation and merge) cannot both
    /// copy the same map and lose one's change.
    update: Mutex<()>,
}

impl FileTable {
    /// A table of these handles.
    pub(crate) fn new(files: Map) -> Self {
        Self {
            current: ArcSwap::from_pointee(files),
            update: Mutex::new(()),
        }
    }

    /// Calls `f` with the handle of file `id` (or `None` if there is no such
    /// file), which stays valid, mapped, for as long as `f` runs.
    pub(crate) fn with<R>(&self, id: u32, f: impl FnOnce(Option<&ReadHandle>) -> R) -> R {
        let map = self.current.load();
        f(map.get(&id).map(|handle| &**handle))
    }

    /// The handle of file `id`, if there is one (valid while held).
    pub(crate) fn get(&self, id: u32) -> Option<Arc<ReadHandle>> {
        self.current.load().get(&id).map(Arc::clone)
    }

    /// Every file's handle, in id order (they stay valid while held).
    pub(crate) fn snapshot(&self) -> Vec<(u32, Arc<ReadHandle>)> {
        self.current
            .load()
            .iter()
            .map(|(id, handle)| (*id, Arc::clone(handle)))
            .collect()
    }

    /// Changes the table: `f` edits a copy, which then replaces it.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Map)) {
        let _serial = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Map::clone(&self.current.load());
        f(&mut next);
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_seen_and_old_handles_live_while_borrowed() {
        let table = FileTable::new(Map::new());
        assert!(table.with(1, |h| h.is_none()));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = crate::datafile::DataFile::create(dir.path(), 1, 1).expect("create");
        let handle = Arc::new(ReadHandle::Open(Arc::new(file)));
        table.update(|map| {
            map.insert(1, Arc::clone(&handle));
        });
        assert_eq!(table.snapshot().len(), 1);
        table.with(1, |h| {
            assert!(h.is_some());
            // Removed while borrowed: this borrow still sees the old map.
            table.update(|map| {
                map.remove(&1);
            });
            assert!(h.is_some_and(|h| h.len().is_ok()));
        });
        assert!(table.with(1, |h| h.is_none()));
        assert!(table.snapshot().is_empty());
        // Only the test's own reference is left.
        assert_eq!(Arc::strong_count(&handle), 1);
    }
}
