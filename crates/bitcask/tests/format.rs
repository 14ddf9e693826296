//! Pins the on-disk format. A checked-in data file written by format version
//! 1 must still open with exactly its known contents; so must one of version
//! 2, one of version 3 and one of the current version (4), and writing the
//! version-4 file's operations today must produce the same bytes. (Version
//! 4 added header flags, set only on merge and repair outputs: a writer's
//! file differs from version 3's in its version field and header checksum.)
//!
//! Regenerate the current fixture only for a deliberate format change (and
//! bump the version in docs/FORMAT.md):
//! `BITCASK_WRITE_FIXTURE=1 cargo test -p bitcask --test format`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcask::clock::ManualClock;
use bitcask::{Batch, Bitcask, WriteOptions};

const FIXTURE_NAME: &str = "0000000001.data";
/// The clock reading the version-2 fixture was written at.
const WRITTEN_AT_MS: u64 = 1_000_000;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1.data")
}

fn fixture_v2_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v2.data")
}

fn fixture_v3_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v3.data")
}

fn fixture_v4_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v4.data")
}

/// The operations the version-3 fixture holds after the version-2 ones: a
/// marked batch and a mark alone.
fn write_v3_ops(db: &Bitcask) {
    write_v2_ops(db);
    let mut batch = Batch::new();
    batch.put("m", "marked").mark("applied 1");
    db.write_batch(&batch).expect("marked batch");
    db.write_batch(Batch::new().mark("applied 2"))
        .expect("a mark alone");
}

/// The operations the version-2 fixture holds after the version-1 ones: a
/// batch and a put with a time-to-live.
fn write_v2_ops(db: &Bitcask) {
    write_fixture_ops(db);
    let mut batch = Batch::new();
    batch.put("b1", "one").delete("alpha").put("b2", "two");
    db.write_batch(&batch).expect("batch");
    db.put_with(
        b"ttl",
        b"short",
        WriteOptions::new().ttl(Duration::from_secs(5)),
    )
    .expect("put with ttl");
}

/// The operations the version-1 fixture holds, in order.
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
    let clock = Arc::new(ManualClock::new(WRITTEN_AT_MS));
    let db = Bitcask::open_with(dir.path(), common::fast().clock(clock)).expect("open");
    write_v3_ops(&db);
    db.close().expect("close");
    std::fs::read(dir.path().join(FIXTURE_NAME)).expect("read data file")
}

#[test]
fn the_encoder_still_writes_the_fixture_bytes() {
    let today = bytes_written_today();
    if std::env::var_os("BITCASK_WRITE_FIXTURE").is_some() {
        std::fs::write(fixture_v4_path(), &today).expect("write fixture");
    }
    let fixture = std::fs::read(fixture_v4_path()).expect("read fixture");
    assert_eq!(
        today, fixture,
        "the on-disk format changed; see docs/FORMAT.md"
    );
}

#[test]
fn the_version_3_and_4_fixtures_decode_to_their_known_contents() {
    for fixture in [fixture_v3_path(), fixture_v4_path()] {
        decodes_to_the_v3_contents(&fixture);
    }
    // Same records; only the header's version and checksum differ.
    let (v3, v4) = (
        std::fs::read(fixture_v3_path()).expect("v3"),
        std::fs::read(fixture_v4_path()).expect("v4"),
    );
    assert_eq!((v3[8], v4[8]), (3, 4), "format_version");
    assert_eq!(v3[32..], v4[32..], "the records");
}

fn decodes_to_the_v3_contents(fixture: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture, dir.path().join(FIXTURE_NAME)).expect("copy fixture");
    let clock = Arc::new(ManualClock::new(WRITTEN_AT_MS));
    let opts = common::fast().read_only(true).clock(clock);
    let db = Bitcask::open_with(dir.path(), opts).expect("open fixture");
    assert_eq!(db.mark().as_deref(), Some(&b"applied 2"[..]));
    let m = db.get_versioned(b"m").expect("get").expect("present");
    assert_eq!(m.value, b"marked");
    assert_eq!(
        m.version, 11,
        "ten v2 writes, then this; its mark is 12, the lone mark 13"
    );
    assert_eq!(db.len(), 6, "the v2 keys and m; marks are no keys");
}

#[test]
fn the_version_2_fixture_decodes_to_its_known_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture_v2_path(), dir.path().join(FIXTURE_NAME)).expect("copy fixture");
    let clock = Arc::new(ManualClock::new(WRITTEN_AT_MS + 4_999));
    let opts = common::fast().read_only(true).clock(clock.clone());
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open fixture");
    let get = |k: &str| db.get(k.as_bytes()).expect("get");
    assert_eq!(get("alpha"), None, "deleted by the batch");
    assert_eq!(get("b1").as_deref(), Some(&b"one"[..]));
    assert_eq!(get("b2").as_deref(), Some(&b"two"[..]));
    assert_eq!(get("ttl").as_deref(), Some(&b"short"[..]));
    let ttl = db.get_versioned(b"ttl").expect("get").expect("present");
    assert_eq!(ttl.expires_at_ms, Some(WRITTEN_AT_MS + 5_000));
    assert_eq!(
        ttl.version, 10,
        "six v1 writes, three in the batch, then this"
    );
    clock.set(WRITTEN_AT_MS + 5_000);
    assert_eq!(get("ttl"), None, "expired");
    drop(db);
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen after expiry");
    assert_eq!(db.get(b"ttl").expect("get"), None);
    assert_eq!(db.len(), 4, "b1, b2, empty, ключ/ü");
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
fn the_fixtures_layout_matches_the_spec_tables() {
    let v2 = std::fs::read(fixture_v2_path()).expect("read fixture");
    assert_eq!(u16::from_le_bytes([v2[8], v2[9]]), 2, "format version 2");
    // The batch: kinds 2 (put), 3 (delete), then 0 (put) commits it.
    let v1_len = std::fs::metadata(fixture_path()).expect("meta").len() as usize;
    let first = v1_len;
    let second = first + 29 + 2 + 3;
    let third = second + 29 + 5;
    assert_eq!((v2[first + 20], v2[second + 20], v2[third + 20]), (2, 3, 0));
    // The last record carries its expiry.
    let last = third + 29 + 2 + 3;
    assert_eq!(
        u64::from_le_bytes(v2[last + 12..last + 20].try_into().expect("8")),
        WRITTEN_AT_MS + 5_000
    );

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
