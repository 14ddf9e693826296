//! One shard's entries, dense and numbered: where each live key's newest
//! record is, packed into 20 bytes.
//!
//! An entry is found by its number (what the hash index holds). Numbers of
//! removed entries go on a free list and are handed out again, so the
//! array stays as long as the most keys the shard has held at once. The
//! array is kept in fixed chunks rather than one vector: it never moves
//! (no copy of the whole array while a shard's lock is held, no slack of a
//! doubling vector), and a new chunk costs only the pages that are written.
//!
//! A packed entry holds (see [`Packed`]) the key's place in the arena, a
//! 24-bit index into the shard's file table ([`super::files`]) instead of
//! the 32-bit file id, the record's offset and length (31 bits each, with a
//! flag in each top bit) and the sequence number as a 32-bit delta from
//! the file's base; 8 more bits of the key's hash let a lookup reject most
//! wrong candidates without reading the arena.

/// Entries per chunk: 20 KiB, small enough that a shard's last, partly
/// used chunk is a rounding error, large enough that the chunk table is.
const CHUNK: usize = 1024;

/// Largest entry number: the hash index keeps 24 bits of it.
pub(crate) const MAX_NUMBER: u32 = (1 << 24) - 1;

/// A packed entry, five words (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The key's offset in the shard's arena.
    pub key: u32,
    /// File-table index (low 24 bits) and 8 check bits of the key's hash.
    file_and_check: u32,
    /// Record offset (31 bits); top bit: the entry has an expiry.
    offset_and_expires: u32,
    /// Record length (31 bits); top bit: the seq is in the overflow map.
    len_and_overflow: u32,
    /// Sequence number minus the file's base.
    pub seq_delta: u32,
}

const TOP: u32 = 1 << 31;

impl Packed {
    /// A new entry for the key at `key` whose hash gives `check`.
    pub(crate) fn new(key: u32, check: u8) -> Self {
        Self {
            key,
            file_and_check: u32::from(check) << 24,
            ..Self::default()
        }
    }

    /// The 8 check bits of the key's hash.
    pub(crate) fn check(&self) -> u8 {
        (self.file_and_check >> 24) as u8
    }

    /// Index into the shard's file table.
    pub(crate) fn file(&self) -> u32 {
        self.file_and_check & 0x00FF_FFFF
    }

    /// Record offset in the file.
    pub(crate) fn offset(&self) -> u32 {
        self.offset_and_expires & !TOP
    }

    /// Record length.
    pub(crate) fn len(&self) -> u32 {
        self.len_and_overflow & !TOP
    }

    /// Whether the entry's expiry time is in the shard's expiry map.
    pub(crate) fn expires(&self) -> bool {
        self.offset_and_expires & TOP != 0
    }

    /// Whether the entry's seq is in the shard's overflow map.
    pub(crate) fn seq_overflows(&self) -> bool {
        self.len_and_overflow & TOP != 0
    }

    /// Sets where the record is and the two flags. `offset` and `len` are
    /// below 2^31 (files are at most 2 GiB, see `MAX_FILE_SIZE_LIMIT`).
    pub(crate) fn set_place(
        &mut self,
        file: u32,
        offset: u32,
        len: u32,
        expires: bool,
        overflows: bool,
    ) {
        debug_assert!(file < 1 << 24 && offset < TOP && len < TOP);
        self.file_and_check = (self.file_and_check & 0xFF00_0000) | file;
        self.offset_and_expires = offset | if expires { TOP } else { 0 };
        self.len_and_overflow = len | if overflows { TOP } else { 0 };
    }
}

/// Marks a free entry (in its `key` word); arena offsets stay below it.
const FREE: u32 = u32::MAX;

/// The numbered entries of one shard.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    chunks: Vec<Box<[Packed]>>,
    /// Numbers handed out so far (the used prefix of the chunks).
    end: u32,
    /// Numbers below `end` that are free.
    free: Vec<u32>,
}

impl Entries {
    /// Stores `entry` under a free number and returns it.
    ///
    /// # Panics
    /// If the shard already holds `MAX_NUMBER + 1` entries (16.7 million:
    /// 268 million keys across the shards).
    pub(crate) fn add(&mut self, entry: Packed) -> u32 {
        debug_assert_ne!(entry.key, FREE);
        let number = match self.free.pop() {
            Some(number) => number,
            None => {
                assert!(
                    self.end <= MAX_NUMBER,
                    "a key directory shard holds at most 2^24 keys"
                );
                if self.end as usize == self.chunks.len() * CHUNK {
                    self.chunks
                        .push(vec![Packed::default(); CHUNK].into_boxed_slice());
                }
                self.end += 1;
                self.end - 1
            }
        };
        *self.at_mut(number) = entry;
        number
    }

    /// Frees `number`; its entry must not be looked at again.
    pub(crate) fn remove(&mut self, number: u32) {
        self.at_mut(number).key = FREE;
        self.free.push(number);
    }

    /// The entry numbered `number`.
    pub(crate) fn at(&self, number: u32) -> &Packed {
        let n = number as usize;
        &self.chunks[n / CHUNK][n % CHUNK]
    }

    /// The entry numbered `number`, to change.
    pub(crate) fn at_mut(&mut self, number: u32) -> &mut Packed {
        let n = number as usize;
        &mut self.chunks[n / CHUNK][n % CHUNK]
    }

    /// The live entries with their numbers, in number order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Packed)> {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .take(self.end as usize)
            .enumerate()
            .filter(|(_, e)| e.key != FREE)
            .map(|(n, e)| (n as u32, e))
    }

    /// The live entries, to repoint their keys (arena compaction).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Packed)> {
        self.chunks
            .iter_mut()
            .flat_map(|chunk| chunk.iter_mut())
            .take(self.end as usize)
            .enumerate()
            .filter(|(_, e)| e.key != FREE)
            .map(|(n, e)| (n as u32, e))
    }

    /// Bytes held by the chunks and the free list.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * size_of::<Packed>() + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_twenty_bytes_and_its_fields_round_trip() {
        assert_eq!(size_of::<Packed>(), 20);
        let mut p = Packed::new(77, 0xAB);
        p.set_place((1 << 24) - 1, TOP - 1, TOP - 2, true, false);
        assert_eq!(
            (p.key, p.check(), p.file(), p.offset(), p.len()),
            (77, 0xAB, (1 << 24) - 1, TOP - 1, TOP - 2)
        );
        assert!(p.expires() && !p.seq_overflows());
        p.set_place(3, 0, 5, false, true);
        assert_eq!((p.check(), p.file(), p.offset(), p.len()), (0xAB, 3, 0, 5));
        assert!(!p.expires() && p.seq_overflows());
    }

    #[test]
    fn numbers_are_reused_and_iteration_skips_free_ones() {
        let mut entries = Entries::default();
        let numbers: Vec<u32> = (0..10_000)
            .map(|i| entries.add(Packed::new(i, 0)))
            .collect();
        assert_eq!(numbers, (0..10_000).collect::<Vec<_>>());
        for n in (0..10_000).step_by(3) {
            entries.remove(n);
        }
        let live: Vec<u32> = entries.iter().map(|(n, _)| n).collect();
        assert_eq!(live, (0..10_000).filter(|n| n % 3 != 0).collect::<Vec<_>>());
        assert!(entries.iter().all(|(n, e)| e.key == n));
        let again = entries.add(Packed::new(5, 0));
        assert_eq!(again % 3, 0, "a freed number is handed out first");
        assert_eq!(entries.at(again).key, 5);
        assert_eq!(entries.end, 10_000);
    }
}
