//! Network faults on a three-node cluster of server processes, with a
//! fault proxy on every peer link (docs/CLUSTER.md, docs/RELIABILITY.md):
//! a leader cut off from the others steps out of service and its side
//! acknowledges no write and no linearizable read; the history of
//! concurrent clients through partitions, pauses and a leader kill is
//! linearizable, and so is the history through a node replacement (a new
//! node added under load, the leader removed); and the checker catches the
//! stale reads a cut-off node serves when asked for `?consistency=stale`,
//! so the check can fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcask_reliability::cluster::{self, Cluster, Shared, lock};
use bitcask_reliability::history;
use bitcask_reliability::linearizability::{self, Event, Op};
use bitcask_reliability::proxy::Fault;

const EXE: &str = env!("CARGO_BIN_EXE_bitcask-chaos");

fn start() -> (tempfile::TempDir, Shared) {
    let root = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(root.path(), std::path::Path::new(EXE), 3, &[]).expect("cluster");
    (root, Arc::new(Mutex::new(cluster)))
}

/// Clients running against the cluster (4 of them on 6 keys); stopped,
/// with the nodes killed, when dropped, so a failing assertion leaves no
/// process behind (the client threads hold the cluster too, so it would
/// not be dropped by a panicking test).
struct Clients {
    started: Instant,
    stop: Arc<AtomicBool>,
    cluster: Shared,
    thread: Option<std::thread::JoinHandle<history::Recorded>>,
}

