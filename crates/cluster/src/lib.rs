//! Replication of a bitcask store over Raft (openraft): three or more
//! nodes agree on one order of every write, keep answering while a
//! minority is down, and never lose an acknowledged write. The design, the
//! consistency levels and the failure cases are in `docs/CLUSTER.md`.
//!
//! The layers, bottom up:
//!
//! - [`codec`]: how entries, votes and messages are encoded.
//! - [`log_store`]: the raft log, over the engine's journal.
//! - [`clock`], [`store`], [`overlay`], [`state_machine`]: the store as the
//!   state machine; an entry applies as one atomic batch with its applied
//!   position (a mark), by the leader's clock.
//! - [`types`]: openraft's type configuration.
//! - [`rounds`]: concurrent linearizable reads share read-index rounds, and
//!   writes a follower forwards share peer requests.

pub mod clock;
pub mod codec;
pub mod incarnations;
pub mod log_store;
pub mod network;
pub mod node;
pub mod overlay;
pub mod peer;
pub mod rounds;
pub mod snapshot;
pub mod state_machine;
pub mod store;
pub mod types;

pub use overlay::Overlay;
pub use store::Store;
