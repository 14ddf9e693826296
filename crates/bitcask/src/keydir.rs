//! The key directory: for every live key, where its newest record is.
//!
//! Split into 16 shards by the key's hash, each behind its own `RwLock`, so a
//! writer updating one shard does not hold up readers of the others. A shard
//! holds two indexes over the same keys:
//!
//! - a hash table (`hashbrown::HashTable`, foldhash with a per-process random
//!   seed) from key to [`Entry`], for point lookups: a probe touches the
//!   control bytes and one 48-byte slot whose key is inline for keys of up to
//!   23 bytes;
//! - an ordered set of the keys, for listing in key order at `O(log n + page)`.
//!   Only inserts of new keys and deletes touch it; overwrites, the common
//!   write, and all point reads do not.
//!
//! A lookup holds a read lock only while it copies the 32-byte entry out.
//!
//! Expiry is not this module's business beyond storing it: callers pass the
//! current time where an expired entry must count as absent.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use crate::keybuf::{KeyBuf, KeyProbe};

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
    /// 1 if the entry carries an expiry, else 0 (for [`Shard::expiring`]).
    fn expires(&self) -> usize {
        usize::from(self.expires_at_ms != 0)
    }

    /// Whether the value has expired at `now_ms`.
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && self.expires_at_ms <= now_ms
    }
}

/// One shard: the same keys in a hash index and an ordered index.
#[derive(Debug, Default)]
struct Shard {
    by_hash: HashTable<(KeyBuf, Entry)>,
    ordered: BTreeSet<KeyBuf>,
    /// How many entries carry an expiry. While none does, listing need not
    /// look entries up to skip expired keys.
    expiring: usize,
}

impl Shard {
    /// The entry for `key` (with hash `hash`) in the hash index.
    fn find(&self, hash: u64, key: &[u8]) -> Option<Entry> {
        let probe = KeyProbe::new(key);
        self.by_hash
            .find(hash, |(k, _)| k.matches(&probe))
            .map(|(_, e)| *e)
    }

    /// Points `key` at `entry` in the hash index. Returns the replaced
    /// entry, or, for a new key, the stored key (for the ordered index).
    fn set(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        hash: u64,
        key: &[u8],
        entry: Entry,
    ) -> Result<Entry, KeyBuf> {
        // One probe finds the key or the slot for it.
        let probe = KeyProbe::new(key);
        match self.by_hash.entry(
            hash,
            |(k, _)| k.matches(&probe),
            |(k, _)| hasher.hash_one(k.as_slice()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut found) => {
                let old = std::mem::replace(&mut found.get_mut().1, entry);
                self.expiring = self.expiring + entry.expires() - old.expires();
                Ok(old)
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let owned = KeyBuf::from(key);
                slot.insert((owned.clone(), entry));
                self.expiring += entry.expires();
                Err(owned)
            }
        }
    }

    /// Removes `key` from the hash index; returns its entry if it was there.
    fn unset(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let found = self
            .by_hash
            .find_entry(hash, |(k, _)| k.as_slice() == key)
            .ok()?;
        let ((_, entry), _) = found.remove();
        self.expiring -= entry.expires();
        Some(entry)
    }
}

/// A shard behind its lock, aligned to 128 bytes so that no two shards'
/// lock words share a cache line (or an adjacent-line prefetch pair):
/// readers of different shards on different cores then write to different
/// lines when they take their read locks.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardLock(RwLock<Shard>);

impl std::ops::Deref for ShardLock {
    type Target = RwLock<Shard>;

    fn deref(&self) -> &RwLock<Shard> {
        &self.0
    }
}

impl std::ops::DerefMut for ShardLock {
    fn deref_mut(&mut self) -> &mut RwLock<Shard> {
        &mut self.0
    }
}

/// The in-memory index from key to [`Entry`].
#[derive(Debug)]
pub(crate) struct KeyDir {
    shards: Box<[ShardLock]>,
    hasher: foldhash::fast::RandomState,
    len: AtomicUsize,
}

impl KeyDir {
    /// An empty key directory.
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| ShardLock::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            len: AtomicUsize::new(0),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard for a hash: bits the hash table does not use for its own
    /// bucket index (low bits) or tag (top 7 bits).
    fn shard_of(hash: u64) -> usize {
        (hash >> 40) as usize & (SHARDS - 1)
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        // No code that runs under these locks can panic half-way through an
        // update in a way that breaks the indexes' memory safety; if one did
        // panic, carry on with what is there.
        self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `key`, if it is live.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        self.read(Self::shard_of(hash)).find(hash, key)
    }

