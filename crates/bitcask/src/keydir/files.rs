//! One shard's table of the data files its entries point into: what lets
//! an entry keep a 16-bit file index and a 28-bit sequence delta instead of
//! a 32-bit file id and a 64-bit sequence number.
//!
//! Each file the shard's entries use has a row: its id, the base its
//! entries' seqs are counted from, and how many entries use it. A row is
//! made when the first entry points at the file (its base: that entry's seq
//! less 2^27, so every seq within 2^27 either side fits the delta) and
//! freed when the last one leaves, so the table holds only the files that
//! have live keys in this shard. A seq outside its file's window (a merge
//! output whose records span more than 2^27 writes) is the caller's to keep
//! elsewhere ([`FileTable::delta`] says so), and so is a file that finds
//! the table full (65,535 rows: [`FileTable::acquire`] says so).

use std::collections::HashMap;

use super::entries::{DELTA_BITS, NO_ROW};

/// Half the window of seqs a file's deltas cover.
const HALF_WINDOW: u64 = 1 << (DELTA_BITS - 1);

/// One file's row.
#[derive(Debug, Clone, Copy)]
struct Row {
    file_id: u32,
    seq_base: u64,
    /// Entries pointing at the file; 0 for a free row.
    users: u32,
}

/// The file table of one shard.
#[derive(Debug, Default)]
pub(crate) struct FileTable {
    rows: Vec<Row>,
    /// Row index by file id. File ids are chosen by the store, not input,
    /// so a fixed hasher is enough.
    by_id: HashMap<u32, u16, foldhash::fast::FixedState>,
    free: Vec<u16>,
    /// The last file looked up and its row: puts go to the active file, so
    /// this saves the map lookup for almost all of them.
    last: Option<(u32, u16)>,
}

impl FileTable {
    /// The row for `file_id`, made if needed with `seq` deciding its base,
    /// counting one more user of it; `None` if it has none and the table
    /// is full.
    pub(crate) fn acquire(&mut self, file_id: u32, seq: u64) -> Option<u16> {
        let row = match self.last {
            Some((id, row)) if id == file_id => row,
            _ => match self.by_id.get(&file_id) {
                Some(&row) => row,
                None => self.make(file_id, seq)?,
            },
        };
        self.last = Some((file_id, row));
        self.rows[usize::from(row)].users += 1;
        Some(row)
    }

    fn make(&mut self, file_id: u32, seq: u64) -> Option<u16> {
        let fresh = Row {
            file_id,
            seq_base: seq.saturating_sub(HALF_WINDOW),
            users: 0,
        };
        let row = match self.free.pop() {
            Some(row) => {
                self.rows[usize::from(row)] = fresh;
                row
            }
            None if self.rows.len() < usize::from(NO_ROW) => {
                self.rows.push(fresh);
                (self.rows.len() - 1) as u16
            }
            None => return None,
        };
        self.by_id.insert(file_id, row);
        Some(row)
    }

    /// Counts one user fewer of `row` (nothing for [`NO_ROW`]), freeing it
    /// after the last.
    pub(crate) fn release(&mut self, row: u16) {
        if row == NO_ROW {
            return;
        }
        let r = &mut self.rows[usize::from(row)];
        r.users -= 1;
        if r.users == 0 {
            self.by_id.remove(&r.file_id);
            self.free.push(row);
            if self.last.is_some_and(|(_, last)| last == row) {
                self.last = None;
            }
        }
    }

    /// The file id of `row`.
    pub(crate) fn file_id(&self, row: u16) -> u32 {
        self.rows[usize::from(row)].file_id
    }

    /// `seq` as a delta from `row`'s base, if it fits in 28 bits.
    pub(crate) fn delta(&self, row: u16, seq: u64) -> Option<u32> {
        seq.checked_sub(self.rows[usize::from(row)].seq_base)
            .filter(|&d| d < 1 << DELTA_BITS)
            .map(|d| d as u32)
    }

    /// The seq that `delta` stands for in `row`.
    pub(crate) fn seq(&self, row: u16, delta: u32) -> u64 {
        self.rows[usize::from(row)].seq_base + u64::from(delta)
    }

    /// Rows with users.
    #[cfg(test)]
    pub(crate) fn rows_in_use(&self) -> usize {
        self.by_id.len()
    }

    /// Bytes held (rows, map, free list), roughly.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.rows.capacity() * size_of::<Row>()
            + self.by_id.capacity() * 7
            + self.free.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_shared_counted_and_freed_after_the_last_user() {
        let mut files = FileTable::default();
        let a = files.acquire(7, 100).expect("row");
        assert_eq!(files.acquire(7, 5_000), Some(a), "same file, same row");
        let b = files.acquire(9, 100).expect("row");
        assert_ne!(a, b);
        assert_eq!((files.file_id(a), files.file_id(b)), (7, 9));
        files.release(a);
        assert_eq!(files.acquire(7, 1), Some(a), "still in use once");
        files.release(a);
        files.release(a);
        let c = files.acquire(11, 3).expect("row");
        assert_eq!(c, a, "a freed row is reused");
        assert_eq!(files.file_id(c), 11);
        assert_eq!(
            files.acquire(7, 1),
            Some(2),
            "file 7 lost its row and got a new one"
        );
        files.release(NO_ROW);
    }

    #[test]
    fn a_full_table_says_so_and_takes_files_again_once_a_row_is_free() {
        let mut files = FileTable::default();
        for id in 0..u32::from(NO_ROW) {
            assert_eq!(files.acquire(id, 1), Some(id as u16));
        }
        assert_eq!(files.acquire(1_000_000, 1), None, "full");
        assert_eq!(
            files.acquire(5, 1),
            Some(5),
            "a file with a row still gets it"
        );
        files.release(9);
        assert_eq!(files.acquire(1_000_000, 1), Some(9));
    }

    #[test]
    fn deltas_cover_two_to_the_27_either_side_of_the_first_seq() {
        let mut files = FileTable::default();
        let row = files.acquire(1, 10 * HALF_WINDOW).expect("row");
        for seq in [9 * HALF_WINDOW, 10 * HALF_WINDOW, 11 * HALF_WINDOW - 1] {
            let delta = files.delta(row, seq).expect("within the window");
            assert_eq!(files.seq(row, delta), seq);
        }
        assert_eq!(files.delta(row, 9 * HALF_WINDOW - 1), None);
        assert_eq!(files.delta(row, 11 * HALF_WINDOW), None);
        let low = files.acquire(2, 3).expect("row");
        assert_eq!(files.delta(low, 0), Some(0), "the base never goes below 0");
    }
}
