//! The simulated disk, for power-loss tests (built only for tests, or with
//! the `simulated-disk` feature): it follows what the engine does to the
//! files of a watched directory (`disk.rs` tells it) and can write out, at
//! any moment, the directory a power cut would leave, in the manner of
//! SQLite's crash VFS, redb's crash-testing backend and Jepsen's LazyFS.
//!
//! The model (POSIX's, which is stricter than ext4 in practice):
//!
//! - A file's bytes are as its last `fsync`/`fdatasync` left them. Pages (4
//!   KiB) written since, and a size changed since, are each kept or lost
//!   independently, as a disk that reorders its writes does.
//! - A directory's names are as its last `fsync` left them: a file created,
//!   renamed or removed since keeps its old name, or none, until then.
//!
//! The real files are written as usual (the running store reads them,
//! through its maps too); the simulation keeps, for each file, a copy of
//! its durable bytes and the set of pages written since, and holds an open
//! handle so that a file removed by name can still be read for the cut.
//! Files are known by device and inode, so a rename does not lose them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The unit a disk keeps or loses.
pub const PAGE: u64 = 4096;

/// A file, by device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ino {
    dev: u64,
    ino: u64,
}

impl Ino {
    fn of(file: &File) -> Option<Self> {
        let meta = file.metadata().ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// What the simulation knows of one file.
#[derive(Debug)]
struct FileState {
    /// A handle of its own, to read the file's current bytes at a cut even
    /// after its name is gone.
    handle: File,
    /// Its bytes as the last sync left them.
    durable: Vec<u8>,
    /// Pages written, or inside a size change, since.
    dirty: BTreeSet<u64>,
    /// Pages a sync that has not returned yet took (with the bytes it
    /// took): a sync that starts meanwhile covers them too, as an fsync
    /// covers every page not yet on disk, whoever asked first.
    in_flight: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Counts captures of pages, so an older sync returning late does not
    /// put older bytes over newer durable ones.
    generation: u64,
    /// The capture each durable page came from.
    durable_generation: HashMap<u64, u64>,
    /// The capture the durable length came from.
    durable_len_generation: u64,
}

/// What the simulation knows of one watched directory.
#[derive(Debug, Default)]
struct DirState {
    /// Names as the last directory sync left them.
    durable: HashMap<OsString, Ino>,
    /// Names now.
    current: HashMap<OsString, Ino>,
    /// Changes recorded in this directory so far.
    ops: u64,
    /// A power cut to take when `ops` reaches the first field: into the
    /// directory of the second, pages kept as the third decides.
    cut_at: Option<(u64, PathBuf, Keep)>,
    /// See [`data_syncs`].
    data_syncs: Vec<(u64, u64)>,
}

/// Decides, for each page (and size change) not synced, whether the disk
/// kept it: a seeded xorshift, so a failing case can be replayed.
#[derive(Debug, Clone)]
pub struct Keep {
    state: u64,
    /// Out of 256: 0 loses everything not synced, 256 keeps everything.
    odds: u32,
}

impl Keep {
    /// Keeps each unsynced page with probability `odds / 256`, drawn from
    /// `seed`.
    pub fn new(seed: u64, odds: u32) -> Self {
        Self {
            state: seed | 1,
            odds: odds.min(256),
        }
    }

    /// Loses everything not synced.
    pub fn nothing() -> Self {
        Self::new(1, 0)
    }

    /// Keeps everything written (a power cut that lost nothing).
    pub fn everything() -> Self {
        Self::new(1, 256)
    }

    fn next(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 56) < u64::from(self.odds)
    }
}

#[derive(Debug, Default)]
struct Sim {
    dirs: HashMap<PathBuf, DirState>,
    files: HashMap<Ino, FileState>,
    /// Directories created in watched ones (and so watched too), by inode:
    /// where each is now.
    subdirs: HashMap<Ino, PathBuf>,
}

/// Whether any directory is watched (the hooks do nothing otherwise).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static SIM: Mutex<Option<Sim>> = Mutex::new(None);

fn sim() -> MutexGuard<'static, Option<Sim>> {
    SIM.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The watched directory a path lies in, and the path's name there.
fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    let dir = path.parent()?.canonicalize().ok()?;
    Some((dir, path.file_name()?.to_os_string()))
}

