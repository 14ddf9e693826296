//! The HTTP stack's own limit on this machine: a bare hyper server (the same
//! hyper, hyper-util and tokio as bitcask-server, HTTP/1.1, multi-threaded
//! runtime, `TCP_NODELAY`) answering every request with the fixed JSON a
//! `GET /kv/{key}` of a 100-byte value answers. No routing, no middleware,
//! no store. `scripts/http-limit.sh` runs it beside the server.
//!
//! `cargo run --release -p bitcask-server --example hyper_hello -- PORT [BUSY_NS]`
//!
//! With `BUSY_NS`, each request first keeps its worker busy that many
//! nanoseconds (a spin on the clock, inside the service call as a key read
//! is): how the tail of a server that does some work per request grows
//! with that work (docs/BENCHMARKS.md, "The tail and the work a request
//! does").
#![allow(missing_docs)]

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

// The server's allocator, so the two differ only in what the server does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18401);
    let busy = std::time::Duration::from_nanos(
        std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let body = Bytes::from(format!(
        r#"{{"key":"key-000000000","value":"{}","found":true}}"#,
        "v".repeat(100)
    ));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                let body = body.clone();
                if !busy.is_zero() {
                    let started = std::time::Instant::now();
                    while started.elapsed() < busy {
                        std::hint::spin_loop();
                    }
                }
                async move {
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
