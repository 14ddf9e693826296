//! Snapshots as directories: a consistent copy of the store (the engine's
//! backup) plus a `SNAPSHOT` state file with its metadata, and the
//! crash-safe swap that installs one as the node's store. The protocols
//! are in `docs/FORMAT.md` ("Cluster node directory"). Every change to
//! the files goes through the engine's disk layer (`bitcask::disk`), so the
//! simulated power cuts of the tests see it.
//!
//! Directory names: `snapshots/<index, 20 digits>-<unix ns>` when complete;
//! `snapshots/building*` while the backup runs; `snapshots/incoming-*`
//! while one arrives from the leader; `snapshots/removing-*` while an old
//! one is deleted. Only complete ones are listed.

use std::io;
use std::path::{Path, PathBuf};

use bitcask::{disk, journal};

use crate::codec;
use crate::types::SnapshotMeta;

/// The state file in a snapshot directory that holds its metadata.
pub const META_FILE: &str = "SNAPSHOT";
/// How many complete snapshots a node keeps (the newest is what it sends;
/// the one before may still be streaming to a follower).
const KEEP: usize = 2;

/// A complete snapshot on disk: the state machine's `SnapshotData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDir {
    /// The directory: store files and `SNAPSHOT`.
    pub path: PathBuf,
}

/// The name of a complete snapshot of the log up to `index`.
pub fn final_name(index: Option<u64>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:020}-{nanos}", index.map_or(0, |i| i + 1))
}

