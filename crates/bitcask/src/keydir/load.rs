//! Building the key directory at open, from hint files (and scanned data
//! files), when one owner holds it.
//!
//! A hint file lists its records in log order, which is random order for
//! the hash tables: applied one by one, each record missed the cache on
//! its slot in tables far larger than the cache.
//! [`KeyDirLoader::apply_parallel`] instead works in two phases, each on
//! every thread it is given:
//!
//! 1. each thread reads a contiguous run of the source's parts, hashes the
//!    keys and files a 16-byte [`Pending`] (tag, put or delete, position)
//!    into a bucket per shard and top 8 bits of the tag;
//! 2. each thread takes a group of shards and, per shard, joins each
//!    bucket's lists in part order (so one key's records stay in log
//!    order), sorts each bucket by tag (stably), sizes the table once for
//!    the keys that are new, then applies the records in tag order, which is
//!    the order of their home slots: the table is walked from front to back,
//!    and only the record itself (read again by position, prefetched a few
//!    ahead) comes from far away.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::{ArenaFull, Entry, KeyDir, SHARDS, Shard};

/// Each shard's records are sorted into `2^BUCKET_BITS` buckets by the top
/// bits of their tags, which is the order of their home slots.
const BUCKET_BITS: u32 = 8;

/// Keys below which resizing the tables is not worth starting threads
/// (low in unit tests, so that their loads take both ways).
const PARALLEL_FROM: usize = if cfg!(test) { 256 } else { 1 << 16 };

/// How many records ahead of the one being applied to prefetch.
const PREFETCH_AHEAD: usize = 16;

