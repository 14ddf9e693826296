//! Model-based test: random sequences of operations run against the store and
//! against a `BTreeMap`, compared after every step.
//!
//! Tiny data files make rotation frequent; reopen and read-only opens check
//! recovery against the model. proptest prints a failing case and stores it
//! under `proptest-regressions/`; `PROPTEST_CASES=5000` runs a longer search.

mod common;

use std::collections::BTreeMap;

use bitcask::{Bitcask, Options};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Delete(usize),
    Get(usize),
    Sync,
    Reopen,
    ReadOnlyView,
}

/// Keys of different lengths, so records differ in size.
fn key(i: usize) -> Vec<u8> {
    let mut k = format!("k{i}").into_bytes();
    k.extend(std::iter::repeat_n(b'.', i % 5));
    k
}

const KEYS: usize = 12;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..KEYS, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0..KEYS).prop_map(Op::Delete),
        3 => (0..KEYS).prop_map(Op::Get),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::ReadOnlyView),
    ]
}

fn options(file_size: u64) -> Options {
    common::fast().max_file_size(file_size)
}

fn check_matches(db: &Bitcask, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), TestCaseError> {
    for i in 0..KEYS {
        let k = key(i);
        prop_assert_eq!(
            db.get(&k).expect("get"),
            model.get(&k).cloned(),
            "key {:?}",
            k
        );
        prop_assert_eq!(db.contains(&k), model.contains_key(&k));
    }
    prop_assert_eq!(db.len(), model.len());
    prop_assert_eq!(db.is_empty(), model.is_empty());
    let keys: Vec<Vec<u8>> = db.keys().collect();
    let expected: Vec<Vec<u8>> = model.keys().cloned().collect();
    prop_assert_eq!(keys, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn store_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..120), file_size in 40u64..400) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Bitcask::open_with(dir.path(), options(file_size)).expect("open");
        let mut model = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    db.put(&key(k), &v).expect("put");
                    model.insert(key(k), v);
                }
                Op::Delete(k) => {
                    let existed = db.delete(&key(k)).expect("delete");
                    prop_assert_eq!(existed, model.remove(&key(k)).is_some());
                }
                Op::Get(k) => {
                    prop_assert_eq!(db.get(&key(k)).expect("get"), model.get(&key(k)).cloned());
                }
                Op::Sync => db.sync().expect("sync"),
                Op::Reopen => {
                    db.close().expect("close");
                    db = Bitcask::open_with(dir.path(), options(file_size)).expect("reopen");
                }
                Op::ReadOnlyView => {
                    let view = Bitcask::open_with(dir.path(), options(file_size).read_only(true))
                        .expect("read-only open beside the writer");
                    check_matches(&view, &model)?;
                    prop_assert!(matches!(view.put(b"x", b"y"), Err(bitcask::Error::ReadOnly)));
                }
            }
            check_matches(&db, &model)?;
        }
    }
}
