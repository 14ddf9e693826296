//! The change feed's reader (`Bitcask::changes`, docs/WATCH.md): every
//! committed put and delete, in seq order, once, whole batches, from the
//! data files; across rotation and reopen; `Compacted` below the compacted
//! seq after a merge; replaying the changes rebuilds the store.

mod common;

use std::collections::BTreeMap;

use bitcask::{Batch, Bitcask, Change, ChangeOp, Error, Options, SyncPolicy};
use proptest::prelude::*;

fn small_files() -> Options {
    Options::new().sync(SyncPolicy::Never).max_file_size(512)
}

/// Every change from `from` on, as far as the writer has gone.
fn all_from(db: &Bitcask, from: u64) -> Vec<Change> {
    let mut reader = db.changes(from).expect("changes");
    let mut all = Vec::new();
    loop {
        let batch = reader.next_batch(7).expect("next batch");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn put(seq: u64, key: &str, value: &str) -> Change {
    Change {
        seq,
        key: key.as_bytes().to_vec(),
        op: ChangeOp::Put {
            value: value.as_bytes().to_vec(),
            expires_at_ms: None,
        },
    }
}

fn delete(seq: u64, key: &str) -> Change {
    Change {
        seq,
        key: key.as_bytes().to_vec(),
        op: ChangeOp::Delete,
    }
}

#[test]
fn every_committed_write_in_order_marks_left_out_batches_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    assert!(all_from(&db, 0).is_empty(), "a new store has no changes");
    let v1 = db.put(b"a", b"1").expect("put");
    let v2 = db.put(b"b", b"2").expect("put");
    db.delete(b"a").expect("delete");
    let mut batch = Batch::new();
    batch
        .put("c", "3")
        .delete("b")
        .put("d", "4")
        .mark("applied");
    db.write_batch(&batch).expect("batch");
    assert!(
        !db.delete(b"absent").expect("delete of nothing"),
        "writes nothing"
    );
    let changes = all_from(&db, 0);
    assert_eq!(
        changes,
        vec![
            put(v1, "a", "1"),
            put(v2, "b", "2"),
            delete(v2 + 1, "a"),
            put(v2 + 2, "c", "3"),
            delete(v2 + 3, "b"),
            put(v2 + 4, "d", "4"),
        ],
        "the mark (seq {}) is no change",
        v2 + 5
    );
    // From the middle, and a batch is never split even by max = 1.
    let mut reader = db.changes(v2 + 2).expect("changes");
    let first = reader.next_batch(1).expect("next");
    assert_eq!(first.len(), 3, "the batch's three changes at once");
    assert_eq!(reader.next_seq(), v2 + 6, "past the batch and its mark");
    assert!(reader.next_batch(1).expect("caught up").is_empty());
    // A TTL is part of the put.
    let ttl = bitcask::WriteOptions::new().ttl(std::time::Duration::from_secs(60));
    let v = db.put_with(b"t", b"x", ttl).expect("put ttl");
    let tail = reader.next_batch(10).expect("the new write");
    assert!(
        matches!(&tail[..], [Change { seq, op: ChangeOp::Put { expires_at_ms: Some(_), .. }, .. }] if *seq == v),
        "{tail:?}"
    );
}

#[test]
fn a_reader_follows_the_writer_across_rotations_and_reads_history_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    let mut reader = db.changes(0).expect("changes");
    let mut seen = Vec::new();
    let mut written = Vec::new();
    for i in 0..300u32 {
        let key = format!("k{}", i % 40);
        let v = db.put(key.as_bytes(), &i.to_le_bytes()).expect("put");
        written.push(v);
        if i % 17 == 0 {
            seen.extend(
                reader
                    .next_batch(1000)
                    .expect("next")
                    .into_iter()
                    .map(|c| c.seq),
            );
        }
    }
    seen.extend(
        reader
            .next_batch(usize::MAX)
            .expect("rest")
            .into_iter()
            .map(|c| c.seq),
    );
    loop {
        let more = reader.next_batch(usize::MAX).expect("rest");
        if more.is_empty() {
            break;
        }
        seen.extend(more.into_iter().map(|c| c.seq));
    }
    assert!(db.stats().files.len() > 5, "rotated many times");
    assert_eq!(seen, written, "each write once, in order, across files");
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
    let replayed: Vec<u64> = all_from(&db, written[100])
        .into_iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(
        replayed,
        written[100..],
        "history from the files after a restart"
    );
    let ro = Bitcask::open_with(dir.path(), small_files().read_only(true));
    // (A read-only open beside the writer sees the files as of its open.)
    let ro = ro.expect("read-only open");
    assert_eq!(all_from(&ro, 0).len(), written.len());
}

