//! A store of many data files keeps one file descriptor open, not one per
//! file: sealed files are read through their maps. A child process limits
//! itself to 64 descriptors and opens, reads, writes (rotating, with hint
//! files written behind), merges, backs up and reopens a store of about 500
//! data files.

mod common;

use bitcask::Bitcask;

const CHILD_DIR: &str = "BITCASK_TEST_MANY_FILES_DIR";
const KEYS: usize = 1_000;

fn opts() -> bitcask::Options {
    common::fast().max_file_size(200)
}

fn value(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8; 40 + i % 50]
}

#[test]
#[ignore = "run by a_store_of_hundreds_of_files_needs_few_descriptors"]
fn many_files_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    // SAFETY: plain libc calls with valid pointers to a local struct.
    #[allow(unsafe_code)]
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = 64;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let db = Bitcask::open_with(&dir, opts()).expect("open under a 64-descriptor limit");
    for i in 0..KEYS {
        let got = db.get(format!("key-{i}").as_bytes()).expect("get");
        assert_eq!(got, Some(value(i)));
    }
    // Writing on rotates through hundreds more files; overwriting half the
    // keys gives merge work on every old file.
    for i in KEYS..2 * KEYS {
        db.put(format!("key-{i}").as_bytes(), &value(i))
            .expect("put");
    }
    for i in (0..KEYS).step_by(2) {
        db.put(format!("key-{i}").as_bytes(), &value(i))
            .expect("overwrite");
    }
    let report = db.merge().expect("merge under a 64-descriptor limit");
    assert!(report.files_merged > 300, "{report:?}");
    let backup = std::path::Path::new(&dir).join("backup");
    db.backup(&backup)
        .expect("backup under a 64-descriptor limit");
    db.close().expect("close");
    let db = Bitcask::open_with(&dir, opts().read_only(true)).expect("read-only reopen");
    assert_eq!(db.len(), 2 * KEYS);
    assert_eq!(db.get(b"key-1999").expect("get"), Some(value(1999)));
    let copy = Bitcask::open_with(&backup, opts().read_only(true)).expect("open the backup");
    assert_eq!(copy.len(), 2 * KEYS);
    assert_eq!(copy.get(b"key-0").expect("get"), Some(value(0)));
    println!("CHILD-OK");
}

#[test]
fn a_store_of_hundreds_of_files_needs_few_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Bitcask::open_with(dir.path(), opts()).expect("open");
        for i in 0..KEYS {
            db.put(format!("key-{i}").as_bytes(), &value(i))
                .expect("put");
        }
    }
    let files = common::data_files(dir.path()).len();
    assert!(files > 300, "expected hundreds of files, got {files}");

    common::run_child_to_completion("many_files_child", CHILD_DIR, dir.path());
}
