//! `check` and `repair`: damage is found by file and offset, and repair
//! makes the store open again with every undamaged record intact.

mod common;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bitcask::{Batch, Bitcask, CorruptionKind, Error};
use common::{FILE_HEADER, contents, data_files, fast, hint_files};
use proptest::prelude::*;

/// Keys and values of one fixed length, so every record has the same size.
const KEY_LEN: usize = 8;
const VALUE_LEN: usize = 40;
const RECORD: u64 = 29 + KEY_LEN as u64 + VALUE_LEN as u64;

fn key(i: usize) -> Vec<u8> {
    format!("k{i:07}").into_bytes()
}

/// A value that differs from every other one in many bytes.
fn value(i: usize) -> Vec<u8> {
    (0..VALUE_LEN)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8)
        .collect()
}

/// Where each record lives: (file, byte range), by write order.
type Layout = Vec<(PathBuf, Range<u64>)>;

/// Writes `n` distinct keys, `per_file` records per data file, and returns
/// where each record went. No hint files: they would let open skip the
/// scan that finds the damage.
fn fill(dir: &Path, n: usize, per_file: u64) -> Layout {
    let db = Bitcask::open_with(
        dir,
        fast()
            .max_file_size(FILE_HEADER + per_file * RECORD)
            .use_hints(false)
            .merge_trigger(None),
    )
    .expect("open");
    for i in 0..n {
        db.put(&key(i), &value(i)).expect("put");
    }
    db.close().expect("close");
    for hint in hint_files(dir) {
        std::fs::remove_file(hint).expect("remove hint");
    }
    let mut layout = Vec::new();
    for file in data_files(dir) {
        let len = std::fs::metadata(&file).expect("stat").len();
        let mut at = FILE_HEADER;
        while at < len {
            layout.push((file.clone(), at..at + RECORD));
            at += RECORD;
        }
    }
    assert_eq!(layout.len(), n, "every record has the same length");
    layout
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= mask;
    std::fs::write(path, bytes).expect("write");
}

fn zero(path: &Path, range: Range<u64>) {
    let mut bytes = std::fs::read(path).expect("read");
    let end = (range.end as usize).min(bytes.len());
    bytes[range.start as usize..end].fill(0);
    std::fs::write(path, bytes).expect("write");
}

fn expected(n: usize, lost: &[usize]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .filter(|i| !lost.contains(i))
        .map(|i| (key(i), value(i)))
        .collect()
}

fn repair_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_clean_store_checks_clean_and_repair_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = fill(dir.path(), 120, 50);
    let report = bitcask::check(dir.path()).expect("check");
    assert!(!report.is_damaged(), "{report}");
    assert_eq!(report.records(), 120);
    assert_eq!(report.files.len(), 3);
    assert!(report.files.iter().all(|f| f.torn_tail.is_none()));
    let before: Vec<Vec<u8>> = data_files(dir.path())
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();

    let repaired = bitcask::repair(dir.path()).expect("repair");
    assert_eq!(repaired.moved_to, None);
    assert!(repaired.files_rewritten.is_empty() && repaired.files_removed.is_empty());
    assert!(repair_dirs(dir.path()).is_empty());
    let after: Vec<Vec<u8>> = data_files(dir.path())
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert_eq!(before, after);
    assert_eq!(layout.len(), 120);
}

#[test]
fn a_flipped_value_byte_is_found_by_file_offset_and_key_and_repair_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = fill(dir.path(), 120, 50);
    let (file, range) = layout[60].clone(); // the middle of the second (sealed) file
    flip(&file, range.end - 3, 0x40);
    let damaged_bytes = std::fs::read(&file).expect("read");

    // The store no longer opens...
    match Bitcask::open_with(dir.path(), fast()) {
        Err(Error::Corruption { path, offset, .. }) => {
            assert_eq!((path, offset), (file.clone(), range.start));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // ... and check says where and which key.
    let report = bitcask::check(dir.path()).expect("check");
    assert!(report.is_damaged());
    let damage: Vec<_> = report.damage().collect();
    assert_eq!(damage.len(), 1, "{report}");
    let (in_file, d) = damage[0];
    assert_eq!(in_file.path, file);
    assert_eq!((d.offset, d.len), (range.start, RECORD));
    assert_eq!(d.kind, CorruptionKind::BadChecksum);
    assert_eq!(d.keys, vec![key(60)]);
    assert_eq!(report.records(), 119);
    assert!(report.to_string().contains("\"k0000060\""), "{report}");

    let repaired = bitcask::repair(dir.path()).expect("repair");
    assert_eq!(repaired.files_rewritten.len(), 1);
    let aside = repaired.moved_to.clone().expect("repair directory");
    let name = file.file_name().expect("name");
    assert_eq!(
        std::fs::read(aside.join(name)).expect("original kept"),
        damaged_bytes
    );
    let text = std::fs::read_to_string(aside.join(bitcask::REPORT_FILE)).expect("report");
    assert!(
        text.contains("k0000060") && text.contains("rewrote"),
        "{text}"
    );

    let db = Bitcask::open_with(dir.path(), fast()).expect("opens after repair");
    assert_eq!(contents(&db), expected(120, &[60]));
    assert!(!bitcask::check(dir.path()).expect("check").is_damaged());
    // Writing goes on where it left off.
    let version = db.put(b"after", b"repair").expect("put");
    assert!(version > 120);
    db.close().expect("close");
}

#[test]
fn a_damaged_length_field_resynchronises_at_the_next_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = fill(dir.path(), 100, 200);
    let (file, range) = layout[40].clone();
    // The value length's high byte: the record claims to run far past the end.
    flip(&file, range.start + 28, 0x10);
    let report = bitcask::check(dir.path()).expect("check");
    let damage: Vec<_> = report.damage().map(|(_, d)| d.clone()).collect();
    assert_eq!(damage.len(), 1, "{report}");
    assert_eq!((damage[0].offset, damage[0].len), (range.start, RECORD));
    assert_eq!(damage[0].kind, CorruptionKind::Truncated);
    assert!(
        damage[0].keys.is_empty(),
        "an unframed record's key is unknown"
    );
    assert_eq!(
        (damage[0].seq_after, damage[0].seq_before),
        (Some(40), Some(42))
    );

    bitcask::repair(dir.path()).expect("repair");
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    assert_eq!(contents(&db), expected(100, &[40]));
}

