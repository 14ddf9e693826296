//! [`Node`]: one member of a cluster, wired together: the raft log, the
//! state machine, the peer network, the proposer that batches client
//! writes into entries, and the handlers of the peer port's requests.
//!
//! A node directory holds `NODE` (its identity: node id, cluster id and
//! the founding members, a state file), `raft/` (the log and the vote),
//! `store/` (the state machine) and `snapshots/`; see `docs/FORMAT.md`
//! ("Cluster node directory").

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bitcask::Bitcask;
use bitcask::journal;
use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::linearizable_read::{Linearizer, ReadLogId};
use openraft::{ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::codec;
use crate::incarnations::Incarnations;
use crate::log_store::LogStore;
use crate::network::{self, Network, PeerAuth, PeerError, Reply, SnapshotOffer};
use crate::rounds::Rounds;
use crate::snapshot::{self, SnapshotDir};
use crate::state_machine::{Applier, StateMachine, blocking};
use crate::types::{LogId, Member, NodeId, Proposal, Snapshot, TypeConfig};

/// The Raft instance of a node.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// The identity state file in a node directory.
const NODE_FILE: &str = "NODE";
/// Most requests in one entry.
const MAX_BATCH_REQUESTS: usize = 1024;
/// Most request bytes in one entry.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Entries proposed and not yet applied, at most.
const MAX_IN_FLIGHT: usize = 8;
/// Longest snapshot preamble accepted.
const MAX_PREAMBLE: u32 = 16 << 20;
/// A received snapshot file is written in pieces of this size.
const RECEIVE_CHUNK: usize = 1 << 20;

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (positive).
    pub node_id: NodeId,
    /// The node directory.
    pub dir: PathBuf,
    /// The address other nodes reach this one's peer port at.
    pub peer_addr: String,
    /// The founding members (id and peer address), on a first start.
    pub initial_cluster: Option<BTreeMap<NodeId, String>>,
    /// The secret peers share.
    pub token: Option<String>,
    /// The address outgoing peer connections come from (the node's host),
    /// if not the system's choice.
    pub bind_ip: Option<std::net::IpAddr>,
    /// Options of the store (the state machine sets its clock and sync).
    pub store_options: bitcask::Options,
    /// Milliseconds between a leader's heartbeats.
    pub heartbeat_ms: u64,
    /// Election time-out range in milliseconds.
    pub election_ms: (u64, u64),
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub keep_after_snapshot: u64,
    /// How long a request waits for a leader (or for its entry) before it
    /// is answered "unavailable".
    pub wait: Duration,
    /// How long a node being added may take to catch up before the
    /// addition is abandoned.
    pub catch_up: Duration,
}

impl NodeConfig {
    /// Defaults for node `node_id` in `dir`, reached at `peer_addr`.
    pub fn new(node_id: NodeId, dir: PathBuf, peer_addr: String) -> Self {
        Self {
            node_id,
            dir,
            peer_addr,
            initial_cluster: None,
            token: None,
            bind_ip: None,
            store_options: bitcask::Options::new(),
            heartbeat_ms: 100,
            election_ms: (800, 1600),
            snapshot_every: 50_000,
            keep_after_snapshot: 5_000,
            wait: Duration::from_secs(5),
            catch_up: Duration::from_secs(120),
        }
    }
}

/// Who this node is, as its `NODE` file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    node_id: NodeId,
    /// Derived from the founding members; `None` until a joining node
    /// first hears from its cluster.
    cluster_id: Option<String>,
    founders: Option<BTreeMap<NodeId, String>>,
    /// Chosen at random when the directory is made (see
    /// [`crate::incarnations`]).
    incarnation: u64,
}

/// A write's reply from the applier, or why there is none.
type WriteOutcome = Result<Vec<u8>, ClusterError>;

/// Why a cluster operation did not happen (sent as it is between nodes,
/// for a membership change a follower forwards).
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ClusterError {
    /// No leader is known (no quorum, or an election is under way).
    #[error("no leader is available (no quorum, or an election is under way)")]
    NoLeader,
    /// The node asked is not (or not yet, or no longer) a leader that may
    /// take writes; the request was not applied and may be sent again.
    #[error("not the leader")]
    NotLeader,
    /// The request was not done within the wait.
    #[error("timed out waiting for the cluster")]
    Timeout,
    /// The request was refused (bad argument, membership rule).
    #[error("{0}")]
    Refused(String),
    /// Another membership change is under way (or, right after an
    /// election, the last one is not yet committed): nothing was done;
    /// asked again within the wait.
    #[error("another membership change is under way; retry shortly ({0})")]
    Busy(String),
    /// The node cannot go on (storage failure, shut down).
    #[error("cluster failure: {0}")]
    Fatal(String),
}

/// One member in [`Status`].
pub use bitcask_wire::ClusterMember as MemberStatus;
/// The node's view of the cluster, for `GET /cluster` (the wire type the
/// client reads).
pub use bitcask_wire::ClusterStatus as Status;
/// How far one member has replicated, seen from the leader.
pub use bitcask_wire::MemberLag as Replication;

