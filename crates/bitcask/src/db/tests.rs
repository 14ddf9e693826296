//! The store handle's own tests: reads across hash-tag collisions, close,
//! preallocation, rotation and the failure paths, driven by the test-only
//! failpoints in the I/O layer at every step that touches the disk.

use super::active_file::PREALLOCATE_STEP;
use super::*;
use crate::failpoint;
use crate::record::RecordKind;

fn always() -> Options {
    Options::new().sync(SyncPolicy::Always)
}

fn value_of(db: &Bitcask, key: &[u8]) -> Option<Vec<u8>> {
    db.get(key).expect("reads keep working")
}

/// Copies the files of `from` as they are now (a crash's view: the
/// page cache survives a killed process).
fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("meta").len()
}

/// Reads look keys up by hash alone first; with tags that mostly
/// collide, nearly every such lookup meets another key's record, and
/// every read path must still answer for the right key, through
/// deletes, expiry, a merge and reopens.
#[test]
fn reads_answer_for_the_right_key_when_keys_share_their_hash_tags() {
    crate::keydir::colliding_tags_on_this_thread();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(crate::clock::ManualClock::new(1_000));
    let options = || {
        Options::new()
            .sync(SyncPolicy::Never)
            .max_file_size(8 * 1024)
            .clock(clock.clone())
    };
    let key = |i: u32| format!("key/{i}").into_bytes();
    let value = |i: u32, round: u32| format!("value {i} of round {round}").into_bytes();
    let check = |db: &Bitcask, round: u32| {
        for i in 0..300u32 {
            let want = match i % 5 {
                0 => None,              // deleted
                1 if round > 0 => None, // expired
                _ => Some(value(i, round)),
            };
            assert_eq!(db.get(&key(i)).expect("get"), want, "key {i}");
            let lent = db.get_with(&key(i), <[u8]>::to_vec).expect("get_with");
            assert_eq!(lent, want, "key {i}");
            assert_eq!(db.contains(&key(i)), want.is_some(), "key {i}");
            assert_eq!(db.version(&key(i)).is_some(), want.is_some(), "key {i}");
        }
        let listed: Vec<Vec<u8>> = db.keys().collect();
        let mut want: Vec<Vec<u8>> = (0..300u32)
            .filter(|i| i % 5 != 0 && (round == 0 || i % 5 != 1))
            .map(key)
            .collect();
        want.sort();
        assert_eq!(listed, want);
    };
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    for i in 0..300u32 {
        let write = if i % 5 == 1 {
            WriteOptions::new().ttl(std::time::Duration::from_secs(10))
        } else {
            WriteOptions::new()
        };
        db.put_with(&key(i), &value(i, 0), write).expect("put");
    }
    for i in (0..300u32).step_by(5) {
        assert!(db.delete(&key(i)).expect("delete"));
    }
    check(&db, 0);
    clock.advance(11_000);
    // Overwrite the live keys so that a merge has garbage to drop.
    for i in (0..300u32).filter(|i| i % 5 > 1) {
        db.put(&key(i), &value(i, 1)).expect("put");
    }
    check(&db, 1);
    db.merge().expect("merge");
    check(&db, 1);
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), options()).expect("reopen from hints");
    check(&db, 1);
    // Damage one record: reading its key reports it, and no other key,
    // whichever slot its first lookup meets, is answered with that error.
    let damaged = key(2);
    let entry = db.shared.keydir.get(&damaged).expect("live");
    let path = dir
        .path()
        .join(crate::datafile::data_file_name(entry.file_id));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    let last = u64::from(entry.offset) + u64::from(entry.len) - 1;
    std::os::unix::fs::FileExt::write_at(&file, b"~", last).expect("damage");
    assert!(matches!(db.get(&damaged), Err(Error::Corruption { .. })));
    for i in (0..300u32).filter(|&i| i % 5 > 1 && i != 2) {
        assert_eq!(db.get(&key(i)).expect("get"), Some(value(i, 1)), "key {i}");
    }
    db.close().expect("close");
}

