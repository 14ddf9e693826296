//! Power-loss tests on the simulated disk (`sim.rs`): random histories of
//! writes, batches, merges and reopens, with small files so that rotations
//! happen, and a power cut at a random change to the disk (inside a
//! rotation, a merge, a hint write or a close as well as between calls).
//! The store that opens from the cut must be the store after some prefix of
//! the history (nothing invented, no batch in part, no deleted key back,
//! no hole). Under every policy that prefix must hold every step that
//! returned before the last sync of a data file (the active file, or one
//! sealed at rotation) that started and ended before the cut; under
//! `sync=always`, every step that returned before the cut. Every batch
//! carries its step number as its mark, and the mark the cut's store
//! reports must name exactly the newest batch its contents include.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::clock::{Clock, ManualClock};
use crate::sim::{self, Keep};
use crate::{Batch, Bitcask, Condition, Error, Options, SyncPolicy, WriteOptions};

/// Keys are a handful of names, so histories overwrite and delete.
const KEYS: u8 = 6;

/// One step of a history.
#[derive(Debug, Clone)]
enum Step {
    Put(u8, usize),
    Delete(u8),
    /// Puts (`Some(len)`) and deletes (`None`), all or nothing, marked
    /// with the step's number (none: a mark alone).
    Batch(Vec<(u8, Option<usize>)>),
    /// A put that expires after this many milliseconds.
    PutTtl(u8, usize, u64),
    /// Time passes (the store's clock is a manual one).
    Advance(u64),
    /// A put only if the key is absent (`If-None-Match: *`, `SETNX`).
    PutIfAbsent(u8, usize),
    /// A put only if the key is at the version the model last saw.
    PutIfUnchanged(u8, usize),
    Merge,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..KEYS, 0usize..300).prop_map(|(k, len)| Step::Put(k, len)),
        2 => (0..KEYS).prop_map(Step::Delete),
        1 => (0..KEYS, 0usize..200).prop_map(|(k, len)| Step::PutIfAbsent(k, len)),
        1 => (0..KEYS, 0usize..200, 1u64..50).prop_map(|(k, len, ttl)| Step::PutTtl(k, len, ttl)),
        1 => (1u64..30).prop_map(Step::Advance),
        1 => (0..KEYS, 0usize..200).prop_map(|(k, len)| Step::PutIfUnchanged(k, len)),
        2 => proptest::collection::vec((0..KEYS, proptest::option::of(0usize..200)), 0..4)
            .prop_map(Step::Batch),
        1 => Just(Step::Merge),
        1 => Just(Step::Reopen),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

/// The value the `n`-th write of the history puts (unique, so a value
/// found tells which write it came from).
fn value(n: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{n}:").into_bytes();
    v.resize(len.max(v.len()), b'a' + (n % 26) as u8);
    v
}

/// Keys and their values with the time they expire (if they do).
type State = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

/// The clock every store of a test reads: time passes only by `Advance`.
const START_MS: u64 = 1_000_000;

fn options(policy: SyncPolicy, clock: &Arc<ManualClock>) -> Options {
    Options::new()
        .sync(policy)
        .max_file_size(2048)
        .merge_trigger(None)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
}

/// `state` as it reads at `now_ms`: the keys not expired, with their values.
fn live(state: &State, now_ms: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    state
        .iter()
        .filter(|(_, (_, expires))| expires.is_none_or(|at| at > now_ms))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

/// What the store holds, read key by key.
fn contents(db: &Bitcask) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for k in 0..KEYS {
        if let Ok(Some(v)) = db.get(&key(k)) {
            state.insert(key(k), v);
        }
    }
    state
}

/// What a run of a history recorded.
struct Ran {
    /// The model state after each applied step (index 0: before any).
    states: Vec<State>,
    /// For each step, the number of changes recorded when its call returned.
    acked: Vec<u64>,
    /// The data-file syncs, as (start, end) change numbers.
    syncs: Vec<(u64, u64)>,
    /// The clock at the end of the history (the cut's store is read then).
    clock: Arc<ManualClock>,
}

