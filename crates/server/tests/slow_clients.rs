//! Clients that hold connections without sending requests: one that sends
//! its header a byte at a time is cut off; thousands of idle connections do
//! not keep the server from answering others or from shutting down.

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