#[test]
fn a_damaged_file_header_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = fill(dir.path(), 90, 30);
    let first = layout[0].0.clone();
    flip(&first, 3, 0xff); // the magic
    let report = bitcask::check(dir.path()).expect("check");
    let damage: Vec<_> = report.damage().map(|(_, d)| d.kind).collect();
    assert_eq!(damage, vec![CorruptionKind::BadMagic]);
    assert_eq!(report.records(), 90);

    bitcask::repair(dir.path()).expect("repair");
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    assert_eq!(contents(&db), expected(90, &[]));
}

#[test]
fn only_the_batch_cut_by_damage_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), fast().use_hints(false)).expect("open");
    db.put(b"before", b"1").expect("put");
    let mut batch = Batch::new();
    batch.put(&b"batch-a"[..], &b"a"[..]);
    batch.put(&b"batch-b"[..], &b"b"[..]);
    batch.put(&b"batch-c"[..], &b"c"[..]);
    db.write_batch(&batch).expect("batch");
    db.put(b"after", b"2").expect("put");
    db.close().expect("close");
    let file = data_files(dir.path()).pop().expect("file");
    // Records: before (29+6+1), batch-a (29+7+1), batch-b, batch-c, after.
    let before_len = 36;
    let batch_rec = 37;
    let b_at = FILE_HEADER + before_len + batch_rec;
    flip(&file, b_at + batch_rec - 1, 0x01); // batch-b's value byte

    let report = bitcask::check(dir.path()).expect("check");
    let damage: Vec<_> = report.damage().map(|(_, d)| d.clone()).collect();
    assert_eq!(damage.len(), 2, "{report}");
    assert_eq!(damage[0].kind, CorruptionKind::UnfinishedBatch);
    assert_eq!(damage[0].keys, vec![b"batch-a".to_vec()]);
    assert_eq!(damage[1].kind, CorruptionKind::BadChecksum);
    assert_eq!(damage[1].keys, vec![b"batch-b".to_vec()]);

    bitcask::repair(dir.path()).expect("repair");
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    let got: Vec<Vec<u8>> = contents(&db).into_keys().collect();
    // batch-c survives: the damaged record's header cannot say it was part
    // of the batch (docs/FORMAT.md, "Which records survive").
    assert_eq!(
        got,
        vec![b"after".to_vec(), b"batch-c".to_vec(), b"before".to_vec()]
    );
}

#[test]
fn a_sealed_file_ending_inside_a_batch_is_repaired_without_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || fast().use_hints(false).max_file_size(200);
    let db = Bitcask::open_with(dir.path(), opts()).expect("open");
    db.put(b"first", b"1").expect("put");
    let mut batch = Batch::new();
    batch.put(&b"x"[..], &b"1"[..]).put(&b"y"[..], &b"2"[..]);
    db.write_batch(&batch).expect("batch");
    // Rotate: the next write does not fit.
    db.put(b"later", &[7u8; 150]).expect("put");
    db.close().expect("close");
    let sealed = data_files(dir.path())[0].clone();
    // Cut the batch's committing record (y: 29 + 1 + 1 bytes).
    let len = std::fs::metadata(&sealed).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sealed)
        .and_then(|f| f.set_len(len - 31))
        .expect("cut");
    match Bitcask::open_with(dir.path(), opts()) {
        Err(Error::Corruption { kind, .. }) => assert_eq!(kind, CorruptionKind::UnfinishedBatch),
        other => panic!("expected corruption, got {other:?}"),
    }
    let report = bitcask::check(dir.path()).expect("check");
    let damage: Vec<_> = report.damage().map(|(_, d)| d.clone()).collect();
    assert_eq!(damage.len(), 1, "{report}");
    assert_eq!(damage[0].kind, CorruptionKind::UnfinishedBatch);
    assert_eq!(damage[0].keys, vec![b"x".to_vec()]);

    bitcask::repair(dir.path()).expect("repair");
    let db = Bitcask::open_with(dir.path(), opts()).expect("open");
    let got: Vec<Vec<u8>> = contents(&db).into_keys().collect();
    assert_eq!(got, vec![b"first".to_vec(), b"later".to_vec()]);
}

