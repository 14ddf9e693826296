//! Requests that arrive together share one round trip. A request joins the
//! next *round* that starts after it arrived; one task runs rounds, one
//! after another, while requests keep arriving, each round taking every
//! request that joined it. Two users:
//!
//! - Linearizable reads: one read-index round (the leader's quorum check,
//!   or a follower's request for the leader's read index) answers every
//!   read that joined it. A read that arrives while a round is in flight
//!   waits for the next one, so its index is taken after it began, which
//!   is what makes it linearizable; etcd batches its ReadIndex requests
//!   the same way.
//! - Writes a follower forwards to the leader: one peer request carries
//!   every write that joined the round, and the leader proposes them
//!   together (so they share a raft entry), instead of one HTTP exchange
//!   per write.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Runs rounds for the requests that join them (see the module docs): `I`
/// is what a request brings, `O` what it gets back.
pub struct Rounds<I, O> {
    state: Mutex<State<I, O>>,
}

struct State<I, O> {
    /// Whether a task is running rounds.
    running: bool,
    /// The requests that joined the next round.
    waiting: Vec<(I, oneshot::Sender<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Rounds<I, O> {
    /// No round running, no request waiting.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            }),
        })
    }

    /// Joins the next round that starts with `item`, and returns what the
    /// round answered for it. `round` runs one round: given the items of
    /// every request that joined, in the order they joined, it answers one
    /// output for each, in the same order. It is called only when no task
    /// is running rounds (and then again for as long as requests keep
    /// joining). `None` if the round answered too few outputs or its task
    /// died.
    pub async fn join<F, Fut>(self: &Arc<Self>, item: I, round: F) -> Option<O>
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push((item, tx));
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
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Vec<O>>,
    {
        // If a round panics, the next request starts a new task.
        let mut running = Running(Some(&self));
        loop {
            let joined = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    // Under the same lock as the check: a request that
                    // joins after this starts a new task; none is left
                    // waiting for this one.
                    state.running = false;
                    running.0 = None;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let (items, replies): (Vec<I>, Vec<_>) = joined.into_iter().unzip();
            let outputs = round(items).await;
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(output);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<I, O>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the rounds as not running if the task unwinds (a round
/// panicked): requests still waiting then get no answer (their senders are
/// dropped) and fail rather than hang. Disarmed (`None`) when the task
/// stops normally.
struct Running<'a, I, O>(Option<&'a Rounds<I, O>>);

impl<I, O> Drop for Running<'_, I, O> {
    fn drop(&mut self) {
        if let Some(rounds) = self.0 {
            let mut state = rounds.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running = false;
            state.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_join_during_a_round_share_the_next_one_and_get_their_own_answers() {
        let rounds = Rounds::<u64, (u64, u64)>::new();
        let started = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        // Round 1 waits at the gate; a round answers (its number, item * 2)
        // for each item.
        let round = {
            let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
            move |items: Vec<u64>| {
                let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
                async move {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        gate.notified().await;
                    }
                    items.into_iter().map(|i| (n, i * 2)).collect()
                }
            }
        };
        let send = |rounds: &Arc<Rounds<u64, (u64, u64)>>, item: u64| {
            let (rounds, round) = (Arc::clone(rounds), round.clone());
            tokio::spawn(async move { rounds.join(item, round).await })
        };
        let first = send(&rounds, 1000);
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // 199 requests arrive while round 1 is in flight.
        let later: Vec<_> = (0..199).map(|i| send(&rounds, i)).collect();
        while rounds.lock().waiting.len() < 199 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gate.notify_one();
        assert_eq!(first.await.expect("request"), Some((1, 2000)));
        for (i, request) in later.into_iter().enumerate() {
            // Not round 1: it began before they did. Each its own answer.
            assert_eq!(request.await.expect("request"), Some((2, i as u64 * 2)));
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "one round for 199 requests"
        );
        // Idle again: the next request starts a new round.
        assert_eq!(rounds.join(7, round).await, Some((3, 14)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_request_joining_as_the_rounds_stop_is_still_answered() {
        // Rounds that end at once, and requests that keep coming: many
        // join just as the task finds nothing waiting and stops.
        let rounds = Rounds::<u64, u64>::new();
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let rounds = Arc::clone(&rounds);
                tokio::spawn(async move {
                    for i in 0..2_000u64 {
                        let item = t * 10_000 + i;
                        let answer = rounds
                            .join(item, |items: Vec<u64>| async move { items })
                            .await;
                        assert_eq!(answer, Some(item), "request {item} went unanswered");
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    }

    #[tokio::test]
    async fn a_round_that_answers_too_few_leaves_the_rest_without_an_answer() {
        let rounds = Rounds::<u64, u64>::new();
        let short = |_items: Vec<u64>| async { Vec::new() };
        assert_eq!(rounds.join(1, short).await, None);
        // The rounds are usable again.
        assert_eq!(
            rounds.join(2, |items: Vec<u64>| async move { items }).await,
            Some(2)
        );
    }
}
