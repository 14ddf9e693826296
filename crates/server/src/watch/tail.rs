//! The shared tail of the change feed: one reader of the newest changes
//! for all the watchers that have caught up, instead of one each.
//!
//! Every watcher reading the log for itself cost the writers a read and a
//! decode of every record per watcher: with 100 watchers, pipelined SETs
//! fell from 1.54M/s to 0.38-0.45M/s on two cores (docs/BENCHMARKS.md).
//! A watcher replaying history still reads the files itself ([`super::Feed`]);
//! once it has caught up it takes the batches this task reads and
//! broadcasts, and goes back to the files if it falls behind them (the
//! broadcast keeps a bounded number of batches) or finds a gap.

use std::sync::Arc;
use std::time::Duration;

use bitcask::{Change, Changes};
use tokio::sync::broadcast;

use crate::state::AppState;

/// Batches the broadcast keeps for watchers that have not taken them yet;
/// one further behind goes back to reading the files.
const KEPT: usize = 64;
/// Bytes of keys and values one broadcast batch gathers at most (a write
/// batch larger than this comes whole): with [`KEPT`], about 16 MiB held
/// at most.
const BATCH_BYTES: usize = 256 << 10;
/// Changes one broadcast batch gathers at most.
const BATCH_CHANGES: usize = 4_096;
/// Shortest time between two reads of the tail: under a stream of writes
/// the changes of a millisecond go out as one batch, so that each watcher
/// wakes at most about a thousand times a second however fast the writes
/// come (woken per write, 100 watchers cost pipelined writers two thirds
/// of their throughput). A write after a quiet spell goes out at once.
const COALESCE: Duration = Duration::from_millis(1);

/// Consecutive committed changes: every change with a seq in
/// `start_seq..end_seq`, whole write batches.
#[derive(Debug)]
pub struct TailBatch {
    /// The seq the reader was at before this batch.
    pub start_seq: u64,
    /// The seq after this batch's last change.
    pub end_seq: u64,
    /// The changes, in seq order.
    pub changes: Vec<Change>,
    /// Every change as Server-Sent Events, encoded once for all the
    /// streams that want every change ([`Self::sse`]).
    sse: std::sync::OnceLock<bytes::Bytes>,
}

impl TailBatch {
    /// Every change of the batch as Server-Sent Events, encoded by the
    /// first stream that asks and shared by the others: a hundred streams
    /// that want everything encode each event once, not a hundred times.
    pub fn sse(&self) -> &bytes::Bytes {
        self.sse.get_or_init(|| {
            let mut out = Vec::with_capacity(self.changes.len() * 96);
            for change in &self.changes {
                super::sse::event(&mut out, &bitcask_wire::WatchEvent::from(change));
            }
            bytes::Bytes::from(out)
        })
    }
}

/// The broadcast of the tail, and whether its reader runs.
#[derive(Debug)]
pub struct Tail {
    sender: broadcast::Sender<Arc<TailBatch>>,
    started: std::sync::Once,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(KEPT).0,
            started: std::sync::Once::new(),
        }
    }
}

impl Tail {
    /// A receiver of the batches read from now on; starts the reader the
    /// first time.
    pub fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Arc<TailBatch>> {
        let receiver = self.sender.subscribe();
        self.started.call_once(|| {
            tokio::spawn(run(state.clone(), self.sender.clone()));
        });
        receiver
    }
}

/// Reads the newest changes as they are committed and broadcasts them,
/// while anyone listens; ends when the server stops.
async fn run(state: AppState, sender: broadcast::Sender<Arc<TailBatch>>) {
    let hub = Arc::clone(state.watchers());
    let mut commits = hub.commits();
    let mut stopping = hub.stopping();
    let mut reader: Option<Changes> = None;
    let mut last_read = tokio::time::Instant::now();
    loop {
        if sender.receiver_count() == 0 {
            // Nobody listens: stop reading; start again from the newest
            // write when someone does (watchers check for gaps).
            reader = None;
        } else if reader.is_none()
            && let Some(store) = state.try_store()
        {
            hub.listen(&store);
            reader = store.changes(store.position().next_seq).ok();
        }
        // Let the writes of the last millisecond gather.
        tokio::time::sleep_until(last_read + COALESCE).await;
        last_read = tokio::time::Instant::now();
        commits.borrow_and_update();
        if let Some(changes) = reader.as_mut() {
            loop {
                let start_seq = changes.next_seq();
                match changes.next_batch_within(BATCH_CHANGES, BATCH_BYTES) {
                    Ok(batch) if batch.is_empty() => break,
                    Ok(batch) => {
                        let end_seq = changes.next_seq();
                        let _ = sender.send(Arc::new(TailBatch {
                            start_seq,
                            end_seq,
                            changes: batch,
                            sse: std::sync::OnceLock::new(),
                        }));
                        // Reading on while writes keep coming must not hold
                        // this worker thread from the other tasks.
                        tokio::task::yield_now().await;
                    }
                    Err(error) => {
                        // Closed (a cluster node's new store) or compacted:
                        // open again at the newest write; watchers see the
                        // gap and read the files.
                        tracing::debug!(%error, "the change feed's shared reader starts again");
                        reader = None;
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
            // Now and then: whether anyone listens, whether the store is open.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
