//! `bitcask-soak`: mixed load (gets, overwrites, deletes, batches) against
//! a server with background merges, for a fixed time. Reports errors,
//! throughput, the server's resident memory and the store's disk use over
//! time, and fails unless errors are zero, memory levels off, and disk use
//! stays within live data plus the merge thresholds. See docs/RELIABILITY.md.
//!
//! ```text
//! bitcask-soak run --secs 600
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bitcask_client::{Batch, blocking};
use bitcask_reliability::process::{self, Server};
use bitcask_reliability::rng::{self, Rng};
use clap::{Parser, Subcommand};

/// Long mixed load with background merges.
#[derive(Debug, Parser)]
#[command(name = "bitcask-soak", version)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the load and report.
    Run(SoakArgs),
    /// (Internal) run the server: prints `LISTENING <addr>` once bound.
    #[command(hide = true)]
    Serve {
        /// Flags for the server, as `bitcask-server` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        flags: Vec<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct SoakArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// Seconds between reports.
    #[arg(long, default_value_t = 10)]
    report_every: u64,
    /// Client threads.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Distinct keys (the live data is about keys x 1 KiB).
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Data file size.
    #[arg(long, default_value_t = 4 << 20)]
    max_file_size: u64,
    /// Dead bytes that start a merge.
    #[arg(long, default_value_t = 16 << 20)]
    merge_dead_bytes: u64,
    /// How often the server checks whether to merge.
    #[arg(long, default_value = "2s")]
    merge_check_interval: String,
    /// Directory for the store (a temporary one, removed after, if not given).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Mode::Serve { flags } => process::serve(flags),
        Mode::Run(args) => match soak(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("bitcask-soak: FAILED: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Operations done and failed, shared by the clients.
#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    errors: AtomicU64,
    /// Bytes of keys and values written.
    written: AtomicU64,
}

/// One line of the report.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_secs: u64,
    ops_per_sec: u64,
    errors: u64,
    rss_kib: u64,
    disk_bytes: u64,
    live_bytes: u64,
    merges: u64,
    /// Bytes written per second over the interval.
    written_per_sec: u64,
}

fn soak(args: &SoakArgs) -> Result<(), String> {
    let seed = rng::seed_from_clock();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("bitcask-soak-{seed}")));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let flags = vec![
        "--data-dir".to_string(),
        dir.display().to_string(),
        "--max-file-size".into(),
        args.max_file_size.to_string(),
        "--merge-check-interval".into(),
        args.merge_check_interval.clone(),
        "--merge-dead-bytes".into(),
        args.merge_dead_bytes.to_string(),
    ];
    let server = Server::start(&flags)?;
    println!(
        "bitcask-soak: {} s, {} clients, {} keys, data files of {} bytes, merge at {} dead bytes; dir {}",
        args.secs,
        args.clients,
        args.keys,
        args.max_file_size,
        args.merge_dead_bytes,
        dir.display()
    );
    println!("  secs     ops/s  errors   rss KiB   disk bytes   live bytes  merges  written B/s");
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let (url, counters, stop) =
                (server.url.clone(), Arc::clone(&counters), Arc::clone(&stop));
            let (keys, seed) = (args.keys, seed.wrapping_add(i as u64));
            std::thread::spawn(move || load(&url, keys, seed, &counters, &stop))
        })
        .collect();
    let stats_client = blocking::Client::new(&server.url).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last_ops = 0;
    let mut last_written = 0;
    while started.elapsed() < Duration::from_secs(args.secs) {
        std::thread::sleep(Duration::from_secs(args.report_every));
        let ops = counters.ops.load(Ordering::Relaxed);
        let written = counters.written.load(Ordering::Relaxed);
        let stats = stats_client.stats().map_err(|e| format!("stats: {e}"))?;
        let sample = Sample {
            at_secs: started.elapsed().as_secs(),
            ops_per_sec: (ops - last_ops) / args.report_every.max(1),
            errors: counters.errors.load(Ordering::Relaxed),
            rss_kib: rss_kib(server.pid()),
            disk_bytes: disk_use(&dir),
            live_bytes: stats.live_bytes,
            merges: stats.merges_completed,
            written_per_sec: (written - last_written) / args.report_every.max(1),
        };
        last_ops = ops;
        last_written = written;
        println!(
            "{:>6} {:>9} {:>7} {:>9} {:>12} {:>12} {:>7} {:>12}",
            sample.at_secs,
            sample.ops_per_sec,
            sample.errors,
            sample.rss_kib,
            sample.disk_bytes,
            sample.live_bytes,
            sample.merges,
            sample.written_per_sec
        );
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    server.kill();
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    judge(&samples, args)
}

