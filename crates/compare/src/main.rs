//! `bitcask-compare`: this engine side by side with other embedded stores
//! and an in-memory reference (a `HashMap` behind a lock, no disk), on the
//! same workloads, in the same run, alternating, reporting each one's
//! median and its ratio to bitcask.
//!
//! ```text
//! cargo run --release -p bitcask-compare -- --keys 1000000 --rounds 3
//! ```
//!
//! Contenders so far: bitcask, emdb (a Bitcask-style Rust store) and the
//! reference; redb, sled and fjall are to be added (docs/BENCHMARKS.md).

mod contenders;

use std::time::{Duration, Instant};

use clap::Parser;

use crate::contenders::{Contender, Kind};

/// Side-by-side benchmark.
#[derive(Debug, Parser)]
#[command(name = "bitcask-compare")]
struct Args {
    /// Keys per workload.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Alternating rounds (each contender runs every workload once per round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only these contenders (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The workloads, in report order.
const WORKLOADS: &[&str] = &[
    "sequential fill",
    "random fill",
    "random reads, 1 thread",
    "random reads, 2 threads",
    "reads of missing keys",
];

fn main() {
    let args = Args::parse();
    let kinds: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| args.only.is_empty() || args.only.iter().any(|o| o == k.name()))
        .collect();
    println!(
        "bitcask-compare: {} keys of 16 bytes, {}-byte values, {} rounds; contenders: {}",
        args.keys,
        args.value_size,
        args.rounds,
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let keys = Keys::new(args.keys);
    let value = vec![b'v'; args.value_size];
    // results[kind][workload] = ops/s per round
    let mut results = vec![vec![Vec::new(); WORKLOADS.len()]; kinds.len()];
    for round in 0..args.rounds {
        // Rotate the order each round, so no contender always runs first.
        for i in 0..kinds.len() {
            let k = (i + round) % kinds.len();
            let rates = run_all(kinds[k], &keys, &value);
            for (w, rate) in rates.into_iter().enumerate() {
                results[k][w].push(rate);
            }
            eprintln!("round {}: {} done", round + 1, kinds[k].name());
        }
    }
    print_table(&kinds, &results);
}

/// The keys: `n` present ones in sequential and shuffled order, and `n`
/// absent ones.
struct Keys {
    sequential: Vec<[u8; 16]>,
    shuffled: Vec<[u8; 16]>,
    missing: Vec<[u8; 16]>,
}

impl Keys {
    fn new(n: usize) -> Self {
        let key = |i: u64| {
            let mut k = [0u8; 16];
            k.copy_from_slice(format!("{i:016x}").as_bytes());
            k
        };
        let sequential: Vec<[u8; 16]> = (0..n as u64).map(key).collect();
        let mut shuffled = sequential.clone();
        // Fisher-Yates with SplitMix64: a fixed, reproducible order.
        let mut state = 0x5EED_u64;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let j = ((z ^ (z >> 31)) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        // A `z` is never a hex digit: these were never written.
        let missing = shuffled
            .iter()
            .map(|k| {
                let mut m = *k;
                m[0] = b'z';
                m
            })
            .collect();
        Self {
            sequential,
            shuffled,
            missing,
        }
    }
}

/// Operations per second of `ops` operations taking `elapsed`.
fn rate(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Every workload once for `kind`, each in a fresh store.
fn run_all(kind: Kind, keys: &Keys, value: &[u8]) -> Vec<f64> {
    let mut rates = Vec::new();
    // Sequential fill, in its own store.
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = kind.open(dir.path());
        let started = Instant::now();
        for k in &keys.sequential {
            store.put(k, value);
        }
        store.flush();
        rates.push(rate(keys.sequential.len(), started.elapsed()));
    }
    // Random fill, then the reads on that store.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = kind.open(dir.path());
    let started = Instant::now();
    for k in &keys.shuffled {
        store.put(k, value);
    }
    store.flush();
    rates.push(rate(keys.shuffled.len(), started.elapsed()));
    rates.push(reads(store.as_ref(), &keys.shuffled, 1, true));
    rates.push(reads(store.as_ref(), &keys.shuffled, 2, true));
    rates.push(reads(store.as_ref(), &keys.missing, 1, false));
    rates
}

/// Reads every key of `keys` (split among `threads`), checking each is
/// found (or not); returns reads per second.
fn reads(store: &dyn Contender, keys: &[[u8; 16]], threads: usize, present: bool) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(keys.len().div_ceil(threads).max(1)) {
            scope.spawn(move || {
                let mut bytes = 0usize;
                for k in chunk {
                    let found = store.read(k);
                    assert_eq!(found.is_some(), present, "lookup gave the wrong answer");
                    bytes += found.unwrap_or(0);
                }
                std::hint::black_box(bytes);
            });
        }
    });
    rate(keys.len(), started.elapsed())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn print_table(kinds: &[Kind], results: &[Vec<Vec<f64>>]) {
    let base = kinds.iter().position(|k| *k == Kind::Bitcask);
    print!("\n| workload (median ops/s) |");
    for k in kinds {
        print!(" {} |", k.name());
    }
    println!();
    print!("| --- |");
    for _ in kinds {
        print!(" ---: |");
    }
    println!();
    for (w, name) in WORKLOADS.iter().enumerate() {
        print!("| {name} |");
        let ours = base.map(|b| median(&results[b][w]));
        for (k, _) in kinds.iter().enumerate() {
            let m = median(&results[k][w]);
            match ours {
                Some(o) if Some(k) != base => print!(" {:.0} ({:.2}x bitcask) |", m, m / o),
                _ => print!(" {m:.0} |"),
            }
        }
        println!();
    }
}
