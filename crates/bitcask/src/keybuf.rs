//! `KeyBuf`: a key as the key directory stores it, without a heap allocation
//! for short keys.
//!
//! Keys of up to 23 bytes sit inline in the 24-byte value (so a hash-table
//! probe compares bytes already in the cache line it loaded); longer keys
//! live once on the heap behind an `Arc`, shared by the hash index and the
//! ordered index. The inline length is an enum with 24 values, which leaves
//! the compiler a niche to tell the two variants apart without a separate
//! tag, so the whole type stays 24 bytes (pinned by a test).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::sync::Arc;

/// Longest key kept inline.
const INLINE_CAP: usize = 23;

/// Length of an inline key: a byte whose values above 23 are free for the
/// enum tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub(crate) enum InlineLen {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11,
    L12, L13, L14, L15, L16, L17, L18, L19, L20, L21, L22, L23,
}

#[rustfmt::skip]
const INLINE_LENS: [InlineLen; INLINE_CAP + 1] = {
    use InlineLen::*;
    [L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11,
     L12, L13, L14, L15, L16, L17, L18, L19, L20, L21, L22, L23]
};

/// A key owned by the key directory.
#[derive(Debug, Clone)]
pub(crate) enum KeyBuf {
    /// Up to 23 bytes, stored in place.
    Inline {
        /// The key, then unused zero bytes.
        bytes: [u8; INLINE_CAP],
        /// How many of `bytes` are the key.
        len: InlineLen,
    },
    /// A longer key, shared between the indexes.
    Heap(Arc<[u8]>),
}

impl KeyBuf {
    /// The key's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { bytes, len } => &bytes[..*len as usize],
            Self::Heap(bytes) => bytes,
        }
    }
}

/// A key being looked up, prepared for comparing against stored keys: a
/// short key is copied once into the inline layout, so each comparison
/// in a probe is a fixed-size compare of two 23-byte arrays (a few loads,
/// no call to `memcmp`) instead of a variable-length slice compare.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyProbe<'a> {
    /// A key of up to 23 bytes, zero-padded like [`KeyBuf::Inline`].
    Inline([u8; INLINE_CAP], InlineLen),
    /// A longer key.
    Long(&'a [u8]),
}

impl<'a> KeyProbe<'a> {
    /// The probe for `key`.
    pub(crate) fn new(key: &'a [u8]) -> Self {
        match INLINE_LENS.get(key.len()) {
            Some(&len) => {
                let mut bytes = [0u8; INLINE_CAP];
                bytes[..key.len()].copy_from_slice(key);
                Self::Inline(bytes, len)
            }
            None => Self::Long(key),
        }
    }
}

impl KeyBuf {
    /// Whether this is the probed key.
    #[inline]
    pub(crate) fn matches(&self, probe: &KeyProbe<'_>) -> bool {
        match (self, probe) {
            // Unused inline bytes are zero in both, so equal lengths and
            // equal arrays mean equal keys.
            (Self::Inline { bytes, len }, KeyProbe::Inline(other, other_len)) => {
                len == other_len && bytes == other
            }
            (Self::Heap(bytes), KeyProbe::Long(other)) => **bytes == **other,
            _ => false,
        }
    }
}

impl From<&[u8]> for KeyBuf {
    fn from(key: &[u8]) -> Self {
        match INLINE_LENS.get(key.len()) {
            Some(&len) => {
                let mut bytes = [0u8; INLINE_CAP];
                bytes[..key.len()].copy_from_slice(key);
                Self::Inline { bytes, len }
            }
            None => Self::Heap(Arc::from(key)),
        }
    }
}

impl Borrow<[u8]> for KeyBuf {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for KeyBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for KeyBuf {}

impl PartialOrd for KeyBuf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyBuf {
    // Must order exactly as `[u8]` does, because lookups borrow as `[u8]`.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            // Two inline keys: compare the zero-padded arrays as three
            // big-endian words, then the lengths. Same order as the slices:
            // up to the shorter length the words hold the same bytes; past
            // it the shorter key has zeros, which never sort after the
            // longer key's bytes, and if those are zeros too the length
            // decides (the prefix first). Three integer compares instead of
            // a `memcmp` call: the ordered index compares dozens of times
            // per insert.
            (Self::Inline { bytes: a, len: la }, Self::Inline { bytes: b, len: lb }) => {
                inline_words(a)
                    .cmp(&inline_words(b))
                    .then((*la as u8).cmp(&(*lb as u8)))
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// An inline key's bytes as big-endian words (the last one holds 7 bytes
/// and a zero), whose order is the bytes' order.
#[inline]
fn inline_words(bytes: &[u8; INLINE_CAP]) -> [u64; 3] {
    let word = |from: usize| {
        let mut w = [0u8; 8];
        let to = (from + 8).min(INLINE_CAP);
        w[..to - from].copy_from_slice(&bytes[from..to]);
        u64::from_be_bytes(w)
    };
    [word(0), word(8), word(16)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_24_bytes() {
        assert_eq!(std::mem::size_of::<KeyBuf>(), 24);
    }

    #[test]
    fn round_trips_at_every_length_around_the_inline_limit() {
        for len in [0, 1, 22, 23, 24, 25, 1000] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let buf = KeyBuf::from(&key[..]);
            assert_eq!(buf.as_slice(), &key[..]);
            assert_eq!(matches!(buf, KeyBuf::Inline { .. }), len <= INLINE_CAP);
        }
    }

    #[test]
    fn probes_match_exactly_the_same_key() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            b"a".to_vec(),
            b"a\0".to_vec(),
            vec![b'a'; 23],
            vec![b'a'; 24],
            vec![b'a'; 30],
            vec![0; 23],
            vec![0; 24],
        ];
        for a in &keys {
            for b in &keys {
                let stored = KeyBuf::from(&a[..]);
                assert_eq!(stored.matches(&KeyProbe::new(b)), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_two_keys_order_like_their_bytes(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
        ) {
            let (ka, kb) = (KeyBuf::from(&a[..]), KeyBuf::from(&b[..]));
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }
    }

    #[test]
    fn orders_like_byte_slices_across_variants() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![0; 23],
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0b".to_vec(),
            b"a\x01".to_vec(),
            vec![b'a'; 7],
            vec![b'a'; 8],
            vec![b'a'; 9],
            vec![b'a'; 16],
            vec![b'a'; 17],
            vec![b'a'; 22],
            vec![b'a'; 23],
            vec![b'a'; 24],
            vec![b'a'; 30],
            b"b".to_vec(),
            vec![0xFF; 23],
            vec![0xFF; 40],
        ];
        for a in &keys {
            for b in &keys {
                let (ka, kb) = (KeyBuf::from(&a[..]), KeyBuf::from(&b[..]));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
    }
}
