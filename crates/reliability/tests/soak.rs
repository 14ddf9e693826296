//! A short soak (the documented run is 10 minutes: docs/RELIABILITY.md).

use std::process::Command;

#[test]
fn a_short_soak_has_no_errors_merges_and_stays_within_its_disk_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_bitcask-soak"))
        .args([
            "run",
            "--secs",
            "6",
            "--report-every",
            "1",
            "--clients",
            "4",
            "--keys",
            "2000",
            "--max-file-size",
            "262144",
            "--merge-dead-bytes",
            "1048576",
            "--merge-check-interval",
            "200ms",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run bitcask-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("bitcask-soak: OK: 0 errors"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One report line per second.
    assert!(
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count()
            >= 5,
        "{stdout}"
    );
}
