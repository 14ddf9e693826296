//! A linearizability checker for histories of a key-value store, in the
//! manner of Wing & Gong's search with Lowe's memoisation (as Porcupine
//! and Knossos do it).
//!
//! A history is what clients saw: each operation's invocation and
//! completion times and its result. It is linearizable if every operation
//! can be given one instant between its invocation and its completion such
//! that, run in that order against a plain map, every result matches. An
//! operation whose outcome is unknown (it timed out, or the connection
//! broke) may take effect at any instant after its invocation, or never.
//!
//! Linearizability is local: a history is linearizable exactly when each
//! key's part of it is, so each key is checked alone (a register with
//! put, get, put-if-absent and delete).
//!
//! Written here rather than taken from a crate: the Rust checkers that
//! exist (stateright's tester among them) want the model and the history in
//! their own shapes and do not treat unknown outcomes as "maybe never";
//! this is the ~200 lines that do exactly that.

use std::collections::{BTreeMap, HashSet};

/// What an operation did to (or saw of) one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Stored `value`.
    Put(Vec<u8>),
    /// Read the key: `Some(value)`, or `None` for absent.
    Get(Option<Vec<u8>>),
    /// Stored `value` only if the key was absent; `true` if it did.
    PutIfAbsent(Vec<u8>, bool),
    /// Removed the key.
    Delete,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The key.
    pub key: Vec<u8>,
    /// What it did and, if it completed, what it saw.
    pub op: Op,
    /// When it was invoked (any monotonic unit: nanoseconds since start).
    pub invoked: u64,
    /// When its result came back; `None` if it never did (unknown outcome:
    /// it may or may not have taken effect). Reads with unknown outcome
    /// should be left out of the history: they saw nothing.
    pub completed: Option<u64>,
}

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Vec<u8>,
    /// How many of its completed operations the search could place at most.
    pub placed: usize,
    /// How many operations the key has.
    pub operations: usize,
    /// The search gave up (its step budget ran out) without deciding:
    /// not a proof of a violation, but not a pass either.
    pub undecided: bool,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.undecided {
            "could not be decided within the search budget"
        } else {
            "is not linearizable"
        };
        write!(
            f,
            "the history of key {:?} {verdict} ({} of {} operations placed at most)",
            String::from_utf8_lossy(&self.key),
            self.placed,
            self.operations
        )
    }
}

/// Checks `history` key by key; the first key that fails (a violation
/// rather than an undecided key, if there is one), if any.
pub fn check(history: &[Event]) -> Result<(), Violation> {
    let report = check_all(history);
    match report.iter().find(|v| !v.undecided).or(report.first()) {
        Some(v) => Err(v.clone()),
        None => Ok(()),
    }
}

/// Checks every key of `history`; every key that is not linearizable or
/// could not be decided.
pub fn check_all(history: &[Event]) -> Vec<Violation> {
    let mut by_key: BTreeMap<&[u8], Vec<&Event>> = BTreeMap::new();
    for event in history {
        by_key.entry(&event.key).or_default().push(event);
    }
    by_key
        .into_iter()
        .filter_map(|(key, events)| check_key(key, &events).err())
        .collect()
}

/// The register's state: the value, or `None` for absent.
type State = Option<Vec<u8>>;

/// Applies `op` to `state` if its result is consistent with it; the new
/// state, or `None` if the op cannot take effect here. An op of unknown
/// outcome (`known` false) is consistent with any state.
fn step(state: &State, op: &Op, known: bool) -> Option<State> {
    match op {
        Op::Put(value) => Some(Some(value.clone())),
        Op::Delete => Some(None),
        Op::Get(seen) => (!known || seen == state).then(|| state.clone()),
        Op::PutIfAbsent(value, won) => {
            let wins = state.is_none();
            if known && wins != *won {
                return None;
            }
            Some(if wins {
                Some(value.clone())
            } else {
                state.clone()
            })
        }
    }
}

/// Search steps allowed per key before it gives up undecided.
const STEP_BUDGET: u64 = 2_000_000;

/// One level of the search: the operations that could take effect next,
/// which of them is being tried, and the state before it.
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    chosen: Option<usize>,
    before: State,
}

