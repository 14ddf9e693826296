//! The active file: what only the writer touches ([`Writer`]), its
//! preallocation ahead of the last record, and rotation (cut the
//! preallocated tail, fsync, seal, start the next file); each step's crash
//! behaviour is in docs/FORMAT.md ("Preallocation", "Rotation").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use crate::datafile::{DataFile, FILE_HEADER_LEN, ReadHandle};
use crate::durability::GroupCommit;
use crate::error::{Error, IoContext, Result};
use crate::writemap::WriteMap;

/// What only the writer touches, behind the writer lock.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) active: Arc<DataFile>,
    /// Where the next record goes in the active file.
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
    /// The active file's length: its records up to `offset`, then
    /// preallocated zeros (docs/FORMAT.md, "Preallocation").
    pub(super) allocated: u64,
    /// Whether to preallocate (off once the filesystem says it cannot).
    pub(super) preallocate: bool,
    /// A writable map of the active file's allocated space from the next
    /// record on, for appends that land in it ("Mapped appends" in
    /// docs/FORMAT.md); `None` where switched off or unavailable.
    pub(super) map: Option<WriteMap>,
    /// Whether to map the allocated space (`Options::mapped_appends`).
    pub(super) mapped_appends: bool,
    /// Reused encoding buffer.
    pub(super) buf: Vec<u8>,
}

impl Writer {
    /// Maps the active file's allocated space from the next record on
    /// (dropping the previous window first), if mapped appends are on and
    /// there is such space. A window that cannot be made turns mapped
    /// appends off until the store is reopened (`pwrite` from then on).
    pub(super) fn map_allocated(&mut self) {
        self.map = None;
        if self.mapped_appends && self.allocated > self.offset {
            self.map = self.active.map_for_appends(self.offset, self.allocated);
            self.mapped_appends = self.map.is_some();
        }
    }
}

/// How far ahead of the last record the active file is allocated.
pub(super) const PREALLOCATE_STEP: u64 = 1 << 20;

impl Shared {
    /// Extends the active file so that it is allocated up to at least
    /// `end`: by [`PREALLOCATE_STEP`] past the last record, not past
    /// `max_file_size` unless the record itself goes further. If that much
    /// does not fit (a nearly full disk, a file-size limit), just what the
    /// record needs. A filesystem that cannot preallocate turns
    /// preallocation off; any other failure fails the write before anything
    /// is written. The new space past the record is then written with zeros
    /// ("Zero fill" in docs/FORMAT.md; a failure there is only logged).
    pub(super) fn allocate(w: &mut Writer, end: u64, max_file_size: u64) -> Result<()> {
        if !w.preallocate {
            return Ok(());
        }
        let unsupported = |e: &std::io::Error| e.kind() == std::io::ErrorKind::Unsupported;
        let target = end.max((w.offset + PREALLOCATE_STEP).min(max_file_size));
        let result = match w.active.allocate(target) {
            Err(e) if target > end && !unsupported(&e) => w.active.allocate(end).map(|()| end),
            other => other.map(|()| target),
        };
        match result {
            Ok(allocated) => {
                // The record itself is written next; zero what lies past it.
                let from = w.allocated.max(end);
                if let Err(error) = w.active.zero_fill(from, allocated) {
                    tracing::debug!(path = %w.active.path.display(), %error,
                        "could not zero-fill preallocated space; it stays unwritten");
                }
                w.allocated = allocated;
                w.map_allocated();
                Ok(())
            }
            Err(e) if unsupported(&e) => {
                // Plain appends from now on.
                tracing::debug!(path = %w.active.path.display(), error = %e,
                    "the filesystem cannot preallocate; appending instead");
                w.preallocate = false;
                Ok(())
            }
            Err(source) => {
                // Whatever a failed call left, the bytes past the last
                // record are zeros; go on from the file's real length.
                w.allocated = w.active.len().unwrap_or(w.allocated);
                Err(Error::Io {
                    path: w.active.path.clone(),
                    source,
                })
            }
        }
    }

    /// Cuts the active file's preallocated space, so it ends at its last
    /// record (before sealing it, and at close).
    pub(super) fn cut_preallocated(w: &mut Writer) -> Result<()> {
        if w.allocated > w.offset {
            w.active.truncate(w.offset).at(&w.active.path)?;
            w.allocated = w.offset;
            w.map = None;
        }
        Ok(())
    }

    /// Seals the active file (cut its preallocated space, fsync) and starts
    /// the next one.
    pub(crate) fn rotate(&self, w: &mut Writer, commit: &GroupCommit) -> Result<()> {
        // A failed cut seals nothing: the file stays active.
        Self::cut_preallocated(w)?;
        if let Err(source) = w.active.sync_all() {
            commit.poison();
            return Err(Error::Io {
                path: w.active.path.clone(),
                source,
            });
        }
        commit.note_durable(w.next_seq - 1);
        // The old file is sealed: read it through a map of all of it, and
        // let its descriptor close once in-flight reads drop their handles.
        // (Made before the new file, so a failure here leaves nothing behind.)
        let sealed = ReadHandle::sealed(Arc::clone(&w.active))?;
        let id = self.next_file_id.fetch_add(1, Ordering::Relaxed);
        if id == u32::MAX {
            return Err(Error::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("data file ids exhausted"),
            });
        }
        // On failure `create` removes its unfinished `.tmp` file; the id is
        // simply skipped.
        let file = Arc::new(DataFile::create(&self.dir, id, w.next_seq)?);
        file.map_for_reads(self.options.max_file_size);
        self.accounts
            .add_file(id, w.next_seq, FILE_HEADER_LEN as u64, false);
        self.files.update(|files| {
            files.insert(w.active.id, Arc::new(sealed));
            files.insert(id, Arc::new(ReadHandle::Open(Arc::clone(&file))));
        });
        commit.set_active(Arc::clone(&file));
        tracing::debug!(path = %file.path.display(), "rotated to a new data file");
        let sealed_id = w.active.id;
        w.map = None;
        w.active = file;
        w.offset = FILE_HEADER_LEN as u64;
        w.allocated = FILE_HEADER_LEN as u64;
        self.request_hint(sealed_id);
        Ok(())
    }
}
