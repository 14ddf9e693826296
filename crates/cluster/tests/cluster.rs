//! Clusters of nodes in one process, on loopback: election, writes on any
//! node, linearizable reads on every node, conditional writes decided once,
//! a leader lost, a node restarted, a node added that catches up by
//! snapshot, and peers without the token refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcask::{Condition, Error, WriteOptions};
use bitcask_cluster::node::{ClusterError, MemberChange, Node, NodeConfig};
use bitcask_cluster::overlay::Overlay;
use bitcask_cluster::peer::{self, PeerLimits};
use bitcask_cluster::state_machine::Applier;
use bitcask_cluster::{Store, codec};
use tokio::net::TcpListener;

/// Requests: `(op, key, value)`; replies: the version written, or empty
/// for a refused condition.
struct TestApplier;

impl Applier for TestApplier {
    fn apply(&self, store: &Overlay<'_>, request: &[u8]) -> Vec<u8> {
        let Ok((op, key, value)) = codec::decode::<(String, Vec<u8>, Vec<u8>)>(request) else {
            return b"bad request".to_vec();
        };
        let condition = match op.as_str() {
            "put" => Condition::None,
            "put_nx" => Condition::Absent,
            _ => return b"unknown op".to_vec(),
        };
        match store.put_with(&key, &value, WriteOptions::new().condition(condition)) {
            Ok(version) => version.to_le_bytes().to_vec(),
            Err(Error::ConditionFailed { .. }) => Vec::new(),
            Err(e) => e.to_string().into_bytes(),
        }
    }
}

fn request(op: &str, key: &str, value: &str) -> Vec<u8> {
    codec::encode(&(
        op.to_string(),
        key.as_bytes().to_vec(),
        value.as_bytes().to_vec(),
    ))
    .expect("encode")
}

struct TestNode {
    node: Node,
    server: tokio::task::JoinHandle<()>,
    addr: String,
    dir: std::path::PathBuf,
}

impl TestNode {
    async fn stop(self) -> (std::path::PathBuf, String) {
        self.server.abort();
        self.node.shutdown().await.expect("shutdown");
        (self.dir, self.addr)
    }
}

fn config(id: u64, dir: &std::path::Path, addr: &str) -> NodeConfig {
    let mut c = NodeConfig::new(id, dir.to_path_buf(), addr.to_string());
    c.heartbeat_ms = 50;
    c.election_ms = (300, 600);
    c.token = Some("cluster-secret".into());
    c
}

