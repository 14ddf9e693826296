//! Pins the on-disk format: a checked-in data file (written by format
//! version 1) must open with exactly its known contents, and writing the same
//! operations today must produce the same bytes.
//!
//! Regenerate the fixture only for a deliberate format change (and bump the
//! version in docs/FORMAT.md): `BITCASK_WRITE_FIXTURE=1 cargo test --test format`.

mod common;

use std::path::{Path, PathBuf};

use bitcask::Bitcask;

const FIXTURE_NAME: &str = "0000000001.data";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1.data")
}

/// The operations the fixture holds, in order.
fn write_fixture_ops(db: &Bitcask) {
    db.put(b"alpha", b"first").expect("put");
    db.put("ключ/ü".as_bytes(), &[0x00, 0xFF, 0xC3, 0x28])
        .expect("put utf-8 key, binary value");
    db.put(b"alpha", b"second").expect("overwrite");
    db.put(b"gone", b"soon").expect("put");
    assert!(db.delete(b"gone").expect("delete"));
    db.put(b"empty", b"").expect("empty value");
}

fn bytes_written_today() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    write_fixture_ops(&db);
    db.close().expect("close");
    std::fs::read(dir.path().join(FIXTURE_NAME)).expect("read data file")
}

#[test]
fn the_encoder_still_writes_the_fixture_bytes() {
    let today = bytes_written_today();
    if std::env::var_os("BITCASK_WRITE_FIXTURE").is_some() {
        std::fs::write(fixture_path(), &today).expect("write fixture");
    }
    let fixture = std::fs::read(fixture_path()).expect("read fixture");
    assert_eq!(
        today, fixture,
        "the on-disk format changed; see docs/FORMAT.md"
    );
}

#[test]
fn the_fixture_decodes_to_its_known_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture_path(), dir.path().join(FIXTURE_NAME)).expect("copy fixture");
    let db = Bitcask::open_with(dir.path(), common::fast().read_only(true)).expect("open fixture");
    assert_eq!(db.len(), 3);
    assert_eq!(
        db.get(b"alpha").expect("get").as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        db.get("ключ/ü".as_bytes()).expect("get"),
        Some(vec![0x00, 0xFF, 0xC3, 0x28])
    );
    assert_eq!(db.get(b"empty").expect("get"), Some(vec![]));
    assert_eq!(db.get(b"gone").expect("get"), None);
    let keys: Vec<Vec<u8>> = db.keys().collect();
    assert_eq!(
        keys,
        vec![
            b"alpha".to_vec(),
            b"empty".to_vec(),
            "ключ/ü".as_bytes().to_vec()
        ]
    );
}

#[test]
fn the_fixture_layout_matches_the_spec_tables() {
    let bytes = std::fs::read(fixture_path()).expect("read fixture");
    // File header.
    assert_eq!(&bytes[0..8], b"BITCASK\0");
    assert_eq!(
        u16::from_le_bytes([bytes[8], bytes[9]]),
        1,
        "format version"
    );
    assert_eq!(
        u16::from_le_bytes([bytes[10], bytes[11]]),
        1,
        "file kind: data"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().expect("4")),
        1,
        "file id"
    );
    assert_eq!(
        u64::from_le_bytes(bytes[16..24].try_into().expect("8")),
        1,
        "seq floor"
    );
    assert_eq!(&bytes[24..28], &[0, 0, 0, 0], "reserved");
    assert_eq!(
        u32::from_le_bytes(bytes[28..32].try_into().expect("4")),
        crc32c::crc32c(&bytes[..28])
    );
    // First record: put "alpha" = "first", seq 1.
    let rec = &bytes[32..32 + 29 + 5 + 5];
    assert_eq!(
        u32::from_le_bytes(rec[0..4].try_into().expect("4")),
        crc32c::crc32c(&rec[4..])
    );
    assert_eq!(
        u64::from_le_bytes(rec[4..12].try_into().expect("8")),
        1,
        "seq"
    );
    assert_eq!(
        u64::from_le_bytes(rec[12..20].try_into().expect("8")),
        0,
        "no expiry"
    );
    assert_eq!(rec[20], 0, "kind: put");
    assert_eq!(
        u32::from_le_bytes(rec[21..25].try_into().expect("4")),
        5,
        "key_len"
    );
    assert_eq!(
        u32::from_le_bytes(rec[25..29].try_into().expect("4")),
        5,
        "value_len"
    );
    assert_eq!(&rec[29..], b"alphafirst");
    // The tombstone for "gone" is the fifth record: kind 1, empty value.
    let mut at = 32;
    for (k, v) in [(5, 5), ("ключ/ü".len(), 4), (5, 6), (4, 4)] {
        at += 29 + k + v;
    }
    assert_eq!(bytes[at + 20], 1, "kind: delete");
    assert_eq!(&bytes[at + 29..at + 29 + 4], b"gone");
    assert_eq!(
        u32::from_le_bytes(bytes[at + 25..at + 29].try_into().expect("4")),
        0
    );
}
