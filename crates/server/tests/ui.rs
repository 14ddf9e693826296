//! The console's files over HTTP (docs/UI.md): content types, strong ETags
//! and 304s, the security headers on every answer, no token needed for the
//! files (but still for the API), and `--ui off`. What the page does is
//! tested in a browser: `tests/console/` (scripts/ui-check.sh).

mod common;

use common::TestServer;

const FILES: &[(&str, &str)] = &[
    ("/ui/", "text/html; charset=utf-8"),
    ("/ui/index.html", "text/html; charset=utf-8"),
    ("/ui/app.js", "text/javascript; charset=utf-8"),
    ("/ui/keys.js", "text/javascript; charset=utf-8"),
    ("/ui/style.css", "text/css; charset=utf-8"),
    ("/ui/favicon.svg", "image/svg+xml"),
];

fn assert_secured(r: &reqwest::Response) {
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("ascii");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn every_file_has_its_type_a_strong_etag_and_the_security_headers() {
    let s = TestServer::start(&[]).await;
    for (path, content_type) in FILES {
        let r = s.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], *content_type, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        assert_secured(&r);
        let etag = r.headers()["etag"].clone();
        assert!(!etag.to_str().expect("ascii").starts_with("W/"), "strong");
        assert!(!r.bytes().await.expect("body").is_empty());
        // Asked again with its tag: 304, no body, the same tag.
        let again = s
            .client
            .get(s.url(path))
            .header("if-none-match", etag.clone())
            .send()
            .await
            .expect("get");
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"], etag);
        assert_secured(&again);
        assert!(again.bytes().await.expect("body").is_empty());
    }
    // Another tag gets the file.
    let r = s
        .client
        .get(s.url("/ui/app.js"))
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ui_redirects_to_the_page_and_unknown_files_are_404() {
    let s = TestServer::start(&[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client.get(s.url("/ui")).send().await.expect("get");
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");
    for path in ["/ui/nothing.js", "/ui/..%2Fstats", "/ui/%2e%2e", "/ui/a/b"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = s.get("/ui/secret.js").await;
    assert_secured(&r);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].is_string());
    // Only reads: the files cannot be written.
    let r = s
        .client
        .put(s.url("/ui/app.js"))
        .body("alert(1)")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn with_a_token_the_files_load_without_it_and_the_api_still_needs_it() {
    let s = TestServer::start(&["--auth-token", "sesame"]).await;
    for (path, _) in FILES {
        assert_eq!(s.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(s.get("/kv?limit=1").await.status(), 401);
    assert_eq!(s.get("/stats").await.status(), 401);
    // A path that only looks like the console's is not let through.
    assert_eq!(s.get("/uix").await.status(), 401);
    assert_eq!(s.get("/kv/ui/x").await.status(), 401);
    let r = s
        .client
        .get(s.url("/kv?limit=1"))
        .bearer_auth("sesame")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ui_off_removes_the_routes() {
    let s = TestServer::start(&["--ui", "off"]).await;
    for path in ["/ui", "/ui/", "/ui/app.js"] {
        assert_eq!(s.get(path).await.status(), 404, "{path}");
    }
    assert_eq!(s.get("/health").await.status(), 200);
}

#[test]
fn the_ui_is_on_by_default_and_other_values_are_refused() {
    use bitcask_server::config::{Config, OnOff};
    let c = Config::from_args(["bitcask-server"]).expect("defaults");
    assert_eq!(c.ui, OnOff::On);
    assert!(Config::from_args(["bitcask-server", "--ui", "maybe"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_file_requests_and_huge_tags_leave_the_api_answering() {
    let s = TestServer::start(&[]).await;
    s.put_json("k", "v").await;
    // 64 clients each fetching every file ten times, with a long
    // If-None-Match list that matches nothing.
    let tags: String = (0..1_000)
        .map(|i| format!("\"{i:032x}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = reqwest::Client::new();
        let base = s.url("");
        let tags = tags.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                for (path, _) in FILES {
                    let r = client
                        .get(format!("{base}{path}"))
                        .header("if-none-match", &tags)
                        .send()
                        .await
                        .expect("get");
                    assert_eq!(r.status(), 200, "{path}");
                    r.bytes().await.expect("body");
                    ok += 1;
                }
            }
            ok
        }));
    }
    // The API answers meanwhile.
    for _ in 0..20 {
        assert_eq!(
            s.get_text("/kv/k").await,
            r#"{"key":"k","value":"v","found":true}"#
        );
    }
    let mut served = 0;
    for task in tasks {
        served += task.await.expect("task");
    }
    assert_eq!(served, 64 * 10 * FILES.len());
    // A header over the server's limit is refused, not buffered.
    let r = s
        .client
        .get(s.url("/ui/app.js"))
        .header("if-none-match", "x".repeat(200 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }
    assert_eq!(s.get("/health").await.status(), 200);
}
