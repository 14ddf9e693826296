//! Readers on several threads while writers overwrite the same keys (and the
//! active file rotates): a reader only ever sees a whole value that some
//! writer wrote, and never an older value of a writer after a newer one.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcask::Bitcask;

const KEYS: u64 = 16;
const WRITES_PER_WRITER: u64 = 3_000;

/// A self-describing value: writer, counter, then a fill whose length and
/// byte both follow from the counter.
fn make_value(writer: u8, counter: u64) -> Vec<u8> {
    let mut v = vec![writer];
    v.extend_from_slice(&counter.to_le_bytes());
    v.extend(std::iter::repeat_n(
        (counter % 251) as u8,
        (counter % 300) as usize,
    ));
    v
}

/// Checks a value is whole; returns (writer, counter).
fn check_value(v: &[u8]) -> (u8, u64) {
    assert!(v.len() >= 9, "value too short: {} bytes", v.len());
    let writer = v[0];
    let counter = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
    assert_eq!(v, &make_value(writer, counter)[..], "torn or mixed value");
    (writer, counter)
}

#[test]
fn readers_see_only_whole_values_while_writers_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(
        Bitcask::open_with(dir.path(), common::fast().max_file_size(64 * 1024)).expect("open"),
    );
    let done = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (1..=2u8)
        .map(|w| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for c in 0..WRITES_PER_WRITER {
                    let key = format!("key-{}", c % KEYS);
                    db.put(key.as_bytes(), &make_value(w, c)).expect("put");
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..4)
        .map(|_| {
            let db = Arc::clone(&db);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last_seen: HashMap<(u64, u8), u64> = HashMap::new();
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads < 1_000 {
                    for k in 0..KEYS {
                        let key = format!("key-{k}");
                        if let Some(v) = db.get(key.as_bytes()).expect("get") {
                            let (w, c) = check_value(&v);
                            let last = last_seen.entry((k, w)).or_insert(c);
                            assert!(c >= *last, "went back in time: {c} after {last}");
                            *last = c;
                            reads += 1;
                        }
                    }
                }
                reads
            })
        })
        .collect();

    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().expect("reader") >= 1_000);
    }

    // Each key ends with the last value one of the writers wrote to it.
    for k in 0..KEYS {
        let v = db
            .get(format!("key-{k}").as_bytes())
            .expect("get")
            .expect("present");
        let (_, c) = check_value(&v);
        assert_eq!(c % KEYS, k);
        assert!(
            c >= WRITES_PER_WRITER - KEYS,
            "key-{k} ends with an old value {c}"
        );
    }
    assert_eq!(db.len(), KEYS as usize);
    assert!(
        common::data_files(dir.path()).len() > 2,
        "the test should rotate files"
    );
}

#[test]
fn concurrent_durable_writers_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Bitcask::open(dir.path()).expect("open with default (always) sync"));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    db.put(format!("t{t}-{i}").as_bytes(), &make_value(t, i))
                        .expect("put");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let fsyncs = db.fsync_count();
    assert!((1..=200).contains(&fsyncs), "fsyncs: {fsyncs}");
    drop(db);
    let db = Bitcask::open(dir.path()).expect("reopen");
    assert_eq!(db.len(), 200);
    for t in 0..8u8 {
        for i in 0..25u64 {
            let v = db
                .get(format!("t{t}-{i}").as_bytes())
                .expect("get")
                .expect("present");
            assert_eq!(check_value(&v), (t, i));
        }
    }
}

#[test]
fn get_with_lends_the_same_verified_values_as_get() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db =
        bitcask::Bitcask::open_with(dir.path(), common::fast().max_file_size(4096)).expect("open");
    for i in 0..500u32 {
        db.put(
            format!("k{i}").as_bytes(),
            &vec![i as u8; (i % 97) as usize],
        )
        .expect("put");
    }
    for i in 0..500u32 {
        let key = format!("k{i}");
        let lent = db
            .get_with(key.as_bytes(), <[u8]>::to_vec)
            .expect("get_with");
        assert_eq!(lent, db.get(key.as_bytes()).expect("get"), "{key}");
    }
    assert_eq!(db.get_with(b"absent", |v| v.len()).expect("get_with"), None);
    // The closure may read the store again (the buffer is not shared).
    let nested = db
        .get_with(b"k1", |outer| {
            let inner = db.get_with(b"k2", <[u8]>::to_vec).expect("inner");
            (outer.to_vec(), inner)
        })
        .expect("outer");
    assert_eq!(nested, Some((vec![1u8], Some(vec![2u8; 2]))));
    // Damage is an error, never a value.
    db.put(b"victim", &[7u8; 64]).expect("put");
    let file = common::active_file(dir.path());
    let mut bytes = std::fs::read(&file).expect("read");
    // Inside the last record (the file is preallocated past it).
    let at = db.stats().files.last().expect("a file").total_bytes as usize - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    assert!(matches!(
        db.get_with(b"victim", |v| v.len()),
        Err(bitcask::Error::Corruption { .. })
    ));
}

#[test]
fn a_lent_value_stays_whole_while_a_merge_deletes_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db =
        bitcask::Bitcask::open_with(dir.path(), common::fast().max_file_size(4096)).expect("open");
    db.put(b"lent", &[9u8; 200]).expect("put");
    // Overwrites leave the first files mostly dead, so a merge rewrites
    // them and deletes them.
    for round in 0..3u8 {
        for i in 0..100u32 {
            db.put(format!("k{i}").as_bytes(), &[round; 100])
                .expect("put");
        }
    }
    let first = common::data_files(dir.path()).remove(0);
    let seen = db
        .get_with(b"lent", |value| {
            let before = value.to_vec();
            let report = db.merge().expect("merge");
            assert!(report.files_merged > 0, "{report:?}");
            assert!(!first.exists(), "the merge deleted the lent value's file");
            // The file is gone from the directory; its map is still there.
            (before, value.to_vec())
        })
        .expect("get_with")
        .expect("present");
    assert_eq!(seen.0, vec![9u8; 200]);
    assert_eq!(seen.1, seen.0);
    assert_eq!(db.get(b"lent").expect("get"), Some(vec![9u8; 200]));
}
