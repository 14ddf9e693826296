//! Power cuts (the engine's simulated disk) at every step of the snapshot
//! file protocols of `docs/FORMAT.md` ("Snapshot build", "Snapshot receive
//! and install"): after any cut, and the recovery a node runs at start,
//! the store is wholly the old one or wholly the snapshot (its contents and
//! its applied mark agree), and every snapshot the node lists is complete;
//! once a step has returned, what it promised survives any cut.
//!
//! Each case cuts at the `step`-th change the protocol makes, keeping a
//! seeded random half of the pages written and not synced; the cases run
//! until a step falls past the protocol's end.

use std::path::{Path, PathBuf};

use bitcask::sim::{self, Keep};
use bitcask::{Batch, Bitcask};
use bitcask_cluster::snapshot::{self, StorePaths};
use bitcask_cluster::types::{LogId, SnapshotMeta};

/// A store in `dir` holding `keys`, with mark `mark`, made durable.
fn store_with(dir: &Path, keys: &[&str], mark: &str) {
    let db = Bitcask::open(dir).expect("open");
    let mut batch = Batch::new();
    for key in keys {
        batch.put(key.as_bytes(), mark.as_bytes());
    }
    batch.mark(mark.as_bytes().to_vec());
    db.write_batch(&batch).expect("write");
    db.sync().expect("sync");
    db.close().expect("close");
}

/// The keys and the mark of the store in `dir`.
fn contents(dir: &Path) -> (Vec<String>, Option<String>) {
    let db = Bitcask::open(dir).expect("open the store");
    let mut keys: Vec<String> = db
        .keys()
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect();
    keys.sort();
    let mark = db.mark().map(|m| String::from_utf8_lossy(&m).into_owned());
    db.close().expect("close");
    (keys, mark)
}

/// A watched node directory under a new temporary root.
fn node_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let node = root.path().join("node");
    std::fs::create_dir(&node).expect("mkdir");
    sim::watch(&node).expect("watch");
    (root, node)
}

/// Whether a cut was written into `to`.
fn taken(to: &Path) -> bool {
    std::fs::read_dir(to).expect("read cut").next().is_some()
}

fn old_store() -> (Vec<String>, Option<String>) {
    (vec!["a".into(), "b".into()], Some("old".into()))
}

fn new_store() -> (Vec<String>, Option<String>) {
    (vec!["c".into()], Some("new".into()))
}

#[test]
fn an_install_cut_anywhere_leaves_the_old_store_or_the_snapshot() {
    let (mut saw_old, mut saw_new) = (false, false);
    for step in 1.. {
        let (_root, node) = node_dir();
        let paths = StorePaths::new(&node);
        store_with(&paths.live, &["a", "b"], "old");
        let snap = node.join("snap");
        store_with(&snap, &["c"], "new");
        let cut = tempfile::tempdir().expect("tempdir");
        let cut_at = sim::ops(&node) + step;
        sim::cut_at(&node, cut_at, cut.path(), Keep::new(step, 128)).expect("cut_at");
        paths.install(&snap).expect("install");
        if !taken(cut.path()) {
            // Past the end: the installed store survives a cut that keeps
            // nothing unsynced.
            sim::power_cut(&node, cut.path(), Keep::nothing()).expect("cut");
            sim::unwatch(&node);
            let recovered = StorePaths::new(cut.path());
            recovered.recover().expect("recover");
            assert_eq!(contents(&recovered.live), new_store(), "after install");
            assert!(step > 5, "the install made only {step} changes");
            break;
        }
        sim::unwatch(&node);
        let recovered = StorePaths::new(cut.path());
        recovered.recover().expect("recover");
        let found = contents(&recovered.live);
        assert!(
            found == old_store() || found == new_store(),
            "cut at step {step}: the store holds {found:?}"
        );
        saw_old |= found == old_store();
        saw_new |= found == new_store();
        assert!(!recovered.new.exists() && !recovered.old.exists());
    }
    assert!(
        saw_old && saw_new,
        "the cuts fell on both sides of the swap"
    );
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new(
            openraft::vote::leader_id_adv::LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        )),
        ..SnapshotMeta::default()
    }
}

/// A complete snapshot of log index `index` (a store with key `k<index>`
/// and mark `<index>`) in `snapshots`.
fn snapshot_of(snapshots: &Path, index: u64) {
    let building = snapshots.join("building");
    store_with(&building, &[&format!("k{index}")], &index.to_string());
    snapshot::publish(&building, snapshots, &meta(index)).expect("publish");
}

#[test]
fn a_snapshot_published_and_pruned_under_cuts_is_listed_whole_or_not_at_all() {
    for step in 1.. {
        let (_root, node) = node_dir();
        let snapshots = node.join("snapshots");
        bitcask::disk::create_dir_durably(&snapshots).expect("mkdir");
        snapshot_of(&snapshots, 1);
        snapshot_of(&snapshots, 2);
        // Snapshot 3 is built, published, and the oldest pruned.
        let building = snapshots.join("building");
        store_with(&building, &["k3"], "3");
        let cut = tempfile::tempdir().expect("tempdir");
        let cut_at = sim::ops(&node) + step;
        sim::cut_at(&node, cut_at, cut.path(), Keep::new(step, 128)).expect("cut_at");
        let published = snapshot::publish(&building, &snapshots, &meta(3)).expect("publish");
        let published_at = sim::ops(&node);
        snapshot::prune(&snapshots, false).expect("prune");
        let past_the_end = !taken(cut.path());
        if past_the_end {
            sim::power_cut(&node, cut.path(), Keep::nothing()).expect("cut");
        }
        sim::unwatch(&node);
        assert!(published.path.exists());

        // What a node does at start, then what it may send or install.
        let kept = cut.path().join("snapshots");
        snapshot::prune(&kept, true).expect("prune at start");
        let listed = snapshot::list(&kept).expect("list");
        let indexes: Vec<u64> = listed
            .iter()
            .map(|(m, _)| m.last_log_id.map_or(0, |id| id.index()))
            .collect();
        for (m, dir) in &listed {
            let index = m.last_log_id.map_or(0, |id| id.index());
            let found = contents(&dir.path);
            assert_eq!(
                found,
                (vec![format!("k{index}")], Some(index.to_string())),
                "cut at step {step}: snapshot {index} is not whole"
            );
        }
        // Snapshot 2 is never lost before 3 is durable; once publish has
        // returned, 3 is there.
        assert!(
            indexes.contains(&2) || indexes.contains(&3),
            "cut at step {step}: {indexes:?}"
        );
        if cut_at > published_at {
            assert!(indexes.contains(&3), "cut at step {step}: {indexes:?}");
        }
        let names: Vec<String> = std::fs::read_dir(&kept)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), listed.len(), "leftovers: {names:?}");
        if past_the_end {
            assert_eq!(indexes, vec![2, 3]);
            break;
        }
    }
}
