//! The seed's wire contract (DESIGN.md, "Wire contract kept from the seed"),
//! row by row, byte for byte, against the real server on a loopback port.

mod common;

use common::{TestServer, text};

const JSON: &str = "application/json";

#[tokio::test]
async fn put_answers_the_seeds_success_body() {
    let s = TestServer::start(&[]).await;
    let r = s
        .client
        .put(s.url("/kv/greeting"))
        .header("content-type", JSON)
        .body(r#"{"value": "hello"}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], JSON);
    assert_eq!(
        text(r).await,
        r#"{"status":"success","message":"Key 'greeting' stored successfully"}"#
    );
}

#[tokio::test]
async fn get_of_a_present_and_an_absent_key() {
    let s = TestServer::start(&[]).await;
    s.client
        .put(s.url("/kv/greeting"))
        .header("content-type", JSON)
        .body(r#"{"value": "hello"}"#)
        .send()
        .await
        .expect("put");
    let r = s.get("/kv/greeting").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        text(r).await,
        r#"{"key":"greeting","value":"hello","found":true}"#
    );
    let r = s.get("/kv/missing").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        text(r).await,
        r#"{"key":"missing","value":null,"found":false}"#
    );
}

#[tokio::test]
async fn delete_of_a_present_and_an_absent_key_succeeds() {
    let s = TestServer::start(&[]).await;
    s.client
        .put(s.url("/kv/k"))
        .json(&serde_json::json!({"value": "v"}))
        .send()
        .await
        .expect("put");
    for _ in 0..2 {
        let r = s
            .client
            .delete(s.url("/kv/k"))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 200);
        assert_eq!(
            text(r).await,
            r#"{"status":"success","message":"Key 'k' deleted successfully"}"#
        );
    }
    assert_eq!(
        s.get_text("/kv/k").await,
        r#"{"key":"k","value":null,"found":false}"#
    );
}

#[tokio::test]
async fn health_names_the_crate_version() {
    let s = TestServer::start(&[]).await;
    let r = s.client.get(s.url("/health")).send().await.expect("health");
    assert_eq!(r.status(), 200);
    assert_eq!(
        text(r).await,
        format!(
            r#"{{"status":"healthy","version":"{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let s = TestServer::start(&[]).await;
    let r = s
        .client
        .get(s.url("/health"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .expect("health");
    assert_eq!(r.headers()["request-id"], "trace-123");
    let r = s.get("/kv/x").await;
    let made = r.headers()["request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    assert_eq!(made.matches('-').count(), 4, "a UUID: {made}");
    // Errors carry it too.
    let r = s
        .client
        .get(s.url("/nowhere"))
        .header("x-request-id", "err-1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["request-id"], "err-1");
}

#[tokio::test]
async fn errors_are_json_details_with_fitting_statuses() {
    let s = TestServer::start(&[]).await;
    let r = s.get("/nowhere").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], JSON);
    assert_eq!(text(r).await, r#"{"detail":"Not Found"}"#);
    let r = s.client.post(s.url("/kv/k")).send().await.expect("post");
    assert_eq!(r.status(), 405);
    assert_eq!(text(r).await, r#"{"detail":"Method Not Allowed"}"#);
    // Malformed JSON, a wrong shape, a wrong content type.
    let put = |body: &'static str, ct: Option<&'static str>| {
        let mut req = s.client.put(s.url("/kv/k")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let r = put("{not json", Some(JSON)).await.expect("put");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains("value"));
    let r = put(r#"{"value": 7}"#, Some(JSON)).await.expect("put");
    assert_eq!(r.status(), 422);
    let r = put(r#"{"other": "x"}"#, None).await.expect("put");
    assert_eq!(r.status(), 422, "no content type is read as JSON");
    let r = put("x", Some("text/plain")).await.expect("put");
    assert_eq!(r.status(), 415);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("application/json")
    );
}

#[tokio::test]
async fn multibyte_keys_values_and_slashes_round_trip() {
    let s = TestServer::start(&[]).await;
    for (key, value) in [
        ("users/42/profile", "plain"),
        ("ключ", "значение ✓ 🦀"),
        ("a b", "spaces and \"quotes\" and \\ backslashes"),
    ] {
        let path = format!("/kv/{}", key.replace(' ', "%20"));
        let r = s
            .client
            .put(s.url(&path))
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(
            text(r).await,
            format!(r#"{{"status":"success","message":"Key '{key}' stored successfully"}}"#)
        );
        let r = s.client.get(s.url(&path)).send().await.expect("get");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["key"], key);
        assert_eq!(body["value"], value);
        assert_eq!(body["found"], true);
    }
}

/// A plain key read is answered by the key-read lane (`lanes.rs`); the same
/// read with a query string goes through the router. On the wire, the two
/// answers are the same bytes but for the date and the request id.
#[tokio::test]
async fn a_key_read_is_the_same_on_the_wire_through_either_lane() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(&[]).await;
    assert_eq!(
        server.put_json("text", "hello \"world\"").await.status(),
        200
    );
    let raw = server
        .client
        .put(server.url("/kv/raw"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 0xff, 1])
        .send()
        .await
        .expect("put");
    assert_eq!(raw.status(), 200);
    let etag = server.get("/kv/text").await.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    // The answer without its `date` and `request-id` lines, headers sorted.
    let answer = |target: String, headers: String| {
        let addr = server.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request = format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await.expect("read");
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").expect("head");
            let mut lines: Vec<&str> = head.lines().collect();
            let status = lines.remove(0).to_string();
            lines.retain(|l| !l.starts_with("date:") && !l.starts_with("request-id:"));
            lines.sort_unstable();
            (status, lines.join("\n"), body.to_string())
        }
    };
    let raw_please = "Accept: application/octet-stream\r\n";
    let cases = [
        ("/kv/text", String::new()),
        ("/kv/absent", String::new()),
        ("/kv/raw", String::new()),
        ("/kv/raw", raw_please.to_string()),
        ("/kv/absent", raw_please.to_string()),
        ("/kv/text", format!("If-None-Match: {etag}\r\n")),
    ];
    for (path, headers) in cases {
        let lane = answer(path.to_string(), headers.clone()).await;
        let router = answer(format!("{path}?consistency=linearizable"), headers.clone()).await;
        assert_eq!(lane, router, "{path} {headers:?}");
    }
    let (status, head, body) = answer("/kv/text".to_string(), String::new()).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(
        body,
        r#"{"key":"text","value":"hello \"world\"","found":true}"#
    );
}