/// docs/FORMAT.md, "Close": the directory as a process killed at each
/// step of a clean close leaves it (copied at the step) opens with every
/// write, whether it holds no hint of the active file, an unrenamed one,
/// or the finished one; an unrenamed one is removed at open.
#[test]
fn a_crash_at_any_step_of_close_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copies = tempfile::tempdir().expect("tempdir");
    let options = || Options::new().sync(SyncPolicy::Never);
    // A first close writes a hint; the second open uses and deletes it.
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    db.put(b"before", b"reopen").expect("put");
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), options()).expect("reopen");
    for i in 0..200u32 {
        db.put(&i.to_be_bytes(), &[3u8; 40]).expect("put");
    }
    db.delete(b"before").expect("delete");
    let expected: Vec<(Vec<u8>, Option<Vec<u8>>)> = db
        .keys()
        .map(|k| {
            let v = value_of(&db, &k);
            (k, v)
        })
        .collect();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = std::rc::Rc::clone(&seen);
    let (from, to) = (dir.path().to_path_buf(), copies.path().to_path_buf());
    failpoint::observe(move |step| {
        let copy = to.join(sink.borrow().len().to_string());
        std::fs::create_dir(&copy).expect("mkdir");
        copy_files(&from, &copy);
        sink.borrow_mut().push((step, copy));
    });
    let closed = db.close();
    failpoint::stop_observing();
    closed.expect("close");
    let mut seen = seen.borrow().clone();
    let steps: Vec<&str> = seen.iter().map(|(step, _)| *step).collect();
    assert_eq!(
        steps,
        ["close: active file cut, no hint yet", "close: hint written"]
    );
    // Between the hint's fsync and its rename (hint writing is shared
    // with sealed files and repair, so it marks no step of its own):
    // the finished copy with the hint back under its temporary name.
    let unrenamed = copies.path().join("unrenamed");
    std::fs::create_dir(&unrenamed).expect("mkdir");
    copy_files(&seen[1].1, &unrenamed);
    let hint = crate::datafile::hint_file_name(1);
    std::fs::rename(
        unrenamed.join(&hint),
        unrenamed.join(crate::datafile::tmp_name(&hint)),
    )
    .expect("unrename the hint");
    seen.push(("hint written, not renamed", unrenamed));
    for (step, copy) in &seen {
        let db = Bitcask::open_with(copy, options()).expect("open the copy");
        let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = db
            .keys()
            .map(|k| {
                let v = value_of(&db, &k);
                (k, v)
            })
            .collect();
        assert_eq!(got, expected, "killed at {step}");
        // (Checked while open: the copy's own close writes a hint again.)
        let leftovers = std::fs::read_dir(copy)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0, "killed at {step}: a .tmp file survived open");
        db.close().expect("close the copy");
    }
}

#[test]
fn the_active_file_is_preallocated_and_a_crash_leaves_only_zeros_to_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never)).expect("open");
    for i in 0..100u32 {
        db.put(&i.to_be_bytes(), &[7u8; 50]).expect("put");
    }
    let active = dir.path().join(crate::datafile::data_file_name(1));
    let end = db.stats().total_bytes;
    assert_eq!(
        end,
        FILE_HEADER_LEN as u64 + 100 * record::encoded_len(&[0; 4], &[7; 50]) as u64
    );
    let bytes = std::fs::read(&active).expect("read");
    if cfg!(target_os = "linux") {
        assert_eq!(
            bytes.len() as u64,
            FILE_HEADER_LEN as u64 + PREALLOCATE_STEP
        );
    }
    assert!(bytes[end as usize..].iter().all(|&b| b == 0));

    // A crash now leaves the zeros (written by the zero fill, or still
    // unwritten if the fill had not run: they read the same); they are
    // neither damage nor a tear.
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_files(dir.path(), crashed.path());
    let report = crate::check(crashed.path()).expect("check");
    assert!(!report.is_damaged());
    assert!(
        report.files.iter().all(|f| f.torn_tail.is_none()),
        "{report:?}"
    );
    let reopened = Bitcask::open(crashed.path()).expect("open after the crash");
    assert_eq!(reopened.len(), 100);
    assert_eq!(
        value_of(&reopened, &7u32.to_be_bytes()),
        Some(vec![7u8; 50])
    );
    let torn = std::fs::read_dir(crashed.path())
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".torn"))
        })
        .count();
    assert_eq!(torn, 0, "zeros are not kept as a torn tail");
    // Writing goes on after the last record.
    reopened.put(b"next", b"1").expect("put");
    drop(reopened);
    let reopened = Bitcask::open(crashed.path()).expect("reopen");
    assert_eq!(reopened.len(), 101);
    drop(reopened);

    // A clean close cuts the preallocated space.
    db.close().expect("close");
    assert_eq!(file_len(&active), end);
}

