//! Model-based test: random sequences of operations run against the store and
//! against a `BTreeMap`, compared after every step.
//!
//! The operations cover the whole engine: puts (with and without a
//! time-to-live), deletes, conditional writes, batches, merges, clock moves,
//! reopens with and without hint files, read-only views and paged listing.
//! Tiny data files make rotation frequent. proptest prints a failing case and
//! stores it under `proptest-regressions/`; `PROPTEST_CASES=5000` runs a
//! longer search.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bitcask::clock::ManualClock;
use bitcask::{Batch, Bitcask, Condition, Error, KeyRange, Options, WriteOptions};
use proptest::prelude::*;

/// How a conditional write picks its condition.
#[derive(Debug, Clone, Copy)]
enum Cond {
    Absent,
    Present,
    /// The key's current version (holds if the key is live).
    Current,
    /// A version the key does not have.
    Stale,
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    PutTtl(usize, Vec<u8>, u64),
    Delete(usize),
    Get(usize),
    CasPut(usize, Vec<u8>, Cond),
    CasDelete(usize, Cond),
    Batch(Vec<(usize, Option<Vec<u8>>)>),
    Advance(u64),
    Merge,
    Sync,
    Reopen {
        hints: bool,
    },
    ReadOnlyView,
    List {
        prefix: usize,
        after: Option<usize>,
        limit: usize,
    },
}

/// Keys of different lengths, so records differ in size; two prefixes.
fn key(i: usize) -> Vec<u8> {
    let mut k = format!("{}{i}", if i.is_multiple_of(2) { "a/" } else { "b/" }).into_bytes();
    k.extend(std::iter::repeat_n(b'.', i % 5));
    k
}

const KEYS: usize = 12;
const PREFIXES: [&str; 3] = ["", "a/", "b/1"];

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        Just(Cond::Absent),
        Just(Cond::Present),
        Just(Cond::Current),
        Just(Cond::Stale)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..KEYS, value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0..KEYS, value(), 1u64..50).prop_map(|(k, v, t)| Op::PutTtl(k, v, t)),
        3 => (0..KEYS).prop_map(Op::Delete),
        2 => (0..KEYS).prop_map(Op::Get),
        2 => (0..KEYS, value(), cond()).prop_map(|(k, v, c)| Op::CasPut(k, v, c)),
        1 => (0..KEYS, cond()).prop_map(|(k, c)| Op::CasDelete(k, c)),
        2 => proptest::collection::vec((0..KEYS, proptest::option::of(value())), 1..5).prop_map(Op::Batch),
        2 => (0u64..60).prop_map(Op::Advance),
        2 => Just(Op::Merge),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|hints| Op::Reopen { hints }),
        1 => Just(Op::ReadOnlyView),
        1 => (0..PREFIXES.len(), proptest::option::of(0..KEYS), 1usize..6)
            .prop_map(|(prefix, after, limit)| Op::List { prefix, after, limit }),
    ]
}

/// What the model holds per key: value, version, expiry (0 = never).
type Model = BTreeMap<Vec<u8>, (Vec<u8>, u64, u64)>;

fn live(model: &Model, now: u64) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
    model
        .iter()
        .filter(|(_, (_, _, exp))| *exp == 0 || now < *exp)
        .map(|(k, (v, ver, _))| (k.clone(), (v.clone(), *ver)))
        .collect()
}

fn options(file_size: u64, clock: &Arc<ManualClock>) -> Options {
    common::fast().max_file_size(file_size).clock(clock.clone())
}

fn check_matches(db: &Bitcask, model: &Model, now: u64) -> Result<(), TestCaseError> {
    let live = live(model, now);
    for i in 0..KEYS {
        let k = key(i);
        let got = db.get_versioned(&k).expect("get");
        let want = live.get(&k);
        prop_assert_eq!(
            got.as_ref().map(|g| &g.value),
            want.map(|w| &w.0),
            "key {:?}",
            k
        );
        prop_assert_eq!(
            got.map(|g| g.version),
            want.map(|w| w.1),
            "version of {:?}",
            k
        );
        prop_assert_eq!(db.version(&k), want.map(|w| w.1));
        prop_assert_eq!(db.contains(&k), want.is_some());
    }
    // Expired keys leave the key directory only at merge or reopen.
    prop_assert!(db.len() >= live.len());
    let keys: Vec<Vec<u8>> = db.keys().collect();
    let expected: Vec<Vec<u8>> = live.keys().cloned().collect();
    prop_assert_eq!(keys, expected);
    Ok(())
}

