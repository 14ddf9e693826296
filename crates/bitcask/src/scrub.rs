//! The background scrub: every so often, read each sealed data file and
//! verify every record's checksum at a bounded rate, so that damage on the
//! disk is found (logged, counted) before a read needs the record, and
//! while the other copies a user keeps (backups, replicas) are still good.
//!
//! A scrub only reads. A file that a merge deletes while it is read stays
//! readable through the open handle; a file merged away before it is opened
//! is skipped. Damage is reported through [`crate::damage`]; the scrub
//! stops reading a file at its first bad record (`bitcask check` finds
//! every damaged region, and `bitcask repair` keeps what verifies).

use std::io::ErrorKind;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::damage::{Finder, Place};
use crate::datafile::{Access, DataFile, Scan};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::options::Scrub;
use crate::periodic::Periodic;
use crate::stats::ScrubReport;
use crate::throttle::Throttle;

/// The passes completed since open, and the last one.
#[derive(Debug, Default)]
pub(crate) struct ScrubHistory {
    history: Mutex<(Option<ScrubReport>, u64)>,
}

impl ScrubHistory {
    /// The last pass completed and the number completed.
    pub(crate) fn get(&self) -> (Option<ScrubReport>, u64) {
        *self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn completed(&self, report: ScrubReport) {
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.0 = Some(report);
        history.1 += 1;
    }
}

/// Starts the scrub thread: a pass every `scrub.every` (the first one
/// `scrub.every` after open), paced to `scrub.bytes_per_sec`; a pass under
/// way stops at its next record when the thread is stopped.
pub(crate) fn start(shared: &Arc<Shared>, scrub: Scrub) -> Result<Periodic> {
    let shared = Arc::clone(shared);
    Periodic::start("bitcask-scrub", scrub.every, move |stopping| {
        match pass(&shared, Some(scrub.bytes_per_sec), stopping) {
            Ok(Some(report)) => tracing::info!(?report, "scrub pass finished"),
            Ok(None) => return ControlFlow::Break(()), // the store is closing
            Err(error) => tracing::error!(%error, "scrub pass failed"),
        }
        ControlFlow::Continue(())
    })
}

/// One pass over every sealed data file, reading at most `bytes_per_sec`
/// (`None`: as fast as the disk goes). `None` if `stop` said to stop (or the
/// store is closing) before the end.
pub(crate) fn pass(
    shared: &Shared,
    bytes_per_sec: Option<u64>,
    stop: &dyn Fn() -> bool,
) -> Result<Option<ScrubReport>> {
    let started = Instant::now();
    let started_at_ms = shared.options().clock.now_ms();
    let mut report = ScrubReport {
        started_at_ms,
        ..ScrubReport::default()
    };
    let mut throttle = Throttle::new(bytes_per_sec);
    for id in sealed_files(shared) {
        let file = match DataFile::open(shared.dir(), id, Access::Read) {
            Ok(file) => file,
            // Merged away since the list was taken.
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let mut found = |offset, kind| {
            let place = Place {
                file_id: id,
                path: &file.path,
                offset,
                key: None,
            };
            shared.damage().found(Finder::Scrub, place, kind);
            report.damaged_records += 1;
        };
        match file.read_header() {
            Ok(_) => {}
            Err(Error::Corruption { kind, .. }) => {
                found(0, kind);
                report.files_verified += 1;
                continue;
            }
            Err(error) => return Err(error),
        }
        let mut scanner = file.scanner()?;
        loop {
            if stop() || shared.is_closing() {
                return Ok(None);
            }
            match scanner.next_record()? {
                Scan::Record(record) => {
                    let len = record.header.record_len();
                    report.bytes_verified += len;
                    throttle.spend(len);
                }
                Scan::End => break,
                Scan::Stop(at) => {
                    found(at.offset, at.kind);
                    break;
                }
            }
        }
        report.files_verified += 1;
    }
    report.duration = started.elapsed();
    shared.scrubs().completed(report);
    Ok(Some(report))
}

/// The ids of the data files no one writes to any more: all but the
/// newest (the active file, or on a read-only handle the file a writer
/// may be appending to).
fn sealed_files(shared: &Shared) -> Vec<u32> {
    let accounts = shared.accounts().snapshot();
    let mut order: Vec<(u64, u32)> = accounts.iter().map(|(id, a)| (a.seq_floor, *id)).collect();
    order.sort_unstable();
    order.pop();
    order.into_iter().map(|(_, id)| id).collect()
}