#[test]
fn a_torn_record_in_preallocated_space_is_kept_aside_and_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never)).expect("open");
    db.put(b"a", b"1").expect("put");
    let end = db.stats().total_bytes;
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_files(dir.path(), crashed.path());
    // Half a record reached the disk, zeros follow.
    let active = crashed.path().join(crate::datafile::data_file_name(1));
    let mut record = Vec::new();
    record::encode_into(&mut record, 2, 0, RecordKind::Put, b"b", b"22222222").expect("encode");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, &record[..record.len() / 2], end)
        .expect("write");
    drop(file);
    let reopened = Bitcask::open(crashed.path()).expect("open");
    assert_eq!(reopened.len(), 1);
    assert_eq!(file_len(&active), end);
    assert!(
        crashed
            .path()
            .join(format!("0000000001-{end}.torn"))
            .exists()
    );
    drop(reopened);
    db.close().expect("close");
}

#[test]
fn a_failed_preallocation_falls_back_to_the_record_then_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    let active = dir.path().join(crate::datafile::data_file_name(1));
    // The step fails; just what the record needs does not.
    failpoint::arm("fallocate");
    db.put(b"a", b"1").expect("put with the fallback");
    let end = db.stats().total_bytes;
    assert_eq!(file_len(&active), end);
    // Both fail (a full disk): the write fails, nothing is written.
    failpoint::arm("fallocate");
    failpoint::arm("fallocate");
    assert!(matches!(db.put(b"b", b"2"), Err(Error::Io { .. })));
    assert_eq!(file_len(&active), end);
    assert_eq!(value_of(&db, b"b"), None);
    // Not poisoned: the next write goes through.
    db.put(b"c", b"3").expect("put after the failure");
    db.close().expect("close");
    let db = Bitcask::open(dir.path()).expect("reopen");
    assert_eq!(db.len(), 2);
    assert_eq!(value_of(&db, b"c").as_deref(), Some(&b"3"[..]));
}

#[test]
fn preallocated_space_is_zero_filled_and_a_failed_fill_fails_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    let active = dir.path().join(crate::datafile::data_file_name(1));
    // The first put preallocates, so it passes the zero fill (and
    // consumes the armed failure there); the put itself succeeds.
    failpoint::arm("zero-fill");
    db.put(b"a", &[7u8; 5000])
        .expect("put despite the failed fill");
    assert!(
        !failpoint::is_armed("zero-fill"),
        "the preallocation did not zero-fill"
    );
    let end = db.stats().total_bytes;
    if cfg!(target_os = "linux") {
        assert!(file_len(&active) > end, "preallocated past the record");
    }
    // Later puts land in the allocated space, filled or not.
    for i in 0..300u32 {
        db.put(&i.to_be_bytes(), &[i as u8; 4000]).expect("put");
    }
    db.close().expect("close");
    let db = Bitcask::open(dir.path()).expect("reopen");
    assert_eq!(db.len(), 301);
    assert_eq!(value_of(&db, b"a").as_deref(), Some(&[7u8; 5000][..]));
    for i in [0u32, 150, 299] {
        assert_eq!(
            value_of(&db, &i.to_be_bytes()).as_deref(),
            Some(&[i as u8; 4000][..])
        );
    }
}

#[test]
fn rotation_seals_files_at_their_last_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Never).max_file_size(4096);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    for i in 0..200u32 {
        db.put(&i.to_be_bytes(), &[1u8; 40]).expect("put");
    }
    let stats = db.stats();
    assert!(stats.files.len() > 2);
    let (active, sealed) = stats.files.split_last().expect("files");
    for file in sealed {
        let path = dir.path().join(crate::datafile::data_file_name(file.id));
        assert_eq!(file_len(&path), file.total_bytes, "sealed file {}", file.id);
    }
    if cfg!(target_os = "linux") {
        let path = dir.path().join(crate::datafile::data_file_name(active.id));
        assert_eq!(file_len(&path), 4096, "preallocated up to the size limit");
    }
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(db.len(), 200);
}

