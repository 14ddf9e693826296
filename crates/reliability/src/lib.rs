//! Reliability tools for bitcask (see docs/RELIABILITY.md):
//! `bitcask-crash`, the kill -9 harness, and `bitcask-soak`, the long mixed
//! load. Both run the server as a child process of their own binary.

pub mod cluster;
pub mod history;
pub mod linearizability;
pub mod model;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod rng;
pub mod writer;
