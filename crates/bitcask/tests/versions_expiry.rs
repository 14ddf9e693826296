//! Versions, conditional writes and expiry, from the outside.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcask::clock::ManualClock;
use bitcask::{Bitcask, Condition, Error, KeyRange, Options, WriteOptions};

fn with_clock(clock: &Arc<ManualClock>) -> Options {
    common::fast().max_file_size(512).clock(clock.clone())
}

#[test]
fn versions_only_grow_and_conditions_decide_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    let v1 = db.put(b"k", b"1").expect("put");
    let v2 = db.put(b"other", b"x").expect("put");
    assert!(v2 > v1);
    let got = db.get_versioned(b"k").expect("get").expect("present");
    assert_eq!(
        (got.value.as_slice(), got.version, got.expires_at_ms),
        (&b"1"[..], v1, None)
    );

    let if_absent = WriteOptions::new().condition(Condition::Absent);
    assert!(matches!(
        db.put_with(b"k", b"2", if_absent),
        Err(Error::ConditionFailed { current: Some(v), .. }) if v == v1
    ));
    let stale = WriteOptions::new().condition(Condition::Version(v1 + 100));
    assert!(matches!(
        db.put_with(b"k", b"2", stale),
        Err(Error::ConditionFailed { .. })
    ));
    assert!(matches!(
        db.delete_with(b"k", stale),
        Err(Error::ConditionFailed { .. })
    ));
    assert_eq!(
        db.get(b"k").expect("get").as_deref(),
        Some(&b"1"[..]),
        "nothing written"
    );

    let v3 = db
        .put_with(
            b"k",
            b"2",
            WriteOptions::new().condition(Condition::Version(v1)),
        )
        .expect("matching version");
    assert!(v3 > v2);
    let deleted_at = db
        .delete_with(b"k", WriteOptions::new().condition(Condition::Present))
        .expect("delete if present")
        .expect("it was present");
    assert!(deleted_at > v3, "a delete takes the next version");
    assert!(matches!(
        db.delete_with(b"k", WriteOptions::new().condition(Condition::Present)),
        Err(Error::ConditionFailed { current: None, .. })
    ));
    db.put_with(b"k", b"3", if_absent).expect("absent now");
    let durable = WriteOptions::new().durable(true);
    let before = db.fsync_count();
    db.put_with(b"d", b"durable", durable).expect("durable put");
    assert!(
        db.fsync_count() > before,
        "a durable write fsyncs under SyncPolicy::Never"
    );
    drop(db);
    let db = common::open(dir.path());
    assert!(
        db.version(b"k").expect("present") > v3,
        "versions survive reopening"
    );
}

