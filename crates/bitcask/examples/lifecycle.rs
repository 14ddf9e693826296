//! Measures the lifecycle costs of a large store: open time with and without
//! hint files, key-directory memory per key, and a merge (throughput, and the
//! longest stall a concurrent writer sees while it runs).
//!
//! Each phase runs in its own process, so that memory is measured fresh:
//!
//! ```text
//! cargo run --release -p bitcask --example lifecycle -- fill KEYS DIR
//! cargo run --release -p bitcask --example lifecycle -- open DIR scan
//! cargo run --release -p bitcask --example lifecycle -- open DIR hints
//! cargo run --release -p bitcask --example lifecycle -- merge DIR
//! ```
//!
//! `fill` makes the store: KEYS keys of 16 bytes with 100-byte values, then
//! every other key overwritten once (so about a third of the bytes are
//! dead), in 64 MiB data files, and waits for the hint files of all sealed
//! files.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bitcask::{Bitcask, Options, SyncPolicy};

mod support;

use support::{key, rss_kib};

fn count(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .count()
        })
        .unwrap_or(0)
}

fn options() -> Options {
    Options::new()
        .sync(SyncPolicy::Never)
        .max_file_size(64 << 20)
}

const VALUE: [u8; 100] = [0x5A; 100];

/// Put latencies of one phase of the merge run.
#[derive(Debug, Clone, Copy, Default)]
struct PhaseStats {
    puts: u64,
    total: Duration,
    worst: Duration,
    over_1ms: u64,
    over_10ms: u64,
}

impl PhaseStats {
    fn add(&mut self, took: Duration) {
        self.puts += 1;
        self.total += took;
        self.worst = self.worst.max(took);
        self.over_1ms += u64::from(took > Duration::from_millis(1));
        self.over_10ms += u64::from(took > Duration::from_millis(10));
    }
}

fn main() -> bitcask::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "fill" => fill(arg(1).parse().unwrap_or(1_000_000), Path::new(arg(2))),
        "open" => open(Path::new(arg(1)), arg(2) == "hints"),
        "merge" => merge(Path::new(arg(1))),
        _ => {
            eprintln!("usage: lifecycle fill KEYS DIR | open DIR scan|hints | merge DIR");
            Ok(())
        }
    }
}

fn fill(keys: u64, dir: &Path) -> bitcask::Result<()> {
    let value = VALUE;
    let db = Bitcask::open_with(dir, options())?;
    let t = Instant::now();
    for i in 0..keys {
        db.put(&key(i), &value)?;
    }
    for i in (0..keys).step_by(2) {
        db.put(&key(i), &value)?;
    }
    println!(
        "fill: {keys} keys + {} overwrites in {:.1?}",
        keys / 2,
        t.elapsed()
    );
    let sealed = count(dir, "data") - 1;
    let t = Instant::now();
    while count(dir, "hint") < sealed {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "hint files of {sealed} sealed files written {:.1?} after the fill",
        t.elapsed()
    );
    db.close()?;
    let data_bytes: u64 = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "data"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    println!("data files: {:.0} MB", data_bytes as f64 / 1e6);
    Ok(())
}

fn open(dir: &Path, use_hints: bool) -> bitcask::Result<()> {
    if use_hints {
        // For comparison: the cost of reading the hint files into memory.
        let t = Instant::now();
        let mut bytes = 0usize;
        for entry in std::fs::read_dir(dir).expect("dir").filter_map(|e| e.ok()) {
            if entry.path().extension().is_some_and(|x| x == "hint") {
                bytes += std::fs::read(entry.path()).map_or(0, |b| b.len());
            }
        }
        println!(
            "reading the hint files alone ({:.0} MB): {:.0} ms",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let rss = rss_kib();
    let t = Instant::now();
    let db = Bitcask::open_with(dir, options().use_hints(use_hints))?;
    let took = t.elapsed();
    let grew = rss_kib().saturating_sub(rss);
    let keys = db.len() as u64;
    println!(
        "open {} hints: {:.0} ms, {} keys; RSS grew {:.1} bytes per key",
        if use_hints { "with" } else { "without" },
        took.as_secs_f64() * 1e3,
        keys,
        grew as f64 * 1024.0 / keys.max(1) as f64
    );
    db.close()
}

fn merge(dir: &Path) -> bitcask::Result<()> {
    let value = VALUE;
    let db = Arc::new(Bitcask::open_with(dir, options())?);
    let keys = db.len() as u64;
    // Phase 0: the writer alone for as long as the merge will take (about);
    // phase 1: the writer beside the merge. Rotations (which fsync a full
    // 64 MiB file) happen in both, so phase 0 is the baseline to compare.
    let phase = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, phase) = (Arc::clone(&db), Arc::clone(&phase));
        std::thread::spawn(move || -> bitcask::Result<[PhaseStats; 2]> {
            let mut stats = [PhaseStats::default(); 2];
            let mut n = 0u64;
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p > 1 {
                    return Ok(stats);
                }
                let t = Instant::now();
                db.put(&key(n * 7 % keys), &value)?;
                let took = t.elapsed();
                stats[p].add(took);
                n += 1;
                // A steady foreground load, not a flood.
                if n.is_multiple_of(100) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let baseline = Duration::from_secs_f64(keys as f64 / 700_000.0).max(Duration::from_secs(1));
    std::thread::sleep(baseline);
    phase.store(1, Ordering::Relaxed);
    let report = db.merge()?;
    phase.store(2, Ordering::Relaxed);
    let stats = writer.join().expect("writer thread")?;
    let secs = report.duration.as_secs_f64();
    println!(
        "merge: {} files -> {} files in {:.2} s; read {:.0} MB/s, wrote {:.0} MB/s, reclaimed {:.0} MB",
        report.files_merged,
        report.files_written,
        secs,
        report.bytes_read as f64 / 1e6 / secs,
        report.bytes_written as f64 / 1e6 / secs,
        report.bytes_reclaimed() as f64 / 1e6
    );
    for (name, s) in ["writer alone", "writer beside the merge"]
        .iter()
        .zip(stats)
    {
        println!(
            "{name}: {} puts, mean {:.1} µs, longest {:.2} ms; {} over 1 ms, {} over 10 ms",
            s.puts,
            s.total.as_secs_f64() * 1e6 / s.puts.max(1) as f64,
            s.worst.as_secs_f64() * 1e3,
            s.over_1ms,
            s.over_10ms
        );
    }
    Ok(())
}
