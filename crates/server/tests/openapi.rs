//! The OpenAPI document matches the server both ways: every route in the
//! router's table is documented, every documented operation is in the table,
//! and the real server answers each one (not 404 or 405).

mod common;

use std::collections::BTreeSet;

use common::TestServer;

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let s = TestServer::start(&[]).await;
    let r = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with('3'));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> =
        bitcask_server::app::route_table().into_iter().collect();
    assert_eq!(documented, routed, "OpenAPI document and router differ");

    for (method, path) in &documented {
        let mut url = s.url(&path.replace("{key}", "probe").replace("{id}", "7"));
        if path == "/watch" {
            // A long poll that answers at once (a stream would not end).
            url.push_str("?format=json");
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = s
            .client
            .request(method.clone(), url)
            .send()
            .await
            .expect("send");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        // The cluster routes answer a single node 404 with a reason of
        // their own: routed, not missing.
        let routed_404 = body.contains("single node");
        assert!(
            (status != 404 || routed_404) && status != 405,
            "{method} {path} documented but answered {status}: {body}"
        );
    }
}

/// What schemathesis found (scripts/schemathesis.sh, docs/RELIABILITY.md):
/// the document must state the limits the server enforces, or valid-looking
/// requests get refused and invalid ones accepted.
#[tokio::test]
async fn the_document_states_the_limits_the_server_enforces() {
    let s = TestServer::start(&[]).await;
    let doc: serde_json::Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let param = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    };
    let limit = param("/kv", "get", "limit").expect("limit");
    assert_eq!(
        (
            limit["schema"]["minimum"].as_u64(),
            limit["schema"]["maximum"].as_u64()
        ),
        (Some(1), Some(10_000))
    );
    let ttl = param("/kv/{key}", "put", "ttl").expect("ttl");
    assert_eq!(ttl["schema"]["minimum"], 1);
    assert_eq!(ttl["schema"]["maximum"], u64::from(u32::MAX));
    assert!(
        param("/kv/{key}", "delete", "ttl").is_none(),
        "a delete takes no ttl"
    );
    for (method, header) in [
        ("put", "If-Match"),
        ("put", "If-None-Match"),
        ("delete", "If-Match"),
    ] {
        let h = param("/kv/{key}", method, header).expect("header");
        assert_eq!(
            h["schema"]["type"], "string",
            "{method} {header}: not nullable"
        );
        assert!(h["schema"]["pattern"].is_string(), "{method} {header}: {h}");
    }
    let ops = doc["components"]["schemas"]["BatchOp"]["oneOf"]
        .as_array()
        .expect("oneOf");
    assert!(
        ops.iter().all(|op| op["additionalProperties"] == false),
        "{ops:?}"
    );

    // And the server enforces them.
    let status = |r: reqwest::Response| r.status().as_u16();
    let batch = |ttl: serde_json::Value| {
        s.client
            .post(s.url("/batch"))
            .json(
                &serde_json::json!({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": ttl}]}),
            )
            .send()
    };
    assert_eq!(
        status(
            batch(serde_json::json!(9_223_372_036_854_775_808u64))
                .await
                .expect("post")
        ),
        400
    );
    assert_eq!(
        status(batch(serde_json::json!(60.0)).await.expect("post")),
        200,
        "60.0 is a whole number"
    );
    assert_eq!(
        status(batch(serde_json::json!(1.5)).await.expect("post")),
        422
    );
    let put = s
        .client
        .put(s.url("/kv/k?ttl=4294967296"))
        .json(&serde_json::json!({"value": "v"}))
        .send()
        .await
        .expect("put");
    assert_eq!(status(put), 400);
    let extra = s
        .client
        .post(s.url("/batch"))
        .json(&serde_json::json!({"ops": [{"op": "delete", "key": "k", "value": "v"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(
        status(extra),
        422,
        "an unknown field in an operation is refused, as documented"
    );
}
