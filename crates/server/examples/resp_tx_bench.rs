//! Transactions per second over RESP, for any server that speaks it
//! (redis-benchmark has no MULTI/EXEC test): `CONNS` connections, each
//! sending `PIPELINE` transactions at a time of `MULTI; INCR tx:{a}; INCR
//! tx:{b}; EXEC` over random keys, for `SECS` seconds.
//!
//! `cargo run --release -p bitcask-server --example resp_tx_bench -- PORT [CONNS] [PIPELINE] [SECS]`
//!
//! Hand-written on std threads and raw sockets, so that the client costs
//! as little as redis-benchmark's and measures the server, not a client
//! library.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .ok_or("usage: resp_tx_bench PORT [CONNS] [PIPELINE] [SECS]")?
        .parse()?;
    let conns: usize = args.get(2).map_or(Ok(50), |s| s.parse())?;
    let pipeline: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let secs: u64 = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..conns {
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_nodelay(true)?;
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ c as u64;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % 100_000
            };
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let mut request = Vec::new();
                for _ in 0..pipeline {
                    let (a, b) = (format!("tx:{:06}", next()), format!("tx:{:06}", next()));
                    request.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
                    for key in [a, b] {
                        request.extend_from_slice(
                            format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
                        );
                    }
                    request.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
                }
                stream.write_all(&request)?;
                // Each EXEC answers one array header ('*'); nothing else
                // in these replies starts with it.
                let mut arrays = 0;
                while arrays < pipeline {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    arrays += buf[..n].iter().filter(|&&b| b == b'*').count();
                }
                done.fetch_add(pipeline as u64, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a connection thread panicked")??;
    }
    println!(
        "{:.0} transactions/s ({} in {elapsed:.1}s, {conns} connections, pipeline {pipeline})",
        total as f64 / elapsed,
        total
    );
    Ok(())
}
