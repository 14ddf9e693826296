//! One key's entry, packed into 20 bytes: where the key's bytes are and
//! where its newest record is.
//!
//! Five 32-bit words: the key's arena offset; a 16-bit index into the
//! shard's file table ([`super::files`]) beside 16 bits of the key's tag;
//! the record's offset and length, 31 bits each, with a flag in each top
//! bit (the entry has an expiry in the shard's expiry map; its seq is in
//! the shard's overflow map); and the seq as a 28-bit delta from its
//! file's base beside 4 more bits of the tag. The 20 bits of tag are its
//! top 20, which place the key in the table, so the table is rebuilt
//! without hashing any key again. An entry whose file has no row (the
//! shard already points into 65,535 files) keeps its file id and its seq
//! in the shard's side maps.

/// File-table index meaning "no row: the file id and the seq are in the
/// shard's side maps".
pub(crate) const NO_ROW: u16 = u16::MAX;

/// Bits of the tag an entry keeps (its top ones): the key's home.
pub(crate) const HOME_BITS: u32 = 20;

/// Bits of a seq delta.
pub(crate) const DELTA_BITS: u32 = 28;

const TOP: u32 = 1 << 31;
const DELTA_MASK: u32 = (1 << DELTA_BITS) - 1;

/// A packed entry (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    /// The key's offset in the shard's arena.
    pub key: u32,
    /// File-table index (low 16 bits) and the tag's top 16 bits.
    file_and_home: u32,
    /// Record offset (31 bits); top bit: the entry has an expiry.
    offset_and_expires: u32,
    /// Record length (31 bits); top bit: the seq is in the overflow map.
    len_and_overflow: u32,
    /// The seq minus the file's base (low 28 bits) and tag bits 12..16.
    delta_and_home: u32,
}

impl Packed {
    /// A new entry for the key at `key` whose tag is `tag`.
    pub(crate) fn new(key: u32, tag: u32) -> Self {
        Self {
            key,
            file_and_home: tag & 0xFFFF_0000 | u32::from(NO_ROW),
            delta_and_home: (tag >> 12 & 0xF) << DELTA_BITS,
            ..Self::default()
        }
    }

    /// The top [`HOME_BITS`] bits of the key's tag.
    pub(crate) fn home_bits(&self) -> u32 {
        (self.file_and_home >> 16) << 4 | self.delta_and_home >> DELTA_BITS
    }

    /// The seq minus the file's base.
    pub(crate) fn seq_delta(&self) -> u32 {
        self.delta_and_home & DELTA_MASK
    }

    /// Sets the seq delta (below 2^28).
    pub(crate) fn set_seq_delta(&mut self, delta: u32) {
        debug_assert!(delta <= DELTA_MASK);
        self.delta_and_home = (self.delta_and_home & !DELTA_MASK) | (delta & DELTA_MASK);
    }

    /// Index into the shard's file table, or [`NO_ROW`].
    pub(crate) fn file(&self) -> u16 {
        self.file_and_home as u16
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

    /// Sets where the record is and the two flags.
    ///
    /// # Panics
    /// If `offset` or `len` reach 2^31 (files are at most 2 GiB, see
    /// `MAX_FILE_SIZE_LIMIT`, so neither does).
    pub(crate) fn set_place(
        &mut self,
        file: u16,
        offset: u32,
        len: u32,
        expires: bool,
        overflows: bool,
    ) {
        assert!(offset < TOP && len < TOP, "record place beyond 2 GiB");
        self.file_and_home = (self.file_and_home & 0xFFFF_0000) | u32::from(file);
        self.offset_and_expires = offset | if expires { TOP } else { 0 };
        self.len_and_overflow = len | if overflows { TOP } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_twenty_bytes_and_its_fields_round_trip() {
        assert_eq!(size_of::<Packed>(), 20);
        let mut p = Packed::new(77, 0xABCD_E234);
        assert_eq!((p.home_bits(), p.file()), (0xA_BCDE, NO_ROW));
        p.set_place(NO_ROW - 1, TOP - 1, TOP - 2, true, false);
        p.set_seq_delta(DELTA_MASK);
        assert_eq!(
            (
                p.key,
                p.home_bits(),
                p.file(),
                p.offset(),
                p.len(),
                p.seq_delta()
            ),
            (77, 0xA_BCDE, NO_ROW - 1, TOP - 1, TOP - 2, DELTA_MASK)
        );
        assert!(p.expires() && !p.seq_overflows());
        p.set_place(3, 0, 5, false, true);
        p.set_seq_delta(9);
        assert_eq!(
            (p.home_bits(), p.file(), p.offset(), p.len(), p.seq_delta()),
            (0xA_BCDE, 3, 0, 5, 9)
        );
        assert!(!p.expires() && p.seq_overflows());
    }
}