/// The header of data file `id` in `dir`.
fn header_of(dir: &Path, id: u32) -> crate::datafile::FileHeader {
    let path = dir.join(crate::datafile::data_file_name(id));
    let bytes = std::fs::read(&path).expect("read");
    let head: &[u8; crate::datafile::FILE_HEADER_LEN] = bytes.first_chunk().expect("a header");
    crate::datafile::FileHeader::decode(head, &path, crate::datafile::KIND_DATA, id)
        .expect("valid header")
}

/// Merge outputs are flagged as rewrites in their header (format version
/// 4; the change feed never reads them, docs/WATCH.md); the files the
/// writer creates are not, and the store reopens the same either way.
#[test]
fn merge_outputs_are_flagged_rewritten_and_writer_files_are_not() {
    use crate::datafile::FLAG_REWRITTEN;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Never).max_file_size(4096);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    for round in 0..3u8 {
        for i in 0..100u32 {
            db.put(&i.to_be_bytes(), &[round; 40]).expect("put");
        }
    }
    let before: Vec<u32> = db.stats().files.iter().map(|f| f.id).collect();
    for id in &before {
        assert_eq!(header_of(dir.path(), *id).flags, 0, "writer file {id}");
    }
    let report = db.merge().expect("merge");
    assert!(report.files_written > 0, "{report:?}");
    let after = db.stats().files;
    let (active, sealed) = after.split_last().expect("files");
    assert_eq!(
        header_of(dir.path(), active.id).flags,
        0,
        "the new active file"
    );
    let outputs: Vec<u32> = sealed
        .iter()
        .map(|f| f.id)
        .filter(|id| !before.contains(id))
        .collect();
    assert!(!outputs.is_empty());
    for id in outputs {
        assert_eq!(
            header_of(dir.path(), id).flags,
            FLAG_REWRITTEN,
            "output {id}"
        );
    }
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(db.len(), 100);
    assert_eq!(value_of(&db, &7u32.to_be_bytes()), Some(vec![2u8; 40]));
}

/// After a repair rewrote the newest file, the store never appends to it
/// (the change feed does not read rewritten files): new writes go to a new
/// writer's file, and the compacted seq says no older history is promised.
#[test]
fn writes_after_a_repair_of_the_newest_file_go_to_a_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    db.put(b"damaged", b"value to be damaged").expect("put");
    db.put(b"after", b"kept").expect("put");
    db.close().expect("close");
    let path = dir.path().join(crate::datafile::data_file_name(1));
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes
        .windows(5)
        .position(|w| w == b"value")
        .expect("value on disk");
    bytes[at] ^= 0xFF;
    std::fs::write(&path, bytes).expect("damage");
    let report = crate::repair(dir.path()).expect("repair");
    assert_eq!(report.files_rewritten, vec![1]);
    assert_eq!(
        header_of(dir.path(), 1).flags,
        crate::datafile::FLAG_REWRITTEN
    );

    let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
    let compacted = db.compacted_seq();
    let version = db.put(b"new", b"write").expect("put after repair");
    assert!(
        version >= compacted,
        "a new write is history: {version} >= {compacted}"
    );
    let files = db.stats().files;
    let active = files.last().expect("files").id;
    assert_ne!(active, 1, "not appended to the rewritten file");
    assert_eq!(header_of(dir.path(), active).flags, 0);
    assert_eq!(value_of(&db, b"after").as_deref(), Some(&b"kept"[..]));
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
    assert_eq!(value_of(&db, b"new").as_deref(), Some(&b"write"[..]));
}

#[test]
fn a_failed_cut_before_sealing_seals_nothing_and_rotation_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Never).max_file_size(200);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    db.put(b"a", &[1u8; 100]).expect("put");
    failpoint::arm("truncate");
    // This record does not fit: rotation, whose cut fails.
    assert!(matches!(db.put(b"b", &[2u8; 100]), Err(Error::Io { .. })));
    assert_eq!(db.stats().files.len(), 1, "nothing sealed, no new file");
    assert_eq!(value_of(&db, b"b"), None);
    db.put(b"b", &[2u8; 100]).expect("rotation retried");
    assert_eq!(db.stats().files.len(), 2);
    drop(db);
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(value_of(&db, b"a"), Some(vec![1u8; 100]));
    assert_eq!(value_of(&db, b"b"), Some(vec![2u8; 100]));
}

