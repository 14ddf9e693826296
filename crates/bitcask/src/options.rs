//! Options chosen when a store is opened.

use std::time::Duration;

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
}

/// Largest allowed `max_file_size`: offsets are 32-bit in memory, and one
/// record may overshoot the limit.
pub(crate) const MAX_FILE_SIZE_LIMIT: u64 = 2 << 30;
/// Largest allowed `max_key_size + max_value_size`.
pub(crate) const MAX_RECORD_PAYLOAD_LIMIT: usize = 1 << 30;

impl Default for Options {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Always,
            max_file_size: 256 << 20,
            max_key_size: 1024,
            max_value_size: 1 << 20,
            read_only: false,
        }
    }
}

impl Options {
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

    /// Checks the options against the format's hard limits.
    pub(crate) fn validate(&self) -> Result<()> {
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
