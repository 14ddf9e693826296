//! Backup: a consistent copy of a live store that opens as a normal store.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bitcask::{Bitcask, Error};

#[test]
fn a_backup_opens_as_the_store_it_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast().max_file_size(1 << 10)).expect("open");
    for i in 0..200u32 {
        db.put(
            format!("k{}", i % 70).as_bytes(),
            format!("v{i}").as_bytes(),
        )
        .expect("put");
    }
    db.delete(b"k3").expect("delete");
    let expected = common::contents(&db);
    let dest = tempfile::tempdir().expect("tempdir");
    let target = dest.path().join("copy");
    let files_before = db.stats().data_files;
    let report = db.backup(&target).expect("backup");
    assert!(!dest.path().join("copy.partial").exists());
    assert_eq!(report.data_files, files_before);
    let copied: u64 = common::data_files(&target)
        .iter()
        .map(|p| std::fs::metadata(p).expect("metadata").len())
        .sum();
    assert_eq!(
        report.bytes, copied,
        "every data file byte copied is counted"
    );

    // The copy is independent: later writes to the store do not reach it.
    db.put(b"after", b"x").expect("put");
    let copy = Bitcask::open(&target).expect("open the backup");
    assert_eq!(common::contents(&copy), expected);
    copy.put(b"in-copy", b"y")
        .expect("the copy is a writable store");
    assert_eq!(db.get(b"in-copy").expect("get"), None);

    // An existing target is refused, not overwritten.
    assert!(matches!(db.backup(&target), Err(Error::Io { .. })));
}

#[test]
fn a_backup_under_writes_and_a_merge_is_a_consistent_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(
        Bitcask::open_with(dir.path(), common::fast().max_file_size(4 << 10)).expect("open"),
    );
    // One writer counts up a single sequence of keys; a backup must hold
    // exactly keys 0..n for some n (a prefix of the acknowledged writes).
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, acked) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.put(format!("seq-{n:08}").as_bytes(), &[1; 100])
                    .expect("put");
                // Old keys are overwritten now and then so merge has work.
                db.put(format!("seq-{:08}", n / 2).as_bytes(), &[1; 100])
                    .expect("put");
                n += 1;
                acked.store(n, Ordering::Relaxed);
            }
        })
    };
    let dest = tempfile::tempdir().expect("tempdir");
    for round in 0..5 {
        while acked.load(Ordering::Relaxed) < 200 * (round + 1) {
            std::thread::yield_now();
        }
        let before = acked.load(Ordering::Relaxed);
        let merger = {
            let db = Arc::clone(&db);
            std::thread::spawn(move || db.merge().expect("merge"))
        };
        let target = dest.path().join(format!("b{round}"));
        db.backup(&target).expect("backup");
        merger.join().expect("merge thread");
        let copy = Bitcask::open(&target).expect("open backup");
        let n = copy.len() as u64;
        assert!(
            n >= before,
            "backup lost acknowledged writes: {n} < {before}"
        );
        for i in 0..n {
            assert_eq!(
                copy.get(format!("seq-{i:08}").as_bytes()).expect("get"),
                Some(vec![1; 100]),
                "round {round}: key {i} of {n}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
}
