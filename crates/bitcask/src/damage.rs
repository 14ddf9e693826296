//! Damage the running store meets: a read, a merge or a scrub finding a
//! record that does not verify. Each damaged record is logged once, at error
//! level, with its file, offset and key (when known) and what to run; every
//! meeting is counted for [`Stats`](crate::Stats), so that a server can
//! report it (`/metrics`, `/health`) instead of a generic failure.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::CorruptionKind;

/// Damaged records remembered, so that each is logged once; past this many,
/// a record met again is logged and counted again (the count then
/// overstates, the log never stays silent).
const REMEMBERED: usize = 65_536;

/// Longest part of a key shown in the log.
const KEY_SHOWN: usize = 96;

/// Who met the damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finder {
    /// A read of the key.
    Read,
    /// A merge copying the file.
    Merge,
    /// The background scrub.
    Scrub,
}

impl Finder {
    fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Merge => "merge",
            Self::Scrub => "scrub",
        }
    }
}

/// Where damage was met.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    /// The data file's id.
    pub file_id: u32,
    /// Its path (for the log only).
    pub path: &'a Path,
    /// The damaged record's offset.
    pub offset: u64,
    /// The key read, when a read met it.
    pub key: Option<&'a [u8]>,
}

/// The damage met since the store opened.
#[derive(Debug, Default)]
pub(crate) struct DamageLog {
    /// Damaged records met (each once, up to [`REMEMBERED`]).
    records: AtomicU64,
    /// Reads that failed on damage (every one).
    reads: AtomicU64,
    seen: Mutex<HashSet<(u32, u64)>>,
}

impl DamageLog {
    /// Counts a meeting with a damaged record, and logs the record the first
    /// time it is met.
    pub(crate) fn found(&self, finder: Finder, place: Place<'_>, kind: CorruptionKind) {
        if finder == Finder::Read {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= REMEMBERED {
                true
            } else {
                seen.insert((place.file_id, place.offset))
            }
        };
        if !first {
            return;
        }
        self.records.fetch_add(1, Ordering::Relaxed);
        let key = place.key.map_or_else(|| "(unknown)".to_string(), show_key);
        let dir = place.path.parent().unwrap_or(place.path);
        tracing::error!(
            file = %place.path.display(),
            offset = place.offset,
            key = %key,
            %kind,
            found_by = finder.label(),
            "damaged record: it does not verify and is not served. Run `bitcask check --data-dir \
             {dir}` (beside the server) to see all damage; then stop the server and run `bitcask \
             repair --data-dir {dir}` to keep every record that verifies (docs/OPERATIONS.md, \
             \"Corruption\")",
            dir = dir.display(),
        );
    }

    /// Damaged records met since open.
    pub(crate) fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Reads that failed on damage since open.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// A key for the log: printable, escaped, cut to [`KEY_SHOWN`] bytes.
fn show_key(key: &[u8]) -> String {
    let shown = &key[..key.len().min(KEY_SHOWN)];
    let mut text: String = shown.escape_ascii().to_string();
    if key.len() > KEY_SHOWN {
        text.push_str(&format!("... ({} bytes)", key.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_counts_once_and_every_read_counts() {
        let log = DamageLog::default();
        let path = Path::new("/store/0000000001.data");
        let place = |offset| Place {
            file_id: 1,
            path,
            offset,
            key: Some(b"k"),
        };
        log.found(Finder::Read, place(40), CorruptionKind::BadChecksum);
        log.found(Finder::Read, place(40), CorruptionKind::BadChecksum);
        log.found(Finder::Scrub, place(40), CorruptionKind::BadChecksum);
        assert_eq!((log.records(), log.reads()), (1, 2));
        log.found(Finder::Merge, place(90), CorruptionKind::BadChecksum);
        assert_eq!((log.records(), log.reads()), (2, 2));
    }

    /// Log lines written while `f` runs, as text.
    fn logged(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("sink").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("sink").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn the_first_meeting_is_logged_at_error_level_with_file_offset_key_and_hint() {
        let log = DamageLog::default();
        let place = Place {
            file_id: 9,
            path: Path::new("/store/0000000009.data"),
            offset: 4096,
            key: Some(b"user:\x01"),
        };
        let first = logged(|| log.found(Finder::Read, place, CorruptionKind::BadChecksum));
        assert!(first.contains("ERROR"), "{first}");
        for part in [
            "/store/0000000009.data",
            "offset=4096",
            "user:",
            "found_by=\"read\"",
            "bitcask check --data-dir /store",
            "bitcask repair --data-dir /store",
        ] {
            assert!(first.contains(part), "{part}: {first}");
        }
        let again = logged(|| log.found(Finder::Read, place, CorruptionKind::BadChecksum));
        assert!(again.is_empty(), "logged once: {again}");
    }

    #[test]
    fn keys_are_shown_escaped_and_cut() {
        assert_eq!(show_key(b"plain"), "plain");
        assert_eq!(show_key(b"a\nb\xff"), "a\\nb\\xff");
        let long = vec![b'x'; 200];
        let shown = show_key(&long);
        assert!(shown.ends_with("... (200 bytes)"), "{shown}");
        assert_eq!(shown.len(), KEY_SHOWN + "... (200 bytes)".len());
    }
}
