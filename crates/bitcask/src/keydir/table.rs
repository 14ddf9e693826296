//! The hash index of one shard: an open-addressed Robin Hood table of
//! 32-byte slots.
//!
//! A slot holds 32 bits of the key's hash (the *tag*), where the key's
//! bytes are in the shard's arena, and the entry (file, offset, length,
//! version); slots are 32-byte aligned, two to a cache line, and the key is
//! not inline. Beside the slots, a 2-byte control word per slot (the tag's
//! low byte and the distance from home) is small enough to stay in the CPU
//! cache for a million keys (about 2.5 MB): a lookup reads control words
//! until one matches, then loads that one slot, so a present key costs one
//! miss on the slots and an absent key usually none. The home slot is
//! derived from the tag alone (`tag * capacity >> 32`), so the table grows
//! and deletes without hashing a key again.
//!
//! Robin Hood insertion keeps every probe short and ordered by distance
//! from home, so a lookup for an absent key stops as soon as it meets a
//! slot closer to its own home than the probe is (or an empty one);
//! deletion shifts the following slots back, leaving no tombstones. The
//! table grows by half once it is 80% full, which keeps it between about
//! 53% and 80% full.
//!
//! Hand-written rather than `hashbrown`: a `hashbrown` table of `(key,
//! entry)` pairs would keep each key twice (the ordered index needs the
//! bytes too) or behind a pointer, and its slots could not be found from
//! the tag alone on growth; the first version of this table, without
//! control words, was 2.8x slower than `hashbrown` for absent keys
//! (every probe a miss on the slots), which the control words fixed.

/// Empty-slot tag. Tags of keys are never 0 (see [`tag_of`]).
const EMPTY: u32 = 0;

/// Smallest non-empty capacity.
const MIN_CAPACITY: usize = 16;

/// The tag for a 64-bit hash: its top 32 bits, 0 moved to 1.
pub(crate) fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// One slot: a key's tag, where its bytes are, and its entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct Slot {
    /// 32 bits of the key's hash; [`EMPTY`] for a free slot.
    pub tag: u32,
    /// Low 32 bits of the key's [`KeyRef`](super::arena::KeyRef).
    key_lo: u32,
    /// Data file id.
    pub file_id: u32,
    /// Offset of the record in the file.
    pub offset: u32,
    /// Length of the whole record.
    pub len: u32,
    /// Bits 32..48 of the key's arena reference.
    key_hi: u16,
    /// [`Slot::EXPIRES`] if the key's expiry is in the shard's expiry map.
    pub flags: u16,
    /// Version (sequence number) of the record.
    pub seq: u64,
}

impl Slot {
    /// Flag: the entry has an expiry time, kept in the shard's side map.
    pub const EXPIRES: u16 = 1;

    /// An empty-entry slot for the key with `tag` whose bytes are at `key`.
    pub(crate) fn new(tag: u32, key: u64) -> Self {
        let mut slot = Self {
            tag,
            ..Self::default()
        };
        slot.set_key(key);
        slot
    }

    /// Where the key's bytes are in the arena.
    pub(crate) fn key(&self) -> u64 {
        u64::from(self.key_hi) << 32 | u64::from(self.key_lo)
    }

    /// Points the slot at the key at `at` (an arena offset below 2^48).
    pub(crate) fn set_key(&mut self, at: u64) {
        assert!(at < 1 << 48, "a shard's key arena is limited to 256 TiB");
        self.key_lo = at as u32;
        self.key_hi = (at >> 32) as u16;
    }
}

/// Control word of an empty slot.
const CTRL_EMPTY: u16 = 0;
/// Distance field meaning "this far or further: compute it from the tag".
const DISTANCE_SATURATED: u16 = 0xFF;

/// `len` copies of `value`, written out rather than taken as zeroed memory
/// from the allocator: fresh zeroed pages are mapped to the shared zero page
/// when first read, and the probes read them before writing, so each page
/// would fault twice (the second time flushing other cores' TLBs).
fn written_out<T: Copy>(len: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, value);
    v
}