#[test]
fn a_torn_tail_is_not_damage_and_repair_leaves_it_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 30, 100);
    let file = data_files(dir.path()).pop().expect("file");
    let len = std::fs::metadata(&file).expect("stat").len();
    let mut bytes = std::fs::read(&file).expect("read");
    bytes.extend_from_slice(&[0xAB; 20]); // half a record header
    std::fs::write(&file, bytes).expect("write");

    let report = bitcask::check(dir.path()).expect("check");
    assert!(!report.is_damaged(), "{report}");
    assert_eq!(report.files[0].torn_tail, Some(len));
    assert!(report.to_string().contains("torn tail"), "{report}");
    let repaired = bitcask::repair(dir.path()).expect("repair");
    assert_eq!(repaired.moved_to, None);
    // Repair's open cut it.
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), len);
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    assert_eq!(contents(&db), expected(30, &[]));
}

#[test]
fn repair_refuses_while_a_store_is_open_and_check_runs_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    db.put(b"k", b"v").expect("put");
    assert!(matches!(
        bitcask::repair(dir.path()),
        Err(Error::Locked { .. })
    ));
    let report = bitcask::check(dir.path()).expect("check beside a writer");
    assert_eq!(report.records(), 1);
    db.close().expect("close");
}

#[test]
fn a_hint_that_does_not_verify_is_reported_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), fast().max_file_size(FILE_HEADER + 10 * RECORD))
        .expect("open");
    for i in 0..30 {
        db.put(&key(i), &value(i)).expect("put");
    }
    // The maintenance thread writes the sealed files' hints: wait for one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hint_files(dir.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no hint written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    db.close().expect("close");
    let hints = hint_files(dir.path());
    let hint_len = std::fs::metadata(&hints[0]).expect("stat").len();
    flip(&hints[0], hint_len - 10, 0x04);

    let report = bitcask::check(dir.path()).expect("check");
    assert!(!report.is_damaged());
    assert_eq!(report.bad_hints.len(), 1, "{report}");
    let repaired = bitcask::repair(dir.path()).expect("repair");
    assert_eq!(repaired.hints_removed, report.bad_hints);
    // Repair's own open and close write a fresh hint in its place.
    assert!(
        bitcask::check(dir.path())
            .expect("check")
            .bad_hints
            .is_empty()
    );
    let db = Bitcask::open_with(dir.path(), fast()).expect("open");
    assert_eq!(contents(&db), expected(30, &[]));
}

#[test]
fn check_reports_progress_up_to_the_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path(), 100, 20);
    let mut seen = Vec::new();
    bitcask::check_with_progress(dir.path(), &mut |done, total| seen.push((done, total)))
        .expect("check");
    let total: u64 = data_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    assert_eq!(seen.first(), Some(&(0, total)));
    assert_eq!(seen.last(), Some(&(total, total)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any one damage (a flipped byte or a zeroed run, anywhere in any data
    /// file, headers included): repair makes the store open, and exactly
    /// the records the damage touched are gone.
    #[test]
    fn after_any_damage_repair_keeps_exactly_the_untouched_records(
        n in 20usize..160,
        per_file in 8u64..60,
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        zero_len in prop::option::of(1u64..300),
        mask in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = fill(dir.path(), n, per_file);
        let files = data_files(dir.path());
        let file = pick.get(&files).clone();
        let len = std::fs::metadata(&file).expect("stat").len();
        let start = at.index(len as usize) as u64;
        let damaged = match zero_len {
            Some(l) => {
                // Zeroing bytes that are already zero changes nothing.
                let end = (start + l).min(len);
                let bytes = std::fs::read(&file).expect("read");
                let first_nonzero = bytes[start as usize..end as usize].iter().position(|&b| b != 0);
                let last_nonzero = bytes[start as usize..end as usize].iter().rposition(|&b| b != 0);
                zero(&file, start..end);
                match (first_nonzero, last_nonzero) {
                    (Some(f), Some(l)) => start + f as u64..start + l as u64 + 1,
                    _ => start..start,
                }
            }
            None => {
                flip(&file, start, mask);
                start..start + 1
            }
        };
        let lost: Vec<usize> = layout
            .iter()
            .enumerate()
            .filter(|(_, (f, r))| {
                *f == file && !damaged.is_empty() && r.start < damaged.end && damaged.start < r.end
            })
            .map(|(i, _)| i)
            .collect();

        let report = bitcask::check(dir.path()).expect("check");
        prop_assert_eq!(report.records() as usize, n - lost.len(), "{}", report);
        bitcask::repair(dir.path()).expect("repair");
        let db = Bitcask::open_with(dir.path(), fast()).expect("opens after repair");
        prop_assert_eq!(contents(&db), expected(n, &lost));
        db.close().expect("close");
        prop_assert!(!bitcask::check(dir.path()).expect("check").is_damaged());
    }
}
