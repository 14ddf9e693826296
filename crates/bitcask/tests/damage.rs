//! Damage met while the store runs: a read of a damaged record fails with
//! `Corruption` and is counted (each record once, each read every time),
//! a scrub finds damage no read has met, and the background scrub finds it
//! by itself.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bitcask::{Bitcask, Error, Options, Scrub};

fn options() -> Options {
    common::fast().max_file_size(4 << 10)
}

fn value(i: u32) -> Vec<u8> {
    format!("value-of-key-{i:04}-").repeat(4).into_bytes()
}

/// A store of 200 keys over several sealed files, closed (hints written).
fn store(dir: &Path) {
    let db = Bitcask::open_with(dir, options()).expect("open");
    for i in 0..200u32 {
        db.put(format!("key-{i:04}").as_bytes(), &value(i))
            .expect("put");
    }
    db.close().expect("close");
}

/// Flips a byte in the middle of key `i`'s value, wherever it is.
fn damage(dir: &Path, i: u32) {
    let needle = value(i);
    for path in common::data_files(dir) {
        let mut bytes = std::fs::read(&path).expect("read");
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + needle.len() / 2] ^= 0x40;
            std::fs::write(&path, bytes).expect("write");
            return;
        }
    }
    panic!("key {i}'s value is in no data file");
}

#[test]
fn reads_count_damage_once_per_record_and_a_scrub_finds_what_no_read_met() {
    let dir = tempfile::tempdir().expect("tempdir");
    store(dir.path());
    let sealed = common::data_files(dir.path()).len() as u64 - 1;
    assert!(sealed >= 3, "{sealed} sealed files");
    damage(dir.path(), 3);
    damage(dir.path(), 150);
    // The hints are valid: the open does not read the data files.
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let stats = db.stats();
    assert_eq!((stats.damaged_records, stats.damaged_reads), (0, 0));
    for _ in 0..3 {
        assert!(matches!(db.get(b"key-0003"), Err(Error::Corruption { .. })));
    }
    let stats = db.stats();
    assert_eq!((stats.damaged_records, stats.damaged_reads), (1, 3));
    // Other keys read as before.
    assert_eq!(db.get(b"key-0004").expect("get"), Some(value(4)));

    let report = db.scrub().expect("scrub");
    assert_eq!(report.files_verified, sealed);
    assert_eq!(report.damaged_records, 2, "{report:?}");
    assert!(report.bytes_verified > 0);
    let stats = db.stats();
    // key-0003's record was met already; key-0150's is new.
    assert_eq!(stats.damaged_records, 2);
    assert_eq!(stats.damaged_reads, 3);
    assert_eq!(stats.scrubs_completed, 1);
    assert_eq!(stats.last_scrub, Some(report));
    db.close().expect("close");
}

#[test]
fn a_read_that_skips_the_checksum_hands_out_damaged_bytes_only_when_asked() {
    use bitcask::ReadOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    store(dir.path());
    damage(dir.path(), 7);
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let unverified = ReadOptions::new().verify_checksum(false);
    // By default, and with the default options, the damage is refused.
    assert!(matches!(db.get(b"key-0007"), Err(Error::Corruption { .. })));
    let verified = db.get_with_options(b"key-0007", ReadOptions::new(), <[u8]>::to_vec);
    assert!(matches!(verified, Err(Error::Corruption { .. })));
    // Asked not to sum, the read hands out the bytes as they are on disk.
    let got = db
        .get_with_options(b"key-0007", unverified, <[u8]>::to_vec)
        .expect("read")
        .expect("present");
    assert_ne!(got, value(7));
    assert_eq!(got.len(), value(7).len());
    // Undamaged and absent keys read the same either way.
    let plain = db.get_with_options(b"key-0008", unverified, <[u8]>::to_vec);
    assert_eq!(plain.expect("read"), Some(value(8)));
    let absent = db.get_with_options(b"nope", unverified, <[u8]>::to_vec);
    assert_eq!(absent.expect("read"), None);
    // The refused reads were counted; the unverified one met nothing.
    assert_eq!(db.stats().damaged_reads, 2);
    db.close().expect("close");
}

#[test]
fn a_clean_store_scrubs_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    store(dir.path());
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let report = db.scrub().expect("scrub");
    assert_eq!(report.damaged_records, 0);
    let sealed: u64 = db
        .stats()
        .files
        .iter()
        .filter(|f| !f.active)
        .map(|f| f.total_bytes)
        .sum();
    // Every record byte of the sealed files, not their headers.
    assert!(report.bytes_verified > sealed * 9 / 10 && report.bytes_verified < sealed);
    assert_eq!(db.stats().damaged_records, 0);
}

#[test]
fn the_background_scrub_finds_damage_by_itself_and_stops_with_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    store(dir.path());
    damage(dir.path(), 40);
    let scrub = Scrub {
        every: Duration::from_millis(20),
        bytes_per_sec: 1 << 30,
    };
    let db = Bitcask::open_with(dir.path(), options().scrub(Some(scrub))).expect("open");
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.stats().scrubs_completed < 2 {
        assert!(Instant::now() < deadline, "no scrub pass completed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = db.stats();
    assert_eq!(stats.damaged_records, 1, "one record, however many passes");
    assert_eq!(stats.damaged_reads, 0);
    db.close().expect("close stops the scrub thread");
}

#[test]
fn a_scrub_with_no_budget_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scrub = Scrub {
        every: Duration::from_secs(1),
        bytes_per_sec: 0,
    };
    let err = Bitcask::open_with(dir.path(), options().scrub(Some(scrub))).expect_err("refused");
    assert!(err.to_string().contains("scrub"), "{err}");
}
