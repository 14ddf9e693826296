//! Options chosen when a store is opened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// When the engine calls `fsync` on the active data file.
///
/// See `docs/FORMAT.md` ("What a crash can lose") for the exact promise of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every write returns only after an fsync that covers it. Concurrent
    /// writers share fsyncs (group commit). A returned write survives power loss.
    Always,
    /// A background thread fsyncs at this interval when anything was written.
    /// A power cut loses at most about this much time of writes.
    Interval(Duration),
    /// Only rotation, [`Bitcask::sync`](crate::Bitcask::sync) and close fsync;
    /// the kernel writes back the rest when it chooses.
    Never,
}

/// When the background thread starts a merge by itself.
///
/// Every `check_every`, it merges if any sealed file has at least
/// `dead_fraction` of its bytes dead, or if all files together hold at least
/// `dead_bytes` dead bytes. (The merge then rewrites every sealed file with
/// anything to reclaim; see `docs/FORMAT.md`, "Merge".)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeTrigger {
    /// Fraction (0..=1) of dead bytes in one sealed file that starts a merge.
    pub dead_fraction: f64,
    /// Dead bytes in total that start a merge.
    pub dead_bytes: u64,
    /// How often the thresholds are checked.
    pub check_every: Duration,
}

impl Default for MergeTrigger {
    /// Half of a file dead, or 1 GiB dead in total, checked every minute.
    fn default() -> Self {
        Self {
            dead_fraction: 0.5,
            dead_bytes: 1 << 30,
            check_every: Duration::from_secs(60),
        }
    }
}

/// Settings for [`Bitcask::open_with`](crate::Bitcask::open_with).
///
/// Built by value: `Options::new().sync(SyncPolicy::Never).max_file_size(64 << 20)`.
#[derive(Debug, Clone)]
#[must_use]
pub struct Options {
    pub(crate) sync: SyncPolicy,
    pub(crate) max_file_size: u64,
    pub(crate) max_key_size: usize,
    pub(crate) max_value_size: usize,
    pub(crate) read_only: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) merge_trigger: Option<MergeTrigger>,
    pub(crate) merge_bytes_per_sec: Option<u64>,
    pub(crate) scrub: Option<Scrub>,
    pub(crate) expire_interval: Option<std::time::Duration>,
    pub(crate) use_hints: bool,
    pub(crate) mapped_appends: bool,
    pub(crate) open_progress: Option<Arc<OpenProgress>>,
}

/// A background scrub: every `every`, read each sealed data file and verify
/// every record's checksum, spending at most `bytes_per_sec` of reads (as
/// ZFS and Ceph scrub), so damage on a disk is found before a read needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scrub {
    /// Time from the end of one pass to the start of the next (the first
    /// pass starts this long after open).
    pub every: std::time::Duration,
    /// Most bytes read per second.
    pub bytes_per_sec: u64,
}

/// How far an open has got, for a caller that reports it while a large
/// store opens (the server's `/health`). Pass one with
/// [`Options::open_progress`] and read it from another thread.
#[derive(Debug, Default)]
pub struct OpenProgress {
    files_total: AtomicU64,
    files_loaded: AtomicU64,
}

impl OpenProgress {
    /// A progress record with nothing done.
    pub fn new() -> Self {
        Self::default()
    }

    /// Data files the open has to read (known once the directory is listed).
    pub fn files_total(&self) -> u64 {
        self.files_total.load(Ordering::Relaxed)
    }

    /// Data files read so far (from hint files or by scanning).
    pub fn files_loaded(&self) -> u64 {
        self.files_loaded.load(Ordering::Relaxed)
    }

    pub(crate) fn set_total(&self, files: u64) {
        self.files_total.store(files, Ordering::Relaxed);
    }

    pub(crate) fn loaded_one(&self) {
        self.files_loaded.fetch_add(1, Ordering::Relaxed);
    }
}