/// The verdict: zero errors; memory levels off (the last third's peak
/// within 20% of the middle third's); disk use within live data plus the
/// merge threshold plus a few files being written or merged.
fn judge(samples: &[Sample], args: &SoakArgs) -> Result<(), String> {
    let last = samples.last().ok_or("no report was taken")?;
    let mut problems = Vec::new();
    if last.errors > 0 {
        problems.push(format!("{} requests failed", last.errors));
    }
    let third = samples.len() / 3;
    // Memory rises and falls with each merge; peaks over fewer than five
    // reports per third say nothing.
    if third < 5 {
        println!("bitcask-soak: memory not judged: fewer than 15 reports");
    } else {
        let peak = |s: &[Sample]| s.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let (middle, end) = (
            peak(&samples[third..2 * third]),
            peak(&samples[2 * third..]),
        );
        if end as f64 > middle as f64 * 1.2 {
            problems.push(format!(
                "memory still growing: peak {middle} KiB in the middle third, {end} KiB in the last"
            ));
        }
    }
    let check_secs = bitcask_server::config::parse_duration(&args.merge_check_interval)
        .map_or(60, |d| d.as_secs().max(1));
    for s in &samples[third..] {
        // Live data; once more while a merge writes its outputs before it
        // deletes its inputs; the dead bytes that start a merge; what the
        // clients write in two check intervals (one until the check, one
        // while the merge runs); a few data files being filled.
        let bound = 2 * s.live_bytes
            + args.merge_dead_bytes
            + 2 * check_secs * s.written_per_sec
            + 4 * args.max_file_size;
        if s.disk_bytes > bound {
            problems.push(format!(
                "disk use {} bytes at {} s exceeds 2 x live {} + merge threshold + two check intervals of writes ({} B/s) + 4 files = {bound}",
                s.disk_bytes, s.at_secs, s.live_bytes, s.written_per_sec
            ));
        }
    }
    let merges = last.merges;
    if merges == 0 {
        problems.push("no background merge ran".into());
    }
    if problems.is_empty() {
        let mean = samples.iter().map(|s| s.ops_per_sec).sum::<u64>() / samples.len() as u64;
        println!(
            "bitcask-soak: OK: 0 errors, {mean} ops/s on average, {merges} merges, memory and disk level"
        );
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// One client: 55% gets, 30% puts of 100-2,000 bytes, 10% deletes, 5%
/// batches of five puts, over `keys` keys.
fn load(url: &str, keys: u64, seed: u64, counters: &Counters, stop: &AtomicBool) {
    let Ok(client) = blocking::Client::from_builder(
        bitcask_client::Client::builder(url)
            .retries(0)
            .timeout(Duration::from_secs(30)),
    ) else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut rng = Rng::new(seed);
    let value = |rng: &mut Rng| "v".repeat(100 + rng.below(1900) as usize);
    while !stop.load(Ordering::Relaxed) {
        let key = format!("soak/{:08}", rng.below(keys));
        let roll = rng.below(100);
        let ok = if roll < 55 {
            client.get_bytes(&key).is_ok()
        } else if roll < 85 {
            let v = value(&mut rng);
            counters
                .written
                .fetch_add((key.len() + v.len()) as u64, Ordering::Relaxed);
            client.put(&key, v).is_ok()
        } else if roll < 95 {
            counters
                .written
                .fetch_add(key.len() as u64, Ordering::Relaxed);
            client.delete(&key).is_ok()
        } else {
            let mut batch = Batch::new();
            for _ in 0..5 {
                let (k, v) = (format!("soak/{:08}", rng.below(keys)), value(&mut rng));
                counters
                    .written
                    .fetch_add((k.len() + v.len()) as u64, Ordering::Relaxed);
                batch = batch.put(k, v);
            }
            client.batch(&batch, false).is_ok()
        };
        let counter = if ok { &counters.ops } else { &counters.errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The resident memory of process `pid`, from /proc (0 where there is none).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of the files in `dir` (not recursive: a store has no subdirectories
/// unless repaired).
fn disk_use(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