#[test]
fn concurrent_compare_and_set_loses_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(common::open(dir.path()));
    db.put(b"counter", b"0").expect("put");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let mut done = 0;
                while done < 200 {
                    let cur = db.get_versioned(b"counter").expect("get").expect("present");
                    let n: u64 = String::from_utf8(cur.value)
                        .expect("utf-8")
                        .parse()
                        .expect("number");
                    let next = (n + 1).to_string();
                    let cond = WriteOptions::new().condition(Condition::Version(cur.version));
                    match db.put_with(b"counter", next.as_bytes(), cond) {
                        Ok(_) => done += 1,
                        Err(Error::ConditionFailed { .. }) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(
        db.get(b"counter").expect("get").as_deref(),
        Some(&b"800"[..])
    );
}

#[test]
fn expired_keys_read_as_absent_everywhere_and_stay_expired_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let db = Bitcask::open_with(dir.path(), with_clock(&clock)).expect("open");
    let ttl = |ms| WriteOptions::new().ttl(Duration::from_millis(ms));
    db.put(b"a/old", b"forever").expect("put");
    db.put_with(b"a/old", b"short", ttl(100))
        .expect("put ttl hides the old value");
    db.put_with(b"a/long", b"long", ttl(10_000))
        .expect("put ttl");
    db.put_with(b"a/cleared", b"1", ttl(100)).expect("put ttl");
    db.put(b"a/cleared", b"2")
        .expect("a plain put clears the expiry");
    assert!(matches!(
        db.put_with(b"zero", b"x", ttl(0)),
        Err(Error::InvalidArgument { .. })
    ));
    let got = db.get_versioned(b"a/long").expect("get").expect("present");
    assert_eq!(got.expires_at_ms, Some(20_000));

    clock.advance(100);
    let check = |db: &Bitcask| {
        assert_eq!(
            db.get(b"a/old").expect("get"),
            None,
            "expired, and the old value stays hidden"
        );
        assert!(!db.contains(b"a/old"));
        assert_eq!(db.version(b"a/old"), None);
        assert_eq!(
            db.get(b"a/long").expect("get").as_deref(),
            Some(&b"long"[..])
        );
        assert_eq!(
            db.get(b"a/cleared").expect("get").as_deref(),
            Some(&b"2"[..])
        );
        let listed: Vec<Vec<u8>> = db.keys_in(KeyRange::prefix("a/")).collect();
        assert_eq!(listed, vec![b"a/cleared".to_vec(), b"a/long".to_vec()]);
    };
    check(&db);
    assert!(
        !db.delete(b"a/old").expect("delete"),
        "an expired key is absent"
    );
    db.put_with(
        b"a/old",
        b"new",
        WriteOptions::new().condition(Condition::Absent),
    )
    .expect("an expired key counts as absent for conditions");
    db.delete(b"a/old").expect("delete");
    drop(db);
    for hints in [true, false] {
        let db = Bitcask::open_with(dir.path(), with_clock(&clock).use_hints(hints)).expect("open");
        check(&db);
        assert_eq!(db.len(), 2, "expired keys are dropped at open");
    }
    clock.advance(10_000);
    let db = Bitcask::open_with(dir.path(), with_clock(&clock)).expect("open");
    assert_eq!(db.get(b"a/long").expect("get"), None);
}

#[test]
fn merge_reclaims_expired_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let db = Bitcask::open_with(dir.path(), with_clock(&clock)).expect("open");
    let ttl = WriteOptions::new().ttl(Duration::from_secs(1));
    for i in 0..40u32 {
        db.put_with(format!("session-{i}").as_bytes(), &[9; 64], ttl)
            .expect("put");
    }
    db.put(b"keep", b"me").expect("put");
    for i in 0..10u32 {
        db.put(format!("filler-{i}").as_bytes(), &[0; 64])
            .expect("seal the sessions");
    }
    let before = db.stats();
    assert_eq!((before.keys, before.keys_with_expiry), (51, 40));
    let merged = db.merge().expect("merge before expiry");
    assert_eq!(merged.records_dropped, 0, "nothing to drop yet: {merged:?}");
    clock.advance(1_000);
    let report = db.merge().expect("merge after expiry");
    assert!(report.records_dropped >= 40, "{report:?}");
    let after = db.stats();
    assert!(
        after.total_bytes + 40 * 64 < before.total_bytes,
        "{before:?} -> {after:?}"
    );
    assert_eq!(db.len(), 11, "expired keys left the key directory");
    assert_eq!(
        after.keys_with_expiry, 0,
        "and the count of keys with an expiry"
    );
    // An expiry taken off, and one deleted, leave the count too.
    db.put_with(b"a", b"1", ttl).expect("put");
    db.put_with(b"b", b"1", ttl).expect("put");
    assert_eq!(db.stats().keys_with_expiry, 2);
    db.put(b"a", b"2").expect("overwrite without a ttl");
    db.delete(b"b").expect("delete");
    assert_eq!(db.stats().keys_with_expiry, 0);
    assert_eq!(db.get(b"keep").expect("get").as_deref(), Some(&b"me"[..]));
}

#[test]
fn an_absolute_expiry_is_stored_as_given_and_judged_by_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let db = Bitcask::open_with(dir.path(), with_clock(&clock)).expect("open");
    db.put_with(b"k", b"v", WriteOptions::new().expires_at_ms(12_345))
        .expect("put");
    let got = db.get_versioned(b"k").expect("get").expect("present");
    assert_eq!(got.expires_at_ms, Some(12_345));
    // Whichever of ttl and expires_at_ms is set last wins.
    let opts = WriteOptions::new()
        .expires_at_ms(1)
        .ttl(Duration::from_millis(5));
    db.put_with(b"t", b"v", opts).expect("put");
    assert_eq!(
        db.get_versioned(b"t")
            .expect("get")
            .expect("present")
            .expires_at_ms,
        Some(10_005)
    );
    assert!(matches!(
        db.put_with(b"z", b"v", WriteOptions::new().expires_at_ms(0)),
        Err(Error::InvalidArgument { .. })
    ));
    db.put_with(b"past", b"v", WriteOptions::new().expires_at_ms(9_999))
        .expect("put");
    assert_eq!(db.get(b"past").expect("get"), None, "already expired");
    clock.advance(2_345);
    assert_eq!(db.get(b"k").expect("get"), None);
    db.close().expect("close");
}

