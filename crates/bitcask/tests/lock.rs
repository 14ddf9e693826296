//! One writer per directory: a second writer, in this process or another, is
//! refused with `Error::Locked` naming the holder; read-only opens work
//! beside the writer; the lock goes away with its holder.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use bitcask::{Bitcask, Error};

/// Env var that turns this test binary into the lock-holding child process.
const CHILD_DIR: &str = "BITCASK_TEST_LOCK_HOLDER_DIR";

#[test]
fn a_second_writer_in_the_same_process_is_refused_and_read_only_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = common::open(dir.path());
    writer.put(b"k", b"v").expect("put");

    match Bitcask::open_with(dir.path(), common::fast()) {
        Err(Error::Locked { pid, path }) => {
            assert_eq!(pid, Some(std::process::id()));
            assert_eq!(path, dir.path().join("LOCK"));
        }
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    let message = Bitcask::open(dir.path()).expect_err("locked").to_string();
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );

    let reader = Bitcask::open_with(dir.path(), common::fast().read_only(true)).expect("read-only");
    assert!(reader.is_read_only());
    assert_eq!(reader.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    // The read-only view is as of its open.
    writer.put(b"later", b"x").expect("put");
    assert_eq!(reader.get(b"later").expect("get"), None);
    assert!(matches!(reader.put(b"a", b"b"), Err(Error::ReadOnly)));
    assert!(matches!(reader.delete(b"k"), Err(Error::ReadOnly)));

    // Closing (or dropping) the writer releases the lock.
    writer.close().expect("close");
    let again = common::open(dir.path());
    drop(again);
    common::open(dir.path());
}

/// Not a test on its own: the child process of the cross-process test.
#[test]
#[ignore = "run by a_second_writer_in_another_process_is_refused"]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let _db = Bitcask::open_with(&dir, common::fast()).expect("child open");
    println!("LOCKED");
    std::io::stdout().flush().expect("flush");
    // Hold the lock until the parent closes our stdin.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn a_second_writer_in_another_process_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = common::child_test("lock_holder_child")
        .env(CHILD_DIR, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        let n = out.read_line(&mut line).expect("read child");
        assert!(n > 0, "child exited before taking the lock");
    }

    let result = Bitcask::open_with(dir.path(), common::fast());
    let child_pid = child.id();
    drop(child.stdin.take()); // let the child exit
    let status = child.wait().expect("wait child");
    match result {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(child_pid)),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    assert!(status.success());
    // The child is gone, and so is its lock.
    common::open(dir.path());
}
