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
        let url = s.url(&path.replace("{key}", "probe"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = s
            .client
            .request(method.clone(), url)
            .send()
            .await
            .expect("send");
        assert!(
            r.status() != 404 && r.status() != 405,
            "{method} {path} documented but answered {}",
            r.status()
        );
    }
}
