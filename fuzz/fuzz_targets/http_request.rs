//! Arbitrary HTTP requests (method, path, headers, body) through the whole
//! router, on an open store: never a panic, never a 500.
#![no_main]
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use bitcask_server::config::Config;
use bitcask_server::state::AppState;
use tower::ServiceExt;

fn app() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bitcask-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::from_args([
            "bitcask-server",
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "--sync",
            "never",
            "--max-value-size",
            "4096",
        ])
        .expect("config");
        let state = AppState::new(config.clone()).expect("state");
        let store = bitcask::Bitcask::open_with(&dir, config.engine_options()).expect("open");
        state.set_store(Arc::new(store));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (runtime, bitcask_server::app::router(state))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (runtime, router) = app();
    // method byte, then "path\nheader: value\n...\n\nbody"
    let Some((method, rest)) = data.split_first() else {
        return;
    };
    let method =
        ["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD", "OPTIONS"][usize::from(*method) % 7];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let path = lines.next().unwrap_or_default();
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let mut request = Request::builder().method(method).uri(format!("/{path}"));
    for line in lines {
        if let Some(i) = line.iter().position(|&b| b == b':') {
            request = request.header(&line[..i], &line[i + 1..]);
        }
    }
    // Requests axum itself could never receive (an invalid URI or header)
    // are not the router's business.
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let response = runtime
        .block_on(router.clone().oneshot(request))
        .expect("infallible");
    assert_ne!(response.status().as_u16(), 500, "{method} /{path}");
});