/// Whether `len` keys keep a table of `capacity` slots at most 80% full
/// (the table grows past that).
fn within_load(len: usize, capacity: usize) -> bool {
    len * 5 <= capacity * 4
}

/// The Robin Hood table.
#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    /// One control word per slot: the tag's low byte above the distance
    /// from home plus one (0 = empty; saturated at 255). Two bytes a slot,
    /// small enough to stay in the CPU's cache for a million keys, so a
    /// lookup of an absent key usually touches no slot at all, and a
    /// lookup of a present key touches only its own.
    ctrl: Vec<u16>,
    len: usize,
}

impl Table {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// How far the occupied slot `i` is from its home.
    fn distance(&self, i: usize) -> usize {
        let field = self.ctrl[i] & 0xFF;
        if field != DISTANCE_SATURATED {
            return usize::from(field) - 1;
        }
        let home = self.home(self.slots[i].tag);
        if i >= home {
            i - home
        } else {
            i + self.slots.len() - home
        }
    }

    /// Puts `slot` at `i`, `distance` from its home.
    fn put(&mut self, i: usize, slot: Slot, distance: usize) {
        let field = u16::try_from(distance + 1)
            .unwrap_or(DISTANCE_SATURATED)
            .min(DISTANCE_SATURATED);
        self.ctrl[i] = (slot.tag as u16) << 8 | field;
        self.slots[i] = slot;
    }

    /// Index of the first slot with `tag` for which `is_key` holds.
    pub(crate) fn find(&self, tag: u32, mut is_key: impl FnMut(&Slot) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let low = (tag as u16) << 8;
        let mut i = self.home(tag);
        let mut probed = 0;
        loop {
            let ctrl = self.ctrl[i];
            if ctrl == CTRL_EMPTY || self.distance(i) < probed {
                return None;
            }
            if ctrl & 0xFF00 == low {
                let slot = &self.slots[i];
                if slot.tag == tag && is_key(slot) {
                    return Some(i);
                }
            }
            i = self.next(i);
            probed += 1;
        }
    }

    /// Whether some key with `tag` is in the table (keys are not
    /// compared: two keys of a shard share all 32 bits of a tag rarely).
    pub(crate) fn has_tag(&self, tag: u32) -> bool {
        self.find(tag, |_| true).is_some()
    }