#[test]
fn close_writes_the_hints_still_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(
        dir.path(),
        Options::new().sync(SyncPolicy::Never).max_file_size(2048),
    )
    .expect("open");
    // Stall the maintenance thread (hint writes take the merge lock)
    // while files are sealed, so their hints are still queued at close.
    let shared = Arc::clone(&db.shared);
    let stall = shared.merge.lock();
    for i in 0..300u32 {
        db.put(&i.to_be_bytes(), &[b'v'; 100]).expect("put");
    }
    let closing = std::thread::spawn(move || db.close());
    // Let close set its flag before the thread gets going again.
    std::thread::sleep(Duration::from_millis(200));
    drop(stall);
    closing.join().expect("close thread").expect("close");
    let mut data = crate::datafile::list_dir(dir.path()).expect("list").data;
    data.pop(); // the active file has no hint
    assert!(data.len() > 10);
    for id in data {
        let hint = dir.path().join(crate::datafile::hint_file_name(id));
        assert!(hint.exists(), "file {id} has no hint after close");
    }
}

/// Under `sync=always` the change feed shows a write only once its fsync
/// covered it: a write whose fsync failed (its outcome unknown, never
/// acknowledged) is not an event.
#[test]
fn under_always_the_change_feed_never_shows_a_write_its_fsync_did_not_cover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    let acknowledged = db.put(b"before", b"1").expect("put");
    let mut reader = db.changes(0).expect("changes");
    failpoint::arm("fsync");
    assert!(matches!(db.put(b"during", b"2"), Err(Error::Io { .. })));
    let seen: Vec<u64> = reader
        .next_batch(100)
        .expect("changes")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(
        seen,
        vec![acknowledged],
        "the unacknowledged write is no event"
    );
}

#[test]
fn a_failed_fsync_poisons_writes_but_not_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    db.put(b"before", b"1").expect("put");

    failpoint::arm("fsync");
    assert!(matches!(db.put(b"during", b"2"), Err(Error::Io { .. })));
    // Never reported as durable later, and no more writes are taken.
    assert!(matches!(db.sync(), Err(Error::Poisoned)));
    assert!(matches!(db.put(b"after", b"3"), Err(Error::Poisoned)));
    assert!(matches!(db.delete(b"before"), Err(Error::Poisoned)));
    assert_eq!(value_of(&db, b"before").as_deref(), Some(&b"1"[..]));
    assert!(matches!(db.close(), Err(Error::Poisoned)));

    // Reopening clears the state; the failed write may or may not be
    // there (its outcome is unknown), everything acknowledged is.
    let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
    assert_eq!(value_of(&db, b"before").as_deref(), Some(&b"1"[..]));
    assert_eq!(value_of(&db, b"after"), None);
    db.put(b"again", b"4").expect("writes work after reopening");
}

#[test]
fn a_half_write_is_cut_back_and_the_store_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    db.put(b"a", b"1").expect("put");
    let active = dir.path().join(crate::datafile::data_file_name(1));
    // Where "b" would have started: the end of the last record (the
    // file itself is longer while preallocated).
    let len = (FILE_HEADER_LEN + record::encoded_len(b"a", b"1")) as u64;

    failpoint::arm("append-half");
    match db.put(b"b", b"22222222") {
        Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(28)),
        other => panic!("expected the injected ENOSPC, got {other:?}"),
    }
    assert_eq!(std::fs::metadata(&active).expect("meta").len(), len);
    assert_eq!(value_of(&db, b"b"), None);
    db.put(b"c", b"3").expect("not poisoned");
    drop(db);
    let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
    assert_eq!(db.len(), 2);
    assert_eq!(value_of(&db, b"c").as_deref(), Some(&b"3"[..]));
}

#[test]
fn a_half_write_that_cannot_be_cut_back_poisons_and_recovery_cuts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    db.put(b"a", b"1").expect("put");

    failpoint::arm("append-half");
    failpoint::arm("truncate");
    assert!(matches!(db.put(b"b", b"22222222"), Err(Error::Io { .. })));
    assert!(matches!(db.put(b"c", b"3"), Err(Error::Poisoned)));
    assert_eq!(value_of(&db, b"a").as_deref(), Some(&b"1"[..]));
    drop(db);

    // The half record is a torn tail to the next open.
    let db = Bitcask::open_with(dir.path(), always()).expect("reopen");
    assert_eq!(db.len(), 1);
    assert_eq!(value_of(&db, b"a").as_deref(), Some(&b"1"[..]));
    db.put(b"c", b"3").expect("writes work after reopening");
}

