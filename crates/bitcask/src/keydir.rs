//! The key directory: for every live key, where its newest record is.
//!
//! An ordered map (so listing by prefix or start key costs `O(log n + page)`),
//! split into shards by a hash of the key so that writers inserting into one
//! shard do not hold up readers of the others. Each shard is a `BTreeMap`
//! behind a `RwLock`; a lookup holds a read lock only while it copies the
//! 24-byte [`Entry`] out.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

type Shard = BTreeMap<Box<[u8]>, Entry>;

/// The in-memory index from key to [`Entry`].
#[derive(Debug)]
pub(crate) struct KeyDir {
    shards: Box<[RwLock<Shard>]>,
    len: AtomicUsize,
}

impl KeyDir {
    /// An empty key directory.
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(BTreeMap::new())).collect(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard_of(key: &[u8]) -> usize {
        // CRC-32C is hardware-accelerated and already a dependency; it only
        // spreads lock traffic, so a key chosen to collide costs nothing but
        // contention.
        crc32c::crc32c(key) as usize & (SHARDS - 1)
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        // A panic while a shard was locked cannot leave a BTreeMap half
        // updated in a way that breaks memory safety; carry on with it.
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
        self.read(Self::shard_of(key)).get(key).copied()
    }

    /// Whether `key` is live.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.read(Self::shard_of(key)).contains_key(key)
    }

    /// Points `key` at `entry`; returns the entry it replaced.
    pub(crate) fn insert(&self, key: &[u8], entry: Entry) -> Option<Entry> {
        let mut shard = self.write(Self::shard_of(key));
        if let Some(slot) = shard.get_mut(key) {
            return Some(std::mem::replace(slot, entry));
        }
        shard.insert(key.into(), entry);
        self.len.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Removes `key`; returns its entry if it was live.
    pub(crate) fn remove(&self, key: &[u8]) -> Option<Entry> {
        let removed = self.write(Self::shard_of(key)).remove(key);
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Up to `limit` keys of one shard, in order, strictly after `after`.
    fn shard_keys_after(&self, shard: usize, after: Option<&[u8]>, limit: usize) -> Vec<Box<[u8]>> {
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        self.read(shard)
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect()
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
    pending: Vec<Box<[u8]>>,
    /// The last key fetched from this shard.
    last: Option<Box<[u8]>>,
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
                let mut chunk = self
                    .keydir
                    .shard_keys_after(i, cursor.last.as_deref(), CHUNK);
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
        self.cursors[best].pending.pop().map(Vec::from)
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
    fn keys_of_an_empty_directory() {
        let kd = KeyDir::new();
        assert_eq!(Keys::new(&kd).next(), None);
    }
}
