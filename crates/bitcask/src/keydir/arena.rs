//! The key arena: one shard's single copy of each key's bytes.
//!
//! Keys are appended in turn, each behind a LEB128 header holding
//! `len << 1 | dead`; a key is named by the offset of its header (a
//! [`KeyRef`]). A 16-byte key costs 17 bytes and no allocation of its own.
//! Removing a key only sets its dead bit; once dead bytes outweigh live
//! ones the shard copies its live keys into a fresh arena
//! ([`KeyArena::should_compact`]), so the arena stays within about twice
//! its live size.
//!
//! The bytes are kept in fixed 64 KiB chunks rather than one growing
//! vector: nothing is ever copied to grow (a vector grown by a quarter
//! copies each byte about four times and leaves up to a fifth unused), and
//! the spare room is at most the last chunk's tail. A key never spans two
//! chunks; one longer than a chunk gets a chunk of its own, as many chunk
//! lengths long as it needs, whose address range it fills alone.
//!
//! Hand-written rather than a crate: what is needed is an append-only byte
//! log with one flag per entry, a few dozen lines; interners and slab
//! crates add a per-key allocation or a hash map, which is the memory this
//! module exists to save.

/// Offset of a key's entry in its shard's arena: 32 bits, so a shard's
/// arena holds at most 4 GiB of keys (64 GiB across the shards).
pub(crate) type KeyRef = u32;

/// Chunk length, as a power of two.
const CHUNK_BITS: u32 = 16;
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;
/// Most chunk lengths of address space a shard may use, so that every
/// offset, a chunk's start shifted up, fits a [`KeyRef`]. A handful in
/// unit tests, so that they can fill an arena.
const MAX_CHUNKS: usize = if cfg!(test) {
    64
} else {
    (1 << (32 - CHUNK_BITS)) - 1
};

/// Chunks a write may fill a shard's arena to: seven eighths of them. The
/// rest is the margin that lets the same keys load again at the next open,
/// where they may pack differently (in another order, leaving other gaps
/// at chunk ends) and, with the hash seeded anew, fall into other shards:
/// a store whose fullest shard is at seven eighths has shards of at most
/// that on average, and one shard holding an eighth more than the average
/// takes keys of megabytes (a shard near its limit holds thousands).
const WRITE_CHUNKS: usize = MAX_CHUNKS - MAX_CHUNKS / 8;

/// Chunks a shard's arena may still add before the key directory checks
/// each write's new keys exactly ([`KeyArena::fits`]): 256 MiB of keys.
/// A write whose keys could need more is checked too.
pub(crate) const RESERVE_CHUNKS: usize = if cfg!(test) { 4 } else { 4096 };

/// A shard's arena holds as many key bytes as it can address: the key was
/// not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArenaFull;

/// Dead bytes below this never trigger a compaction (small shards). Tiny
/// in unit tests, so that every test that deletes compacts too.
const COMPACT_MIN_DEAD: usize = if cfg!(test) { 256 } else { 64 * 1024 };

/// Append-only storage of one shard's keys.
#[derive(Debug, Default)]
pub(crate) struct KeyArena {
    /// Chunk `i` holds offsets from `i << CHUNK_BITS`; a long key's chunk
    /// is followed by empty placeholders for the rest of its range.
    chunks: Vec<Box<[u8]>>,
    /// Where the next key goes.
    end: usize,
    /// Bytes of entries written (live and dead).
    held: usize,
    /// Bytes of entries whose key was removed.
    dead: usize,
}

impl KeyArena {
    /// Appends `key`; returns where it is, or [`ArenaFull`] (and changes
    /// nothing) if the shard's arena would pass 4 GiB.
    pub(crate) fn push(&mut self, key: &[u8]) -> Result<KeyRef, ArenaFull> {
        let header = (key.len() as u64) << 1;
        let need = entry_len(key);
        let Placement { at, spans, next } =
            place(self.end, self.chunks.len(), need, MAX_CHUNKS).ok_or(ArenaFull)?;
        if spans > 0 {
            // A new chunk, long enough for the key.
            self.chunks.push(vec![0; spans * CHUNK].into_boxed_slice());
            self.chunks.extend((1..spans).map(|_| Box::default()));
        }
        let chunk = &mut self.chunks[at >> CHUNK_BITS];
        let mut i = at & (CHUNK - 1);
        let mut rest = header;
        loop {
            let byte = (rest & 0x7F) as u8;
            rest >>= 7;
            if rest == 0 {
                chunk[i] = byte;
                i += 1;
                break;
            }
            chunk[i] = byte | 0x80;
            i += 1;
        }
        chunk[i..i + key.len()].copy_from_slice(key);
        self.held += need;
        self.end = next;
        Ok(at as KeyRef)
    }

