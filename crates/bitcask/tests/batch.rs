//! Atomic batches: all or nothing, also when the file is cut at any byte
//! inside a batch (a crash in the middle of writing it).

mod common;

use bitcask::{Batch, Bitcask, CorruptionKind, Error};

fn batch_of(n: usize, tag: &str) -> Batch {
    let mut batch = Batch::new();
    for i in 0..n {
        batch.put(format!("key-{i}"), format!("{tag}-{i}"));
    }
    batch.delete("doomed");
    batch
}

#[test]
fn a_batch_applies_every_operation_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    db.put(b"doomed", b"x").expect("put");
    let mut batch = Batch::new();
    batch
        .put("a", "1")
        .put("a", "2")
        .delete("doomed")
        .put("b", "3")
        .delete("never-there");
    let last = db.write_batch(&batch).expect("batch").expect("not empty");
    assert_eq!(
        db.get(b"a").expect("get").as_deref(),
        Some(&b"2"[..]),
        "later op wins"
    );
    assert_eq!(db.version(b"a"), Some(last - 3));
    assert_eq!(db.version(b"b"), Some(last - 1));
    assert_eq!(db.get(b"doomed").expect("get"), None);
    assert_eq!(db.write_batch(&Batch::new()).expect("empty batch"), None);
    drop(db);
    let db = common::open(dir.path());
    assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"2"[..]));
    assert_eq!(db.len(), 2);
}

#[test]
fn an_oversized_operation_refuses_the_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast().max_value_size(10)).expect("open");
    let mut batch = Batch::new();
    batch.put("ok", "small").put("big", vec![0u8; 11]);
    assert!(matches!(
        db.write_batch(&batch),
        Err(Error::ValueTooLarge { .. })
    ));
    assert_eq!(
        db.get(b"ok").expect("get"),
        None,
        "nothing of the batch was written"
    );
}

#[test]
fn a_cut_anywhere_inside_a_batch_recovers_all_of_it_or_none_of_it() {
    let src = tempfile::tempdir().expect("tempdir");
    let db = common::open(src.path());
    db.put(b"doomed", b"before").expect("put");
    db.put(b"key-0", b"before").expect("put");
    db.close().expect("close");
    let active = common::active_file(src.path());
    let batch_start = std::fs::metadata(&active).expect("meta").len();
    let db = common::open(src.path());
    db.write_batch(&batch_of(4, "batch")).expect("batch");
    db.close().expect("close");
    let batch_end = std::fs::metadata(&active).expect("meta").len();
    let name = active.file_name().expect("name").to_owned();

    for cut in batch_start..=batch_end {
        let dir = tempfile::tempdir().expect("tempdir");
        common::copy_dir(src.path(), dir.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(&name))
            .expect("open");
        file.set_len(cut).expect("cut");
        drop(file);

        let db = common::open(dir.path());
        let get = |k: &str| db.get(k.as_bytes()).expect("get");
        if cut == batch_end {
            for i in 0..4 {
                assert_eq!(
                    get(&format!("key-{i}")),
                    Some(format!("batch-{i}").into_bytes())
                );
            }
            assert_eq!(get("doomed"), None);
        } else {
            assert_eq!(
                get("key-0").as_deref(),
                Some(&b"before"[..]),
                "cut at {cut}"
            );
            assert_eq!(get("key-1"), None, "cut at {cut}: half a batch applied");
            assert_eq!(
                get("doomed").as_deref(),
                Some(&b"before"[..]),
                "cut at {cut}"
            );
            assert_eq!(db.len(), 2, "cut at {cut}");
            // The unfinished batch was cut off: the file ends where it began.
            let len = std::fs::metadata(dir.path().join(&name))
                .expect("meta")
                .len();
            assert_eq!(len, batch_start, "cut at {cut}");
        }
        // The store takes writes again after the cut.
        db.put(b"after", b"1").expect("put");
        drop(db);
        let db = common::open(dir.path());
        assert_eq!(db.get(b"after").expect("get").as_deref(), Some(&b"1"[..]));
    }
}

#[test]
fn an_unfinished_batch_at_the_end_of_a_sealed_file_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast().max_file_size(1)).expect("open");
    db.write_batch(&batch_of(3, "b")).expect("batch");
    let first = common::active_file(dir.path());
    // The same file without the batch's committing record (the delete).
    let mut unfinished = std::fs::read(&first).expect("read");
    unfinished.truncate(unfinished.len() - common::record_len(b"doomed", b"") as usize);
    // Seal the file: the next write rotates (max_file_size is 1 byte).
    db.put(b"x", b"rotates").expect("put");
    db.close().expect("close");
    assert_eq!(common::data_files(dir.path()).len(), 2);

    std::fs::write(&first, &unfinished).expect("damage the sealed file");
    match Bitcask::open_with(dir.path(), common::fast().use_hints(false)) {
        Err(Error::Corruption {
            kind: CorruptionKind::UnfinishedBatch,
            path,
            ..
        }) => assert_eq!(path, first),
        other => panic!("expected an unfinished-batch corruption, got {other:?}"),
    }
}

#[test]
fn a_batch_applies_only_if_every_condition_holds_and_otherwise_writes_nothing() {
    use bitcask::{Condition, Error};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    let a = db.put(b"a", b"1").expect("put");
    // Move a to b, only if a is still at the version read and b is absent.
    let mut rename = Batch::new();
    rename
        .require("a", Condition::Version(a))
        .require("b", Condition::Absent)
        .delete("a")
        .put("b", "1");
    db.write_batch(&rename).expect("conditions hold");
    assert_eq!(db.get(b"a").expect("get"), None);
    assert_eq!(db.get(b"b").expect("get"), Some(b"1".to_vec()));
    // The same batch again: a is gone, so nothing at all is written.
    let before = db.stats().total_bytes;
    let version_before = db.next_version();
    let refused = db.write_batch(&rename);
    assert!(
        matches!(
            refused,
            Err(Error::ConditionFailed {
                current: None,
                index: 0
            })
        ),
        "{refused:?}"
    );
    assert_eq!(db.get(b"b").expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.stats().total_bytes, before, "nothing written");
    assert_eq!(db.next_version(), version_before, "no version taken");
    // Any failing condition refuses the whole batch, whichever comes first.
    let b = db.version(b"b").expect("b");
    let mut mixed = Batch::new();
    mixed
        .require("b", Condition::Version(b))
        .require("b", Condition::Absent)
        .put("c", "x");
    assert!(
        matches!(
            db.write_batch(&mixed),
            Err(Error::ConditionFailed { current: Some(v), index: 1 }) if v == b
        ),
        "the second condition is the one that failed"
    );
    assert_eq!(db.get(b"c").expect("get"), None);
    // Conditions alone: checked together, nothing written either way.
    let mut check = Batch::new();
    check
        .require("b", Condition::Version(b))
        .require("a", Condition::Absent);
    assert_eq!(db.write_batch(&check).expect("both hold"), None);
    check.require("c", Condition::Present);
    assert!(matches!(
        db.write_batch(&check),
        Err(Error::ConditionFailed {
            current: None,
            index: 2
        })
    ));
    assert_eq!(db.next_version(), version_before, "no version taken");
    // Conditions survive a reopen's view: the store holds what was written.
    db.close().expect("close");
    let db = common::open(dir.path());
    assert_eq!(db.get(b"b").expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.get(b"a").expect("get"), None);
}
