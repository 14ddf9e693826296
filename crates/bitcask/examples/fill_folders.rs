//! Fills a store with keys in folders, `f0000/item-0000000`, for listing
//! benchmarks over HTTP (docs/BENCHMARKS.md, "Web console"):
//! `cargo run --release -p bitcask --example fill_folders -- DIR FOLDERS PER_FOLDER`.
#![allow(missing_docs)]

use std::time::Instant;

use bitcask::{Batch, Bitcask, Options, SyncPolicy};

fn main() -> bitcask::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, folders, per_folder] = args.as_slice() else {
        eprintln!("usage: fill_folders DIR FOLDERS PER_FOLDER");
        std::process::exit(2);
    };
    let folders: u32 = folders.parse().expect("FOLDERS is a number");
    let per_folder: u32 = per_folder.parse().expect("PER_FOLDER is a number");
    let t = Instant::now();
    let db = Bitcask::open_with(dir, Options::new().sync(SyncPolicy::Never))?;
    for f in 0..folders {
        let mut batch = Batch::new();
        for i in 0..per_folder {
            batch.put(format!("f{f:04}/item-{i:07}").into_bytes(), b"v".to_vec());
            if batch.len() == 10_000 {
                db.write_batch(&std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            db.write_batch(&batch)?;
        }
    }
    println!("{} keys in {:?}", db.len(), t.elapsed());
    db.close()
}
