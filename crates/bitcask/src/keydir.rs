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
//! A lookup holds a read lock only while it copies the 24-byte entry out.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use crate::keybuf::KeyBuf;

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
}

/// One shard: the same keys in a hash index and an ordered index.
#[derive(Debug, Default)]
struct Shard {
    by_hash: HashTable<(KeyBuf, Entry)>,
    ordered: BTreeSet<KeyBuf>,
}

impl Shard {
    /// The entry for `key` (with hash `hash`) in the hash index.
    fn find(&self, hash: u64, key: &[u8]) -> Option<Entry> {
        self.by_hash
            .find(hash, |(k, _)| k.as_slice() == key)
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
        if let Some((_, slot)) = self.by_hash.find_mut(hash, |(k, _)| k.as_slice() == key) {
            return Ok(std::mem::replace(slot, entry));
        }
        let owned = KeyBuf::from(key);
        self.by_hash
            .insert_unique(hash, (owned.clone(), entry), |(k, _)| {
                hasher.hash_one(k.as_slice())
            });
        Err(owned)
    }

    /// Removes `key` from the hash index; returns its entry if it was there.
    fn unset(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let found = self
            .by_hash
            .find_entry(hash, |(k, _)| k.as_slice() == key)
            .ok()?;
        let ((_, entry), _) = found.remove();
        Some(entry)
    }
}

/// The in-memory index from key to [`Entry`].
#[derive(Debug)]
pub(crate) struct KeyDir {
    shards: Box<[RwLock<Shard>]>,
    hasher: foldhash::fast::RandomState,
    len: AtomicUsize,
}

impl KeyDir {
    /// An empty key directory.
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
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

    /// Whether `key` is live.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
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

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Up to `limit` keys of one shard, in order, strictly after `after`.
    fn shard_keys_after(&self, shard: usize, after: Option<&[u8]>, limit: usize) -> Vec<KeyBuf> {
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        self.read(shard)
            .ordered
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take(limit)
            .cloned()
            .collect()
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

    /// Points `key` at `entry` (hash index only; see [`Self::finish`]).
    pub(crate) fn insert(&mut self, key: &[u8], entry: Entry) {
        let KeyDir { shards, hasher, .. } = &mut self.keydir;
        let hash = hasher.hash_one(key);
        let shard = shards[KeyDir::shard_of(hash)]
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // The ordered index is built in `finish`, so a new key needs nothing more.
        let _ = shard.set(hasher, hash, key, entry);
    }

    /// Removes `key` if present.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        let KeyDir { shards, hasher, .. } = &mut self.keydir;
        let hash = hasher.hash_one(key);
        shards[KeyDir::shard_of(hash)]
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .unset(hash, key);
    }

    /// Builds the ordered indexes and the count; the key directory is ready.
    pub(crate) fn finish(mut self) -> KeyDir {
        let mut total = 0;
        for shard in self.keydir.shards.iter_mut() {
            let shard = shard.get_mut().unwrap_or_else(PoisonError::into_inner);
            shard.ordered = shard.by_hash.iter().map(|(k, _)| k.clone()).collect();
            total += shard.by_hash.len();
        }
        self.keydir.len.store(total, Ordering::Relaxed);
        self.keydir
    }
}

/// How many keys an iterator copies out of a shard per lock acquisition.
const CHUNK: usize = 64;

/// Iterator over all live keys in lexicographic order.
///
/// It merges per-shard cursors and copies keys out in small chunks, so it
/// never holds a lock between calls to `next`. Keys live for the whole
/// iteration are returned exactly once; keys inserted or removed meanwhile
/// may or may not be.
#[derive(Debug)]
pub struct Keys<'a> {
    keydir: &'a KeyDir,
    cursors: Vec<ShardCursor>,
}

#[derive(Debug, Default)]
struct ShardCursor {
    /// Keys fetched but not yet returned, in order (reversed: next at the end).
    pending: Vec<KeyBuf>,
    /// The last key fetched from this shard.
    last: Option<KeyBuf>,
    /// The shard returned fewer than a chunk: nothing more to fetch.
    exhausted: bool,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(keydir: &'a KeyDir) -> Self {
        Self {
            keydir,
            cursors: (0..SHARDS).map(|_| ShardCursor::default()).collect(),
        }
    }
}

impl Iterator for Keys<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if cursor.pending.is_empty() && !cursor.exhausted {
                let after = cursor.last.as_ref().map(KeyBuf::as_slice);
                let mut chunk = self.keydir.shard_keys_after(i, after, CHUNK);
                cursor.exhausted = chunk.len() < CHUNK;
                if let Some(last) = chunk.last() {
                    cursor.last = Some(last.clone());
                }
                chunk.reverse();
                cursor.pending = chunk;
            }
        }
        let best = self
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.pending.last().map(|k| (i, k)))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i)?;
        self.cursors[best]
            .pending
            .pop()
            .map(|k| k.as_slice().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            file_id: 1,
            offset: 32,
            len: 40,
            seq,
        }
    }

    #[test]
    fn insert_replace_remove_and_len() {
        let kd = KeyDir::new();
        assert_eq!(kd.insert(b"a", entry(1)), None);
        assert_eq!(kd.insert(b"a", entry(2)), Some(entry(1)));
        assert_eq!(kd.len(), 1);
        assert_eq!(kd.get(b"a"), Some(entry(2)));
        assert!(kd.contains(b"a"));
        assert_eq!(kd.remove(b"a"), Some(entry(2)));
        assert_eq!(kd.remove(b"a"), None);
        assert_eq!(kd.len(), 0);
        assert!(!kd.contains(b"a"));
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
        let got: Vec<Vec<u8>> = Keys::new(&kd).collect();
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
                loader.remove(&key);
            } else {
                direct.insert(&key, entry(u64::from(i)));
                loader.insert(&key, entry(u64::from(i)));
            }
        }
        let loaded = loader.finish();
        assert_eq!(loaded.len(), direct.len());
        let keys: Vec<Vec<u8>> = Keys::new(&loaded).collect();
        assert_eq!(keys, Keys::new(&direct).collect::<Vec<_>>());
        for k in &keys {
            assert_eq!(loaded.get(k), direct.get(k));
        }
        // And it keeps working as a normal key directory.
        assert!(loaded.remove(&keys[0]).is_some());
        assert_eq!(Keys::new(&loaded).next().as_ref(), keys.get(1));
    }

    #[test]
    fn keys_of_an_empty_directory() {
        let kd = KeyDir::new();
        assert_eq!(Keys::new(&kd).next(), None);
    }
}