/// The operations that may take effect next: every one not yet placed that
/// was invoked before the earliest completion among the known operations
/// not yet placed (nothing can be placed after a completion before the
/// operation that completed). Known operations come first, in invocation
/// order, then those of unknown outcome: a history where the unknown ones
/// never happened is found without trying them.
fn candidates(events: &[&Event], placed: &[bool]) -> Vec<usize> {
    let earliest = events
        .iter()
        .enumerate()
        .filter(|&(i, e)| !placed[i] && e.completed.is_some())
        .filter_map(|(_, e)| e.completed)
        .min()
        .unwrap_or(u64::MAX);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !placed[i] && e.invoked <= earliest {
            if e.completed.is_some() {
                known.push(i);
            } else {
                unknown.push(i);
            }
        }
    }
    known.sort_by_key(|&i| events[i].invoked);
    unknown.sort_by_key(|&i| events[i].invoked);
    known.extend(unknown);
    known
}

fn check_key(key: &[u8], events: &[&Event]) -> Result<(), Violation> {
    let n = events.len();
    let known_total = events.iter().filter(|e| e.completed.is_some()).count();
    let mut placed = vec![false; n];
    let mut known_placed = 0usize;
    let mut best = 0usize;
    let mut state: State = None;
    let mut stack: Vec<Frame> = Vec::new();
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut steps = 0u64;
    'search: loop {
        steps += 1;
        if steps > STEP_BUDGET {
            return Err(verdict(key, best, n, true));
        }
        if known_placed == known_total {
            // What is left never has to have happened.
            return Ok(());
        }
        stack.push(Frame {
            candidates: candidates(events, &placed),
            next: 0,
            chosen: None,
            before: state.clone(),
        });
        loop {
            let Some(frame) = stack.last_mut() else {
                return Err(verdict(key, best, n, false));
            };
            if let Some(previous) = frame.chosen.take() {
                placed[previous] = false;
                if events[previous].completed.is_some() {
                    known_placed -= 1;
                }
            }
            while frame.next < frame.candidates.len() {
                let op = frame.candidates[frame.next];
                frame.next += 1;
                let event = events[op];
                let Some(after) = step(&frame.before, &event.op, event.completed.is_some()) else {
                    continue;
                };
                placed[op] = true;
                if seen.insert((bits(&placed), after.clone())) {
                    frame.chosen = Some(op);
                    state = after;
                    if event.completed.is_some() {
                        known_placed += 1;
                        best = best.max(known_placed);
                    }
                    continue 'search;
                }
                placed[op] = false;
            }
            // Nothing here leads anywhere: undo the level above's choice.
            stack.pop();
            steps += 1;
            if steps > STEP_BUDGET {
                return Err(verdict(key, best, n, true));
            }
        }
    }
}

/// The failure of the search over `key`'s `operations`, having placed
/// `placed` known ones at most; `undecided` if it ran out of steps.
fn verdict(key: &[u8], placed: usize, operations: usize, undecided: bool) -> Violation {
    Violation {
        key: key.to_vec(),
        placed,
        operations,
        undecided,
    }
}

