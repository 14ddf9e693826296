//! Space accounting per data file, and the [`Stats`] snapshot.
//!
//! The engine keeps, for every data file, its length, the bytes and number
//! of the records the key directory points into it (live), and the earliest
//! expiry among the records written to it. Merge uses these to choose its
//! inputs (see `docs/FORMAT.md`, "Merge"); [`Stats`] reports them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::datafile::FILE_HEADER_LEN;
use crate::keydir::Entry;

/// What the engine knows of one data file's space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FileAccount {
    /// The file's `seq_floor`: with the id, its place in log order.
    pub seq_floor: u64,
    /// Length of the file (header included).
    pub total_bytes: u64,
    /// Bytes of the records the key directory points to.
    pub live_bytes: u64,
    /// Number of those records.
    pub live_keys: u64,
    /// Earliest `expires_at_ms` among the puts written to the file (0 = none).
    /// Only lowered, never raised: it may name a record already dead.
    pub earliest_expiry_ms: u64,
    /// The header's rewritten flag (a merge's or a repair's output), which
    /// the change feed skips; kept here so that it is not read again.
    pub rewritten: bool,
}

impl FileAccount {
    /// Bytes of the file that merge would reclaim now (header excluded).
    pub(crate) fn dead_bytes(&self) -> u64 {
        self.total_bytes
            .saturating_sub(FILE_HEADER_LEN as u64)
            .saturating_sub(self.live_bytes)
    }

    /// Whether merge has anything to drop from this file at `now_ms`.
    pub(crate) fn needs_merge(&self, now_ms: u64) -> bool {
        self.dead_bytes() > 0 || (self.earliest_expiry_ms != 0 && self.earliest_expiry_ms <= now_ms)
    }

    fn note_expiry(&mut self, expires_at_ms: u64) {
        if expires_at_ms != 0
            && (self.earliest_expiry_ms == 0 || expires_at_ms < self.earliest_expiry_ms)
        {
            self.earliest_expiry_ms = expires_at_ms;
        }
    }
}

/// The accounts of every data file, by id. Updates commute, so writer and
/// merge may apply theirs in any order and the totals stay exact.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    files: Mutex<BTreeMap<u32, FileAccount>>,
}

impl Accounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, FileAccount>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts accounting a file of `total_bytes` with nothing live yet
    /// (`rewritten`: its header's flag, [`FileAccount::rewritten`]).
    pub(crate) fn add_file(&self, id: u32, seq_floor: u64, total_bytes: u64, rewritten: bool) {
        self.lock().insert(
            id,
            FileAccount {
                seq_floor,
                total_bytes,
                rewritten,
                ..FileAccount::default()
            },
        );
    }

    /// Whether file `id` is accounted (it exists and has not been merged away).
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.lock().contains_key(&id)
    }

    /// Forgets a deleted file.
    pub(crate) fn remove_file(&self, id: u32) {
        self.lock().remove(&id);
    }

    /// A record of `len` bytes was appended to file `id` (one lock for the
    /// whole update: this runs on every write). `live` is the entry the key
    /// directory now holds for it (a put), `replaced` the entry it replaced
    /// or removed.
    pub(crate) fn written(
        &self,
        id: u32,
        len: u64,
        expires_at_ms: u64,
        live: Option<&Entry>,
        replaced: Option<&Entry>,
    ) {
        let mut files = self.lock();
        let account = files.entry(id).or_default();
        account.total_bytes += len;
        account.note_expiry(expires_at_ms);
        if let Some(entry) = live {
            add_live(&mut files, entry);
        }
        if let Some(entry) = replaced {
            remove_live(&mut files, entry);
        }
    }

    /// The key directory now points at `entry`.
    pub(crate) fn live(&self, entry: &Entry) {
        add_live(&mut self.lock(), entry);
    }

    /// Adds every entry of a freshly loaded key directory as live (one lock
    /// for the whole directory, not one per key), summed by up to `threads`
    /// threads.
    pub(crate) fn add_live(&self, keydir: &crate::keydir::KeyDir, threads: usize) {
        // File ids are not input; a fixed hasher is enough.
        type Sums = HashMap<u32, FileAccount, foldhash::fast::FixedState>;
        let sums = keydir.fold_entries(threads, Sums::default, |sums, entry| {
            let sum = sums.entry(entry.file_id).or_default();
            sum.live_bytes += u64::from(entry.len);
            sum.live_keys += 1;
            sum.note_expiry(entry.expires_at_ms);
        });
        let mut files = self.lock();
        for (id, sum) in sums.into_iter().flatten() {
            let account = files.entry(id).or_default();
            account.live_bytes += sum.live_bytes;
            account.live_keys += sum.live_keys;
            account.note_expiry(sum.earliest_expiry_ms);
        }
    }

    /// The key directory no longer points at `entry`.
    pub(crate) fn dead(&self, entry: &Entry) {
        remove_live(&mut self.lock(), entry);
    }

    /// A copy of every account, by id.
    pub(crate) fn snapshot(&self) -> BTreeMap<u32, FileAccount> {
        self.lock().clone()
    }
}

fn add_live(files: &mut BTreeMap<u32, FileAccount>, entry: &Entry) {
    let account = files.entry(entry.file_id).or_default();
    account.live_bytes += u64::from(entry.len);
    account.live_keys += 1;
    account.note_expiry(entry.expires_at_ms);
}