#[test]
fn active_expiry_deletes_expired_keys_for_good_and_leaves_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let options = || common::fast().clock(clock.clone());
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let short = WriteOptions::new().ttl(Duration::from_secs(1));
    let long = WriteOptions::new().ttl(Duration::from_secs(10));
    for i in 0..300u32 {
        db.put_with(format!("short-{i}").as_bytes(), b"v", short)
            .expect("put");
    }
    for i in 0..50u32 {
        db.put_with(format!("long-{i}").as_bytes(), b"v", long)
            .expect("put");
        db.put(format!("plain-{i}").as_bytes(), b"v").expect("put");
    }
    // Nothing has expired yet: a pass over every shard deletes nothing.
    for _ in 0..16 {
        assert_eq!(db.purge_expired(1_000).expect("purge").deleted, 0);
    }
    clock.advance(1_000);
    assert_eq!(db.len(), 400, "expired keys still count before a purge");
    let mut deleted = 0;
    for _ in 0..16 {
        deleted += db.purge_expired(1_000).expect("purge").deleted;
    }
    assert_eq!(deleted, 300);
    assert_eq!(db.len(), 100);
    assert_eq!(db.stats().keys_with_expiry, 50);
    assert_eq!(db.get(b"long-7").expect("get").as_deref(), Some(&b"v"[..]));
    // The deletes are records: even with the clock put back before the
    // expiry, a reopened store does not bring the purged keys back.
    db.close().expect("close");
    clock.set(10_000);
    let db = Bitcask::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(db.len(), 100);
    assert_eq!(db.get(b"short-3").expect("get"), None);
    db.close().expect("close");
}

#[test]
fn the_active_expiry_thread_empties_the_store_of_expired_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = common::fast().expire_interval(Some(Duration::from_millis(10)));
    let db = Bitcask::open_with(dir.path(), options).expect("open");
    let ttl = WriteOptions::new().ttl(Duration::from_millis(50));
    for i in 0..2_000u32 {
        db.put_with(format!("k{i}").as_bytes(), b"v", ttl)
            .expect("put");
    }
    db.put(b"stays", b"v").expect("put");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} keys left",
            db.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(db.contains(b"stays"));
    assert!(matches!(
        Bitcask::open_with(
            tempfile::tempdir().expect("tempdir").path(),
            common::fast().expire_interval(Some(Duration::ZERO))
        ),
        Err(Error::InvalidOption { .. })
    ));
    db.close().expect("close");
}

#[test]
fn a_lent_value_comes_with_its_version_and_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let db = Bitcask::open_with(dir.path(), with_clock(&clock)).expect("open");
    let plain = db.put(b"plain", b"one").expect("put");
    let ttl = WriteOptions::new().ttl(Duration::from_millis(500));
    let expiring = db.put_with(b"expiring", b"two", ttl).expect("put");
    let lent = |key: &[u8]| {
        db.get_versioned_with(key, |v| (v.value.to_vec(), v.version, v.expires_at_ms))
            .expect("get")
    };
    assert_eq!(lent(b"plain"), Some((b"one".to_vec(), plain, None)));
    assert_eq!(
        lent(b"expiring"),
        Some((b"two".to_vec(), expiring, Some(10_500)))
    );
    assert_eq!(lent(b"absent"), None);
    // The same as the owned read, which goes through it.
    let owned = db
        .get_versioned(b"expiring")
        .expect("get")
        .expect("present");
    assert_eq!(
        (owned.version, owned.expires_at_ms),
        (expiring, Some(10_500))
    );
    clock.advance(500);
    assert_eq!(lent(b"expiring"), None, "expired");
}
