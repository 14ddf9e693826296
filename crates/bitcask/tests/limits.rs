//! Size limits: oversized keys and values are refused and nothing is written.

mod common;

use bitcask::{Bitcask, Error};

#[test]
fn oversized_key_and_value_are_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = common::fast().max_key_size(8).max_value_size(16);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    db.put(b"keep", b"original").expect("put");
    let file = common::active_file(dir.path());
    // Where the records end (the file itself is longer while preallocated).
    let len_before = db.stats().total_bytes;

    match db.put(b"123456789", b"v") {
        Err(Error::KeyTooLarge { len: 9, max: 8 }) => {}
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    match db.put(b"keep", &[0u8; 17]) {
        Err(Error::ValueTooLarge { len: 17, max: 16 }) => {}
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert!(matches!(
        db.delete(b"123456789"),
        Err(Error::KeyTooLarge { .. })
    ));

    // Exactly at the limit is fine.
    db.put(b"12345678", &[7u8; 16]).expect("at the limit");
    db.delete(b"12345678").expect("delete");

    assert_eq!(
        db.get(b"keep").expect("get").as_deref(),
        Some(&b"original"[..])
    );
    let written =
        common::record_len(b"12345678", &[7u8; 16]) + common::record_len(b"12345678", b"");
    assert_eq!(db.stats().total_bytes, len_before + written);
    db.close().expect("close");
    // Close cuts the preallocated space: the file ends at its last record.
    assert_eq!(
        std::fs::metadata(&file).expect("meta").len(),
        len_before + written
    );

    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(db.len(), 1);
    assert_eq!(
        db.get(b"keep").expect("get").as_deref(),
        Some(&b"original"[..])
    );
}

#[test]
fn default_limits_are_the_seeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    db.put(&[b'k'; 1024], b"v").expect("1 KiB key");
    assert!(matches!(
        db.put(&[b'k'; 1025], b"v"),
        Err(Error::KeyTooLarge { max: 1024, .. })
    ));
    db.put(b"big", &vec![1u8; 1 << 20]).expect("1 MiB value");
    assert!(matches!(
        db.put(b"big", &vec![1u8; (1 << 20) + 1]),
        Err(Error::ValueTooLarge { max: 1_048_576, .. })
    ));
    assert_eq!(db.get(b"big").expect("get").map(|v| v.len()), Some(1 << 20));
}

#[test]
fn a_value_larger_than_the_file_size_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = common::fast().max_file_size(100);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    db.put(b"a", b"small").expect("put");
    db.put(b"b", &[9u8; 500]).expect("big put");
    db.put(b"c", b"after").expect("put");
    assert_eq!(common::data_files(dir.path()).len(), 3);
    drop(db);
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(db.get(b"b").expect("get"), Some(vec![9u8; 500]));
    assert_eq!(db.get(b"c").expect("get").as_deref(), Some(&b"after"[..]));
}

#[test]
fn empty_keys_and_values_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    db.put(b"", b"").expect("put");
    assert_eq!(db.get(b"").expect("get"), Some(vec![]));
    assert!(db.delete(b"").expect("delete"));
    assert_eq!(db.get(b"").expect("get"), None);
}
