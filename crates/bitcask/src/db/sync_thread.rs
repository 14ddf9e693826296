//! The interval-sync thread (`SyncPolicy::Interval`): fsyncs what was
//! written every interval, through group commit, until the store closes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Shared;
use crate::error::{Error, Result};

/// The interval-sync thread and the channel that stops it.
#[derive(Debug)]
pub(super) struct Flusher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Flusher {
    pub(super) fn start(shared: &Arc<Shared>, every: Duration) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("bitcask-sync".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let Some(commit) = &shared.commit else { return };
                    if commit.is_poisoned() {
                        return;
                    }
                    if let Err(error) = commit.sync_through(commit.written()) {
                        tracing::error!(%error, "interval sync failed");
                    }
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("<sync thread>"),
                source,
            })?;
        Ok(Self { stop, thread })
    }

    pub(super) fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::error!("the interval sync thread panicked");
        }
    }
}
