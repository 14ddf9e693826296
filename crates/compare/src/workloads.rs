//! What one contender does in its own process: the workloads, timed, and
//! the process's memory and disk use. The results go to stdout as
//! `name=value` pairs on one line, for the parent to collect.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::contenders::{Contender, Durability, Kind};
use crate::keys::{Keys, key, scrambled};
use crate::values::{ValueKind, Values};
use crate::ycsb;

/// One measurement: its name and value.
pub type Metric = (&'static str, f64);

/// Operations per second of `ops` operations taking `elapsed`.
fn rate(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Every throughput, space and reopen workload for `kind`, with `n` keys
/// and values of `value_size` bytes; durable puts: `durable_ops` by one
/// writer and four times as many by sixteen; the overwrite stops after
/// `overwrite_limit`; YCSB's core workloads within `ycsb`, if given.
pub fn run(
    kind: Kind,
    n: usize,
    value_size: usize,
    value_kind: ValueKind,
    durable_ops: usize,
    overwrite_limit: Duration,
    ycsb: Option<ycsb::Budget>,
) -> Vec<Metric> {
    let keys = Keys::new(n);
    let values = Values::new(value_kind, value_size);
    let mut out = Vec::new();

    // Sequential fill, in its own store.
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = kind.open(dir.path(), Durability::Eventual);
        out.push(("seq_fill", fill(store.as_ref(), &keys.sequential, &values)));
    }

    // Random fill, reads and overwrite on one store.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = kind.open(dir.path(), Durability::Eventual);
    out.push(("rand_fill", fill(store.as_ref(), &keys.shuffled, &values)));
    out.push(("disk_fill", disk_bytes(dir.path()) as f64));
    out.push(("read_1t", reads(store.as_ref(), &keys.reads, 1, true)));
    out.push(("read_2t", reads(store.as_ref(), &keys.reads, 2, true)));
    out.push((
        "read_missing",
        reads(store.as_ref(), &keys.missing, 1, false),
    ));
    // YCSB's core workloads on the loaded store, before the overwrite.
    if let Some(budget) = ycsb {
        let zipfian = ycsb::Zipfian::new(n as u64, ycsb::ZIPFIAN_CONSTANT);
        for workload in ycsb::CORE {
            for (threads, metric) in [1, 2].into_iter().zip(workload.metrics) {
                let r = ycsb::run(
                    store.as_ref(),
                    &zipfian,
                    n as u64,
                    (workload, threads),
                    budget,
                    &values,
                );
                out.push((metric, r));
            }
        }
    }
    // Stopped after `overwrite_limit` (redb's one transaction per put runs
    // at a few hundred a second on a store this size): the rate is of the
    // part done, and the table says which fraction that was.
    let started = Instant::now();
    let mut done = 0;
    for k in keys.shuffled.iter().rev() {
        store.put(k, values.get(n + done));
        done += 1;
        if done % 1024 == 0 && started.elapsed() > overwrite_limit {
            break;
        }
    }
    store.flush();
    out.push(("overwrite", rate(done, started.elapsed())));
    out.push(("overwrite_done", done as f64 / n.max(1) as f64));
    out.push(("disk_overwrite", disk_bytes(dir.path()) as f64));

    // Reopen: close, then time open and the first read.
    drop(store);
    if kind.on_disk() {
        let started = Instant::now();
        let store = kind.open(dir.path(), Durability::Eventual);
        let found = store.reader().read(&keys.shuffled[0]);
        out.push(("reopen_ms", started.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(found, Some(value_size), "reopened store lost a key");
    }
    drop(dir);

    // Durable puts, in a fresh store opened per-write durable.
    if kind.on_disk() {
        for (metric, writers) in [("durable_1", 1), ("durable_16", 16)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = kind.open(dir.path(), Durability::PerWrite);
            let total = if writers == 1 {
                durable_ops
            } else {
                durable_ops * 4
            };
            let per_writer = total / writers;
            let store = store.as_ref();
            let values = &values;
            let started = Instant::now();
            std::thread::scope(|scope| {
                for w in 0..writers {
                    scope.spawn(move || {
                        for i in 0..per_writer {
                            let at = w * per_writer + i;
                            store.put(&key(at as u64), values.get(at));
                        }
                    });
                }
            });
            out.push((metric, rate(per_writer * writers, started.elapsed())));
            if writers == 16
                && let Some(fsyncs) = store.fsyncs()
            {
                let puts = (per_writer * writers) as f64;
                out.push(("puts_per_fsync_16", puts / fsyncs.max(1) as f64));
            }
        }
    }
    out
}

/// Fills a store with `n` keys in scrambled order and returns the
/// process's peak resident memory (the run holds no key list and no value
/// pool of its own).
pub fn memory(kind: Kind, n: usize, value_size: usize, value_kind: ValueKind) -> Vec<Metric> {
    let mut value = Vec::with_capacity(value_size);
    let dir = tempfile::tempdir().expect("tempdir");
    let before = peak_rss_bytes();
    let store = kind.open(dir.path(), Durability::Eventual);
    for i in 0..n as u64 {
        Values::fill(value_kind, i, value_size, &mut value);
        store.put(&scrambled(i, n as u64), &value);
    }
    store.flush();
    let after_fill = current_rss_bytes();
    vec![
        ("peak_rss", peak_rss_bytes() as f64),
        ("rss_before", before as f64),
        ("rss_filled", after_fill as f64),
    ]
}

/// Appends one 128-byte record and `fdatasync`s, `ops` times, in `dir`:
/// the disk's rate of durable writes, the limit for one durable writer.
/// With `prefilled`, the file's space is written with zeros and synced
/// first (as bitcask's active file is): no size or extent change for the
/// journal to commit, the disk's best rate for one durable writer.
pub fn fdatasync_loop(dir: &Path, ops: usize, prefilled: bool) -> f64 {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("fdatasync.test");
    let mut file = std::fs::File::create(&path).expect("create fdatasync test file");
    let record = [b'r'; 128];
    if prefilled {
        file.write_all(&vec![0u8; ops * record.len()])
            .expect("zero fill");
        file.sync_all().expect("fsync the zero fill");
        file.seek(SeekFrom::Start(0)).expect("seek to the start");
    }
    let started = Instant::now();
    for _ in 0..ops {
        file.write_all(&record).expect("write");
        file.sync_data().expect("fdatasync");
    }
    let r = rate(ops, started.elapsed());
    drop(file);
    let _ = std::fs::remove_file(path);
    r
}

/// Puts every key of `keys` in order (the `i`-th with the `i`-th value),
/// then flushes; returns puts per second, the flush included.
fn fill(store: &dyn Contender, keys: &[[u8; 16]], values: &Values) -> f64 {
    let started = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        store.put(k, values.get(i));
    }
    store.flush();
    rate(keys.len(), started.elapsed())
}

/// Reads every key of `keys` (split among `threads`, one reader each),
/// checking each is found (or not); returns reads per second.
fn reads(store: &dyn Contender, keys: &[[u8; 16]], threads: usize, present: bool) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(keys.len().div_ceil(threads).max(1)) {
            scope.spawn(move || {
                let mut reader = store.reader();
                let mut bytes = 0usize;
                for k in chunk {
                    let found = reader.read(k);
                    assert_eq!(found.is_some(), present, "lookup gave the wrong answer");
                    bytes += found.unwrap_or(0);
                }
                std::hint::black_box(bytes);
            });
        }
    });
    rate(keys.len(), started.elapsed())
}