/// Pause between attempts while a leader settles.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why a forwarded write was not done.
#[derive(Debug, Serialize, Deserialize)]
enum ForwardRefusal {
    /// The receiver does not lead: nothing was applied; try again.
    NotLeader,
    /// No commit within the wait there: it may or may not be applied.
    Timeout,
    /// It failed there (or may have been applied: a time-out).
    Failed(String),
}

/// A change of the membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add this node (as a learner, then a voter once caught up).
    Add {
        /// Its id.
        node_id: NodeId,
        /// Its peer address.
        peer_addr: String,
    },
    /// Remove this node.
    Remove {
        /// Its id.
        node_id: NodeId,
    },
}

/// A client request waiting for its entry.
struct Pending {
    request: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, ClusterError>>,
}

/// One member of a cluster (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    sm: StateMachine,
    network: Network,
    auth: PeerAuth,
    proposals: mpsc::Sender<Pending>,
    snapshots: PathBuf,
    wait: Duration,
    catch_up: Duration,
    /// How long a leader may go without a quorum's acknowledgement and
    /// still count as one (openraft's lease: the longest election time-out).
    lease: Duration,
    /// Times the known leader changed since the node started.
    leader_changes: Arc<std::sync::atomic::AtomicU64>,
    /// Linearizable reads waiting for, or in, a read-index round.
    reads: Arc<Rounds<(), Result<Linearizer<TypeConfig>, ClusterError>>>,
    /// Writes waiting to be forwarded to the leader, or on their way.
    forwards: Arc<Rounds<Vec<u8>, WriteOutcome>>,
    /// Held through a membership change made here: changes sent at once
    /// are made one after the other (openraft refuses a change while
    /// another is under way).
    membership: tokio::sync::Mutex<()>,
}

/// Counts for the node's metrics.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counters {
    /// Times the known leader changed since the node started.
    pub leader_changes: u64,
    /// Snapshots this node built.
    pub snapshots_built: u64,
    /// Snapshots this node installed (sent by a leader).
    pub snapshots_installed: u64,
}

