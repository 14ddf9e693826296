//! A closed-loop load generator for etcd's gRPC API, the counterpart of the
//! oha runs in `scripts/cluster-bench.sh`: CONNECTIONS clients, each on its
//! own connection with one request in flight, for SECONDS; prints one line
//! with requests per second, p50, p99 and the success rate in the format of
//! the script's oha lines.
//!
//! ```text
//! etcd-load LABEL ENDPOINT put|get|serializable SECONDS CONNECTIONS
//! ```
//!
//! Written by hand because etcd's own `benchmark` tool is not packaged by
//! Debian and cannot be built here without Go's module proxy.

use std::error::Error;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};

const KEY: &str = "bench";

/// One request kind.
#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
    Serializable,
}

/// What one client saw: each successful request's latency, and its failures.
struct Tally {
    latencies_us: Vec<u32>,
    failures: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, label, endpoint, op, secs, conns] = args.as_slice() else {
        return Err(
            "usage: etcd-load LABEL ENDPOINT put|get|serializable SECONDS CONNECTIONS".into(),
        );
    };
    let op = match op.as_str() {
        "put" => Op::Put,
        "get" => Op::Get,
        "serializable" => Op::Serializable,
        other => return Err(format!("unknown operation {other:?}").into()),
    };
    let duration = Duration::from_secs(secs.parse()?);
    let conns: usize = conns.parse()?;
    let value = "v".repeat(100);

    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(Client::connect([endpoint.as_str()], None).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(conns);
    for mut client in clients {
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                latencies_us: Vec::new(),
                failures: 0,
            };
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = match op {
                    Op::Put => client.put(KEY, value.as_str(), None).await.is_ok(),
                    Op::Get => client.get(KEY, None).await.is_ok(),
                    Op::Serializable => client
                        .get(KEY, Some(GetOptions::new().with_serializable()))
                        .await
                        .is_ok(),
                };
                if ok {
                    let micros = sent.elapsed().as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                } else {
                    tally.failures += 1;
                }
            }
            tally
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let tally = task.await?;
        latencies.extend(tally.latencies_us);
        failures += tally.failures;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 1000.0
    };
    let done = latencies.len() as u64;
    let success = if done + failures == 0 {
        0.0
    } else {
        100.0 * done as f64 / (done + failures) as f64
    };
    println!(
        "{label:<44} {:>10.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  success {success:.2}%",
        done as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    );
    Ok(())
}
