//! Which records of a data file survive, in one place for open (recovery),
//! check and repair (docs/FORMAT.md, "Which records survive"):
//!
//! - a batch's records ([`RecordKind::BatchPut`], [`RecordKind::BatchDelete`])
//!   count only once a committing record follows them ([`Batch`]);
//! - a record that fails to verify in the newest file is a torn tail (cut,
//!   with the batch it interrupted) unless a verified record starts where it
//!   declares its end; anywhere else it is damage ([`judge`]).
//!
//! [`RecordKind::BatchPut`]: crate::record::RecordKind::BatchPut
//! [`RecordKind::BatchDelete`]: crate::record::RecordKind::BatchDelete

/// The records of a batch read so far, waiting for the record that commits
/// them.
#[derive(Debug)]
pub(crate) struct Batch<T> {
    ops: Vec<T>,
    start: u64,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self {
            ops: Vec::new(),
            start: 0,
        }
    }
}

impl<T> Batch<T> {
    /// Holds `op`, read from the record at `offset`, until a commit.
    pub(crate) fn hold(&mut self, offset: u64, op: T) {
        if self.ops.is_empty() {
            self.start = offset;
        }
        self.ops.push(op);
    }

    /// A committing record was read: the held records survive, in order.
    pub(crate) fn commit(&mut self, mut apply: impl FnMut(T)) {
        for op in self.ops.drain(..) {
            apply(op);
        }
    }

    /// The offset of the first held record, if any are held.
    pub(crate) fn start(&self) -> Option<u64> {
        (!self.ops.is_empty()).then_some(self.start)
    }

    /// The file ended, or a bad record came, before the commit: the held
    /// records never survive. Returns them with the first one's offset.
    pub(crate) fn abandon(&mut self) -> Option<(u64, Vec<T>)> {
        let start = self.start()?;
        Some((start, std::mem::take(&mut self.ops)))
    }
}

/// What a record that fails to verify means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The end of the log: a write a crash cut short. Open cuts the file
    /// at this offset (the bad record, or the start of the batch it
    /// interrupted).
    TornTail {
        /// Where the file is cut.
        cut_at: u64,
    },
    /// Damage inside the log: open fails; check reports it; repair keeps
    /// the records around it.
    Damage,
}

/// Where a data file stands in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileRole {
    /// The newest file: the one written last, which a crash may have cut.
    Newest,
    /// Any older file: sealed, complete, never written again.
    Sealed,
}

/// Judges the record that failed to verify at `offset`: in the newest
/// file, a torn tail unless a verified record starts anywhere after it
/// (`verified_after`: then the bytes after it were written whole, and
/// cutting would drop them); in a sealed file, always damage.
/// `batch_start`: where the batch the record interrupted began, if any.
pub(crate) fn judge(
    role: FileRole,
    offset: u64,
    batch_start: Option<u64>,
    verified_after: bool,
) -> BadRecord {
    if role == FileRole::Newest && !verified_after {
        BadRecord::TornTail {
            cut_at: batch_start.unwrap_or(offset),
        }
    } else {
        BadRecord::Damage
    }
}

/// Largest `seq` or `expires_at_ms` a plausible record header carries while
/// looking past damage (2^48: 8,900 years of milliseconds, 280 trillion
/// writes). Random bytes pass this test once in 65,536 tries, which keeps
/// the search through a damaged region from checksumming garbage.
const PLAUSIBLE_LIMIT: u64 = 1 << 48;

/// The verified record at `at` in `bytes`, if one starts there and its
/// header looks like one the engine writes (cheap tests on the raw header
/// first: most offsets in garbage fail them).
pub(crate) fn plausible_record_at(
    bytes: &[u8],
    at: usize,
) -> Option<crate::record::VerifiedRecord<'_>> {
    let head = bytes.get(at..at.checked_add(crate::record::HEADER_LEN)?)?;
    let field = |from: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[from..from + 8]);
        u64::from_le_bytes(b)
    };
    let (seq, expires) = (field(4), field(12));
    if head[20] > 4 || seq == 0 || seq >= PLAUSIBLE_LIMIT || expires >= PLAUSIBLE_LIMIT {
        return None;
    }
    crate::record::read_from(bytes, at).ok()
}

/// Where the first verified, plausible record starts in `bytes` after its
/// first byte (the bytes from a bad record on), if one does.
pub(crate) fn next_record_after(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len()).find(|&at| plausible_record_at(bytes, at).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_records_survive_only_a_commit() {
        let mut batch = Batch::default();
        assert_eq!(batch.start(), None);
        batch.hold(100, "a");
        batch.hold(130, "b");
        assert_eq!(batch.start(), Some(100));
        let mut applied = Vec::new();
        batch.commit(|op| applied.push(op));
        assert_eq!(applied, ["a", "b"]);
        assert_eq!(batch.start(), None);
        batch.hold(200, "c");
        assert_eq!(batch.abandon(), Some((200, vec!["c"])));
        assert_eq!(batch.abandon(), None);
    }

    #[test]
    fn only_the_newest_file_has_a_torn_tail() {
        use FileRole::{Newest, Sealed};
        assert_eq!(
            judge(Newest, 50, None, false),
            BadRecord::TornTail { cut_at: 50 }
        );
        assert_eq!(
            judge(Newest, 50, Some(20), false),
            BadRecord::TornTail { cut_at: 20 }
        );
        assert_eq!(judge(Newest, 50, None, true), BadRecord::Damage);
        assert_eq!(judge(Sealed, 50, None, false), BadRecord::Damage);
    }
}
