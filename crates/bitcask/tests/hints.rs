//! Hint files: written for sealed files and merge outputs, used at open, and
//! never trusted when missing, damaged or stale: the store then scans the
//! data file and opens correctly.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcask::{Bitcask, Options};

fn options() -> Options {
    common::fast().max_file_size(2 << 10)
}

/// A store of several sealed files, each with its hint written (waits for
/// the background thread). Returns its contents.
fn store_with_hints(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Bitcask::open_with(dir, options()).expect("open");
    for i in 0..300u32 {
        db.put(
            format!("key-{}", i % 120).as_bytes(),
            format!("value-{i}").as_bytes(),
        )
        .expect("put");
        if i % 50 == 0 {
            db.delete(format!("key-{}", i % 7).as_bytes())
                .expect("delete");
        }
    }
    let sealed = common::data_files(dir).len() - 1;
    assert!(sealed >= 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::hint_files(dir).len() < sealed {
        assert!(Instant::now() < deadline, "hints not written");
        std::thread::sleep(Duration::from_millis(5));
    }
    let expected = common::contents(&db);
    db.close().expect("close");
    expected
}

#[test]
fn sealed_files_get_hints_and_opening_with_them_equals_scanning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = store_with_hints(dir.path());
    let with = Bitcask::open_with(dir.path(), options()).expect("open with hints");
    assert_eq!(common::contents(&with), expected);
    drop(with);
    let without = Bitcask::open_with(dir.path(), options().use_hints(false)).expect("open");
    assert_eq!(common::contents(&without), expected);
}

#[test]
fn open_reads_the_hint_instead_of_the_data_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = store_with_hints(dir.path());
    // Damage the last value byte of the first sealed file: a scan would
    // refuse to open, so a successful open shows the hint was used.
    let first = common::data_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&first, &bytes).expect("write");
    assert!(Bitcask::open_with(dir.path(), options().use_hints(false)).is_err());
    let db = Bitcask::open_with(dir.path(), options()).expect("open through the hint");
    // The damaged record is still never returned as data.
    for (key, value) in &expected {
        match db.get(key) {
            Ok(got) => assert_eq!(got.as_ref(), Some(value)),
            Err(e) => assert!(matches!(e, bitcask::Error::Corruption { .. }), "{e}"),
        }
    }
}

#[test]
fn a_damaged_or_missing_hint_falls_back_to_scanning() {
    let src = tempfile::tempdir().expect("tempdir");
    let expected = store_with_hints(src.path());
    let hints = common::hint_files(src.path());
    let first_hint = hints[0].file_name().expect("name").to_owned();
    let len = std::fs::metadata(&hints[0]).expect("meta").len() as usize;

    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage)> = vec![
        (
            "deleted",
            Box::new(|p: &Path| std::fs::remove_file(p).expect("rm")),
        ),
        (
            "emptied",
            Box::new(|p: &Path| std::fs::write(p, b"").expect("write")),
        ),
        (
            "cut in half",
            Box::new(move |p: &Path| {
                let bytes = std::fs::read(p).expect("read");
                std::fs::write(p, &bytes[..len / 2]).expect("write");
            }),
        ),
        (
            "a flipped key byte",
            Box::new(move |p: &Path| {
                let mut bytes = std::fs::read(p).expect("read");
                bytes[32 + 29] ^= 1;
                std::fs::write(p, &bytes).expect("write");
            }),
        ),
        (
            "a flipped offset",
            Box::new(move |p: &Path| {
                let mut bytes = std::fs::read(p).expect("read");
                bytes[32 + 21] ^= 0x10;
                std::fs::write(p, &bytes).expect("write");
            }),
        ),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().expect("tempdir");
        common::copy_dir(src.path(), dir.path());
        damage(&dir.path().join(&first_hint));
        let db = Bitcask::open_with(dir.path(), options()).expect("opens by scanning");
        assert_eq!(common::contents(&db), expected, "hint {what}");
    }
}

#[test]
fn a_hint_that_describes_another_length_of_its_data_file_is_ignored() {
    // A data file that changed after its hint was written (only damage or an
    // outside edit can do that) must not be read through the old hint.
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_hints(dir.path());
    let first = common::data_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).expect("read");
    bytes.extend_from_slice(&[0; 10]);
    std::fs::write(&first, &bytes).expect("write");
    // Scanning finds the trailing garbage in a sealed file: corruption, not
    // a silent success through the stale hint.
    assert!(matches!(
        Bitcask::open_with(dir.path(), options()),
        Err(bitcask::Error::Corruption { .. })
    ));
}

#[test]
fn merge_outputs_come_with_hints_and_orphans_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = store_with_hints(dir.path());
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    db.merge().expect("merge");
    let data: Vec<PathBuf> = common::data_files(dir.path());
    let hints = common::hint_files(dir.path());
    // Every sealed data file has its hint (the active one never does).
    assert_eq!(hints.len(), data.len() - 1, "{data:?} vs {hints:?}");
    drop(db);
    // A hint with no data file (as a crash mid-merge could leave) is removed.
    let orphan = dir.path().join("0000009999.hint");
    std::fs::copy(&hints[0], &orphan).expect("copy");
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    assert!(!orphan.exists());
    assert_eq!(common::contents(&db), expected);
}

