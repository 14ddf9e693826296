//! Merge from the outside: space comes back, data stays, deleted keys stay
//! deleted across repeated merges and reopens, versions keep growing, and
//! reads and writes go on during a merge. (Crash safety at every step of
//! the protocol is tested in `src/merge.rs`.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bitcask::{Bitcask, Error, MergeTrigger, Options};

fn small_files() -> Options {
    common::fast().max_file_size(4 << 10)
}

fn total_size(dir: &std::path::Path) -> u64 {
    common::data_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).expect("meta").len())
        .sum()
}

#[test]
fn merge_reclaims_space_and_keeps_every_live_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    for round in 0..10u32 {
        for i in 0..100u32 {
            db.put(
                format!("key-{i}").as_bytes(),
                format!("value-{i}-{round}").as_bytes(),
            )
            .expect("put");
        }
    }
    for i in (0..100u32).step_by(2) {
        db.delete(format!("key-{i}").as_bytes()).expect("delete");
    }
    let before = common::contents(&db);
    let stats = db.stats();
    assert!(stats.dead_bytes > stats.live_bytes, "{stats:?}");
    let size_before = total_size(dir.path());

    let wall_clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let report = db.merge().expect("merge");
    assert!(
        report.files_merged > 1 && report.records_dropped > 900,
        "{report:?}"
    );
    // When it started, by the wall clock (within a minute of now).
    assert!(
        report.started_at_ms.abs_diff(wall_clock_ms) < 60_000,
        "{report:?}"
    );
    assert_eq!(common::contents(&db), before);
    let size_after = total_size(dir.path());
    assert!(
        size_after * 3 < size_before,
        "{size_before} -> {size_after}"
    );

    let stats = db.stats();
    assert_eq!(stats.merges_completed, 1);
    assert_eq!(stats.last_merge, Some(report));
    assert!(!stats.merge_running);
    for file in stats.files.iter().filter(|f| !f.active) {
        assert_eq!(
            file.dead_bytes, 0,
            "sealed files are all live after a merge: {file:?}"
        );
    }
    assert_eq!(stats.keys, 50);
    assert_eq!(stats.files.iter().map(|f| f.live_keys).sum::<u64>(), 50);
    drop(db);
    let db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
    assert_eq!(common::contents(&db), before);
    assert_eq!(
        db.stats().live_bytes,
        stats.live_bytes,
        "accounts rebuilt at open agree"
    );
}

#[test]
fn deleted_keys_stay_deleted_across_repeated_merges_and_reopens() {
    // The sequence that resurrected keys in other Bitcask implementations:
    // put in an old file, delete in a newer one, merge, reopen, merge again.
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Bitcask::open_with(dir.path(), common::fast().max_file_size(200)).expect("open");
    let db = open();
    for i in 0..20u32 {
        db.put(format!("gone-{i}").as_bytes(), &[7; 60])
            .expect("put");
        db.put(format!("kept-{i}").as_bytes(), &[8; 60])
            .expect("put");
    }
    for i in 0..20u32 {
        db.delete(format!("gone-{i}").as_bytes()).expect("delete");
    }
    let check = |db: &Bitcask, when: &str| {
        for i in 0..20u32 {
            assert_eq!(
                db.get(format!("gone-{i}").as_bytes()).expect("get"),
                None,
                "{when}"
            );
            assert_eq!(
                db.get(format!("kept-{i}").as_bytes()).expect("get"),
                Some(vec![8; 60])
            );
        }
        assert_eq!(db.len(), 20, "{when}");
    };
    db.merge().expect("merge 1");
    check(&db, "after merge 1");
    db.merge().expect("merge 2");
    check(&db, "after merge twice");
    drop(db);
    for round in 0..3 {
        let db = open();
        check(&db, "after reopen");
        // New writes rotate files, so that old outputs and new files mix.
        for i in 0..5u32 {
            db.put(format!("kept-{i}").as_bytes(), &[8; 60])
                .expect("rewrite");
        }
        db.merge().expect("merge after reopen");
        check(&db, &format!("after reopen + merge, round {round}"));
        drop(db);
        let db = Bitcask::open_with(dir.path(), common::fast().use_hints(false)).expect("open");
        check(&db, "reopened without hints");
    }
}

#[test]
fn versions_keep_growing_after_a_merge_drops_the_newest_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Bitcask::open_with(dir.path(), common::fast().max_file_size(100)).expect("open");
    let db = open();
    db.put(b"k", b"v").expect("put");
    let kept = db.put(b"stays", b"v").expect("put");
    let mut newest = 0;
    for i in 0..10u32 {
        newest = db.put(format!("tmp-{i}").as_bytes(), b"x").expect("put");
    }
    for i in 0..10u32 {
        db.delete(format!("tmp-{i}").as_bytes()).expect("delete");
    }
    db.delete(b"k").expect("delete");
    db.put(b"filler", &[0; 80]).expect("seal the tombstones");
    db.merge().expect("merge drops the tombstones");
    assert_eq!(db.version(b"stays"), Some(kept), "merge keeps versions");
    drop(db);
    let db = open();
    assert_eq!(db.version(b"stays"), Some(kept), "and so does reopening");
    let next = db.put(b"k", b"again").expect("put");
    assert!(next > newest + 11, "version {next} reused an old number");
}

