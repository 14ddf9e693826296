//! Open and check apply one rule for which records survive
//! (`survival.rs`): on any store, whatever one damage it suffered (a cut,
//! a flipped byte, a zeroed run, in any data file),
//!
//! - if check finds damage, a writable open fails on the first damaged
//!   file, and cuts nothing;
//! - if check finds none, the open succeeds, and afterwards check finds the
//!   same records intact and nothing left to cut: open kept exactly what
//!   check said survives (and cut only the torn tail check named).

mod common;

use std::path::Path;

use bitcask::{Batch, Bitcask, Error, Options};
use proptest::prelude::*;

fn options() -> Options {
    common::fast().max_file_size(700).use_hints(false)
}

/// A store of `n` writes over several files: puts, deletes and batches.
fn build(dir: &Path, n: usize) {
    let db = Bitcask::open_with(dir, options()).expect("open");
    for i in 0..n {
        let key = format!("key-{}", i % 17);
        match i % 7 {
            3 => {
                let mut batch = Batch::new();
                batch.put(format!("b{i}-a"), format!("value-{i}"));
                batch.put(format!("b{i}-b"), format!("value-{i}"));
                batch.delete(key.clone());
                db.write_batch(&batch).expect("batch");
            }
            5 => {
                db.delete(key.as_bytes()).expect("delete");
            }
            _ => {
                db.put(key.as_bytes(), format!("value-{i}").as_bytes())
                    .expect("put");
            }
        }
    }
    db.close().expect("close");
    for hint in common::hint_files(dir) {
        std::fs::remove_file(hint).expect("remove hint");
    }
}

#[derive(Debug, Clone)]
enum Harm {
    Cut(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Zero(prop::sample::Index, usize),
    Nothing,
}

fn harm() -> impl Strategy<Value = Harm> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Harm::Cut),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, mask)| Harm::Flip(at, mask)),
        (any::<prop::sample::Index>(), 1usize..200).prop_map(|(at, len)| Harm::Zero(at, len)),
        Just(Harm::Nothing),
    ]
}

fn apply(path: &Path, harm: &Harm) {
    let mut bytes = std::fs::read(path).expect("read");
    // Past the 32-byte file header (a damaged header is its own case, and
    // check and open agree on it trivially: both refuse the file).
    let body = 32..bytes.len().max(33);
    let at = |i: &prop::sample::Index| body.start + i.index(body.len().max(1));
    match harm {
        Harm::Cut(i) => bytes.truncate(at(i).min(bytes.len())),
        Harm::Flip(i, mask) => {
            let at = at(i).min(bytes.len().saturating_sub(1));
            bytes[at] ^= mask;
        }
        Harm::Zero(i, len) => {
            let from = at(i).min(bytes.len());
            let to = (from + len).min(bytes.len());
            bytes[from..to].fill(0);
        }
        Harm::Nothing => {}
    }
    std::fs::write(path, bytes).expect("write");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn open_keeps_exactly_what_check_says_survives(
        n in 10usize..90,
        pick in any::<prop::sample::Index>(),
        harm in harm(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        build(dir.path(), n);
        let files = common::data_files(dir.path());
        let victim = pick.get(&files).clone();
        apply(&victim, &harm);
        let before: Vec<(std::path::PathBuf, u64)> = common::data_files(dir.path())
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).expect("stat").len();
                (p, len)
            })
            .collect();

        let report = bitcask::check(dir.path()).expect("check");
        let opened = Bitcask::open_with(dir.path(), options());
        if report.is_damaged() {
            let first = report
                .files
                .iter()
                .find(|f| !f.damage.is_empty())
                .expect("a damaged file");
            match opened {
                Err(Error::Corruption { path, .. }) => {
                    prop_assert_eq!(&path, &first.path, "{}", report);
                }
                other => prop_assert!(false, "check found damage, open gave {:?}: {}", other.map(|_| ()), report),
            }
            // A failed open cuts nothing.
            for (path, len) in &before {
                prop_assert_eq!(std::fs::metadata(path).expect("stat").len(), *len);
            }
        } else {
            let db = opened.map_err(|e| TestCaseError::fail(format!("check found no damage, open failed: {e}: {report}")))?;
            db.close().expect("close");
            for hint in common::hint_files(dir.path()) {
                std::fs::remove_file(hint).expect("remove hint");
            }
            let after = bitcask::check(dir.path()).expect("check after open");
            prop_assert!(!after.is_damaged(), "{}", after);
            prop_assert!(after.files.iter().all(|f| f.torn_tail.is_none()), "{}", after);
            prop_assert_eq!(after.records(), report.records(), "before: {}\nafter: {}", report, after);
        }
    }
}