    /// The slot at `i` (from [`Self::find`]).
    pub(crate) fn at(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    /// The slot at `i`, to change its entry (not its tag or key).
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i]
    }

    /// Adds `slot`, whose key must not be in the table yet.
    pub(crate) fn insert_new(&mut self, slot: Slot) {
        debug_assert_ne!(slot.tag, EMPTY);
        if !self.fits(1) {
            self.grow();
        }
        self.place(slot);
        self.len += 1;
    }

    /// Robin Hood placement: walk from home; whenever the resident is
    /// closer to its home than the carried slot is to its own, swap.
    fn place(&mut self, mut carried: Slot) {
        let mut i = self.home(carried.tag);
        let mut probed = 0;
        loop {
            if self.ctrl[i] == CTRL_EMPTY {
                self.put(i, carried, probed);
                return;
            }
            let resident_distance = self.distance(i);
            if resident_distance < probed {
                let resident = self.slots[i];
                self.put(i, carried, probed);
                carried = resident;
                probed = resident_distance;
            }
            i = self.next(i);
            probed += 1;
        }
    }

    /// Whether `additional` more keys fit without growing.
    pub(crate) fn fits(&self, additional: usize) -> bool {
        within_load(self.len + additional, self.slots.len())
    }

    /// Grows, in the same steps inserts would, until `additional` more
    /// keys fit: a load that knows how many keys it brings sizes the table
    /// once instead of growing it part-way through (which, with keys
    /// arriving in home order, would crowd the early ones together).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = self.len + additional;
        let mut capacity = self.slots.len();
        while !within_load(wanted, capacity) {
            capacity = (capacity + capacity / 2).max(MIN_CAPACITY);
        }
        if capacity != self.slots.len() {
            self.resize(capacity);
        }
    }

    /// Grows by half (to at least [`MIN_CAPACITY`]) and places every slot
    /// again. Only this shard's table is copied at a time, so the extra
    /// memory while growing is a fraction of the key directory.
    fn grow(&mut self) {
        self.resize((self.slots.len() + self.slots.len() / 2).max(MIN_CAPACITY));
    }

    /// Moves every slot into a table of `capacity` slots.
    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, written_out(capacity, Slot::default()));
        let old_ctrl = std::mem::replace(&mut self.ctrl, written_out(capacity, CTRL_EMPTY));
        for (slot, ctrl) in old.into_iter().zip(old_ctrl) {
            if ctrl != CTRL_EMPTY {
                self.place(slot);
            }
        }
    }

    /// Removes the slot at `i` and returns it; the slots after it that are
    /// away from home move back one place.
    pub(crate) fn remove_at(&mut self, mut i: usize) -> Slot {
        let removed = self.slots[i];
        loop {
            let j = self.next(i);
            if self.ctrl[j] == CTRL_EMPTY || self.distance(j) == 0 {
                self.slots[i] = Slot::default();
                self.ctrl[i] = CTRL_EMPTY;
                break;
            }
            let distance = self.distance(j) - 1;
            self.put(i, self.slots[j], distance);
            i = j;
        }
        self.len -= 1;
        removed
    }

    /// Removes every slot for which `keep` is false, passing each removed
    /// one to `removed`.
    pub(crate) fn retain(
        &mut self,
        mut keep: impl FnMut(&Slot) -> bool,
        mut removed: impl FnMut(Slot),
    ) {
        let mut i = 0;
        // A removal shifts later slots back into `i`, so `i` is looked at
        // again; a slot shifted from the front to the back wrap is looked at
        // twice, which is harmless.
        while i < self.slots.len() {
            if self.ctrl[i] != CTRL_EMPTY && !keep(&self.slots[i]) {
                removed(self.remove_at(i));
            } else {
                i += 1;
            }
        }
    }

    /// The occupied slots, in table order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.tag != EMPTY)
    }

    /// The occupied slots, to repoint their keys (arena compaction).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().filter(|s| s.tag != EMPTY)
    }

    /// Number of slots, full and empty.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn slot(tag: u32, key: u64) -> Slot {
        let mut s = Slot {
            tag: tag.max(1),
            seq: key,
            ..Slot::default()
        };
        s.set_key(key);
        s
    }

    /// Every slot sits no further from home than a probe for it reaches,
    /// and distances never jump by more than one along a cluster (the Robin
    /// Hood invariant that makes early termination correct).
    fn check_invariants(t: &Table) {
        let cap = t.slots.len();
        for i in 0..cap {
            let s = t.slots[i];
            assert_eq!(s.tag == EMPTY, t.ctrl[i] == CTRL_EMPTY);
            if s.tag == EMPTY {
                continue;
            }
            let prev = (i + cap - 1) % cap;
            let home = t.home(s.tag);
            let d = if i >= home { i - home } else { i + cap - home };
            assert_eq!(t.distance(i), d, "control word out of step");
            assert_eq!(t.ctrl[i] >> 8, s.tag as u16 & 0xFF);
            if d > 0 {
                assert_ne!(t.ctrl[prev], CTRL_EMPTY, "gap before a displaced slot");
                assert!(t.distance(prev) + 1 >= d);
            }
        }
        assert_eq!(t.iter().count(), t.len());
    }

    #[test]
    fn slots_are_32_bytes_and_aligned() {
        assert_eq!(size_of::<Slot>(), 32);
        assert_eq!(align_of::<Slot>(), 32);
    }

    #[test]
    fn same_tag_keys_are_told_apart_by_the_predicate() {
        let mut t = Table::default();
        for key in 0..50 {
            t.insert_new(slot(7, key));
        }
        for key in 0..50 {
            let i = t.find(7, |s| s.key() == key).expect("present");
            assert_eq!(t.at(i).seq, key);
        }
        assert!(t.find(7, |s| s.key() == 50).is_none());
        check_invariants(&t);
    }

    #[test]
    fn clusters_longer_than_the_control_word_counts_still_work() {
        // 600 keys with one tag: distances far past 254 (saturated).
        let mut t = Table::default();
        for key in 0..600 {
            t.insert_new(slot(u32::MAX, key));
        }
        check_invariants(&t);
        for key in (0..600).step_by(2) {
            let i = t.find(u32::MAX, |s| s.key() == key).expect("present");
            t.remove_at(i);
        }
        check_invariants(&t);
        for key in 0..600 {
            assert_eq!(t.find(u32::MAX, |s| s.key() == key).is_some(), key % 2 == 1);
        }
    }

    #[test]
    fn reserve_grows_in_the_steps_inserts_take_and_keeps_every_key() {
        let mut grown = Table::default();
        let mut reserved = Table::default();
        reserved.reserve(1_000);
        let capacity = reserved.capacity();
        for key in 0..1_000u64 {
            let tag = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            grown.insert_new(slot(tag, key));
            reserved.insert_new(slot(tag, key));
        }
        assert_eq!(reserved.capacity(), capacity, "no growth after reserving");
        assert_eq!(
            reserved.capacity(),
            grown.capacity(),
            "same size as growing"
        );
        reserved.reserve(0);
        reserved.reserve(10);
        assert_eq!(reserved.capacity(), capacity, "room enough already");
        reserved.reserve(1_000);
        assert!(reserved.capacity() > capacity);
        check_invariants(&reserved);
        for key in 0..1_000u64 {
            let tag = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            assert!(reserved.find(tag.max(1), |s| s.key() == key).is_some());
        }
    }

    #[test]
    fn keys_above_32_bits_of_arena_round_trip() {
        let mut s = Slot::default();
        s.set_key((1 << 47) + 5);
        assert_eq!(s.key(), (1 << 47) + 5);
    }

    proptest! {
        /// The table agrees with a `HashMap` through inserts, removals and
        /// `retain`, with tags drawn from a small range so that collisions,
        /// wrap-around and long clusters are common.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u64..300, 0u32..40), 1..600)) {
            let mut t = Table::default();
            let mut model: HashMap<u64, u32> = HashMap::new();
            // Tags near the top of the range land near the end of the
            // table, so clusters wrap.
            let tag_for = |key: u64, salt: u32| u32::MAX - (salt * 7 + (key as u32 % 3));
            for (op, key, salt) in ops {
                match op {
                    0 => {
                        if let std::collections::hash_map::Entry::Vacant(v) = model.entry(key) {
                            let tag = tag_for(key, salt);
                            v.insert(tag);
                            t.insert_new(slot(tag, key));
                        }
                    }
                    1 => {
                        if let Some(tag) = model.remove(&key) {
                            let i = t.find(tag, |s| s.key() == key).expect("present");
                            prop_assert_eq!(t.remove_at(i).key(), key);
                        }
                    }
                    _ => {
                        let mut gone = Vec::new();
                        t.retain(|s| s.key() % 7 != u64::from(salt) % 7, |s| gone.push(s.key()));
                        for key in gone {
                            prop_assert!(model.remove(&key).is_some());
                        }
                        prop_assert!(model.keys().all(|k| k % 7 != u64::from(salt) % 7));
                    }
                }
                check_invariants(&t);
                prop_assert_eq!(t.len(), model.len());
                prop_assert!(t.len() * 5 <= t.capacity() * 4 || t.capacity() == 0);
            }
            for (&key, &tag) in &model {
                prop_assert!(t.find(tag, |s| s.key() == key).is_some());
                prop_assert!(t.find(tag, |s| s.key() == key + 1_000).is_none());
            }
        }
    }
}