/// Starts following `dir`: its files as they are now count as durable.
/// Changes in it are recorded until [`unwatch`].
pub fn watch(dir: &Path) -> std::io::Result<()> {
    let dir = dir.canonicalize()?;
    let mut state = DirState::default();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let handle = File::open(entry.path())?;
        let durable = std::fs::read(entry.path())?;
        let Some(ino) = Ino::of(&handle) else {
            continue;
        };
        state.durable.insert(entry.file_name(), ino);
        state.current.insert(entry.file_name(), ino);
        files.push((
            ino,
            FileState {
                handle,
                durable,
                dirty: BTreeSet::new(),
                in_flight: BTreeMap::new(),
                generation: 0,
                durable_generation: HashMap::new(),
                durable_len_generation: 0,
            },
        ));
    }
    let mut guard = sim();
    let sim = guard.get_or_insert_with(Sim::default);
    sim.dirs.insert(dir, state);
    sim.files.extend(files);
    ACTIVE.store(true, Ordering::Release);
    Ok(())
}

/// Stops following `dir` (and forgets its files).
pub fn unwatch(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let mut guard = sim();
    if let Some(sim) = guard.as_mut()
        && let Some(state) = sim.dirs.remove(&dir)
    {
        for ino in state.current.values().chain(state.durable.values()) {
            sim.files.remove(ino);
            if let Some(subdir) = sim.subdirs.remove(ino) {
                sim.dirs.remove(&subdir);
            }
        }
        if sim.dirs.is_empty() {
            ACTIVE.store(false, Ordering::Release);
        }
    }
}

/// Changes recorded in `dir` so far (to choose where to cut).
pub fn ops(dir: &Path) -> u64 {
    let Ok(dir) = dir.canonicalize() else {
        return 0;
    };
    sim()
        .as_ref()
        .and_then(|s| s.dirs.get(&dir))
        .map_or(0, |d| d.ops)
}

/// Takes a power cut of `dir` into `to` (an existing, empty directory) as
/// soon as the `at`-th change to `dir` has been recorded (at once if it
/// has), so a cut can fall inside an engine call: a rotation, a merge, a
/// close.
pub fn cut_at(dir: &Path, at: u64, to: &Path, keep: Keep) -> std::io::Result<()> {
    let dir = dir.canonicalize()?;
    let mut guard = sim();
    let Some(sim) = guard.as_mut() else {
        return Err(std::io::Error::other("no directory is watched"));
    };
    let ops = sim.dirs.get(&dir).map_or(0, |d| d.ops);
    if ops >= at {
        return sim.cut(&dir, to, keep);
    }
    if let Some(state) = sim.dirs.get_mut(&dir) {
        state.cut_at = Some((at, to.to_path_buf(), keep));
    }
    Ok(())
}

/// Writes into `to` (an existing, empty directory) what a power cut now
/// would leave of `dir`, unsynced pages kept as `keep` decides.
pub fn power_cut(dir: &Path, to: &Path, keep: Keep) -> std::io::Result<()> {
    let dir = dir.canonicalize()?;
    let mut guard = sim();
    let Some(sim) = guard.as_mut() else {
        return Err(std::io::Error::other("no directory is watched"));
    };
    sim.cut(&dir, to, keep)
}

impl Sim {
    fn cut(&self, dir: &Path, to: &Path, mut keep: Keep) -> std::io::Result<()> {
        self.cut_into(dir, to, &mut keep)
    }

    fn cut_into(&self, dir: &Path, to: &Path, keep: &mut Keep) -> std::io::Result<()> {
        let state = self
            .dirs
            .get(dir)
            .ok_or_else(|| std::io::Error::other("directory not watched"))?;
        for (name, ino) in &state.durable {
            if let Some(subdir) = self.subdirs.get(ino) {
                std::fs::create_dir(to.join(name))?;
                self.cut_into(subdir, &to.join(name), keep)?;
                continue;
            }
            let Some(file) = self.files.get(ino) else {
                continue;
            };
            let current_len = file.handle.metadata()?.len();
            let durable_len = file.durable.len() as u64;
            // The size is one piece of metadata: kept or not.
            let len = if current_len != durable_len && keep.next() {
                current_len
            } else {
                durable_len
            };
            let mut bytes = file.durable.clone();
            bytes.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
            for &page in &file.dirty {
                let from = page * PAGE;
                if from >= len || !keep.next() {
                    continue;
                }
                let to_byte = (from + PAGE).min(len);
                let mut chunk = vec![0u8; usize::try_from(to_byte - from).unwrap_or(0)];
                // Bytes past the file's current end read as zeros.
                let readable = current_len.saturating_sub(from).min(to_byte - from);
                if readable > 0 {
                    file.handle.read_exact_at(
                        &mut chunk[..usize::try_from(readable).unwrap_or(0)],
                        from,
                    )?;
                }
                let at = usize::try_from(from).unwrap_or(usize::MAX);
                bytes[at..at + chunk.len()].copy_from_slice(&chunk);
            }
            std::fs::write(to.join(name), &bytes)?;
        }
        Ok(())
    }

