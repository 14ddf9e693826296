//! What the server adds beyond the seed: raw binary values, versions and
//! conditional writes, size limits, auth, listing, batches, time-to-live,
//! per-request durability, stats, merge, and many clients at once.

mod common;

use std::time::Duration;

use common::{TestServer, text};

const OCTET: &str = "application/octet-stream";

/// `GET path` asking for the raw bytes.
async fn get_raw(s: &TestServer, path: &str) -> reqwest::Response {
    s.client
        .get(s.url(path))
        .header("accept", OCTET)
        .send()
        .await
        .expect("get")
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().expect("ascii").to_string()
}

#[tokio::test]
async fn binary_values_round_trip_raw_and_are_never_mangled_in_json() {
    let s = TestServer::start(&[]).await;
    let bytes: Vec<u8> = vec![0x00, 0xFF, 0xC3, 0x28, b'\n', 0x80];
    let r = s
        .client
        .put(s.url("/kv/blob"))
        .header("content-type", OCTET)
        .body(bytes.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let r = get_raw(&s, "/kv/blob").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], OCTET);
    assert_eq!(r.bytes().await.expect("body").to_vec(), bytes);
    // Asked for as JSON, a value that is not UTF-8 is refused, not mangled.
    let r = s.get("/kv/blob").await;
    assert_eq!(r.status(), 406);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains(OCTET));
    // Raw mode answers 404 for an absent key.
    let r = get_raw(&s, "/kv/nothing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(text(r).await, r#"{"detail":"Key 'nothing' not found"}"#);
}

#[tokio::test]
async fn versions_as_etags_and_conditional_writes() {
    let s = TestServer::start(&[]).await;
    let r = s.put_json("k", "1").await;
    let v1 = etag(&r);
    let r = s.get("/kv/k").await;
    assert_eq!(etag(&r), v1, "GET answers the stored version");

    // If-None-Match: * only creates.
    let r = s.put_json_with("k", "2", &[("if-none-match", "*")]).await;
    assert_eq!(r.status(), 412);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains("version"));
    // If-Match with the current version succeeds and answers the new one.
    let r = s.put_json_with("k", "2", &[("if-match", &v1)]).await;
    assert_eq!(r.status(), 200);
    let v2 = etag(&r);
    assert_ne!(v2, v1);
    // The old version no longer matches, for puts and deletes.
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = s
            .client
            .request(method, s.url("/kv/k"))
            .header("if-match", &v1)
            .json(&serde_json::json!({"value": "3"}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 412);
    }
    assert_eq!(
        s.get_text("/kv/k").await,
        r#"{"key":"k","value":"2","found":true}"#
    );
    let r = s
        .client
        .delete(s.url("/kv/k"))
        .header("if-match", &v2)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    assert!(etag(&r) != v2, "a delete answers its own version");
    let r = s
        .put_json_with("k", "x", &[("if-match", "not-a-version")])
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn preconditions_follow_rfc_9110() {
    let s = TestServer::start(&[]).await;
    let v = etag(&s.put_json("k", "1").await);
    let number: u64 = v.trim_matches('"').parse().expect("a version");
    // If-Match compares strongly: a weak tag, an opaque tag or a list of
    // those never matches (412, not 400); a list holding the current
    // version matches.
    for tags in [
        format!("W/{v}"),
        r#""opaque""#.to_string(),
        format!(r#"W/{v}, "x""#),
    ] {
        let r = s.put_json_with("k", "2", &[("if-match", &tags)]).await;
        assert_eq!(r.status(), 412, "If-Match: {tags}");
    }
    let listed = format!(r#""{}", {v}, W/"9""#, number + 1000);
    let r = s.put_json_with("k", "2", &[("if-match", &listed)]).await;
    assert_eq!(r.status(), 200, "If-Match: {listed}");
    let v2 = etag(&r);
    // If-None-Match on a read compares weakly: 304 with the ETag, no body.
    for tags in [
        v2.clone(),
        format!("W/{v2}"),
        format!(r#""1", {v2}"#),
        "*".into(),
    ] {
        let r = s
            .client
            .get(s.url("/kv/k"))
            .header("if-none-match", &tags)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 304, "If-None-Match: {tags}");
        assert_eq!(etag(&r), v2);
        assert!(r.bytes().await.expect("body").is_empty());
    }
    // Raw reads too; another version, or none, is answered in full.
    let r = s
        .client
        .get(s.url("/kv/k"))
        .header("accept", OCTET)
        .header("if-none-match", &v2)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 304);
    let r = s
        .client
        .get(s.url("/kv/k"))
        .header("if-none-match", &v)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(text(r).await, r#"{"key":"k","value":"2","found":true}"#);
    let r = s
        .client
        .get(s.url("/kv/absent"))
        .header("if-none-match", "*")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "an absent key is not modified by nothing");
}

#[tokio::test]
async fn oversized_keys_values_and_bodies_are_refused_with_413() {
    let s = TestServer::start(&["--max-value-size", "100", "--max-key-size", "16"]).await;
    let r = s.put_json("k", &"x".repeat(101)).await;
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains("100"));
    let r = s.put_json(&"k".repeat(17), "v").await;
    assert_eq!(r.status(), 413);
    // A body far over the limit is cut off before it is read whole.
    let r = s
        .client
        .put(s.url("/kv/k"))
        .header("content-type", OCTET)
        .body(vec![0u8; 2 << 20])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        s.get_text("/kv/k").await,
        r#"{"key":"k","value":null,"found":false}"#
    );
}