#[test]
fn after_a_merge_older_history_is_compacted_and_the_rest_is_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    let mut written = Vec::new();
    for i in 0..200u32 {
        let key = format!("k{}", i % 10);
        written.push(db.put(key.as_bytes(), &i.to_le_bytes()).expect("put"));
    }
    let mut early = db.changes(0).expect("from the start");
    assert_eq!(early.next_batch(5).expect("first").len(), 5);
    db.merge().expect("merge");
    let compacted = db.compacted_seq();
    assert!(compacted > written[0], "the merge compacted history");
    match db.changes(0) {
        Err(Error::Compacted { compacted_seq }) => assert_eq!(compacted_seq, compacted),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // A reader in a deleted file: its history is gone, and it says so.
    assert!(matches!(
        early.next_batch(usize::MAX),
        Err(Error::Compacted { .. })
    ));
    let kept: Vec<u64> = all_from(&db, compacted)
        .into_iter()
        .map(|c| c.seq)
        .collect();
    let want: Vec<u64> = written
        .iter()
        .copied()
        .filter(|&v| v >= compacted)
        .collect();
    assert_eq!(
        kept, want,
        "every write from the compacted seq on, none of the copies"
    );
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
    assert_eq!(db.compacted_seq(), compacted);
    assert!(matches!(
        db.changes(compacted - 1),
        Err(Error::Compacted { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Batch(Vec<(u8, Option<u8>)>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..12).prop_map(Op::Delete),
        2 => proptest::collection::vec((0u8..12, proptest::option::of(any::<u8>())), 1..5)
            .prop_map(Op::Batch),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Replaying every change from the start onto an empty map gives the
    /// store's contents, whatever the writes, rotations and reopens.
    #[test]
    fn replaying_the_changes_rebuilds_the_store(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Bitcask::open_with(dir.path(), small_files()).expect("open");
        for op in ops {
            match op {
                Op::Put(k, v) => { db.put(&[k], &[v; 30]).expect("put"); }
                Op::Delete(k) => { db.delete(&[k]).expect("delete"); }
                Op::Batch(items) => {
                    let mut batch = Batch::new();
                    for (k, v) in items {
                        match v {
                            Some(v) => { batch.put(vec![k], vec![v; 30]); }
                            None => { batch.delete(vec![k]); }
                        }
                    }
                    db.write_batch(&batch).expect("batch");
                }
                Op::Reopen => {
                    db.close().expect("close");
                    db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
                }
            }
        }
        let mut replayed = BTreeMap::new();
        let mut last = 0;
        for change in all_from(&db, 0) {
            prop_assert!(change.seq > last, "in order, once");
            last = change.seq;
            match change.op {
                ChangeOp::Put { value, .. } => { replayed.insert(change.key, value); }
                ChangeOp::Delete | ChangeOp::Expire => { replayed.remove(&change.key); }
            }
        }
        let mut store = BTreeMap::new();
        for key in db.keys() {
            let value = db.get(&key).expect("get").expect("present");
            store.insert(key, value);
        }
        prop_assert_eq!(replayed, store);
    }
}

#[test]
fn a_reader_does_not_keep_a_closed_store_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    db.put(b"k", b"v").expect("put");
    let mut reader = db.changes(0).expect("changes");
    db.close().expect("close");
    // The directory's lock went with the store, not with the reader.
    let again = Bitcask::open_with(dir.path(), common::fast()).expect("reopen beside the reader");
    assert!(matches!(reader.next_batch(10), Err(Error::Closed)));
    assert_eq!(all_from(&again, 0).len(), 1);
}

#[test]
fn the_commit_listener_is_told_each_write_once_the_feed_can_read_it() {
    use std::sync::{Arc, Mutex};
    for policy in [SyncPolicy::Never, SyncPolicy::Always] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Arc::new(Bitcask::open_with(dir.path(), Options::new().sync(policy)).expect("open"));
        let told: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
        let (sink, feed) = (
            Arc::clone(&told),
            Arc::new(Mutex::new(db.changes(0).expect("changes"))),
        );
        let reader = Arc::clone(&feed);
        db.on_commit(move |seq| {
            // The write is readable by the time the listener hears of it.
            let visible = reader
                .lock()
                .expect("reader")
                .next_batch(usize::MAX)
                .expect("changes")
                .len();
            sink.lock().expect("told").push((seq, visible));
        })
        .expect("listener");
        assert!(matches!(
            db.on_commit(|_| {}),
            Err(Error::InvalidArgument { .. })
        ));
        let v1 = db.put(b"a", b"1").expect("put");
        let mut batch = Batch::new();
        batch.put("b", "2").put("c", "3");
        let v3 = db.write_batch(&batch).expect("batch").expect("version");
        assert!(
            !db.delete(b"absent").expect("delete"),
            "writes nothing, tells nothing"
        );
        assert_eq!(
            *told.lock().expect("told"),
            vec![(v1, 1), (v3, 2)],
            "{policy:?}: the last version of each write, after it became readable"
        );
    }
}

#[test]
fn an_expiry_the_store_enforces_is_an_expire_change_a_delete_is_a_delete() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(bitcask::clock::ManualClock::new(1_000_000));
    let opts = common::fast().clock(Arc::clone(&clock) as Arc<dyn bitcask::clock::Clock>);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    let ttl = bitcask::WriteOptions::new().ttl(std::time::Duration::from_secs(1));
    db.put_with(b"session", b"s", ttl).expect("put ttl");
    db.put(b"user", b"u").expect("put");
    db.delete(b"user").expect("delete");
    clock.advance(2_000);
    for _ in 0..64 {
        db.purge_expired(1_000).expect("purge");
    }
    assert!(!db.contains(b"session"));
    let ops: Vec<(Vec<u8>, ChangeOp)> = all_from(&db, 0)
        .into_iter()
        .filter(|c| !matches!(c.op, ChangeOp::Put { .. }))
        .map(|c| (c.key, c.op))
        .collect();
    assert_eq!(
        ops,
        vec![
            (b"user".to_vec(), ChangeOp::Delete),
            (b"session".to_vec(), ChangeOp::Expire),
        ]
    );
    // The expiry tombstone reads back the same after a reopen.
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert!(!db.contains(b"session") && !db.contains(b"user"));
    assert!(all_from(&db, 0).iter().any(|c| c.op == ChangeOp::Expire));
}

#[test]
fn a_backup_keeps_the_compacted_seq_and_the_history_above_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    for i in 0..100u32 {
        db.put(format!("k{}", i % 5).as_bytes(), &i.to_le_bytes())
            .expect("put");
    }
    db.merge().expect("merge");
    let compacted = db.compacted_seq();
    // Rotate past it, so that a restored store could not guess it from its
    // active file.
    for i in 0..50u32 {
        db.put(format!("n{i}").as_bytes(), &[1u8; 40]).expect("put");
    }
    let want: Vec<u64> = all_from(&db, compacted)
        .into_iter()
        .map(|c| c.seq)
        .collect();
    let copy = tempfile::tempdir().expect("tempdir");
    let dest = copy.path().join("backup");
    db.backup(&dest).expect("backup");
    let restored = Bitcask::open_with(&dest, small_files()).expect("open the backup");
    assert_eq!(restored.compacted_seq(), compacted);
    let got: Vec<u64> = all_from(&restored, compacted)
        .into_iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_position_is_the_seq_after_the_last_readable_write_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    let start = db.position();
    assert_eq!(start.compacted_seq, 0);
    let v = db.put(b"a", b"1").expect("put");
    assert_eq!(db.position().next_seq, v + 1);
    // A watch "from now" sees the next write and nothing before it.
    let mut from_now = db.changes(db.position().next_seq).expect("changes");
    let mut batch = Batch::new();
    batch.put("b", "2").put("c", "3");
    let last = db.write_batch(&batch).expect("batch").expect("written");
    assert_eq!(db.position().next_seq, last + 1);
    let seen: Vec<u64> = from_now
        .next_batch(100)
        .expect("next")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seen, vec![last - 1, last]);
    // A delete of nothing writes nothing and moves nothing.
    db.delete(b"absent").expect("delete");
    assert_eq!(db.position().next_seq, last + 1);
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), small_files()).expect("reopen");
    assert_eq!(db.position().next_seq, last + 1);
    db.close().expect("close");
    let read_only =
        Bitcask::open_with(dir.path(), small_files().read_only(true)).expect("read-only open");
    assert_eq!(read_only.position().next_seq, last + 1);
}

