//! `/cluster`: a node's view of its cluster, and membership changes.

use serde::{Deserialize, Serialize};

/// A cluster node's view of its cluster (`GET /cluster`, and the answer
/// to a membership change).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate` or `learner` (or `shutdown`).
    pub role: String,
    /// The leader, if the node knows one.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of its last log entry.
    pub last_log_index: Option<u64>,
    /// The index of the last entry applied to its store.
    pub last_applied: Option<u64>,
    /// The index of the last committed entry.
    #[serde(default)]
    pub committed: Option<u64>,
    /// Every member.
    pub members: Vec<ClusterMember>,
    /// On the leader: how far each member has replicated.
    #[serde(default)]
    pub replication: Option<Vec<MemberLag>>,
    /// The last snapshot's index.
    #[serde(default)]
    pub snapshot: Option<u64>,
}

impl ClusterStatus {
    /// A view with no members, no log and no leader (a node filling it in
    /// starts here).
    pub fn new(node_id: u64, role: impl Into<String>) -> Self {
        Self {
            node_id,
            role: role.into(),
            leader_id: None,
            term: 0,
            last_log_index: None,
            last_applied: None,
            committed: None,
            members: Vec::new(),
            replication: None,
            snapshot: None,
        }
    }
}

/// One member in a [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ClusterMember {
    /// Its id.
    pub node_id: u64,
    /// Its peer address.
    pub peer_addr: String,
    /// Whether it votes (a learner does not).
    pub voter: bool,
}

impl ClusterMember {
    /// Member `node_id` at `peer_addr`.
    pub fn new(node_id: u64, peer_addr: impl Into<String>, voter: bool) -> Self {
        Self {
            node_id,
            peer_addr: peer_addr.into(),
            voter,
        }
    }
}

/// How far a member has replicated, seen from the leader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct MemberLag {
    /// The member.
    pub node_id: u64,
    /// The last index known to be in its log.
    pub matched: Option<u64>,
    /// Entries it is behind the leader's last.
    pub lag: u64,
}

impl MemberLag {
    /// Member `node_id`, `lag` entries behind, its log known up to `matched`.
    pub fn new(node_id: u64, matched: Option<u64>, lag: u64) -> Self {
        Self {
            node_id,
            matched,
            lag,
        }
    }
}

/// A cluster node's part of [`crate::Health`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ClusterHealth {
    /// The node.
    pub node_id: u64,
    /// Its role.
    pub role: String,
    /// The leader, or `null` when there is none (then the answer is 503:
    /// writes and linearizable reads wait; stale reads still answer).
    pub leader_id: Option<u64>,
}

impl ClusterHealth {
    /// Node `node_id` in `role`, following `leader_id`.
    pub fn new(node_id: u64, role: impl Into<String>, leader_id: Option<u64>) -> Self {
        Self {
            node_id,
            role: role.into(),
            leader_id,
        }
    }
}

/// The body of `POST /cluster/members`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The new node's id (never used before in this cluster).
    pub node_id: u64,
    /// Its peer address, `host:port`.
    pub peer_addr: String,
}