impl Node {
    /// Opens the node directory and starts the node. On a first start with
    /// `initial_cluster`, every founder initialises the cluster with the
    /// same membership (openraft allows this: the vote picks one leader).
    pub async fn start(config: NodeConfig, applier: Arc<dyn Applier>) -> io::Result<Self> {
        if config.node_id == 0 {
            return Err(refuse("node ids start at 1"));
        }
        if let Some(founders) = &config.initial_cluster {
            check_founders(config.node_id, founders)?;
        }
        bitcask::disk::create_dir_durably(&config.dir)?;
        let identity = settle_identity(&config)?;
        let auth = PeerAuth {
            node_id: config.node_id,
            token: config.token.clone(),
            cluster_id: Arc::new(RwLock::new(identity.cluster_id.clone())),
            incarnation: identity.incarnation,
            peers: Arc::new(Incarnations::open(&config.dir)?),
        };
        let log = LogStore::open(&config.dir.join("raft"))?;
        let sm = StateMachine::open(&config.dir, config.store_options.clone(), applier)?;
        let network = Network::new(auth.clone(), config.bind_ip, Duration::from_secs(2))
            .map_err(io::Error::other)?;
        let raft_config = Config {
            cluster_name: "bitcask".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_ms.0,
            election_timeout_max: config.election_ms.1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_after_snapshot,
            install_snapshot_timeout: 60_000,
            ..Config::default()
        }
        .validate()
        .map_err(io::Error::other)?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network.clone(),
            log,
            sm.clone(),
        )
        .await
        .map_err(io::Error::other)?;
        if let Some(founders) = &config.initial_cluster
            && !raft.is_initialized().await.map_err(io::Error::other)?
        {
            let members: BTreeMap<NodeId, Member> = founders
                .iter()
                .map(|(&id, addr)| {
                    (
                        id,
                        Member {
                            peer_addr: addr.clone(),
                        },
                    )
                })
                .collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(node_id = config.node_id, "initialised the cluster"),
                // Another founder got there first: what we wanted.
                Err(RaftError::APIError(e)) => tracing::debug!(%e, "already initialised"),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let (proposals, queue) = mpsc::channel(MAX_BATCH_REQUESTS * 4);
        tokio::spawn(propose_loop(raft.clone(), queue, config.wait));
        let leader_changes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(count_leader_changes(
            raft.clone(),
            Arc::clone(&leader_changes),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                id: config.node_id,
                raft,
                sm,
                network,
                auth,
                proposals,
                snapshots: config.dir.join("snapshots"),
                wait: config.wait,
                catch_up: config.catch_up,
                lease: Duration::from_millis(config.election_ms.1),
                leader_changes,
                reads: Rounds::new(),
                forwards: Rounds::new(),
                membership: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The Raft instance (for metrics and tests).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The store, for reads; `None` while a snapshot is being installed.
    pub fn store(&self) -> Option<Arc<Bitcask>> {
        self.inner.sm.store()
    }

    /// The index of the last entry applied to the store.
    pub fn applied_index(&self) -> Option<u64> {
        self.inner.sm.applied_index()
    }

    /// Counts for metrics.
    pub fn counters(&self) -> Counters {
        let (snapshots_built, snapshots_installed) = self.inner.sm.snapshot_counts();
        Counters {
            leader_changes: self
                .inner
                .leader_changes
                .load(std::sync::atomic::Ordering::Relaxed),
            snapshots_built,
            snapshots_installed,
        }
    }

    /// The cluster id, once known.
    pub fn cluster_id(&self) -> Option<String> {
        self.inner
            .auth
            .cluster_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The leader, waiting up to the node's wait for one to be known.
    async fn leader(&self) -> Result<NodeId, ClusterError> {
        let mut metrics = self.inner.raft.metrics();
        let found = tokio::time::timeout(self.inner.wait, async {
            loop {
                if let Some(leader) = metrics.borrow_watched().current_leader {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(ClusterError::Fatal("raft stopped".into()));
                }
            }
        })
        .await;
        found.unwrap_or(Err(ClusterError::NoLeader))
    }

    fn peer_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|member| member.peer_addr.clone())
    }

    /// Runs `request` (opaque, for the [`Applier`]) as a write of the
    /// cluster: proposed on the leader (forwarded there if this node is not
    /// it) and answered once committed and applied, with the applier's
    /// reply. Bounded by the node's wait. Sent again (to whichever node
    /// leads by then) only when it certainly was not applied: refused by a
    /// node that does not lead, or not delivered at all.
    pub async fn write(&self, request: Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        let deadline = tokio::time::Instant::now() + self.inner.wait;
        loop {
            match self.write_once(&request).await {
                Err(ClusterError::NotLeader) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(ClusterError::NotLeader) => return Err(ClusterError::NoLeader),
                other => return other,
            }
        }
    }

    async fn write_once(&self, request: &[u8]) -> Result<Vec<u8>, ClusterError> {
        let leader = self.leader().await?;
        if leader == self.inner.id {
            return self.propose(request.to_vec()).await;
        }
        // Forwarded with the other writes that join the same round (see
        // `crate::rounds`). Past the wait it may still be sent: a time-out
        // here means "may or may not be applied", as on the leader.
        let node = self.clone();
        let round = move |requests: Vec<Vec<u8>>| {
            let node = node.clone();
            async move { node.forward(requests).await }
        };
        tokio::time::timeout(
            self.inner.wait,
            self.inner.forwards.join(request.to_vec(), round),
        )
        .await
        .map_err(|_| ClusterError::Timeout)?
        .unwrap_or_else(|| Err(ClusterError::Fatal("a forwarding round failed".into())))
    }

    /// Sends `requests` to the leader, in peer requests of at most
    /// [`MAX_BATCH_REQUESTS`] writes and about [`MAX_BATCH_BYTES`] (what
    /// the leader takes in one forward), all at once; one outcome per
    /// request, in order.
    async fn forward(&self, requests: Vec<Vec<u8>>) -> Vec<WriteOutcome> {
        let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut bytes = 0;
        for request in requests {
            let full = chunks.last().is_none_or(|chunk| {
                chunk.len() >= MAX_BATCH_REQUESTS || bytes + request.len() > MAX_BATCH_BYTES
            });
            if full {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += request.len();
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(request);
            }
        }
        futures_util::future::join_all(chunks.into_iter().map(|c| self.forward_chunk(c)))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends `requests` to the leader in one peer request; one outcome per
    /// request, in order. `NotLeader` (sent again by [`Node::write`]) only
    /// where the request certainly was not applied.
    async fn forward_chunk(&self, requests: Vec<Vec<u8>>) -> Vec<WriteOutcome> {
        let n = requests.len();
        let all = |error: ClusterError| vec![Err(error); n];
        let leader = match self.leader().await {
            Ok(leader) => leader,
            Err(e) => return all(e),
        };
        let addr = match self.peer_addr(leader) {
            // This node leads now: the writers send again, to it.
            Some(_) if leader == self.inner.id => return all(ClusterError::NotLeader),
            Some(addr) => addr,
            None => return all(ClusterError::NotLeader),
        };
        let body = match codec::encode(&requests) {
            Ok(body) => body,
            Err(e) => return all(ClusterError::Fatal(e.to_string())),
        };
        let client = self.inner.network.client(leader, &addr);
        let reply: Result<Vec<Result<Vec<u8>, ForwardRefusal>>, PeerError> = client
            .call(network::FORWARD_PATH, body, self.inner.wait)
            .await;
        match reply {
            Ok(outcomes) if outcomes.len() == n => outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(reply) => Ok(reply),
                    Err(ForwardRefusal::NotLeader) => Err(ClusterError::NotLeader),
                    Err(ForwardRefusal::Timeout) => Err(ClusterError::Timeout),
                    Err(ForwardRefusal::Failed(why)) => Err(ClusterError::Refused(why)),
                })
                .collect(),
            Ok(_) => all(ClusterError::Fatal(
                "the leader answered a different number of writes".into(),
            )),
            Err(PeerError::Unreachable(_)) => all(ClusterError::NotLeader),
            // Cut off mid-exchange, or no answer in time: they may have
            // arrived and been applied.
            Err(PeerError::Timeout(_) | PeerError::Network(_)) => all(ClusterError::Timeout),
            // The leader's side failed the exchange (shutting down, over its
            // connection cap, ...): whether the writes got in is unknown.
            Err(PeerError::Remote(why)) => {
                tracing::warn!(leader, %why, "a forward to the leader failed");
                all(ClusterError::Timeout)
            }
        }
    }

    /// Queues `request` for the next entry this (leader) node proposes.
    async fn propose(&self, request: Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .proposals
            .send(Pending { request, reply })
            .await
            .map_err(|_| ClusterError::Fatal("the proposer stopped".into()))?;
        match tokio::time::timeout(self.inner.wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClusterError::Fatal("the proposer dropped a request".into())),
            Err(_) => Err(ClusterError::Timeout),
        }
    }

