//! Measures the change feed (docs/WATCH.md, docs/BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p bitcask-server --example watch_bench -- watchers ADDR N SECS [PREFIX]
//!     N SSE watchers from now (only keys under PREFIX if given) for SECS
//!     seconds, counting the events they receive (run a writer load beside)
//! cargo run --release -p bitcask-server --example watch_bench -- latency ADDR COUNT
//!     one watcher and one writer: from a PUT's answer to its event
//! cargo run --release -p bitcask-server --example watch_bench -- replay ADDR
//!     one SSE watcher from seq 0 until it has caught up: events per second
//! cargo run --release -p bitcask-server --example watch_bench -- replay-engine DIR
//!     Bitcask::changes(0) read to the end (read-only open): events per second
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bitcask_wire::{SseDecoder, WatchEvent, WatchProgress};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or("missing argument; see the file's doc")
    };
    match arg(0)?.as_str() {
        "watchers" => watchers(&arg(1)?, arg(2)?.parse()?, arg(3)?.parse()?, args.get(4)).await,
        "latency" => latency(&arg(1)?, arg(2)?.parse()?).await,
        "replay" => replay(&arg(1)?).await,
        "replay-engine" => replay_engine(&arg(1)?),
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

/// An SSE stream's messages, read as they come.
struct Sse {
    response: reqwest::Response,
    decoder: SseDecoder,
}

impl Sse {
    async fn open(addr: &str, query: &str) -> Result<Self> {
        let response = reqwest::get(format!("http://{addr}/watch{query}")).await?;
        if !response.status().is_success() {
            return Err(format!("watch answered {}", response.status()).into());
        }
        Ok(Self {
            response,
            decoder: SseDecoder::new(),
        })
    }

    async fn next(&mut self) -> Result<Option<bitcask_wire::SseMessage>> {
        loop {
            if let Some(message) = self.decoder.next_message() {
                return Ok(Some(message));
            }
            match self.response.chunk().await? {
                Some(bytes) => self.decoder.push(&bytes, 64 << 20)?,
                None => return Ok(None),
            }
        }
    }
}

async fn watchers(addr: &str, n: usize, secs: u64, prefix: Option<&String>) -> Result<()> {
    let query = prefix.map_or_else(String::new, |p| format!("?prefix={p}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut sse = Sse::open(addr, &query).await?;
        tasks.push(tokio::spawn(async move {
            let mut events = 0u64;
            while let Ok(Ok(Some(message))) = tokio::time::timeout_at(deadline, sse.next()).await {
                if message.event != "progress" && !message.data.is_empty() {
                    events += 1;
                }
            }
            events
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    println!(
        "{n} watchers, {secs} s: {total} events received ({} per watcher)",
        total / n.max(1) as u64
    );
    Ok(())
}

async fn latency(addr: &str, count: usize) -> Result<()> {
    let mut sse = Sse::open(addr, "?prefix=latency/").await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    tokio::spawn(async move {
        while let Ok(Some(message)) = sse.next().await {
            if let Ok(event) = serde_json::from_str::<WatchEvent>(&message.data) {
                let _ = tx.send((event.seq, Instant::now()));
            }
        }
    });
    let http = reqwest::Client::new();
    let mut acked = HashMap::new();
    for i in 0..count {
        let response = http
            .put(format!("http://{addr}/kv/latency/{}", i % 100))
            .json(&serde_json::json!({ "value": format!("v{i}") }))
            .send()
            .await?;
        let at = Instant::now();
        let seq: u64 = response.headers()["etag"]
            .to_str()?
            .trim_matches('"')
            .parse()?;
        acked.insert(seq, at);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Signed: an event may arrive before its PUT's answer.
    let mut micros = Vec::new();
    while micros.len() < count {
        let (seq, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .ok_or("the stream ended")?;
        if let Some(acked_at) = acked.get(&seq) {
            let us = if at >= *acked_at {
                at.duration_since(*acked_at).as_micros() as i64
            } else {
                -(acked_at.duration_since(at).as_micros() as i64)
            };
            micros.push(us);
        }
    }
    micros.sort_unstable();
    let pct = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    println!(
        "{count} PUTs: event received after the PUT's answer: p50 {} us, p99 {} us, max {} us (negative: before it)",
        pct(0.50),
        pct(0.99),
        micros[micros.len() - 1]
    );
    Ok(())
}

async fn replay(addr: &str) -> Result<()> {
    let position: u64 = reqwest::get(format!("http://{addr}/kv?limit=1"))
        .await?
        .headers()["x-bitcask-seq"]
        .to_str()?
        .parse()?;
    let started = Instant::now();
    let mut sse = Sse::open(addr, "?from_seq=0").await?;
    let mut events = 0u64;
    while let Some(message) = sse.next().await? {
        if message.event == "progress" {
            let progress: WatchProgress = serde_json::from_str(&message.data)?;
            if progress.next_seq >= position && events > 0 {
                break;
            }
            continue;
        }
        events += 1;
        if let Ok(event) = serde_json::from_str::<WatchEvent>(&message.data)
            && event.seq + 1 >= position
        {
            break;
        }
    }
    let took = started.elapsed();
    println!(
        "replayed {events} events over HTTP (SSE) in {took:.2?}: {:.0} events/s",
        events as f64 / took.as_secs_f64()
    );
    Ok(())
}

fn replay_engine(dir: &str) -> Result<()> {
    let db = bitcask::Bitcask::open_with(dir, bitcask::Options::new().read_only(true))?;
    let started = Instant::now();
    let mut changes = db.changes(0)?;
    let mut events = 0u64;
    let mut bytes = 0u64;
    loop {
        let batch = changes.next_batch(4096)?;
        if batch.is_empty() {
            break;
        }
        events += batch.len() as u64;
        bytes += batch.iter().map(|c| c.key.len() as u64).sum::<u64>();
    }
    let took = started.elapsed();
    println!(
        "replayed {events} changes ({} MiB of keys) from the files in {took:.2?}: {:.0} events/s",
        bytes >> 20,
        events as f64 / took.as_secs_f64()
    );
    Ok(())
}
