//! The hash table of one shard: open addressing over slots of a control
//! byte and a 20-byte entry, kept in two arrays.
//!
//! A key's *tag* is 32 bits of its hash. Its home slot is
//! `(tag >> 12) * capacity >> 20`: only the tag's top 20 bits, which the
//! entry keeps ([`Packed::home_bits`]), so the table is rebuilt at any size
//! without hashing a key again. The control bytes are an array of their
//! own, a byte a slot: 0 never used, 1 a removed key (a tombstone), the
//! tag's low byte in use (0 and 1 moved to 2). A lookup walks the control
//! bytes from home to the first never-used one, sixteen at a time, and
//! looks at an entry only where the byte matches; the caller then checks
//! the entry's home bits and the key itself. The control bytes are about
//! 1.2 MB for a million keys, so a lookup of an absent key usually reads
//! nothing else; a present key costs one entry, which sits at its slot's
//! position (not behind a number) and whose line is prefetched from the
//! home slot while the control bytes are read.
//!
//! Linear probing rather than Robin Hood: Robin Hood keeps each resident's
//! distance from home, which a slot has no room for. Removal leaves a
//! tombstone, which an insert reuses. Slots in use (live and tombstones)
//! are kept at most 92% of the table; a table that reaches that is rebuilt
//! at 78% live (so it stays 78–92% full, 21 bytes a slot: 22.8–26.9 bytes
//! a key), which moves every entry, in slot order, to about the same
//! relative place: a sequential copy, about seven times in a key's life.
//! With 20 bits of home a shard has at most 1,048,576 home slots; a larger
//! table (past about 800,000 keys a shard, 13 million in all) puts its keys
//! in runs from those, which linear probing handles as buckets, at the cost
//! of longer probes as it grows. (With 16 bits, absent keys at 10 million
//! keys read 30% slower than with 20.)
//!
//! Hand-written rather than `hashbrown`: a `HashTable` of 20-byte entries
//! doubles (43–87% full: up to 48 bytes a key), and its growth calls the
//! hasher, which here would read every key from the arena.

use super::entries::{HOME_BITS, Packed};

/// A never-used slot.
const EMPTY: u8 = 0;
/// A slot whose key was removed.
const TOMBSTONE: u8 = 1;
/// Control bytes from this one up are slots in use.
const IN_USE: u8 = 2;
/// Control bytes a probe step looks at.
const STEP: usize = 16;

/// Smallest non-empty capacity.
const MIN_CAPACITY: usize = 16;

/// Slots in use (live and tombstones) at most 92/100 of the capacity.
fn within_load(used: usize, capacity: usize) -> bool {
    used * 100 <= capacity * 92
}

/// The capacity a rebuild for `live` keys picks: 78% full.
pub(super) fn capacity_for(live: usize) -> usize {
    (live * 100).div_ceil(78).max(MIN_CAPACITY)
}

/// How full (in hundredths) a reservation for exactly the keys expected
/// leaves the table: fuller than a rebuild's 78%, still under the 92% an
/// insert may reach, so that an estimate a little short needs no rebuild.
const RESERVED_LOAD: usize = 85;

/// A table less full than this (in hundredths) after a load whose
/// reservation was too large is rebuilt at [`capacity_for`]'s 78% (a
/// table between this and 78% costs under a byte more a key: slots are 17
/// bytes).
const SPARSE: usize = 75;

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

/// The table of one shard.
#[derive(Debug, Default)]
pub(crate) struct Table {
    control: Vec<u8>,
    entries: Vec<Packed>,
    live: usize,
    /// Live slots and tombstones.
    used: usize,
}

