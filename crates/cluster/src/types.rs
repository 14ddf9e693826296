//! The Raft type configuration: what a log entry carries, what applying it
//! returns, and how a member is addressed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's id in the cluster: positive, never reused for another node.
pub type NodeId = u64;

/// What the cluster knows of a member: where its peer port listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Member {
    /// `host:port` of the member's peer listener.
    pub peer_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.peer_addr)
    }
}

/// The payload of a normal log entry: client requests that share one entry
/// (write batching), each an opaque byte string the application decodes,
/// with the leader's clock reading that every node applies them by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Proposal {
    /// The leader's wall clock when it proposed the entry (Unix ms): the
    /// time by which expiry is judged and time-to-live becomes an expiry.
    pub now_ms: u64,
    /// The requests, applied in this order.
    pub requests: Vec<Vec<u8>>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} request(s) at {}", self.requests.len(), self.now_ms)
    }
}

/// What applying a [`Proposal`] returned: one reply per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Outcome {
    /// The replies, opaque to the cluster.
    pub replies: Vec<Vec<u8>>,
}

openraft::declare_raft_types!(
    /// The cluster's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = NodeId,
        Node = Member,
);

/// A log id (leader and index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A membership with the log id that set it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its metadata and its directory.
pub type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, crate::snapshot::SnapshotDir>;
