//! The record codec: one put or delete as it sits in a data file.
//!
//! Layout (see `docs/FORMAT.md`): a 29-byte header of CRC-32C, sequence
//! number, expiry, kind and the two lengths, then the key, then the value.
//! The checksum covers every byte after itself.

use crate::crc;
use crate::error::{CorruptionKind, Result, disk_u32};

const CRC_AT: usize = 0;
const SEQ_AT: usize = CRC_AT + 4;
const EXPIRES_AT: usize = SEQ_AT + 8;
const KIND_AT: usize = EXPIRES_AT + 8;
const KEY_LEN_AT: usize = KIND_AT + 1;
const VALUE_LEN_AT: usize = KEY_LEN_AT + 4;
/// Length of a record header in bytes.
pub(crate) const HEADER_LEN: usize = VALUE_LEN_AT + 4;
/// Longest mark value accepted, in bytes (see `docs/FORMAT.md`, "Marks").
pub(crate) const MAX_MARK_LEN: usize = 64 * 1024;

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// Sets the key to the record's value.
    Put = 0,
    /// Removes the key (a tombstone; the value is empty).
    Delete = 1,
    /// A put inside a batch that a later record commits.
    BatchPut = 2,
    /// A delete inside a batch that a later record commits.
    BatchDelete = 3,
    /// A mark: an application's opaque value, the last record of its
    /// write (committing the batch before it); no key.
    Mark = 4,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Result<Self, CorruptionKind> {
        match byte {
            0 => Ok(Self::Put),
            1 => Ok(Self::Delete),
            2 => Ok(Self::BatchPut),
            3 => Ok(Self::BatchDelete),
            4 => Ok(Self::Mark),
            other => Err(CorruptionKind::UnknownRecordKind(other)),
        }
    }

    /// Whether the record sets a value (as opposed to removing the key).
    pub(crate) fn is_put(self) -> bool {
        matches!(self, Self::Put | Self::BatchPut)
    }

    /// Whether the record completes its write: a plain put or delete, or the
    /// last record of a batch. Records of kind 2 and 3 wait for one.
    pub(crate) fn commits(self) -> bool {
        matches!(self, Self::Put | Self::Delete | Self::Mark)
    }

    /// The kind for one operation: plain if it commits, batch kind if not.
    pub(crate) fn for_op(is_put: bool, commits: bool) -> Self {
        match (is_put, commits) {
            (true, true) => Self::Put,
            (false, true) => Self::Delete,
            (true, false) => Self::BatchPut,
            (false, false) => Self::BatchDelete,
        }
    }
}

/// The decoded fixed-size header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// Checksum stored in the record.
    pub crc: u32,
    /// Sequence number (the version) of the write.
    pub seq: u64,
    /// Expiry in Unix milliseconds; 0 = never.
    pub expires_at_ms: u64,
    /// Put or delete.
    pub kind: RecordKind,
    /// Key length in bytes.
    pub key_len: u32,
    /// Value length in bytes.
    pub value_len: u32,
}

impl RecordHeader {
    /// Parses a header. Fails only on an unknown kind byte; the checksum is
    /// checked separately once the whole record is read.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, CorruptionKind> {
        Ok(Self {
            crc: u32::from_le_bytes(array(bytes, CRC_AT)),
            seq: u64::from_le_bytes(array(bytes, SEQ_AT)),
            expires_at_ms: u64::from_le_bytes(array(bytes, EXPIRES_AT)),
            kind: RecordKind::from_byte(bytes[KIND_AT])?,
            key_len: u32::from_le_bytes(array(bytes, KEY_LEN_AT)),
            value_len: u32::from_le_bytes(array(bytes, VALUE_LEN_AT)),
        })
    }

    /// Total length of the record this header starts: header, key and value.
    pub(crate) fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.key_len) + u64::from(self.value_len)
    }
}