impl Table {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Number of slots, in use or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.control.len()
    }

    /// The home slot of a key whose tag's top bits are `home_bits`.
    fn home(&self, home_bits: u32) -> usize {
        ((u64::from(home_bits) * self.control.len() as u64) >> HOME_BITS) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.control.len() {
            0
        } else {
            i + 1
        }
    }

    /// Position of the first slot with `tag`'s control byte whose entry
    /// `is_key` accepts.
    ///
    /// Sixteen control bytes at a time where sixteen are left before the
    /// end: one 128-bit load finds both the first never-used byte and the
    /// bytes that match. Bit tricks rather than SIMD intrinsics: no
    /// `unsafe`, and as fast here.
    pub(crate) fn find(&self, tag: u32, mut is_key: impl FnMut(&Packed) -> bool) -> Option<usize> {
        let len = self.control.len();
        if len == 0 {
            return None;
        }
        let wanted = control_of(tag);
        let mut i = self.home(tag >> (32 - HOME_BITS));
        // A present key is usually within a few slots of home: start
        // loading the entries there while the control bytes are read.
        crate::prefetch::read_value(&self.entries[i]);
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
                    if is_key(&self.entries[j]) {
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
                if control == wanted && is_key(&self.entries[i]) {
                    return Some(i);
                }
                i = self.next(i);
            }
        }
    }

    /// The entry at `position` (from [`Self::find`] or [`Self::insert`]).
    pub(crate) fn at(&self, position: usize) -> &Packed {
        &self.entries[position]
    }

    /// The entry at `position`, to change (not its home bits).
    pub(crate) fn at_mut(&mut self, position: usize) -> &mut Packed {
        &mut self.entries[position]
    }

    /// Whether `additional` more keys fit without a rebuild.
    pub(crate) fn fits(&self, additional: usize) -> bool {
        within_load(self.used + additional, self.control.len())
    }

    /// Rebuilds the table, if needed, so that `additional` more keys fit.
    pub(crate) fn make_room(&mut self, additional: usize) {
        if !self.fits(additional) {
            self.rebuild(capacity_for(self.live + additional));
        }
    }

    /// Makes room for `keys` keys in all, if there is less: a load that
    /// knows about how many keys are coming sizes the table once instead of
    /// at every step.
    pub(crate) fn reserve(&mut self, keys: usize) {
        let capacity = (keys * 100).div_ceil(RESERVED_LOAD).max(MIN_CAPACITY);
        if capacity > self.control.len() {
            self.rebuild(capacity);
        }
    }

    /// Rebuilds the table at the usual load if it is less than [`SPARSE`]
    /// full (a reservation that was too large); positions change.
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.is_sparse() {
            self.rebuild(capacity_for(self.live));
        }
    }

    /// Whether [`Self::shrink_to_fit`] would rebuild the table.
    pub(crate) fn is_sparse(&self) -> bool {
        self.live * 100 < self.control.len() * SPARSE
            && capacity_for(self.live) < self.control.len()
    }

    /// Adds `entry` for a key with `tag` that is not in the table; there
    /// must be room ([`Self::make_room`]). Returns its position.
    pub(crate) fn insert(&mut self, tag: u32, entry: Packed) -> usize {
        debug_assert!(self.fits(1));
        let mut i = self.home(entry.home_bits());
        while self.control[i] >= IN_USE {
            i = self.next(i);
        }
        if self.control[i] == EMPTY {
            self.used += 1;
        }
        self.control[i] = control_of(tag);
        self.entries[i] = entry;
        self.live += 1;
        i
    }

    /// Removes the key at `position`; returns its entry.
    pub(crate) fn remove_at(&mut self, position: usize) -> Packed {
        debug_assert!(self.control[position] >= IN_USE);
        self.control[position] = TOMBSTONE;
        self.live -= 1;
        self.entries[position]
    }

    /// Moves every live entry into a table of `capacity` slots, in slot
    /// order (tombstones dropped).
    fn rebuild(&mut self, capacity: usize) {
        let control = std::mem::replace(&mut self.control, written_out(capacity, EMPTY));
        let entries =
            std::mem::replace(&mut self.entries, written_out(capacity, Packed::default()));
        self.live = 0;
        self.used = 0;
        for (control, entry) in control.into_iter().zip(entries) {
            if control >= IN_USE {
                // The control byte is the tag's low byte (or 2 for 0 and
                // 1, which stays 2): all `insert` takes from the tag.
                self.insert(u32::from(control), entry);
            }
        }
    }

    /// The live entries with their positions.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Packed)> {
        self.control
            .iter()
            .zip(&self.entries)
            .enumerate()
            .filter(|(_, (c, _))| **c >= IN_USE)
            .map(|(i, (_, e))| (i, e))
    }

    /// The live entries, to repoint their keys (arena compaction).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Packed> {
        self.control
            .iter()
            .zip(self.entries.iter_mut())
            .filter(|(c, _)| **c >= IN_USE)
            .map(|(_, e)| e)
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.control.capacity() + self.entries.capacity() * size_of::<Packed>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A table with a model beside it: id (kept in the entry's key word)
    /// -> tag.
    #[derive(Default)]
    struct Checked {
        table: Table,
        tags: HashMap<u32, u32>,
    }

    impl Checked {
        fn insert(&mut self, id: u32, tag: u32) {
            self.table.make_room(1);
            self.table.insert(tag, Packed::new(id, tag));
            self.tags.insert(id, tag);
        }

        fn find(&self, id: u32) -> Option<usize> {
            let tag = *self.tags.get(&id)?;
            self.table.find(tag, |e| e.key == id)
        }
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

        /// The table agrees with a map through inserts, removals and
        /// rebuilds, with tags from a small range so that control bytes
        /// collide, clusters are long and wrap around the end.
        #[test]
        fn finds_exactly_the_keys_it_holds(ops in proptest::collection::vec((any::<bool>(), 0u32..300, 0u32..6), 1..800)) {
            let mut c = Checked::default();
            for (add, id, salt) in ops {
                let present = c.find(id);
                prop_assert_eq!(present.is_some(), c.tags.contains_key(&id));
                match (add, present) {
                    (true, None) => c.insert(id, u32::MAX - salt * 0x0001_0040 - id % 2),
                    (false, Some(position)) => {
                        prop_assert_eq!(c.table.remove_at(position).key, id);
                        c.tags.remove(&id);
                    }
                    _ => {}
                }
                prop_assert_eq!(c.table.len(), c.tags.len());
                prop_assert_eq!(c.table.iter().count(), c.tags.len());
                prop_assert!(within_load(c.table.used, c.table.capacity()) || c.table.capacity() == 0);
            }
            for &id in c.tags.keys() {
                prop_assert!(c.find(id).is_some());
            }
        }
    }

    #[test]
    fn rebuilds_keep_it_between_78_and_92_percent_full_and_keep_every_key() {
        let mut c = Checked::default();
        let mut fills = Vec::new();
        let tag = |id: u32| id.wrapping_mul(0x9E37_79B9);
        for id in 0..200_000u32 {
            c.insert(id, tag(id));
            if id > 1_000 {
                fills.push(c.table.used as f64 / c.table.capacity() as f64);
            }
        }
        let (lo, hi) = fills
            .iter()
            .fold((1.0f64, 0.0f64), |(lo, hi), &f| (lo.min(f), hi.max(f)));
        assert!(lo >= 0.77 && hi <= 0.92, "fill {lo:.3}..{hi:.3}");
        assert!((0..200_000).all(|id| c.find(id).is_some()));
        assert_eq!(c.find(200_000), None);
    }

    /// A reservation holds that many keys without another rebuild; one too
    /// large is undone by `shrink_to_fit`, which keeps every key, and a
    /// table full enough is left as it is.
    #[test]
    fn a_reservation_is_used_then_shrunk_if_too_large() {
        let tag = |id: u32| id.wrapping_mul(0x9E37_79B9);
        let mut c = Checked::default();
        c.table.reserve(10_000);
        let reserved = c.table.capacity();
        assert_eq!(reserved, (10_000 * 100usize).div_ceil(RESERVED_LOAD));
        for id in 0..10_000u32 {
            c.insert(id, tag(id));
        }
        assert_eq!(
            c.table.capacity(),
            reserved,
            "no rebuild within the reservation"
        );
        c.table.shrink_to_fit();
        assert_eq!(c.table.capacity(), reserved, "85% full: not sparse");
        // A smaller reservation changes nothing.
        c.table.reserve(5_000);
        assert_eq!(c.table.capacity(), reserved);
        // Four times too large: shrunk back to the usual load.
        let mut sparse = Checked::default();
        sparse.table.reserve(40_000);
        for id in 0..10_000u32 {
            sparse.insert(id, tag(id));
        }
        sparse.table.shrink_to_fit();
        assert_eq!(sparse.table.capacity(), capacity_for(10_000));
        assert!((0..10_000).all(|id| sparse.find(id).is_some()));
        assert_eq!(sparse.find(10_000), None);
        // Nothing reserved, nothing held: nothing to do.
        let mut empty = Table::default();
        empty.shrink_to_fit();
        assert_eq!(empty.capacity(), 0);
    }
}
