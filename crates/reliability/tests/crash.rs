//! A short run of the kill -9 harness under each sync policy (the long run
//! is a documented command: docs/RELIABILITY.md).

use std::process::Command;

fn crash_run(sync: &str, cycles: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_bitcask-crash"))
        .args([
            "run", "--cycles", cycles, "--sync", sync, "--max-ms", "400", "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run bitcask-crash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("every acknowledged write survived"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It did work: writes were acknowledged and some were in flight.
    assert!(stdout.contains("batches;"), "{stdout}");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write_with_sync_always() {
    crash_run("always", "4");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write_with_an_interval() {
    // A process crash (not a power cut) loses nothing under any policy.
    crash_run("100ms", "3");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write_with_never() {
    crash_run("never", "3");
}