/// Runs `history` on a store in `dir` (watched) with a power cut armed at
/// change `cut_at` into `cut`.
fn run(
    dir: &Path,
    cut: &Path,
    history: &[Step],
    policy: SyncPolicy,
    cut_at: u64,
    keep: Keep,
) -> Ran {
    sim::watch(dir).expect("watch");
    let armed_at = sim::ops(dir) + cut_at;
    sim::cut_at(dir, armed_at, cut, keep.clone()).expect("arm the cut");
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut db = Some(Bitcask::open_with(dir, options(policy, &clock)).expect("open"));
    let mut model = State::new();
    let mut states = vec![model.clone()];
    let mut acked = vec![0];
    for (n, step) in history.iter().enumerate() {
        let Some(store) = db.as_ref() else { break };
        match step {
            Step::Put(k, len) => {
                let v = value(n, *len);
                store.put(&key(*k), &v).expect("put");
                model.insert(key(*k), (v, None));
            }
            Step::PutTtl(k, len, ttl) => {
                let v = value(n, *len);
                let options = WriteOptions::new().ttl(Duration::from_millis(*ttl));
                store.put_with(&key(*k), &v, options).expect("put");
                model.insert(key(*k), (v, Some(clock.now_ms() + ttl)));
            }
            Step::Advance(ms) => clock.advance(*ms),
            Step::Delete(k) => {
                store.delete(&key(*k)).expect("delete");
                model.remove(&key(*k));
            }
            Step::PutIfAbsent(k, len) | Step::PutIfUnchanged(k, len) => {
                let v = value(n, *len);
                let current = store.get_versioned(&key(*k)).expect("get");
                let live_now = live(&model, clock.now_ms());
                let condition = match (step, &current) {
                    (Step::PutIfAbsent(..), _) | (_, None) => Condition::Absent,
                    (_, Some(old)) => Condition::Version(old.version),
                };
                let options = WriteOptions::new().condition(condition);
                match store.put_with(&key(*k), &v, options) {
                    Ok(_) => {
                        model.insert(key(*k), (v, None));
                    }
                    // Refused: nothing written, the model unchanged.
                    Err(Error::ConditionFailed { .. }) => {
                        assert!(live_now.contains_key(&key(*k)), "refused though absent");
                    }
                    Err(other) => panic!("conditional put: {other}"),
                }
            }
            Step::Batch(ops) => {
                let mut batch = Batch::new();
                for (i, (k, op)) in ops.iter().enumerate() {
                    match op {
                        Some(len) => {
                            let v = value(n * 16 + i + 1_000_000, *len);
                            batch.put(key(*k), v.clone());
                            model.insert(key(*k), (v, None));
                        }
                        None => {
                            batch.delete(key(*k));
                            model.remove(&key(*k));
                        }
                    }
                }
                batch.mark((n as u64).to_le_bytes());
                store.write_batch(&batch).expect("batch");
            }
            Step::Merge => {
                store.merge().expect("merge");
            }
            Step::Reopen => {
                if let Some(store) = db.take() {
                    store.close().expect("close");
                }
                db = Some(Bitcask::open_with(dir, options(policy, &clock)).expect("reopen"));
            }
        }
        states.push(model.clone());
        acked.push(sim::ops(dir));
    }
    if let Some(store) = db.take() {
        store.close().expect("close");
    }
    // A cut armed past the end falls after the close. (An empty cut
    // directory is no sign: a cut before any name was durable leaves
    // nothing.)
    if sim::ops(dir) < armed_at {
        sim::power_cut(dir, cut, keep).expect("cut at the end");
    }
    let syncs = sim::data_syncs(dir);
    sim::unwatch(dir);
    Ran {
        states,
        acked,
        syncs,
        clock,
    }
}

