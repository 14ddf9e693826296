//! Engine benchmarks: put, get (hit and miss), delete, a page of an ordered
//! listing and open (with and without hint files) over a store of 1,000,000
//! keys (16-byte keys, 100-byte values), and durable puts under 1, 4 and 16
//! writer threads to show group commit.
//!
//! Run: `cargo bench -p bitcask --bench engine`. Numbers and machine are in
//! `docs/BENCHMARKS.md`.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcask::{Bitcask, KeyRange, Options, SyncPolicy};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const KEYS: u64 = 1_000_000;
const VALUE: [u8; 100] = [0x5A; 100];

/// A 16-byte key for index `i` ("key" and 13 decimal digits), built without
/// allocating so the benchmark measures the engine, not `format!`.
fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key0000000000000";
    let mut n = i;
    for slot in k[3..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A 16-byte key that is never stored (different prefix).
fn missing_key(i: u64) -> [u8; 16] {
    let mut k = key(i);
    k[..3].copy_from_slice(b"nop");
    k
}

/// xorshift64*: a fast, dependency-free source of random indexes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn index(&mut self) -> u64 {
        self.next() % KEYS
    }
}

fn unsynced() -> Options {
    Options::new().sync(SyncPolicy::Never)
}

fn fill(dir: &Path) -> Bitcask {
    let db = Bitcask::open_with(dir, unsynced()).expect("open");
    for i in 0..KEYS {
        db.put(&key(i), &VALUE).expect("fill");
    }
    db
}

fn bench_point_ops(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = fill(dir.path());
    let mut g = c.benchmark_group("1M keys");
    g.throughput(Throughput::Elements(1));

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    g.bench_function("put (overwrite, sync=never)", |b| {
        b.iter(|| db.put(&key(rng.index()), &VALUE).expect("put"))
    });
    g.bench_function("get hit", |b| {
        b.iter(|| db.get(&key(rng.index())).expect("get").expect("present"))
    });
    g.bench_function("list a page of 100 keys from a random start", |b| {
        b.iter(|| {
            let range = KeyRange::prefix(&b"key"[..]).start_after(&key(rng.index())[..]);
            // (Near the end of the key space a page is shorter.)
            std::hint::black_box(db.keys_in(range).take(100).count())
        })
    });
    g.bench_function("get miss", |b| {
        b.iter(|| assert!(db.get(&missing_key(rng.index())).expect("get").is_none()))
    });
    g.bench_function("delete (sync=never)", |b| {
        b.iter_custom(|iters| {
            // Each key can be deleted once per refill, so work in rounds of
            // at most KEYS deletes; the refill is not timed.
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let round = left.min(KEYS);
                let first = rng.index();
                let idx = |n: u64| (first + n) % KEYS;
                for n in 0..round {
                    db.put(&key(idx(n)), &VALUE).expect("refill");
                }
                let start = Instant::now();
                for n in 0..round {
                    assert!(db.delete(&key(idx(n))).expect("delete"));
                }
                timed += start.elapsed();
                left -= round;
            }
            timed
        })
    });
    g.finish();
    db.close().expect("close");
}

fn bench_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // 32 MiB files: four sealed files (with hints) and an active one.
    let small_files = || unsynced().max_file_size(32 << 20);
    let db = Bitcask::open_with(dir.path(), small_files()).expect("open");
    for i in 0..KEYS {
        db.put(&key(i), &VALUE).expect("fill");
    }
    let sealed = count_files(dir.path(), "data") - 1;
    while count_files(dir.path(), "hint") < sealed {
        std::thread::sleep(Duration::from_millis(10));
    }
    db.close().expect("close");
    let mut g = c.benchmark_group("open");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, use_hints) in [
        ("open 1M keys (scan data files)", false),
        ("open 1M keys (hint files)", true),
    ] {
        g.bench_function(name, |b| {
            // Only the open is timed; closing the handle (freeing 1M keys)
            // is not. One handle at a time: the store takes one writer.
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let db = Bitcask::open_with(dir.path(), small_files().use_hints(use_hints))
                        .expect("open");
                    timed += start.elapsed();
                    assert_eq!(db.len() as u64, KEYS);
                    db.close().expect("close");
                }
                timed
            })
        });
    }
    g.finish();
}

fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
        })
        .count()
}

fn bench_durable_puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable put (sync=always)");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(256));
    for threads in [1u64, 4, 16] {
        g.bench_function(format!("{threads} writer threads"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let db =
                        Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Always))
                            .expect("open");
                    (dir, Arc::new(db))
                },
                |(dir, db)| {
                    // 256 durable puts spread over the threads.
                    let per_thread = 256 / threads;
                    let handles: Vec<_> = (0..threads)
                        .map(|t| {
                            let db = Arc::clone(&db);
                            std::thread::spawn(move || {
                                for i in 0..per_thread {
                                    db.put(&key(t * 1_000_000 + i), &VALUE).expect("put");
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().expect("writer");
                    }
                    (dir, db)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_point_ops, bench_open, bench_durable_puts);
criterion_main!(benches);
