//! CPU cost of answering `GET /kv/{key}` above the HTTP stack: through the
//! key-read lane (`lanes::answer_key_read`) and through the router with all
//! its layers, for the same request (a found key of 100 bytes, the headers
//! oha sends). No sockets: what is left is the server's own work per
//! request, which `scripts/http-cpu.sh` measures in whole.
//!
//! `cargo bench -p bitcask-server --bench key_read`
#![allow(missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use bitcask_server::config::Config;
use bitcask_server::lanes::answer_key_read;
use bitcask_server::state::AppState;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

// The server's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn request(key: u32) -> Request<Body> {
    Request::get(format!("/kv/key-{key:04}00000"))
        .header("host", "127.0.0.1:18410")
        .header("user-agent", "oha/1.16.0")
        .header("accept", "*/*")
        .body(Body::empty())
        .expect("request")
}

fn key_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(bitcask::Bitcask::open(dir.path()).expect("open"));
    for key in 0..10_000u32 {
        store
            .put(format!("key-{key:04}00000").as_bytes(), &[b'v'; 100])
            .expect("put");
    }
    let config = Config::from_args(["bitcask-server"]).expect("config");
    let state = AppState::new(config).expect("state");
    state.set_store(store);
    let router = bitcask_server::app::router(state.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("GET /kv/{key}, found, 100 bytes");
    let mut key = 0u32;
    let mut next = move || {
        key = (key + 7919) % 10_000;
        key
    };
    // What the two below spend building their request.
    group.bench_function("the request alone", |b| {
        b.iter(|| request(next()));
    });
    group.bench_function("key-read lane", |b| {
        b.iter(|| answer_key_read(&state, &request(next())).expect("answered"));
    });
    group.bench_function("router", |b| {
        b.iter(|| {
            runtime
                .block_on(router.clone().oneshot(request(next())))
                .expect("answered")
        });
    });
    group.finish();
}

criterion_group!(benches, key_reads);
criterion_main!(benches);
