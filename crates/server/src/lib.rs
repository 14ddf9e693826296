//! `bitcask-server`: the HTTP/JSON server around one open bitcask store.
//!
//! It keeps the seed project's wire contract byte for byte (see
//! `../shared/DESIGN.md` in the workspace and the contract tests) and adds
//! raw binary values, listing, versions, expiry, batches, stats and merge;
//! with `--resp-port`, a Redis-protocol listener ([`resp`]) on the same store.
//! The binary is a thin `main` over [`config::Config::from_args`] and
//! [`server::serve`]; tests run the same [`server::serve`] on a free port.

pub mod app;
pub mod body;
pub mod config;
pub mod descriptors;
pub mod error;
pub mod idle;
pub mod lanes;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod replicated;
pub mod resp;
pub mod routes;
pub mod server;
pub mod state;
pub mod watch;