    /// Returns once this node's store holds every write committed before
    /// the call (a linearizable read may then read the store): the
    /// leader's read index, confirmed by a quorum, applied here.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let wait = self.inner.wait;
        let node = self.clone();
        let round = move |reads: Vec<()>| {
            let node = node.clone();
            async move {
                let index = tokio::time::timeout(wait, node.read_index())
                    .await
                    .unwrap_or(Err(ClusterError::Timeout));
                vec![index; reads.len()]
            }
        };
        let linearizer = tokio::time::timeout(wait, self.inner.reads.join((), round))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .ok_or_else(|| ClusterError::Fatal("a read round failed".into()))??;
        tokio::time::timeout(wait, linearizer.await_ready(&self.inner.raft))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .map_err(|e| ClusterError::Fatal(e.to_string()))?;
        Ok(())
    }

    /// One read-index round (shared by the reads that joined it, see
    /// [`crate::rounds`]): the leader confirms its leadership with a
    /// quorum, or a follower asks the leader for its read index.
    async fn read_index(&self) -> Result<Linearizer<TypeConfig>, ClusterError> {
        let leader = self.leader().await?;
        if leader == self.inner.id {
            // Refused by a leader that cannot confirm a quorum (or no longer
            // leads): unavailable, not a client error.
            return self
                .inner
                .raft
                .get_read_linearizer(ReadPolicy::ReadIndex)
                .await
                .map_err(|e| match e {
                    RaftError::APIError(_) => ClusterError::NoLeader,
                    RaftError::Fatal(f) => ClusterError::Fatal(f.to_string()),
                });
        }
        let Some(addr) = self.peer_addr(leader) else {
            return Err(ClusterError::NoLeader);
        };
        let client = self.inner.network.client(leader, &addr);
        let (read, applied): (ReadLogId<TypeConfig>, Option<LogId>) = client
            .call(network::READ_INDEX_PATH, Vec::new(), self.inner.wait)
            .await
            .map_err(|e| match e {
                PeerError::Timeout(_) => ClusterError::Timeout,
                // Unreachable, or refused by a leader that cannot
                // confirm a quorum: unavailable either way.
                _ => ClusterError::NoLeader,
            })?;
        Ok(Linearizer::new(leader, read, applied))
    }

    /// The node's view of the cluster.
    pub fn status(&self) -> Status {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(&id, member)| {
                MemberStatus::new(id, member.peer_addr.clone(), voters.contains(&id))
            })
            .collect();
        let last = m.last_log_index.unwrap_or(0);
        let replication = m.replication.as_ref().map(|r| {
            r.iter()
                .map(|(&id, matched)| {
                    let matched = matched.as_ref().map(|l| l.index());
                    Replication::new(id, matched, last.saturating_sub(matched.unwrap_or(0)))
                })
                .collect()
        });
        // A leader that has not heard from a quorum within its lease takes
        // no writes and confirms no reads (openraft's CheckQuorum): it does
        // not count as a leader until it hears from one again, or learns of
        // the new one and steps down.
        let cut_off = m.state == ServerState::Leader
            && m.last_quorum_acked
                .as_ref()
                .is_none_or(|at| at.elapsed() > self.inner.lease);
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let mut status = Status::new(self.inner.id, role);
        status.leader_id = if cut_off { None } else { m.current_leader };
        status.term = m.current_term;
        status.last_log_index = m.last_log_index;
        status.last_applied = m.last_applied.map(|l| l.index());
        status.committed = m.cluster_committed.map(|l| l.index());
        status.members = members;
        status.replication = replication;
        status.snapshot = m.snapshot.map(|l| l.index());
        status
    }

    /// Makes `change` on the leader: here if this node leads, else
    /// forwarded to it over the peer port (one hop).
    /// Sent again (to whichever node leads by then) while the answer is
    /// "not the leader" or "another change is under way", within the
    /// node's wait: a leader just elected takes no membership change until
    /// its first entry (or the founding membership) commits.
    pub async fn change_members(&self, change: MemberChange) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + self.inner.wait;
        loop {
            match self.change_members_once(change.clone()).await {
                Err(ClusterError::NotLeader | ClusterError::Busy(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(ClusterError::NotLeader) => return Err(ClusterError::NoLeader),
                other => return other,
            }
        }
    }

    async fn change_members_once(&self, change: MemberChange) -> Result<(), ClusterError> {
        let leader = self.leader().await?;
        if leader == self.inner.id {
            return match change {
                MemberChange::Add { node_id, peer_addr } => {
                    self.add_member(node_id, peer_addr).await
                }
                MemberChange::Remove { node_id } => self.remove_member(node_id).await,
            };
        }
        let Some(addr) = self.peer_addr(leader) else {
            return Err(ClusterError::NoLeader);
        };
        let body = codec::encode(&change).map_err(|e| ClusterError::Fatal(e.to_string()))?;
        let client = self.inner.network.client(leader, &addr);
        // The leader's own outcome comes back as it was (so "not the
        // leader" and "busy" are asked again by `change_members`).
        let reply: Result<Result<(), ClusterError>, PeerError> = client
            .call(
                network::MEMBERS_PATH,
                body,
                self.inner.catch_up + self.inner.wait * 2,
            )
            .await;
        match reply {
            Ok(outcome) => outcome,
            Err(PeerError::Remote(why)) => Err(ClusterError::Refused(why)),
            Err(PeerError::Unreachable(_)) => Err(ClusterError::NoLeader),
            Err(PeerError::Timeout(_)) => Err(ClusterError::Timeout),
            Err(e) => Err(ClusterError::Refused(e.to_string())),
        }
    }

    /// `POST /cluster/members` on the peer port: a change another node
    /// was asked for.
    pub async fn handle_members(&self, body: &[u8]) -> Vec<u8> {
        let reply: Reply<Result<(), ClusterError>> = match codec::decode::<MemberChange>(body) {
            Ok(change) if self.inner.raft.is_leader() => Ok(match change {
                MemberChange::Add { node_id, peer_addr } => {
                    self.add_member(node_id, peer_addr).await
                }
                MemberChange::Remove { node_id } => self.remove_member(node_id).await,
            }),
            // The sender asks again, where the leader is by then.
            Ok(_) => Ok(Err(ClusterError::NotLeader)),
            Err(e) => Err(format!("bad request: {e}")),
        };
        encode_reply(&reply)
    }

    /// Adds node `id` at `peer_addr` as a learner, waits until it has caught
    /// up, then makes it a voter. Refuses an id that is already a member.
    pub async fn add_member(&self, id: NodeId, peer_addr: String) -> Result<(), ClusterError> {
        let _one_at_a_time = self.inner.membership.lock().await;
        if id == 0 {
            return Err(ClusterError::Refused("node ids start at 1".into()));
        }
        if self.peer_addr(id).is_some() {
            return Err(ClusterError::Refused(format!(
                "node {id} is already a member"
            )));
        }
        self.greet(id, &peer_addr).await?;
        let raft = &self.inner.raft;
        raft.add_learner(id, Member { peer_addr }, false)
            .await
            .map_err(membership_error)?;
        if let Err(e) = self.caught_up(id).await {
            // Not a member that never catches up: take it out again.
            let _ = raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await;
            return Err(e);
        }
        let promoted = raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error);
        if let Err(e) = promoted {
            // Not left behind as a learner: the addition is undone whole.
            let _ = raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await;
            return Err(e);
        }
        tracing::info!(node_id = id, "added a voter");
        Ok(())
    }

    /// Before node `id` at `peer_addr` is added: it must answer, be node
    /// `id`, and not be another incarnation of an id this node knew (see
    /// [`crate::incarnations`]). Also teaches it the cluster's id.
    async fn greet(&self, id: NodeId, peer_addr: &str) -> Result<(), ClusterError> {
        let client = self.inner.network.client(id, peer_addr);
        let answer: Result<NodeId, PeerError> = client
            .call(network::HELLO_PATH, Vec::new(), self.inner.wait)
            .await;
        match answer {
            Ok(their) if their == id => Ok(()),
            Ok(their) => Err(ClusterError::Refused(format!(
                "{peer_addr} is node {their}, not node {id}"
            ))),
            Err(PeerError::Remote(why)) => Err(ClusterError::Refused(format!(
                "node {id} at {peer_addr} refused or was refused: {why}"
            ))),
            Err(e) => Err(ClusterError::Refused(format!(
                "node {id} does not answer at {peer_addr} ({e}); start it (with --node-id {id} \
                 and no --initial-cluster) before adding it"
            ))),
        }
    }

    /// Waits until learner `id` holds every entry the leader held when the
    /// wait began (within the node's catch-up time).
    async fn caught_up(&self, id: NodeId) -> Result<(), ClusterError> {
        let mut metrics = self.inner.raft.metrics();
        let target = metrics.borrow_watched().last_log_index.unwrap_or(0);
        let waited = tokio::time::timeout(self.inner.catch_up, async {
            loop {
                let matched = {
                    let m = metrics.borrow_watched();
                    if m.state != ServerState::Leader {
                        return Err(ClusterError::NotLeader);
                    }
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned().flatten())
                        .map(|l| l.index())
                };
                if matched.is_some_and(|m| m >= target) {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(ClusterError::Fatal("raft stopped".into()));
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(ClusterError::Refused(format!(
                "node {id} did not catch up within {:?}: is it running, reachable at its peer \
                 address, and started with the cluster token?",
                self.inner.catch_up
            )))
        })
    }

    /// Removes node `id` from the cluster. Refuses to leave fewer than two
    /// voters; leaving exactly two is done with a warning (such a cluster
    /// cannot lose either node: `docs/CLUSTER.md`).
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ClusterError> {
        let _one_at_a_time = self.inner.membership.lock().await;
        let raft = &self.inner.raft;
        let (voters, learners): (BTreeSet<NodeId>, BTreeSet<NodeId>) = {
            let metrics = raft.metrics();
            let m = metrics.borrow_watched();
            let membership = m.membership_config.membership();
            (
                membership.voter_ids().collect(),
                membership.learner_ids().collect(),
            )
        };
        if learners.contains(&id) {
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(membership_error)?;
            return Ok(());
        }
        if !voters.contains(&id) {
            return Err(ClusterError::Refused(format!("node {id} is not a member")));
        }
        if voters.len() <= 2 {
            return Err(ClusterError::Refused(format!(
                "removing node {id} would leave {} voter(s); a cluster of fewer than three \
                 voters cannot lose a node (add one first)",
                voters.len() - 1
            )));
        }
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error)?;
        if voters.len() == 3 {
            tracing::warn!(
                removed = id,
                "two voters are left: the cluster cannot lose either of them; add a node"
            );
        }
        Ok(())
    }

    /// Stops raft and closes the store.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.inner.raft.shutdown().await.map_err(io::Error::other)?;
        let sm = self.inner.sm.clone();
        tokio::task::spawn_blocking(move || sm.close())
            .await
            .map_err(io::Error::other)?
    }

    /// Checks a peer request's sender and cluster (the token is checked by
    /// the listener): refuses this node's own id (a node never talks to
    /// itself), and another cluster's id. A node that does not know its
    /// cluster id yet (a joining learner) learns it from the first request.
    pub fn admit_peer(
        &self,
        from: Option<&str>,
        cluster: Option<&str>,
        incarnation: Option<&str>,
    ) -> Result<NodeId, String> {
        let from: NodeId = from
            .and_then(|f| f.parse().ok())
            .filter(|&id| id != 0)
            .ok_or_else(|| "a peer request must name its sender".to_string())?;
        if from == self.inner.id {
            return Err(format!("a request claims to come from this node ({from})"));
        }
        let incarnation: u64 = incarnation
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| "a peer request must name its sender's incarnation".to_string())?;
        self.admit_cluster(cluster)?;
        self.inner.auth.peers.check(from, incarnation)?;
        Ok(from)
    }

    /// This node's incarnation (see [`crate::incarnations`]).
    pub fn incarnation(&self) -> u64 {
        self.inner.auth.incarnation
    }

    /// `POST /cluster/hello`: this node's id (a leader greets a node before
    /// adding it; the answer's incarnation header tells it which node it is).
    pub fn handle_hello(&self) -> Vec<u8> {
        encode_reply(&Ok(self.inner.id))
    }

    /// Checks the cluster a request names (a node that does not know its
    /// cluster yet learns it here).
    fn admit_cluster(&self, cluster: Option<&str>) -> Result<(), String> {
        let mut known = self
            .inner
            .auth
            .cluster_id
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match (known.as_deref(), cluster) {
            (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
            (Some(_), _) => Err("the request belongs to another cluster".to_string()),
            (None, Some(theirs)) => {
                *known = Some(theirs.to_string());
                drop(known);
                if let Err(e) = self.remember_cluster(theirs) {
                    tracing::error!(error = %e, "cannot record the cluster id");
                }
                Ok(())
            }
            (None, None) => Err("the request names no cluster".to_string()),
        }
    }

    fn remember_cluster(&self, cluster: &str) -> io::Result<()> {
        let dir = self
            .inner
            .snapshots
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let mut identity: Identity =
            match journal::read_state_file(&dir, NODE_FILE).map_err(io::Error::other)? {
                Some(bytes) => codec::decode(&bytes)?,
                None => return Err(io::Error::other("the node file is gone")),
            };
        identity.cluster_id = Some(cluster.to_string());
        journal::write_state_file(&dir, NODE_FILE, &codec::encode(&identity)?)
            .map_err(io::Error::other)
    }

    /// `POST /raft/append`.
    pub async fn handle_append(&self, body: &[u8]) -> Vec<u8> {
        let reply = match codec::decode(body) {
            Ok(request) => self
                .inner
                .raft
                .append_entries(request)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad request: {e}")),
        };
        encode_reply(&reply)
    }

    /// `POST /raft/vote`.
    pub async fn handle_vote(&self, body: &[u8]) -> Vec<u8> {
        let reply = match codec::decode(body) {
            Ok(request) => self
                .inner
                .raft
                .vote(request)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad request: {e}")),
        };
        encode_reply(&reply)
    }

    /// `POST /raft/transfer-leader`.
    pub async fn handle_transfer(&self, body: &[u8]) -> Vec<u8> {
        let reply = match codec::decode(body) {
            Ok(request) => self
                .inner
                .raft
                .handle_transfer_leader(request)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad request: {e}")),
        };
        encode_reply(&reply)
    }

    /// `POST /cluster/forward`: writes another node received (a list, at
    /// most [`MAX_BATCH_REQUESTS`]), answered with one outcome each, in
    /// order. Proposed here only (never forwarded again): a node that does
    /// not lead says so, and the sender retries where the leader now is.
    pub async fn handle_forward(&self, body: &[u8]) -> Vec<u8> {
        let requests = match codec::decode::<Vec<Vec<u8>>>(body) {
            Ok(requests) if requests.len() <= MAX_BATCH_REQUESTS => requests,
            Ok(requests) => {
                return encode_reply::<()>(&Err(format!(
                    "{} writes in one forward; at most {MAX_BATCH_REQUESTS}",
                    requests.len()
                )));
            }
            Err(e) => return encode_reply::<()>(&Err(format!("bad request: {e}"))),
        };
        // Queued in order, so they share the next entries.
        let outcomes: Vec<Result<Vec<u8>, ForwardRefusal>> =
            futures_util::future::join_all(requests.into_iter().map(|r| self.propose(r)))
                .await
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(reply) => Ok(reply),
                    Err(ClusterError::NotLeader | ClusterError::NoLeader) => {
                        Err(ForwardRefusal::NotLeader)
                    }
                    Err(ClusterError::Timeout) => Err(ForwardRefusal::Timeout),
                    Err(e) => Err(ForwardRefusal::Failed(e.to_string())),
                })
                .collect();
        encode_reply(&Ok(outcomes))
    }

    /// `POST /cluster/read-index`: the leader's read index, for a follower's
    /// linearizable read.
    pub async fn handle_read_index(&self) -> Vec<u8> {
        let reply = self
            .inner
            .raft
            .get_read_log_id(ReadPolicy::ReadIndex)
            .await
            .map_err(|e| e.to_string());
        encode_reply(&reply)
    }

    /// `POST /raft/snapshot`: receives a streamed snapshot (see
    /// `network.rs`) into `snapshots/incoming-*`, checks every file's
    /// checksum, makes it durable and complete, then installs it.
    pub async fn handle_snapshot(&self, body: impl AsyncRead + Unpin) -> Vec<u8> {
        let incoming = self
            .inner
            .snapshots
            .join(format!("incoming-{}", snapshot::final_name(None)));
        let received = self.receive_snapshot(body, &incoming).await;
        let reply = match received {
            Ok((vote, meta, dir)) => self
                .inner
                .raft
                .install_full_snapshot(
                    vote,
                    Snapshot {
                        meta,
                        snapshot: dir,
                    },
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => {
                let dir = incoming.clone();
                let _ = blocking(move || bitcask::disk::remove_dir_all(&dir)).await;
                tracing::warn!(error = %e, "refused a snapshot");
                Err(e.to_string())
            }
        };
        encode_reply(&reply)
    }

    async fn receive_snapshot(
        &self,
        mut body: impl AsyncRead + Unpin,
        incoming: &std::path::Path,
    ) -> io::Result<(crate::types::Vote, crate::types::SnapshotMeta, SnapshotDir)> {
        let len = body.read_u32_le().await?;
        if len > MAX_PREAMBLE {
            return Err(refuse("snapshot preamble too long"));
        }
        let mut preamble = vec![0u8; len as usize];
        body.read_exact(&mut preamble).await?;
        let offer: SnapshotOffer = codec::decode(&preamble)?;
        let dir = incoming.to_path_buf();
        blocking(move || bitcask::disk::create_dir_all(&dir)).await?;
        let mut buf = vec![0u8; 1 << 16];
        for (name, len) in &offer.files {
            if !safe_file_name(name) {
                return Err(refuse(
                    "a snapshot file name is not a plain store file name",
                ));
            }
            // Written through the engine's disk layer (the simulated power
            // cuts see it), on the blocking pool, a megabyte at a time.
            let path = incoming.join(name);
            let file = Arc::new(blocking(move || bitcask::disk::create(&path)).await?);
            let mut pending: Vec<u8> = Vec::with_capacity(RECEIVE_CHUNK);
            let (mut at, mut left, mut crc) = (0u64, *len, 0u32);
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let got = body.read(&mut buf[..want]).await?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snapshot cut short",
                    ));
                }
                crc = crc32c::crc32c_append(crc, &buf[..got]);
                pending.extend_from_slice(&buf[..got]);
                left -= got as u64;
                if pending.len() >= RECEIVE_CHUNK || left == 0 {
                    let chunk = std::mem::replace(&mut pending, Vec::with_capacity(RECEIVE_CHUNK));
                    let (file, offset) = (Arc::clone(&file), at);
                    at += chunk.len() as u64;
                    blocking(move || bitcask::disk::write_at(&file, &chunk, offset)).await?;
                }
            }
            if body.read_u32_le().await? != crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot file {name} fails its checksum"),
                ));
            }
            blocking(move || bitcask::disk::sync_all(&file)).await?;
        }
        let (incoming, snapshots, meta) = (
            incoming.to_path_buf(),
            self.inner.snapshots.clone(),
            offer.meta.clone(),
        );
        let done =
            tokio::task::spawn_blocking(move || snapshot::publish(&incoming, &snapshots, &meta))
                .await
                .map_err(io::Error::other)??;
        Ok((offer.vote, offer.meta, done))
    }
}

