//! Power-loss tests of the journal on the simulated disk (`sim.rs`):
//! random histories of appends, syncs, truncations, purges and reopens with
//! small segments, and a power cut at a random change to the disk. The
//! journal that opens from the cut must:
//!
//! - open, and hold consecutive records from its floor on (a gap fails the
//!   open, so this is checked by opening);
//! - hold every record a sync covered before the cut (unless a truncation
//!   or purge that had started by then may have removed it);
//! - hold no record a truncation that returned before the cut removed;
//! - have a floor no lower than the last purge that returned before the
//!   cut, and no higher than any purge asked for;
//! - hold only payloads that were appended at that index.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::Journal;
use crate::sim::{self, Keep};

#[derive(Debug, Clone)]
enum Step {
    /// Appends this many records (payload lengths).
    Append(Vec<usize>),
    Sync,
    /// Truncates this many records off the end.
    Truncate(u64),
    /// Purges this many records past the floor (maybe past the end).
    Purge(u64),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(0usize..300, 1..6).prop_map(Step::Append),
        3 => Just(Step::Sync),
        1 => (0u64..8).prop_map(Step::Truncate),
        1 => (0u64..12).prop_map(Step::Purge),
        1 => Just(Step::Reopen),
    ]
}

const SEGMENT_SIZE: u64 = 600;

/// The payload step `step` appends at `index`: names both.
fn payload(step: usize, index: u64, len: usize) -> Vec<u8> {
    let mut p = format!("{step}:{index}:").into_bytes();
    p.resize(len.max(p.len()), b'a' + (index % 26) as u8);
    p
}

fn step_of(payload: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What a run recorded, to judge the cut by.
#[derive(Default)]
struct Ran {
    /// Changes recorded when each step returned (index 0: before any).
    acked: Vec<u64>,
    /// For each append: (step, index).
    appended: Vec<(usize, u64)>,
    /// For each sync: its step.
    syncs: Vec<usize>,
    /// For each truncation: (step, last index kept).
    truncations: Vec<(usize, u64)>,
    /// For each purge: (step, new floor).
    purges: Vec<(usize, u64)>,
}

fn run(dir: &Path, cut: &Path, history: &[Step], cut_at: u64, keep: Keep) -> Ran {
    sim::watch(dir).expect("watch");
    let armed_at = sim::ops(dir) + cut_at;
    sim::cut_at(dir, armed_at, cut, keep.clone()).expect("arm the cut");
    let mut ran = Ran {
        acked: vec![0],
        ..Ran::default()
    };
    let mut journal = Some(Journal::open_with(dir, SEGMENT_SIZE).expect("open"));
    for (n, step) in history.iter().enumerate() {
        let Some(j) = journal.as_mut() else { break };
        match step {
            Step::Append(lens) => {
                let first = j.next_index();
                let payloads: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| payload(n, first + i as u64, len))
                    .collect();
                j.append(first, payloads.iter().map(Vec::as_slice))
                    .expect("append");
                ran.appended
                    .extend((0..lens.len() as u64).map(|i| (n, first + i)));
            }
            Step::Sync => {
                j.sync().expect("sync");
                ran.syncs.push(n);
            }
            Step::Truncate(k) => {
                let keep_last = j.next_index().saturating_sub(1 + k).max(j.floor() - 1);
                j.truncate_after(keep_last).expect("truncate");
                ran.truncations.push((n, keep_last));
            }
            Step::Purge(k) => {
                let through = j.floor() - 1 + k;
                j.purge_through(through).expect("purge");
                ran.purges.push((n, j.floor()));
            }
            Step::Reopen => {
                drop(journal.take());
                journal = Some(Journal::open_with(dir, SEGMENT_SIZE).expect("reopen"));
            }
        }
        ran.acked.push(sim::ops(dir));
    }
    drop(journal);
    // A cut armed past the end falls after the last step. (An empty cut
    // directory is no sign: a cut before the first segment's name was
    // durable leaves nothing.)
    if sim::ops(dir) < armed_at {
        sim::power_cut(dir, cut, keep).expect("cut at the end");
    }
    sim::unwatch(dir);
    ran
}

fn check(cut: &Path, ran: &Ran, cut_at: u64) {
    let journal = Journal::open_with(cut, SEGMENT_SIZE).expect("the journal opens after a cut");
    let floor = journal.floor();
    let next = journal.next_index();
    let found: BTreeMap<u64, (usize, u64)> = journal
        .read_range(floor, next)
        .expect("read")
        .iter()
        .zip(floor..)
        .map(|(p, i)| (i, step_of(p).expect("a payload of the history")))
        .collect();
    // Step `n` (0-based) returned before the cut / started before it.
    let returned = |n: usize| ran.acked.get(n + 1).is_some_and(|&ops| ops < cut_at);
    let started = |n: usize| ran.acked.get(n).is_some_and(|&ops| ops < cut_at);

    for (&index, &(step, at)) in &found {
        assert_eq!(index, at, "record {index} holds the payload of index {at}");
        assert!(
            ran.appended.contains(&(step, index)) && started(step),
            "record {index} came from step {step}, which never appended it before the cut"
        );
        for &(t, kept) in &ran.truncations {
            assert!(
                !(t > step && returned(t) && index > kept),
                "record {index} of step {step} is back after truncation at step {t} \
                 (kept up to {kept}) returned before the cut at {cut_at}"
            );
        }
    }
    let returned_floor = ran
        .purges
        .iter()
        .filter(|&&(p, _)| returned(p))
        .map(|&(_, f)| f)
        .max()
        .unwrap_or(1);
    let asked_floor = ran
        .purges
        .iter()
        .filter(|&&(p, _)| started(p))
        .map(|&(_, f)| f)
        .max()
        .unwrap_or(1);
    assert!(
        (returned_floor..=asked_floor).contains(&floor),
        "floor {floor}: purges had reached {returned_floor} and asked for {asked_floor}"
    );
    for &(step, index) in &ran.appended {
        let synced = ran.syncs.iter().any(|&s| s > step && returned(s));
        let removed = ran
            .truncations
            .iter()
            .any(|&(t, kept)| t > step && started(t) && index > kept)
            || ran
                .purges
                .iter()
                .any(|&(p, f)| p > step && started(p) && index < f);
        // Overwritten at the same index by a later append that reached the
        // disk: the later one counts.
        let replaced = found.get(&index).is_some_and(|&(s, _)| s > step);
        if synced && !removed && !replaced {
            assert_eq!(
                found.get(&index),
                Some(&(step, index)),
                "record {index} of step {step} was synced before the cut at {cut_at} \
                 and is missing"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_power_cut_keeps_every_synced_record_and_no_truncated_one(
        history in proptest::collection::vec(step(), 1..40),
        cut_fraction in 0.0f64..1.0,
        seed in any::<u64>(),
        odds in prop_oneof![Just(0u32), Just(256u32), 1u32..256],
    ) {
        let count = tempfile::tempdir().expect("tempdir");
        let unused = tempfile::tempdir().expect("tempdir");
        let counted = run(count.path(), unused.path(), &history, u64::MAX / 2, Keep::everything());
        let total = counted.acked.last().copied().unwrap_or(1).max(1);
        let cut_at = 1 + (cut_fraction * total as f64) as u64;
        let dir = tempfile::tempdir().expect("tempdir");
        let cut = tempfile::tempdir().expect("tempdir");
        let ran = run(dir.path(), cut.path(), &history, cut_at, Keep::new(seed, odds));
        check(cut.path(), &ran, cut_at);
    }
}