/// Largest allowed `max_file_size`: offsets are 32-bit in memory, and one
/// record may overshoot the limit.
pub(crate) const MAX_FILE_SIZE_LIMIT: u64 = 2 << 30;
/// Largest allowed `max_key_size + max_value_size`.
pub(crate) const MAX_RECORD_PAYLOAD_LIMIT: usize = 1 << 30;

/// Options of one read: `ReadOptions::new().verify_checksum(false)`.
///
/// By default every read verifies its record's CRC-32C before the value is
/// handed out, which reads every byte of the value (docs/RELIABILITY.md).
/// A caller that reads only part of large values, and accepts that a
/// flipped bit on disk would reach it unnoticed, can skip that sum for one
/// read, as RocksDB's `ReadOptions::verify_checksums` allows. The record's
/// framing, key and version are checked either way; scrubbing, merge,
/// backup and `check` always verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ReadOptions {
    pub(crate) verify_checksum: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            verify_checksum: true,
        }
    }
}

impl ReadOptions {
    /// Reads verified, as [`Bitcask::get`](crate::Bitcask::get) does.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to compute the record's checksum before handing out its
    /// value (default `true`).
    pub fn verify_checksum(mut self, verify: bool) -> Self {
        self.verify_checksum = verify;
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Always,
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
            max_key_size: Self::DEFAULT_MAX_KEY_SIZE,
            max_value_size: Self::DEFAULT_MAX_VALUE_SIZE,
            read_only: false,
            clock: Arc::new(SystemClock),
            merge_trigger: None,
            merge_bytes_per_sec: None,
            scrub: None,
            expire_interval: None,
            use_hints: true,
            mapped_appends: true,
            open_progress: None,
        }
    }
}

impl Options {
    /// Default [`max_file_size`](Self::max_file_size): 256 MiB.
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 << 20;
    /// Default [`max_key_size`](Self::max_key_size): 1 KiB.
    pub const DEFAULT_MAX_KEY_SIZE: usize = 1024;
    /// Default [`max_value_size`](Self::max_value_size): 1 MiB.
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;

    /// The defaults (the same as `Options::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// When to fsync. Default = [`SyncPolicy::Always`].
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Size in bytes at which the active data file is sealed and a new one
    /// started. Default = 256 MiB; at most 2 GiB.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Longest key accepted, in bytes. Default = 1024 (1 KiB).
    pub fn max_key_size(mut self, bytes: usize) -> Self {
        self.max_key_size = bytes;
        self
    }

    /// Longest value accepted, in bytes. Default = 1,048,576 (1 MiB).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Open without taking the write lock and refuse every write. Works beside
    /// a writer and sees the data as of its open. Default = `false`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The clock that judges expiry. Default = the system's wall clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Merge in the background when these thresholds are crossed.
    /// Default = `None`: merge only when [`Bitcask::merge`](crate::Bitcask::merge) is called.
    pub fn merge_trigger(mut self, trigger: Option<MergeTrigger>) -> Self {
        self.merge_trigger = trigger;
        self
    }

    /// Limits merge I/O to about this many bytes per second (read and
    /// written), so it does not starve foreground traffic. Default = `None`,
    /// no limit.
    pub fn merge_bytes_per_sec(mut self, limit: Option<u64>) -> Self {
        self.merge_bytes_per_sec = limit;
        self
    }

    /// Verify every sealed data file in the background, again and again,
    /// at a bounded rate (see [`Scrub`]); damage found is logged and counted
    /// in [`Stats`](crate::Stats). Default = `None`, no scrub.
    pub fn scrub(mut self, scrub: Option<Scrub>) -> Self {
        self.scrub = scrub;
        self
    }

    /// Delete keys whose expiry has passed in the background, a sample every
    /// `interval` ([`Bitcask::purge_expired`](crate::Bitcask::purge_expired)),
    /// so that they stop taking memory and counting in `len` before a merge
    /// drops them. The deletes are writes: a store whose writes must all
    /// come from one writer (a replicated state machine) leaves this off.
    /// Default = `None`, off.
    pub fn expire_interval(mut self, interval: Option<std::time::Duration>) -> Self {
        self.expire_interval = interval;
        self
    }

