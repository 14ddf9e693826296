//! The key directory: for every live key, where its newest record is.
//!
//! Split into 16 shards by the key's hash, each behind its own `RwLock`, so a
//! writer updating one shard does not hold up readers of the others. A shard
//! is these parts, each its own module:
//!
//! - [`table`]: the hash table, a control byte (8 bits of hash) and a
//!   20-byte entry a slot, in two arrays, kept 78–92% full;
//! - [`entries`]: the packed entry: where the key's bytes are, a file-table
//!   index, the tag's top 20 bits (the key's home), the record's offset and
//!   length, the seq as a 28-bit delta;
//! - [`files`]: the table of files the entries point into, with the base
//!   each file's seq deltas count from;
//! - [`arena`]: the shard's one copy of every key's bytes, packed;
//! - [`ordered`]: the keys in byte order for listing, kept as sorted runs
//!   that are only ordered when a listing asks;
//! - an expiry map, for the few entries that carry an expiry time (the
//!   entry has a flag), and an overflow map for the rarer seq that does not
//!   fit its file's window, so the common entry pays for neither.
//!
//! [`listing`] walks the shards' ordered indexes in step; [`load`] builds
//! the directory at open.
//!
//! Memory for `n` keys of `k` bytes: 21 bytes a slot (control byte and
//! entry) at 78–92% fill (22.8–26.9 bytes a key), `k + 1` bytes of arena
//! (in chunks) and 4 bytes of ordered index (growing by an eighth):
//! `k + 29` to `k + 32` bytes a key, counted from the allocations.
//! docs/BENCHMARKS.md has the measured figures; a unit test pins `k + 32`
//! at 1,000,000 keys.
//!
//! A read ([`KeyDir::get_by_hash`]) can skip comparing the key's bytes,
//! because the caller compares them with the record's key anyway: it takes
//! the first entry whose 28 bits of tag match. Every other operation
//! compares the bytes in the arena.
//!
//! Expiry is not this module's business beyond storing it: callers pass the
//! current time where an expired entry must count as absent.

mod arena;
mod entries;
mod files;
mod listing;
mod load;
mod ordered;
mod table;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use listing::{KeyRange, Keys};
pub(crate) use load::{KeyDirLoader, LoadOp, LoadSource};

pub(crate) use arena::ArenaFull;
use arena::{KeyArena, KeyRef};
use entries::{HOME_BITS, NO_ROW, Packed};
use files::FileTable;
use ordered::Ordered;
use table::Table;

/// Number of shards. A power of two, so the shard is a mask of the hash.
const SHARDS: usize = 16;

/// Where a key's newest record lives, and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Data file id.
    pub file_id: u32,
    /// Offset of the record in that file.
    pub offset: u32,
    /// Length of the whole record (header, key, value).
    pub len: u32,
    /// Sequence number of the record: the value's version.
    pub seq: u64,
    /// When the value expires, in Unix milliseconds; 0 = never.
    pub expires_at_ms: u64,
}

impl Entry {
    /// Whether the value has expired at `now_ms`.
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && self.expires_at_ms <= now_ms
    }
}

/// A side map by key (arena offset) for the few entries that need one:
/// expiry times, and seqs that do not fit their file's window. The keys
/// are offsets chosen by this module, not input, so a fixed hasher is
/// enough.
type SideMap = std::collections::HashMap<KeyRef, u64, foldhash::fast::FixedState>;

/// The tag for a 64-bit hash: its top 32 bits, 0 moved to 1.
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// One shard: its keys, their entries, order and expiry.
#[derive(Debug, Default)]
struct Shard {
    table: Table,
    files: FileTable,
    keys: KeyArena,
    ordered: Ordered,
    expiry: SideMap,
    overflow: SideMap,
    /// File ids of the entries whose file found the file table full.
    spilled_files: SideMap,
    /// A key recovery had to leave out: the arena was full
    /// ([`KeyDirLoader::finish`] refuses the open).
    dropped_key: bool,
}

impl Shard {
    /// Position of `key`'s entry (compared byte for byte).
    fn find(&self, tag: u32, key: &[u8]) -> Option<usize> {
        let home_bits = tag >> (32 - HOME_BITS);
        self.table.find(tag, |entry| {
            entry.home_bits() == home_bits && self.keys.get(entry.key) == key
        })
    }

    /// Position of the first entry whose 28 bits of tag match `tag`'s (key
    /// bytes not compared).
    fn find_by_hash(&self, tag: u32) -> Option<usize> {
        let home_bits = tag >> (32 - HOME_BITS);
        self.table.find(tag, |entry| entry.home_bits() == home_bits)
    }

    /// The entry at `position`, unpacked.
    fn entry_of(&self, position: usize) -> Entry {
        let packed = self.table.at(position);
        let expires_at_ms = if packed.expires() {
            self.expiry.get(&packed.key).copied().unwrap_or(0)
        } else {
            0
        };
        let (file_id, seq) = match packed.file() {
            NO_ROW => (
                self.spilled_files
                    .get(&packed.key)
                    .map_or(0, |&id| id as u32),
                self.spilled_seq(packed),
            ),
            row if packed.seq_overflows() => (self.files.file_id(row), self.spilled_seq(packed)),
            row => (
                self.files.file_id(row),
                self.files.seq(row, packed.seq_delta()),
            ),
        };
        Entry {
            file_id,
            offset: packed.offset(),
            len: packed.len(),
            seq,
            expires_at_ms,
        }
    }

    /// The seq of an entry kept in the overflow map.
    fn spilled_seq(&self, packed: &Packed) -> u64 {
        self.overflow.get(&packed.key).copied().unwrap_or(0)
    }

    /// The seq of the entry at `position`.
    fn seq_at(&self, position: usize) -> u64 {
        let packed = self.table.at(position);
        if packed.seq_overflows() {
            self.spilled_seq(packed)
        } else {
            self.files.seq(packed.file(), packed.seq_delta())
        }
    }