    /// Whether a write may add `keys`: pushing them in turn would keep the
    /// arena within [`WRITE_CHUNKS`].
    pub(crate) fn fits<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> bool {
        self.fits_within(keys, WRITE_CHUNKS)
    }

    /// Whether pushing `keys` in turn would keep the arena within `limit`
    /// chunks (the same placement as [`Self::push`], without writing).
    fn fits_within<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>, limit: usize) -> bool {
        let (mut end, mut chunks) = (self.end, self.chunks.len());
        for key in keys {
            let Some(placement) = place(end, chunks, entry_len(key), limit) else {
                return false;
            };
            chunks += placement.spans;
            end = placement.next;
        }
        true
    }

    /// Whether fewer than [`RESERVE_CHUNKS`] chunks are left before a
    /// write's limit.
    pub(crate) fn near_limit(&self) -> bool {
        self.chunks.len() + RESERVE_CHUNKS > WRITE_CHUNKS
    }

    /// Bytes of the dead entries (what a compaction would free, before
    /// the gaps at chunk ends).
    pub(crate) fn dead_bytes(&self) -> usize {
        self.dead
    }

    /// The chunk holding the entry at `at`, from that entry on.
    fn from(&self, at: KeyRef) -> &[u8] {
        let at = at as usize;
        &self.chunks[at >> CHUNK_BITS][at & (CHUNK - 1)..]
    }

    /// The header value (`len << 1 | dead`) and the header's length.
    fn header(&self, at: KeyRef) -> (u64, usize) {
        let mut value = 0u64;
        let mut shift = 0;
        for (i, &byte) in self.from(at).iter().enumerate() {
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return (value, i + 1);
            }
            shift += 7;
        }
        unreachable!("a key reference points at a whole arena entry")
    }

    /// The bytes of the key at `at`.
    pub(crate) fn get(&self, at: KeyRef) -> &[u8] {
        let (header, header_len) = self.header(at);
        &self.from(at)[header_len..header_len + (header >> 1) as usize]
    }

    /// Whether the key at `at` was removed.
    pub(crate) fn is_dead(&self, at: KeyRef) -> bool {
        // The dead bit is bit 0 of the header's first byte.
        self.from(at)[0] & 1 == 1
    }

    /// Marks the key at `at` removed; its bytes stay until a compaction.
    pub(crate) fn kill(&mut self, at: KeyRef) {
        if self.is_dead(at) {
            return;
        }
        let (header, header_len) = self.header(at);
        let at = at as usize;
        self.chunks[at >> CHUNK_BITS][at & (CHUNK - 1)] |= 1;
        self.dead += header_len + (header >> 1) as usize;
    }

    /// Whether enough of the arena is dead that copying the live keys out
    /// pays: dead bytes over half of it, and not trivially few.
    pub(crate) fn should_compact(&self) -> bool {
        self.dead >= COMPACT_MIN_DEAD && self.dead * 2 > self.held
    }

    /// Bytes allocated, spare room included.
    #[cfg(test)]
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// Bytes held (live and dead entries; not the spare room).
    #[cfg(test)]
    pub(crate) fn len_bytes(&self) -> usize {
        self.held
    }
}

/// Bytes `key`'s entry takes: its header and its bytes.
fn entry_len(key: &[u8]) -> usize {
    varint_len((key.len() as u64) << 1) + key.len()
}

/// Where an entry goes: [`place`]'s answer.
struct Placement {
    /// Its offset.
    at: usize,
    /// Chunk lengths added for it (0 when it fits the last chunk).
    spans: usize,
    /// Where the entry after it starts.
    next: usize,
}

/// Where an entry of `need` bytes goes in an arena whose next entry would
/// start at `end` and which has `chunks` chunks, or `None` past `limit`
/// chunks: the one placement rule of [`KeyArena::push`] and
/// [`KeyArena::fits`]. A key never spans two chunks; a long one gets a
/// chunk of its own, as many chunk lengths long as it needs, and the key
/// after it starts a fresh chunk.
fn place(end: usize, chunks: usize, need: usize, limit: usize) -> Option<Placement> {
    if end >> CHUNK_BITS < chunks && need <= CHUNK - (end & (CHUNK - 1)) {
        return Some(Placement {
            at: end,
            spans: 0,
            next: end + need,
        });
    }
    let spans = need.div_ceil(CHUNK).max(1);
    let at = chunks << CHUNK_BITS;
    let next = if spans > 1 {
        (chunks + spans) << CHUNK_BITS
    } else {
        at + need
    };
    (chunks + spans <= limit).then_some(Placement { at, spans, next })
}