/// Bytes allocated on disk under `dir` (blocks, so sparse or preallocated
/// files count for what they occupy).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_bytes(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

/// A field of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`); 0 where
/// there is no such file.
fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM")
}

fn current_rss_bytes() -> u64 {
    proc_status_bytes("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's own code path, on a store small enough for CI: every
    /// contender runs every workload (the workloads assert that every key is
    /// found, missing keys are not, and a reopened store still has its
    /// keys) and reports every metric.
    #[test]
    fn every_contender_runs_every_workload_on_a_small_store() {
        for &kind in Kind::ALL.iter().chain(Kind::ON_REQUEST) {
            let budget = ycsb::Budget {
                ops: 2_000,
                limit: Duration::from_secs(30),
            };
            let metrics = run(
                kind,
                300,
                16,
                ValueKind::Random,
                8,
                Duration::from_secs(30),
                Some(budget),
            );
            let value = |name: &str| metrics.iter().find(|(m, _)| *m == name).map(|(_, v)| *v);
            for name in [
                "seq_fill",
                "rand_fill",
                "read_1t",
                "read_2t",
                "read_missing",
                "overwrite",
                "ycsb_a_1t",
                "ycsb_a_2t",
                "ycsb_b_1t",
                "ycsb_b_2t",
                "ycsb_c_1t",
                "ycsb_c_2t",
                "ycsb_f_1t",
                "ycsb_f_2t",
            ] {
                let v = value(name).unwrap_or_else(|| panic!("{}: no {name}", kind.name()));
                assert!(v.is_finite() && v > 0.0, "{}: {name} = {v}", kind.name());
            }
            assert_eq!(value("overwrite_done"), Some(1.0), "{}", kind.name());
            if kind.on_disk() {
                for name in ["disk_fill", "reopen_ms", "durable_1", "durable_16"] {
                    let v = value(name).unwrap_or_else(|| panic!("{}: no {name}", kind.name()));
                    assert!(v > 0.0, "{}: {name} = {v}", kind.name());
                }
            }
            let memory = memory(kind, 300, 16, ValueKind::Repeated);
            assert!(memory.iter().any(|(m, v)| *m == "peak_rss" && *v > 0.0));
        }
    }
}