    /// Writes `entry` into the entry at `position` (and the side maps). A
    /// `fresh` entry holds no file row yet.
    fn store(&mut self, position: usize, entry: &Entry, fresh: bool) {
        // Take the new row before letting go of the old: an update within
        // one file keeps its row (and its seq base).
        let row = self.files.acquire(entry.file_id, entry.seq);
        let old = *self.table.at(position);
        if !fresh {
            self.files.release(old.file());
        }
        // Without a row the file id goes to a side map, and the seq to the
        // overflow map.
        let (row, delta) = match row {
            Some(row) => (row, self.files.delta(row, entry.seq)),
            None => (NO_ROW, None),
        };
        if row == NO_ROW {
            self.spilled_files.insert(old.key, u64::from(entry.file_id));
        } else if !fresh && old.file() == NO_ROW {
            self.spilled_files.remove(&old.key);
        }
        let overflows = delta.is_none();
        if overflows {
            self.overflow.insert(old.key, entry.seq);
        } else if !fresh && old.seq_overflows() {
            self.overflow.remove(&old.key);
        }
        let expires = entry.expires_at_ms != 0;
        if expires {
            self.expiry.insert(old.key, entry.expires_at_ms);
        } else if !fresh && old.expires() {
            self.expiry.remove(&old.key);
        }
        let packed = self.table.at_mut(position);
        packed.set_place(row, entry.offset, entry.len, expires, overflows);
        packed.set_seq_delta(delta.unwrap_or(0));
    }

    /// Adds `key`, which is not in the shard, pointing at `entry`; or,
    /// with the arena full (after a compaction if it holds dead keys),
    /// changes nothing.
    fn add(&mut self, tag: u32, key: &[u8], entry: &Entry) -> Result<(), ArenaFull> {
        let at = match self.keys.push(key) {
            Ok(at) => at,
            Err(ArenaFull) if self.keys.dead_bytes() > 0 => {
                self.compact();
                self.keys.push(key)?
            }
            Err(full) => return Err(full),
        };
        self.table.make_room(1);
        self.ordered.push(at);
        let position = self.table.insert(tag, Packed::new(at, tag));
        self.store(position, entry, true);
        Ok(())
    }

    /// Points `key` at `entry`; returns the entry it replaced, or `None`
    /// for a new key.
    fn set(&mut self, tag: u32, key: &[u8], entry: &Entry) -> Result<Option<Entry>, ArenaFull> {
        match self.find(tag, key) {
            Some(position) => {
                let old = self.entry_of(position);
                self.store(position, entry, false);
                Ok(Some(old))
            }
            None => self.add(tag, key, entry).map(|()| None),
        }
    }

    /// Whether the keys of `keys` that the shard does not hold yet can all
    /// be added (compacting the arena first if they cannot and its dead
    /// keys are at least as many bytes: a compaction copies the whole
    /// shard, so one that cannot free enough is not tried). A key listed
    /// twice is counted twice.
    fn has_room_for(&mut self, keys: &[(u32, &[u8])]) -> bool {
        let new: Vec<&[u8]> = keys
            .iter()
            .filter(|&&(tag, key)| self.find(tag, key).is_none())
            .map(|&(_, key)| key)
            .collect();
        if self.keys.fits(new.iter().copied()) {
            return true;
        }
        if self.keys.dead_bytes() < new.iter().map(|key| key.len()).sum() {
            return false;
        }
        self.compact();
        self.keys.fits(new.iter().copied())
    }

    /// Removes the key at `position`; returns its entry.
    fn remove_at(&mut self, position: usize) -> Entry {
        let entry = self.entry_of(position);
        let packed = self.table.remove_at(position);
        self.keys.kill(packed.key);
        self.files.release(packed.file());
        if packed.expires() {
            self.expiry.remove(&packed.key);
        }
        if packed.seq_overflows() {
            self.overflow.remove(&packed.key);
        }
        if packed.file() == NO_ROW {
            self.spilled_files.remove(&packed.key);
        }
        self.compact_if_worth_it();
        entry
    }

    /// Compacts the arena once dead keys outweigh live ones.
    fn compact_if_worth_it(&mut self) {
        if self.keys.should_compact() {
            self.compact();
        }
    }

    /// Copies the live keys into a fresh arena; the ordered index is
    /// rebuilt (lazily) from the new references, the side maps re-keyed.
    /// The live keys always fit: they took no more room in the old arena,
    /// and the new one packs them in turn; were it ever otherwise, the old
    /// arena is kept as it was.
    fn compact(&mut self) {
        let mut keys = KeyArena::default();
        let mut expiry = SideMap::default();
        let mut overflow = SideMap::default();
        let mut spilled_files = SideMap::default();
        let mut refs = Vec::with_capacity(self.table.len());
        // (`iter` and `iter_mut` visit the live entries in the same order.)
        for (_, packed) in self.table.iter() {
            let Ok(new) = keys.push(self.keys.get(packed.key)) else {
                return;
            };
            refs.push(new);
        }
        for (packed, &new) in self.table.iter_mut().zip(&refs) {
            let old = packed.key;
            if let Some(&at) = self.expiry.get(&old) {
                expiry.insert(new, at);
            }
            if let Some(&seq) = self.overflow.get(&old) {
                overflow.insert(new, seq);
            }
            if let Some(&id) = self.spilled_files.get(&old) {
                spilled_files.insert(new, id);
            }
            packed.key = new;
        }
        self.keys = keys;
        self.expiry = expiry;
        self.overflow = overflow;
        self.spilled_files = spilled_files;
        self.ordered.reset(refs);
    }

