//! `GET /watch`, the change feed over HTTP (docs/WATCH.md): Server-Sent
//! Events and long polls, in order, whole batches, from any seq the files
//! hold (across a restart and file rotations), 410 below the compacted
//! seq, "list then watch" without a gap, resuming with `Last-Event-ID`,
//! filters, limits, auth and shutdown.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bitcask_wire::{SseDecoder, SseMessage, WatchEvent, WatchOp, WatchPage};
use common::TestServer;

/// An open SSE stream.
struct Stream {
    response: reqwest::Response,
    decoder: SseDecoder,
}

impl Stream {
    async fn open(s: &TestServer, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = s.client.get(s.url(&format!("/watch{query}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("watch");
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{query}"
        );
        Self {
            response,
            decoder: SseDecoder::new(),
        }
    }

    /// The next message, or `None` when the stream ends; fails after 10 s.
    async fn next(&mut self) -> Option<SseMessage> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(message) = self.decoder.next_message() {
                return Some(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("a message within 10 s");
            match chunk {
                Ok(Some(bytes)) => self.decoder.push(&bytes, 1 << 24).expect("push"),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next `n` events (skipping progress messages).
    async fn events(&mut self, n: usize) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        while events.len() < n {
            let message = self.next().await.expect("stream ended early");
            if message.event == "progress" || message.data.is_empty() {
                continue;
            }
            let event: WatchEvent = serde_json::from_str(&message.data).expect("event json");
            assert_eq!(message.id, Some(event.seq.to_string()));
            assert_eq!(message.event, event.op.as_str());
            events.push(event);
        }
        events
    }
}

async fn long_poll(s: &TestServer, query: &str) -> WatchPage {
    let response = s.get(&format!("/watch?format=json&{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.expect("page")
}

/// Every event from `from` on, page by page, until a page is empty.
async fn all_events(s: &TestServer, from: u64, query: &str) -> Vec<WatchEvent> {
    let mut from = from;
    let mut all = Vec::new();
    loop {
        let page = long_poll(s, &format!("from_seq={from}&limit=7&{query}")).await;
        if page.events.is_empty() {
            return all;
        }
        assert!(page.next_seq > from);
        from = page.next_seq;
        all.extend(page.events);
    }
}

async fn put(s: &TestServer, key: &str, value: &str) -> u64 {
    let response = s.put_json(key, value).await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    etag.trim_matches('"').parse().expect("version")
}

async fn delete(s: &TestServer, key: &str) {
    let response = s
        .client
        .delete(s.url(&format!("/kv/{key}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);
}

async fn batch(s: &TestServer, ops: serde_json::Value) {
    let response = s
        .client
        .post(s.url("/batch"))
        .json(&serde_json::json!({ "ops": ops }))
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), 200);
}

fn summary(events: &[WatchEvent]) -> Vec<(u64, WatchOp, String, Option<String>)> {
    events
        .iter()
        .map(|e| (e.seq, e.op, e.key.clone(), e.value.clone()))
        .collect()
}

#[tokio::test]
async fn a_watcher_started_before_writes_sees_every_one_in_order() {
    let s = TestServer::start(&[]).await;
    put(&s, "before", "x").await;
    let mut stream = Stream::open(&s, "", &[]).await;
    // The first message says where "now" is.
    let first = stream.next().await.expect("progress");
    assert_eq!(first.event, "progress");
    let v1 = put(&s, "a", "1").await;
    assert_eq!(first.data, format!("{{\"next_seq\":{v1}}}"));
    delete(&s, "a").await;
    batch(
        &s,
        serde_json::json!([
            {"op": "put", "key": "b", "value": "2"},
            {"op": "put", "key": "c", "value": "3"},
            {"op": "delete", "key": "before"},
        ]),
    )
    .await;
    let events = stream.events(5).await;
    let s1 = v1;
    assert_eq!(
        summary(&events),
        vec![
            (s1, WatchOp::Put, "a".into(), Some("1".into())),
            (s1 + 1, WatchOp::Delete, "a".into(), None),
            (s1 + 2, WatchOp::Put, "b".into(), Some("2".into())),
            (s1 + 3, WatchOp::Put, "c".into(), Some("3".into())),
            (s1 + 4, WatchOp::Delete, "before".into(), None),
        ]
    );
    assert!(events.iter().all(|e| e.version == e.seq));
}

#[tokio::test]
async fn a_batch_is_never_split_even_past_the_limit() {
    let s = TestServer::start(&[]).await;
    let ops: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"op": "put", "key": format!("k{i}"), "value": "v"}))
        .collect();
    batch(&s, serde_json::Value::Array(ops)).await;
    put(&s, "after", "v").await;
    let page = long_poll(&s, "from_seq=0&limit=1").await;
    assert_eq!(page.events.len(), 5, "the whole batch, though limit is 1");
    assert_eq!(page.next_seq, page.events[4].seq + 1);
    let rest = long_poll(&s, &format!("from_seq={}&limit=1", page.next_seq)).await;
    assert_eq!(summary(&rest.events)[0].2, "after");
}

#[tokio::test]
async fn history_replays_from_the_files_across_a_restart_and_rotations() {
    let flags = ["--max-file-size", "4KiB"];
    let s = TestServer::start(&flags).await;
    let mut written = Vec::new();
    for i in 0..200 {
        let key = format!("key{:03}", i % 50);
        let value = format!("value-{i}-{}", "x".repeat(40));
        let seq = put(&s, &key, &value).await;
        written.push((seq, WatchOp::Put, key, Some(value)));
    }
    let files = s.stats().await["data_files"].as_u64().unwrap_or_default();
    assert!(files > 2, "the history spans several files ({files})");
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, &flags).await;
    let replayed = all_events(&s, 0, "").await;
    assert_eq!(summary(&replayed), written);
    // From the middle: exactly the rest.
    let middle = written[120].0;
    assert_eq!(summary(&all_events(&s, middle, "").await), written[120..]);
}

#[tokio::test]
async fn a_watch_from_history_a_merge_dropped_is_gone_with_the_compacted_seq() {
    let s = TestServer::start(&["--max-file-size", "4KiB", "--merge-check-interval", "off"]).await;
    for i in 0..300 {
        put(&s, &format!("k{}", i % 10), &"v".repeat(50)).await;
    }
    let merged = s
        .client
        .post(s.url("/admin/merge"))
        .send()
        .await
        .expect("merge");
    assert_eq!(merged.status(), 200);
    let response = s.get("/watch?from_seq=1").await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.expect("json");
    let compacted = body["compacted_seq"].as_u64().expect("compacted_seq");
    assert!(compacted > 1, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("compacted")
    );
    // The same for a long poll and for the seq just below; from the
    // compacted seq on, the history is whole.
    let below = s
        .get(&format!("/watch?format=json&from_seq={}", compacted - 1))
        .await;
    assert_eq!(below.status(), 410);
    let after = put(&s, "after", "merge").await;
    let from_there = all_events(&s, compacted, "").await;
    assert_eq!(from_there.first().map(|e| e.seq), Some(compacted));
    assert_eq!(from_there.last().map(|e| e.seq), Some(after));
    let metrics = s.get_text("/metrics").await;
    assert!(metrics.contains(&format!("bitcask_watch_compacted_seq {compacted}")));
}

#[tokio::test]
async fn list_then_watch_from_the_listing_seq_loses_no_write() {
    let s = TestServer::start(&[]).await;
    for i in 0..50 {
        put(&s, &format!("k{i:02}"), "initial").await;
    }
    // A writer keeps changing keys while the client lists and watches.
    let writer = {
        let client = s.client.clone();
        let url = s.url("");
        tokio::spawn(async move {
            for i in 0..300 {
                let key = format!("k{:02}", (i * 7) % 60);
                let request = if i % 5 == 0 {
                    client.delete(format!("{url}/kv/{key}"))
                } else {
                    client
                        .put(format!("{url}/kv/{key}"))
                        .json(&serde_json::json!({ "value": format!("w{i}") }))
                };
                assert_eq!(request.send().await.expect("write").status(), 200);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let listing = s.get("/kv?limit=10000").await;
    let seq: u64 = listing.headers()["x-bitcask-seq"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seq");
    let keys: Vec<String> = listing
        .json::<bitcask_wire::Page>()
        .await
        .expect("page")
        .keys;
    let mut state = BTreeMap::new();
    for key in keys {
        let value = s.get_text(&format!("/kv/{key}")).await;
        let value: serde_json::Value = serde_json::from_str(&value).expect("json");
        if let Some(v) = value["value"].as_str() {
            state.insert(key, v.to_string());
        }
    }
    writer.await.expect("writer");
    for event in all_events(&s, seq, "").await {
        match event.op {
            WatchOp::Put => state.insert(event.key, event.value.expect("value")),
            WatchOp::Delete | WatchOp::Expire => state.remove(&event.key),
        };
    }
    let mut truth = BTreeMap::new();
    let page: bitcask_wire::Page = s.get("/kv?limit=10000").await.json().await.expect("page");
    for key in page.keys {
        let value: serde_json::Value =
            serde_json::from_str(&s.get_text(&format!("/kv/{key}")).await).expect("json");
        truth.insert(key, value["value"].as_str().expect("value").to_string());
    }
    assert_eq!(state, truth);
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_neither_skips_nor_repeats() {
    let s = TestServer::start(&[]).await;
    for i in 0..10 {
        put(&s, &format!("k{i}"), &format!("{i}")).await;
    }
    let mut stream = Stream::open(&s, "?from_seq=0", &[]).await;
    let first = stream.events(4).await;
    drop(stream);
    let last = first[3].seq.to_string();
    // Last-Event-ID wins over from_seq.
    let mut again = Stream::open(&s, "?from_seq=0", &[("Last-Event-ID", &last)]).await;
    let rest = again.events(6).await;
    let seqs: Vec<u64> = first.iter().chain(&rest).map(|e| e.seq).collect();
    let expected: Vec<u64> = (first[0].seq..first[0].seq + 10).collect();
    assert_eq!(seqs, expected);
    // The same after an idle stream's progress: its id resumes after
    // everything looked at.
    let mut filtered = Stream::open(&s, "?from_seq=0&prefix=none", &[]).await;
    let start = filtered.next().await.expect("progress");
    assert_eq!(start.event, "progress");
    assert_eq!(start.id.as_deref(), None, "from 0 there is no seq before");
}

#[tokio::test]
async fn filters_select_by_prefix_range_and_op() {
    let s = TestServer::start(&[]).await;
    put(&s, "user/1", "a").await;
    put(&s, "users", "b").await;
    put(&s, "order/1", "c").await;
    delete(&s, "user/1").await;
    put(&s, "user/2", "d").await;
    let keys = |events: Vec<WatchEvent>| -> Vec<(WatchOp, String)> {
        events.into_iter().map(|e| (e.op, e.key)).collect()
    };
    assert_eq!(
        keys(all_events(&s, 0, "prefix=user/").await),
        vec![
            (WatchOp::Put, "user/1".into()),
            (WatchOp::Delete, "user/1".into()),
            (WatchOp::Put, "user/2".into()),
        ]
    );
    assert_eq!(
        keys(all_events(&s, 0, "start=order&end=user/2").await),
        vec![
            (WatchOp::Put, "user/1".into()),
            (WatchOp::Put, "order/1".into()),
            (WatchOp::Delete, "user/1".into()),
        ]
    );
    assert_eq!(
        keys(all_events(&s, 0, "ops=delete").await),
        vec![(WatchOp::Delete, "user/1".into())]
    );
}

#[tokio::test]
async fn a_long_poll_answers_at_the_first_event_or_empty_when_the_wait_ends() {
    let s = TestServer::start(&[]).await;
    let seq = put(&s, "a", "1").await;
    let from = seq + 1;
    let client = s.client.clone();
    let url = s.url(&format!("/watch?wait=20s&from_seq={from}"));
    let poll = tokio::spawn(async move { client.get(url).send().await.expect("poll") });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "the poll waits for an event");
    put(&s, "b", "2").await;
    let page: WatchPage = poll.await.expect("task").json().await.expect("page");
    assert_eq!(summary(&page.events)[0].2, "b");
    assert_eq!(page.next_seq, from + 1);
    // Nothing comes: an empty page when the wait ends, resuming at the same place.
    let empty = long_poll(&s, &format!("wait=300ms&from_seq={}", page.next_seq)).await;
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_seq, page.next_seq);
}

#[tokio::test]
async fn bad_parameters_are_refused_with_the_reason() {
    let s = TestServer::start(&[]).await;
    for query in [
        "?prefix=a&start=b",
        "?start=b&end=a",
        "?ops=put,upsert",
        "?format=json&limit=0",
        "?format=json&limit=10001",
        "?wait=soon",
        "?from_seq=-1",
        "?bogus=1",
    ] {
        let response = s.get(&format!("/watch{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(body["detail"].is_string(), "{query}: {body}");
    }
    let response = s
        .client
        .get(s.url("/watch"))
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn watchers_over_the_cap_are_turned_away_and_their_places_come_back() {
    let s = TestServer::start(&["--watch-max", "2"]).await;
    let first = Stream::open(&s, "", &[]).await;
    let _second = Stream::open(&s, "", &[]).await;
    let third = s.get("/watch").await;
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    let metrics = s.get_text("/metrics").await;
    assert!(metrics.contains("bitcask_watchers 2"), "{metrics}");
    drop(first);
    // The dropped stream's place comes back once the server notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        put(&s, "nudge", "x").await;
        let response = s.get("/watch?format=json").await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn watching_needs_the_token_when_one_is_set() {
    let s = TestServer::start(&["--auth-token", "sesame"]).await;
    assert_eq!(s.get("/watch").await.status(), 401);
    let response = s
        .client
        .get(s.url("/watch?format=json"))
        .bearer_auth("sesame")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn watching_counts_against_the_rate_limit() {
    let s = TestServer::start(&["--rate-limit", "2"]).await;
    // (The start-up's health checks have used some of the burst.)
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(s.get("/watch?format=json").await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(s.get("/watch?format=json").await.status(), 200);
}

#[tokio::test]
async fn an_expiry_the_store_enforces_is_an_expire_event() {
    let s = TestServer::start(&["--expire-interval", "20ms"]).await;
    let response = s
        .client
        .put(s.url("/kv/session?ttl=1"))
        .json(&serde_json::json!({ "value": "v" }))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);
    let page = long_poll(&s, "from_seq=0&ops=expire&wait=20s").await;
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].op, WatchOp::Expire);
    assert_eq!(page.events[0].key, "session");
    let put = long_poll(&s, "from_seq=0&ops=put").await;
    assert!(
        put.events[0].expires_at.is_some(),
        "the put says when it expires"
    );
}

#[tokio::test]
async fn stopping_the_server_ends_the_streams_with_where_to_resume() {
    let s = TestServer::start(&["--shutdown-timeout", "60s"]).await;
    let seq = put(&s, "a", "1").await;
    let mut stream = Stream::open(&s, "", &[]).await;
    assert_eq!(stream.next().await.expect("progress").event, "progress");
    let started = Instant::now();
    let stopping = tokio::spawn(s.stop());
    let mut last = None;
    while let Some(message) = stream.next().await {
        last = Some(message);
    }
    stopping.await.expect("stop");
    let last = last.expect("a last message");
    assert_eq!(
        last.comments,
        vec![format!(
            "closed: the server is stopping; resume from {}",
            seq + 1
        )]
    );
    // Not held until the shutdown time-out (60 s).
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_catch_up_under_load_neither_skip_nor_repeat() {
    // Watchers start while writers write: each replays the files, then
    // switches to the shared tail; the seqs they see must be exactly every
    // seq from their start on.
    let s = TestServer::start(&[]).await;
    for i in 0..200 {
        put(&s, &format!("seed{i}"), "v").await;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = s.client.clone();
            let url = s.url("");
            tokio::spawn(async move {
                for i in 0..300 {
                    let response = client
                        .put(format!("{url}/kv/w{w}-{}", i % 20))
                        .json(&serde_json::json!({ "value": format!("{i}") }))
                        .send()
                        .await
                        .expect("put");
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    let mut streams = Vec::new();
    for start in [1u64, 100, 150] {
        streams.push((
            start,
            Stream::open(&s, &format!("?from_seq={start}"), &[]).await,
        ));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let last = put(&s, "last", "v").await;
    for (start, mut stream) in streams {
        let events = stream.events((last - start + 1) as usize).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (start..=last).collect();
        assert_eq!(seqs, expected, "from {start}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_the_shared_tail_reads_the_rest_from_the_files() {
    // A small backlog holds the stream's producer while its client does not
    // read; the shared tail keeps only so many batches, so the stream falls
    // behind it and must take the rest from the files, whole.
    let s = TestServer::start(&[
        "--watch-max-backlog",
        "4KiB",
        "--watch-stall-timeout",
        "60s",
    ])
    .await;
    let first = put(&s, "first", "v").await;
    let mut stream = Stream::open(&s, &format!("?from_seq={first}"), &[]).await;
    // 12 MiB: more than the connection's socket buffers hold.
    let value = "x".repeat(8 << 10);
    let mut last = first;
    for i in 0..1_500 {
        last = put(&s, &format!("k{}", i % 50), &value).await;
    }
    let events = stream.events((last - first + 1) as usize).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
}