#[test]
fn a_failed_file_creation_leaves_no_file_and_rotation_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Never).max_file_size(100);
    let db = Bitcask::open_with(dir.path(), opts.clone()).expect("open");
    db.put(b"a", &[1; 50]).expect("fills the first file");
    let unfinished = dir
        .path()
        .join(crate::datafile::tmp_name(&crate::datafile::data_file_name(
            2,
        )));

    failpoint::arm("create-header");
    assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Io { .. })));
    assert!(
        !unfinished.exists(),
        "the half-created file must be removed"
    );
    assert_eq!(
        crate::datafile::list_dir(dir.path()).expect("list").data,
        [1]
    );
    db.put(b"b", &[2; 50]).expect("rotation is retried");
    assert_eq!(
        crate::datafile::list_dir(dir.path()).expect("list").data,
        [1, 3]
    );
    drop(db);
    let db = Bitcask::open_with(dir.path(), opts).expect("reopen");
    assert_eq!(value_of(&db, b"a"), Some(vec![1; 50]));
    assert_eq!(value_of(&db, b"b"), Some(vec![2; 50]));
}

#[test]
fn a_failed_fsync_when_sealing_a_file_poisons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().sync(SyncPolicy::Never).max_file_size(100);
    let db = Bitcask::open_with(dir.path(), opts).expect("open");
    db.put(b"a", &[1; 50]).expect("fills the first file");

    failpoint::arm("sync_all");
    assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Io { .. })));
    assert!(matches!(db.put(b"b", &[2; 50]), Err(Error::Poisoned)));
    assert_eq!(value_of(&db, b"a"), Some(vec![1; 50]));
}

/// The purge samples keys, then deletes them under the writer lock only if
/// each is still at the version sampled and expired: a key rewritten (or
/// given a later expiry) in between is left alone.
#[test]
fn a_purge_leaves_a_key_rewritten_after_it_was_sampled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(crate::clock::ManualClock::new(1_000));
    let db = Bitcask::open_with(dir.path(), always().clock(clock.clone())).expect("open");
    let ttl = WriteOptions::new().ttl(std::time::Duration::from_millis(10));
    let a = db.put_with(b"a", b"1", ttl).expect("put");
    let b = db.put_with(b"b", b"1", ttl).expect("put");
    clock.advance(10);
    // "a" is rewritten after the sample saw it at version `a`.
    db.put(b"a", b"2").expect("rewrite");
    let purged = db
        .shared
        .purge_expired(&[(b"a".to_vec(), a), (b"b".to_vec(), b), (b"c".to_vec(), 1)])
        .expect("purge");
    assert_eq!(purged, 1, "only b: a was rewritten, c never existed");
    assert_eq!(value_of(&db, b"a").as_deref(), Some(&b"2"[..]));
    assert_eq!(db.len(), 1);
    // Only the expired: a live key at the version given stays.
    let live = db.version(b"a").expect("a");
    assert_eq!(
        db.shared
            .purge_expired(&[(b"a".to_vec(), live)])
            .expect("purge"),
        0
    );
    db.close().expect("close");
}

#[test]
fn the_committed_position_never_moves_back_when_writers_publish_out_of_order() {
    // Under `always` writers publish after their fsync, in any order: the
    // one behind (an earlier file, a lower seq) must not pull the position
    // back, or a reader in the newer file would read past what is published.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(dir.path(), always()).expect("open");
    let shared = &db.shared;
    let (file, _) = shared.committed_position();
    shared.publish_committed(file + 1, 200, 50);
    shared.publish_committed(file, 4_000, 40);
    assert_eq!(shared.committed_position(), (file + 1, 200));
    assert_eq!(shared.next_committed_seq(), 51);
    shared.publish_committed(file + 1, 300, 60);
    assert_eq!(shared.committed_position(), (file + 1, 300));
    assert_eq!(shared.next_committed_seq(), 61);
}

