//! The server side of the peer transport: the routes of the peer port
//! (`network.rs` lists them), each behind the same admission: the cluster
//! token (compared in constant time), then the sender's id and cluster id
//! ([`Node::admit_peer`]), before the body is read. Bodies are limited and
//! requests time out, except a snapshot's stream, which is bounded by the
//! sizes its authenticated sender declared and by the idle time-out of the
//! listener that serves this router.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::TryStreamExt;
use tower_http::timeout::TimeoutLayer;

use crate::network;
use crate::node::Node;

/// Limits of the peer port's requests.
#[derive(Debug, Clone, Copy)]
pub struct PeerLimits {
    /// Largest body of a request other than a snapshot, in bytes.
    pub max_body: usize,
    /// Longest time such a request may take.
    pub request_timeout: Duration,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_body: 64 << 20,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct PeerState {
    node: Node,
    token: Option<String>,
}

/// The peer port's router for `node`, with `token` as the cluster secret.
pub fn router(node: Node, token: Option<String>, limits: PeerLimits) -> Router {
    let state = PeerState { node, token };
    let bounded = Router::new()
        .route(network::APPEND_PATH, post(append))
        .route(network::VOTE_PATH, post(vote))
        .route(network::TRANSFER_PATH, post(transfer))
        .route(network::FORWARD_PATH, post(forward))
        .route(network::READ_INDEX_PATH, post(read_index))
        .route(network::MEMBERS_PATH, post(members))
        .route(network::HELLO_PATH, post(hello))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let streamed = Router::new()
        .route(network::SNAPSHOT_PATH, post(snapshot))
        .layer(DefaultBodyLimit::disable());
    bounded
        .merge(streamed)
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// Constant-time comparison of two secrets (through their SHA-256, so
/// that neither the content nor the length leaks through timing).
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Refuses a request without the token (401), or from an unknown sender,
/// this node itself or another cluster (403); logs each refusal.
async fn admit(State(state): State<PeerState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(expected) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if !given.is_some_and(|g| token_matches(g, expected.as_bytes())) {
            tracing::warn!(path = %request.uri().path(), "refused a peer request without the cluster token");
            return (
                StatusCode::UNAUTHORIZED,
                "the cluster token is missing or wrong",
            )
                .into_response();
        }
    }
    let text = |name: &str| header_text(headers, name);
    if let Err(why) = state.node.admit_peer(
        text(network::FROM_HEADER),
        text(network::CLUSTER_HEADER),
        text(network::INCARNATION_HEADER),
    ) {
        tracing::warn!(path = %request.uri().path(), %why, "refused a peer request");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        network::INCARNATION_HEADER,
        header::HeaderValue::from(state.node.incarnation()),
    );
    response
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn octets(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

async fn append(State(state): State<PeerState>, body: Bytes) -> Response {
    octets(state.node.handle_append(&body).await)
}

async fn vote(State(state): State<PeerState>, body: Bytes) -> Response {
    octets(state.node.handle_vote(&body).await)
}

async fn transfer(State(state): State<PeerState>, body: Bytes) -> Response {
    octets(state.node.handle_transfer(&body).await)
}

async fn forward(State(state): State<PeerState>, body: Bytes) -> Response {
    octets(state.node.handle_forward(&body).await)
}

async fn read_index(State(state): State<PeerState>) -> Response {
    octets(state.node.handle_read_index().await)
}

async fn hello(State(state): State<PeerState>) -> Response {
    octets(state.node.handle_hello())
}

async fn members(State(state): State<PeerState>, body: Bytes) -> Response {
    octets(state.node.handle_members(&body).await)
}

async fn snapshot(State(state): State<PeerState>, body: Body) -> Response {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    octets(state.node.handle_snapshot(reader).await)
}