/// Checks the store that opens from `cut` against the run's states.
fn check(cut: &Path, history: &[Step], ran: &Ran, cut_at: u64, policy: SyncPolicy) {
    let Ran {
        states,
        acked,
        syncs,
        clock,
    } = ran;
    let db =
        Bitcask::open_with(cut, options(policy, clock)).expect("the store opens after a power cut");
    let found = contents(&db);
    let mark = db.mark().map(|m| {
        let bytes: [u8; 8] = m.as_slice().try_into().expect("an 8-byte mark");
        u64::from_le_bytes(bytes) as usize
    });
    db.close().expect("close");
    // The prefixes the mark allows: from the state right after the marked
    // batch up to the state right before the next batch.
    let batches: Vec<usize> = (0..history.len())
        .filter(|&n| matches!(history[n], Step::Batch(_)))
        .collect();
    let after_mark = mark.map_or(0, |n| n + 1);
    let next_batch = batches
        .iter()
        .copied()
        .find(|&n| mark.is_none_or(|m| n > m))
        .unwrap_or(history.len());
    assert!(
        mark.is_none_or(|m| batches.contains(&m)),
        "the mark {mark:?} names no batch"
    );
    let mark_allows = |i: usize| (after_mark..=next_batch).contains(&i);
    // Every state as it reads at the end of the history.
    let now = clock.now_ms();
    let states: Vec<_> = states.iter().map(|s| live(s, now)).collect();
    let returned_before = |op: u64| acked.iter().rposition(|&ops| ops < op).unwrap_or(0);
    // Every step that returned before a data sync that completed before
    // the cut started; under `always`, every step that returned before it.
    let synced = syncs
        .iter()
        .filter(|&&(_, end)| end <= cut_at)
        .map(|&(start, _)| returned_before(start))
        .max()
        .unwrap_or(0);
    let required = match policy {
        SyncPolicy::Always => returned_before(cut_at).max(synced),
        _ => synced,
    };
    let prefixes: Vec<usize> = (0..states.len()).filter(|&i| states[i] == found).collect();
    assert!(
        prefixes.iter().any(|&i| i >= required),
        "after a cut at change {cut_at} under {policy:?} the store holds {}, which is the \
         state after steps {prefixes:?}; every step up to {required} was acknowledged before \
         the cut",
        show(&found)
    );
    assert!(
        prefixes.iter().any(|&i| i >= required && mark_allows(i)),
        "after a cut at change {cut_at} under {policy:?} the store holds the state after \
         steps {prefixes:?} but its mark names step {mark:?}"
    );
}

/// A state in short: each key with the write its value came from.
fn show(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let pairs: Vec<String> = state
        .iter()
        .map(|(k, v)| {
            let write = v.split(|&b| b == b':').next().unwrap_or_default();
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(write)
            )
        })
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn policy() -> impl Strategy<Value = SyncPolicy> {
    prop_oneof![
        Just(SyncPolicy::Always),
        Just(SyncPolicy::Never),
        Just(SyncPolicy::Interval(std::time::Duration::from_millis(1))),
    ]
}

/// 64 histories in the suite; `PROPTEST_CASES` asks for more (the longer
/// runs recorded in docs/RELIABILITY.md).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_power_cut_leaves_a_prefix_of_the_history(
        history in proptest::collection::vec(step(), 1..40),
        policy in policy(),
        cut_fraction in 0.0f64..1.0,
        seed in any::<u64>(),
        odds in prop_oneof![Just(0u32), Just(256u32), 1u32..256],
    ) {
        // A first run counts the history's changes to the disk, so that the
        // cut falls inside it (at the first change, up to the close).
        let count = tempfile::tempdir().expect("tempdir");
        let unused = tempfile::tempdir().expect("tempdir");
        let counted = run(
            count.path(), unused.path(), &history, policy, u64::MAX / 2, Keep::everything(),
        );
        let total = counted.acked.last().copied().unwrap_or(1).max(1);
        let cut_at = 1 + (cut_fraction * total as f64) as u64;
        let dir = tempfile::tempdir().expect("tempdir");
        let cut = tempfile::tempdir().expect("tempdir");
        let ran = run(dir.path(), cut.path(), &history, policy, cut_at, Keep::new(seed, odds));
        check(cut.path(), &history, &ran, cut_at, policy);
    }
}

