//! Recording what clients see of a cluster: concurrent clients run random
//! puts, gets, put-if-absent and deletes on a few keys through the HTTP
//! API of whichever nodes run, and every operation goes into a history
//! with its invocation and completion times and its result, for the
//! linearizability checker. A write answered 503 "no leader" was certainly
//! not applied (the server says so only when it never proposed it, or the
//! leader refused it before appending it) and is left out; any other write
//! that did not answer 200 (or 412 for a put-if-absent) has an unknown
//! outcome; a read that did not answer is left out (it saw nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::linearizability::{Event, Op};
use crate::rng::Rng;

/// One request as a node answered it (for checks on who acknowledged what).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The node asked.
    pub node: u64,
    /// Whether the request was a write.
    pub write: bool,
    /// Whether it was acknowledged (200, or 412 for a put-if-absent).
    pub acknowledged: bool,
    /// When it was sent and answered (nanoseconds since the start).
    pub sent: u64,
    /// The HTTP status (none: no answer).
    pub status: Option<u16>,
    /// When it was answered.
    pub answered: u64,
}

/// What a run of clients recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The history, for [`crate::linearizability::check`].
    pub events: Vec<Event>,
    /// Every answer, by node.
    pub answers: Vec<Answer>,
    /// How many writes got each status (0: no answer, or "no leader").
    pub write_statuses: std::collections::BTreeMap<u16, usize>,
}

impl Recorded {
    /// Operations that completed, and writes whose outcome is unknown.
    pub fn counts(&self) -> (usize, usize) {
        let completed = self.events.iter().filter(|e| e.completed.is_some()).count();
        (completed, self.events.len() - completed)
    }
}

/// Runs clients until `stop` is set; `targets` gives the nodes to send to
/// (id, base URL), read again before every request. `stale_reads` sends
/// reads with `?consistency=stale` (for showing that the checker catches
/// stale reads).
pub fn run_clients(
    clients: usize,
    keys: usize,
    targets: Arc<dyn Fn() -> Vec<(u64, String)> + Send + Sync>,
    stop: Arc<AtomicBool>,
    start: Instant,
    seed: u64,
    stale_reads: bool,
) -> Recorded {
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (targets, stop, recorded) = (
                Arc::clone(&targets),
                Arc::clone(&stop),
                Arc::clone(&recorded),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(4))
                    .connect_timeout(Duration::from_millis(500))
                    .build();
                let Ok(http) = http else { return };
                let mut rng = Rng::new(seed.wrapping_add(c as u64 * 7919));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let nodes = targets();
                    if nodes.is_empty() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let (node, url) = nodes[rng.below(nodes.len() as u64) as usize].clone();
                    // Keys change every few seconds (as Jepsen's
                    // `independent` does): each key's history stays short
                    // enough to check.
                    let generation = start.elapsed().as_secs() / KEY_GENERATION_SECS;
                    let key = format!("key-{generation}-{}", rng.below(keys as u64));
                    let value = format!("c{c}-{n}");
                    n += 1;
                    let (event, answer) = one_op(
                        &http,
                        &mut rng,
                        node,
                        &url,
                        &key,
                        &value,
                        start,
                        stale_reads,
                    );
                    let mut r = recorded.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(event) = event {
                        r.events.push(event);
                    }
                    if answer.write {
                        *r.write_statuses
                            .entry(answer.status.unwrap_or(999))
                            .or_default() += 1;
                    }
                    let failed = !answer.acknowledged;
                    r.answers.push(answer);
                    drop(r);
                    if failed {
                        // As a real client would: back off a moment.
                        std::thread::sleep(Duration::from_millis(20 + rng.below(80)));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Arc::try_unwrap(recorded)
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .unwrap_or_default()
}

/// A status standing for "certainly not applied" (see [`outcome`]).
const NOT_APPLIED: u16 = 0;

/// A write's status; a 503 whose detail says there is no leader becomes
/// [`NOT_APPLIED`] (the server answers so only for a write it never
/// proposed, or that the leader refused before appending it).
fn outcome(response: reqwest::Result<reqwest::blocking::Response>) -> Option<u16> {
    let response = response.ok()?;
    let status = response.status().as_u16();
    if status == 503 {
        let text = response.text().unwrap_or_default();
        if text.contains("has no leader") {
            return Some(NOT_APPLIED);
        }
    }
    Some(status)
}

/// Seconds a set of keys is used before the clients move on to new ones.
const KEY_GENERATION_SECS: u64 = 3;

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[allow(clippy::too_many_arguments)]
fn one_op(
    http: &reqwest::blocking::Client,
    rng: &mut Rng,
    node: u64,
    url: &str,
    key: &str,
    value: &str,
    start: Instant,
    stale_reads: bool,
) -> (Option<Event>, Answer) {
    let body = serde_json::json!({ "value": value });
    let invoked = nanos(start);
    let kind = rng.below(10);
    let (op, write, status, found) = match kind {
        0..=3 => {
            let query = if stale_reads {
                "?consistency=stale"
            } else {
                ""
            };
            let r = http.get(format!("{url}/kv/{key}{query}")).send();
            let status = r.as_ref().map(|r| r.status().as_u16()).ok();
            let seen: Option<serde_json::Value> = r.ok().and_then(|r| r.json().ok());
            let found = seen.and_then(|v| {
                v["found"]
                    .as_bool()
                    .map(|f| f.then(|| v["value"].as_str().unwrap_or_default().as_bytes().to_vec()))
            });
            (Op::Get(found.clone().flatten()), false, status, found)
        }
        4..=6 => {
            let status = outcome(http.put(format!("{url}/kv/{key}")).json(&body).send());
            (Op::Put(value.as_bytes().to_vec()), true, status, None)
        }
        7..=8 => {
            let status = outcome(
                http.put(format!("{url}/kv/{key}"))
                    .header("if-none-match", "*")
                    .json(&body)
                    .send(),
            );
            let won = status == Some(200);
            (
                Op::PutIfAbsent(value.as_bytes().to_vec(), won),
                true,
                status,
                None,
            )
        }
        _ => {
            let status = outcome(http.delete(format!("{url}/kv/{key}")).send());
            (Op::Delete, true, status, None)
        }
    };
    let answered = nanos(start);
    let acknowledged = match op {
        Op::PutIfAbsent(..) => matches!(status, Some(200 | 412)),
        Op::Get(_) => status == Some(200) && found.is_some(),
        _ => status == Some(200),
    };
    let answer = Answer {
        node,
        write,
        acknowledged,
        sent: invoked,
        status,
        answered,
    };
    let event = if acknowledged {
        Some(Event {
            key: key.as_bytes().to_vec(),
            op,
            invoked,
            completed: Some(answered),
        })
    } else if write && status != Some(NOT_APPLIED) {
        // Unknown: it may have been applied, then or later, or never.
        Some(Event {
            key: key.as_bytes().to_vec(),
            op,
            invoked,
            completed: None,
        })
    } else {
        None
    };
    (event, answer)
}