    /// Applies one record during recovery if it is newer than what the key
    /// holds: a put points the key at its entry, a delete removes the key.
    fn apply(&mut self, tag: u32, op: LoadOp<'_>) {
        match (self.find(tag, op.key), op.put) {
            (Some(position), _) if self.seq_at(position) >= op.seq => {}
            (Some(position), Some(entry)) => self.store(position, &entry, false),
            (Some(position), None) => {
                self.remove_at(position);
            }
            (None, Some(entry)) => {
                if self.add(tag, op.key, &entry).is_err() {
                    self.dropped_key = true;
                }
            }
            (None, None) => {}
        }
    }

    /// Heap bytes the shard holds (vector capacities; the maps roughly).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.files.heap_bytes()
            + self.keys.capacity_bytes()
            + self.ordered.capacity() * size_of::<KeyRef>()
            + (self.expiry.capacity() + self.overflow.capacity() + self.spilled_files.capacity())
                * 13
    }

    /// Up to `limit` keys from `lower` on, in order, that start with
    /// `prefix` and have not expired at `now_ms`; also the last key looked
    /// at (expired ones included), where the next call resumes, and whether
    /// nothing more is in range. The ordered index must be tidy.
    fn list(
        &self,
        lower: std::ops::Bound<&[u8]>,
        prefix: &[u8],
        now_ms: u64,
        limit: usize,
    ) -> (Vec<Vec<u8>>, Option<Vec<u8>>, bool) {
        let mut keys = Vec::with_capacity(limit.min(self.table.len()));
        let mut last = None;
        let mut looked_at = 0;
        let mut exhausted = true;
        self.ordered.walk(&self.keys, lower, |at| {
            if self.keys.is_dead(at) {
                return true;
            }
            let key = self.keys.get(at);
            if !key.starts_with(prefix) {
                return false;
            }
            if looked_at == limit {
                exhausted = false;
                return false;
            }
            looked_at += 1;
            last = Some(at);
            let expired =
                !self.expiry.is_empty() && self.expiry.get(&at).is_some_and(|&when| when <= now_ms);
            if !expired {
                keys.push(key.to_vec());
            }
            true
        });
        (keys, last.map(|at| self.keys.get(at).to_vec()), exhausted)
    }
}

/// A shard behind its lock, aligned to 128 bytes so that no two shards'
/// lock words share a cache line (or an adjacent-line prefetch pair):
/// readers of different shards on different cores then write to different
/// lines when they take their read locks.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardLock(RwLock<Shard>);

/// The in-memory index from key to [`Entry`].
#[derive(Debug)]
pub(crate) struct KeyDir {
    shards: Box<[ShardLock]>,
    hashing: Hashing,
    len: AtomicUsize,
    /// Set once a shard's arena has come within
    /// [`arena::RESERVE_CHUNKS`] of its limit: from then on
    /// [`Self::has_room_for`] checks every write's new keys exactly.
    near_key_limit: AtomicBool,
}

/// How a key becomes its shard and tag: a seeded hash, then [`Tags`].
#[derive(Debug)]
struct Hashing {
    hasher: foldhash::fast::RandomState,
    tags: Tags,
}

impl Hashing {
    /// The key's shard and tag: the hash's low bits pick the shard, its
    /// top 32 bits are the tag (which places the key in the shard's index).
    fn locate(&self, key: &[u8]) -> (usize, u32) {
        self.tags.locate(self.hasher.hash_one(key))
    }
}

/// How a hash becomes a tag: [`tag_of`], or in tests maybe one of three
/// values (see [`colliding_tags_on_this_thread`]).
#[derive(Debug, Clone, Copy, Default)]
struct Tags {
    #[cfg(test)]
    colliding: bool,
}

impl Tags {
    fn of(self, hash: u64) -> u32 {
        #[cfg(test)]
        if self.colliding {
            return u32::MAX - (hash >> 32) as u32 % 3;
        }
        tag_of(hash)
    }

    /// The shard and tag of a key with `hash` (see [`KeyDir::locate`]).
    fn locate(self, hash: u64) -> (usize, u32) {
        (hash as usize & (SHARDS - 1), self.of(hash))
    }
}

