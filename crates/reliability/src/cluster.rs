//! A cluster of server processes on loopback, for fault tests and the
//! chaos run: node N listens on 127.0.0.N (so the others can tell its
//! connections apart), and a [`FaultProxy`] in front of each peer port is
//! the address the cluster knows the node by. Nodes can be killed,
//! restarted, paused (SIGSTOP) and resumed, or cut off from the others.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::{Fault, FaultProxy};

/// One node's process and addresses.
struct Slot {
    child: Option<Child>,
    /// `http://host:port` while it runs.
    url: Option<String>,
    /// Where its peer port really listens.
    peer_port: u16,
    paused: bool,
}

/// The cluster (see the module docs); every process is killed on drop.
pub struct Cluster {
    root: PathBuf,
    exe: PathBuf,
    token_file: PathBuf,
    founders: String,
    extra: Vec<String>,
    slots: BTreeMap<u64, Slot>,
    proxies: BTreeMap<u64, FaultProxy>,
    /// The id the next added node gets.
    next_id: u64,
    /// Runs the proxies (held so they live as long as the cluster).
    runtime: tokio::runtime::Runtime,
}

/// Node `id`'s address: 127.0.0.`id`.
pub fn ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        u8::try_from(id).unwrap_or(u8::MAX),
    ))
}

