//! `/cluster`: a cluster node's view of the cluster, and membership
//! changes (docs/CLUSTER.md). On a single node these answer 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bitcask_cluster::node::{MemberChange, Node};
use bitcask_wire::NewMember;

use crate::error::ApiError;
use crate::state::AppState;

fn node(state: &AppState) -> Result<&Node, ApiError> {
    if !state.is_clustered() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server is a single node, not a cluster member (start it with --node-id)",
        ));
    }
    state.cluster().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is still starting",
        )
        .retry_after(1)
    })
}

/// `GET /cluster`.
#[utoipa::path(get, path = "/cluster", tag = "cluster",
    responses(
        (status = 200, description = "This node's view: role, leader, term, log and applied \
            indexes, members, and on the leader each member's replication lag",
            body = bitcask_wire::ClusterStatus),
        (status = 404, description = "Not a cluster node", body = crate::error::Detail),
    ))]
pub async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(node(&state)?.status()).into_response())
}

/// `POST /cluster/members`: adds a node as a learner, waits until it has
/// caught up, then makes it a voter.
#[utoipa::path(post, path = "/cluster/members", tag = "cluster", request_body = NewMember,
    responses(
        (status = 200, description = "Added as a voter; the new view", body = bitcask_wire::ClusterStatus),
        (status = 409, description = "Refused: the id is a member, or the node did not catch up", body = crate::error::Detail),
        (status = 503, description = "No leader", body = crate::error::Detail),
    ))]
pub async fn add(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::body::Body(body): crate::body::Body,
) -> Result<Response, ApiError> {
    super::require_json(&headers)?;
    let member: NewMember =
        super::parse_json_body(&body, r#"{"node_id": 4, "peer_addr": "127.0.0.1:9004"}"#)?;
    let node = node(&state)?;
    node.change_members(MemberChange::Add {
        node_id: member.node_id,
        peer_addr: member.peer_addr,
    })
    .await?;
    Ok(axum::Json(node.status()).into_response())
}

/// `DELETE /cluster/members/{id}`.
#[utoipa::path(delete, path = "/cluster/members/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "The node to remove")),
    responses(
        (status = 200, description = "Removed; the new view", body = bitcask_wire::ClusterStatus),
        (status = 409, description = "Refused: not a member, or too few voters would be left", body = crate::error::Detail),
        (status = 503, description = "No leader", body = crate::error::Detail),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let node = node(&state)?;
    node.change_members(MemberChange::Remove { node_id: id })
        .await?;
    Ok(axum::Json(node.status()).into_response())
}