#[tokio::test]
async fn a_bearer_token_guards_every_route_but_health() {
    let s = TestServer::start(&["--auth-token", "s3cret"]).await;
    let r = s.client.get(s.url("/health")).send().await.expect("health");
    assert_eq!(r.status(), 200);
    for (path, token) in [("/kv/k", None), ("/kv/k", Some("wrong")), ("/stats", None)] {
        let mut req = s.client.get(s.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("get");
        assert_eq!(r.status(), 401, "{path} {token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body = text(r).await;
        assert!(body.starts_with(r#"{"detail":"#) && !body.contains("s3cret"));
    }
    let r = s
        .client
        .get(s.url("/kv/k"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn listing_pages_through_a_prefix_in_order() {
    let s = TestServer::start(&[]).await;
    for i in (0..25).rev() {
        s.put_json(&format!("user/{i:02}"), "u").await;
    }
    s.put_json("zzz", "other").await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = s.url("/kv?prefix=user/&limit=10");
        if let Some(a) = &after {
            url.push_str(&format!("&start_after={a}"));
        }
        let page: serde_json::Value = s
            .client
            .get(url)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        for k in page["keys"].as_array().expect("keys") {
            seen.push(k.as_str().expect("str").to_string());
        }
        match page["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user/{i:02}")).collect();
    assert_eq!(seen, expected);
    // Folded at `/`: folders once each, in `prefixes`; the limit counts both.
    s.put_json("user/07/avatar", "a").await;
    let page: serde_json::Value = s
        .get("/kv?delimiter=/&limit=2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["prefixes"], serde_json::json!(["user/"]));
    assert_eq!(page["keys"], serde_json::json!(["zzz"]));
    assert_eq!(page["next_start_after"], serde_json::Value::Null);
    let page: serde_json::Value = s
        .get("/kv?prefix=user/&delimiter=/&start_after=user/05&limit=3")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["keys"], serde_json::json!(["user/06", "user/07"]));
    assert_eq!(page["prefixes"], serde_json::json!(["user/07/"]));
    assert_eq!(page["next_start_after"], "user/07/");
    assert_eq!(s.get("/kv?delimiter=").await.status(), 400);
    assert_eq!(s.get("/kv?limit=0").await.status(), 400);
}

#[tokio::test]
async fn a_base64_listing_shows_keys_of_any_bytes_and_pages_on_them() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let dir = tempfile::tempdir().expect("tempdir");
    // Keys that are not UTF-8 come from RESP or the engine, not from HTTP paths.
    // In byte order.
    let keys: Vec<Vec<u8>> = vec![
        b"bin/\x00".to_vec(),
        b"bin/plain".to_vec(),
        b"bin/\xff\xfe".to_vec(),
        b"other".to_vec(),
    ];
    {
        let db = bitcask::Bitcask::open(dir.path()).expect("open");
        for k in &keys {
            db.put(k, b"v").expect("put");
        }
    }
    let s = TestServer::start_in(dir, &[]).await;
    let list = |query: String| {
        let url = s.url(&format!("/kv?{query}"));
        let client = s.client.clone();
        async move { client.get(url).send().await.expect("list") }
    };
    let prefix = b64(b"bin/");
    let r = list(format!(
        "encoding=base64&limit=2&prefix={}",
        urlencode(&prefix)
    ))
    .await;
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.expect("json");
    assert_eq!(page["encoding"], "base64");
    assert_eq!(
        page["keys"],
        serde_json::json!([b64(&keys[0]), b64(&keys[1])])
    );
    assert_eq!(page["next_start_after"], b64(&keys[1]));
    let after = page["next_start_after"]
        .as_str()
        .expect("cursor")
        .to_string();
    let page: serde_json::Value = list(format!(
        "encoding=base64&limit=2&prefix={}&start_after={}",
        urlencode(&prefix),
        urlencode(&after)
    ))
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(page["keys"], serde_json::json!([b64(&keys[2])]));
    assert_eq!(page["next_start_after"], serde_json::Value::Null);
    // Without the encoding, the same keys are text with U+FFFD, and the
    // page says no encoding.
    let page: serde_json::Value = list("prefix=bin/".into()).await.json().await.expect("json");
    assert_eq!(page["keys"][2], "bin/\u{fffd}\u{fffd}");
    assert!(page.get("encoding").is_none(), "{page}");
    // A prefix that is not base64 is refused with a reason.
    let r = list("encoding=base64&prefix=%25%25".into()).await;
    assert_eq!(r.status(), 400);
    assert!(text(r).await.contains("prefix is not base64"));
    let r = list("encoding=hex".into()).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn keys_of_any_bytes_are_named_by_percent_encoding() {
    let s = TestServer::start(&[]).await;
    // `%FF%FE` is a key that is not UTF-8 (until now only RESP wrote them).
    let r = s
        .client
        .put(s.url("/kv/bin%FF%FE"))
        .header("content-type", OCTET)
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(
        text(r).await,
        "{\"status\":\"success\",\"message\":\"Key 'bin\u{fffd}\u{fffd}' stored successfully\"}"
    );
    let r = get_raw(&s, "/kv/bin%ff%fe").await;
    assert_eq!(r.status(), 200, "hex digits in either case");
    assert_eq!(r.bytes().await.expect("body").to_vec(), vec![1u8, 2, 3]);
    let page: serde_json::Value = s
        .get("/kv?encoding=base64")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        page["keys"],
        serde_json::json!(["Ymlu//4="]),
        "the bytes b\"bin\\xff\\xfe\""
    );
    // `%2F` and `/` name the same key; a UTF-8 key reads as before.
    s.put_json("a/b", "slash").await;
    assert_eq!(
        s.get_text("/kv/a%2Fb").await,
        r#"{"key":"a/b","value":"slash","found":true}"#
    );
    assert_eq!(
        s.get_text("/kv/caf%C3%A9").await,
        r#"{"key":"café","value":null,"found":false}"#
    );
    let r = s
        .client
        .delete(s.url("/kv/bin%FF%FE"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    let r = get_raw(&s, "/kv/bin%FF%FE").await;
    assert_eq!(r.status(), 404);
}

/// Percent-encodes the characters of base64 a query string would misread.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test]
async fn batches_apply_all_or_nothing() {
    let s = TestServer::start(&[]).await;
    s.put_json("gone", "soon").await;
    let r = s
        .client
        .post(s.url("/batch?durable=true"))
        .json(&serde_json::json!({"ops": [
            {"op": "put", "key": "a", "value": "1"},
            {"op": "put", "key": "b", "value": "2", "ttl": 3600},
            {"op": "delete", "key": "gone"}
        ]}))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "success");
    assert_eq!(body["count"], 3);
    for (k, want) in [("a", "1"), ("b", "2")] {
        let r = s.get(&format!("/kv/{k}")).await;
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["value"], want);
    }
    // A batch with one bad operation applies none of them.
    let r = s
        .client
        .post(s.url("/batch"))
        .json(&serde_json::json!({"ops": [
            {"op": "put", "key": "c", "value": "3"},
            {"op": "frobnicate", "key": "d"}
        ]}))
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 422);
    assert_eq!(
        s.get_text("/kv/c").await,
        r#"{"key":"c","value":null,"found":false}"#
    );
}

#[tokio::test]
async fn batch_conditions_are_checked_together_and_the_first_failure_is_named() {
    let s = TestServer::start(&[]).await;
    let batch = |ops: serde_json::Value| {
        let request = s
            .client
            .post(s.url("/batch"))
            .json(&serde_json::json!({ "ops": ops }));
        async move {
            let r = request.send().await.expect("batch");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    // A transfer: both keys must be as read, the log entry must be new.
    let (status, body) = batch(serde_json::json!([
        {"op": "put", "key": "from", "value": "90", "if_absent": true},
        {"op": "put", "key": "to", "value": "10", "if_absent": true}
    ]))
    .await;
    assert_eq!(status, 200, "{body}");
    let from = body["version"].as_u64().expect("version") - 1;
    let to = from + 1;
    let (status, body) = batch(serde_json::json!([
        {"op": "put", "key": "from", "value": "80", "if_version": from},
        {"op": "put", "key": "to", "value": "20", "if_version": to},
        {"op": "put", "key": "log/1", "value": "moved 10", "if_absent": true},
        {"op": "check", "key": "frozen", "if_absent": true}
    ]))
    .await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(4)), "{body}");
    // Replayed: the first condition no longer holds; nothing is applied,
    // and the answer names operation 0 with the key's version now.
    let (status, body) = batch(serde_json::json!([
        {"op": "delete", "key": "untouched"},
        {"op": "put", "key": "from", "value": "70", "if_version": from},
        {"op": "put", "key": "log/1", "value": "again", "if_absent": true}
    ]))
    .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["failed"]["op"], 1);
    assert_eq!(body["failed"]["key"], "from");
    assert!(body["failed"]["current_version"].as_u64().expect("present") > from);
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("operation 1")
    );
    assert_eq!(
        s.get_text("/kv/from").await,
        r#"{"key":"from","value":"80","found":true}"#
    );
    // A check of an absent key that must be present, after conditions
    // that hold: the check is named.
    let (status, body) = batch(serde_json::json!([
        {"op": "put", "key": "x", "value": "1", "if_absent": true},
        {"op": "check", "key": "nothing", "if_present": true}
    ]))
    .await;
    assert_eq!(status, 412);
    assert_eq!(body["failed"]["op"], 1);
    assert_eq!(body["failed"]["current_version"], serde_json::Value::Null);
    assert_eq!(
        s.get_text("/kv/x").await,
        r#"{"key":"x","value":null,"found":false}"#,
        "nothing of a refused batch"
    );
    // Conditions see the store before the batch: two puts of one absent
    // key both pass, the later wins. A check alone writes nothing.
    let (status, _) = batch(serde_json::json!([
        {"op": "put", "key": "twice", "value": "1", "if_absent": true},
        {"op": "put", "key": "twice", "value": "2", "if_absent": true}
    ]))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.get_text("/kv/twice").await,
        r#"{"key":"twice","value":"2","found":true}"#
    );
    let (status, body) = batch(serde_json::json!([
        {"op": "check", "key": "twice", "if_present": true}
    ]))
    .await;
    assert_eq!(
        (status, body["version"].clone()),
        (200, serde_json::Value::Null)
    );
    // Malformed conditions: 422.
    for bad in [
        serde_json::json!([{"op": "put", "key": "k", "value": "v", "if_absent": true, "if_version": 1}]),
        serde_json::json!([{"op": "check", "key": "k"}]),
        serde_json::json!([{"op": "check", "key": "k", "if_version": "one"}]),
    ] {
        let (status, body) = batch(bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_ttl_expires_the_value() {
    let s = TestServer::start(&[]).await;
    let r = s
        .client
        .put(s.url("/kv/session?ttl=1"))
        .json(&serde_json::json!({"value": "token"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let r = s.get("/kv/session").await;
    let expires_at: u64 = r.headers()["x-bitcask-expires-at"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Unix ms");
    assert!(
        expires_at > now_ms - 2_000 && expires_at <= now_ms + 1_000,
        "{expires_at} vs now {now_ms}"
    );
    assert_eq!(
        text(r).await,
        r#"{"key":"session","value":"token","found":true}"#
    );
    let r = get_raw(&s, "/kv/session").await;
    assert_eq!(
        r.headers()["x-bitcask-expires-at"].to_str().expect("ascii"),
        expires_at.to_string(),
        "raw reads say it too"
    );
    s.put_json("forever", "v").await;
    let r = s.get("/kv/forever").await;
    assert!(r.headers().get("x-bitcask-expires-at").is_none());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        s.get_text("/kv/session").await,
        r#"{"key":"session","value":null,"found":false}"#
    );
    let r = s
        .client
        .put(s.url("/kv/x?ttl=0"))
        .json(&serde_json::json!({"value": "v"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn durable_writes_fsync_under_an_interval_policy() {
    let s = TestServer::start(&["--sync", "1m"]).await;
    let fsyncs = || async {
        let stats = s.stats().await;
        stats["fsyncs"].as_u64().expect("fsyncs")
    };
    let before = fsyncs().await;
    s.put_json("cheap", "v").await;
    assert_eq!(
        fsyncs().await,
        before,
        "no fsync for a plain write under a 1-minute interval"
    );
    let r = s
        .client
        .put(s.url("/kv/critical?durable=true"))
        .json(&serde_json::json!({"value": "v"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert!(
        fsyncs().await > before,
        "a durable write waits for an fsync"
    );
}

#[tokio::test]
async fn stats_and_admin_merge() {
    let s = TestServer::start(&["--max-file-size", "4096"]).await;
    for round in 0..5 {
        for i in 0..40 {
            s.put_json(&format!("k{i}"), &format!("value-{round}"))
                .await;
        }
    }
    let stats = s.stats().await;
    assert_eq!(stats["keys"], 40);
    assert!(stats["dead_bytes"].as_u64().expect("dead") > 0);
    let r = s
        .client
        .post(s.url("/admin/merge"))
        .send()
        .await
        .expect("merge");
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.expect("json");
    assert!(
        report["files_merged"].as_u64().expect("files") > 0,
        "{report}"
    );
    assert!(report["bytes_reclaimed"].as_u64().expect("bytes") > 0);
    let stats = s.stats().await;
    assert_eq!(stats["recent_merges"], serde_json::json!([report]));
    assert_eq!(stats["last_merge"], report);
    assert_eq!(
        s.get_text("/kv/k7").await,
        r#"{"key":"k7","value":"value-4","found":true}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_in_parallel_see_their_own_writes() {
    let s = std::sync::Arc::new(TestServer::start(&[]).await);
    let mut tasks = Vec::new();
    for c in 0..16 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("client{c}/key{i}");
                let r = s.put_json(&key, &format!("{c}-{i}")).await;
                assert_eq!(r.status(), 200);
                let r = s.get(&format!("/kv/{key}")).await;
                let v: serde_json::Value = r.json().await.expect("json");
                assert_eq!(v["value"], format!("{c}-{i}"));
                if i % 5 == 0 {
                    let r = s
                        .client
                        .delete(s.url(&format!("/kv/{key}")))
                        .send()
                        .await
                        .expect("delete");
                    assert_eq!(r.status(), 200);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let stats = s.stats().await;
    assert_eq!(stats["keys"], 16 * 40);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_the_store() {
    let s = TestServer::start(&[]).await;
    for i in 0..3 {
        s.put_json(&format!("k{i}"), "v").await;
    }
    s.get("/kv/k0").await;
    s.get("/nowhere").await;
    let r = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let body = text(r).await;
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in:\n{body}"))
            .to_string()
    };
    assert!(
        line(r#"bitcask_http_requests_total{method="PUT",route="/kv/{*key}",status="200"}"#)
            .ends_with(" 3")
    );
    assert!(
        line(r#"bitcask_http_requests_total{method="GET",route="unmatched",status="404"}"#)
            .ends_with(" 1")
    );
    assert!(
        line(r#"bitcask_http_request_duration_seconds_count{method="GET",route="/kv/{*key}"}"#)
            .ends_with(" 1")
    );
    assert_eq!(line("bitcask_keys "), "bitcask_keys 3");
    assert_eq!(line("bitcask_store_open "), "bitcask_store_open 1");
    // The client's pooled connection is the one open.
    assert_eq!(
        line("bitcask_http_connections "),
        "bitcask_http_connections 1"
    );
    assert!(!body.contains("k0"), "keys never become labels");
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after() {
    let s = TestServer::start(&["--rate-limit", "5"]).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let r = s.get("/kv/k").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 && limited.is_none() {
            let retry = r.headers().get("retry-after").cloned();
            limited = Some((retry, text(r).await));
        }
    }
    assert_eq!(statuses[0], 200);
    let (retry, body) = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert!(retry.is_some(), "429 carries Retry-After");
    assert!(body.starts_with(r#"{"detail":"#), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_over_the_concurrency_cap_are_shed_with_503() {
    let s = std::sync::Arc::new(TestServer::start(&["--max-concurrent-requests", "1"]).await);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let s = std::sync::Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            // (/health and /metrics are never shed: see hostile.rs.)
            let r = s.get("/stats").await;
            let status = r.status().as_u16();
            (status, text(r).await)
        }));
    }
    let mut shed = 0;
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            200 => {}
            503 => {
                shed += 1;
                assert!(body.contains("retry shortly"), "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        shed > 0,
        "200 simultaneous requests with a cap of 1: none shed"
    );
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start(&["--request-timeout", "200ms"]).await;
    // A client that announces a body and then stalls.
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(
        b"PUT /kv/slow HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"value\":",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"detail":"#), "{answer}");
}

#[tokio::test]
async fn background_merges_start_by_themselves_when_configured() {
    let s = TestServer::start(&[
        "--max-file-size",
        "4096",
        "--merge-check-interval",
        "50ms",
        "--merge-dead-bytes",
        "1",
    ])
    .await;
    for round in 0..5 {
        for i in 0..40 {
            let r = s
                .put_json(
                    &format!("k{i}"),
                    &format!("value-{round}-{}", "x".repeat(50)),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stats = s.stats().await;
        if stats["merges_completed"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(stats["keys"], 40);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no merge ran: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let off =
        TestServer::start(&["--merge-check-interval", "off", "--max-file-size", "4096"]).await;
    for i in 0..200 {
        off.put_json("same", &format!("{i}-{}", "y".repeat(60)))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        off.stats().await["merges_completed"],
        0,
        "off means on request only"
    );
}

/// Flips a byte in the middle of `needle`, in whichever data file holds it.
fn damage_value(dir: &std::path::Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "data") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("read");
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + needle.len() / 2] ^= 0x40;
            std::fs::write(&path, bytes).expect("write");
            return;
        }
    }
    panic!("no data file holds the value");
}

#[tokio::test]
async fn damage_met_at_read_time_is_answered_without_paths_counted_and_reported_degraded() {
    // Small files: the damaged record is in a sealed file with a valid
    // hint, so the open does not notice it.
    let flags = ["--max-file-size", "4096"];
    let server = TestServer::start(&flags).await;
    let value = |i: u32| format!("value-of-key-{i:04}-").repeat(4);
    for i in 0..200u32 {
        assert_eq!(
            server
                .put_json(&format!("key-{i}"), &value(i))
                .await
                .status(),
            200
        );
    }
    let dir = server.stop().await;
    damage_value(dir.path(), value(7).as_bytes());
    damage_value(dir.path(), value(150).as_bytes());
    let server = TestServer::start_in(dir, &flags).await;
    let health: serde_json::Value = server.get("/health").await.json().await.expect("json");
    assert_eq!(
        health["status"], "healthy",
        "the open reads hints only: {health}"
    );

    let answer = server.get("/kv/key-7").await;
    assert_eq!(answer.status(), 500);
    let detail = text(answer).await;
    assert!(detail.contains("corrupt"), "{detail}");
    assert!(
        !detail.contains(".data") && !detail.contains(&server.data_dir().display().to_string()),
        "no internal path: {detail}"
    );
    let _ = server.get("/kv/key-7").await;
    assert_eq!(
        server.get("/kv/key-8").await.status(),
        200,
        "the rest is served"
    );

    let health = server.get("/health").await;
    assert_eq!(health.status(), 200, "still alive for a liveness probe");
    let health: serde_json::Value = health.json().await.expect("json");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["damaged_records"], 1);
    assert!(
        health["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bitcask check"))
    );
    let stats = server.stats().await;
    assert_eq!(
        (
            stats["damaged_records"].as_u64(),
            stats["damaged_reads"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("\nbitcask_damaged_records 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nbitcask_damaged_reads_total 2\n"),
        "{metrics}"
    );

    // A scrub finds the record no read has met.
    let scrub = server
        .client
        .post(server.url("/admin/scrub"))
        .send()
        .await
        .expect("scrub");
    assert_eq!(scrub.status(), 200);
    let report: serde_json::Value = scrub.json().await.expect("json");
    assert_eq!(report["damaged_records"], 2, "{report}");
    assert!(
        report["files_verified"].as_u64().is_some_and(|n| n >= 3),
        "{report}"
    );
    let stats = server.stats().await;
    assert_eq!(stats["damaged_records"], 2);
    assert_eq!(stats["scrubs_completed"], 1);
    assert_eq!(stats["last_scrub"], report);
    let health: serde_json::Value = server.get("/health").await.json().await.expect("json");
    assert_eq!(health["damaged_records"], 2);
}

/// `POST /admin/backup`, with `body` as JSON if given.
async fn post_backup(server: &TestServer, body: Option<&str>) -> reqwest::Response {
    let mut request = server.client.post(server.url("/admin/backup"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.expect("backup")
}

#[tokio::test]
async fn backups_go_only_into_the_configured_directory_under_a_plain_new_name() {
    let server = TestServer::start(&[]).await;
    let off = post_backup(&server, None).await;
    assert_eq!(off.status(), 403, "no --backup-dir: refused");
    assert!(text(off).await.contains("--backup-dir"));
    let dir = server.stop().await;

    let backups = tempfile::tempdir().expect("tempdir");
    let root = backups.path().to_str().expect("utf-8").to_string();
    let server = TestServer::start_in(dir, &["--backup-dir", &root]).await;
    for i in 0..50 {
        assert_eq!(server.put_json(&format!("k{i}"), "v").await.status(), 200);
    }
    let made = post_backup(&server, Some(r#"{"name": "first"}"#)).await;
    assert_eq!(made.status(), 200);
    let report: serde_json::Value = made.json().await.expect("json");
    assert_eq!(report["name"], "first");
    assert!(report["bytes"].as_u64().is_some_and(|b| b > 0), "{report}");
    // A write after the backup is not in it.
    assert_eq!(server.put_json("later", "v").await.status(), 200);

    let again = post_backup(&server, Some(r#"{"name": "first"}"#)).await;
    assert_eq!(again.status(), 409, "an existing name is never overwritten");
    for bad in [
        r#"{"name": "../escape"}"#,
        r#"{"name": "a/b"}"#,
        r#"{"name": "/tmp/x"}"#,
        r#"{"name": ""}"#,
        r#"{"name": ".hidden"}"#,
    ] {
        let answer = post_backup(&server, Some(bad)).await;
        assert_eq!(answer.status(), 400, "{bad}");
    }
    let wrong_shape = post_backup(&server, Some(r#"{"path": "/etc"}"#)).await;
    assert_eq!(wrong_shape.status(), 422);
    let plain = server
        .client
        .post(server.url("/admin/backup"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("backup");
    assert_eq!(plain.status(), 415);
    let unnamed = post_backup(&server, None).await;
    assert_eq!(unnamed.status(), 200);
    let unnamed: serde_json::Value = unnamed.json().await.expect("json");
    let unnamed = unnamed["name"].as_str().expect("name").to_string();
    assert!(unnamed.starts_with("bitcask-"), "{unnamed}");

    // Only the two copies, both inside the backup directory; nothing escaped.
    let mut made: Vec<String> = std::fs::read_dir(backups.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    let mut want = vec!["first".to_string(), unnamed];
    want.sort();
    assert_eq!(made, want);
    assert!(
        !backups
            .path()
            .parent()
            .expect("parent")
            .join("escape")
            .exists()
    );

    // The copy opens as a store holding what was there at the backup.
    let copy = bitcask::Bitcask::open(backups.path().join("first")).expect("open the copy");
    assert_eq!(copy.len(), 50);
    assert_eq!(copy.get(b"k7").expect("get"), Some(b"v".to_vec()));
    assert_eq!(copy.get(b"later").expect("get"), None);
}