impl Clients {
    fn start(cluster: &Shared, seed: u64) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, targets) = (Arc::clone(&stop), cluster::client_targets(cluster));
            std::thread::spawn(move || {
                history::run_clients(4, 6, targets, stop, started, seed, false)
            })
        };
        Self {
            started,
            stop,
            cluster: Arc::clone(cluster),
            thread: Some(thread),
        }
    }

    /// Stops the clients and returns what they recorded.
    fn finish(mut self) -> history::Recorded {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("clients")
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        lock(&self.cluster).shutdown();
    }
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[test]
fn histories_through_partitions_pauses_and_a_leader_kill_are_linearizable() {
    let (_root, cluster) = start();
    let clients = Clients::start(&cluster, 42);
    let started = clients.started;
    std::thread::sleep(Duration::from_millis(800));

    // The leader is cut off (blackholed both ways) for 3 s.
    let leader = lock(&cluster).leader().expect("leader");
    let cut_at = nanos(started);
    lock(&cluster).isolate(leader, Fault::Blackhole);
    std::thread::sleep(Duration::from_secs(3));
    let healed_at = nanos(started);
    lock(&cluster).heal();
    std::thread::sleep(Duration::from_millis(800));

    // A follower pauses (SIGSTOP) for 1.5 s.
    let leader_now = lock(&cluster)
        .wait_for_leader(Duration::from_secs(20))
        .expect("leader");
    let follower = lock(&cluster)
        .ids()
        .into_iter()
        .find(|&id| id != leader_now)
        .expect("follower");
    lock(&cluster).pause(follower);
    std::thread::sleep(Duration::from_millis(1500));
    lock(&cluster).resume(follower);
    std::thread::sleep(Duration::from_millis(500));

    // The leader is SIGKILLed and restarted.
    let leader_now = lock(&cluster)
        .wait_for_leader(Duration::from_secs(20))
        .expect("leader");
    lock(&cluster).kill(leader_now);
    std::thread::sleep(Duration::from_secs(2));
    lock(&cluster).restart(leader_now).expect("restart");
    lock(&cluster)
        .wait_for_leader(Duration::from_secs(20))
        .expect("leader after restart");
    std::thread::sleep(Duration::from_millis(800));
    let recorded = clients.finish();

    let (completed, unknown) = recorded.counts();
    assert!(completed > 100, "the clients got work done ({completed})");
    eprintln!(
        "{completed} operations completed, {unknown} writes of unknown outcome; write statuses {:?}",
        recorded.write_statuses
    );
    let failures = linearizability::check_all(&recorded.events);
    let violations: Vec<_> = failures.iter().filter(|v| !v.undecided).collect();
    assert!(violations.is_empty(), "{violations:?}");
    // A key whose search ran out of budget proves nothing either way; a
    // few are tolerated (each is one key of a few seconds of history).
    let keys = recorded
        .events
        .iter()
        .map(|e| e.key.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    eprintln!("{} of {keys} keys undecided", failures.len());
    assert!(
        failures.len() * 5 <= keys,
        "too many undecided keys: {failures:?}"
    );
    // The cut-off leader's side acknowledged nothing sent to it once the
    // election time-out had passed (1.6 s, plus the 2 s a request may wait).
    let settled = cut_at + 1_700_000_000;
    let acknowledged: Vec<_> = recorded
        .answers
        .iter()
        .filter(|a| {
            a.node == leader && a.sent > settled && a.answered < healed_at && a.acknowledged
        })
        .collect();
    assert!(
        acknowledged.is_empty(),
        "the cut-off leader acknowledged {} requests: {acknowledged:?}",
        acknowledged.len()
    );
}

#[test]
fn replacing_the_leader_under_load_keeps_histories_linearizable() {
    let (_root, cluster) = start();
    let clients = Clients::start(&cluster, 7);
    std::thread::sleep(Duration::from_millis(800));

    // Node 4 joins (it catches up before it votes), then the leader leaves.
    let (new, peer_addr) = lock(&cluster).launch_new_node().expect("node 4");
    assert_eq!(new, 4, "ids are handed out in order");
    let leader = lock(&cluster).leader().expect("leader");
    let via = |c: &Cluster, not: u64| {
        c.urls()
            .into_iter()
            .find(|(id, _)| *id != not && *id != new)
            .map(|(_, u)| u)
            .expect("a node to ask")
    };
    let url = via(&lock(&cluster), leader);
    cluster::add_member(&url, new, peer_addr, 10).expect("add node 4");
    cluster::remove_member(&url, leader, 10).expect("remove the leader");
    // The removal leaves 2, 3 and 4 (less the old leader) as the voters,
    // and they elect a leader among themselves.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let view: serde_json::Value = http
        .get(format!("{url}/cluster"))
        .send()
        .expect("cluster")
        .json()
        .expect("json");
    let mut voters: Vec<u64> = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| m["node_id"].as_u64())
        .collect();
    voters.sort_unstable();
    let mut expected: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    expected.sort_unstable();
    assert_eq!(voters, expected, "{view}");
    std::thread::sleep(Duration::from_secs(1));
    lock(&cluster).retire(leader);
    let new_leader = lock(&cluster)
        .wait_for_leader(Duration::from_secs(20))
        .expect("a leader among the remaining nodes");
    assert_ne!(new_leader, leader);
    std::thread::sleep(Duration::from_secs(1));
    let recorded = clients.finish();

    let (completed, unknown) = recorded.counts();
    assert!(completed > 100, "the clients got work done ({completed})");
    eprintln!("{completed} operations completed, {unknown} writes of unknown outcome");
    // The new node served clients once it had joined.
    assert!(
        recorded
            .answers
            .iter()
            .any(|a| a.node == new && a.acknowledged),
        "node 4 answered no request"
    );
    let failures = linearizability::check_all(&recorded.events);
    let violations: Vec<_> = failures.iter().filter(|v| !v.undecided).collect();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_cut_off_node_steps_out_and_its_stale_reads_fail_the_check() {
    let (_root, cluster) = start();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = |id: u64| {
        lock(&cluster)
            .urls()
            .into_iter()
            .find(|(n, _)| *n == id)
            .map(|(_, u)| u)
            .expect("url")
    };
    let leader = lock(&cluster).leader().expect("leader");
    let other = lock(&cluster)
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("other");
    let started = Instant::now();
    let mut events = Vec::new();
    let put = |node: u64, value: &str, events: &mut Vec<Event>| {
        let invoked = nanos(started);
        let status = http
            .put(format!("{}/kv/k", url(node)))
            .json(&serde_json::json!({ "value": value }))
            .send()
            .expect("put")
            .status();
        assert_eq!(status, 200);
        events.push(Event {
            key: b"k".to_vec(),
            op: Op::Put(value.as_bytes().to_vec()),
            invoked,
            completed: Some(nanos(started)),
        });
    };
    put(other, "v1", &mut events);
    // Wait until the leader has applied v1, then cut it off.
    let read = |node: u64, stale: bool| {
        let query = if stale { "?consistency=stale" } else { "" };
        http.get(format!("{}/kv/k{query}", url(node)))
            .send()
            .expect("get")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(leader, true)
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["value"].as_str().map(str::to_string))
        != Some("v1".into())
    {
        assert!(Instant::now() < deadline, "the leader never applied v1");
        std::thread::sleep(Duration::from_millis(20));
    }
    lock(&cluster).isolate(leader, Fault::Drop);
    // The majority elects a new leader and takes v2.
    let new_leader = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = lock(&cluster).leader().filter(|&l| l != leader);
            if let Some(l) = found {
                break l;
            }
            assert!(Instant::now() < deadline, "no new leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    put(new_leader, "v2", &mut events);

    // The old leader: no write, no linearizable read; it shows no leader.
    let write = http
        .put(format!("{}/kv/k", url(leader)))
        .json(&serde_json::json!({ "value": "lost" }))
        .send()
        .expect("put");
    assert_eq!(write.status(), 503);
    let linearizable = read(leader, false);
    assert_eq!(linearizable.status(), 503);
    assert!(linearizable.headers().contains_key("retry-after"));
    let view: serde_json::Value = http
        .get(format!("{}/cluster", url(leader)))
        .send()
        .expect("cluster")
        .json()
        .expect("json");
    assert!(
        view["leader_id"].is_null(),
        "a cut-off leader names no leader: {view}"
    );
    let health = http
        .get(format!("{}/health", url(leader)))
        .send()
        .expect("health");
    assert_eq!(health.status(), 503);

    // A stale read there answers at once, with the old value: recorded in
    // the history, the checker must refuse it.
    let invoked = nanos(started);
    let stale = read(leader, true);
    assert_eq!(stale.status(), 200);
    assert!(stale.headers().contains_key("x-bitcask-applied-index"));
    let body: serde_json::Value = stale.json().expect("json");
    assert_eq!(body["value"], "v1", "a cut-off node's own state is behind");
    events.push(Event {
        key: b"k".to_vec(),
        op: Op::Get(Some(b"v1".to_vec())),
        invoked,
        completed: Some(nanos(started)),
    });
    assert!(
        linearizability::check(&events).is_err(),
        "the checker must reject a stale read after a completed write"
    );

    // Healed, the old leader follows the new one and reads v2.
    lock(&cluster).heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = read(leader, false);
        if r.status() == 200
            && r.json::<serde_json::Value>()
                .ok()
                .and_then(|v| v["value"].as_str().map(str::to_string))
                == Some("v2".into())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the old leader never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
}