    /// Counts a change in `dir` (`what`, for `BITCASK_SIM_TRACE`) and in the
    /// watched directories above it, and takes the cuts set for this moment.
    fn count(&mut self, dir: &Path, what: std::fmt::Arguments<'_>) {
        let watched: Vec<PathBuf> = dir
            .ancestors()
            .filter(|d| self.dirs.contains_key(*d))
            .map(Path::to_path_buf)
            .collect();
        for dir in watched {
            let Some(state) = self.dirs.get_mut(&dir) else {
                continue;
            };
            state.ops += 1;
            if std::env::var_os("BITCASK_SIM_TRACE").is_some() {
                eprintln!("sim {} {}: {what}", dir.display(), state.ops);
            }
            let due = matches!(&state.cut_at, Some((at, _, _)) if state.ops >= *at);
            // A cut that cannot be written is the test's failure, not the
            // engine's: stop there.
            if due
                && let Some((_, to, keep)) = state.cut_at.take()
                && let Err(error) = self.cut(&dir, &to, keep)
            {
                panic!("simulated power cut into {}: {error}", to.display());
            }
        }
    }

    /// The watched directory `ino` is named in, if any.
    fn dir_of(&self, ino: Ino) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|(_, d)| d.current.values().any(|&i| i == ino))
            .map(|(p, _)| p.clone())
    }
}

/// Runs `f` on the simulation if anything is watched.
fn with(f: impl FnOnce(&mut Sim)) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if let Some(sim) = sim().as_mut() {
        f(sim);
    }
}

