//! Active expiry: deleting keys whose expiry has passed, so that they stop
//! taking memory in the key directory and stop counting in
//! [`Bitcask::len`](super::Bitcask::len) before a merge or a reopen would
//! drop them (Redis's "active expire cycle"). Reads never needed it: an
//! expired key reads as absent either way.
//!
//! Each pass looks at a sample of one key-directory shard's keys that carry
//! an expiry (shards in turn, the sample starting at a different place each
//! time) and deletes the expired ones in one batch; while a quarter or more
//! of a sample had expired, the thread goes on at once with the next shard.
//! Crash protocol: the deletes are an ordinary batch (docs/FORMAT.md,
//! "Expiry purge").

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use crate::error::Result;
use crate::periodic::Periodic;

/// Keys with an expiry one pass looks at.
pub(super) const SAMPLE: usize = 1_000;

/// Most passes one tick of the thread runs back to back (while samples
/// stay a quarter expired), so that a tick never holds on for long.
const MAX_PASSES_PER_TICK: usize = 64;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Keys with an expiry looked at.
    pub examined: usize,
    /// Expired keys deleted.
    pub deleted: usize,
}

impl Shared {
    /// One pass over the next shard: samples up to `sample` of its keys
    /// that carry an expiry and deletes those that have expired.
    pub(super) fn purge_pass(&self, sample: usize) -> Result<Purged> {
        let turn = self.purge_turn.fetch_add(1, Ordering::Relaxed);
        let shards = self.keydir.shard_count();
        // Each full round of the shards starts its samples further on.
        let start = (turn / shards).wrapping_mul(sample);
        let now = self.options.clock.now_ms();
        let (expired, examined) = self
            .keydir
            .expired_sample(turn % shards, now, sample, start);
        let candidates: Vec<(Vec<u8>, u64)> = expired
            .into_iter()
            .filter_map(|key| {
                let seq = self.keydir.get(&key)?.seq;
                Some((key, seq))
            })
            .collect();
        let deleted = if candidates.is_empty() {
            0
        } else {
            self.purge_expired(&candidates)?
        };
        Ok(Purged { examined, deleted })
    }
}

/// Starts the active-expiry thread (`Options::expire_interval`).
pub(super) fn start(shared: &Arc<Shared>, every: Duration) -> Result<Periodic> {
    let shared = Arc::clone(shared);
    Periodic::start("bitcask-expiry", every, move |stopping| {
        for _ in 0..MAX_PASSES_PER_TICK {
            if stopping() || shared.closing.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            match shared.purge_pass(SAMPLE) {
                // Go on at once while expired keys are plentiful.
                Ok(p) if p.examined > 0 && p.deleted * 4 >= p.examined => {}
                Ok(_) => break,
                // Nothing can be written any more: stop, once.
                Err(error @ (crate::Error::Poisoned | crate::Error::ReadOnly)) => {
                    tracing::warn!(%error, "active expiry stops: the store takes no writes");
                    return ControlFlow::Break(());
                }
                Err(error) => {
                    tracing::warn!(%error, "active expiry failed; retrying next interval");
                    break;
                }
            }
        }
        ControlFlow::Continue(())
    })
}
