//! The background maintenance thread of a writable store: writes hint files
//! for sealed data files, and starts a merge when the thresholds in
//! [`MergeTrigger`](crate::MergeTrigger) are crossed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::db::Shared;
use crate::error::{Error, Result};
use crate::options::MergeTrigger;

/// The maintenance thread; stopped by closing its request channel.
#[derive(Debug)]
pub(crate) struct Worker {
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the thread and installs its request channel in `shared`.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<u32>();
        *shared.lock_hint_requests() = Some(tx);
        let shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("bitcask-maintenance".into())
            .spawn(move || run(&shared, &rx))
            .map_err(|source| Error::Io {
                path: PathBuf::from("<maintenance thread>"),
                source,
            })?;
        Ok(Self { thread })
    }

    /// Waits for the thread to end. The caller has dropped the sender and
    /// set `closing`, so a running merge stops at its next record.
    pub(crate) fn stop(self) {
        if self.thread.join().is_err() {
            tracing::error!("the maintenance thread panicked");
        }
    }
}

fn run(shared: &Shared, requests: &mpsc::Receiver<u32>) {
    let trigger = shared.options().merge_trigger;
    // Without a trigger, only hint requests wake the thread.
    let tick = trigger.map_or(Duration::from_secs(3600), |t| t.check_every);
    let mut next_check = Instant::now() + tick;
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        let request = requests.recv_timeout(wait);
        if shared.is_closing() {
            // Close writes the hints still asked for (the sender is gone, so
            // the queue only drains): the next open would otherwise scan
            // those files and write the same hints itself, and a restart is
            // close plus open. A merge is not started.
            if let Ok(id) = request {
                write_hint(shared, id);
            }
            while let Ok(id) = requests.try_recv() {
                write_hint(shared, id);
            }
            return;
        }
        match request {
            Ok(id) => write_hint(shared, id),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                next_check = Instant::now() + tick;
                if let Some(trigger) = trigger
                    && should_merge(shared, &trigger)
                {
                    match crate::merge::run(shared, crate::merge::Scope::SealedFiles) {
                        Ok(report) => tracing::info!(?report, "background merge finished"),
                        Err(error) => tracing::error!(%error, "background merge failed"),
                    }
                }
            }
        }
    }
}

/// Writes the hint of sealed file `id`, holding the merge lock so that a
/// merge cannot delete the file meanwhile.
fn write_hint(shared: &Shared, id: u32) {
    let _merge = shared.merge().lock();
    if !shared.accounts().contains(id) {
        return; // merged away since the request
    }
    match crate::hint::write_for_data_file(shared.dir(), id) {
        Ok(()) => tracing::debug!(id, "wrote hint file"),
        Err(error) => {
            tracing::warn!(id, %error, "could not write a hint file; open will scan the data file")
        }
    }
}

/// Whether the thresholds of `trigger` are crossed now.
pub(crate) fn should_merge(shared: &Shared, trigger: &MergeTrigger) -> bool {
    let accounts = shared.accounts().snapshot();
    let Some(active) = accounts
        .iter()
        .max_by_key(|(id, a)| (a.seq_floor, **id))
        .map(|(id, _)| *id)
    else {
        return false;
    };
    let sealed = || {
        accounts
            .iter()
            .filter(|(id, _)| **id != active)
            .map(|(_, a)| a)
    };
    let total_dead: u64 = sealed().map(|a| a.dead_bytes()).sum();
    let worst_fraction = sealed()
        .filter(|a| a.total_bytes > 0)
        .map(|a| a.dead_bytes() as f64 / a.total_bytes as f64)
        .fold(0.0, f64::max);
    total_dead > 0 && (total_dead >= trigger.dead_bytes || worst_fraction >= trigger.dead_fraction)
}