#[cfg(test)]
thread_local! {
    static COLLIDING_TAGS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests only: key directories made on this thread from now on give keys
/// one of only three tags, so that lookups meet other keys' slots first
/// and every path that must compare key bytes is exercised.
#[cfg(test)]
pub(crate) fn colliding_tags_on_this_thread() {
    COLLIDING_TAGS.with(|c| c.set(true));
}

impl KeyDir {
    /// An empty key directory.
    pub(crate) fn new() -> Self {
        let hashing = Hashing {
            hasher: foldhash::fast::RandomState::default(),
            tags: Tags {
                #[cfg(test)]
                colliding: COLLIDING_TAGS.with(std::cell::Cell::get),
            },
        };
        Self {
            shards: (0..SHARDS).map(|_| ShardLock::default()).collect(),
            hashing,
            len: AtomicUsize::new(0),
            near_key_limit: AtomicBool::new(false),
        }
    }

    /// The key's shard and tag (see [`Hashing::locate`]).
    fn locate(&self, key: &[u8]) -> (usize, u32) {
        self.hashing.locate(key)
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        // No code that runs under these locks can panic half-way through an
        // update in a way that breaks memory safety; if one did panic, carry
        // on with what is there.
        self.shards[shard]
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `key`, if it is live.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Entry> {
        let (shard, tag) = self.locate(key);
        let shard = self.read(shard);
        shard
            .find(tag, key)
            .map(|position| shard.entry_of(position))
    }

    /// The entry of the first key whose 28 bits of tag match `key`'s,
    /// without comparing key bytes: the read path's lookup, which touches
    /// the control bytes and one entry but not the arena. It is `key`'s
    /// entry unless a key met earlier in the probe shares those bits: the
    /// same home bits and control byte, about one lookup in 300 (a home
    /// holds about one key up to 13 million keys). The caller must compare
    /// the record's key with `key` and, if they differ, ask [`Self::get`].
    pub(crate) fn get_by_hash(&self, key: &[u8]) -> Option<Entry> {
        let (shard, tag) = self.locate(key);
        let shard = self.read(shard);
        shard
            .find_by_hash(tag)
            .map(|position| shard.entry_of(position))
    }

    /// Points `key` at `entry`; returns the entry it replaced. A new key
    /// fails only with its shard's arena full, which
    /// [`Self::has_room_for`] tells before the write reaches the disk.
    pub(crate) fn insert(&self, key: &[u8], entry: Entry) -> Result<Option<Entry>, ArenaFull> {
        let (shard, tag) = self.locate(key);
        let mut shard = self.write(shard);
        let replaced = shard.set(tag, key, &entry)?;
        if replaced.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
            if shard.keys.near_limit() {
                self.near_key_limit.store(true, Ordering::Relaxed);
            }
        }
        Ok(replaced)
    }

    /// Whether every key of `keys` that is new can be added: false only
    /// when a shard's arena is within reach of its limit (4 GiB of keys,
    /// 64 GiB a store). Cheap unless a shard is near the limit or the keys
    /// are many megabytes; exact then (compacting a shard that holds dead
    /// keys). Only true as long as nothing else adds keys meanwhile: the
    /// writer asks under its lock, and only the writer adds keys.
    pub(crate) fn has_room_for<'k>(&self, keys: impl Iterator<Item = &'k [u8]> + Clone) -> bool {
        // At most one chunk of waste a key, and its own chunks.
        let bound: usize = keys
            .clone()
            .map(|key| key.len().div_ceil(arena::CHUNK) + 1)
            .sum();
        if !self.near_key_limit.load(Ordering::Relaxed) && bound <= arena::RESERVE_CHUNKS {
            return true;
        }
        let mut by_shard: Vec<Vec<(u32, &[u8])>> = vec![Vec::new(); SHARDS];
        for key in keys {
            let (shard, tag) = self.locate(key);
            by_shard[shard].push((tag, key));
        }
        by_shard
            .iter()
            .enumerate()
            .filter(|(_, keys)| !keys.is_empty())
            .all(|(shard, keys)| self.write(shard).has_room_for(keys))
    }

    /// Removes `key`; returns its entry if it was live.
    pub(crate) fn remove(&self, key: &[u8]) -> Option<Entry> {
        let (shard, tag) = self.locate(key);
        let mut shard = self.write(shard);
        let position = shard.find(tag, key)?;
        let entry = shard.remove_at(position);
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Points `key` at `new` only if it still points at `expected` (how
    /// merge moves a key without undoing a write that replaced it).
    pub(crate) fn compare_and_set(&self, key: &[u8], expected: &Entry, new: Entry) -> bool {
        let (shard, tag) = self.locate(key);
        let mut shard = self.write(shard);
        match shard.find(tag, key) {
            Some(position) if shard.entry_of(position) == *expected => {
                shard.store(position, &new, false);
                true
            }
            _ => false,
        }
    }

    /// Removes `key` only if it still points at `expected`.
    pub(crate) fn remove_if(&self, key: &[u8], expected: &Entry) -> bool {
        let (shard, tag) = self.locate(key);
        let mut shard = self.write(shard);
        match shard.find(tag, key) {
            Some(position) if shard.entry_of(position) == *expected => {
                shard.remove_at(position);
                self.len.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Calls `f` with every entry, one shard at a time (each under its read
    /// lock; `f` must not call back into the key directory). Keys are not
    /// passed: reaching them would cost a cache miss per entry in the arena.
    #[cfg(test)]
    pub(crate) fn for_each_entry(&self, mut f: impl FnMut(&Entry)) {
        for shard in 0..SHARDS {
            self.fold_shard(shard, &mut (), |(), entry| f(entry));
        }
    }

    /// Folds every entry into an accumulator per thread, with up to
    /// `threads` threads each taking a group of shards (under their read
    /// locks, one at a time; `f` must not call back into the key
    /// directory): recovery's pass that sums live bytes per file.
    pub(crate) fn fold_entries<T: Send>(
        &self,
        threads: usize,
        init: impl Fn() -> T + Sync,
        f: impl Fn(&mut T, &Entry) + Sync,
    ) -> Vec<T> {
        let per_thread = SHARDS.div_ceil(threads.clamp(1, SHARDS));
        let (init, f) = (&init, &f);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..SHARDS)
                .step_by(per_thread)
                .map(|first| {
                    scope.spawn(move || {
                        let mut acc = init();
                        for shard in first..(first + per_thread).min(SHARDS) {
                            self.fold_shard(shard, &mut acc, f);
                        }
                        acc
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    /// Folds the entries of one shard into `acc`.
    fn fold_shard<T>(&self, shard: usize, acc: &mut T, mut f: impl FnMut(&mut T, &Entry)) {
        let shard = self.read(shard);
        for (position, _) in shard.table.iter() {
            f(acc, &shard.entry_of(position));
        }
    }

    /// Keys of shard `shard % SHARDS` whose expiry has passed at `now_ms`,
    /// from a look at up to `budget` of its keys that carry an expiry,
    /// starting `start` places into them (so that calls with different
    /// starts look at different keys); also how many it looked at. Under
    /// the shard's read lock for the look only.
    pub(crate) fn expired_sample(
        &self,
        shard: usize,
        now_ms: u64,
        budget: usize,
        start: usize,
    ) -> (Vec<Vec<u8>>, usize) {
        let shard = self.read(shard % SHARDS);
        let len = shard.expiry.len();
        if len == 0 || budget == 0 {
            return (Vec::new(), 0);
        }
        let start = start % len;
        let looked = budget.min(len);
        let expired = shard
            .expiry
            .iter()
            .skip(start)
            .chain(shard.expiry.iter().take(start))
            .take(looked)
            .filter(|&(_, &at)| at <= now_ms)
            .map(|(&key, _)| shard.keys.get(key).to_vec())
            .collect();
        (expired, looked)
    }

    /// Number of shards, for callers that visit them in turn.
    pub(crate) fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Keys that carry an expiry (expired ones not yet dropped included):
    /// the sizes of the shards' expiry maps, one read lock each.
    pub(crate) fn len_with_expiry(&self) -> usize {
        (0..SHARDS).map(|shard| self.read(shard).expiry.len()).sum()
    }

    /// Up to `limit` keys of one shard from `lower` on; see [`Shard::list`].
    /// Orders the shard's recent keys first if a listing has not yet.
    fn shard_keys(
        &self,
        shard: usize,
        lower: std::ops::Bound<&[u8]>,
        prefix: &[u8],
        now_ms: u64,
        limit: usize,
    ) -> (Vec<Vec<u8>>, Option<Vec<u8>>, bool) {
        {
            let guard = self.read(shard);
            if !guard.ordered.needs_tidy() {
                return guard.list(lower, prefix, now_ms, limit);
            }
        }
        let mut guard = self.write(shard);
        let Shard { ordered, keys, .. } = &mut *guard;
        ordered.tidy(keys);
        guard.list(lower, prefix, now_ms, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(key: &[u8], entry: Entry) -> LoadOp<'_> {
        LoadOp {
            key,
            put: Some(entry),
            seq: entry.seq,
        }
    }

    fn delete_op(key: &[u8], seq: u64) -> LoadOp<'_> {
        LoadOp {
            key,
            put: None,
            seq,
        }
    }

    fn entry(seq: u64) -> Entry {
        Entry {
            file_id: 1,
            offset: 32,
            len: 40,
            seq,
            expires_at_ms: 0,
        }
    }

    #[test]
    fn insert_replace_remove_and_len() {
        let kd = KeyDir::new();
        assert_eq!(kd.insert(b"a", entry(1)).expect("room"), None);
        assert_eq!(kd.insert(b"a", entry(2)).expect("room"), Some(entry(1)));
        assert_eq!(kd.len(), 1);
        assert_eq!(kd.get(b"a"), Some(entry(2)));
        assert!(kd.get(b"a").is_some());
        assert_eq!(kd.remove(b"a"), Some(entry(2)));
        assert_eq!(kd.remove(b"a"), None);
        assert_eq!(kd.len(), 0);
        assert!(kd.get(b"a").is_none());
    }

    #[test]
    fn keys_come_out_sorted_across_shards_and_chunks() {
        let kd = KeyDir::new();
        let mut expected: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| format!("key-{:05}", i * 7919 % 2_000).into_bytes())
            .collect();
        for (i, k) in expected.iter().enumerate() {
            kd.insert(k, entry(i as u64)).expect("room");
        }
        expected.sort();
        let got: Vec<Vec<u8>> = Keys::new(&kd, KeyRange::all(), 0).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_loaded_directory_matches_one_built_by_inserts() {
        let direct = KeyDir::new();
        let mut loader = KeyDirLoader::new();
        for i in 0..5_000u32 {
            let key = format!("k{}", i * 7 % 3_000).into_bytes();
            if i % 5 == 4 {
                direct.remove(&key);
                loader.apply(delete_op(&key, u64::from(i)));
            } else {
                direct.insert(&key, entry(u64::from(i))).expect("room");
                loader.apply(put_op(&key, entry(u64::from(i))));
            }
        }
        let loaded = loader.finish(0).expect("room");
        assert_eq!(loaded.len(), direct.len());
        let keys: Vec<Vec<u8>> = Keys::new(&loaded, KeyRange::all(), 0).collect();
        assert_eq!(
            keys,
            Keys::new(&direct, KeyRange::all(), 0).collect::<Vec<_>>()
        );
        for k in &keys {
            assert_eq!(loaded.get(k), direct.get(k));
        }
        // And it keeps working as a normal key directory.
        assert!(loaded.remove(&keys[0]).is_some());
        assert_eq!(
            Keys::new(&loaded, KeyRange::all(), 0).next().as_ref(),
            keys.get(1)
        );
    }

    #[test]
    fn keys_of_an_empty_directory() {
        let kd = KeyDir::new();
        assert_eq!(Keys::new(&kd, KeyRange::all(), 0).next(), None);
    }

    #[test]
    fn the_loader_keeps_the_newest_record_whatever_the_order() {
        let mut loader = KeyDirLoader::new();
        loader.apply(put_op(b"a", entry(5)));
        loader.apply(put_op(b"a", entry(3))); // older copy read later: ignored
        loader.apply(delete_op(b"a", 4)); // older delete: ignored
        loader.apply(put_op(b"b", entry(2)));
        loader.apply(delete_op(b"b", 6));
        let mut expiring = entry(7);
        expiring.expires_at_ms = 100;
        loader.apply(put_op(b"c", expiring));
        loader.apply(put_op(b"c", entry(6))); // hidden by the newer, expired put
        let kd = loader.finish(100).expect("room");
        assert_eq!(kd.get(b"a"), Some(entry(5)));
        assert_eq!(kd.get(b"b"), None);
        assert_eq!(kd.get(b"c"), None, "expired at 100");
    }

    #[test]
    fn compare_and_set_and_remove_if_only_act_on_the_expected_entry() {
        let kd = KeyDir::new();
        kd.insert(b"k", entry(1)).expect("room");
        assert!(!kd.compare_and_set(b"k", &entry(2), entry(3)));
        assert!(kd.compare_and_set(b"k", &entry(1), entry(3)));
        assert_eq!(kd.get(b"k"), Some(entry(3)));
        assert!(!kd.remove_if(b"k", &entry(1)));
        assert!(kd.remove_if(b"k", &entry(3)));
        assert_eq!(kd.len(), 0);
        assert!(!kd.compare_and_set(b"k", &entry(3), entry(4)), "absent key");
    }

    #[test]
    fn ranges_prefixes_and_expiry_in_listing() {
        let kd = KeyDir::new();
        let names = ["a", "b/1", "b/2", "b/3", "b0", "c"];
        for (i, k) in names.iter().enumerate() {
            let mut e = entry(i as u64);
            if *k == "b/2" {
                e.expires_at_ms = 50;
            }
            kd.insert(k.as_bytes(), e).expect("room");
        }
        let list = |range: KeyRange, now: u64| -> Vec<String> {
            Keys::new(&kd, range, now)
                .map(|k| String::from_utf8(k).expect("utf-8"))
                .collect()
        };
        assert_eq!(list(KeyRange::prefix("b/"), 0), ["b/1", "b/2", "b/3"]);
        assert_eq!(list(KeyRange::prefix("b/"), 50), ["b/1", "b/3"]);
        assert_eq!(
            list(KeyRange::prefix("b/").start_after("b/1"), 0),
            ["b/2", "b/3"]
        );
        assert_eq!(list(KeyRange::prefix("b/").start_at("b/3"), 0), ["b/3"]);
        assert_eq!(
            list(KeyRange::prefix("b/").start_after("a"), 0),
            ["b/1", "b/2", "b/3"]
        );
        assert_eq!(
            list(KeyRange::prefix("b/").start_after("b/9"), 0),
            Vec::<String>::new()
        );
        assert_eq!(list(KeyRange::all().start_after("b0"), 0), ["c"]);
        assert_eq!(list(KeyRange::prefix("zz"), 0), Vec::<String>::new());
    }

    #[test]
    fn long_listings_cross_many_refills_in_order() {
        let kd = KeyDir::new();
        let mut expected = Vec::new();
        for i in 0..5_000u32 {
            let k = format!("p/{:06}", i * 7_919 % 5_000);
            if i % 3 == 0 {
                let mut e = entry(u64::from(i));
                e.expires_at_ms = 10;
                kd.insert(k.as_bytes(), e).expect("room");
            } else {
                kd.insert(k.as_bytes(), entry(u64::from(i))).expect("room");
                expected.push(k.into_bytes());
            }
        }
        kd.insert(b"q", entry(0)).expect("room");
        expected.sort();
        let got: Vec<Vec<u8>> = Keys::new(&kd, KeyRange::prefix("p/"), 10).collect();
        assert_eq!(got, expected);
    }

    /// Heap bytes the key directory holds, counted from its vectors'
    /// capacities.
    fn heap_bytes(kd: &KeyDir) -> usize {
        (0..SHARDS).map(|i| kd.read(i).heap_bytes()).sum()
    }

    #[test]
    fn a_16_byte_key_costs_at_most_its_bytes_plus_32() {
        let kd = KeyDir::new();
        let n = 1_000_000u64;
        for i in 0..n {
            let key = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128).to_be_bytes();
            kd.insert(&key, entry(i)).expect("room");
        }
        let per_key = heap_bytes(&kd) as f64 / n as f64;
        assert!(per_key <= 16.0 + 32.0, "{per_key:.1} bytes a key");
    }

    #[test]
    fn a_shard_pointing_into_more_files_than_its_table_holds_keeps_them_all() {
        let kd = KeyDir::new();
        let mut shard = Shard::default();
        let n = u32::from(NO_ROW) + 100;
        let key = |i: u32| format!("file-{i}").into_bytes();
        let entry_for = |i: u32| Entry {
            file_id: i + 1,
            offset: i,
            len: 40,
            seq: u64::from(i) * 3 + 7,
            expires_at_ms: u64::from(i.is_multiple_of(5)) * 99,
        };
        for i in 0..n {
            let (_, tag) = kd.hashing.locate(&key(i));
            assert_eq!(shard.set(tag, &key(i), &entry_for(i)).expect("room"), None);
        }
        assert!(
            !shard.overflow.is_empty(),
            "some files found the table full"
        );
        for i in 0..n {
            let (_, tag) = kd.hashing.locate(&key(i));
            let position = shard.find(tag, &key(i)).expect("present");
            assert_eq!(shard.entry_of(position), entry_for(i), "key {i}");
        }
        // Moving every key to one file frees the rows; the spilled entries
        // come back to a row as soon as they are written again.
        for i in 0..n {
            let (_, tag) = kd.hashing.locate(&key(i));
            let mut moved = entry_for(i);
            moved.file_id = 1;
            assert_eq!(
                shard.set(tag, &key(i), &moved).expect("room"),
                Some(entry_for(i))
            );
        }
        assert!(shard.overflow.is_empty() && shard.spilled_files.is_empty());
        assert_eq!(shard.files.rows_in_use(), 1);
    }

    #[test]
    fn keys_sharing_a_tag_are_told_apart() {
        colliding_tags_on_this_thread();
        let kd = KeyDir::new();
        for i in 0..300u64 {
            kd.insert(format!("k{i}").as_bytes(), entry(i))
                .expect("room");
        }
        for i in 0..300u64 {
            let key = format!("k{i}");
            assert_eq!(kd.get(key.as_bytes()), Some(entry(i)));
            // The fast lookup finds some key with the same tag.
            assert!(kd.get_by_hash(key.as_bytes()).is_some());
        }
        let wrong = (0..300u64)
            .filter(|i| kd.get_by_hash(format!("k{i}").as_bytes()) != Some(entry(*i)))
            .count();
        assert!(
            wrong > 200,
            "three tags: most fast lookups meet another key"
        );
        assert_eq!(kd.get(b"absent"), None);
        for i in (0..300u64).step_by(2) {
            assert_eq!(kd.remove(format!("k{i}").as_bytes()), Some(entry(i)));
        }
        for i in 0..300u64 {
            let want = (i % 2 == 1).then(|| entry(i));
            assert_eq!(kd.get(format!("k{i}").as_bytes()), want);
        }
    }

    #[test]
    fn removing_most_keys_compacts_the_arena_and_keeps_the_rest_intact() {
        let kd = KeyDir::new();
        let key = |i: u32| format!("key-{i:05}-padding");
        for i in 0..2_000u32 {
            let mut e = entry(u64::from(i));
            if i % 10 == 0 {
                e.expires_at_ms = 1_000 + u64::from(i);
            }
            kd.insert(key(i).as_bytes(), e).expect("room");
        }
        let arena_before: usize = (0..SHARDS).map(|i| kd.read(i).keys.len_bytes()).sum();
        for i in (0..2_000u32).filter(|i| i % 4 != 0) {
            assert!(kd.remove(key(i).as_bytes()).is_some());
        }
        let arena_after: usize = (0..SHARDS).map(|i| kd.read(i).keys.len_bytes()).sum();
        assert!(
            arena_after < arena_before / 2,
            "compacted: {arena_after} of {arena_before} bytes"
        );
        let kept: Vec<u32> = (0..2_000u32).filter(|i| i % 4 == 0).collect();
        for &i in &kept {
            let mut e = entry(u64::from(i));
            if i % 10 == 0 {
                e.expires_at_ms = 1_000 + u64::from(i);
            }
            assert_eq!(kd.get(key(i).as_bytes()), Some(e), "key {i}");
        }
        let listed: Vec<Vec<u8>> = Keys::new(&kd, KeyRange::all(), 1_500).collect();
        let want: Vec<Vec<u8>> = kept
            .iter()
            .filter(|&&i| i % 10 != 0 || 1_000 + u64::from(i) > 1_500)
            .map(|&i| key(i).into_bytes())
            .collect();
        assert_eq!(listed, want);
    }

    #[derive(Debug, Clone)]
    enum ModelOp {
        Insert(u16, u64, bool),
        Remove(u16),
        CompareAndSet(u16, u64),
        RemoveIf(u16),
        List(u8, Option<u16>),
    }

    fn model_key(i: u16) -> Vec<u8> {
        // Two prefixes and lengths from 2 to 40 bytes.
        let mut k = format!("{}{i}", if i.is_multiple_of(3) { "p/" } else { "q/" }).into_bytes();
        k.extend(std::iter::repeat_n(b'~', usize::from(i % 37)));
        k
    }

    fn model_op() -> impl Strategy<Value = ModelOp> {
        prop_oneof![
            4 => (0u16..400, 1u64..1_000, proptest::bool::weighted(0.1))
                .prop_map(|(k, s, e)| ModelOp::Insert(k, s, e)),
            3 => (0u16..400).prop_map(ModelOp::Remove),
            1 => (0u16..400, 1u64..1_000).prop_map(|(k, s)| ModelOp::CompareAndSet(k, s)),
            1 => (0u16..400).prop_map(ModelOp::RemoveIf),
            1 => (0u8..3, proptest::option::of(0u16..400)).prop_map(|(p, a)| ModelOp::List(p, a)),
        ]
    }

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// `spread`: how far apart consecutive seqs are; at 2^20 the later
    /// seqs of a file overflow its window, at 2^31 and more all but the
    /// first.
    fn check_model(ops: &[ModelOp], colliding: bool, spread: u64) -> Result<(), TestCaseError> {
        if colliding {
            colliding_tags_on_this_thread();
        }
        let kd = KeyDir::new();
        let mut loader = KeyDirLoader::new();
        let mut model: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        let mut seq = 0u64;
        for op in ops {
            seq += spread;
            match *op {
                ModelOp::Insert(k, s, expires) => {
                    let mut e = entry(s);
                    e.seq = seq;
                    e.file_id = 1 + (s % 4) as u32;
                    if expires {
                        e.expires_at_ms = 500;
                    }
                    let key = model_key(k);
                    prop_assert_eq!(
                        kd.insert(&key, e).expect("room"),
                        model.insert(key.clone(), e)
                    );
                    loader.apply(LoadOp {
                        key: &key,
                        put: Some(e),
                        seq,
                    });
                }
                ModelOp::Remove(k) => {
                    let key = model_key(k);
                    prop_assert_eq!(kd.remove(&key), model.remove(&key));
                    loader.apply(LoadOp {
                        key: &key,
                        put: None,
                        seq,
                    });
                }
                ModelOp::CompareAndSet(k, s) => {
                    let key = model_key(k);
                    let mut new = entry(s);
                    new.seq = seq;
                    new.file_id = 1 + (s % 4) as u32;
                    match model.get(&key).copied() {
                        Some(old) => {
                            prop_assert!(!kd.compare_and_set(&key, &new, new));
                            prop_assert!(kd.compare_and_set(&key, &old, new));
                            model.insert(key.clone(), new);
                            loader.apply(LoadOp {
                                key: &key,
                                put: Some(new),
                                seq,
                            });
                        }
                        None => prop_assert!(!kd.compare_and_set(&key, &new, new)),
                    }
                }
                ModelOp::RemoveIf(k) => {
                    let key = model_key(k);
                    if let Some(old) = model.remove(&key) {
                        prop_assert!(kd.remove_if(&key, &old));
                        loader.apply(LoadOp {
                            key: &key,
                            put: None,
                            seq,
                        });
                    } else {
                        prop_assert!(!kd.remove_if(&key, &entry(0)));
                    }
                }
                ModelOp::List(prefix, after) => {
                    let prefix = ["", "p/", "q/"][usize::from(prefix)];
                    let mut range = KeyRange::prefix(prefix);
                    if let Some(a) = after {
                        range = range.start_after(model_key(a));
                    }
                    let got: Vec<Vec<u8>> = Keys::new(&kd, range.clone(), 500).collect();
                    let lower = range.lower();
                    let want: Vec<Vec<u8>> = model
                        .range::<Vec<u8>, _>((lower.as_ref(), std::ops::Bound::Unbounded))
                        .filter(|(k, e)| k.starts_with(prefix.as_bytes()) && !e.is_expired(500))
                        .map(|(k, _)| k.clone())
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(kd.len(), model.len());
        }
        for (key, e) in &model {
            prop_assert_eq!(kd.get(key), Some(*e));
        }
        let mut seen = Vec::new();
        kd.for_each_entry(|e| seen.push(*e));
        let mut want: Vec<Entry> = model.values().copied().collect();
        let order = |e: &Entry| (e.seq, e.file_id, e.offset, e.len, e.expires_at_ms);
        seen.sort_by_key(order);
        want.sort_by_key(order);
        prop_assert_eq!(seen, want);
        // Loading the same history gives the same directory, expired
        // entries dropped.
        let loaded = loader.finish(500).expect("room");
        let live: BTreeMap<_, _> = model
            .iter()
            .map(|(k, e)| (k.clone(), *e))
            .filter(|(_, e)| !e.is_expired(500))
            .collect();
        prop_assert_eq!(loaded.len(), live.len());
        let keys: Vec<Vec<u8>> = Keys::new(&loaded, KeyRange::all(), 0).collect();
        prop_assert_eq!(keys, live.keys().cloned().collect::<Vec<_>>());
        for (key, e) in &live {
            prop_assert_eq!(loaded.get(key), Some(*e));
        }
        // Removing every key leaves no file row, overflow or expiry behind.
        for key in model.keys() {
            prop_assert!(kd.remove(key).is_some());
        }
        for i in 0..SHARDS {
            let shard = kd.read(i);
            prop_assert_eq!(shard.files.rows_in_use(), 0);
            prop_assert!(
                shard.overflow.is_empty()
                    && shard.expiry.is_empty()
                    && shard.spilled_files.is_empty()
            );
        }
        Ok(())
    }

    proptest! {
        /// The key directory agrees with a `BTreeMap` through every
        /// operation, listings included (keys of 2-40 bytes; deletes
        /// compact the arena, see `COMPACT_MIN_DEAD`), with real tags and
        /// with tags that mostly collide.
        #[test]
        fn behaves_like_an_ordered_map(
            ops in proptest::collection::vec(model_op(), 1..400),
            colliding: bool,
            spread in prop_oneof![Just(1u64), Just(1 << 20), Just(1 << 31), Just(1 << 40)],
        ) {
            check_model(&ops, colliding, spread)?;
        }
    }

    /// A key of 40,000 bytes numbered `i` (in its first bytes): one to a
    /// chunk, so the test build's arena limit (64 chunks a shard, 56 for
    /// writes) is reached after some hundreds.
    fn long_key(i: u32) -> Vec<u8> {
        let mut key = vec![b'k'; 40_000];
        key[..4].copy_from_slice(&i.to_le_bytes());
        key
    }

    #[test]
    fn a_shard_near_its_limit_refuses_writes_of_new_keys_and_makes_room_from_dead_ones() {
        let kd = KeyDir::new();
        let mut held = Vec::new();
        let refused = loop {
            let key = long_key(held.len() as u32);
            if !kd.has_room_for([key.as_slice()].into_iter()) {
                break key;
            }
            kd.insert(&key, entry(1)).expect("room, as said");
            held.push(key);
            assert!(held.len() < 64 * SHARDS, "the limit was never reached");
        };
        let (full, _) = kd.locate(&refused);
        let in_full: Vec<Vec<u8>> = held
            .iter()
            .filter(|key| kd.locate(key).0 == full)
            .cloned()
            .collect();
        // A write stops at 56 chunks of the 64.
        assert_eq!(in_full.len(), 56);
        // Keys it holds can still be pointed elsewhere.
        assert_eq!(kd.insert(&in_full[0], entry(3)), Ok(Some(entry(1))));
        // Removing one frees its room (the arena compacts for the new key).
        assert_eq!(kd.remove(&in_full[0]), Some(entry(3)));
        assert!(kd.has_room_for([refused.as_slice()].into_iter()));
        assert_eq!(kd.insert(&refused, entry(4)), Ok(None));
        // The margin is there for loads; past it an insert is refused and
        // changes nothing.
        let mut extra = 0;
        let mut i = 100_000;
        let refused_for_good = loop {
            let key = long_key(i);
            i += 1;
            if kd.locate(&key).0 != full {
                continue;
            }
            match kd.insert(&key, entry(5)) {
                Ok(None) => extra += 1,
                Ok(Some(_)) => unreachable!("a new key"),
                Err(ArenaFull) => break key,
            }
        };
        assert_eq!(extra, 8, "the last eighth of the chunks");
        assert_eq!(kd.get(&refused_for_good), None);
        assert_eq!(kd.len(), held.len() + extra);
        for key in held.iter().filter(|key| **key != in_full[0]) {
            assert_eq!(kd.get(key), Some(entry(1)));
        }
        assert_eq!(kd.get(&refused), Some(entry(4)));
    }

    #[test]
    fn a_load_with_more_keys_than_a_shard_holds_is_refused() {
        let mut loader = KeyDirLoader::new();
        for i in 0..64 * SHARDS as u32 {
            let key = long_key(i);
            loader.apply(LoadOp {
                key: &key,
                seq: u64::from(i) + 1,
                put: Some(entry(u64::from(i) + 1)),
            });
        }
        assert!(matches!(loader.finish(0), Err(ArenaFull)));
    }
}