/// The cases that found merge publishing its output, or deleting its
/// inputs, before the records that superseded what it left out were
/// durable: under `sync=never`, a later write to a key sat in the active
/// file, a merge dropped the key's older record from a sealed file, and a
/// power cut just after the merge lost the later write: the key was gone,
/// though never deleted in any prefix.
#[test]
fn a_merge_never_outlives_the_writes_it_relied_on() {
    use Step::*;
    let history = vec![
        Batch(vec![(5, Some(165)), (3, None), (3, None)]),
        Put(4, 57),
        Reopen,
        Put(2, 79),
        Put(2, 199),
        Put(3, 226),
        Put(2, 62),
        Batch(vec![(5, None), (4, Some(101))]),
        Reopen,
        Batch(vec![(5, Some(60))]),
        Batch(vec![(3, None), (3, Some(172)), (2, Some(165))]),
        Batch(vec![(0, Some(112))]),
        Batch(vec![(3, None), (3, Some(94))]),
        Merge,
        Put(5, 65),
        Put(1, 113),
        Put(2, 232),
    ];
    every_cut_keeps_a_prefix(&history);
    // A merge whose inputs hold nothing live: no output, inputs deleted.
    let history = vec![
        Put(0, 255),
        Batch(vec![(0, Some(93)), (0, None), (0, None)]),
        Put(0, 98),
        Put(1, 184),
        Batch(vec![(0, Some(75))]),
        Put(0, 254),
        Put(0, 232),
        Put(0, 179),
        Put(0, 31),
        Batch(vec![(2, None), (2, None), (0, Some(18))]),
        Put(2, 88),
        Put(2, 0),
        Merge,
        Batch(vec![(0, None)]),
        Put(1, 0),
        Merge,
        Put(1, 25),
    ];
    every_cut_keeps_a_prefix(&history);
}

/// Cuts `history` at every change to the disk, losing all that was not
/// synced, and checks each cut under `sync=never`.
fn every_cut_keeps_a_prefix(history: &[Step]) {
    let count = tempfile::tempdir().expect("tempdir");
    let unused = tempfile::tempdir().expect("tempdir");
    let counted = run(
        count.path(),
        unused.path(),
        history,
        SyncPolicy::Never,
        u64::MAX / 2,
        Keep::everything(),
    );
    for cut_at in 1..=counted.acked.last().copied().unwrap_or(0) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cut = tempfile::tempdir().expect("tempdir");
        let ran = run(
            dir.path(),
            cut.path(),
            history,
            SyncPolicy::Never,
            cut_at,
            Keep::nothing(),
        );
        check(cut.path(), history, &ran, cut_at, SyncPolicy::Never);
    }
}

/// A record copied into the active file's map (mapped appends) is a write
/// like any other: the next sync makes it durable, also when an earlier
/// sync already wrote the same page back (so only the copy itself dirtied
/// it again). Each put below is followed by `sync()`, then a power cut
/// that keeps no unsynced page must still hold every put.
#[test]
fn a_mapped_append_is_made_durable_by_the_next_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    // Files large enough for many records a page (and no rotation).
    let opts = || options(SyncPolicy::Never, &clock).max_file_size(64 << 10);
    sim::watch(dir.path()).expect("watch");
    let db = Bitcask::open_with(dir.path(), opts()).expect("open");
    let mut expected = BTreeMap::new();
    for n in 0..24usize {
        let k = key((n % 6) as u8);
        db.put(&k, &value(n, 40)).expect("put");
        expected.insert(k, value(n, 40));
        db.sync().expect("sync");
    }
    assert_eq!(db.stats().data_files, 1, "one active file, no rotation");
    let cut = tempfile::tempdir().expect("tempdir");
    sim::power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
    sim::unwatch(dir.path());
    drop(db);
    let after = Bitcask::open_with(cut.path(), opts()).expect("open the cut");
    assert_eq!(contents(&after), expected);
}

