//! The cost of one page of an ordered listing, by page size, over 1,000,000
//! keys (or as many as the first argument says):
//! `cargo run --release -p bitcask --example list_pages [KEYS]`.
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Bitcask, KeyRange, Options, SyncPolicy};

mod support;

use support::key;

fn main() -> bitcask::Result<()> {
    let dir = tempfile::tempdir().expect("t");
    let keys: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())
        .expect("KEYS is a number");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never))?;
    for i in 0..keys {
        db.put(&key(i), b"v")?;
    }
    for page in [0usize, 1, 10, 100, 1000] {
        let t = Instant::now();
        let n = 2000u64;
        let mut c = 0;
        for j in 0..n {
            let r = KeyRange::prefix(&b"key"[..]).start_after(&key(j * 499 % keys)[..]);
            c += db.keys_in(r).take(page).count();
        }
        println!(
            "page {page}: {:.1} us ({c})",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    Ok(())
}
