//! The client side of the peer transport: openraft's network over HTTP/1.1
//! to the other nodes' peer ports (`docs/CLUSTER.md`, "Peer transport").
//!
//! Every request carries the cluster token, this node's id and the cluster
//! id ([`PeerAuth`]); bodies and replies are `codec`-encoded. A snapshot is
//! streamed as a preamble (vote, metadata, file names and lengths) and then
//! each file's bytes followed by its CRC-32C ([`SNAPSHOT_PATH`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::incarnations::Incarnations;
use crate::snapshot::{self, SnapshotDir};
use crate::types::{Member, NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Path of AppendEntries on the peer port.
pub const APPEND_PATH: &str = "/raft/append";
/// Path of RequestVote.
pub const VOTE_PATH: &str = "/raft/vote";
/// Path of a streamed snapshot.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";
/// Path of a leadership transfer notice.
pub const TRANSFER_PATH: &str = "/raft/transfer-leader";
/// Path of client writes forwarded to the leader (a list, see
/// `Node::handle_forward`).
pub const FORWARD_PATH: &str = "/cluster/forward";
/// Path of a read index asked of the leader.
pub const READ_INDEX_PATH: &str = "/cluster/read-index";
/// Path of a membership change forwarded to the leader.
pub const MEMBERS_PATH: &str = "/cluster/members";

/// Header naming the sending node.
pub const FROM_HEADER: &str = "x-bitcask-from";
/// Header naming the cluster the sender belongs to.
pub const CLUSTER_HEADER: &str = "x-bitcask-cluster";
/// Header carrying the sender's (or answerer's) incarnation (see
/// [`crate::incarnations`]), on every peer request and answer.
pub const INCARNATION_HEADER: &str = "x-bitcask-incarnation";
/// Path of the greeting a leader sends a node before adding it.
pub const HELLO_PATH: &str = "/cluster/hello";

/// What a peer request proves about its sender.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    /// This node's id (sent as [`FROM_HEADER`]).
    pub node_id: NodeId,
    /// The shared secret, if the cluster has one.
    pub token: Option<String>,
    /// The cluster's id, once known.
    pub cluster_id: Arc<RwLock<Option<String>>>,
    /// This node's incarnation (sent as [`INCARNATION_HEADER`]).
    pub incarnation: u64,
    /// The peers' incarnations this node has dealt with.
    pub peers: Arc<Incarnations>,
}

impl PeerAuth {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut request = request
            .header(FROM_HEADER, self.node_id.to_string())
            .header(INCARNATION_HEADER, self.incarnation.to_string());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let cluster = self
            .cluster_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(cluster) = cluster {
            request = request.header(CLUSTER_HEADER, cluster);
        }
        request
    }
}

/// The preamble of a streamed snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotOffer {
    /// The leader's vote.
    pub vote: Vote,
    /// The snapshot's metadata.
    pub meta: SnapshotMeta,
    /// Each file's name and length, in the order they follow.
    pub files: Vec<(String, u64)>,
}

/// A peer's answer: the value, or why not (an error on the remote side).
pub type Reply<T> = Result<T, String>;

/// Makes a [`PeerClient`] per target.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    auth: PeerAuth,
}

impl Network {
    /// A network sending as `auth` says, from `bind_ip` if given (so that
    /// peers, and network fault tests, see which node connects), with HTTP
    /// connections that time out after `connect_timeout` to connect.
    pub fn new(
        auth: PeerAuth,
        bind_ip: Option<std::net::IpAddr>,
        connect_timeout: Duration,
    ) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .local_address(bind_ip)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, auth })
    }

    /// A client for the node at `peer_addr`.
    pub fn client(&self, target: NodeId, peer_addr: &str) -> PeerClient {
        PeerClient {
            http: self.http.clone(),
            auth: self.auth.clone(),
            target,
            base: format!("http://{peer_addr}"),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        // openraft never replicates to the node itself; a member listed
        // under another id at our own address is refused by the peer
        // server (its FROM header is ours).
        self.client(target, &node.peer_addr)
    }
}

/// The connection to one peer.
pub struct PeerClient {
    http: reqwest::Client,
    auth: PeerAuth,
    target: NodeId,
    base: String,
}

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached (the connection failed): the request
    /// was certainly not delivered.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// No answer in time: the request may or may not have been acted on.
    #[error("no answer in time: {0}")]
    Timeout(String),
    /// The exchange failed part-way, or the peer answered nonsense.
    #[error("peer exchange failed: {0}")]
    Network(String),
    /// The peer answered with an error of its own.
    #[error("the peer refused: {0}")]
    Remote(String),
}

impl PeerError {
    fn into_rpc(self) -> RPCError<TypeConfig> {
        match self {
            Self::Unreachable(why) | Self::Timeout(why) => {
                RPCError::Unreachable(Unreachable::from_string(why))
            }
            Self::Network(why) | Self::Remote(why) => {
                RPCError::Network(NetworkError::from_string(why))
            }
        }
    }
}