impl Cluster {
    /// Starts nodes 1..=`n` of a new cluster under `root`, each as `exe
    /// serve <flags>` (a binary with the reliability harnesses' `serve`
    /// mode), with `extra` server flags, and waits until they agree on a
    /// leader.
    pub fn start(root: &Path, exe: &Path, n: u64, extra: &[String]) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let token_file = root.join("token");
        std::fs::write(&token_file, "chaos-cluster-token\n").map_err(|e| e.to_string())?;
        let mut cluster = Self {
            root: root.to_path_buf(),
            exe: exe.to_path_buf(),
            token_file,
            founders: String::new(),
            extra: extra.to_vec(),
            slots: BTreeMap::new(),
            proxies: BTreeMap::new(),
            next_id: 1,
            runtime,
        };
        let mut founders = Vec::new();
        for _ in 1..=n {
            let (id, addr) = cluster.add_slot()?;
            founders.push(format!("{id}={addr}"));
        }
        cluster.founders = founders.join(",");
        for id in 1..=n {
            cluster.launch(id, true)?;
        }
        cluster.wait_for_leader(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn launch(&mut self, id: u64, founding: bool) -> Result<(), String> {
        let slot = self.slots.get_mut(&id).ok_or("no such node")?;
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .args(["--host", &ip(id).to_string(), "--port", "0"])
            .args(["--node-id", &id.to_string()])
            .args(["--peer-port", &slot.peer_port.to_string()])
            .arg("--data-dir")
            .arg(self.root.join(format!("node{id}")))
            .arg("--cluster-token-file")
            .arg(&self.token_file)
            .args(["--cluster-wait", "2s"])
            .args(&self.extra);
        if founding {
            command.args(["--initial-cluster", &self.founders]);
        }
        // Each node's warnings and errors go to node<id>.log beside its data
        // (kept when the run is given a --dir).
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("node{id}.log")))
            .map_err(|e| format!("node {id}'s log: {e}"))?;
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start node {id}: {e}"))?;
        let addr =
            crate::process::listening_addr(&mut child).map_err(|e| format!("node {id}: {e}"))?;
        slot.url = Some(format!("http://{addr}"));
        slot.child = Some(child);
        slot.paused = false;
        Ok(())
    }

    /// Makes room for a new node under the next unused id: a peer port, a
    /// fault proxy in front of it, and the process, started without
    /// `--initial-cluster` (it waits to be added). Returns the id and the
    /// peer address to add it under (`POST /cluster/members`, see
    /// [`add_member`]). Ids are never reused, not even a retired node's.
    pub fn launch_new_node(&mut self) -> Result<(u64, SocketAddr), String> {
        let (id, addr) = self.add_slot()?;
        self.launch(id, false)?;
        Ok((id, addr))
    }

    /// Takes the next unused id and gives it a peer port on its own address
    /// and a fault proxy in front of that port; returns the id and the
    /// proxy's address (the one the cluster knows the node by).
    fn add_slot(&mut self) -> Result<(u64, SocketAddr), String> {
        let id = self.next_id;
        if id > 254 {
            return Err("no more node addresses (127.0.0.1-254)".into());
        }
        let peer_port = crate::ports::unused_port(ip(id))?;
        let proxy = self
            .runtime
            .block_on(FaultProxy::start(
                SocketAddr::new(ip(1), 0),
                SocketAddr::new(ip(id), peer_port),
            ))
            .map_err(|e| format!("proxy for node {id}: {e}"))?;
        let addr = proxy.addr();
        self.proxies.insert(id, proxy);
        self.slots.insert(
            id,
            Slot {
                child: None,
                url: None,
                peer_port,
                paused: false,
            },
        );
        self.next_id += 1;
        Ok((id, addr))
    }

    /// Kills node `id` and forgets it (after it was removed from the
    /// cluster): its data directory stays, its id is not used again.
    pub fn retire(&mut self, id: u64) {
        self.resume(id);
        self.kill(id);
        self.slots.remove(&id);
        self.proxies.remove(&id);
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<u64> {
        self.slots.keys().copied().collect()
    }

    /// The URLs of the nodes that run (paused ones included).
    pub fn urls(&self) -> Vec<(u64, String)> {
        self.slots
            .iter()
            .filter_map(|(&id, s)| s.url.clone().map(|u| (id, u)))
            .collect()
    }

    /// The URLs of the nodes that run and are not paused: where clients
    /// send requests.
    pub fn up_urls(&self) -> Vec<(u64, String)> {
        self.urls()
            .into_iter()
            .filter(|(id, _)| self.is_up(*id))
            .collect()
    }

    /// Whether node `id` runs and is not paused.
    pub fn is_up(&self, id: u64) -> bool {
        self.slots
            .get(&id)
            .is_some_and(|s| s.child.is_some() && !s.paused)
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(slot) = self.slots.get_mut(&id)
            && let Some(mut child) = slot.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
            slot.url = None;
            slot.paused = false;
        }
    }

    /// Starts node `id` again on its data directory (no --initial-cluster:
    /// its membership is on disk).
    pub fn restart(&mut self, id: u64) -> Result<(), String> {
        self.kill(id);
        self.launch(id, false)
    }

    fn signal(&mut self, id: u64, signal: rustix::process::Signal, paused: bool) {
        if let Some(slot) = self.slots.get_mut(&id)
            && let Some(child) = &slot.child
            && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, signal);
            slot.paused = paused;
        }
    }

    /// SIGSTOPs node `id` (a long garbage-collection pause, a stuck disk).
    pub fn pause(&mut self, id: u64) {
        self.signal(id, rustix::process::Signal::STOP, true);
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: u64) {
        self.signal(id, rustix::process::Signal::CONT, false);
    }

    /// Cuts node `id` off from every other node, both ways (`fault` for
    /// its traffic: a blackhole, or dropped connections).
    pub fn isolate(&self, id: u64, fault: Fault) {
        for (&other, proxy) in &self.proxies {
            if other == id {
                for &caller in self.slots.keys().filter(|&&c| c != id) {
                    proxy.set(ip(caller), fault);
                }
            } else {
                proxy.set(ip(id), fault);
            }
        }
    }

    /// Delays every peer message to and from node `id` by `by`.
    pub fn slow(&self, id: u64, by: Duration) {
        self.isolate(id, Fault::Delay(by));
    }

    /// Ends every network fault.
    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Resumes paused nodes, restarts killed ones and heals the network.
    pub fn recover_all(&mut self) -> Result<(), String> {
        self.heal();
        for id in self.ids() {
            if self.slots[&id].paused {
                self.resume(id);
            }
            if self.slots[&id].child.is_none() {
                self.launch(id, false)?;
            }
        }
        Ok(())
    }

    /// The leader, if a majority of the running nodes name the same one.
    pub fn leader(&self) -> Option<u64> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?;
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for (id, url) in self.urls() {
            if !self.is_up(id) {
                continue;
            }
            let view: Option<serde_json::Value> = http
                .get(format!("{url}/cluster"))
                .send()
                .ok()
                .and_then(|r| r.json().ok());
            if let Some(leader) = view.and_then(|v| v["leader_id"].as_u64()) {
                *votes.entry(leader).or_default() += 1;
            }
        }
        let majority = self.slots.len() / 2 + 1;
        votes
            .into_iter()
            .find(|&(_, n)| n >= majority)
            .map(|(leader, _)| leader)
    }

    /// Waits until a majority agrees on a leader.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                return Err(format!("no leader within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The cluster shared between the thread that injects faults and the
