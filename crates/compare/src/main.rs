//! `bitcask-compare`: this engine side by side with redb, sled, fjall, emdb
//! and an in-memory reference (a `HashMap` behind a lock, no disk), on the
//! same workloads, in the same run, alternating, reporting each one's
//! median and its ratio to bitcask.
//!
//! ```text
//! cargo run --release -p bitcask-compare -- --keys 1000000 --rounds 3 --once redb
//! ```
//!
//! Every contender runs in a child process of its own (this binary, called
//! with `--child`), once per round, so peak memory is its own and no store's
//! leftovers (threads, page cache it dirtied, freed heap) weigh on the next.
//! The contenders' order rotates each round.

mod contenders;
mod keys;
mod values;
mod workloads;
mod ycsb;

use std::collections::HashMap;
use std::process::Command;

use clap::Parser;

use crate::contenders::Kind;

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
    /// Value contents: `random` (distinct, incompressible) or `repeated`
    /// (one byte repeated; compresses to almost nothing).
    #[arg(long, value_enum, default_value_t = values::ValueKind::Random)]
    values: values::ValueKind,
    /// Durable puts by the single writer (sixteen writers do four times as
    /// many between them).
    #[arg(long, default_value_t = 2_000)]
    durable_ops: usize,
    /// Seconds after which the overwrite stops (its rate is then of the part
    /// done; the table shows the fraction).
    #[arg(long, default_value_t = 120)]
    overwrite_secs: u64,
    /// YCSB core workloads A, B, C and F (zipfian 0.99) on the loaded
    /// store: operations per workload and thread count; 0 skips them.
    #[arg(long, default_value_t = 1_000_000)]
    ycsb_ops: usize,
    /// Seconds after which a YCSB workload stops (its rate is then of the
    /// part done).
    #[arg(long, default_value_t = 30)]
    ycsb_secs: u64,
    /// Reads read every byte of each value, as a caller that uses the
    /// value does (default: its first and last byte only).
    #[arg(long)]
    read_whole: bool,
    /// Alternating rounds (each contender runs every workload once per round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only these contenders (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// These contenders run in the first round only (comma-separated; for
    /// one whose round takes many minutes: redb's overwrite of 1,000,000
    /// keys at one write transaction per put). The table marks them.
    #[arg(long, value_delimiter = ',')]
    once: Vec<String>,
    /// Internal: run the workloads of one contender (`NAME`) or its memory
    /// run (`NAME:memory`) and print the results.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// A row of a table: metric, label, and whether higher is better.
struct Row {
    metric: &'static str,
    label: &'static str,
    unit: Unit,
}

/// How a metric is shown.
#[derive(Clone, Copy)]
enum Unit {
    /// Operations per second, higher is better.
    Rate,
    /// Bytes, shown in MiB, lower is better.
    Bytes,
    /// Milliseconds, lower is better.
    Millis,
    /// A fraction, shown as a percentage.
    Fraction,
    /// A plain ratio, one decimal.
    Ratio,
}

const ROWS: &[Row] = &[
    Row {
        metric: "seq_fill",
        label: "sequential fill (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "rand_fill",
        label: "random fill (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "read_1t",
        label: "random reads, 1 thread (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "read_2t",
        label: "random reads, 2 threads (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "read_missing",
        label: "reads of missing keys (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_a_1t",
        label: "YCSB A, 50% reads / 50% updates, 1 thread (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_a_2t",
        label: "YCSB A, 50% reads / 50% updates, 2 threads (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_b_1t",
        label: "YCSB B, 95% reads / 5% updates, 1 thread (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_b_2t",
        label: "YCSB B, 95% reads / 5% updates, 2 threads (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_c_1t",
        label: "YCSB C, reads only, 1 thread (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_c_2t",
        label: "YCSB C, reads only, 2 threads (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_f_1t",
        label: "YCSB F, 50% reads / 50% read-modify-writes, 1 thread (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "ycsb_f_2t",
        label: "YCSB F, 50% reads / 50% read-modify-writes, 2 threads (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "overwrite",
        label: "overwrite all keys (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "overwrite_done",
        label: "part of the overwrite done",
        unit: Unit::Fraction,
    },
    Row {
        metric: "durable_1",
        label: "durable puts, 1 writer (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "durable_16",
        label: "durable puts, 16 writers (ops/s)",
        unit: Unit::Rate,
    },
    Row {
        metric: "puts_per_fsync_16",
        label: "puts per fsync, 16 writers (where counted)",
        unit: Unit::Ratio,
    },
    Row {
        metric: "disk_fill",
        label: "disk after fill (MiB)",
        unit: Unit::Bytes,
    },
    Row {
        metric: "disk_overwrite",
        label: "disk after overwrite (MiB)",
        unit: Unit::Bytes,
    },
    Row {
        metric: "reopen_ms",
        label: "reopen + first read (ms)",
        unit: Unit::Millis,
    },
    Row {
        metric: "peak_rss",
        label: "peak memory, fill only (MiB)",
        unit: Unit::Bytes,
    },
];

