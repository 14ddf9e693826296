//! Three `bitcask-server` processes as a cluster on loopback, as an
//! operator starts them (docs/CLUSTER.md): writes on any node read back on
//! every node, conditional writes decided once, the leader SIGKILLed under
//! write load and replaced, the killed node restarted without
//! `--initial-cluster` and caught up with every acknowledged write, RESP
//! (transactions too) through the cluster, and no quorum answered 503 while stale reads go on.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bitcask-server");
const TOKEN: &str = "test-cluster-secret";

/// A node process, killed when dropped.
struct NodeProc {
    id: u64,
    child: Child,
    http: String,
    resp: Option<String>,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer port on loopback that no `port 0` bind can take before the node
/// binds it (bitcask_reliability::ports).
fn free_port() -> u16 {
    bitcask_reliability::ports::unused_port(std::net::Ipv4Addr::LOCALHOST.into())
        .expect("a free port")
}

struct Layout {
    root: tempfile::TempDir,
    peers: BTreeMap<u64, u16>,
    token_file: PathBuf,
}

impl Layout {
    fn new(n: u64) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let token_file = root.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
        let peers = (1..=n).map(|id| (id, free_port())).collect();
        Self {
            root,
            peers,
            token_file,
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    fn initial_cluster(&self) -> String {
        let entries: Vec<String> = self
            .peers
            .iter()
            .map(|(id, port)| format!("{id}=127.0.0.1:{port}"))
            .collect();
        entries.join(",")
    }

    /// Starts node `id`; `founding` passes `--initial-cluster`.
    fn start(&self, id: u64, founding: bool, resp: bool) -> NodeProc {
        let mut command = Command::new(BIN);
        command
            .args([
                "--port",
                "0",
                "--log-format",
                "json",
                "--cluster-wait",
                "2s",
            ])
            .arg("--data-dir")
            .arg(self.dir(id))
            .args(["--node-id", &id.to_string()])
            .args(["--peer-port", &self.peers[&id].to_string()])
            .arg("--cluster-token-file")
            .arg(&self.token_file);
        if founding {
            command.args(["--initial-cluster", &self.initial_cluster()]);
        }
        if resp {
            command.args(["--resp-port", "0"]);
        }
        spawn(id, command, resp)
    }
}

fn spawn(id: u64, mut command: Command, resp: bool) -> NodeProc {
    let mut child = command
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn node");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // The last lines the node wrote, to say why if it never comes up.
    let tail = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let tail_writer = Arc::clone(&tail);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut tail) = tail_writer.lock() {
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                let addr = event["addr"].as_str().map(str::to_string);
                let http = event["http"].as_str().map(str::to_string);
                match (event["message"].as_str(), addr) {
                    (Some("bitcask-server starting"), _) if http.is_some() => {
                        let _ = tx.send(("http", http.unwrap_or_default()));
                    }
                    (Some("RESP listener accepting"), Some(addr)) => {
                        let _ = tx.send(("resp", addr));
                    }
                    _ => {}
                }
            }
        }
    });
    let mut http = None;
    let mut resp_addr = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.is_none() || (resp && resp_addr.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(("http", addr)) => http = Some(addr),
            Ok((_, addr)) => resp_addr = Some(addr),
            Err(_) => panic!(
                "node {id} never logged its addresses (exit: {:?}); its last lines:\n{}",
                child.try_wait(),
                tail.lock()
                    .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default()
            ),
        }
    }
    NodeProc {
        id,
        child,
        http: http.expect("http"),
        resp: resp_addr,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster_view(http: &reqwest::blocking::Client, node: &NodeProc) -> Option<serde_json::Value> {
    http.get(format!("http://{}/cluster", node.http))
        .send()
        .ok()?
        .json()
        .ok()
}

/// The leader every node in `nodes` agrees on.
fn agreed_leader(http: &reqwest::blocking::Client, nodes: &[&NodeProc]) -> u64 {
    until(
        "the nodes to agree on a leader",
        Duration::from_secs(30),
        || {
            let leaders: Vec<Option<u64>> = nodes
                .iter()
                .map(|n| cluster_view(http, n).and_then(|v| v["leader_id"].as_u64()))
                .collect();
            let first = leaders.first().copied().flatten()?;
            leaders.iter().all(|l| *l == Some(first)).then_some(first)
        },
    )
}

fn put(
    http: &reqwest::blocking::Client,
    node: &NodeProc,
    key: &str,
    value: &str,
) -> reqwest::blocking::Response {
    http.put(format!("http://{}/kv/{key}", node.http))
        .json(&serde_json::json!({ "value": value }))
        .send()
        .expect("put")
}

fn get(
    http: &reqwest::blocking::Client,
    node: &NodeProc,
    key: &str,
    stale: bool,
) -> reqwest::blocking::Response {
    let query = if stale { "?consistency=stale" } else { "" };
    http.get(format!("http://{}/kv/{key}{query}", node.http))
        .send()
        .expect("get")
}

fn value_of(response: reqwest::blocking::Response) -> Option<String> {
    let body: serde_json::Value = response.json().ok()?;
    body["value"].as_str().map(str::to_string)
}

#[test]
fn a_three_node_cluster_serves_every_node_and_survives_its_leader() {
    let layout = Layout::new(3);
    let mut nodes: Vec<NodeProc> = (1..=3).map(|id| layout.start(id, true, id == 1)).collect();
    let http = client();
    let leader = agreed_leader(&http, &nodes.iter().collect::<Vec<_>>());

    // Writes on every node, read back linearizably on every node, with the
    // same version everywhere.
    for n in &nodes {
        let r = put(&http, n, &format!("from-{}", n.id), &format!("v{}", n.id));
        assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    }
    let mut etags = Vec::new();
    for reader in &nodes {
        for writer in &nodes {
            let r = get(&http, reader, &format!("from-{}", writer.id), false);
            assert_eq!(r.status(), 200);
            if writer.id == 3 {
                etags.push(r.headers()["etag"].to_str().expect("etag").to_string());
            }
            assert_eq!(
                value_of(r).as_deref(),
                Some(format!("v{}", writer.id).as_str())
            );
        }
    }
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
    let stale = get(&http, &nodes[2], "from-1", true);
    assert!(stale.headers().contains_key("x-bitcask-applied-index"));
    let view = cluster_view(&http, &nodes[0]).expect("view");
    assert_eq!(view["members"].as_array().expect("members").len(), 3);
    assert_eq!(view["leader_id"].as_u64(), Some(leader));
    let health: serde_json::Value = http
        .get(format!("http://{}/health", nodes[1].http))
        .send()
        .expect("health")
        .json()
        .expect("json");
    assert_eq!(health["cluster"]["leader_id"].as_u64(), Some(leader));
    let metrics = http
        .get(format!("http://{}/metrics", nodes[0].http))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(metrics.contains("bitcask_raft_term "), "{metrics}");

    // Racing conditional creates on two nodes: exactly one wins.
    for round in 0..5 {
        let key = format!("race-{round}");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let racers: Vec<_> = [&nodes[1], &nodes[2]]
                .into_iter()
                .map(|n| {
                    let http = &http;
                    let key = &key;
                    s.spawn(move || {
                        http.put(format!("http://{}/kv/{key}", n.http))
                            .header("if-none-match", "*")
                            .json(&serde_json::json!({ "value": n.id.to_string() }))
                            .send()
                            .expect("put")
                            .status()
                            .as_u16()
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![200, 412], "round {round}: {statuses:?}");
    }

    // The change feed is the applied order, the same on every node: the
    // history read from each node's files is identical, seq for seq.
    let histories: Vec<Vec<(u64, String, String)>> = nodes
        .iter()
        .map(|n| {
            // A linearizable read first: the node has applied every write.
            assert_eq!(get(&http, n, "from-1", false).status(), 200);
            let mut from = 0;
            let mut events = Vec::new();
            loop {
                let page: serde_json::Value = http
                    .get(format!(
                        "http://{}/watch?format=json&from_seq={from}",
                        n.http
                    ))
                    .send()
                    .expect("watch")
                    .json()
                    .expect("page");
                let batch = page["events"].as_array().expect("events").clone();
                if batch.is_empty() {
                    break;
                }
                from = page["next_seq"].as_u64().expect("next_seq");
                events.extend(batch.iter().map(|e| {
                    (
                        e["seq"].as_u64().expect("seq"),
                        e["op"].as_str().expect("op").to_string(),
                        e["key"].as_str().expect("key").to_string(),
                    )
                }));
            }
            events
        })
        .collect();
    assert!(histories[0].len() >= 8, "{:?}", histories[0]);
    assert_eq!(histories[0], histories[1]);
    assert_eq!(histories[0], histories[2]);

    // RESP on node 1 goes through the cluster too.
    let resp = nodes[0].resp.clone().expect("resp address");
    let redis = redis::Client::open(format!("redis://{resp}/")).expect("redis client");
    let mut conn = redis.get_connection().expect("redis connection");
    let _: () = redis::cmd("SET")
        .arg("resp-key")
        .arg("x")
        .query(&mut conn)
        .expect("SET");
    let n: i64 = redis::cmd("INCR")
        .arg("counter")
        .query(&mut conn)
        .expect("INCR");
    assert_eq!(n, 1);
    let set_nx: Option<String> = redis::cmd("SET")
        .arg("resp-key")
        .arg("y")
        .arg("NX")
        .query(&mut conn)
        .expect("SET NX");
    assert_eq!(set_nx, None, "NX refused: the key exists");
    assert_eq!(
        value_of(get(&http, &nodes[2], "resp-key", false)).as_deref(),
        Some("x")
    );
    // Newer write commands replicate the same way (GETSET: the old value
    // from the state machine's reply; SETEX: the value on another node).
    let old: Option<String> = redis::cmd("GETSET")
        .arg("resp-key")
        .arg("z")
        .query(&mut conn)
        .expect("GETSET");
    assert_eq!(old.as_deref(), Some("x"));
    let _: () = redis::cmd("SETEX")
        .arg("session")
        .arg("100")
        .arg("s")
        .query(&mut conn)
        .expect("SETEX");
    assert_eq!(
        value_of(get(&http, &nodes[2], "session", false)).as_deref(),
        Some("s")
    );
    // A batch's conditions are checked by the state machine: the failed one
    // is named through any node.
    let refused = http
        .post(format!("http://{}/batch", nodes[1].http))
        .json(&serde_json::json!({"ops": [
            {"op": "put", "key": "fresh", "value": "1"},
            {"op": "check", "key": "resp-key", "if_absent": true}
        ]}))
        .send()
        .expect("batch");
    assert_eq!(refused.status(), 412);
    let body: serde_json::Value = refused.json().expect("json");
    assert_eq!(body["failed"]["op"], 1, "{body}");
    assert_eq!(
        value_of(get(&http, &nodes[2], "fresh", false)),
        None,
        "nothing of a refused batch"
    );
    // A transaction is one entry: applied on every node, and aborted when a
    // watched key was written through another node meanwhile.
    let (moved, total): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("tx-a")
        .arg(5)
        .cmd("INCRBY")
        .arg("tx-b")
        .arg(7)
        .query(&mut conn)
        .expect("MULTI/EXEC");
    assert_eq!((moved, total), (5, 7));
    assert_eq!(
        value_of(get(&http, &nodes[2], "tx-b", false)).as_deref(),
        Some("7")
    );
    let _: () = redis::cmd("WATCH")
        .arg("tx-a")
        .query(&mut conn)
        .expect("WATCH");
    assert_eq!(put(&http, &nodes[1], "tx-a", "changed").status(), 200);
    let _: () = redis::cmd("MULTI").query(&mut conn).expect("MULTI");
    let _: () = redis::cmd("SET")
        .arg("tx-a")
        .arg("mine")
        .query(&mut conn)
        .expect("queued");
    let aborted: redis::Value = redis::cmd("EXEC").query(&mut conn).expect("EXEC");
    assert_eq!(
        aborted,
        redis::Value::Nil,
        "a watched key changed on node 2"
    );
    assert_eq!(
        value_of(get(&http, &nodes[2], "tx-a", false)).as_deref(),
        Some("changed")
    );
    drop(conn);

    // SIGKILL the leader under write load on the other two nodes.
    let at = nodes.iter().position(|n| n.id == leader).expect("leader");
    let mut old = nodes.remove(at);
    let survivors: Vec<&NodeProc> = nodes.iter().collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<String> = survivors.iter().map(|n| n.http.clone()).collect();
    let writer = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let http = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = &targets[(i % 2) as usize];
                let key = format!("load-{i}");
                let ok = http
                    .put(format!("http://{target}/kv/{key}"))
                    .json(&serde_json::json!({ "value": "x" }))
                    .send()
                    .is_ok_and(|r| r.status() == 200);
                if ok {
                    acked.lock().expect("acked").push(key);
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    old.child.kill().expect("SIGKILL the leader");
    let _ = old.child.wait();
    let new_leader = until("a new leader", Duration::from_secs(30), || {
        let now = agreed_leader(&http, &survivors);
        (now != leader).then_some(now)
    });
    assert_ne!(new_leader, leader);
    let before = acked.lock().expect("acked").len();
    until(
        "writes to succeed under the new leader",
        Duration::from_secs(10),
        || (acked.lock().expect("acked").len() > before + 10).then_some(()),
    );
    eprintln!(
        "a new leader took writes {:?} after the SIGKILL",
        killed_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    // The killed node comes back with its data dir and no --initial-cluster.
    let restarted = layout.start(old.id, false, false);
    drop(old);
    let acked = acked.lock().expect("acked").clone();
    assert!(!acked.is_empty());
    let last = acked.last().expect("last").clone();
    until(
        "the restarted node to catch up",
        Duration::from_secs(30),
        || (value_of(get(&http, &restarted, &last, true)).as_deref() == Some("x")).then_some(()),
    );
    for reader in nodes.iter().chain(std::iter::once(&restarted)) {
        for key in acked.iter().step_by(7).chain(std::iter::once(&last)) {
            assert_eq!(
                value_of(get(&http, reader, key, false)).as_deref(),
                Some("x"),
                "acknowledged {key} missing on node {}",
                reader.id
            );
        }
    }
}

#[test]
fn without_a_quorum_writes_and_linearizable_reads_answer_503_and_stale_reads_go_on() {
    let layout = Layout::new(3);
    let mut nodes: Vec<NodeProc> = (1..=3).map(|id| layout.start(id, true, false)).collect();
    let http = client();
    agreed_leader(&http, &nodes.iter().collect::<Vec<_>>());
    assert_eq!(put(&http, &nodes[0], "k", "before").status(), 200);
    assert_eq!(
        value_of(get(&http, &nodes[2], "k", false)).as_deref(),
        Some("before")
    );
    // Two of three gone: no quorum.
    for n in nodes.drain(..2) {
        drop(n);
    }
    let alone = &nodes[0];
    let started = Instant::now();
    let r = put(&http, alone, "k", "after");
    assert_eq!(r.status(), 503, "{:?}", r.text());
    assert!(started.elapsed() < Duration::from_secs(9), "bounded wait");
    let r = get(&http, alone, "k", false);
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let r = get(&http, alone, "k", true);
    assert_eq!(r.status(), 200);
    assert_eq!(value_of(r).as_deref(), Some("before"));
}
