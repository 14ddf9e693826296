//! Listing keys in order: [`KeyRange`] says which, [`Keys`] walks them.
//!
//! A listing merges one cursor per shard. Each cursor copies keys out of
//! its shard in chunks (8, doubling to 256) under the shard's lock, so a
//! listing never holds a lock between calls to `next`, and a page of `n`
//! keys costs `O(n + log of the number of keys)`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;

use super::{KeyDir, SHARDS};

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
    pub(super) fn lower(&self) -> Bound<Vec<u8>> {
        match &self.start {
            Some((key, inclusive)) if key.as_slice() >= self.prefix.as_slice() => {
                let key = key.clone();
                if *inclusive {
                    Bound::Included(key)
                } else {
                    Bound::Excluded(key)
                }
            }
            _ => Bound::Included(self.prefix.clone()),
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
    heads: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    /// Whether the heads have been fetched.
    started: bool,
}

#[derive(Debug)]
struct ShardCursor {
    /// Keys fetched but not yet returned, in order (reversed: next at the end).
    pending: Vec<Vec<u8>>,
    /// Where the next fetch from this shard starts.
    resume: Bound<Vec<u8>>,
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
    fn advance(&mut self, i: usize) -> Option<Vec<u8>> {
        let cursor = &mut self.cursors[i];
        loop {
            if let Some(key) = cursor.pending.pop() {
                return Some(key);
            }
            if cursor.exhausted {
                return None;
            }
            let lower = cursor.resume.as_ref().map(Vec::as_slice);
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
        Some(key)
    }
}