/// client threads.
pub type Shared = std::sync::Arc<std::sync::Mutex<Cluster>>;

/// Locks a shared cluster (a panicked holder does not poison it for the
/// others: the cluster's state is only ever whole).
pub fn lock(cluster: &std::sync::Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    cluster
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where clients send requests, read again before every request: the
/// [`Cluster::up_urls`] of the shared cluster now.
pub fn client_targets(
    cluster: &Shared,
) -> std::sync::Arc<dyn Fn() -> Vec<(u64, String)> + Send + Sync> {
    let cluster = std::sync::Arc::clone(cluster);
    std::sync::Arc::new(move || lock(&cluster).up_urls())
}

/// Adds node `id` at `peer_addr` through the node at `via` (a base URL):
/// `POST /cluster/members`, which answers once the node has caught up and
/// votes. Retries while the cluster answers 503 (no leader for a moment),
/// up to `attempts` times; a request that got no answer is not retried.
pub fn add_member(via: &str, id: u64, peer_addr: SocketAddr, attempts: u32) -> Result<(), String> {
    let body = serde_json::json!({"node_id": id, "peer_addr": peer_addr.to_string()});
    membership_request(attempts, || {
        membership_client()?
            .post(format!("{via}/cluster/members"))
            .json(&body)
            .send()
            .map_err(|e| e.to_string())
    })
    .map_err(|e| format!("adding node {id}: {e}"))
}

/// Removes node `id` through the node at `via`: `DELETE /cluster/members/{id}`,
/// retried like [`add_member`].
pub fn remove_member(via: &str, id: u64, attempts: u32) -> Result<(), String> {
    membership_request(attempts, || {
        membership_client()?
            .delete(format!("{via}/cluster/members/{id}"))
            .send()
            .map_err(|e| e.to_string())
    })
    .map_err(|e| format!("removing node {id}: {e}"))
}

fn membership_client() -> Result<reqwest::blocking::Client, String> {
    // An addition waits for the new node to catch up (up to 120 s).
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(150))
        .build()
        .map_err(|e| e.to_string())
}

fn membership_request(
    attempts: u32,
    send: impl Fn() -> Result<reqwest::blocking::Response, String>,
) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..attempts.max(1) {
        match send() {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                last = format!("503: {}", r.text().unwrap_or_default());
            }
            Ok(r) => {
                let status = r.status();
                return Err(format!("{status}: {}", r.text().unwrap_or_default()));
            }
            // Not retried: the change may have been made.
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(last)
}

impl Cluster {
    /// Kills every node (the cluster is of no more use). Dropping the
    /// cluster does this too; a test whose cluster is shared with client
    /// threads calls it from a guard, so a failing assertion does not
    /// leave server processes behind.
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            self.resume(id);
            self.kill(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
