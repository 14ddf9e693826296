//! The hash index of one shard: open addressing over slots of a control
//! byte (8 bits of the key's hash) and a 3-byte entry number, in two arrays.
//!
//! A key's *tag* is 32 bits of its hash; its home slot is
//! `tag * capacity >> 32`, so the index can be rebuilt in home order from
//! tags alone. The control bytes are an array of their own, a byte a slot:
//! 0 never used, 1 a removed key (a tombstone), the tag's low byte in use
//! (0 and 1 moved to 2). A lookup walks the control bytes from home to the
//! first never-used one, sixteen at a time, and reads an entry number only
//! where the byte matches; the caller then checks the entry's 8 further
//! bits of hash and the key itself ([`super::entries`]). The control bytes
//! are about 1.3 MB for a million keys, so a lookup of an absent key
//! usually touches nothing else.
//!
//! Measured with 1,000,000 keys (`get_with` of absent keys, one thread):
//! 6 bits of hash beside the number in one 4-byte slot, 10.7 million a
//! second; 7 bits in a control byte, 11.5 million probed a byte at a time
//! and 15.0 million eight at a time; 8 bits, 20.7 million (the previous
//! directory, 32-byte slots with 2-byte control words: 20.0). A wrong match
//! costs two cache misses, on the number and on the entry. Control bytes
//! and numbers together in 64-byte groups of sixteen slots (one line for
//! both) read absent keys at 12 million and present ones no faster: the
//! control bytes then no longer fit the cache.
//!
//! Linear probing rather than Robin Hood: Robin Hood needs each resident's
//! distance from home, that is its hash, which a slot has no room for.
//! Removal leaves a tombstone, which an insert reuses; slots in use (live
//! and tombstones) are kept at most 85% of the index, and an index that
//! reaches that is rebuilt at 70% live, so it stays 70–85% full: about 5
//! bytes a key. A rebuild needs every key's tag, which only the key's bytes
//! give: the shard rehashes them walking its entries in number order, which
//! walks the arena mostly in order too.
//!
//! Hand-written rather than `hashbrown`: a `HashTable<u32>` costs 5 bytes a
//! slot and doubles (43–87% full: up to 11.6 bytes a key), and its growth
//! calls the hasher in table order, a random walk of the arena.

/// A never-used slot.
const EMPTY: u8 = 0;
/// A slot whose key was removed.
const TOMBSTONE: u8 = 1;
/// Control bytes from this one up are slots in use.
const IN_USE: u8 = 2;
/// Bytes of an entry number.
const NUMBER_BYTES: usize = 3;
/// Control bytes a probe step looks at.
const STEP: usize = 16;

/// Smallest non-empty capacity.
const MIN_CAPACITY: usize = 16;

/// Slots in use (live and tombstones) at most 85/100 of the capacity.
fn within_load(used: usize, capacity: usize) -> bool {
    used * 100 <= capacity * 85
}

/// The capacity a rebuild for `live` keys picks: 70% full.
fn capacity_for(live: usize) -> usize {
    (live * 10).div_ceil(7).max(MIN_CAPACITY)
}

/// A byte of ones in each lane of a `u128`.
const BYTES: u128 = u128::MAX / 0xFF;

/// The top bit of each byte of `v` that is zero, exactly (no borrow runs
/// from one byte into the next, unlike the shorter `v - 0x01.. & !v`).
fn zero_bytes(v: u128) -> u128 {
    let low = BYTES * 0x7F;
    !((v & low).wrapping_add(low) | v | low)
}

/// The control byte of a key with `tag`: its low 8 bits, 0 and 1 moved
/// to 2.
fn control_of(tag: u32) -> u8 {
    (tag as u8).max(IN_USE)
}

/// `len` copies of `value`, written out rather than taken as zeroed memory
/// from the allocator: fresh zeroed pages are mapped to the shared zero page
/// when first read, and probes read them before writing, so each page
/// would fault twice (the second time flushing other cores' TLBs).
fn written_out<T: Copy>(len: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, value);
    v
}