#[test]
fn appends_go_through_a_window_of_the_active_file_only_where_it_is_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || {
        Options::new()
            .sync(SyncPolicy::Never)
            .max_file_size(64 << 10)
    };
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let value = vec![b'v'; 3_000];
    for i in 0..60u32 {
        db.put(format!("key-{i:03}").as_bytes(), &value)
            .expect("put");
        let w = db.shared.writer_guard().expect("writer");
        let map = w.map.as_ref().expect("a window while space is allocated");
        assert_eq!(
            map.file_id(),
            w.active.id,
            "the window is the active file's"
        );
        assert!(w.offset <= w.allocated);
    }
    // Rotations happened (64 KiB files), and every record reads back
    // through the read path and after a reopen.
    assert!(db.stats().data_files > 2);
    for i in 0..60u32 {
        assert_eq!(
            db.get(format!("key-{i:03}").as_bytes()).expect("get"),
            Some(value.clone())
        );
    }
    db.close().expect("close");
    let db = Bitcask::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(db.len(), 60);
    assert_eq!(db.get(b"key-059").expect("get"), Some(value.clone()));
    // Switched off: no window, `pwrite` only.
    drop(db);
    let db = Bitcask::open_with(dir.path(), options().mapped_appends(false)).expect("reopen");
    db.put(b"plain", b"write").expect("put");
    assert!(db.shared.writer_guard().expect("writer").map.is_none());
    assert_eq!(db.get(b"plain").expect("get"), Some(b"write".to_vec()));
}

/// A store whose key directory is as full as writes may make it (the test
/// build's limit: 56 of 64 chunks of 64 KiB in a shard) refuses a put of a
/// new key with `KeyDirectoryFull` before writing it, keeps serving and
/// updating the keys it holds, and opens again with exactly the keys it
/// acknowledged: with the hash seeded anew they fall into other shards,
/// which the last eighth of each shard has room for. Keys of 8,000 bytes,
/// eight to a chunk: a shard holds hundreds, so no shard of the reopened
/// store strays far from the average.
#[test]
fn a_full_key_directory_refuses_new_keys_before_they_reach_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || Options::new().max_key_size(8 * 1024);
    let key = |i: u32| {
        let mut key = vec![b'k'; 8_000];
        key[..4].copy_from_slice(&i.to_le_bytes());
        key
    };
    let db = Bitcask::open_with(dir.path(), options()).expect("open");
    let mut held = 0u32;
    let refused = loop {
        match db.put(&key(held), b"v") {
            Ok(_) => held += 1,
            Err(Error::KeyDirectoryFull) => break key(held),
            Err(other) => panic!("unexpected error: {other}"),
        }
        assert!(held < 64 * 8 * 16, "the limit was never reached");
    };
    let on_disk = db.stats().total_bytes;
    assert!(matches!(
        db.put(&refused, b"v"),
        Err(Error::KeyDirectoryFull)
    ));
    let batch_error = db.write_batch(
        Batch::new()
            .put(key(0), b"w".to_vec())
            .put(refused.clone(), b"v".to_vec()),
    );
    assert!(matches!(batch_error, Err(Error::KeyDirectoryFull)));
    assert_eq!(
        db.stats().total_bytes,
        on_disk,
        "nothing of a refused write reached the disk"
    );
    assert_eq!(value_of(&db, &refused), None);
    assert_eq!(
        value_of(&db, &key(0)),
        Some(b"v".to_vec()),
        "the batch wrote nothing"
    );
    // The keys it holds still take writes.
    db.put(&key(1), b"updated")
        .expect("an update needs no room");
    assert_eq!(db.len(), held as usize);
    db.close().expect("close");

    let db = Bitcask::open_with(dir.path(), options()).expect("reopen");
    assert_eq!(db.len(), held as usize);
    assert_eq!(value_of(&db, &refused), None);
    assert_eq!(value_of(&db, &key(1)), Some(b"updated".to_vec()));
    assert_eq!(value_of(&db, &key(held - 1)), Some(b"v".to_vec()));
    // A delete makes room again.
    db.delete(&key(0)).expect("delete");
    let mut added = 0;
    while added < 100 && db.put(&key(held + added), b"v").is_ok() {
        added += 1;
    }
    assert!(added > 0, "a deleted key's room was never given back");
}
