//! A real server for the client's tests, started on a plain thread (it
//! runs its own runtime, which cannot start inside a test's).
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::time::Duration;

use bitcask_server::config::Config;
use bitcask_server::server::Background;

/// A server on `port` (0: any free one) over `dir`, with extra flags, once
/// its store is open.
pub fn start(dir: &Path, port: u16, flags: &[&str]) -> Background {
    let mut argv = vec![
        "bitcask-server".to_string(),
        "--port".into(),
        port.to_string(),
        "--data-dir".into(),
        dir.to_str().expect("utf-8").to_string(),
    ];
    argv.extend(flags.iter().map(|f| f.to_string()));
    std::thread::spawn(move || {
        let config = Config::from_args(argv).expect("config");
        let server = Background::start(config).expect("start");
        assert!(
            server.wait_until_open(Duration::from_secs(30)),
            "store did not open"
        );
        server
    })
    .join()
    .expect("server thread")
}

/// Stops `server` and waits for it (from any thread).
pub fn stop(server: Background) {
    std::thread::spawn(move || server.stop().expect("clean stop"))
        .join()
        .expect("stop thread");
}