fn sent(e: &reqwest::Error) -> PeerError {
    if e.is_connect() {
        PeerError::Unreachable(e.to_string())
    } else if e.is_timeout() {
        PeerError::Timeout(e.to_string())
    } else {
        PeerError::Network(e.to_string())
    }
}

impl PeerClient {
    /// The peer this client talks to.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// Posts `body` (already encoded) to `path` and decodes the reply.
    pub async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, PeerError> {
        if let Some(why) = self.auth.peers.refused(self.target) {
            return Err(PeerError::Remote(why));
        }
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self
            .auth
            .apply(request)
            .send()
            .await
            .map_err(|e| sent(&e))?;
        self.check_answerer(&response)?;
        decode_reply(response).await
    }

    /// Refuses an answer from another incarnation of the target than the
    /// one this node knows (see [`crate::incarnations`]).
    fn check_answerer(&self, response: &reqwest::Response) -> Result<(), PeerError> {
        if !response.status().is_success() {
            return Ok(());
        }
        let incarnation = response
            .headers()
            .get(INCARNATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| PeerError::Remote("the answer names no incarnation".into()))?;
        self.auth
            .peers
            .check(self.target, incarnation)
            .map_err(|why| {
                tracing::error!(node = self.target, %why, "refused a peer's answer");
                PeerError::Remote(why)
            })
    }

    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call(path, body, option.soft_ttl())
            .await
            .map_err(PeerError::into_rpc)
    }

    /// Streams the snapshot in `dir` with its `meta` (see the module docs).
    async fn send_snapshot(
        &self,
        vote: Vote,
        meta: SnapshotMeta,
        dir: PathBuf,
    ) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
        let files = snapshot::files(&dir)
            .map_err(|e| PeerError::Network(format!("cannot list the snapshot: {e}")))?
            .into_iter()
            .filter(|(name, _)| name != snapshot::META_FILE)
            .collect::<Vec<_>>();
        let offer = SnapshotOffer {
            vote,
            meta,
            files: files.clone(),
        };
        let preamble = codec::encode(&offer).map_err(|e| PeerError::Network(e.to_string()))?;
        let len = u32::try_from(preamble.len())
            .map_err(|_| PeerError::Network("preamble too long".into()))?;
        let head = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(
            [len.to_le_bytes().as_slice(), &preamble].concat(),
        ))]);
        let bodies = futures_util::stream::iter(files)
            .then(move |(name, len)| {
                let path = dir.join(&name);
                async move { file_stream(path, len).await }
            })
            .try_flatten();
        let body = reqwest::Body::wrap_stream(head.chain(bodies));
        if let Some(why) = self.auth.peers.refused(self.target) {
            return Err(PeerError::Remote(why));
        }
        let request = self
            .http
            .post(format!("{}{SNAPSHOT_PATH}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self
            .auth
            .apply(request)
            .send()
            .await
            .map_err(|e| sent(&e))?;
        self.check_answerer(&response)?;
        decode_reply(response).await
    }
}

/// The bytes of the file at `path` (exactly `len` of them), then its CRC-32C.
async fn file_stream(
    path: PathBuf,
    len: u64,
) -> std::io::Result<impl futures_util::Stream<Item = std::io::Result<Bytes>>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(&path).await?;
    let reader = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 16);
    let crc = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (crc_in, seen_in) = (Arc::clone(&crc), Arc::clone(&seen));
    let data = reader.map_ok(move |chunk| {
        let ordering = std::sync::atomic::Ordering::Relaxed;
        crc_in.store(
            crc32c::crc32c_append(crc_in.load(ordering), &chunk),
            ordering,
        );
        seen_in.fetch_add(chunk.len() as u64, ordering);
        chunk
    });
    let trailer = futures_util::stream::once(async move {
        let ordering = std::sync::atomic::Ordering::Relaxed;
        if seen.load(ordering) != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than listed", path.display()),
            ));
        }
        Ok(Bytes::copy_from_slice(&crc.load(ordering).to_le_bytes()))
    });
    Ok(data.chain(trailer))
}

async fn decode_reply<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, PeerError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| sent(&e))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::UNAUTHORIZED {
            log_refusal(&text);
        }
        return Err(PeerError::Remote(format!("HTTP {status}: {text}")));
    }
    let reply: Reply<T> = codec::decode(&bytes).map_err(|e| PeerError::Network(e.to_string()))?;
    reply.map_err(PeerError::Remote)
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotDir;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(APPEND_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(VOTE_PATH, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let send = self.send_snapshot(vote, snapshot.meta, snapshot.snapshot.path);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = send => sent.map_err(|e| match e {
                PeerError::Unreachable(why) | PeerError::Timeout(why) => {
                    StreamingError::Unreachable(Unreachable::from_string(why))
                }
                PeerError::Network(why) | PeerError::Remote(why) => {
                    StreamingError::Network(NetworkError::from_string(why))
                }
            }),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(TRANSFER_PATH, &req, &option).await
    }
}

/// Logs that a peer refused this node (wrong token, another cluster, a
/// replaced node...), at most once every ten seconds: raft retries
/// several times a second, and the reason is the same each time.
fn log_refusal(why: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(%why, "a peer refused this node");
    }
}