/// Length of `value` as a LEB128 varint.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_header_length_round_trip() {
        let mut arena = KeyArena::default();
        let keys: Vec<Vec<u8>> = [0usize, 1, 16, 63, 64, 127, 8_191, 8_192, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 31 % 251) as u8).collect())
            .collect();
        let refs: Vec<KeyRef> = keys.iter().map(|k| arena.push(k).expect("room")).collect();
        for (key, &at) in keys.iter().zip(&refs) {
            assert_eq!(arena.get(at), key.as_slice());
            assert!(!arena.is_dead(at));
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
    }

    #[test]
    fn killing_marks_dead_keeps_bytes_and_counts_once() {
        let mut arena = KeyArena::default();
        let a = arena.push(b"alpha").expect("room");
        let b = arena.push(b"beta").expect("room");
        arena.kill(a);
        arena.kill(a);
        assert!(arena.is_dead(a));
        assert!(!arena.is_dead(b));
        assert_eq!(arena.get(a), b"alpha", "bytes stay for ordered runs");
        assert_eq!(arena.dead, 6);
        assert!(!arena.should_compact(), "too few dead bytes to bother");
        let big = vec![7u8; COMPACT_MIN_DEAD];
        let c = arena.push(&big).expect("room");
        arena.kill(c);
        assert!(arena.should_compact());
        assert!(arena.len_bytes() > COMPACT_MIN_DEAD);
    }

    #[test]
    fn keys_never_span_chunks_and_long_keys_get_their_own() {
        let mut arena = KeyArena::default();
        let mut refs = Vec::new();
        // Keys of 1,000 bytes leave a tail in each chunk; a key of three
        // chunks' length sits between them.
        for i in 0..200usize {
            let len = if i == 100 { 3 * CHUNK + 5 } else { 1_000 };
            let key: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            refs.push((arena.push(&key).expect("room"), key));
        }
        for (at, key) in &refs {
            assert_eq!(arena.get(*at), key.as_slice());
            let start = *at as usize & (CHUNK - 1);
            assert!(
                key.len() > CHUNK || start + key.len() + 2 <= CHUNK,
                "spans chunks"
            );
        }
        let (long_at, _) = &refs[100];
        assert_eq!(
            *long_at as usize & (CHUNK - 1),
            0,
            "a long key starts its chunk"
        );
        assert!(
            refs[101].0 as usize >= (*long_at as usize) + 4 * CHUNK,
            "and fills its range"
        );
        arena.kill(refs[100].0);
        assert!(arena.is_dead(refs[100].0) && !arena.is_dead(refs[99].0));
        assert!(arena.capacity_bytes() < arena.len_bytes() + 2 * CHUNK);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// `fits_within` the limit says what `push` will do, a write's limit
        /// is lower, a full arena refuses without changing, and every key
        /// pushed reads back.
        #[test]
        fn fits_foretells_push_up_to_the_limit(
            lens in proptest::collection::vec(
                proptest::prop_oneof![0usize..100, 60_000usize..70_000, 100_000usize..300_000],
                1..120,
            ),
        ) {
            let mut arena = KeyArena::default();
            let mut kept = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                let key: Vec<u8> = (0..*len).map(|j| (i * 7 + j) as u8).collect();
                let fits = arena.fits_within([key.as_slice()], MAX_CHUNKS);
                let write_may = arena.fits([key.as_slice()]);
                proptest::prop_assert!(fits || !write_may, "a write's limit is the lower");
                let (held, end, chunks) = (arena.held, arena.end, arena.chunks.len());
                match arena.push(&key) {
                    Ok(at) => {
                        proptest::prop_assert!(fits);
                        kept.push((at, key));
                    }
                    Err(ArenaFull) => {
                        proptest::prop_assert!(!fits);
                        proptest::prop_assert_eq!(
                            (arena.held, arena.end, arena.chunks.len()),
                            (held, end, chunks)
                        );
                    }
                }
                proptest::prop_assert!(arena.chunks.len() <= MAX_CHUNKS);
            }
            for (at, key) in &kept {
                proptest::prop_assert_eq!(arena.get(*at), key.as_slice());
            }
            // A run of keys: `fits` of all of them is pushing them in turn.
            let rest: Vec<Vec<u8>> = lens.iter().map(|&n| vec![1; n]).collect();
            let fits = arena.fits_within(rest.iter().map(Vec::as_slice), MAX_CHUNKS);
            let pushed = rest.iter().all(|key| arena.push(key).is_ok());
            proptest::prop_assert_eq!(fits, pushed);
        }
    }
}