fn condition(c: Cond, current: Option<u64>) -> Condition {
    match c {
        Cond::Absent => Condition::Absent,
        Cond::Present => Condition::Present,
        Cond::Current => current.map_or(Condition::Version(u64::MAX), Condition::Version),
        Cond::Stale => Condition::Version(current.map_or(1, |v| v + 1_000)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn store_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..120), file_size in 60u64..400) {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut db = Bitcask::open_with(dir.path(), options(file_size, &clock)).expect("open");
        let mut model = Model::new();
        for op in ops {
            let now = clock.now_ms_for_test();
            let current = live(&model, now);
            match op {
                Op::Put(k, v) => {
                    let version = db.put(&key(k), &v).expect("put");
                    model.insert(key(k), (v, version, 0));
                }
                Op::PutTtl(k, v, ttl) => {
                    let opts = WriteOptions::new().ttl(Duration::from_millis(ttl));
                    let version = db.put_with(&key(k), &v, opts).expect("put with ttl");
                    model.insert(key(k), (v, version, now + ttl));
                }
                Op::Delete(k) => {
                    let existed = db.delete(&key(k)).expect("delete");
                    prop_assert_eq!(existed, current.contains_key(&key(k)));
                    model.remove(&key(k));
                }
                Op::Get(k) => {
                    prop_assert_eq!(db.get(&key(k)).expect("get"), current.get(&key(k)).map(|c| c.0.clone()));
                }
                Op::CasPut(k, v, c) => {
                    let version_now = current.get(&key(k)).map(|c| c.1);
                    let cond = condition(c, version_now);
                    match db.put_with(&key(k), &v, WriteOptions::new().condition(cond)) {
                        Ok(version) => {
                            prop_assert!(cond_holds(cond, version_now), "{:?} succeeded at {:?}", cond, version_now);
                            model.insert(key(k), (v, version, 0));
                        }
                        Err(Error::ConditionFailed { current, .. }) => {
                            prop_assert!(!cond_holds(cond, version_now));
                            prop_assert_eq!(current, version_now);
                        }
                        Err(other) => prop_assert!(false, "unexpected {}", other),
                    }
                }
                Op::CasDelete(k, c) => {
                    let version_now = current.get(&key(k)).map(|c| c.1);
                    let cond = condition(c, version_now);
                    match db.delete_with(&key(k), WriteOptions::new().condition(cond)) {
                        Ok(deleted_at) => {
                            prop_assert!(cond_holds(cond, version_now));
                            prop_assert_eq!(deleted_at.is_some(), version_now.is_some());
                            if let (Some(at), Some(was)) = (deleted_at, version_now) {
                                prop_assert!(at > was, "a delete takes a new version");
                            }
                            model.remove(&key(k));
                        }
                        Err(Error::ConditionFailed { current, .. }) => {
                            prop_assert!(!cond_holds(cond, version_now));
                            prop_assert_eq!(current, version_now);
                        }
                        Err(other) => prop_assert!(false, "unexpected {}", other),
                    }
                }
                Op::Batch(ops) => {
                    let mut batch = Batch::new();
                    for (k, v) in &ops {
                        match v {
                            Some(v) => batch.put(key(*k), v.clone()),
                            None => batch.delete(key(*k)),
                        };
                    }
                    let last = db.write_batch(&batch).expect("batch").expect("not empty");
                    let first = last + 1 - ops.len() as u64;
                    for (i, (k, v)) in ops.into_iter().enumerate() {
                        match v {
                            Some(v) => model.insert(key(k), (v, first + i as u64, 0)),
                            None => model.remove(&key(k)),
                        };
                    }
                }
                Op::Advance(ms) => clock.advance(ms),
                Op::Merge => {
                    db.merge().expect("merge");
                }
                Op::Sync => db.sync().expect("sync"),
                Op::Reopen { hints } => {
                    db.close().expect("close");
                    db = Bitcask::open_with(dir.path(), options(file_size, &clock).use_hints(hints))
                        .expect("reopen");
                }
                Op::ReadOnlyView => {
                    let view = Bitcask::open_with(dir.path(), options(file_size, &clock).read_only(true))
                        .expect("read-only open beside the writer");
                    check_matches(&view, &model, now)?;
                    prop_assert!(matches!(view.put(b"x", b"y"), Err(Error::ReadOnly)));
                }
                Op::List { prefix, after, limit } => {
                    let prefix = PREFIXES[prefix];
                    let mut range = KeyRange::prefix(prefix);
                    if let Some(a) = after {
                        range = range.start_after(key(a));
                    }
                    let got: Vec<Vec<u8>> = db.keys_in(range).take(limit).collect();
                    let want: Vec<Vec<u8>> = current
                        .keys()
                        .filter(|k| k.starts_with(prefix.as_bytes()))
                        .filter(|k| after.is_none_or(|a| k.as_slice() > key(a).as_slice()))
                        .take(limit)
                        .cloned()
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
            check_matches(&db, &model, clock.now_ms_for_test())?;
        }
        // The space accounts agree with the data: nothing live is counted dead.
        let stats = db.stats();
        prop_assert_eq!(stats.live_bytes + stats.dead_bytes + 32 * stats.data_files, stats.total_bytes);
    }
}

fn cond_holds(c: Condition, current: Option<u64>) -> bool {
    match c {
        Condition::None => true,
        Condition::Absent => current.is_none(),
        Condition::Present => current.is_some(),
        Condition::Version(v) => current == Some(v),
    }
}

/// Reads a [`ManualClock`] through the public trait.
trait NowForTest {
    fn now_ms_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> u64 {
        bitcask::clock::Clock::now_ms(self)
    }
}