/// Where a load's records come from: read once in log order, in parts,
/// then read again by the positions the first reading gave.
pub(crate) trait LoadSource<'k>: Sync {
    /// Number of parts (at least 1 when there are records); parts in
    /// order make the whole log.
    fn parts(&self) -> usize;
    /// Calls `f` with every record of part `part` and its position, in log
    /// order.
    fn for_each_in(&self, part: usize, f: impl FnMut(u64, LoadOp<'k>));
    /// The record at a position [`Self::for_each_in`] gave.
    fn op_at(&self, at: u64) -> LoadOp<'k>;
    /// A hint that the record at `at` will be read soon.
    fn prefetch(&self, at: u64);
}

/// A record waiting in a load's bucket: its tag, whether it is a put, and
/// its position in the load's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    at: u64,
    tag: u32,
    put: bool,
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

/// Every bucket of every shard, as one reading thread filled them.
type Buckets = Vec<Vec<Pending>>;

/// Builds a [`KeyDir`] during recovery, when one thread owns it.
///
/// Nothing is ordered while loading: the ordered indexes sort their keys
/// when first listed, so a reopen pays only for the hash inserts.
#[derive(Debug)]
pub(crate) struct KeyDirLoader {
    keydir: KeyDir,
    /// The buckets of each reading thread, kept from one source to the
    /// next so their memory is reused.
    scratch: Vec<Buckets>,
}

impl KeyDirLoader {
    /// An empty loader.
    pub(crate) fn new() -> Self {
        Self {
            keydir: KeyDir::new(),
            scratch: Vec::new(),
        }
    }

    /// Applies the records of `source` with up to `threads` threads (see
    /// the module's description of the two phases).
    pub(crate) fn apply_parallel<'k>(&mut self, source: &impl LoadSource<'k>, threads: usize) {
        let threads = threads.clamp(1, SHARDS);
        let parts = source.parts();
        if parts == 0 {
            return;
        }
        let readers = threads.min(parts);
        self.scratch
            .resize_with(readers, || vec![Vec::new(); SHARDS << BUCKET_BITS]);
        let KeyDir {
            shards, hashing, ..
        } = &mut self.keydir;
        let hashing = &*hashing;

        // Phase 1: reader `r` reads parts [r * parts / readers, ...).
        std::thread::scope(|scope| {
            for (reader, buckets) in self.scratch.iter_mut().take(readers).enumerate() {
                let (from, to) = (reader * parts / readers, (reader + 1) * parts / readers);
                scope.spawn(move || {
                    for part in from..to {
                        source.for_each_in(part, |at, op| {
                            let (shard, tag) = hashing.locate(op.key);
                            let bucket =
                                shard << BUCKET_BITS | (tag >> (32 - BUCKET_BITS)) as usize;
                            buckets[bucket].push(Pending {
                                at,
                                tag,
                                put: op.put.is_some(),
                            });
                        });
                    }
                });
            }
        });

        // Phase 2: each thread takes a group of shards and, for each, the
        // slices of every reader's buckets that belong to it.
        let per_thread = SHARDS.div_ceil(threads);
        let mut groups: Vec<Vec<&mut [Vec<Pending>]>> = (0..SHARDS.div_ceil(per_thread))
            .map(|_| Vec::new())
            .collect();
        for buckets in self.scratch.iter_mut().take(readers) {
            for (group, slice) in buckets.chunks_mut(per_thread << BUCKET_BITS).enumerate() {
                groups[group].push(slice);
            }
        }
        std::thread::scope(|scope| {
            for (chunk, mut lists) in shards.chunks_mut(per_thread).zip(groups) {
                scope.spawn(move || {
                    for (local, lock) in chunk.iter_mut().enumerate() {
                        let range = local << BUCKET_BITS..(local + 1) << BUCKET_BITS;
                        let mut shard_lists: Vec<&mut [Vec<Pending>]> = lists
                            .iter_mut()
                            .map(|slice| &mut slice[range.clone()])
                            .collect();
                        let shard = lock.0.get_mut().unwrap_or_else(PoisonError::into_inner);
                        shard.load(&mut shard_lists, source);
                    }
                });
            }
        });
    }

    /// Sizes every shard's table for about `keys` keys in all (an estimate:
    /// a shard that gets more grows as it would have; tables left too
    /// large are shrunk by [`Self::finish`]). Each growth during a load
    /// moves every key loaded so far: growing at each of a 10M-key store's
    /// hint files took about a sixth of its reopen.
    pub(crate) fn reserve(&mut self, keys: usize) {
        let per_shard = keys.div_ceil(SHARDS);
        self.each_shard(keys, |shard| shard.table.reserve(per_shard));
    }

    /// Shrinks the tables a too large [`Self::reserve`] left sparse, if
    /// any is.
    fn shrink_tables(&mut self) {
        let (mut sparse, mut keys) = (false, 0);
        for lock in &mut self.keydir.shards {
            let table = &lock
                .0
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .table;
            sparse |= table.is_sparse();
            keys += table.len();
        }
        if sparse {
            self.each_shard(keys, |shard| shard.table.shrink_to_fit());
        }
    }

    /// Calls `f` on every shard: on as many threads as a load uses when it
    /// concerns at least [`PARALLEL_FROM`] keys (a table's reservation
    /// writes out its memory, a shrink moves every key of its shard: a
    /// 10M-key store's take about 0.1 s of CPU each), else on this thread.
    fn each_shard(&mut self, keys: usize, f: impl Fn(&mut Shard) + Sync) {
        if keys < PARALLEL_FROM {
            for lock in &mut self.keydir.shards {
                f(lock.0.get_mut().unwrap_or_else(PoisonError::into_inner));
            }
            return;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let per_thread = SHARDS.div_ceil(threads);
        let f = &f;
        std::thread::scope(|scope| {
            for chunk in self.keydir.shards.chunks_mut(per_thread) {
                scope.spawn(move || {
                    for lock in chunk {
                        f(lock.0.get_mut().unwrap_or_else(PoisonError::into_inner));
                    }
                });
            }
        });
    }

    /// Applies one record unless its key already holds a newer one (higher
    /// seq): a put points the key at its entry, a delete removes the key.
    pub(crate) fn apply(&mut self, op: LoadOp<'_>) {
        let (shard, tag) = self.keydir.locate(op.key);
        self.keydir.shards[shard]
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(tag, op);
    }

    /// Drops the entries expired at `now_ms` and sets the count: the key
    /// directory is ready (one pass over each expiry map; nothing is
    /// ordered). [`ArenaFull`] if a shard could not hold every key: the
    /// store has more key bytes than a key directory addresses, and may
    /// not be opened with some of its keys left out.
    pub(crate) fn finish(mut self, now_ms: u64) -> Result<KeyDir, ArenaFull> {
        self.shrink_tables();
        let mut total = 0;
        let mut near_limit = false;
        let KeyDir {
            shards, hashing, ..
        } = &mut self.keydir;
        for lock in shards.iter_mut() {
            let shard = lock.0.get_mut().unwrap_or_else(PoisonError::into_inner);
            if !shard.expiry.is_empty() {
                // Keys, not arena references: a removal may compact the
                // arena and move the rest.
                let expired: Vec<Vec<u8>> = shard
                    .expiry
                    .iter()
                    .filter(|&(_, &when)| when <= now_ms)
                    .map(|(&at, _)| shard.keys.get(at).to_vec())
                    .collect();
                for key in &expired {
                    let (_, tag) = hashing.locate(key);
                    if let Some(position) = shard.find(tag, key) {
                        shard.remove_at(position);
                    }
                }
            }
            if shard.dropped_key {
                return Err(ArenaFull);
            }
            near_limit |= shard.keys.near_limit();
            total += shard.table.len();
        }
        self.keydir.len.store(total, Ordering::Relaxed);
        self.keydir
            .near_key_limit
            .store(near_limit, Ordering::Relaxed);
        Ok(self.keydir)
    }
}

impl Shard {
    /// Applies a load's records: `lists[r][b]` holds reader `r`'s records
    /// of bucket `b`, in log order; readers are in log order too. Empties
    /// every list (keeping its memory).
    fn load<'k>(&mut self, lists: &mut [&mut [Vec<Pending>]], source: &impl LoadSource<'k>) {
        let Some((first, rest)) = lists.split_first_mut() else {
            return;
        };
        let mut puts = 0;
        for (b, bucket) in first.iter_mut().enumerate() {
            for later in rest.iter_mut() {
                bucket.append(&mut later[b]);
            }
            bucket.sort_by_key(|p| p.tag);
            puts += bucket.iter().filter(|p| p.put).count();
        }
        // Counting the new keys takes a probe per put; skipped when the
        // table holds every put without a rebuild anyway.
        if !self.table.fits(puts) {
            let mut new_keys = 0;
            for bucket in first.iter() {
                // A tag already in the table, or met just before, counts as
                // a key already there: no key bytes are read to count. Two
                // keys sharing 28 bits of tag in one probe are rare; where
                // it happens the count is short by one and an insert
                // rebuilds the table itself.
                let mut previous = None;
                for p in bucket.iter() {
                    if p.put && previous != Some(p.tag) && self.find_by_hash(p.tag).is_none() {
                        new_keys += 1;
                    }
                    previous = Some(p.tag);
                }
            }
            self.table.make_room(new_keys);
        }
        for bucket in first.iter_mut() {
            for (i, p) in bucket.iter().enumerate() {
                if let Some(later) = bucket.get(i + PREFETCH_AHEAD) {
                    source.prefetch(later.at);
                }
                self.apply(p.tag, source.op_at(p.at));
            }
            bucket.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records in memory, split into parts of `part_len`.
    struct Records {
        ops: Vec<(Vec<u8>, Option<Entry>, u64)>,
        part_len: usize,
    }

    impl<'k> LoadSource<'k> for &'k Records {
        fn parts(&self) -> usize {
            self.ops.len().div_ceil(self.part_len)
        }

        fn for_each_in(&self, part: usize, mut f: impl FnMut(u64, LoadOp<'k>)) {
            let end = ((part + 1) * self.part_len).min(self.ops.len());
            for at in part * self.part_len..end {
                f(at as u64, self.op_at(at as u64));
            }
        }

        fn op_at(&self, at: u64) -> LoadOp<'k> {
            let (key, put, seq) = &self.ops[at as usize];
            LoadOp {
                key,
                put: *put,
                seq: *seq,
            }
        }

        fn prefetch(&self, _at: u64) {}
    }

    /// Every key in order with its entry.
    fn contents(keydir: &KeyDir) -> Vec<(Vec<u8>, Option<Entry>)> {
        crate::keydir::Keys::new(keydir, crate::keydir::KeyRange::prefix(""), 16)
            .map(|key| {
                let entry = keydir.get(&key);
                (key, entry)
            })
            .collect()
    }

    fn records(ops: &[(u8, bool)], part_len: usize) -> Records {
        let ops = ops
            .iter()
            .enumerate()
            .map(|(i, &(key, put))| {
                let seq = i as u64 + 1;
                let entry = Entry {
                    file_id: 1,
                    offset: seq as u32 * 10,
                    len: 10,
                    seq,
                    expires_at_ms: 0,
                };
                (vec![b'k', key], put.then_some(entry), seq)
            })
            .collect();
        Records { ops, part_len }
    }

    proptest! {
        /// Loading in parts, on any number of threads, in two loads (the
        /// second over the first's keys), ends as applying every record
        /// in log order one by one does; with colliding tags too.
        #[test]
        fn parallel_load_matches_applying_in_order(
            first in proptest::collection::vec((0u8..40, any::<bool>()), 0..300),
            second in proptest::collection::vec((0u8..40, any::<bool>()), 0..300),
            part_len in 1usize..50,
            threads in 1usize..5,
            colliding in any::<bool>(),
            reserve in prop_oneof![Just(None), (0usize..2_000).prop_map(Some)],
        ) {
            if colliding {
                crate::keydir::colliding_tags_on_this_thread();
            }
            let first = records(&first, part_len);
            let mut second = records(&second, part_len);
            for (_, put, seq) in &mut second.ops {
                *seq += 1_000;
                if let Some(entry) = put {
                    entry.seq += 1_000;
                    entry.file_id = 2;
                }
            }
            let mut parallel = KeyDirLoader::new();
            if let Some(keys) = reserve {
                parallel.reserve(keys);
            }
            let mut one_by_one = KeyDirLoader::new();
            for source in [&first, &second] {
                parallel.apply_parallel(&source, threads);
                for at in 0..source.ops.len() {
                    one_by_one.apply(source.op_at(at as u64));
                }
            }
            let (parallel, one_by_one) = (
                parallel.finish(0).expect("room"),
                one_by_one.finish(0).expect("room"),
            );
            prop_assert_eq!(parallel.len(), one_by_one.len());
            prop_assert_eq!(contents(&parallel), contents(&one_by_one));
            // No table is left sparse by a reservation larger than its keys.
            for lock in &parallel.shards {
                let shard = lock.0.read().expect("shard");
                let (live, capacity) = (shard.table.len(), shard.table.capacity());
                let fitted = crate::keydir::table::capacity_for(live);
                prop_assert!(live * 100 >= capacity * 75 || capacity <= fitted, "{} keys in {} slots", live, capacity);
            }
        }
    }
}