#[test]
fn reads_and_a_writer_go_on_during_merges_and_the_last_write_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Bitcask::open_with(dir.path(), small_files()).expect("open"));
    const KEYS: u32 = 200;
    for i in 0..KEYS {
        db.put(format!("k{i}").as_bytes(), b"0").expect("seed");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(4));
    let writer = {
        let (db, stop, start) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&start));
        std::thread::spawn(move || {
            start.wait();
            let mut last = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 20_000 {
                n += 1;
                let k = format!("k{}", n % u64::from(KEYS));
                if n.is_multiple_of(97) {
                    db.delete(k.as_bytes()).expect("delete during merge");
                    last.insert(k, None);
                } else {
                    db.put(k.as_bytes(), n.to_string().as_bytes())
                        .expect("put during merge");
                    last.insert(k, Some(n.to_string().into_bytes()));
                }
            }
            last
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop, start) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..KEYS {
                        // Every read succeeds (no missing file, no corruption)
                        // and returns a value the writer wrote.
                        if let Some(v) = db
                            .get(format!("k{i}").as_bytes())
                            .expect("get during merge")
                        {
                            let n: u64 = String::from_utf8(v)
                                .expect("utf-8")
                                .parse()
                                .expect("number");
                            assert!(n == 0 || n % u64::from(KEYS) == u64::from(i));
                        }
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    start.wait();
    let mut merges = 0;
    let began = Instant::now();
    while merges < 5 || began.elapsed() < Duration::from_millis(500) {
        db.merge().expect("merge under load");
        merges += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let last = writer.join().expect("writer");
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    let check = |db: &Bitcask| {
        for (k, v) in &last {
            assert_eq!(&db.get(k.as_bytes()).expect("get"), v, "key {k}");
        }
    };
    check(&db);
    db.merge().expect("final merge");
    check(&db);
    drop(db);
    let db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
    check(&db);
}

#[test]
fn the_background_thread_merges_when_a_threshold_is_crossed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trigger = MergeTrigger {
        dead_fraction: 0.5,
        dead_bytes: u64::MAX,
        check_every: Duration::from_millis(20),
    };
    let opts = small_files().merge_trigger(Some(trigger));
    let db = Bitcask::open_with(dir.path(), opts).expect("open");
    for round in 0..20u32 {
        for i in 0..50u32 {
            db.put(format!("k{i}").as_bytes(), format!("{round}").as_bytes())
                .expect("put");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().merges_completed == 0 {
        assert!(
            Instant::now() < deadline,
            "no background merge: {:?}",
            db.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..50u32 {
        assert_eq!(
            db.get(format!("k{i}").as_bytes()).expect("get"),
            Some(b"19".to_vec())
        );
    }
}

#[test]
fn a_read_only_handle_cannot_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::open(dir.path()).put(b"k", b"v").expect("put");
    let view = Bitcask::open_with(dir.path(), common::fast().read_only(true)).expect("open");
    assert!(matches!(view.merge(), Err(Error::ReadOnly)));
}

#[test]
fn read_only_opens_beside_merges_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Bitcask::open_with(dir.path(), small_files()).expect("open"));
    for i in 0..2_000u32 {
        db.put(format!("k{}", i % 300).as_bytes(), &[1; 40])
            .expect("put");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut merges = 0u32;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..200 {
                    n += 1;
                    db.put(format!("k{}", n % 300).as_bytes(), &[2; 40])
                        .expect("put");
                }
                db.merge().expect("merge");
                merges += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            merges
        })
    };
    for _ in 0..40 {
        let view = Bitcask::open_with(dir.path(), small_files().read_only(true))
            .expect("a read-only open beside merges");
        assert_eq!(view.len(), 300);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().expect("churn") > 0);
}

#[test]
fn a_running_merge_reports_its_progress_in_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 KB of dead records at 200 KB/s: the merge takes about half a second.
    let db = Arc::new(
        Bitcask::open_with(dir.path(), small_files().merge_bytes_per_sec(Some(200_000)))
            .expect("open"),
    );
    for round in 0..2u32 {
        for i in 0..500u32 {
            db.put(format!("key-{i}").as_bytes(), &[round as u8; 80])
                .expect("put");
        }
    }
    assert_eq!(db.stats().merge_progress, None);
    let merging = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || db.merge().expect("merge"))
    };
    let mut seen = Vec::new();
    while !merging.is_finished() {
        if let Some(progress) = db.stats().merge_progress {
            seen.push(progress);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = merging.join().expect("merge thread");
    assert_eq!(db.stats().merge_progress, None, "none after the merge");
    assert!(!seen.is_empty(), "progress was visible while the merge ran");
    let total = seen[0].bytes_total;
    assert_eq!(total, report.bytes_read, "{seen:?} {report:?}");
    assert!(
        seen.iter()
            .all(|p| p.bytes_total == total && p.bytes_read <= total)
    );
    assert!(seen.windows(2).all(|w| w[0].bytes_read <= w[1].bytes_read));
    assert!(
        seen.iter()
            .any(|p| p.bytes_read > 0 && p.bytes_read < total)
    );
}

#[test]
fn stats_keep_the_last_merges_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    let runs = bitcask::RECENT_MERGES + 3;
    let mut reports = Vec::new();
    for round in 0..runs {
        // Something to reclaim each time, so the reports differ.
        for i in 0..=round {
            db.put(format!("key-{i}").as_bytes(), &[round as u8; 300])
                .expect("put");
        }
        reports.push(db.merge().expect("merge"));
    }
    let stats = db.stats();
    assert_eq!(stats.merges_completed, runs as u64);
    reports.reverse();
    reports.truncate(bitcask::RECENT_MERGES);
    assert_eq!(stats.recent_merges, reports);
    assert_eq!(stats.last_merge, reports.first().copied());
}
