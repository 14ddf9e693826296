//! `server::Background`: a server on its own thread, for programs and tests
//! without a runtime.

use std::time::Duration;

use bitcask_server::config::Config;
use bitcask_server::server::{Background, ServeError};

fn config(dir: &std::path::Path) -> Config {
    let dir = dir.to_str().expect("utf-8");
    Config::from_args(["bitcask-server", "--port", "0", "--data-dir", dir]).expect("config")
}

#[test]
fn it_serves_until_stopped_and_then_releases_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Background::start(config(dir.path())).expect("start");
    assert!(server.wait_until_open(Duration::from_secs(30)));
    assert_ne!(server.addr().port(), 0);
    // The store is held: a second writer is refused.
    assert!(matches!(
        bitcask::Bitcask::open(dir.path()),
        Err(bitcask::Error::Locked { .. })
    ));
    server.stop().expect("clean stop");
    bitcask::Bitcask::open(dir.path())
        .expect("closed and unlocked after stop")
        .close()
        .expect("close");
}

#[test]
fn a_store_that_cannot_open_stops_the_server_with_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = bitcask::Bitcask::open(dir.path()).expect("open");
    let server = Background::start(config(dir.path())).expect("start");
    assert!(!server.wait_until_open(Duration::from_secs(30)));
    match server.stop() {
        Err(ServeError::Open(bitcask::Error::Locked { .. })) => {}
        other => panic!("expected the lock error, got {other:?}"),
    }
    holder.close().expect("close");
}
