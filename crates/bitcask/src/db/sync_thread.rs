//! The interval-sync thread (`SyncPolicy::Interval`): fsyncs what was
//! written every interval, through group commit, until the store closes.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::error::Result;
use crate::periodic::Periodic;

/// Starts the interval-sync thread. It ends by itself once the store is
/// poisoned (nothing can be promised durable any more).
pub(super) fn start(shared: &Arc<Shared>, every: Duration) -> Result<Periodic> {
    let shared = Arc::clone(shared);
    Periodic::start("bitcask-sync", every, move |_| {
        let Some(commit) = shared.commit() else {
            return ControlFlow::Break(());
        };
        if commit.is_poisoned() {
            return ControlFlow::Break(());
        }
        if let Err(error) = commit.sync_through(commit.written()) {
            tracing::error!(%error, "interval sync failed");
        }
        ControlFlow::Continue(())
    })
}