/// Directory `path` was created: if its parent is watched, it is too.
pub(crate) fn dir_created(path: &Path) {
    with(|sim| {
        let Some((parent, name)) = split(path) else {
            return;
        };
        if !sim.dirs.contains_key(&parent) {
            return;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let ino = Ino {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let full = parent.join(&name);
        sim.dirs.insert(full.clone(), DirState::default());
        sim.subdirs.insert(ino, full);
        let what = format!("create directory {}", name.to_string_lossy());
        if let Some(state) = sim.dirs.get_mut(&parent) {
            state.current.insert(name, ino);
        }
        sim.count(&parent, format_args!("{what}"));
    });
}

/// `path` was created (or emptied) and opened as `file`.
pub(crate) fn created(path: &Path, file: &File) {
    with(|sim| {
        let Some((dir, name)) = split(path) else {
            return;
        };
        if !sim.dirs.contains_key(&dir) {
            return;
        }
        let (Some(ino), Ok(handle)) = (Ino::of(file), file.try_clone()) else {
            return;
        };
        match sim.files.get_mut(&ino) {
            // Emptied: every page it had is changed.
            Some(known) => {
                let pages = (known.durable.len() as u64).div_ceil(PAGE);
                known.dirty.extend(0..pages);
            }
            None => {
                sim.files.insert(
                    ino,
                    FileState {
                        handle,
                        durable: Vec::new(),
                        dirty: BTreeSet::new(),
                        in_flight: BTreeMap::new(),
                        generation: 0,
                        durable_generation: HashMap::new(),
                        durable_len_generation: 0,
                    },
                );
            }
        }
        let what = format!("create {}", name.to_string_lossy());
        if let Some(state) = sim.dirs.get_mut(&dir) {
            state.current.insert(name, ino);
        }
        sim.count(&dir, format_args!("{what}"));
    });
}

/// `len` bytes were written to `file` at `offset`.
pub(crate) fn written(file: &File, offset: u64, len: u64) {
    with(|sim| {
        let Some(ino) = Ino::of(file) else { return };
        let Some(state) = sim.files.get_mut(&ino) else {
            return;
        };
        if len > 0 {
            state
                .dirty
                .extend(offset / PAGE..=(offset + len - 1) / PAGE);
        }
        if let Some(dir) = sim.dir_of(ino) {
            sim.count(
                &dir,
                format_args!("write {} bytes at {offset} of inode {}", len, ino.ino),
            );
        }
    });
}

/// `file`'s size went from `before` to `after`.
pub(crate) fn resized(file: &File, before: u64, after: u64) {
    with(|sim| {
        let Some(ino) = Ino::of(file) else { return };
        let Some(state) = sim.files.get_mut(&ino) else {
            return;
        };
        let (low, high) = (before.min(after), before.max(after));
        if high > low {
            state.dirty.extend(low / PAGE..=(high - 1) / PAGE);
        }
        if let Some(dir) = sim.dir_of(ino) {
            sim.count(
                &dir,
                format_args!("resize inode {} from {before} to {after}", ino.ino),
            );
        }
    });
}

/// What a sync found to write when it started: the file's length and the
/// bytes of the pages written before then (a write that lands while the
/// fsync runs is not covered by it, as on a real disk).
#[derive(Debug, Default)]
pub(crate) struct SyncStart {
    len: u64,
    /// When the length was taken (a late sync must not undo a newer one).
    len_generation: u64,
    pages: Vec<(u64, u64, Vec<u8>)>,
    /// The change number of the start, if the file is followed.
    op: Option<u64>,
}

/// A sync of `file` is starting.
pub(crate) fn sync_started(file: &File) -> SyncStart {
    let mut start = SyncStart::default();
    with(|sim| {
        let Some(ino) = Ino::of(file) else { return };
        let Some(state) = sim.files.get_mut(&ino) else {
            return;
        };
        let Ok(len) = state.handle.metadata().map(|m| m.len()) else {
            return;
        };
        start.len = len;
        state.generation += 1;
        start.len_generation = state.generation;
        for page in std::mem::take(&mut state.dirty) {
            let from = page * PAGE;
            if from >= len {
                state.in_flight.remove(&page);
                continue;
            }
            let mut bytes = vec![0u8; usize::try_from((from + PAGE).min(len) - from).unwrap_or(0)];
            if state.handle.read_exact_at(&mut bytes, from).is_ok() {
                state.generation += 1;
                state.in_flight.insert(page, (state.generation, bytes));
            }
        }
        start.pages = state
            .in_flight
            .iter()
            .filter(|(page, _)| **page * PAGE < len)
            .map(|(page, (generation, bytes))| (*page, *generation, bytes.clone()))
            .collect();
        if let Some(dir) = sim.dir_of(ino) {
            sim.count(
                &dir,
                format_args!("sync of inode {} starts ({len} bytes)", ino.ino),
            );
            start.op = sim.dirs.get(&dir).map(|d| d.ops);
        }
    });
    start
}

/// The sync that `start` began has returned: what it found is durable.
pub(crate) fn sync_ended(file: &File, start: SyncStart) {
    with(|sim| {
        let Some(ino) = Ino::of(file) else { return };
        let Some(state) = sim.files.get_mut(&ino) else {
            return;
        };
        if start.len_generation > state.durable_len_generation {
            state
                .durable
                .resize(usize::try_from(start.len).unwrap_or(usize::MAX), 0);
            state.durable_len_generation = start.len_generation;
        }
        for (page, generation, bytes) in start.pages {
            let known = state.durable_generation.get(&page).copied().unwrap_or(0);
            let from = usize::try_from(page * PAGE).unwrap_or(usize::MAX);
            let to = (from + bytes.len()).min(state.durable.len());
            if generation > known && from < to {
                state.durable[from..to].copy_from_slice(&bytes[..to - from]);
                state.durable_generation.insert(page, generation);
            }
            // Done with, unless a later sync took newer bytes of it.
            if state
                .in_flight
                .get(&page)
                .is_some_and(|(g, _)| *g == generation)
            {
                state.in_flight.remove(&page);
            }
        }
        let Some(dir) = sim.dir_of(ino) else { return };
        sim.count(&dir, format_args!("sync of inode {} ends", ino.ino));
        // The syncs of data files under their final names: what a test's
        // model may count on as making earlier writes durable.
        if let Some(state) = sim.dirs.get_mut(&dir)
            && let Some(started) = start.op
            && state
                .current
                .iter()
                .any(|(name, &i)| i == ino && name.to_string_lossy().ends_with(".data"))
        {
            state.data_syncs.push((started, state.ops));
        }
    });
}

/// The syncs of data files recorded in `dir` so far (files under their
/// final names: the active file, a file sealed at rotation), as the change
/// numbers of their start and their end. Every write that returned before a
/// sync started is durable once it has ended.
pub fn data_syncs(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    sim()
        .as_ref()
        .and_then(|s| s.dirs.get(&dir))
        .map_or_else(Vec::new, |d| d.data_syncs.clone())
}

/// `from` was renamed to `to`.
pub(crate) fn renamed(from: &Path, to: &Path) {
    with(|sim| {
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) = (split(from), split(to))
        else {
            return;
        };
        let Some(ino) = sim
            .dirs
            .get_mut(&from_dir)
            .and_then(|d| d.current.remove(&from_name))
        else {
            return;
        };
        let what = format!(
            "rename {} to {}",
            from_name.to_string_lossy(),
            to_name.to_string_lossy()
        );
        // A directory moves with its name: follow it under its new path.
        if let Some(old) = sim.subdirs.get(&ino).cloned() {
            let new = to_dir.join(&to_name);
            if let Some(state) = sim.dirs.remove(&old) {
                sim.dirs.insert(new.clone(), state);
            }
            sim.subdirs.insert(ino, new);
        }
        if let Some(state) = sim.dirs.get_mut(&to_dir) {
            state.current.insert(to_name, ino);
        }
        sim.count(&from_dir, format_args!("{what}"));
    });
}

/// `from` got a second name, `to`.
pub(crate) fn linked(from: &Path, to: &Path) {
    with(|sim| {
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) = (split(from), split(to))
        else {
            return;
        };
        let Some(ino) = sim
            .dirs
            .get(&from_dir)
            .and_then(|d| d.current.get(&from_name))
            .copied()
        else {
            return;
        };
        let what = format!(
            "link {} as {}",
            from_name.to_string_lossy(),
            to_name.to_string_lossy()
        );
        if let Some(state) = sim.dirs.get_mut(&to_dir) {
            state.current.insert(to_name, ino);
            sim.count(&to_dir, format_args!("{what}"));
        }
    });
}