async fn serve(config: NodeConfig, listener: TcpListener) -> std::io::Result<TestNode> {
    let addr = config.peer_addr.clone();
    let dir = config.dir.clone();
    let token = config.token.clone();
    let node = Node::start(config, Arc::new(TestApplier)).await?;
    let app = peer::router(node.clone(), token, PeerLimits::default());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(TestNode {
        node,
        server,
        addr,
        dir,
    })
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

/// Starts `n` founders in `root`.
async fn cluster(root: &std::path::Path, n: u64, tune: impl Fn(&mut NodeConfig)) -> Vec<TestNode> {
    let mut listeners = Vec::new();
    let mut founders = BTreeMap::new();
    for id in 1..=n {
        let (l, addr) = listener().await;
        founders.insert(id, addr.clone());
        listeners.push((id, l, addr));
    }
    let mut nodes = Vec::new();
    for (id, l, addr) in listeners {
        let mut c = config(id, &root.join(format!("n{id}")), &addr);
        c.initial_cluster = Some(founders.clone());
        tune(&mut c);
        nodes.push(serve(c, l).await.expect("start"));
    }
    nodes
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn leader_of(nodes: &[TestNode]) -> u64 {
    until("a leader", async || {
        let leaders: Vec<u64> = nodes
            .iter()
            .filter(|n| n.node.status().role == "leader")
            .map(|n| n.node.id())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

fn read(node: &Node, key: &str) -> Option<(Vec<u8>, u64)> {
    let store = node.store().expect("store");
    store
        .get_versioned(key.as_bytes())
        .expect("get")
        .map(|v| (v.value, v.version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_on_any_node_are_read_back_linearizably_on_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_of(&nodes).await;
    for (i, n) in nodes.iter().enumerate() {
        let reply = n
            .node
            .write(request(
                "put",
                &format!("k{i}"),
                &format!("from {}", n.node.id()),
            ))
            .await
            .expect("write");
        assert_eq!(reply.len(), 8, "a version");
    }
    for n in &nodes {
        n.node.read_barrier().await.expect("read barrier");
        for (i, writer) in nodes.iter().enumerate() {
            let (value, _) = read(&n.node, &format!("k{i}")).expect("present after the barrier");
            assert_eq!(value, format!("from {}", writer.node.id()).into_bytes());
        }
    }
    // The same records on every node: versions (ETags) agree.
    let versions: Vec<u64> = nodes
        .iter()
        .map(|n| read(&n.node, "k2").expect("k2").1)
        .collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
    let status = nodes[0].node.status();
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.voter));
    assert_eq!(status.leader_id, Some(leader));
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_writes_on_two_nodes_have_one_winner() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |_| {}).await;
    leader_of(&nodes).await;
    for round in 0..10 {
        let key = format!("race-{round}");
        let (a, b) = tokio::join!(
            nodes[1].node.write(request("put_nx", &key, "b")),
            nodes[2].node.write(request("put_nx", &key, "c")),
        );
        let (a, b) = (a.expect("write b"), b.expect("write c"));
        assert!(
            a.is_empty() != b.is_empty(),
            "round {round}: exactly one must win ({a:?}, {b:?})"
        );
    }
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_leader_is_replaced_and_a_restarted_node_catches_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_of(&nodes).await;
    nodes[0]
        .node
        .write(request("put", "before", "1"))
        .await
        .expect("write");
    let at = nodes
        .iter()
        .position(|n| n.node.id() == leader)
        .expect("leader");
    let (dir, addr) = nodes.remove(at).stop().await;
    let started = Instant::now();
    let new_leader = leader_of(&nodes).await;
    assert_ne!(new_leader, leader);
    nodes[0]
        .node
        .write(request("put", "after", "2"))
        .await
        .expect("a write with one node down");
    eprintln!("new leader took writes after {:?}", started.elapsed());
    // The old leader comes back without --initial-cluster: its membership
    // is on disk. With a different one it refuses to start.
    let (l, _) = (
        TcpListener::bind(&addr).await.expect("rebind"),
        addr.clone(),
    );
    let mut other = config(leader, &dir, &addr);
    other.initial_cluster = Some(BTreeMap::from([
        (leader, addr.clone()),
        (99, "127.0.0.1:1".into()),
    ]));
    let refused = Node::start(other, Arc::new(TestApplier)).await;
    assert!(refused.is_err(), "a different --initial-cluster is refused");
    let back = serve(config(leader, &dir, &addr), l)
        .await
        .expect("restart");
    until("the restarted node to catch up", async || {
        read(&back.node, "after").map(|_| ())
    })
    .await;
    assert!(read(&back.node, "before").is_some());
    back.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_added_later_catches_up_by_snapshot_and_a_removed_one_stops_receiving() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |c| {
        c.snapshot_every = 20;
        c.keep_after_snapshot = 5;
    })
    .await;
    leader_of(&nodes).await;
    for i in 0..120 {
        nodes[i % 3]
            .node
            .write(request("put", &format!("key-{i}"), "v"))
            .await
            .expect("write");
    }
    let leader_node = &nodes
        .iter()
        .find(|n| n.node.status().role == "leader")
        .expect("leader")
        .node;
    until("a snapshot and a purge", async || {
        leader_node.status().snapshot.map(|_| ())
    })
    .await;
    // Node 4 joins: the log no longer starts at the beginning.
    let (l, addr) = listener().await;
    let mut c = config(4, &root.path().join("n4"), &addr);
    c.snapshot_every = 20;
    let fourth = serve(c, l).await.expect("start node 4");
    leader_node
        .add_member(4, addr.clone())
        .await
        .expect("add node 4");
    until("node 4 to hold every key", async || {
        (0..120)
            .all(|i| read(&fourth.node, &format!("key-{i}")).is_some())
            .then_some(())
    })
    .await;
    let status = leader_node.status();
    assert!(status.members.iter().any(|m| m.node_id == 4 && m.voter));
    // Changes asked of a follower are forwarded to the leader, and so are
    // its refusals.
    let follower = &nodes
        .iter()
        .find(|n| n.node.status().role == "follower")
        .expect("follower")
        .node;
    match follower
        .change_members(MemberChange::Add {
            node_id: 4,
            peer_addr: addr,
        })
        .await
    {
        Err(ClusterError::Refused(why)) => assert!(why.contains("member"), "{why}"),
        other => panic!("re-adding node 4: {other:?}"),
    }
    // Remove node 4 (through the follower): it no longer receives writes.
    follower
        .change_members(MemberChange::Remove { node_id: 4 })
        .await
        .expect("remove");
    assert!(!leader_node.status().members.iter().any(|m| m.node_id == 4));
    leader_node
        .write(request("put", "after-removal", "x"))
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(read(&fourth.node, "after-removal").is_none());
    fourth.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_without_the_token_or_from_another_cluster_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |c| c.catch_up = Duration::from_secs(2)).await;
    leader_of(&nodes).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/raft/vote", nodes[0].addr);
    let no_token = http
        .post(&url)
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(no_token.status(), 401);
    let wrong_token = http
        .post(&url)
        .bearer_auth("not-the-secret")
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_token.status(), 401);
    let from_itself = http
        .post(&url)
        .bearer_auth("cluster-secret")
        .header("x-bitcask-from", nodes[0].node.id().to_string())
        .header("x-bitcask-cluster", nodes[0].node.cluster_id().expect("id"))
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(from_itself.status(), 403);
    let other_cluster = http
        .post(&url)
        .bearer_auth("cluster-secret")
        .header("x-bitcask-from", "2")
        .header("x-bitcask-cluster", "elsewhere")
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(other_cluster.status(), 403);
    // A sender that names no incarnation is refused too.
    let no_incarnation = http
        .post(&url)
        .bearer_auth("cluster-secret")
        .header("x-bitcask-from", "2")
        .header("x-bitcask-cluster", nodes[0].node.cluster_id().expect("id"))
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(no_incarnation.status(), 403);
    // Authenticated but malformed: an error reply, nothing applied.
    let node2 = nodes[1].node.incarnation().to_string();
    let garbage = http
        .post(&url)
        .bearer_auth("cluster-secret")
        .header("x-bitcask-from", "2")
        .header("x-bitcask-cluster", nodes[0].node.cluster_id().expect("id"))
        .header("x-bitcask-incarnation", &node2)
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(garbage.status(), 200);
    let reply: Result<(), String> =
        codec::decode(&garbage.bytes().await.expect("body")).expect("reply");
    assert!(reply.is_err());
    // Forwarded writes: garbage, and more writes in one forward than a
    // batch holds, are refused whole; nothing is applied.
    // Wait until every node has applied all the log holds (a follower
    // learns the leader's first commit a heartbeat later), so the count
    // below moves only if a refused forward were applied after all.
    let applied = until("every node to apply the whole log", async || {
        let statuses: Vec<_> = nodes.iter().map(|n| n.node.status()).collect();
        let last = statuses[0].last_log_index;
        statuses
            .iter()
            .all(|s| s.last_applied.is_some() && s.last_applied == last && s.last_log_index == last)
            .then_some(last)
    })
    .await;
    let forward = format!("http://{}/cluster/forward", nodes[0].addr);
    let too_many: Vec<Vec<u8>> = vec![request("put", "flood", "x"); 1025];
    for body in [vec![9, 9, 9], codec::encode(&too_many).expect("encode")] {
        let answer = http
            .post(&forward)
            .bearer_auth("cluster-secret")
            .header("x-bitcask-from", "2")
            .header("x-bitcask-cluster", nodes[0].node.cluster_id().expect("id"))
            .header("x-bitcask-incarnation", &node2)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), 200);
        let reply: Result<(), String> =
            codec::decode(&answer.bytes().await.expect("body")).expect("reply");
        assert!(reply.is_err(), "{reply:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(read(&nodes[0].node, "flood").is_none());
    assert_eq!(nodes[0].node.status().last_applied, applied);
    // A node with the wrong token cannot take part: its votes are refused.
    let (l, addr) = listener().await;
    let mut intruder = config(7, &root.path().join("n7"), &addr);
    intruder.token = Some("guess".into());
    let intruder = serve(intruder, l).await.expect("start");
    let leader = leader_of(&nodes).await;
    let leader_node = &nodes
        .iter()
        .find(|n| n.node.id() == leader)
        .expect("leader")
        .node;
    let added = leader_node.add_member(7, addr).await;
    assert!(
        matches!(added, Err(ClusterError::Refused(_))),
        "a node with another token never catches up to become a voter: {added:?}"
    );
    until("node 7 to be taken out again", async || {
        (!leader_node.status().members.iter().any(|m| m.node_id == 7)).then_some(())
    })
    .await;
    intruder.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_another_node_or_a_single_node_store_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let single = root.path().join("single");
    let db = bitcask::Bitcask::open(&single).expect("open");
    db.put(b"k", b"v").expect("put");
    db.close().expect("close");
    let (_l, addr) = listener().await;
    let refused = Node::start(config(1, &single, &addr), Arc::new(TestApplier)).await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("single-node store"), "{error}");

    let dir = root.path().join("n1");
    let node = Node::start(config(1, &dir, &addr), Arc::new(TestApplier))
        .await
        .expect("start");
    node.shutdown().await.expect("shutdown");
    let refused = Node::start(config(2, &dir, &addr), Arc::new(TestApplier)).await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("belongs to node 1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_under_its_old_id_is_refused_and_its_id_is_not_reused() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_of(&nodes).await;
    // Node 3 is a follower here (not the leader), holding a first write.
    let at = nodes
        .iter()
        .position(|n| n.node.id() != leader)
        .expect("a follower");
    let wiped = nodes.remove(at);
    let wiped_id = wiped.node.id();
    nodes[0]
        .node
        .write(request("put", "before", "v"))
        .await
        .expect("write");
    until("the follower to hold the write", async || {
        read(&wiped.node, "before").map(|_| ())
    })
    .await;
    let founders: BTreeMap<u64, String> = nodes
        .iter()
        .map(|n| (n.node.id(), n.addr.clone()))
        .chain([(wiped_id, wiped.addr.clone())])
        .collect();

    // Its disk is lost; it comes back empty under the same id and address
    // (as a founder restarting on a new disk would).
    let (dir, addr) = wiped.stop().await;
    std::fs::remove_dir_all(&dir).expect("wipe");
    let l = TcpListener::bind(&addr).await.expect("rebind");
    let mut c = config(wiped_id, &dir, &addr);
    c.initial_cluster = Some(founders);
    let reborn = serve(c, l).await.expect("restart empty");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The others refuse it: its requests answer 403 with the reason...
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("http://{}/raft/vote", nodes[0].addr))
        .bearer_auth("cluster-secret")
        .header("x-bitcask-from", wiped_id.to_string())
        .header("x-bitcask-cluster", nodes[0].node.cluster_id().expect("id"))
        .header(
            "x-bitcask-incarnation",
            reborn.node.incarnation().to_string(),
        )
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 403);
    let why = refused.text().await.expect("text");
    assert!(why.contains("never reused"), "{why}");
    // ...and it gets no more of the log, while the other two go on.
    nodes[0]
        .node
        .write(request("put", "after", "v"))
        .await
        .expect("write with two of three");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(read(&reborn.node, "after").is_none());
    assert!(read(&reborn.node, "before").is_none());
    assert_ne!(reborn.node.status().role, "leader");

    // Its id is removed; adding it back under that id is refused at once.
    let leader_node = &nodes
        .iter()
        .find(|n| n.node.status().role == "leader")
        .expect("leader")
        .node;
    leader_node.remove_member(wiped_id).await.expect("remove");
    match leader_node.add_member(wiped_id, addr).await {
        Err(ClusterError::Refused(why)) => assert!(why.contains("never reused"), "{why}"),
        other => panic!("re-adding a used id: {other:?}"),
    }
    reborn.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writes_through_a_follower_are_forwarded_in_bounded_batches() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_of(&nodes).await;
    let follower = nodes
        .iter()
        .find(|n| n.node.id() != leader)
        .expect("follower")
        .node
        .clone();
    // More writes at once than one forward may carry (1,024): the ones
    // that wait for the next round are split into several forwards.
    let writes: Vec<_> = (0..2_500)
        .map(|i| {
            let follower = follower.clone();
            tokio::spawn(async move { follower.write(request("put", &format!("w{i}"), "v")).await })
        })
        .collect();
    for write in writes {
        write
            .await
            .expect("task")
            .expect("write through the follower");
    }
    let leader_node = &nodes
        .iter()
        .find(|n| n.node.id() == leader)
        .expect("leader")
        .node;
    assert!((0..2_500).all(|i| read(leader_node, &format!("w{i}")).is_some()));
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_membership_changes_end_in_one_plain_configuration() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_of(&nodes).await;
    let leader_node = nodes
        .iter()
        .find(|n| n.node.id() == leader)
        .expect("leader")
        .node
        .clone();
    let mut extra = Vec::new();
    for id in [4, 5] {
        let (l, addr) = listener().await;
        let node = serve(config(id, &root.path().join(format!("n{id}")), &addr), l)
            .await
            .expect("start");
        extra.push((id, addr, node));
    }
    // Both additions at once: the leader makes them one after the other
    // (openraft changes one membership at a time); none is left half done.
    // (Sent at once after the election: a new leader takes no change
    // before its first entry commits, and change_members asks again.)
    let changes: Vec<_> = extra
        .iter()
        .map(|(id, addr, _)| {
            let (node, id, addr) = (leader_node.clone(), *id, addr.clone());
            let change = MemberChange::Add {
                node_id: id,
                peer_addr: addr,
            };
            tokio::spawn(async move { (id, node.change_members(change).await) })
        })
        .collect();
    let mut added = Vec::new();
    for change in changes {
        match change.await.expect("task") {
            (id, Ok(())) => added.push(id),
            (id, Err(ClusterError::Refused(why))) => eprintln!("adding {id} refused: {why}"),
            (id, other) => panic!("adding {id}: {other:?}"),
        }
    }
    added.sort_unstable();
    assert_eq!(added, vec![4, 5], "both additions go through, in turn");
    // The result is one plain configuration: every member a voter (no
    // learner or joint leftovers), and a later change goes through.
    let status = leader_node.status();
    let mut voters: Vec<u64> = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect();
    voters.sort_unstable();
    let mut expected: Vec<u64> = [1, 2, 3].into_iter().chain(added.clone()).collect();
    expected.sort_unstable();
    assert_eq!(voters, expected, "{status:?}");
    assert_eq!(
        status.members.len(),
        expected.len(),
        "no learner left behind: {status:?}"
    );
    for (id, addr, _) in &extra {
        if !added.contains(id) {
            leader_node
                .add_member(*id, addr.clone())
                .await
                .expect("added once alone");
        }
    }
    assert_eq!(leader_node.status().members.len(), 5);
    for (_, _, node) in extra {
        node.stop().await;
    }
    for n in nodes {
        n.stop().await;
    }
}
