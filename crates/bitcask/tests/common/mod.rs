//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitcask::{Bitcask, Options, SyncPolicy};

/// Options for tests: no fsync per write (tests do not simulate power loss),
/// small files unless a test sets its own size.
pub fn fast() -> Options {
    Options::new().sync(SyncPolicy::Never)
}

pub fn open(dir: &Path) -> Bitcask {
    Bitcask::open_with(dir, fast()).expect("open store")
}

/// Files in `dir` whose extension is `ext`, sorted by name (so by id).
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Data files in `dir`, ascending by id.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "data")
}

/// Hint files in `dir`, ascending by id.
pub fn hint_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "hint")
}

/// Every live key and its value, read through `get` (so each listed key
/// must read back).
pub fn contents(db: &Bitcask) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.keys()
        .map(|k| {
            let v = db.get(&k).expect("get").expect("listed key reads back");
            (k, v)
        })
        .collect()
}

/// The newest (active) data file.
pub fn active_file(dir: &Path) -> PathBuf {
    data_files(dir).pop().expect("at least one data file")
}

/// Copies every file of `from` into a fresh directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Record length for a key and value (29-byte header, see docs/FORMAT.md).
pub fn record_len(key: &[u8], value: &[u8]) -> u64 {
    29 + key.len() as u64 + value.len() as u64
}

/// Length of a data file header.
pub const FILE_HEADER: u64 = 32;

/// A command that re-runs this test binary on the one (ignored) test
/// `name`, for tests whose other half must be a separate process.
pub fn child_test(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// A child process that is killed and reaped when the guard is dropped, so
/// that a failing test does not leave it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the ignored test `name` in a child process with `env_var` set to
/// `dir`, and fails (with the child's output) unless it prints `CHILD-OK`.
pub fn run_child_to_completion(name: &str, env_var: &str, dir: &Path) {
    let output = child_test(name)
        .env(env_var, dir)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("CHILD-OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
