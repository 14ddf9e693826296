//! `Client::watch` against a real server: events in order from now or
//! from history, binary keys and values, resuming across a server restart
//! without a gap or a repeat, `Compacted` after a merge, and the blocking
//! iterator.

mod common;

use std::time::Duration;

use bitcask_client::{Client, Error, WatchEvent, WatchOp, WatchOptions, blocking};
use common::{start, stop};
use futures_util::StreamExt;

async fn next(
    stream: &mut (impl futures_util::Stream<Item = bitcask_client::Result<WatchEvent>> + Unpin),
) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream goes on")
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_each_change_in_order_binary_ones_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), 0, &[]);
    let client = Client::new(server.url()).expect("client");
    let before = client.put("before", "x").await.expect("put");
    // From the seq after `before` (the server's own tests cover "from
    // now", which is where the stream's first request lands).
    let mut stream = Box::pin(client.watch(WatchOptions::new().prefix("k").from_seq(before + 1)));
    let watcher = tokio::spawn(async move {
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(next(&mut stream).await);
        }
        events
    });
    let v1 = client.put("k1", "one").await.expect("put");
    client.put("other", "ignored").await.expect("put");
    let v2 = client.put("k2", [0xffu8, 0x00]).await.expect("put");
    client.delete("k1").await.expect("delete");
    let events = watcher.await.expect("watcher");
    assert_eq!(events[0].seq, v1);
    assert_eq!(
        (events[0].op, events[0].value.as_deref()),
        (WatchOp::Put, Some("one"))
    );
    assert_eq!(events[1].seq, v2);
    assert_eq!(events[1].value_bytes(), Some(vec![0xff, 0x00]));
    assert_eq!(events[1].key_bytes(), Some(b"k2".to_vec()));
    assert_eq!(
        (events[2].op, events[2].key.as_str()),
        (WatchOp::Delete, "k1")
    );
    stop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_across_a_server_restart_without_a_gap_or_a_repeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), 0, &[]);
    let port = server.addr().port();
    let client = Client::new(server.url()).expect("client");
    for i in 0..5 {
        client.put(&format!("k{i}"), "v").await.expect("put");
    }
    let mut stream = Box::pin(client.watch(WatchOptions::new().from_seq(0)));
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(next(&mut stream).await.seq);
    }
    stop(server);
    let server = start(dir.path(), port, &[]);
    for i in 5..10 {
        client.put(&format!("k{i}"), "v").await.expect("put");
    }
    for _ in 5..10 {
        seqs.push(next(&mut stream).await.seq);
    }
    let expected: Vec<u64> = (seqs[0]..seqs[0] + 10).collect();
    assert_eq!(seqs, expected);
    stop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_a_merge_dropped_is_a_compacted_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(
        dir.path(),
        0,
        &["--max-file-size", "4KiB", "--merge-check-interval", "off"],
    );
    let client = Client::new(server.url()).expect("client");
    for i in 0..300 {
        client
            .put(&format!("k{}", i % 10), "v".repeat(50))
            .await
            .expect("put");
    }
    client.merge().await.expect("merge");
    let mut stream = Box::pin(client.watch(WatchOptions::new().from_seq(1)));
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an answer")
        .expect("an item");
    match first {
        Err(Error::Compacted { compacted_seq }) => assert!(compacted_seq > 1),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(stream.next().await.is_none(), "the stream ends");
    stop(server);
}

#[test]
fn the_blocking_client_iterates_over_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), 0, &[]);
    let client = blocking::Client::new(server.url()).expect("client");
    let v = client.put("a", "1").expect("put");
    client.put("b", "2").expect("put");
    let events: Vec<WatchEvent> = client
        .watch(WatchOptions::new().from_seq(v))
        .take(2)
        .collect::<Result<_, _>>()
        .expect("events");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.key.as_str()))
            .collect::<Vec<_>>(),
        vec![(v, "a"), (v + 1, "b")]
    );
    stop(server);
}
