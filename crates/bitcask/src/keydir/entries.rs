//! One key's entry, packed into 20 bytes: where the key's bytes are and
//! where its newest record is.
//!
//! Five 32-bit words: the key's arena offset; a 16-bit index into the
//! shard's file table ([`super::files`]) beside the top 16 bits of the
//! key's tag (which place the key in the table, so the table can be
//! rebuilt without hashing any key again); the record's offset and length,
//! 31 bits each, with a flag in each top bit (the entry has an expiry in
//! the shard's expiry map; its seq is in the shard's overflow map); and the
//! seq as a 32-bit delta from its file's base. An entry whose file has no
//! row (the shard already points into 65,535 files) keeps the file id
//! itself in the last word and its seq in the overflow map.

/// File-table index meaning "no row: the file id is in the seq word".
pub(crate) const NO_ROW: u16 = u16::MAX;

const TOP: u32 = 1 << 31;

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
    /// The seq minus the file's base; the file id for [`NO_ROW`].
    pub seq_word: u32,
}

impl Packed {
    /// A new entry for the key at `key` whose tag is `tag`.
    pub(crate) fn new(key: u32, tag: u32) -> Self {
        Self {
            key,
            file_and_home: tag & 0xFFFF_0000 | u32::from(NO_ROW),
            ..Self::default()
        }
    }

    /// The top 16 bits of the key's tag.
    pub(crate) fn home_bits(&self) -> u16 {
        (self.file_and_home >> 16) as u16
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
        let mut p = Packed::new(77, 0xABCD_1234);
        assert_eq!((p.home_bits(), p.file()), (0xABCD, NO_ROW));
        p.set_place(NO_ROW - 1, TOP - 1, TOP - 2, true, false);
        assert_eq!(
            (p.key, p.home_bits(), p.file(), p.offset(), p.len()),
            (77, 0xABCD, NO_ROW - 1, TOP - 1, TOP - 2)
        );
        assert!(p.expires() && !p.seq_overflows());
        p.set_place(3, 0, 5, false, true);
        assert_eq!(
            (p.home_bits(), p.file(), p.offset(), p.len()),
            (0xABCD, 3, 0, 5)
        );
        assert!(!p.expires() && p.seq_overflows());
    }
}
