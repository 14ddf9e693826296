//! The read path: a key's live entry in the key directory, and its record
//! verified where it lies (a memory map, or one `pread`) before the value
//! is handed out; damage met here is reported to [`crate::damage`].

use super::Shared;
use crate::damage::{Finder, Place};
use crate::datafile::ReadHandle;
use crate::error::{CorruptionKind, Error, Result};
use crate::keydir::Entry;
use crate::options::ReadOptions;
use crate::record;

impl Shared {
    /// The entry of `key` if it is present and not expired now.
    pub(crate) fn live_entry(&self, key: &[u8]) -> Option<Entry> {
        self.keydir.get(key).filter(|e| self.unexpired(e))
    }

    /// Whether `entry` has not expired now (the clock is read only for
    /// entries that can expire).
    pub(super) fn unexpired(&self, entry: &Entry) -> bool {
        entry.expires_at_ms == 0 || !entry.is_expired(self.options.clock.now_ms())
    }

    /// Finds `key`'s live record, verifies it (its checksum unless `read`
    /// says not to) and calls `f` with its entry
    /// and value; returns what `f` returns, or `None` (absent or expired).
    /// The value is lent from the file's map while the file table's guard
    /// keeps the map alive (read into `scratch` with `pread` where no map
    /// covers it). `f` is called at most once, after verification.
    ///
    /// The first lookup goes by hash alone ([`KeyDir::get_by_hash`]: one
    /// slot, no key bytes touched), since the record's key is compared with
    /// `key` anyway. Anything unexpected (a record of another key, an
    /// expired candidate, a file a merge dropped meanwhile, an error
    /// reading the candidate) makes it look again, comparing key bytes;
    /// only an error found that way is reported.
    pub(super) fn read_live<R>(
        &self,
        key: &[u8],
        read: ReadOptions,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(Entry, &[u8]) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut exact = false;
        loop {
            let found = if exact {
                self.keydir.get(key)
            } else {
                self.keydir.get_by_hash(key)
            };
            let Some(entry) = found else {
                return Ok(None);
            };
            if !self.unexpired(&entry) {
                if exact {
                    return Ok(None);
                }
                exact = true;
                continue;
            }
            let outcome = self.files.with(entry.file_id, |file| {
                let value = self.verified_value(file, key, entry, read, scratch)?;
                Ok(value.and_then(|value| f.take().map(|f| f(entry, value))))
            });
            match outcome {
                Ok(Some(result)) => return Ok(Some(result)),
                // A merge moved the key and dropped the file in between.
                Ok(None) => exact = true,
                // The candidate may be another key's record (which may even
                // be damaged): only what the exact lookup finds is `key`'s.
                Err(_) if !exact => exact = true,
                Err(e) => {
                    if let Error::Corruption { path, offset, kind } = &e {
                        let place = Place {
                            file_id: entry.file_id,
                            path,
                            offset: *offset,
                            key: Some(key),
                        };
                        self.damage.found(Finder::Read, place, *kind);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The verified value of the record `entry` points to in `file` (its
    /// checksum computed unless `read` says not to): lent
    /// from the file's map, or read into `scratch` where no map covers it.
    /// `None` if the file is gone because a merge moved the key meanwhile
    /// (look it up again).
    pub(super) fn verified_value<'a>(
        &self,
        file: Option<&'a ReadHandle>,
        key: &[u8],
        entry: Entry,
        read: ReadOptions,
        scratch: &'a mut Vec<u8>,
    ) -> Result<Option<&'a [u8]>> {
        let Some(file) = file else {
            if self.keydir.get(key) != Some(entry) {
                return Ok(None);
            }
            return Err(Error::Corruption {
                path: self
                    .dir
                    .join(crate::datafile::data_file_name(entry.file_id)),
                offset: u64::from(entry.offset),
                kind: CorruptionKind::MissingFile,
            });
        };
        let offset = u64::from(entry.offset);
        let bytes = match file.mapped(offset, entry.len as usize) {
            Some(bytes) => bytes,
            None => {
                scratch.clear();
                scratch.resize(entry.len as usize, 0);
                file.read_record(scratch, offset)?;
                scratch.as_slice()
            }
        };
        let corrupt = |kind| Error::Corruption {
            path: file.path().to_path_buf(),
            offset,
            kind,
        };
        let rec = if read.verify_checksum {
            record::decode_whole(bytes)
        } else {
            record::decode_whole_unverified(bytes)
        }
        .map_err(corrupt)?;
        if rec.key != key || rec.header.seq != entry.seq {
            return Err(corrupt(CorruptionKind::KeyMismatch));
        }
        Ok(Some(rec.value))
    }
}