/// The metadata of the snapshot in `dir`, if it is complete.
pub fn read_meta(dir: &Path) -> io::Result<Option<SnapshotMeta>> {
    match journal::read_state_file(dir, META_FILE).map_err(io::Error::other)? {
        Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Writes `meta` into `dir` (durably).
pub fn write_meta(dir: &Path, meta: &SnapshotMeta) -> io::Result<()> {
    journal::write_state_file(dir, META_FILE, &codec::encode(meta)?).map_err(io::Error::other)
}

/// Complete snapshots in `snapshots`, oldest first.
pub fn list(snapshots: &Path) -> io::Result<Vec<(SnapshotMeta, SnapshotDir)>> {
    let mut found: Vec<(String, SnapshotMeta, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(snapshots) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.as_bytes().first().is_some_and(u8::is_ascii_digit) || !entry.path().is_dir() {
            continue;
        }
        if let Some(meta) = read_meta(&entry.path())? {
            found.push((name.to_string(), meta, entry.path()));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found
        .into_iter()
        .map(|(_, meta, path)| (meta, SnapshotDir { path }))
        .collect())
}

/// Makes a complete snapshot of the directory `building` (its store files
/// written and synced): writes `meta` into it, renames it to its final
/// name in `snapshots` and syncs `snapshots`. A crash before the rename is
/// durable leaves an unfinished directory (removed at start); after this
/// returns the snapshot survives any crash, so the log may be purged up to
/// it.
pub fn publish(building: &Path, snapshots: &Path, meta: &SnapshotMeta) -> io::Result<SnapshotDir> {
    write_meta(building, meta)?;
    let done = snapshots.join(final_name(meta.last_log_id.map(|id| id.index())));
    disk::rename(building, &done)?;
    disk::sync_dir(snapshots)?;
    Ok(SnapshotDir { path: done })
}

/// Removes all but the newest complete snapshots, and anything unfinished
/// (`building*`, `incoming-*`, `removing-*`) when `unfinished` is set. A
/// complete snapshot is first renamed out of the listing (durably), then
/// deleted: a crash never leaves a half-deleted directory under a
/// complete snapshot's name.
pub fn prune(snapshots: &Path, unfinished: bool) -> io::Result<()> {
    let complete = list(snapshots)?;
    let keep = complete.len().saturating_sub(KEEP);
    for (_, old) in &complete[..keep] {
        let Some(name) = old.path.file_name() else {
            continue;
        };
        let mut removing = std::ffi::OsString::from("removing-");
        removing.push(name);
        let removing = snapshots.join(removing);
        disk::rename(&old.path, &removing)?;
        disk::sync_dir(snapshots)?;
        disk::remove_dir_all(&removing)?;
    }
    if unfinished && let Ok(entries) = std::fs::read_dir(snapshots) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ["building", "incoming-", "removing-"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                let path = entry.path();
                if path.is_dir() {
                    disk::remove_dir_all(&path)?;
                } else {
                    disk::remove(&path)?;
                }
            }
        }
    }
    Ok(())
}

/// The regular files of a snapshot, by name, with their lengths.
pub fn files(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            out.push((name.to_string(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// The node's store directory, and the two names the swap uses beside it.
#[derive(Debug, Clone)]
pub struct StorePaths {
    /// `store`: the live store.
    pub live: PathBuf,
    /// `store.new`: a snapshot being put in place.
    pub new: PathBuf,
    /// `store.old`: the store a snapshot replaced, being removed.
    pub old: PathBuf,
    /// The node directory that holds all three.
    pub parent: PathBuf,
}

impl StorePaths {
    /// The paths under node directory `node_dir`.
    pub fn new(node_dir: &Path) -> Self {
        Self {
            live: node_dir.join("store"),
            new: node_dir.join("store.new"),
            old: node_dir.join("store.old"),
            parent: node_dir.to_path_buf(),
        }
    }

    /// Finishes or undoes a swap a crash cut short (see the module docs):
    /// `store.new` without `store` is renamed into place; `store.new`
    /// beside `store` was not complete and goes; `store.old` goes.
    pub fn recover(&self) -> io::Result<()> {
        if self.new.exists() {
            if self.live.exists() {
                disk::remove_dir_all(&self.new)?;
            } else {
                disk::rename(&self.new, &self.live)?;
            }
            disk::sync_dir(&self.parent)?;
        }
        if self.old.exists() {
            disk::remove_dir_all(&self.old)?;
            disk::sync_dir(&self.parent)?;
        }
        Ok(())
    }

    /// Replaces the live store with a copy of the snapshot in `snapshot`
    /// (the store must be closed): copy into `store.new` and fsync it;
    /// rename `store` to `store.old`, `store.new` to `store`; fsync the
    /// node directory; remove `store.old`.
    pub fn install(&self, snapshot: &Path) -> io::Result<()> {
        if self.new.exists() {
            disk::remove_dir_all(&self.new)?;
        }
        disk::create_dir(&self.new)?;
        for (name, _) in files(snapshot)? {
            if name == META_FILE || name.ends_with(".tmp") {
                continue;
            }
            disk::copy_file(&snapshot.join(&name), &self.new.join(&name))?;
        }
        disk::sync_dir(&self.new)?;
        disk::sync_dir(&self.parent)?;
        if self.live.exists() {
            disk::rename(&self.live, &self.old)?;
        }
        disk::rename(&self.new, &self.live)?;
        disk::sync_dir(&self.parent)?;
        if self.old.exists() {
            disk::remove_dir_all(&self.old)?;
            disk::sync_dir(&self.parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(dir: &Path, key: &str) {
        let db = bitcask::Bitcask::open(dir).expect("open");
        db.put(key.as_bytes(), b"v").expect("put");
        db.close().expect("close");
    }

    #[test]
    fn an_install_replaces_the_store_and_a_cut_swap_is_finished_or_undone() {
        let node = tempfile::tempdir().expect("tempdir");
        let paths = StorePaths::new(node.path());
        store_with(&paths.live, "before");
        let snap = node.path().join("snap");
        store_with(&snap, "after");
        paths.install(&snap).expect("install");
        let db = bitcask::Bitcask::open(&paths.live).expect("open");
        assert!(db.contains(b"after") && !db.contains(b"before"));
        db.close().expect("close");
        assert!(!paths.new.exists() && !paths.old.exists());

        // Cut after `store` became `store.old`, before `store.new` moved.
        std::fs::rename(&paths.live, &paths.old).expect("rename");
        store_with(&paths.new, "newer");
        paths.recover().expect("recover");
        let db = bitcask::Bitcask::open(&paths.live).expect("open");
        assert!(db.contains(b"newer"));
        db.close().expect("close");
        assert!(!paths.old.exists());
        // Cut while `store.new` was being copied: it goes.
        store_with(&paths.new, "half");
        paths.recover().expect("recover");
        assert!(!paths.new.exists());
        let db = bitcask::Bitcask::open(&paths.live).expect("open");
        assert!(db.contains(b"newer") && !db.contains(b"half"));
        db.close().expect("close");
    }
}
