//! The key arena: one shard's single copy of each key's bytes.
//!
//! Keys are appended to one growing byte vector, each behind a LEB128
//! header holding `len << 1 | dead`; a key is named by the offset of its
//! header (a [`KeyRef`]). A 16-byte key costs 17 bytes and no allocation of
//! its own. Removing a key only sets its dead bit; once dead bytes outweigh
//! live ones the shard copies its live keys into a fresh arena
//! ([`KeyArena::should_compact`]), so the arena stays within about twice
//! its live size.
//!
//! Hand-written rather than a crate: what is needed is an append-only byte
//! log with one flag per entry, a few dozen lines; interners and slab
//! crates add a per-key allocation or a hash map, which is the memory this
//! module exists to save.

/// Offset of a key's entry in its shard's arena.
pub(crate) type KeyRef = u64;

/// Dead bytes below this never trigger a compaction (small shards). Tiny
/// in unit tests, so that every test that deletes compacts too.
const COMPACT_MIN_DEAD: usize = if cfg!(test) { 256 } else { 64 * 1024 };

/// Append-only storage of one shard's keys.
#[derive(Debug, Default)]
pub(crate) struct KeyArena {
    bytes: Vec<u8>,
    /// Bytes of entries whose key was removed.
    dead: usize,
}

impl KeyArena {
    /// Appends `key`; returns where it is.
    pub(crate) fn push(&mut self, key: &[u8]) -> KeyRef {
        let at = self.bytes.len();
        let header = (key.len() as u64) << 1;
        reserve_gently(&mut self.bytes, varint_len(header) + key.len());
        let mut rest = header;
        loop {
            let byte = (rest & 0x7F) as u8;
            rest >>= 7;
            if rest == 0 {
                self.bytes.push(byte);
                break;
            }
            self.bytes.push(byte | 0x80);
        }
        self.bytes.extend_from_slice(key);
        at as KeyRef
    }

    /// The header value (`len << 1 | dead`) and the header's length.
    fn header(&self, at: KeyRef) -> (u64, usize) {
        let at = at as usize;
        let mut value = 0u64;
        let mut shift = 0;
        for (i, &byte) in self.bytes[at..].iter().enumerate() {
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
        let start = at as usize + header_len;
        &self.bytes[start..start + (header >> 1) as usize]
    }

    /// Whether the key at `at` was removed.
    pub(crate) fn is_dead(&self, at: KeyRef) -> bool {
        // The dead bit is bit 0 of the header's first byte.
        self.bytes[at as usize] & 1 == 1
    }

    /// Marks the key at `at` removed; its bytes stay until a compaction.
    pub(crate) fn kill(&mut self, at: KeyRef) {
        if self.is_dead(at) {
            return;
        }
        let (header, header_len) = self.header(at);
        self.bytes[at as usize] |= 1;
        self.dead += header_len + (header >> 1) as usize;
    }

    /// Whether enough of the arena is dead that copying the live keys out
    /// pays: dead bytes over half of it, and not trivially few.
    pub(crate) fn should_compact(&self) -> bool {
        self.dead >= COMPACT_MIN_DEAD && self.dead * 2 > self.bytes.len()
    }

    /// Bytes allocated, spare capacity included.
    #[cfg(test)]
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Bytes held (live and dead entries; not the spare capacity).
    #[cfg(test)]
    pub(crate) fn len_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Length of `value` as a LEB128 varint.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Makes room for `more` elements, growing by a quarter rather than
/// doubling: the arena and the ordered runs are most of the key directory's
/// memory, and a doubling vector leaves up to half of it unused. A quarter
/// still keeps appends amortised O(1) (each element is copied at most about
/// four more times over the vector's life).
pub(crate) fn reserve_gently<T>(vec: &mut Vec<T>, more: usize) {
    if vec.capacity() - vec.len() < more {
        vec.reserve_exact(more.max(vec.capacity() / 4).max(64));
    }
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
        let refs: Vec<KeyRef> = keys.iter().map(|k| arena.push(k)).collect();
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
        let a = arena.push(b"alpha");
        let b = arena.push(b"beta");
        arena.kill(a);
        arena.kill(a);
        assert!(arena.is_dead(a));
        assert!(!arena.is_dead(b));
        assert_eq!(arena.get(a), b"alpha", "bytes stay for ordered runs");
        assert_eq!(arena.dead, 6);
        assert!(!arena.should_compact(), "too few dead bytes to bother");
        let big = vec![7u8; COMPACT_MIN_DEAD];
        let c = arena.push(&big);
        arena.kill(c);
        assert!(arena.should_compact());
        assert!(arena.len_bytes() > COMPACT_MIN_DEAD);
    }
}