/// A backup cut by a power cut at any change to the disk: its destination
/// is absent, or a whole store with every key the store held when the
/// backup began (a leftover `.partial` directory is allowed: the next
/// backup replaces it).
#[test]
fn a_backup_survives_a_power_cut_whole_or_not_at_all() {
    let root = tempfile::tempdir().expect("tempdir");
    let store_dir = root.path().join("store");
    std::fs::create_dir(&store_dir).expect("mkdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let db = Bitcask::open_with(&store_dir, options(SyncPolicy::Never, &clock)).expect("open");
    for n in 0..30usize {
        db.put(&key((n % 5) as u8), &value(n, 150)).expect("put");
    }
    db.delete(&key(4)).expect("delete");
    let expected = contents(&db);
    sim::watch(root.path()).expect("watch");
    // A first backup counts the changes one makes.
    let before = sim::ops(root.path());
    db.backup(root.path().join("first")).expect("backup");
    let changes = sim::ops(root.path()) - before;
    assert!(changes > 5, "{changes}");
    let mut survived = 0;
    for at in 1..=changes {
        let dest = root.path().join(format!("backup-{at}"));
        let cut = tempfile::tempdir().expect("tempdir");
        sim::cut_at(
            root.path(),
            sim::ops(root.path()) + at,
            cut.path(),
            Keep::new(at, 128),
        )
        .expect("arm");
        db.backup(&dest).expect("backup");
        let copy = cut.path().join(format!("backup-{at}"));
        if copy.exists() {
            let restored = Bitcask::open_with(&copy, options(SyncPolicy::Never, &clock))
                .expect("a backup that survived opens");
            assert_eq!(contents(&restored), expected, "cut at change {at}");
            restored.close().expect("close");
            survived += 1;
        }
    }
    // Cut before its publication a backup is gone; after it, whole.
    assert!(
        survived > 0 && survived < changes,
        "{survived} of {changes}"
    );
    sim::unwatch(root.path());
    db.close().expect("close");
}

/// Copies the regular files of `from` into `to` (a new directory).
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// A repair cut by a power cut at any change to the disk can be run again,
/// and then the store holds exactly what a repair without a cut keeps.
#[test]
fn a_repair_cut_by_power_loss_can_be_run_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let damaged = root.path().join("damaged");
    std::fs::create_dir(&damaged).expect("mkdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let db = Bitcask::open_with(&damaged, options(SyncPolicy::Never, &clock)).expect("open");
    for n in 0..40usize {
        db.put(&key((n % 6) as u8), &value(n, 150)).expect("put");
    }
    db.close().expect("close");
    // One flipped byte inside the first record of the first (sealed) file.
    let first = damaged.join(crate::datafile::data_file_name(1));
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[100] ^= 0xff;
    std::fs::write(&first, &bytes).expect("damage");
    // What a repair keeps when nothing interrupts it.
    let reference = root.path().join("reference");
    copy_store(&damaged, &reference);
    let report = crate::repair::repair(&reference).expect("repair");
    assert!(report.found.is_damaged());
    let expected = {
        let db = Bitcask::open_with(&reference, options(SyncPolicy::Never, &clock)).expect("open");
        let found = contents(&db);
        db.close().expect("close");
        found
    };
    // The changes a repair makes.
    let counted = root.path().join("counted");
    copy_store(&damaged, &counted);
    sim::watch(&counted).expect("watch");
    crate::repair::repair(&counted).expect("repair");
    let changes = sim::ops(&counted);
    sim::unwatch(&counted);
    assert!(changes > 5, "{changes}");
    for at in 1..=changes {
        let work = root.path().join(format!("work-{at}"));
        copy_store(&damaged, &work);
        let cut = tempfile::tempdir().expect("tempdir");
        sim::watch(&work).expect("watch");
        sim::cut_at(&work, at, cut.path(), Keep::new(at, 128)).expect("arm");
        crate::repair::repair(&work).expect("repair");
        sim::unwatch(&work);
        crate::repair::repair(cut.path())
            .unwrap_or_else(|e| panic!("repair after a cut at change {at}: {e}"));
        let db = Bitcask::open_with(cut.path(), options(SyncPolicy::Never, &clock))
            .unwrap_or_else(|e| panic!("open after a cut at change {at} and a repair: {e}"));
        assert_eq!(contents(&db), expected, "cut at change {at}");
        db.close().expect("close");
    }
}
