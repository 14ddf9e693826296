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