    /// Points `key` at `entry`; returns the entry it replaced.
    pub(crate) fn insert(&self, key: &[u8], entry: Entry) -> Option<Entry> {
        let hash = self.hash(key);
        let mut shard = self.write(Self::shard_of(hash));
        match shard.set(&self.hasher, hash, key, entry) {
            Ok(replaced) => Some(replaced),
            Err(new_key) => {
                shard.ordered.insert(new_key);
                self.len.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Removes `key`; returns its entry if it was live.
    pub(crate) fn remove(&self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let mut shard = self.write(Self::shard_of(hash));
        let entry = shard.unset(hash, key)?;
        shard.ordered.remove(key);
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Points `key` at `new` only if it still points at `expected` (how
    /// merge moves a key without undoing a write that replaced it).
    pub(crate) fn compare_and_set(&self, key: &[u8], expected: &Entry, new: Entry) -> bool {
        let hash = self.hash(key);
        let mut shard = self.write(Self::shard_of(hash));
        match shard.by_hash.find_mut(hash, |(k, _)| k.as_slice() == key) {
            Some((_, slot)) if slot == expected => {
                *slot = new;
                shard.expiring = shard.expiring + new.expires() - expected.expires();
                true
            }
            _ => false,
        }
    }

    /// Removes `key` only if it still points at `expected`.
    pub(crate) fn remove_if(&self, key: &[u8], expected: &Entry) -> bool {
        let hash = self.hash(key);
        let mut shard = self.write(Self::shard_of(hash));
        if shard.find(hash, key).as_ref() != Some(expected) {
            return false;
        }
        shard.unset(hash, key);
        shard.ordered.remove(key);
        self.len.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Calls `f` with every entry, one shard at a time (each under its read
    /// lock; `f` must not call back into the key directory).
    pub(crate) fn for_each_entry(&self, mut f: impl FnMut(&[u8], &Entry)) {
        for shard in 0..SHARDS {
            for (key, entry) in self.read(shard).by_hash.iter() {
                f(key.as_slice(), entry);
            }
        }
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Up to `limit` keys of one shard from `lower` on, in order, that start
    /// with `prefix` and have not expired at `now_ms`. Also returns the last
    /// key looked at (expired ones included), where the next call resumes,
    /// and whether the shard has nothing more in range.
    fn shard_keys(
        &self,
        shard: usize,
        lower: Bound<&[u8]>,
        prefix: &[u8],
        now_ms: u64,
        limit: usize,
    ) -> (Vec<KeyBuf>, Option<KeyBuf>, bool) {
        let guard = self.read(shard);
        let check_expiry = guard.expiring > 0;
        let mut keys = Vec::with_capacity(limit);
        let mut last = None;
        let range = guard.ordered.range::<[u8], _>((lower, Bound::Unbounded));
        for (looked_at, key) in range.enumerate() {
            if !key.as_slice().starts_with(prefix) {
                return (keys, last, true);
            }
            if looked_at == limit {
                return (keys, last, false);
            }
            last = Some(key.clone());
            if !check_expiry
                || guard
                    .find(self.hash(key.as_slice()), key.as_slice())
                    .is_some_and(|e| !e.is_expired(now_ms))
            {
                keys.push(key.clone());
            }
        }
        (keys, last, true)
    }
}

/// One record as recovery applies it to the key directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadOp<'k> {
    /// The record's key.
    pub key: &'k [u8],
    /// Where the value is, for a put; `None` for a delete.
    pub put: Option<Entry>,
    /// The record's sequence number.
    pub seq: u64,
}

impl Shard {
    /// Applies one record if it is newer than what the key holds (one
    /// probe). The ordered index is built in `finish`, so a new key needs
    /// nothing more.
    fn apply(&mut self, hasher: &foldhash::fast::RandomState, hash: u64, op: LoadOp<'_>) {
        use hashbrown::hash_table::Entry as Slot;
        let probe = KeyProbe::new(op.key);
        match self.by_hash.entry(
            hash,
            |(k, _)| k.matches(&probe),
            |(k, _)| hasher.hash_one(k.as_slice()),
        ) {
            Slot::Occupied(found) if found.get().1.seq >= op.seq => {}
            Slot::Occupied(mut found) => match op.put {
                Some(entry) => found.get_mut().1 = entry,
                None => {
                    found.remove();
                }
            },
            Slot::Vacant(slot) => {
                if let Some(entry) = op.put {
                    slot.insert((KeyBuf::from(op.key), entry));
                }
            }
        }
    }
}

/// Builds a [`KeyDir`] during recovery, when one thread owns it.
///
/// Records are applied to the hash indexes only; [`Self::finish`] then
/// builds each shard's ordered index from its keys in one pass (the standard
/// library bulk-builds a B-tree from sorted input), instead of a random
/// B-tree insert per record, most of which later overwrites or deletes undo.
#[derive(Debug)]
pub(crate) struct KeyDirLoader {
    keydir: KeyDir,
}

impl KeyDirLoader {
    /// An empty loader.
    pub(crate) fn new() -> Self {
        Self {
            keydir: KeyDir::new(),
        }
    }

    /// Applies `ops` (records in log order) with up to `threads` threads,
    /// each owning a group of shards and applying, in order, the ops whose
    /// keys fall in its shards. `ops` is called once per thread.
    pub(crate) fn apply_parallel<'k, I>(&mut self, ops: impl Fn() -> I + Sync, threads: usize)
    where
        I: Iterator<Item = LoadOp<'k>>,
    {
        let threads = threads.clamp(1, SHARDS);
        let KeyDir { shards, hasher, .. } = &mut self.keydir;
        let hasher = &*hasher;
        let per_thread = SHARDS.div_ceil(threads);
        let ops = &ops;
        std::thread::scope(|scope| {
            for (group, chunk) in shards.chunks_mut(per_thread).enumerate() {
                let first = group * per_thread;
                scope.spawn(move || {
                    for op in ops() {
                        let hash = hasher.hash_one(op.key);
                        let Some(lock) = KeyDir::shard_of(hash)
                            .checked_sub(first)
                            .and_then(|i| chunk.get_mut(i))
                        else {
                            continue;
                        };
                        let shard = lock.get_mut().unwrap_or_else(PoisonError::into_inner);
                        shard.apply(hasher, hash, op);
                    }
                });
            }
        });
    }

    fn shard_for(&mut self, key: &[u8]) -> (&mut Shard, &foldhash::fast::RandomState, u64) {
        let KeyDir { shards, hasher, .. } = &mut self.keydir;
        let hash = hasher.hash_one(key);
        let shard = shards[KeyDir::shard_of(hash)]
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        (shard, hasher, hash)
    }

    /// Applies one record unless its key already holds a newer one (higher
    /// seq): a put points the key at its entry, a delete removes the key.
    /// Hash index only; see [`Self::finish`].
    pub(crate) fn apply(&mut self, op: LoadOp<'_>) {
        let (shard, hasher, hash) = self.shard_for(op.key);
        shard.apply(hasher, hash, op);
    }

    /// Drops the entries expired at `now_ms`, builds the ordered indexes
    /// (with up to `threads` threads) and the count: the key directory is
    /// ready.
    pub(crate) fn finish(mut self, now_ms: u64, threads: usize) -> KeyDir {
        let per_thread = SHARDS.div_ceil(threads.clamp(1, SHARDS));
        std::thread::scope(|scope| {
            for chunk in self.keydir.shards.chunks_mut(per_thread) {
                scope.spawn(move || {
                    for shard in chunk {
                        let shard = shard.get_mut().unwrap_or_else(PoisonError::into_inner);
                        shard.by_hash.retain(|(_, e)| !e.is_expired(now_ms));
                        shard.expiring = shard.by_hash.iter().map(|(_, e)| e.expires()).sum();
                        let mut keys: Vec<KeyBuf> =
                            shard.by_hash.iter().map(|(k, _)| k.clone()).collect();
                        keys.sort_unstable();
                        // Sorted input: the B-tree is built in one pass.
                        shard.ordered = keys.into_iter().collect();
                    }
                });
            }
        });
        let total = self
            .keydir
            .shards
            .iter_mut()
            .map(|s| {
                s.get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .by_hash
                    .len()
            })
            .sum();
        self.keydir.len.store(total, Ordering::Relaxed);
        self.keydir
    }
}

/// How many keys an iterator first copies out of a shard per lock
/// acquisition; it doubles on each refill up to [`MAX_CHUNK`], so a short page
/// copies few keys and a long scan takes few locks.
const FIRST_CHUNK: usize = 8;
/// The largest refill.
const MAX_CHUNK: usize = 256;

/// Which keys a listing covers: those that start with a prefix, from a start
/// key on. Built by value: `KeyRange::prefix(b"user/").start_after(b"user/42")`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct KeyRange {
    prefix: Vec<u8>,
    start: Option<(Vec<u8>, bool)>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        Self {
            prefix: prefix.into(),
            start: None,
        }
    }

    /// Only keys strictly after `key` (to resume a listing after the last
    /// key of the previous page).
    pub fn start_after(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.start = Some((key.into(), false));
        self
    }

    /// Only keys at or after `key`.
    pub fn start_at(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.start = Some((key.into(), true));
        self
    }

    /// The lower bound where a scan begins: the later of the prefix and the
    /// start key.
    fn lower(&self) -> Bound<KeyBuf> {
        match &self.start {
            Some((key, inclusive)) if key.as_slice() >= self.prefix.as_slice() => {
                let key = KeyBuf::from(key.as_slice());
                if *inclusive {
                    Bound::Included(key)
                } else {
                    Bound::Excluded(key)
                }
            }
            _ => Bound::Included(KeyBuf::from(self.prefix.as_slice())),
        }
    }
}

/// Iterator over live keys in lexicographic byte order, from
/// [`Bitcask::keys`](crate::Bitcask::keys) or
/// [`Bitcask::keys_in`](crate::Bitcask::keys_in).
///
/// It merges per-shard cursors and copies keys out in small chunks, so it
/// never holds a lock between calls to `next`, and the cost of a page of `n`
/// keys is `O(n + log of the number of keys)` whatever the store's size. Keys
/// live for the whole iteration are returned exactly once; keys inserted,
/// removed or expiring meanwhile may or may not be. Expiry is judged at the
/// time the iterator was made.
#[derive(Debug)]
pub struct Keys<'a> {
    keydir: &'a KeyDir,
    prefix: Vec<u8>,
    now_ms: u64,
    cursors: Vec<ShardCursor>,
    /// The next key of each shard that has one, smallest first.
    heads: BinaryHeap<Reverse<(KeyBuf, usize)>>,
    /// Whether the heads have been fetched.
    started: bool,
}

#[derive(Debug)]
struct ShardCursor {
    /// Keys fetched but not yet returned, in order (reversed: next at the end).
    pending: Vec<KeyBuf>,
    /// Where the next fetch from this shard starts.
    resume: Bound<KeyBuf>,
    /// The shard has nothing more in range.
    exhausted: bool,
    /// Size of the next fetch.
    chunk: usize,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(keydir: &'a KeyDir, range: KeyRange, now_ms: u64) -> Self {
        let lower = range.lower();
        Self {
            keydir,
            prefix: range.prefix,
            now_ms,
            heads: BinaryHeap::with_capacity(SHARDS),
            started: false,
            cursors: (0..SHARDS)
                .map(|_| ShardCursor {
                    pending: Vec::new(),
                    resume: lower.clone(),
                    exhausted: false,
                    chunk: FIRST_CHUNK,
                })
                .collect(),
        }
    }
}

impl Keys<'_> {
    /// The next key of shard `i`'s cursor, fetching a chunk when needed.
    fn advance(&mut self, i: usize) -> Option<KeyBuf> {
        let cursor = &mut self.cursors[i];
        loop {
            if let Some(key) = cursor.pending.pop() {
                return Some(key);
            }
            if cursor.exhausted {
                return None;
            }
            let lower = cursor.resume.as_ref().map(KeyBuf::as_slice);
            let (mut chunk, last, exhausted) =
                self.keydir
                    .shard_keys(i, lower, &self.prefix, self.now_ms, cursor.chunk);
            cursor.exhausted = exhausted;
            if let Some(last) = last {
                cursor.resume = Bound::Excluded(last);
            }
            cursor.chunk = (cursor.chunk * 2).min(MAX_CHUNK);
            chunk.reverse();
            cursor.pending = chunk;
        }
    }
}

impl Iterator for Keys<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.started {
            self.started = true;
            for i in 0..self.cursors.len() {
                if let Some(key) = self.advance(i) {
                    self.heads.push(Reverse((key, i)));
                }
            }
        }
        // The smallest head of all shards; its shard moves on. (A key lives
        // in exactly one shard, so heads never tie.)
        let Reverse((key, i)) = self.heads.pop()?;
        if let Some(next) = self.advance(i) {
            self.heads.push(Reverse((next, i)));
        }
        Some(key.as_slice().to_vec())
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
        assert_eq!(kd.insert(b"a", entry(1)), None);
        assert_eq!(kd.insert(b"a", entry(2)), Some(entry(1)));
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
            kd.insert(k, entry(i as u64));
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
                direct.insert(&key, entry(u64::from(i)));
                loader.apply(put_op(&key, entry(u64::from(i))));
            }
        }
        let loaded = loader.finish(0, 2);
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
        let kd = loader.finish(100, 3);
        assert_eq!(kd.get(b"a"), Some(entry(5)));
        assert_eq!(kd.get(b"b"), None);
        assert_eq!(kd.get(b"c"), None, "expired at 100");
    }

    #[test]
    fn compare_and_set_and_remove_if_only_act_on_the_expected_entry() {
        let kd = KeyDir::new();
        kd.insert(b"k", entry(1));
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
            kd.insert(k.as_bytes(), e);
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
                kd.insert(k.as_bytes(), e);
            } else {
                kd.insert(k.as_bytes(), entry(u64::from(i)));
                expected.push(k.into_bytes());
            }
        }
        kd.insert(b"q", entry(0));
        expected.sort();
        let got: Vec<Vec<u8>> = Keys::new(&kd, KeyRange::prefix("p/"), 10).collect();
        assert_eq!(got, expected);
    }
}
