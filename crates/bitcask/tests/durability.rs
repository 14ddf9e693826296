//! Sync policies: what each one fsyncs, seen through the fsync counter.
//! (Power loss itself cannot be simulated here; the crash tests cover torn
//! writes and `docs/FORMAT.md` states the promise of each policy.)

mod common;

use std::time::{Duration, Instant};

use bitcask::{Bitcask, Options, SyncPolicy};

#[test]
fn always_fsyncs_before_a_write_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Always)).expect("open");
    assert_eq!(db.fsync_count(), 0);
    db.put(b"a", b"1").expect("put");
    assert_eq!(db.fsync_count(), 1);
    db.delete(b"a").expect("delete");
    assert_eq!(db.fsync_count(), 2);
    // Deleting an absent key writes nothing, so there is nothing to sync.
    assert!(!db.delete(b"a").expect("delete"));
    assert_eq!(db.fsync_count(), 2);
    // Nothing new written: an explicit sync has nothing to do.
    db.sync().expect("sync");
    assert_eq!(db.fsync_count(), 2);
}

#[test]
fn never_leaves_it_to_sync_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never)).expect("open");
    for i in 0..100u32 {
        db.put(&i.to_le_bytes(), b"v").expect("put");
    }
    assert_eq!(db.fsync_count(), 0);
    db.sync().expect("sync");
    assert_eq!(db.fsync_count(), 1);
    db.sync().expect("second sync has nothing to do");
    assert_eq!(db.fsync_count(), 1);
}

#[test]
fn interval_syncs_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Interval(Duration::from_millis(10)));
    let db = Bitcask::open_with(dir.path(), opts).expect("open");
    db.put(b"k", b"v").expect("put");
    // Wait (up to a generous deadline) for the background thread to fsync.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.fsync_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the interval thread never synced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // With nothing new written it does not keep syncing.
    let settled = db.fsync_count();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(db.fsync_count(), settled);
    db.close().expect("close stops the thread");
}

#[test]
fn dropping_a_handle_closes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Bitcask::open_with(
            dir.path(),
            Options::new().sync(SyncPolicy::Interval(Duration::from_secs(3600))),
        )
        .expect("open");
        db.put(b"k", b"v").expect("put");
    }
    let db = common::open(dir.path());
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
}