/// The index of one shard.
#[derive(Debug, Default)]
pub(crate) struct Index {
    control: Vec<u8>,
    /// Entry numbers, three little-endian bytes a slot.
    numbers: Vec<u8>,
    live: usize,
    /// Live slots and tombstones.
    used: usize,
}

impl Index {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Number of slots, in use or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.control.len()
    }

    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.control.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.control.len() {
            0
        } else {
            i + 1
        }
    }

    /// Position of the first slot with `tag`'s control byte whose entry
    /// number `is_key` accepts.
    ///
    /// Sixteen control bytes at a time where sixteen are left before the
    /// end: one 128-bit load finds both the first never-used byte and the
    /// bytes that match (a probe at 70–85% fill passes 3 to 23 slots). Bit
    /// tricks rather than SIMD intrinsics: no `unsafe`, and as fast here.
    pub(crate) fn find(&self, tag: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<usize> {
        let len = self.control.len();
        if len == 0 {
            return None;
        }
        let wanted = control_of(tag);
        let mut i = self.home(tag);
        // A present key is almost always within a few slots of home: start
        // loading its number while the control bytes are read, so the two
        // cache misses overlap instead of following each other.
        crate::prefetch::read(&self.numbers[i * NUMBER_BYTES..]);
        loop {
            if let Some(step) = self.control.get(i..i + STEP) {
                let step = u128::from_le_bytes(step.try_into().unwrap_or([EMPTY; STEP]));
                let empty = zero_bytes(step);
                let mut matches = zero_bytes(step ^ (BYTES * u128::from(wanted)));
                if empty != 0 {
                    // Only the matches before the first never-used slot.
                    matches &= (empty & empty.wrapping_neg()) - 1;
                }
                while matches != 0 {
                    let j = i + matches.trailing_zeros() as usize / 8;
                    if is_key(self.number_at(j)) {
                        return Some(j);
                    }
                    matches &= matches - 1;
                }
                if empty != 0 {
                    return None;
                }
                i += STEP;
                if i == len {
                    i = 0;
                }
            } else {
                let control = self.control[i];
                if control == EMPTY {
                    return None;
                }
                if control == wanted && is_key(self.number_at(i)) {
                    return Some(i);
                }
                i = self.next(i);
            }
        }
    }

    /// The entry number in the slot at `position` (from [`Self::find`]).
    pub(crate) fn number_at(&self, position: usize) -> u32 {
        let at = position * NUMBER_BYTES;
        let b = &self.numbers[at..at + NUMBER_BYTES];
        u32::from_le_bytes([b[0], b[1], b[2], 0])
    }

    /// Whether `additional` more keys fit without a rebuild.
    pub(crate) fn fits(&self, additional: usize) -> bool {
        within_load(self.used + additional, self.control.len())
    }

    /// The capacity a rebuild that makes room for `additional` more keys
    /// would pick, or `None` if they fit already.
    pub(crate) fn rebuild_size(&self, additional: usize) -> Option<usize> {
        (!self.fits(additional)).then(|| capacity_for(self.live + additional))
    }

    /// Adds entry `number` for a key with `tag` that is not in the index;
    /// there must be room ([`Self::fits`]).
    pub(crate) fn insert(&mut self, tag: u32, number: u32) {
        debug_assert!(self.fits(1));
        debug_assert!(number <= super::entries::MAX_NUMBER);
        let mut i = self.home(tag);
        while self.control[i] >= IN_USE {
            i = self.next(i);
        }
        if self.control[i] == EMPTY {
            self.used += 1;
        }
        self.control[i] = control_of(tag);
        let at = i * NUMBER_BYTES;
        self.numbers[at..at + NUMBER_BYTES].copy_from_slice(&number.to_le_bytes()[..NUMBER_BYTES]);
        self.live += 1;
    }

    /// Removes the key in the slot at `position`.
    pub(crate) fn remove_at(&mut self, position: usize) {
        debug_assert!(self.control[position] >= IN_USE);
        self.control[position] = TOMBSTONE;
        self.live -= 1;
    }

    /// Replaces the index with one of `capacity` slots holding `keys`
    /// (entry number and tag), which must be every live key.
    pub(crate) fn rebuild(&mut self, capacity: usize, keys: impl Iterator<Item = (u32, u32)>) {
        self.control = Vec::new();
        self.numbers = Vec::new();
        self.control = written_out(capacity, EMPTY);
        self.numbers = written_out(capacity * NUMBER_BYTES, 0);
        self.live = 0;
        self.used = 0;
        for (number, tag) in keys {
            self.insert(tag, number);
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.control.capacity() + self.numbers.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// An index with a model beside it: number -> tag.
    #[derive(Default)]
    struct Checked {
        index: Index,
        tags: HashMap<u32, u32>,
    }

    impl Checked {
        fn insert(&mut self, number: u32, tag: u32) {
            if let Some(capacity) = self.index.rebuild_size(1) {
                let keys: Vec<(u32, u32)> = self.tags.iter().map(|(&n, &t)| (n, t)).collect();
                self.index.rebuild(capacity, keys.into_iter());
            }
            self.index.insert(tag, number);
            self.tags.insert(number, tag);
        }

        fn find(&self, number: u32) -> Option<usize> {
            let tag = *self.tags.get(&number)?;
            self.index.find(tag, |n| n == number)
        }
    }

    #[test]
    fn slots_round_trip_the_largest_number() {
        let max = crate::keydir::entries::MAX_NUMBER;
        let mut index = Index::default();
        index.rebuild(16, [(max, u32::MAX), (0, 0)].into_iter());
        let found = index.find(u32::MAX, |n| n == max).expect("present");
        assert_eq!(index.number_at(found), max);
        assert!(index.find(0, |n| n == 0).is_some());
        assert!(control_of(0) > TOMBSTONE);
    }

    proptest! {
        /// `zero_bytes` flags exactly the zero bytes, whatever surrounds
        /// them (the short formula flags a 1 just above a 0 too).
        #[test]
        fn zero_bytes_is_exact(bytes in proptest::array::uniform16(prop_oneof![Just(0u8), Just(1u8), Just(0x80u8), any::<u8>()])) {
            let flags = zero_bytes(u128::from_le_bytes(bytes));
            for (lane, &b) in bytes.iter().enumerate() {
                prop_assert_eq!(flags >> (lane * 8 + 7) & 1 == 1, b == 0, "lane {}", lane);
            }
            prop_assert_eq!(flags & !(BYTES << 7), 0);
        }

        /// The index agrees with a map through inserts, removals and
        /// rebuilds, with tags from a small range so that fragments
        /// collide, clusters are long and wrap around the end.
        #[test]
        fn finds_exactly_the_keys_it_holds(ops in proptest::collection::vec((any::<bool>(), 0u32..300, 0u32..6), 1..800)) {
            let mut c = Checked::default();
            for (add, number, salt) in ops {
                let present = c.find(number);
                prop_assert_eq!(present.is_some(), c.tags.contains_key(&number));
                match (add, present) {
                    (true, None) => c.insert(number, u32::MAX - salt * 64 - number % 2),
                    (false, Some(position)) => {
                        prop_assert_eq!(c.index.number_at(position), number);
                        c.index.remove_at(position);
                        c.tags.remove(&number);
                    }
                    _ => {}
                }
                prop_assert_eq!(c.index.len(), c.tags.len());
                prop_assert!(within_load(c.index.used, c.index.capacity()) || c.index.capacity() == 0);
            }
            for &number in c.tags.keys() {
                prop_assert!(c.find(number).is_some());
            }
        }
    }

    #[test]
    fn rebuilds_keep_it_between_70_and_85_percent_full() {
        let mut c = Checked::default();
        let mut fills = Vec::new();
        for number in 0..100_000u32 {
            c.insert(number, number.wrapping_mul(0x9E37_79B9));
            if number > 1_000 {
                fills.push(c.index.used as f64 / c.index.capacity() as f64);
            }
        }
        let (lo, hi) = fills
            .iter()
            .fold((1.0f64, 0.0f64), |(lo, hi), &f| (lo.min(f), hi.max(f)));
        assert!(lo >= 0.69 && hi <= 0.85, "fill {lo:.3}..{hi:.3}");
    }
}