#[test]
fn a_read_within_a_byte_budget_stops_at_a_batch_boundary_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    let big = vec![b'x'; 1000];
    for i in 0..10u8 {
        db.put(&[b'k', i], &big).expect("put");
    }
    let mut batch = Batch::new();
    for i in 0..5u8 {
        batch.put(vec![b'b', i], big.clone());
    }
    db.write_batch(&batch).expect("batch");
    let mut reader = db.changes(0).expect("changes");
    // Each change is 1,002 bytes: a budget of 2,500 stops after the third.
    let first = reader.next_batch_within(100, 2_500).expect("read");
    assert_eq!(first.len(), 3);
    let rest = reader.next_batch_within(100, 7 * 1_002).expect("read");
    assert_eq!(rest.len(), 7, "stops at the budget, before the batch");
    // The batch of five comes whole though it is over a budget of one byte.
    let batch_read = reader.next_batch_within(100, 1).expect("read");
    assert_eq!(batch_read.len(), 5);
    assert!(reader.next_batch_within(100, 1).expect("read").is_empty());
}

#[test]
fn ten_thousand_expired_keys_become_expire_changes_within_one_tick_of_passes() {
    // The active expiry runs up to 64 passes of 1,000 keys per tick while
    // samples are a quarter expired or more: 10,000 keys that expired
    // together are all deleted (and become `Expire` changes) within one
    // tick, so within about one `--expire-interval` of their expiry.
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(bitcask::clock::ManualClock::new(1_000_000));
    let opts = common::fast().clock(Arc::clone(&clock) as Arc<dyn bitcask::clock::Clock>);
    let db = Bitcask::open_with(dir.path(), opts).expect("open");
    let ttl = bitcask::WriteOptions::new().ttl(std::time::Duration::from_secs(1));
    for i in 0..10_000u32 {
        db.put_with(&i.to_be_bytes(), b"v", ttl).expect("put");
    }
    let from = db.position().next_seq;
    clock.advance(2_000);
    let mut passes = 0;
    while !db.is_empty() {
        db.purge_expired(1_000).expect("purge");
        passes += 1;
        assert!(
            passes <= 64,
            "more than one tick's passes: {} keys left",
            db.len()
        );
    }
    let expired = all_from(&db, from);
    assert_eq!(expired.len(), 10_000);
    assert!(expired.iter().all(|c| c.op == ChangeOp::Expire));
}
