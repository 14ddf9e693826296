//! Linearizable reads share read-index rounds: a read joins the next round
//! that *starts after it arrived*, and one round (a leadership check with a
//! quorum, or a follower's request for the leader's read index) answers
//! every read that joined it. Reads that arrive while a round is in flight
//! wait for the next one, so each read's index is taken after the read
//! began, which is what makes it linearizable; etcd batches its ReadIndex
//! requests the same way.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Runs rounds for the reads that join them (see the module docs).
pub struct ReadRounds<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Whether a task is running rounds.
    running: bool,
    /// The reads that joined the next round.
    waiting: Vec<oneshot::Sender<T>>,
}

impl<T: Clone + Send + 'static> ReadRounds<T> {
    /// No round running, no read waiting.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            }),
        })
    }

    /// Joins the next round that starts, and returns its result; `round`
    /// runs one round (it is called only if no task is running rounds, and
    /// then again for as long as reads keep joining). `None` if the task
    /// running rounds died.
    pub async fn join<F, Fut>(self: &Arc<Self>, round: F) -> Option<T>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let rounds = Arc::clone(self);
            tokio::spawn(async move { rounds.run(round).await });
        }
        rx.await.ok()
    }

    async fn run<F, Fut>(self: Arc<Self>, round: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        // If a round panics, the next read starts a new task.
        let _running = Running(&self);
        loop {
            let joined = std::mem::take(&mut self.lock().waiting);
            if joined.is_empty() {
                return;
            }
            let result = round().await;
            for read in joined {
                let _ = read.send(result.clone());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the rounds as not running when the task ends (returns with no
/// read waiting, or unwinds). Reads still waiting after an unwind get no
/// answer (their senders are dropped) and fail rather than hang.
struct Running<'a, T>(&'a ReadRounds<T>);

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.running = false;
        state.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_that_join_during_a_round_share_the_next_one() {
        let rounds = ReadRounds::<u64>::new();
        let started = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        // Round 1 waits at the gate; every round answers its number.
        let round = {
            let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
            move || {
                let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
                async move {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        gate.notified().await;
                    }
                    n
                }
            }
        };
        let read = |rounds: &Arc<ReadRounds<u64>>| {
            let (rounds, round) = (Arc::clone(rounds), round.clone());
            tokio::spawn(async move { rounds.join(round).await })
        };
        let first = read(&rounds);
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // 199 reads arrive while round 1 is in flight.
        let later: Vec<_> = (0..199).map(|_| read(&rounds)).collect();
        while rounds.lock().waiting.len() < 199 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gate.notify_one();
        assert_eq!(first.await.expect("read"), Some(1));
        for read in later {
            // Not round 1's answer: it began before they did.
            assert_eq!(read.await.expect("read"), Some(2));
        }
        assert_eq!(started.load(Ordering::SeqCst), 2, "one round for 199 reads");
        // Idle again: the next read starts a new round.
        assert_eq!(rounds.join(round).await, Some(3));
    }
}
