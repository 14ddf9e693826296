//! A write that fails half-way (here: the file-size limit, `RLIMIT_FSIZE`,
//! which makes `pwrite` stop short and then fail like a full disk) is
//! reported, cut back off the file, and leaves the store usable: earlier
//! writes stay readable, later writes that fit succeed, and a reopen finds no
//! torn tail.
//!
//! The limit applies to the whole process, so the failing part runs in a
//! child process (this test binary, re-run on one ignored test).

mod common;

use bitcask::{Bitcask, Error};

const CHILD_DIR: &str = "BITCASK_TEST_WRITE_FAILURE_DIR";

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:02}").into_bytes()
}

#[test]
#[ignore = "run by a_failed_write_is_cut_off_and_the_store_stays_usable"]
fn write_failure_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    // `pwrite` for every record: a file-size limit stops a `pwrite` even
    // inside space the file already has, but not a copy into the file's
    // map (mapped appends), which writes that space as a page cache would.
    let db = Bitcask::open_with(&dir, common::fast().mapped_appends(false)).expect("open");
    for i in 0..10 {
        db.put(&key(i), &[i as u8; 200])
            .expect("put before the limit");
    }
    let active = common::active_file(&dir);
    // Where the records end (the file is preallocated past it).
    let len_before = common::FILE_HEADER
        + (0..10)
            .map(|i| common::record_len(&key(i), &[i as u8; 200]))
            .sum::<u64>();
    assert_eq!(db.stats().total_bytes, len_before);

    // From here writes may reach only 100 bytes past the records: the next
    // record (235 bytes) is written in part, then refused, and the file is
    // cut back to its last record (preallocated space and all). A later
    // small record still fits: preallocation falls back to what the record
    // needs.
    // SAFETY: plain libc calls with valid arguments and pointers to a local
    // struct. Ignoring SIGXFSZ makes the over-limit write return EFBIG
    // instead of killing the process.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = len_before + 100;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }

    match db.put(b"too-far", &[7u8; 200]) {
        Err(Error::Io { path, .. }) => assert_eq!(path, active),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&active).expect("meta").len(),
        len_before,
        "the partial record must be cut off"
    );
    assert_eq!(db.get(b"too-far").expect("get"), None);
    for i in 0..10 {
        assert_eq!(db.get(&key(i)).expect("get"), Some(vec![i as u8; 200]));
    }
    // Not poisoned: a write that fits goes through.
    db.put(b"fits", b"small")
        .expect("a small write after the failure");
    db.close().expect("close");
    println!("CHILD-OK");
}

#[test]
fn a_failed_write_is_cut_off_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::run_child_to_completion("write_failure_child", CHILD_DIR, dir.path());

    let db = common::open(dir.path());
    assert_eq!(db.len(), 11);
    assert_eq!(
        db.get(b"fits").expect("get").as_deref(),
        Some(&b"small"[..])
    );
    assert_eq!(db.get(b"too-far").expect("get"), None);
    let torn = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "torn"))
        })
        .count();
    assert_eq!(torn, 0, "nothing torn was left for recovery to cut");
}
