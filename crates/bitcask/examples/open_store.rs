//! Opens an existing store, reports how long the open took, and closes it:
//! for timing and profiling recovery (`perf record` around it).
//!
//! `cargo run --release -p bitcask --example open_store -- DIR [scan]`
//! (`scan` ignores hint files, as after losing them).
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Bitcask, Options, SyncPolicy};

fn main() -> bitcask::Result<()> {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: open_store DIR [scan]");
        std::process::exit(2);
    };
    let use_hints = std::env::args().nth(2).as_deref() != Some("scan");
    let t = Instant::now();
    let db = Bitcask::open_with(
        &dir,
        Options::new().sync(SyncPolicy::Never).use_hints(use_hints),
    )?;
    let opened = t.elapsed();
    println!("open: {} keys in {opened:?} (hints: {use_hints})", db.len());
    db.close()
}