#[test]
fn files_a_crash_left_half_written_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = store_with_hints(dir.path());
    // What a crash while writing a hint, a merge output or a new data file
    // leaves behind: `.tmp` files, possibly with any bytes in them.
    let leftovers = [
        dir.path().join("0000000001.hint.tmp"),
        dir.path().join("0000000077.data.tmp"),
    ];
    for path in &leftovers {
        std::fs::write(path, b"BITCASK\0 half written").expect("write");
    }
    let view = Bitcask::open_with(dir.path(), options().read_only(true)).expect("read-only");
    assert!(
        leftovers.iter().all(|p| p.exists()),
        "a read-only open changes nothing"
    );
    assert_eq!(common::contents(&view), expected);
    drop(view);
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    assert!(leftovers.iter().all(|p| !p.exists()));
    assert_eq!(common::contents(&db), expected);
    // New files take numbers above every file the open saw, leftovers
    // included.
    for i in 0..200u32 {
        db.put(format!("new-{i}").as_bytes(), &[3; 40])
            .expect("put");
    }
    let ids: Vec<u32> = common::data_files(dir.path())
        .iter()
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect();
    assert!(ids.iter().any(|&id| id > 77), "{ids:?}");
}

#[test]
fn open_reports_its_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_hints(dir.path());
    let files = common::data_files(dir.path()).len() as u64;
    let progress = std::sync::Arc::new(bitcask::OpenProgress::new());
    assert_eq!((progress.files_loaded(), progress.files_total()), (0, 0));
    let db =
        Bitcask::open_with(dir.path(), options().open_progress(progress.clone())).expect("open");
    assert_eq!(progress.files_total(), files);
    assert_eq!(progress.files_loaded(), files);
    drop(db);
}

/// The hint path of the active file.
fn active_hint(dir: &Path) -> PathBuf {
    common::active_file(dir).with_extension("hint")
}

#[test]
fn a_clean_close_writes_the_active_files_hint_and_open_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    for i in 0..49u32 {
        db.put(format!("k{i:02}").as_bytes(), format!("v{i}").as_bytes())
            .expect("put");
    }
    db.delete(b"k07").expect("delete");
    // The last record of the file.
    db.put(b"k49", b"v49").expect("put");
    let expected = common::contents(&db);
    db.close().expect("close");
    assert_eq!(common::data_files(dir.path()).len(), 1, "one active file");
    let hint = active_hint(dir.path());
    assert!(hint.exists(), "close wrote the active file's hint");

    // Damage the last value byte of the active file: a scan would see a torn
    // (or damaged) tail, so reading the damage only at `get` shows the
    // hint was used. A read-only open uses the hint and leaves it.
    let active = common::active_file(dir.path());
    let mut bytes = std::fs::read(&active).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&active, &bytes).expect("write");
    let view = Bitcask::open_with(dir.path(), common::fast().read_only(true)).expect("read-only");
    assert!(matches!(
        view.get(b"k49"),
        Err(bitcask::Error::Corruption { .. })
    ));
    assert_eq!(view.get(b"k00").expect("get"), Some(b"v0".to_vec()));
    drop(view);
    assert!(hint.exists(), "a read-only open leaves the hint");

    bytes[last] ^= 0x40;
    std::fs::write(&active, &bytes).expect("repair the byte");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    assert!(!hint.exists(), "a writable open deletes the hint it used");
    assert_eq!(common::contents(&db), expected);
    db.put(b"after", b"reopen").expect("put");
    db.close().expect("close");
    assert!(hint.exists(), "the next close writes a new one");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    assert_eq!(db.get(b"after").expect("get"), Some(b"reopen".to_vec()));
    assert_eq!(db.len(), expected.len() + 1);
}

#[test]
fn a_stale_hint_of_the_active_file_is_ignored() {
    // A hint kept from an earlier close, after the file grew: open must
    // scan (the hint's length no longer matches) and see every write.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    db.put(b"a", b"1").expect("put");
    db.close().expect("close");
    let old_hint = std::fs::read(active_hint(dir.path())).expect("hint");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    db.put(b"b", b"2").expect("put");
    db.delete(b"a").expect("delete");
    // A crash: the files as they are while the handle is open (preallocated
    // zeros included), with the old hint put back.
    let crashed = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), crashed.path().join(entry.file_name())).expect("copy");
    }
    drop(db);
    std::fs::write(active_hint(crashed.path()), &old_hint).expect("old hint");
    let db = Bitcask::open_with(crashed.path(), common::fast()).expect("open the crash copy");
    assert_eq!(db.get(b"a").expect("get"), None);
    assert_eq!(db.get(b"b").expect("get"), Some(b"2".to_vec()));
    drop(db);
    // The same with the files of the clean close, and the old hint.
    std::fs::write(active_hint(dir.path()), &old_hint).expect("old hint");
    let db = Bitcask::open_with(dir.path(), common::fast()).expect("open");
    assert_eq!(db.get(b"a").expect("get"), None);
    assert_eq!(db.get(b"b").expect("get"), Some(b"2".to_vec()));
}
