//! Which *incarnation* of each peer this node has dealt with. A node picks
//! a random incarnation number when it first creates its data directory
//! and keeps it in its `NODE` file for life; every peer request and every
//! peer answer carries it. The first incarnation seen for a node id is
//! recorded (durably, in the `PEERS` state file); from then on, messages
//! under that id with any other incarnation are refused.
//!
//! This is what stops the trap openraft's FAQ warns about: a node whose
//! data was wiped comes back under its old id having forgotten its votes
//! and its log, and could vote twice in one term or count toward a quorum
//! for entries it no longer holds. It also stops an id from being reused
//! by a new node after the old one was removed. Either way the others
//! refuse it with a message that says what to do (remove the id, add the
//! node under a new one).
//!
//! The check is as good as the records: a node that never talked to an
//! incarnation (it joined after that node was removed) cannot recognise
//! it. The leader, which talks to every member, always can.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use bitcask::journal;

use crate::codec;
use crate::types::NodeId;

/// The state file in the node directory that holds the records.
pub const PEERS_FILE: &str = "PEERS";

/// The records (see the module docs).
#[derive(Debug)]
pub struct Incarnations {
    dir: PathBuf,
    known: Mutex<BTreeMap<NodeId, u64>>,
    /// Ids a refused incarnation was seen under since the start: nothing
    /// more is sent to them (in memory; found again after a restart).
    replaced: Mutex<std::collections::BTreeSet<NodeId>>,
}

impl Incarnations {
    /// Reads the records kept in `node_dir` (none yet: an empty set).
    pub fn open(node_dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = node_dir.into();
        let known = match journal::read_state_file(&dir, PEERS_FILE).map_err(io::Error::other)? {
            Some(bytes) => codec::decode(&bytes)?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            dir,
            known: Mutex::new(known),
            replaced: Mutex::new(std::collections::BTreeSet::new()),
        })
    }

    /// Admits a message from node `id` in incarnation `incarnation`: the
    /// first one seen for `id` is recorded (durably, before this returns);
    /// another one is refused, with the reason.
    pub fn check(&self, id: NodeId, incarnation: u64) -> Result<(), String> {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        match known.get(&id) {
            Some(&seen) if seen == incarnation => Ok(()),
            Some(_) => {
                self.replaced
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
                Err(replaced(id))
            }
            None => {
                // Written once per peer for the node's life (a few small
                // synced writes, under the lock; every later message only
                // looks the id up).
                known.insert(id, incarnation);
                let written = codec::encode(&*known).and_then(|bytes| {
                    journal::write_state_file(&self.dir, PEERS_FILE, &bytes)
                        .map_err(io::Error::other)
                });
                written.map_err(|e| {
                    known.remove(&id);
                    format!("cannot record node {id}'s incarnation: {e}")
                })
            }
        }
    }
}

impl Incarnations {
    /// Why nothing is sent to node `id` any more, if a refused incarnation
    /// of it was seen.
    pub fn refused(&self, id: NodeId) -> Option<String> {
        self.replaced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
            .then(|| replaced(id))
    }
}

fn replaced(id: NodeId) -> String {
    format!(
        "node {id} is not the node this cluster knew under that id: its data directory was \
         replaced (wiped, or a new node given a used id). Node ids are never reused: remove \
         node {id} from the cluster and add this node under a new id"
    )
}

/// A new incarnation number: random (the standard library's per-process
/// random hash keys, mixed with the time and the process id), never 0.
pub fn fresh() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_incarnation_of_an_id_is_kept_and_another_is_refused_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = Incarnations::open(dir.path()).expect("open");
        records.check(2, 77).expect("first contact");
        records.check(2, 77).expect("same node");
        records.check(3, 5).expect("another node");
        assert_eq!(records.refused(2), None);
        let refused = records.check(2, 78).expect_err("a wiped node 2");
        assert!(refused.contains("never reused"), "{refused}");
        assert_eq!(
            records.refused(2),
            Some(refused),
            "nothing more is sent to it"
        );
        assert_eq!(records.refused(3), None);
        drop(records);
        let reopened = Incarnations::open(dir.path()).expect("reopen");
        reopened.check(2, 77).expect("remembered");
        assert!(reopened.check(3, 6).is_err(), "remembered across a restart");
    }

    #[test]
    fn fresh_incarnations_differ() {
        let a: std::collections::BTreeSet<u64> = (0..100).map(|_| fresh()).collect();
        assert_eq!(a.len(), 100);
        assert!(!a.contains(&0));
    }
}