    /// Read hint files at open where valid. Default = `true`; `false` scans
    /// every data file (slower; for comparison and diagnosis).
    pub fn use_hints(mut self, use_hints: bool) -> Self {
        self.use_hints = use_hints;
        self
    }

    /// Append records by copying them into a writable shared map of the
    /// active file where they fit in its preallocated space, instead of one
    /// `pwrite` each (Linux only; "Mapped appends" in docs/FORMAT.md: the
    /// same durability, but an I/O error reading a page of the active file
    /// back ends the process instead of failing the write). Default =
    /// `true`; `false` keeps `pwrite` for every record.
    pub fn mapped_appends(mut self, mapped: bool) -> Self {
        self.mapped_appends = mapped;
        self
    }

    /// Report the open's progress into `progress` (files read of files to
    /// read). Default = none.
    pub fn open_progress(mut self, progress: Arc<OpenProgress>) -> Self {
        self.open_progress = Some(progress);
        self
    }

    /// Checks the options against the format's hard limits (as `open`
    /// does), so a program can refuse bad settings before opening.
    pub fn validate(&self) -> Result<()> {
        if self.max_file_size == 0 || self.max_file_size > MAX_FILE_SIZE_LIMIT {
            return Err(Error::InvalidOption {
                name: "max_file_size",
                reason: "must be between 1 byte and 2 GiB",
            });
        }
        if self.max_key_size.saturating_add(self.max_value_size) > MAX_RECORD_PAYLOAD_LIMIT {
            return Err(Error::InvalidOption {
                name: "max_value_size",
                reason: "max_key_size + max_value_size must be at most 1 GiB",
            });
        }
        if let Some(t) = &self.merge_trigger
            && (!(0.0..=1.0).contains(&t.dead_fraction) || t.check_every.is_zero())
        {
            return Err(Error::InvalidOption {
                name: "merge_trigger",
                reason: "dead_fraction must be within 0..=1 and check_every longer than zero",
            });
        }
        if self.merge_bytes_per_sec == Some(0) {
            return Err(Error::InvalidOption {
                name: "merge_bytes_per_sec",
                reason: "the merge I/O budget must be above zero",
            });
        }
        if self.expire_interval.is_some_and(|every| every.is_zero()) {
            return Err(Error::InvalidOption {
                name: "expire_interval",
                reason: "the active-expiry interval must be longer than zero",
            });
        }
        if let Some(scrub) = &self.scrub
            && (scrub.every.is_zero() || scrub.bytes_per_sec == 0)
        {
            return Err(Error::InvalidOption {
                name: "scrub",
                reason: "the interval and the I/O budget must be above zero",
            });
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            return Err(Error::InvalidOption {
                name: "sync",
                reason: "the sync interval must be longer than zero",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_docs() {
        let o = Options::default();
        o.validate().expect("defaults valid");
        assert_eq!(o.sync, SyncPolicy::Always);
        assert_eq!(o.max_key_size, 1024);
        assert_eq!(o.max_value_size, 1 << 20);
        assert_eq!(o.max_file_size, 256 << 20);
    }

    #[test]
    fn out_of_range_options_are_refused() {
        assert!(matches!(
            Options::new().max_file_size(0).validate(),
            Err(Error::InvalidOption {
                name: "max_file_size",
                ..
            })
        ));
        assert!(matches!(
            Options::new().max_file_size(4 << 30).validate(),
            Err(Error::InvalidOption {
                name: "max_file_size",
                ..
            })
        ));
        assert!(matches!(
            Options::new().max_value_size(2 << 30).validate(),
            Err(Error::InvalidOption {
                name: "max_value_size",
                ..
            })
        ));
        assert!(matches!(
            Options::new()
                .sync(SyncPolicy::Interval(Duration::ZERO))
                .validate(),
            Err(Error::InvalidOption { name: "sync", .. })
        ));
    }
}