fn bits(flags: &[bool]) -> Vec<u64> {
    let mut out = vec![0u64; flags.len().div_ceil(64)];
    for (i, &f) in flags.iter().enumerate() {
        if f {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, invoked: u64, completed: Option<u64>) -> Event {
        Event {
            key: b"k".to_vec(),
            op,
            invoked,
            completed,
        }
    }

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn sequential_histories_check_as_a_map_would() {
        let ok = [
            ev(Op::Get(None), 0, Some(1)),
            ev(Op::Put(v("a")), 2, Some(3)),
            ev(Op::Get(Some(v("a"))), 4, Some(5)),
            ev(Op::PutIfAbsent(v("b"), false), 6, Some(7)),
            ev(Op::Delete, 8, Some(9)),
            ev(Op::PutIfAbsent(v("c"), true), 10, Some(11)),
            ev(Op::Get(Some(v("c"))), 12, Some(13)),
        ];
        assert_eq!(check(&ok), Ok(()));
        let mut bad = ok.to_vec();
        bad[2].op = Op::Get(None);
        assert!(check(&bad).is_err());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        // The write of b completed before the read began; the read saw a.
        let history = [
            ev(Op::Put(v("a")), 0, Some(10)),
            ev(Op::Put(v("b")), 20, Some(30)),
            ev(Op::Get(Some(v("a"))), 40, Some(50)),
        ];
        let violation = check(&history).expect_err("stale read");
        assert_eq!(violation.operations, 3);
        // The same read overlapping the write may see either value.
        let overlapping = [
            ev(Op::Put(v("a")), 0, Some(10)),
            ev(Op::Put(v("b")), 20, Some(45)),
            ev(Op::Get(Some(v("a"))), 40, Some(50)),
        ];
        assert_eq!(check(&overlapping), Ok(()));
    }

    #[test]
    fn two_winners_of_one_put_if_absent_are_caught() {
        let history = [
            ev(Op::PutIfAbsent(v("x"), true), 0, Some(10)),
            ev(Op::PutIfAbsent(v("y"), true), 0, Some(10)),
        ];
        assert!(check(&history).is_err());
        let one = [
            ev(Op::PutIfAbsent(v("x"), true), 0, Some(10)),
            ev(Op::PutIfAbsent(v("y"), false), 0, Some(10)),
            ev(Op::Get(Some(v("x"))), 11, Some(12)),
        ];
        assert_eq!(check(&one), Ok(()));
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not_but_not_twice_or_late() {
        // A timed-out write of b, then reads of a then b: fine (it
        // happened between them).
        let history = [
            ev(Op::Put(v("a")), 0, Some(1)),
            ev(Op::Put(v("b")), 2, None),
            ev(Op::Get(Some(v("a"))), 3, Some(4)),
            ev(Op::Get(Some(v("b"))), 5, Some(6)),
        ];
        assert_eq!(check(&history), Ok(()));
        // It never happened: also fine.
        let never = [
            ev(Op::Put(v("a")), 0, Some(1)),
            ev(Op::Put(v("b")), 2, None),
            ev(Op::Get(Some(v("a"))), 3, Some(4)),
        ];
        assert_eq!(check(&never), Ok(()));
        // But b cannot be seen before it was invoked, nor come back after
        // a was read again.
        let early = [
            ev(Op::Get(Some(v("b"))), 0, Some(1)),
            ev(Op::Put(v("b")), 2, None),
        ];
        assert!(check(&early).is_err());
        let flip_flop = [
            ev(Op::Put(v("a")), 0, Some(1)),
            ev(Op::Put(v("b")), 2, None),
            ev(Op::Get(Some(v("b"))), 3, Some(4)),
            ev(Op::Get(Some(v("a"))), 5, Some(6)),
        ];
        assert!(check(&flip_flop).is_err());
    }

    #[test]
    fn keys_are_checked_apart_and_many_concurrent_operations_stay_fast() {
        // 8 clients, 200 rounds of overlapping puts and gets on one key,
        // each get seeing the last completed put: linearizable, and the
        // memoised search must not blow up.
        let mut history = Vec::new();
        let mut t = 0u64;
        let mut last = None;
        for round in 0..200u64 {
            let value = format!("v{round}").into_bytes();
            history.push(ev(Op::Put(value.clone()), t, Some(t + 5)));
            for c in 0..7u64 {
                history.push(ev(Op::Get(last.clone()), t + c % 3, Some(t + 2 + c % 3)));
            }
            last = Some(value);
            t += 10;
        }
        let mut other = ev(Op::Get(Some(v("never written"))), 0, Some(1));
        other.key = b"other".to_vec();
        assert_eq!(check(&history), Ok(()));
        history.push(other);
        let violation = check(&history).expect_err("the other key");
        assert_eq!(violation.key, b"other");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// Histories made by running operations against a map at chosen
        /// instants, each given an interval around its instant, are
        /// linearizable by construction: the checker must accept every one
        /// (no false alarms), including with unknown outcomes.
        #[test]
        fn histories_made_linearizable_are_accepted(
            ops in proptest::collection::vec((0u8..4, 0u8..3, 0u64..40, 0u64..40, 0u8..10), 1..60),
        ) {
            let mut state: State = None;
            let mut history = Vec::new();
            for (n, (kind, value, before, after, unknown)) in ops.into_iter().enumerate() {
                let at = (n as u64 + 1) * 20;
                let value = vec![b'a' + value];
                let op = match kind {
                    0 => Op::Put(value.clone()),
                    1 => Op::Get(state.clone()),
                    2 => Op::PutIfAbsent(value.clone(), state.is_none()),
                    _ => Op::Delete,
                };
                state = step(&state, &op, true).expect("consistent by construction");
                let is_read = matches!(op, Op::Get(_));
                let completed = (unknown != 0 || is_read).then_some(at + after);
                history.push(ev(op, at.saturating_sub(before), completed));
            }
            proptest::prop_assert_eq!(check(&history), Ok(()));
        }
    }
}