fn remove_live(files: &mut BTreeMap<u32, FileAccount>, entry: &Entry) {
    if let Some(account) = files.get_mut(&entry.file_id) {
        account.live_bytes = account.live_bytes.saturating_sub(u64::from(entry.len));
        account.live_keys = account.live_keys.saturating_sub(1);
    }
}

/// A snapshot of a store's size, space use and maintenance, from
/// [`Bitcask::stats`](crate::Bitcask::stats). Plain data, for the server to
/// serialise.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Live keys (expired keys not yet dropped by a merge or reopen count).
    pub keys: u64,
    /// Of those, the keys that carry an expiry.
    pub keys_with_expiry: u64,
    /// Number of data files.
    pub data_files: u64,
    /// Bytes in data files, headers included.
    pub total_bytes: u64,
    /// Bytes of the records the key directory points to.
    pub live_bytes: u64,
    /// Bytes a merge could reclaim: overwritten and deleted records, tombstones.
    pub dead_bytes: u64,
    /// Per data file, in log order (the active file last).
    pub files: Vec<FileStats>,
    /// Whether a merge is running now.
    pub merge_running: bool,
    /// How far the running merge is (`None` when none runs).
    pub merge_progress: Option<MergeProgress>,
    /// Merges completed since open.
    pub merges_completed: u64,
    /// The last completed merge, if any since open.
    pub last_merge: Option<MergeReport>,
    /// The last [`crate::RECENT_MERGES`] completed merges since open,
    /// newest first.
    pub recent_merges: Vec<MergeReport>,
    /// fsyncs issued by group commit since open.
    pub fsyncs: u64,
    /// Damaged records met since open (by reads, merges and scrubs; each
    /// record once). Anything above 0 wants `bitcask check`.
    pub damaged_records: u64,
    /// Reads that failed on a damaged record since open.
    pub damaged_reads: u64,
    /// Scrub passes completed since open.
    pub scrubs_completed: u64,
    /// The last completed scrub pass, if any since open.
    pub last_scrub: Option<ScrubReport>,
}

/// What a backup copied, from [`Bitcask::backup`](crate::Bitcask::backup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Data files copied (each sealed one with its hint file, if any).
    pub data_files: u64,
    /// Bytes of data files copied.
    pub bytes: u64,
    /// How long it took.
    pub duration: Duration,
}

/// What one scrub pass did, in [`Stats`] and as the result of
/// [`Bitcask::scrub`](crate::Bitcask::scrub).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScrubReport {
    /// Wall-clock start, in Unix milliseconds.
    pub started_at_ms: u64,
    /// How long it ran.
    pub duration: Duration,
    /// Sealed data files read.
    pub files_verified: u64,
    /// Record bytes verified.
    pub bytes_verified: u64,
    /// Damaged records found (a file is read up to its first).
    pub damaged_records: u64,
}

/// How far a running merge is, in [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeProgress {
    /// Record bytes of its input files read so far.
    pub bytes_read: u64,
    /// Record bytes of all its input files.
    pub bytes_total: u64,
}

/// Space use of one data file, in [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStats {
    /// The file's number (`NNNNNNNNNN.data`).
    pub id: u32,
    /// Whether it is the active file (the one appended to).
    pub active: bool,
    /// Its length in bytes.
    pub total_bytes: u64,
    /// Bytes of its records that the key directory points to.
    pub live_bytes: u64,
    /// Bytes a merge could reclaim from it.
    pub dead_bytes: u64,
    /// Number of keys whose value is in it.
    pub live_keys: u64,
}

/// What one merge did, in [`Stats`] and as the result of
/// [`Bitcask::merge`](crate::Bitcask::merge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeReport {
    /// Wall-clock start, in Unix milliseconds.
    pub started_at_ms: u64,
    /// How long it ran.
    pub duration: Duration,
    /// Data files read (and deleted).
    pub files_merged: u64,
    /// Data files written.
    pub files_written: u64,
    /// Bytes read from the inputs.
    pub bytes_read: u64,
    /// Bytes written to the outputs.
    pub bytes_written: u64,
    /// Records copied.
    pub records_kept: u64,
    /// Records dropped (overwritten, deleted, tombstones, expired).
    pub records_dropped: u64,
}

impl MergeReport {
    /// Bytes of disk the merge gave back.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_read.saturating_sub(self.bytes_written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file_id: u32, len: u32, expires_at_ms: u64) -> Entry {
        Entry {
            file_id,
            offset: 32,
            len,
            seq: 1,
            expires_at_ms,
        }
    }

    #[test]
    fn live_and_dead_bytes_follow_the_key_directory() {
        let accounts = Accounts::default();
        accounts.add_file(1, 1, FILE_HEADER_LEN as u64, false);
        accounts.written(1, 100, 0, Some(&entry(1, 100, 0)), None);
        accounts.written(1, 50, 0, Some(&entry(1, 50, 0)), Some(&entry(1, 100, 0)));
        let a = accounts.snapshot()[&1];
        assert_eq!((a.total_bytes, a.live_bytes, a.live_keys), (182, 50, 1));
        assert_eq!(a.dead_bytes(), 100);
        assert!(a.needs_merge(0));
    }

    #[test]
    fn an_expiry_makes_a_fully_live_file_need_a_merge_once_it_passes() {
        let accounts = Accounts::default();
        accounts.add_file(2, 1, FILE_HEADER_LEN as u64, false);
        accounts.written(2, 60, 500, Some(&entry(2, 60, 500)), None);
        let a = accounts.snapshot()[&2];
        assert_eq!(a.dead_bytes(), 0);
        assert!(!a.needs_merge(499));
        assert!(a.needs_merge(500));
    }
}
