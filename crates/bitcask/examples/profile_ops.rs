//! Drives puts and gets over 1,000,000 keys for profiling (`perf record`)
//! and prints the rate of each phase and the process's memory per key.
//!
//! `cargo run --release -p bitcask --example profile_ops -- [DIR] [KEYS] [pwrite]`
//! (KEYS defaults to 1,000,000; DIR to a temporary directory, `-` for one;
//! `pwrite` turns mapped appends off, for before-and-after runs).
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Bitcask, Options, SyncPolicy};

mod support;

use support::{key, rss_kib};

const DEFAULT_KEYS: u64 = 1_000_000;

fn main() -> bitcask::Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = match std::env::args().nth(1) {
        Some(d) if d != "-" => std::path::PathBuf::from(d),
        _ => tmp.path().to_path_buf(),
    };
    let keys: u64 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_KEYS);
    let mapped = std::env::args().nth(3).as_deref() != Some("pwrite");
    let options = || {
        Options::new()
            .sync(SyncPolicy::Never)
            .mapped_appends(mapped)
    };
    let value = [0x5Au8; 100];
    let rss_before = rss_kib();
    let db = Bitcask::open_with(&dir, options())?;
    let t = Instant::now();
    for i in 0..keys {
        db.put(&key(i), &value)?;
    }
    let fill = t.elapsed();
    let rss_after = rss_kib();
    println!(
        "sequential fill: {:.0} puts/s; RSS grew {} KiB = {:.1} bytes per key (16-byte keys)",
        keys as f64 / fill.as_secs_f64(),
        rss_after - rss_before,
        (rss_after - rss_before) as f64 * 1024.0 / keys as f64
    );
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % keys
    };
    let n = 2_000_000u64;
    let t = Instant::now();
    for _ in 0..n {
        db.put(&key(next()), &value)?;
    }
    println!(
        "random overwrite: {:.0} puts/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut found = 0u64;
    for _ in 0..n {
        found += db.get(&key(next()))?.map_or(0, |v| v.len() as u64);
    }
    println!(
        "random get: {:.0} gets/s ({found} bytes)",
        n as f64 / t.elapsed().as_secs_f64()
    );
    // The read the server and the comparison benchmark use: the verified
    // value lent from the data file's map, no copy and no allocation.
    let reads = 4 * n;
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..reads {
        sum += db
            .get_with(&key(next()), |v| u64::from(v[0]) + v.len() as u64)?
            .unwrap_or(0);
    }
    println!(
        "random get_with: {:.0} gets/s ({sum})",
        reads as f64 / t.elapsed().as_secs_f64()
    );
    // Keys that were never written: the key directory alone answers.
    let t = Instant::now();
    let mut absent = 0u64;
    for _ in 0..reads {
        absent += u64::from(db.get_with(&key(keys + next()), |_| ())?.is_none());
    }
    println!(
        "random get_with of missing keys: {:.0} gets/s ({absent} missing)",
        reads as f64 / t.elapsed().as_secs_f64()
    );
    db.close()?;
    let t = Instant::now();
    let db = Bitcask::open_with(&dir, options())?;
    println!(
        "reopen ({} keys, from hint files): {:?}",
        db.len(),
        t.elapsed()
    );
    db.close()
}