/// Copies `N` bytes at `at` out of a header buffer.
fn array<const N: usize>(bytes: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Length of the record that [`encode_into`] writes for this key and value.
pub(crate) fn encoded_len(key: &[u8], value: &[u8]) -> usize {
    HEADER_LEN + key.len() + value.len()
}

/// Appends one encoded record to `buf`.
///
/// Callers have checked the lengths against the options, whose limits keep
/// both well inside `u32`; a length that is not is refused, `buf` untouched.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    seq: u64,
    expires_at_ms: u64,
    kind: RecordKind,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    let key_len = disk_u32(key.len(), "a key longer than a record can hold (4 GiB)")?;
    let value_len = disk_u32(value.len(), "a value longer than a record can hold (4 GiB)")?;
    let start = buf.len();
    buf.reserve(encoded_len(key, value));
    buf.extend_from_slice(&[0; 4]); // crc, filled in below
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&expires_at_ms.to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(&value_len.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    let crc = crc::crc32c(&buf[start + SEQ_AT..]);
    buf[start + CRC_AT..start + SEQ_AT].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Checksum over the bytes a record's CRC covers: header after the CRC field,
/// key and value. `header` is the raw header, `body` the key and value.
pub(crate) fn checksum(header: &[u8; HEADER_LEN], body: &[u8]) -> u32 {
    crc::append(crc::crc32c(&header[SEQ_AT..]), body)
}

/// Why no verified record starts at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unframed {
    /// What is wrong.
    pub kind: CorruptionKind,
    /// The record's header, when it decoded.
    pub header: Option<RecordHeader>,
    /// Where the record would end if its length fields are right, when
    /// that is within the bytes available (an offset relative to the
    /// record's start).
    pub declared_len: Option<u64>,
}

/// The header at the start of a record with `available` bytes from its
/// start to the end of the file: decoded, and its declared length checked
/// against them. One of the two steps every reader of records takes (the
/// other is [`verify`]); [`read_from`] takes both over a slice, the
/// scanner over a stream.
pub(crate) fn frame(head: &[u8; HEADER_LEN], available: u64) -> Result<RecordHeader, Unframed> {
    let header = RecordHeader::decode(head).map_err(|kind| Unframed {
        kind,
        header: None,
        declared_len: None,
    })?;
    if header.record_len() > available {
        return Err(Unframed {
            kind: CorruptionKind::Truncated,
            header: Some(header),
            declared_len: None,
        });
    }
    Ok(header)
}

/// Checks the framed record's checksum over its key and value (`body`).
pub(crate) fn verify(
    head: &[u8; HEADER_LEN],
    header: &RecordHeader,
    body: &[u8],
) -> Result<(), Unframed> {
    if checksum(head, body) == header.crc {
        Ok(())
    } else {
        Err(Unframed {
            kind: CorruptionKind::BadChecksum,
            header: Some(*header),
            declared_len: Some(header.record_len()),
        })
    }
}

/// The verified record starting at `at` in `bytes` (a file's contents, or
/// one record), framed by [`frame`] and checked by [`verify`].
pub(crate) fn read_from(bytes: &[u8], at: usize) -> Result<VerifiedRecord<'_>, Unframed> {
    record_at(bytes, at, true)
}

/// [`read_from`], computing the checksum only if `verify`.
fn record_at(bytes: &[u8], at: usize, verify: bool) -> Result<VerifiedRecord<'_>, Unframed> {
    let truncated = Unframed {
        kind: CorruptionKind::Truncated,
        header: None,
        declared_len: None,
    };
    let head = bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<HEADER_LEN>())
        .ok_or(truncated)?;
    let header = frame(head, (bytes.len() - at) as u64)?;
    // (`frame` bounded the length by the slice: it fits in usize.)
    let end = at + header.record_len() as usize;
    // The sum `verify` takes, in one pass over the contiguous bytes (the
    // read path's hot spot: the short CRC-32C path wants one call).
    if verify && crc::crc32c(&bytes[at + SEQ_AT..end]) != header.crc {
        return Err(Unframed {
            kind: CorruptionKind::BadChecksum,
            header: Some(header),
            declared_len: Some(header.record_len()),
        });
    }
    let body = &bytes[at + HEADER_LEN..end];
    let (key, value) = body.split_at(header.key_len as usize);
    Ok(VerifiedRecord { header, key, value })
}

/// A record read back whole and verified (or, from
/// [`decode_whole_unverified`], framed only).
#[derive(Debug)]
pub(crate) struct VerifiedRecord<'a> {
    /// The decoded header.
    pub header: RecordHeader,
    /// The key bytes.
    pub key: &'a [u8],
    /// The value bytes.
    pub value: &'a [u8],
}