fn main() {
    let args = Args::parse();
    if let Some(child) = &args.child {
        child_main(child, &args);
        return;
    }
    let named = |k: &Kind| args.only.iter().any(|o| o == k.name());
    let kinds: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| args.only.is_empty() || named(k))
        .chain(Kind::ON_REQUEST.iter().copied().filter(named))
        .collect();
    println!(
        "bitcask-compare: {} keys of 16 bytes, {}-byte {:?} values, {} rounds, durable puts {} (1 writer) / {} (16 writers); contenders: {}",
        args.keys,
        args.value_size,
        args.values,
        args.rounds,
        args.durable_ops,
        args.durable_ops * 4,
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // results[kind][metric] = values, one per round
    let mut results: Vec<HashMap<String, Vec<f64>>> = vec![HashMap::new(); kinds.len()];
    let mut fsync_rates = Vec::new();
    let mut prefilled_rates = Vec::new();
    for round in 0..args.rounds {
        // The disk's own durable-write rate, measured each round between
        // the contenders' runs.
        let dir = tempfile::tempdir().expect("tempdir");
        fsync_rates.push(workloads::fdatasync_loop(
            dir.path(),
            args.durable_ops,
            false,
        ));
        prefilled_rates.push(workloads::fdatasync_loop(
            dir.path(),
            args.durable_ops,
            true,
        ));
        // Rotate the order each round, so no contender always runs first.
        for i in 0..kinds.len() {
            let k = (i + round) % kinds.len();
            if round > 0 && args.once.iter().any(|o| o == kinds[k].name()) {
                continue;
            }
            for mode in ["", ":memory"] {
                let name = format!("{}{mode}", kinds[k].name());
                for (metric, value) in run_child(&name, &args) {
                    results[k].entry(metric).or_default().push(value);
                }
            }
            eprintln!("round {}: {} done", round + 1, kinds[k].name());
        }
    }
    print_table(&kinds, &results);
    for ours in [Kind::Bitcask, Kind::BitcaskUnverified] {
        print_against_best(&kinds, &results, ours);
    }
    let (append, prefilled) = (median(&fsync_rates), median(&prefilled_rates));
    println!(
        "\nfdatasync loop on the same filesystem (one 128-byte append + fdatasync): {append:.0} ops/s; into a zero-filled file: {prefilled:.0} ops/s (medians of {})",
        fsync_rates.len()
    );
    let single = kinds
        .iter()
        .position(|k| *k == Kind::Bitcask)
        .and_then(|k| results[k].get("durable_1"))
        .map(|v| median(v));
    if let Some(ours) = single {
        println!(
            "bitcask durable puts, 1 writer: {ours:.0} ops/s = {:.2}x the append loop, {:.2}x the zero-filled loop",
            ours / append,
            ours / prefilled
        );
    }
}

