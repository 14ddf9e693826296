//! Ordered listing: pages by prefix and start key, in order, each key once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcask::{Bitcask, KeyRange};

/// Pages through `prefix` `limit` keys at a time, resuming after the last.
fn page_through(db: &Bitcask, prefix: &str, limit: usize) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let mut range = KeyRange::prefix(prefix);
    loop {
        let page: Vec<Vec<u8>> = db.keys_in(range.clone()).take(limit).collect();
        let Some(last) = page.last().cloned() else {
            return all;
        };
        all.extend(page);
        range = KeyRange::prefix(prefix).start_after(last);
    }
}

#[test]
fn pages_cover_a_prefix_in_order_exactly_once_while_other_keys_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(common::open(dir.path()));
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for i in 0..20_000u32 {
        let user = format!("user/{:05}", (i * 7_919) % 20_000);
        db.put(user.as_bytes(), b"u").expect("put");
        expected.push(user.into_bytes());
        db.put(format!("order/{i}").as_bytes(), b"o").expect("put");
    }
    expected.sort();
    // Meanwhile a writer churns keys around and inside the prefix that are
    // not part of the stable set.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("user/{:05}x{}", n % 20_000, n % 3);
                db.put(k.as_bytes(), b"t").expect("put");
                db.delete(k.as_bytes()).expect("delete");
                db.put(format!("order/x{n}").as_bytes(), b"t").expect("put");
                n += 1;
            }
        })
    };
    for limit in [1, 7, 100, 1_000] {
        let got: Vec<Vec<u8>> = page_through(&db, "user/", limit)
            .into_iter()
            .filter(|k| !k.contains(&b'x'))
            .collect();
        assert_eq!(got.len(), expected.len(), "limit {limit}");
        assert!(
            got == expected,
            "limit {limit}: keys out of order, missing or repeated"
        );
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("churn");
}

#[test]
fn start_keys_before_inside_and_after_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open(dir.path());
    for k in ["a", "b/1", "b/2", "b/3", "c"] {
        db.put(k.as_bytes(), b"v").expect("put");
    }
    let list = |range: KeyRange| -> Vec<String> {
        db.keys_in(range)
            .map(|k| String::from_utf8(k).expect("utf-8"))
            .collect()
    };
    assert_eq!(
        list(KeyRange::prefix("b/").start_after("a")),
        ["b/1", "b/2", "b/3"]
    );
    assert_eq!(list(KeyRange::prefix("b/").start_at("b/2")), ["b/2", "b/3"]);
    assert_eq!(
        list(KeyRange::prefix("b/").start_after("b/3")),
        Vec::<String>::new()
    );
    assert_eq!(
        list(KeyRange::prefix("b/").start_after("c")),
        Vec::<String>::new()
    );
    assert_eq!(list(KeyRange::all().start_after("b/3")), ["c"]);
    assert_eq!(list(KeyRange::prefix("")), ["a", "b/1", "b/2", "b/3", "c"]);
}
