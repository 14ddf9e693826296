//! Hostile HTTP clients: one that sends its header a byte at a time is cut
//! off; thousands of idle connections do not keep the server from answering
//! others or from shutting down; oversized headers are refused.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_header_sent_a_byte_at_a_time_is_cut_off() {
    let server = common::TestServer::start(&["--request-timeout", "1s"]).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {} // a 408 answer; the close follows
            Err(_) => {}    // still waiting: send another byte
        }
    }
    assert!(closed, "a slow header must not hold the connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off after the 1 s header time-out (took {:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn thousands_of_idle_connections_neither_starve_others_nor_block_shutdown() {
    let server = common::TestServer::start(&["--request-timeout", "2s"]).await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // Half of them have sent half a request.
    for stream in idle.iter_mut().step_by(2) {
        stream
            .write_all(b"GET /kv/x HTTP/1.1\r\nHo")
            .await
            .expect("write");
    }
    let health = tokio::time::timeout(Duration::from_secs(5), server.get("/health"))
        .await
        .expect("answered while 2000 connections are idle");
    assert_eq!(health.status(), 200);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), server.stop())
        .await
        .expect("shutdown does not wait for idle connections");
    // Idle ones close at once; half-sent headers within their 2 s limit.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn oversized_headers_are_refused_and_the_server_goes_on() {
    let server = common::TestServer::start(&[]).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let huge = "a".repeat(1 << 20);
    let request = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-huge: {huge}\r\n\r\n");
    // The server may stop reading before the whole header is sent.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "a 1 MiB header is refused (431 or closed): {answer:.200}"
    );
    assert_eq!(server.get("/health").await.status(), 200);
    // Many headers, each small.
    let client = reqwest::Client::new();
    let mut request = client.get(server.url("/health"));
    for i in 0..500 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let status = request.send().await.map(|r| r.status().as_u16());
    assert!(matches!(status, Ok(431) | Err(_)), "{status:?}");
    assert_eq!(server.get("/health").await.status(), 200);
}