/// Runs one contender's workloads (or memory run) in a child process and
/// returns its results.
fn run_child(name: &str, args: &Args) -> Vec<(String, f64)> {
    let exe = std::env::current_exe().expect("own executable");
    let output = Command::new(exe)
        .arg("--child")
        .arg(name)
        .arg("--keys")
        .arg(args.keys.to_string())
        .arg("--value-size")
        .arg(args.value_size.to_string())
        .arg("--values")
        .arg(
            clap::ValueEnum::to_possible_value(&args.values)
                .expect("every value kind has a name")
                .get_name(),
        )
        .arg("--durable-ops")
        .arg(args.durable_ops.to_string())
        .arg("--overwrite-secs")
        .arg(args.overwrite_secs.to_string())
        .args(args.read_whole.then_some("--read-whole"))
        .arg("--ycsb-ops")
        .arg(args.ycsb_ops.to_string())
        .arg("--ycsb-secs")
        .arg(args.ycsb_secs.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run child");
    assert!(
        output.status.success(),
        "child {name} failed: {}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pair| {
            let (metric, value) = pair.split_once('=')?;
            Some((metric.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The child's side: run and print `metric=value` pairs.
fn child_main(spec: &str, args: &Args) {
    let (name, memory) = match spec.strip_suffix(":memory") {
        Some(name) => (name, true),
        None => (spec, false),
    };
    contenders::READ_WHOLE.store(args.read_whole, std::sync::atomic::Ordering::Relaxed);
    let Some(kind) = Kind::from_name(name) else {
        eprintln!("unknown contender {name}");
        std::process::exit(2);
    };
    let metrics = if memory {
        workloads::memory(kind, args.keys, args.value_size, args.values)
    } else {
        workloads::run(
            kind,
            args.keys,
            args.value_size,
            args.values,
            args.durable_ops,
            std::time::Duration::from_secs(args.overwrite_secs),
            (args.ycsb_ops > 0).then(|| ycsb::Budget {
                ops: args.ycsb_ops,
                limit: std::time::Duration::from_secs(args.ycsb_secs),
            }),
        )
    };
    let line: Vec<String> = metrics.iter().map(|(m, v)| format!("{m}={v}")).collect();
    println!("{}", line.join(" "));
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn show(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Rate => format!("{value:.0}"),
        Unit::Bytes => format!("{:.1}", value / (1024.0 * 1024.0)),
        Unit::Millis => format!("{value:.1}"),
        Unit::Fraction => format!("{:.0}%", value * 100.0),
        Unit::Ratio => format!("{value:.1}"),
    }
}

/// The aims are ratios to the best other engine: for each metric,
/// bitcask's median against the best other on-disk store's (the highest
/// rate, the least MiB or ms) and, where there is one, against the
/// in-memory reference.
/// `ours` is the engine's variant to compare (bitcask, or bitcask with
/// unverified reads).
fn print_against_best(kinds: &[Kind], results: &[HashMap<String, Vec<f64>>], ours: Kind) {
    let Some(base) = kinds.iter().position(|k| *k == ours) else {
        return;
    };
    let name = ours.name();
    let memory = kinds.iter().position(|k| !k.on_disk());
    println!("\n| workload (median) | best other store | {name} / best | {name} / hashmap |");
    println!("| --- | --- | ---: | ---: |");
    for row in ROWS {
        let higher_is_better = match row.unit {
            Unit::Rate => true,
            Unit::Bytes | Unit::Millis => false,
            Unit::Fraction | Unit::Ratio => continue,
        };
        let value = |k: usize| results[k].get(row.metric).map(|v| median(v));
        let Some(ours) = value(base) else { continue };
        let best = (0..kinds.len())
            .filter(|&k| kinds[k].is_other_store())
            .filter_map(|k| value(k).map(|v| (k, v)))
            .reduce(|a, b| {
                let b_wins = if higher_is_better {
                    b.1 > a.1
                } else {
                    b.1 < a.1
                };
                if b_wins { b } else { a }
            });
        let Some((best_kind, best_value)) = best else {
            continue;
        };
        let ratio = |theirs: f64| {
            if theirs > 0.0 {
                format!("{:.2}x", ours / theirs)
            } else {
                "-".to_string()
            }
        };
        let against_memory = match memory.and_then(value) {
            Some(m) if higher_is_better => format!("{:.0}%", 100.0 * ours / m),
            _ => "-".to_string(),
        };
        println!(
            "| {} | {} {} | {} | {} |",
            row.label,
            kinds[best_kind].name(),
            show(best_value, row.unit),
            ratio(best_value),
            against_memory
        );
    }
    println!(
        "\n(bitcask / best: above 1 is more ops/s, or more MiB/ms, than the best other store.)"
    );
}

fn print_table(kinds: &[Kind], results: &[HashMap<String, Vec<f64>>]) {
    let base = kinds.iter().position(|k| *k == Kind::Bitcask);
    print!("\n| workload (median) |");
    for (k, kind) in kinds.iter().enumerate() {
        let rounds = results[k].get("seq_fill").map_or(0, Vec::len);
        let plural = if rounds == 1 { "" } else { "s" };
        print!(" {} ({rounds} round{plural}) |", kind.name());
    }
    println!();
    print!("| --- |");
    for _ in kinds {
        print!(" ---: |");
    }
    println!();
    for row in ROWS {
        print!("| {} |", row.label);
        let value = |k: usize| results[k].get(row.metric).map(|v| median(v));
        let ours = base.and_then(value);
        for k in 0..kinds.len() {
            match (value(k), ours) {
                (None, _) => print!(" - |"),
                (Some(m), Some(o)) if Some(k) != base && o > 0.0 => {
                    print!(" {} ({:.2}x) |", show(m, row.unit), m / o);
                }
                (Some(m), _) => print!(" {} |", show(m, row.unit)),
            }
        }
        println!();
    }
    println!(
        "\n(x) = the contender's median divided by bitcask's: above 1 is more ops/s, or more MiB/ms."
    );
}