/// Decodes and verifies one complete record held in `bytes` (exactly one
/// record, as the key directory's length says).
pub(crate) fn decode_whole(bytes: &[u8]) -> Result<VerifiedRecord<'_>, CorruptionKind> {
    whole(bytes, true)
}

/// Decodes one complete record held in `bytes` without computing its
/// checksum: the header is framed (kind, lengths) and must describe exactly
/// `bytes`, but a flipped bit in the key or value goes unnoticed. Only for
/// reads whose caller chose so ([`crate::ReadOptions::verify_checksum`]).
pub(crate) fn decode_whole_unverified(bytes: &[u8]) -> Result<VerifiedRecord<'_>, CorruptionKind> {
    whole(bytes, false)
}

/// The one record `bytes` holds, its checksum computed only if `verify`.
fn whole(bytes: &[u8], verify: bool) -> Result<VerifiedRecord<'_>, CorruptionKind> {
    let record = record_at(bytes, 0, verify).map_err(|bad| bad.kind)?;
    if record.header.record_len() != bytes.len() as u64 {
        // More bytes than the record: the key directory's length is wrong.
        return Err(CorruptionKind::Truncated);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_unverified_decode_frames_but_does_not_sum() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 7, 0, RecordKind::Put, b"key", b"value").expect("encode");
        let good = decode_whole_unverified(&buf).expect("decodes");
        assert_eq!(
            (good.key, good.value, good.header.seq),
            (&b"key"[..], &b"value"[..], 7)
        );
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode_whole(&buf).err(), Some(CorruptionKind::BadChecksum));
        assert_eq!(
            decode_whole_unverified(&buf).expect("decodes").value,
            b"valud"
        );
        assert_eq!(
            decode_whole_unverified(&buf[..last]).err(),
            Some(CorruptionKind::Truncated),
            "lengths are still checked"
        );
    }

    #[test]
    fn header_offsets_follow_the_spec() {
        assert_eq!(
            (
                CRC_AT,
                SEQ_AT,
                EXPIRES_AT,
                KIND_AT,
                KEY_LEN_AT,
                VALUE_LEN_AT
            ),
            (0, 4, 12, 20, 21, 25)
        );
        assert_eq!(HEADER_LEN, 29);
    }

    #[test]
    fn golden_bytes_of_one_record() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 7, 0, RecordKind::Put, b"k", b"vv").expect("encode");
        let expected_tail: [u8; 28] = [
            7, 0, 0, 0, 0, 0, 0, 0, // seq
            0, 0, 0, 0, 0, 0, 0, 0, // expires_at_ms
            0, // kind = put
            1, 0, 0, 0, // key_len
            2, 0, 0, 0, // value_len
            b'k', b'v', b'v',
        ];
        assert_eq!(&buf[4..], &expected_tail[..]);
        assert_eq!(buf[..4], crc32c::crc32c(&expected_tail).to_le_bytes());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 99, 0, RecordKind::Put, b"key", b"value").expect("encode");
        for i in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                decode_whole(&bad).is_err(),
                "flip of bit {i} went unnoticed"
            );
        }
    }

    #[test]
    fn unknown_kind_is_corruption() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, 0, RecordKind::Delete, b"k", b"").expect("encode");
        buf[KIND_AT] = 9;
        assert_eq!(
            decode_whole(&buf).map(|_| ()),
            Err(CorruptionKind::UnknownRecordKind(9))
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            seq: u64,
            expires: u64,
            kind in 0u8..5,
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let kind = RecordKind::from_byte(kind).expect("kinds 0..5 exist");
            let mut buf = vec![0xAA; 3]; // records append after existing bytes
            encode_into(&mut buf, seq, expires, kind, &key, &value).expect("encode");
            prop_assert_eq!(buf.len(), 3 + encoded_len(&key, &value));
            let rec = decode_whole(&buf[3..]).expect("valid record");
            prop_assert_eq!(rec.header.seq, seq);
            prop_assert_eq!(rec.header.expires_at_ms, expires);
            prop_assert_eq!(rec.header.kind, kind);
            prop_assert_eq!(rec.key, &key[..]);
            prop_assert_eq!(rec.value, &value[..]);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_whole(&bytes);
        }
    }
}
