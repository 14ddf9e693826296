//! Opening a store: rebuilding the key directory from the data files and
//! cutting a torn tail off the active file.
//!
//! The protocol is specified in `docs/FORMAT.md` ("Open (recovery)").

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::datafile::{self, DataFile, FILE_HEADER_LEN, ReadHandle, Scan};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::keydir::{Entry, KeyDir, KeyDirLoader};
use crate::record::RecordKind;

/// What recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Read handles of every data file but the newest, by id. Their file
    /// descriptors are closed as soon as each is scanned and mapped, so
    /// recovery holds one descriptor at a time however many files there are.
    pub sealed: BTreeMap<u32, ReadHandle>,
    /// The newest file and the offset where its valid records end, if any
    /// file exists.
    pub newest: Option<(Arc<DataFile>, u64)>,
    /// The sequence number the next write takes.
    pub next_seq: u64,
    /// The rebuilt key directory.
    pub keydir: KeyDir,
}

/// Reads every data file in `dir` into a new key directory. Unless
/// `read_only`, removes a torn file creation and cuts a torn tail off the
/// newest file.
pub(crate) fn recover(dir: &Path, read_only: bool) -> Result<Recovered> {
    let mut keydir = KeyDirLoader::new();
    let mut ids = datafile::list_data_files(dir)?;
    if let Some(&newest) = ids.last()
        && is_torn_creation(dir, newest, read_only)?
    {
        ids.pop();
    }

    let mut sealed = BTreeMap::new();
    let mut newest_file = None;
    let mut max_seq = 0u64;
    let mut seq_floor = 1u64;
    let newest = ids.last().copied();
    for id in ids {
        let file = Arc::new(DataFile::open(dir, id, read_only)?);
        let header = file.read_header()?;
        seq_floor = seq_floor.max(header.seq_floor);
        let is_newest = Some(id) == newest;
        let end = scan_file(&file, &mut keydir, is_newest, read_only, &mut max_seq)?;
        if is_newest {
            newest_file = Some((file, end));
        } else {
            sealed.insert(id, ReadHandle::sealed(file)?);
        }
    }
    Ok(Recovered {
        sealed,
        newest: newest_file,
        next_seq: (max_seq + 1).max(seq_floor),
        keydir: keydir.finish(),
    })
}

/// A newest file no longer than its header whose header does not verify was
/// being created when the process died: it never held a record. Removes it
/// (unless read-only) and reports whether it was one.
fn is_torn_creation(dir: &Path, id: u32, read_only: bool) -> Result<bool> {
    let file = DataFile::open(dir, id, true)?;
    if file.len()? > FILE_HEADER_LEN as u64 || file.read_header().is_ok() {
        return Ok(false);
    }
    if read_only {
        tracing::debug!(path = %file.path.display(),
            "read-only open skips a data file whose creation is not complete");
    } else {
        tracing::warn!(path = %file.path.display(),
            "removing a data file whose creation was cut short");
        std::fs::remove_file(&file.path).at(&file.path)?;
        datafile::sync_dir(dir)?;
    }
    Ok(true)
}

/// Applies every record of `file` to `keydir`; returns the offset where the
/// valid records end.
fn scan_file(
    file: &DataFile,
    keydir: &mut KeyDirLoader,
    is_newest: bool,
    read_only: bool,
    max_seq: &mut u64,
) -> Result<u64> {
    let mut scanner = file.scanner()?;
    let stop = loop {
        match scanner.next_record()? {
            Scan::Record(rec) => {
                *max_seq = (*max_seq).max(rec.header.seq);
                match rec.header.kind {
                    RecordKind::Put => {
                        let entry = Entry {
                            file_id: file.id,
                            offset: offset_u32(file, rec.offset)?,
                            len: offset_u32(file, rec.header.record_len())?,
                            seq: rec.header.seq,
                        };
                        keydir.insert(rec.key, entry);
                    }
                    RecordKind::Delete => {
                        keydir.remove(rec.key);
                    }
                }
            }
            // The length seen when the scan began: a live writer beside a
            // read-only open may have appended since.
            Scan::End => return Ok(scanner.scanned_len()),
            Scan::Stop(stop) => break stop,
        }
    };

    let corruption = Error::Corruption {
        path: file.path.clone(),
        offset: stop.offset,
        kind: stop.kind,
    };
    if !is_newest {
        tracing::error!(path = %file.path.display(), offset = stop.offset, kind = %stop.kind,
            "corruption in a sealed data file");
        return Err(corruption);
    }
    if let Some(next) = stop.declared_end
        && scanner.valid_record_at(next)?
    {
        tracing::error!(path = %file.path.display(), offset = stop.offset, kind = %stop.kind,
            "corruption in the middle of the active data file");
        return Err(corruption);
    }
    let len = file.len()?;
    if read_only {
        tracing::debug!(path = %file.path.display(), offset = stop.offset,
            "read-only open ignores an incomplete tail");
    } else {
        // Keep the cut bytes beside the data: a torn write is expected after a
        // crash, but if this was damage, the bytes are there to inspect.
        let dir = file.path.parent().unwrap_or(Path::new("."));
        let saved = dir.join(format!("{:010}-{}.torn", file.id, stop.offset));
        let kept = file.save_tail(stop.offset, &saved)?;
        tracing::warn!(path = %file.path.display(), offset = stop.offset,
            dropped_bytes = len - stop.offset, kind = %stop.kind,
            saved_to = %if kept { saved.display().to_string() } else { "(all zero, not kept)".into() },
            "cutting a torn tail off the active data file");
        if kept {
            datafile::sync_dir(dir)?;
        }
        file.truncate(stop.offset).at(&file.path)?;
        file.sync_all().at(&file.path)?;
    }
    Ok(stop.offset)
}

/// Offsets and lengths fit in 32 bits because files are at most 4 GiB.
fn offset_u32(file: &DataFile, value: u64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corruption {
        path: file.path.clone(),
        offset: value,
        kind: CorruptionKind::FileTooLarge,
    })
}
