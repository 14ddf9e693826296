//! The cost of one page of an ordered listing, by page size, over 1,000,000
//! keys: `cargo run --release -p bitcask --example list_pages`.
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Bitcask, KeyRange, Options, SyncPolicy};

mod support;

use support::key;

fn main() -> bitcask::Result<()> {
    let dir = tempfile::tempdir().expect("t");
    let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never))?;
    for i in 0..1_000_000 {
        db.put(&key(i), b"v")?;
    }
    for page in [0usize, 1, 10, 100, 1000] {
        let t = Instant::now();
        let n = 2000u64;
        let mut c = 0;
        for j in 0..n {
            let r = KeyRange::prefix(&b"key"[..]).start_after(&key(j * 499 % 1_000_000)[..]);
            c += db.keys_in(r).take(page).count();
        }
        println!(
            "page {page}: {:.1} us ({c})",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    Ok(())
}