/// A store file name: `NNNNNNNNNN.data` / `.hint` and nothing that could
/// leave the directory.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with('.')
}

fn encode_reply<T: Serialize>(reply: &Reply<T>) -> Vec<u8> {
    codec::encode(reply).unwrap_or_else(|e| {
        codec::encode(&Reply::<()>::Err(format!("cannot encode the reply: {e}")))
            .unwrap_or_default()
    })
}

fn refuse(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

fn membership_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ClusterError {
    match e {
        // Not (or not yet) a leader that takes changes: nothing was done.
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ClusterError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => ClusterError::Busy(e.to_string()),
        RaftError::APIError(e) => ClusterError::Refused(e.to_string()),
        RaftError::Fatal(e) => ClusterError::Fatal(e.to_string()),
    }
}

fn check_founders(node_id: NodeId, founders: &BTreeMap<NodeId, String>) -> io::Result<()> {
    if !founders.contains_key(&node_id) {
        return Err(refuse("--initial-cluster must list this node's own id"));
    }
    if founders.contains_key(&0) {
        return Err(refuse("node ids start at 1"));
    }
    let addrs: BTreeSet<&String> = founders.values().collect();
    if addrs.len() != founders.len() {
        return Err(refuse("two founding members share a peer address"));
    }
    Ok(())
}

/// The cluster id the founders all derive from the same member list.
fn cluster_id(founders: &BTreeMap<NodeId, String>) -> String {
    let text: Vec<String> = founders
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect();
    format!("{:08x}", crc32c::crc32c(text.join(",").as_bytes()))
}

/// Reads (or, on a first start, writes) the node directory's identity and
/// checks it against the configuration.
fn settle_identity(config: &NodeConfig) -> io::Result<Identity> {
    let stored = match journal::read_state_file(&config.dir, NODE_FILE).map_err(io::Error::other)? {
        Some(bytes) => Some(codec::decode::<Identity>(&bytes)?),
        None => None,
    };
    match stored {
        Some(identity) => {
            if identity.node_id != config.node_id {
                return Err(refuse(&format!(
                    "{} belongs to node {}, not {}",
                    config.dir.display(),
                    identity.node_id,
                    config.node_id
                )));
            }
            if let Some(asked) = &config.initial_cluster
                && identity.founders.as_ref() != Some(asked)
            {
                return Err(refuse(&format!(
                    "{} is already a member of a cluster founded with another --initial-cluster \
                     (restart it without --initial-cluster; it will never found a second cluster)",
                    config.dir.display()
                )));
            }
            Ok(identity)
        }
        None => {
            let has_data = ["raft", "store"]
                .iter()
                .any(|d| config.dir.join(d).exists());
            if has_data {
                return Err(refuse(&format!(
                    "{} holds cluster data but no NODE file; refusing to guess its identity",
                    config.dir.display()
                )));
            }
            let single_node_store = std::fs::read_dir(&config.dir)?
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".data"));
            if single_node_store {
                return Err(refuse(&format!(
                    "{} holds a single-node store; a cluster node starts in an empty directory \
                     (its store lives in store/ beside the raft log)",
                    config.dir.display()
                )));
            }
            let identity = Identity {
                node_id: config.node_id,
                cluster_id: config.initial_cluster.as_ref().map(cluster_id),
                founders: config.initial_cluster.clone(),
                incarnation: crate::incarnations::fresh(),
            };
            journal::write_state_file(&config.dir, NODE_FILE, &codec::encode(&identity)?)
                .map_err(io::Error::other)?;
            Ok(identity)
        }
    }
}

