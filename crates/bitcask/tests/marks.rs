//! Marks: an application's value written atomically with a batch (the
//! cluster's applied raft position), recovered after a reopen, through
//! hint files, merges and a torn tail (docs/FORMAT.md, "Marks").

mod common;

use bitcask::{Batch, Bitcask, Error};

fn marked(ops: &[(&str, Option<&str>)], mark: &str) -> Batch {
    let mut batch = Batch::new();
    for (key, value) in ops {
        match value {
            Some(v) => batch.put(*key, *v),
            None => batch.delete(*key),
        };
    }
    batch.mark(mark);
    batch
}

#[test]
fn a_mark_is_written_with_its_batch_and_is_no_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    assert_eq!(db.mark(), None);
    let last = db
        .write_batch(&marked(&[("a", Some("1")), ("b", Some("2"))], "m1"))
        .expect("batch")
        .expect("written");
    assert_eq!(db.mark().as_deref(), Some(&b"m1"[..]));
    // Two operations and the mark: consecutive numbers, the mark's last.
    let a = db.get_versioned(b"a").expect("get").expect("a");
    let b = db.get_versioned(b"b").expect("get").expect("b");
    assert_eq!((a.version, b.version), (last - 2, last - 1));
    // A mark alone.
    let alone = db
        .write_batch(&marked(&[], "m2"))
        .expect("mark")
        .expect("written");
    assert_eq!(alone, last + 1);
    assert_eq!(db.mark().as_deref(), Some(&b"m2"[..]));
    assert_eq!(db.len(), 2, "a mark is not a key");
    assert_eq!(db.keys().count(), 2);
    assert_eq!(db.get(b"").expect("get"), None);
    // A batch without a mark keeps the current one.
    let mut plain = Batch::new();
    plain.put("c", "3");
    db.write_batch(&plain).expect("batch");
    db.put(b"d", b"4").expect("put");
    assert_eq!(db.mark().as_deref(), Some(&b"m2"[..]));
    let too_big = marked(&[("e", Some("5"))], &"x".repeat(64 * 1024 + 1));
    assert!(matches!(
        db.write_batch(&too_big),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(db.get(b"e").expect("get"), None, "nothing written");
    db.close().expect("close");

    let db = common::open(dir.path());
    assert_eq!(db.mark().as_deref(), Some(&b"m2"[..]), "after a reopen");
    assert_eq!(db.len(), 4);
    db.close().expect("close");
    let report = bitcask::check(dir.path()).expect("check");
    assert!(
        !report.is_damaged() && report.bad_hints.is_empty(),
        "{report:?}"
    );
}

#[test]
fn the_current_mark_survives_rotation_hints_merges_and_read_only_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || common::fast().max_file_size(4096);
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    for n in 0..300 {
        let key = format!("k{}", n % 7);
        let value = format!("{n}").repeat(20);
        db.write_batch(&marked(&[(&key, Some(&value))], &format!("mark-{n}")))
            .expect("batch");
        if n % 100 == 99 {
            db.merge().expect("merge");
        }
    }
    assert!(common::data_files(dir.path()).len() > 1, "rotated");
    db.close().expect("close");
    for (name, options) in [
        ("hints", options()),
        ("scan", options().use_hints(false)),
        ("read-only", options().read_only(true)),
    ] {
        let db = Bitcask::open_with(dir.path(), options).expect(name);
        assert_eq!(db.mark().as_deref(), Some(&b"mark-299"[..]), "{name}");
        db.close().expect("close");
    }
}

#[test]
fn a_merge_copies_the_current_mark_out_of_a_sealed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || common::fast().max_file_size(1024);
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    db.write_batch(&marked(&[("old", Some("x"))], "the-mark"))
        .expect("batch");
    // Unmarked writes fill files past the one holding the mark, and
    // overwrite its key: the file is all dead but for the mark.
    for n in 0..60 {
        db.put(b"old", format!("{n:>64}").as_bytes()).expect("put");
    }
    let first = common::data_files(dir.path())[0].clone();
    let report = db.merge().expect("merge");
    assert!(report.files_merged > 0, "{report:?}");
    assert!(!first.exists(), "the mark's file was merged away");
    assert_eq!(db.mark().as_deref(), Some(&b"the-mark"[..]));
    db.close().expect("close");
    for use_hints in [true, false] {
        let db = Bitcask::open_with(dir.path(), options().use_hints(use_hints)).expect("reopen");
        assert_eq!(
            db.mark().as_deref(),
            Some(&b"the-mark"[..]),
            "hints {use_hints}"
        );
        db.close().expect("close");
    }
}

#[test]
fn a_torn_batch_takes_its_mark_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    db.write_batch(&marked(&[("a", Some("1"))], "first"))
        .expect("batch");
    db.write_batch(&marked(&[("a", Some("2")), ("b", Some("2"))], "second"))
        .expect("batch");
    db.close().expect("close");
    // Cut the last batch short: its mark is its last record, so cutting
    // its last byte tears the mark and, with it, the batch.
    let data = common::data_files(dir.path())[0].clone();
    for hint in common::hint_files(dir.path()) {
        std::fs::remove_file(hint).expect("remove hint");
    }
    let len = std::fs::metadata(&data).expect("metadata").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .expect("open data file");
    file.set_len(len - 1).expect("cut");
    drop(file);
    let db = common::open(dir.path());
    assert_eq!(db.mark().as_deref(), Some(&b"first"[..]));
    assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").expect("get"), None);
    db.close().expect("close");
}

#[test]
fn a_backup_holds_and_reports_the_mark_of_its_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    db.write_batch(&marked(&[("a", Some("1"))], "one"))
        .expect("batch");
    let dest = tempfile::tempdir().expect("tempdir");
    let copy = dest.path().join("copy");
    let mark = db.backup_with_mark(&copy).expect("backup");
    assert_eq!(mark.as_deref(), Some(&b"one"[..]));
    db.write_batch(&marked(&[("a", Some("2"))], "two"))
        .expect("batch");
    let restored = common::open(&copy);
    assert_eq!(restored.mark().as_deref(), Some(&b"one"[..]));
    assert_eq!(restored.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
}
