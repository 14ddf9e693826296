//! Times random gets the way a cache in front of a store sees them: a store
//! filled in one random order with distinct 100-byte values, read back in
//! another random order (so consecutive gets land in unrelated parts of the
//! data file), then the same number of gets of absent keys. For
//! `perf record` and for A/B runs of read-path changes.
//!
//! `cargo run --release -p bitcask --example read_loop -- [KEYS] [ROUNDS] [VALUE_BYTES]`
//! (defaults: 1,000,000 keys, 3 rounds of each kind of get, 100-byte values).
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Bitcask, Options, SyncPolicy};

mod support;

use support::key;

/// xorshift64: a fixed pseudo-random sequence (not for anything secret).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `0..n` in a pseudo-random order (Fisher-Yates).
fn permutation(n: u64, state: &mut u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = (next(state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn main() -> bitcask::Result<()> {
    let mut args = std::env::args().skip(1);
    let keys: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let value_size: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = Bitcask::open_with(tmp.path(), Options::new().sync(SyncPolicy::Never))?;

    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut value = vec![0u8; value_size];
    for i in permutation(keys, &mut state) {
        for byte in value.iter_mut() {
            *byte = next(&mut state) as u8;
        }
        db.put(&key(i), &value)?;
    }
    let present: Vec<[u8; 16]> = permutation(keys, &mut state).into_iter().map(key).collect();
    // "key" never starts an absent key: `support::key` always does.
    let absent: Vec<[u8; 16]> = present
        .iter()
        .map(|k| {
            let mut k = *k;
            k[0] = b'z';
            k
        })
        .collect();

    for (label, list) in [("present", &present), ("absent", &absent)] {
        for round in 0..rounds {
            let started = Instant::now();
            let mut bytes = 0usize;
            for k in list.iter() {
                bytes += db
                    .get_with(k, |v| {
                        // Read the value's ends, as a caller using it would.
                        std::hint::black_box(v.first());
                        std::hint::black_box(v.last());
                        v.len()
                    })?
                    .unwrap_or(0);
            }
            println!(
                "{label} keys, round {round}: {:.0} gets/s ({bytes} bytes)",
                list.len() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