/// Counts the changes of the known leader until raft stops.
async fn count_leader_changes(raft: Raft, changes: Arc<std::sync::atomic::AtomicU64>) {
    let mut metrics = raft.metrics();
    let mut leader = metrics.borrow_watched().current_leader;
    while metrics.changed().await.is_ok() {
        let now = metrics.borrow_watched().current_leader;
        if now != leader {
            if now.is_some() {
                changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            leader = now;
        }
    }
}

/// Gathers queued requests into entries and proposes them, up to
/// [`MAX_IN_FLIGHT`] at once: while entries are in flight, requests pile
/// up and the next entry carries them all (write batching).
async fn propose_loop(raft: Raft, mut queue: mpsc::Receiver<Pending>, wait: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].request.len();
        while batch.len() < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(more) => {
                    bytes += more.request.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (requests, replies): (Vec<Vec<u8>>, Vec<_>) =
                batch.into_iter().map(|p| (p.request, p.reply)).unzip();
            let proposal = Proposal {
                now_ms: crate::clock::now_ms(),
                requests,
            };
            let written = tokio::time::timeout(wait, raft.client_write(proposal)).await;
            drop(slot);
            match written {
                Ok(Ok(response)) => {
                    let mut outcome = response.data.replies.into_iter();
                    for reply in replies {
                        let _ = reply.send(outcome.next().ok_or_else(|| {
                            ClusterError::Fatal("an entry returned too few replies".into())
                        }));
                    }
                }
                Ok(Err(e)) => {
                    let error = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                            || ClusterError::NotLeader
                        }
                        RaftError::APIError(_) | RaftError::Fatal(_) => || ClusterError::Timeout,
                    };
                    for reply in replies {
                        let _ = reply.send(Err(error()));
                    }
                }
                Err(_) => {
                    for reply in replies {
                        let _ = reply.send(Err(ClusterError::Timeout));
                    }
                }
            }
        });
    }
}