/// `path` was removed.
pub(crate) fn removed(path: &Path) {
    with(|sim| {
        let Some((dir, name)) = split(path) else {
            return;
        };
        if let Some(state) = sim.dirs.get_mut(&dir)
            && state.current.remove(&name).is_some()
        {
            sim.count(&dir, format_args!("remove {}", name.to_string_lossy()));
        }
    });
}

/// `dir` was synced: its names now are durable.
pub(crate) fn dir_synced(dir: &Path) {
    with(|sim| {
        let Ok(dir) = dir.canonicalize() else { return };
        if let Some(state) = sim.dirs.get_mut(&dir) {
            state.durable = state.current.clone();
            sim.count(&dir, format_args!("sync the directory"));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk;

    fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
        std::fs::read(dir.join(name)).ok()
    }

    #[test]
    fn only_what_was_synced_survives_a_cut_that_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        watch(dir.path()).expect("watch");
        let a = dir.path().join("a");
        let file = disk::create(&a).expect("create");
        disk::write_at(&file, b"first", 0).expect("write");
        disk::sync_all(&file).expect("sync");
        // Synced, but the name is not yet durable: the file is gone.
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "a"), None);
        disk::sync_dir(dir.path()).expect("sync dir");
        disk::write_at(&file, b"SECOND", 0).expect("write");
        disk::write_at(&file, &[7u8; 5000], 5).expect("write");
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "a").as_deref(), Some(&b"first"[..]));
        // Keeping everything is the file as written.
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::everything()).expect("cut");
        assert_eq!(read(cut.path(), "a"), std::fs::read(&a).ok());
        disk::sync_data(&file).expect("sync");
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "a"), std::fs::read(&a).ok());
        unwatch(dir.path());
    }

    #[test]
    fn renames_and_removals_wait_for_the_directory_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tmp, done) = (dir.path().join("x.tmp"), dir.path().join("x"));
        std::fs::write(dir.path().join("old"), b"old").expect("write");
        watch(dir.path()).expect("watch");
        let file = disk::create(&tmp).expect("create");
        disk::write_at(&file, b"data", 0).expect("write");
        disk::sync_all(&file).expect("sync");
        disk::sync_dir(dir.path()).expect("sync dir");
        disk::rename(&tmp, &done).expect("rename");
        disk::remove(&dir.path().join("old")).expect("remove");
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::everything()).expect("cut");
        assert_eq!(read(cut.path(), "x.tmp").as_deref(), Some(&b"data"[..]));
        assert_eq!(read(cut.path(), "x"), None);
        assert_eq!(read(cut.path(), "old").as_deref(), Some(&b"old"[..]));
        disk::sync_dir(dir.path()).expect("sync dir");
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "x").as_deref(), Some(&b"data"[..]));
        assert_eq!(read(cut.path(), "x.tmp"), None);
        assert_eq!(read(cut.path(), "old"), None);
        unwatch(dir.path());
    }

    #[test]
    fn unsynced_pages_are_kept_or_lost_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        watch(dir.path()).expect("watch");
        let path = dir.path().join("f");
        let file = disk::create(&path).expect("create");
        disk::allocate(&file, 8 * PAGE).expect("allocate");
        disk::sync_all(&file).expect("sync");
        disk::sync_dir(dir.path()).expect("sync dir");
        for page in 0..8 {
            disk::write_at(&file, &[page as u8 + 1; PAGE as usize], page * PAGE).expect("write");
        }
        let mut kept_some = false;
        let mut lost_some = false;
        for seed in 0..20 {
            let cut = tempfile::tempdir().expect("tempdir");
            power_cut(dir.path(), cut.path(), Keep::new(seed, 128)).expect("cut");
            let bytes = read(cut.path(), "f").expect("file");
            assert_eq!(bytes.len() as u64, 8 * PAGE);
            for page in 0..8usize {
                let chunk = &bytes[page * PAGE as usize..(page + 1) * PAGE as usize];
                // Whole pages: all old (zeros) or all new.
                assert!(
                    chunk.iter().all(|&b| b == 0) || chunk.iter().all(|&b| b == page as u8 + 1)
                );
                kept_some |= chunk[0] != 0;
                lost_some |= chunk[0] == 0;
            }
        }
        assert!(kept_some && lost_some);
        unwatch(dir.path());
    }

    #[test]
    fn a_write_during_a_sync_is_not_covered_by_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        watch(dir.path()).expect("watch");
        let path = dir.path().join("f");
        let file = disk::create(&path).expect("create");
        disk::sync_dir(dir.path()).expect("sync dir");
        disk::write_at(&file, b"before", 0).expect("write");
        let started = sync_started(&file);
        disk::write_at(&file, b"DURING", 0).expect("write");
        sync_ended(&file, started);
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "f").as_deref(), Some(&b"before"[..]));
        unwatch(dir.path());
    }

    #[test]
    fn a_sync_covers_the_pages_an_earlier_sync_still_in_flight_took() {
        let dir = tempfile::tempdir().expect("tempdir");
        watch(dir.path()).expect("watch");
        let path = dir.path().join("f");
        let file = disk::create(&path).expect("create");
        disk::sync_dir(dir.path()).expect("sync dir");
        disk::write_at(&file, b"records", 0).expect("write");
        // A slow sync starts (and takes the dirty page), then a second sync
        // starts and returns first: the page is on disk after the second.
        let slow = sync_started(&file);
        let fast = sync_started(&file);
        sync_ended(&file, fast);
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "f").as_deref(), Some(&b"records"[..]));
        // A third sync takes newer bytes (and a shorter length) and
        // returns; the slow one returning last does not put its older bytes
        // or length back.
        disk::write_at(&file, b"RECORDS", 0).expect("write");
        disk::set_len(&file, 7).expect("cut");
        let newer = sync_started(&file);
        sync_ended(&file, newer);
        sync_ended(&file, slow);
        let cut = tempfile::tempdir().expect("tempdir");
        power_cut(dir.path(), cut.path(), Keep::nothing()).expect("cut");
        assert_eq!(read(cut.path(), "f").as_deref(), Some(&b"RECORDS"[..]));
        unwatch(dir.path());
    }

    #[test]
    fn a_cut_can_fall_at_any_recorded_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        watch(dir.path()).expect("watch");
        let start = ops(dir.path());
        let cut = tempfile::tempdir().expect("tempdir");
        // After the create and the first write, before the sync.
        cut_at(dir.path(), start + 2, cut.path(), Keep::nothing()).expect("arm");
        let path = dir.path().join("f");
        let file = disk::create(&path).expect("create");
        disk::write_at(&file, b"x", 0).expect("write");
        disk::sync_all(&file).expect("sync");
        disk::sync_dir(dir.path()).expect("sync dir");
        assert_eq!(read(cut.path(), "f"), None, "the cut came before the syncs");
        // create, write, sync start, sync end, directory sync.
        assert_eq!(ops(dir.path()), start + 5);
        unwatch(dir.path());
    }
}
