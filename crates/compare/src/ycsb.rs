//! YCSB's core workloads A, B, C and F (Cooper et al., *Benchmarking Cloud
//! Serving Systems with YCSB*, SoCC 2010) over a loaded store: zipfian key
//! choice with the standard constant 0.99, scrambled as YCSB's
//! `ScrambledZipfianGenerator` does (a hash of the zipfian rank, so the
//! popular keys are spread over the key space rather than the first ones).
//!
//! | workload | reads | updates | read-modify-writes |
//! | --- | ---: | ---: | ---: |
//! | A (update heavy) | 50% | 50% | |
//! | B (read mostly) | 95% | 5% | |
//! | C (read only) | 100% | | |
//! | F (read-modify-write) | 50% | | 50% |
//!
//! Written here rather than taken from a crate: the generator is the few
//! lines of YCSB's own, and the workloads call the contenders' trait.

use std::time::{Duration, Instant};

use crate::contenders::Contender;
use crate::keys::{key, splitmix64};
use crate::values::Values;

/// YCSB's zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// One core workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// The metrics it reports, on 1 and on 2 threads.
    pub metrics: [&'static str; 2],
    /// Fraction of operations that read.
    pub read: f64,
    /// Of the others: read-modify-writes (F) rather than blind updates.
    pub read_modify_write: bool,
}

/// A, B, C and F.
pub const CORE: [Workload; 4] = [
    Workload {
        metrics: ["ycsb_a_1t", "ycsb_a_2t"],
        read: 0.5,
        read_modify_write: false,
    },
    Workload {
        metrics: ["ycsb_b_1t", "ycsb_b_2t"],
        read: 0.95,
        read_modify_write: false,
    },
    Workload {
        metrics: ["ycsb_c_1t", "ycsb_c_2t"],
        read: 1.0,
        read_modify_write: false,
    },
    Workload {
        metrics: ["ycsb_f_1t", "ycsb_f_2t"],
        read: 0.5,
        read_modify_write: true,
    },
];

/// Zipfian ranks over `0..n` (YCSB's `ZipfianGenerator`, Gray et al.'s
/// method): rank 0 is the most popular.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Ranks over `n` items with constant `theta` (computing zeta(n) takes
    /// `n` steps, once).
    pub fn new(n: u64, theta: f64) -> Self {
        let zeta = |count: u64| {
            (1..=count)
                .map(|i| 1.0 / (i as f64).powf(theta))
                .sum::<f64>()
        };
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        let n_f = n as f64;
        Self {
            n: n_f,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / n_f).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    /// The rank for a uniform `u` in `[0, 1)`.
    pub fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n as u64 - 1)
    }
}

/// FNV-1a over the 8 bytes of `x` (YCSB scrambles with FNV too).
fn fnv1a64(x: u64) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in x.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// The record a zipfian rank stands for: the rank's hash modulo `n`.
pub fn scrambled_record(rank: u64, n: u64) -> u64 {
    fnv1a64(rank) % n.max(1)
}

/// A uniform number in `[0, 1)` from `state`.
fn uniform(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// How long each workload runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Operations in all (split among the threads).
    pub ops: usize,
    /// Or until this long has passed (the rate is then of the part done).
    pub limit: Duration,
}

/// Runs `workload` on `store` (holding records `key(0..n)`) with `threads`
/// threads within `budget`; answers operations per second. Reads must find
/// their record.
pub fn run(
    store: &dyn Contender,
    zipfian: &Zipfian,
    n: u64,
    (workload, threads): (Workload, usize),
    budget: Budget,
    values: &Values,
) -> f64 {
    let Budget { ops, limit } = budget;
    let per_thread = ops / threads.max(1);
    let started = Instant::now();
    let done: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut state = 0x00C5_B000 + t as u64;
                    let mut done = 0;
                    let mut bytes = 0usize;
                    // A fresh reader every 1,024 operations: for redb, a
                    // read transaction held for the whole run would pin
                    // the pages every update replaces.
                    while done < per_thread {
                        let mut reader = store.reader();
                        for _ in 0..1024.min(per_thread - done) {
                            let record = scrambled_record(zipfian.rank(uniform(&mut state)), n);
                            let k = key(record);
                            let reads = uniform(&mut state) < workload.read;
                            if reads || workload.read_modify_write {
                                let found = reader.read(&k);
                                assert!(found.is_some(), "record {record} missing");
                                bytes += found.unwrap_or(0);
                            }
                            if !reads {
                                store.put(&k, values.get(done + t * per_thread));
                            }
                            done += 1;
                        }
                        if started.elapsed() > limit {
                            break;
                        }
                    }
                    std::hint::black_box(bytes);
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    done as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_ranks_favour_the_first_and_stay_in_range() {
        let n = 10_000;
        let z = Zipfian::new(n, ZIPFIAN_CONSTANT);
        let mut counts = vec![0u32; n as usize];
        let mut state = 7;
        let draws = 200_000;
        for _ in 0..draws {
            let r = z.rank(uniform(&mut state));
            assert!(r < n);
            counts[r as usize] += 1;
        }
        // With theta 0.99 over 10,000 items, rank 0 takes about 1/zeta(n)
        // (about 10%) of the draws, rank 1 about half of that, and the top
        // 1% of ranks well over half.
        let share = |c: u32| f64::from(c) / f64::from(draws);
        assert!(
            (0.08..0.13).contains(&share(counts[0])),
            "{}",
            share(counts[0])
        );
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.6..2.5).contains(&ratio), "{ratio}");
        let top: u32 = counts[..100].iter().sum();
        assert!(share(top) > 0.5, "{}", share(top));
    }

    #[test]
    fn scrambling_spreads_the_popular_records() {
        let n = 1_000_000;
        let first: Vec<u64> = (0..10).map(|r| scrambled_record(r, n)).collect();
        assert!(first.iter().all(|&r| r < n));
        let mut unique = first.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(first.iter().any(|&r| r > n / 2), "{first:?}");
    }
}
