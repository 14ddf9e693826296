//! The bytes of a journal segment: its 32-byte header and its records
//! (`docs/FORMAT.md`, "Journal").

use std::ops::Range;
use std::path::Path;

use crate::crc::crc32c;
use crate::error::{CorruptionKind, Error, Result};

/// Length of a segment header.
pub(crate) const HEADER_LEN: usize = 32;
/// Length of a record header: crc, payload length, index.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may carry.
pub const MAX_PAYLOAD: usize = 256 << 20;

const MAGIC: [u8; 8] = *b"BCJOURNL";
const FORMAT_VERSION: u16 = 1;
/// The header's `file_kind` (data files are 1, hint files 2).
const KIND_SEGMENT: u16 = 3;
const HEADER_CRC_AT: usize = 28;

/// The file name of the segment whose first record has index `first`.
pub(crate) fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The first index a segment's file name gives, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at index `first`.
pub(crate) fn encode_header(first: u64) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[10..12].copy_from_slice(&KIND_SEGMENT.to_le_bytes());
    b[16..24].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c(&b[..HEADER_CRC_AT]);
    b[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks the header at the start of `bytes` (a whole segment file) names
/// segment `first`.
pub(crate) fn check_header(bytes: &[u8], path: &Path, first: u64) -> Result<()> {
    let corrupt = |kind| Error::Corruption {
        path: path.to_path_buf(),
        offset: 0,
        kind,
    };
    let Some(b) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(corrupt(CorruptionKind::Truncated));
    };
    if b[0..8] != MAGIC {
        return Err(corrupt(CorruptionKind::BadMagic));
    }
    if u32::from_le_bytes(field(b, HEADER_CRC_AT)) != crc32c(&b[..HEADER_CRC_AT]) {
        return Err(corrupt(CorruptionKind::BadFileHeader));
    }
    let version = u16::from_le_bytes(field(b, 8));
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let kind = u16::from_le_bytes(field(b, 10));
    if kind != KIND_SEGMENT {
        return Err(corrupt(CorruptionKind::UnknownFileKind(kind)));
    }
    if u64::from_le_bytes(field(b, 16)) != first {
        return Err(corrupt(CorruptionKind::FileIdMismatch));
    }
    Ok(())
}

/// Appends the record of `payload` under `index` to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, index: u64, payload: &[u8]) -> Result<()> {
    // Callers refuse payloads over MAX_PAYLOAD, so the length fits; one
    // that does not is refused, `buf` untouched.
    let len = crate::error::disk_u32(payload.len(), "a journal record past 4 GiB")?;
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32c(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The length of the record of a `payload_len`-byte payload.
pub(crate) fn record_len(payload_len: usize) -> u64 {
    (RECORD_HEADER_LEN + payload_len) as u64
}

/// Parses the record at `at` in `bytes`, which must have index `index`;
/// returns the payload's range and where the record ends.
pub(crate) fn parse_record(
    bytes: &[u8],
    at: usize,
    index: u64,
) -> Result<(Range<usize>, usize), CorruptionKind> {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some(h) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(CorruptionKind::Truncated);
    };
    let len = u32::from_le_bytes(field(h, 4)) as usize;
    if len > MAX_PAYLOAD {
        return Err(CorruptionKind::BadChecksum);
    }
    let end = at + RECORD_HEADER_LEN + len;
    if end > bytes.len() {
        return Err(CorruptionKind::Truncated);
    }
    if u32::from_le_bytes(field(h, 0)) != crc32c(&bytes[at + 4..end]) {
        return Err(CorruptionKind::BadChecksum);
    }
    if u64::from_le_bytes(field(h, 8)) != index {
        return Err(CorruptionKind::OutOfOrder);
    }
    Ok((at + RECORD_HEADER_LEN..end, end))
}

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_headers_and_records_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("42.seg"), None);
        let path = Path::new("x.seg");
        let mut bytes = encode_header(7).to_vec();
        check_header(&bytes, path, 7).expect("header");
        assert!(
            check_header(&bytes, path, 8).is_err(),
            "another first index"
        );
        encode_record(&mut bytes, 7, b"seven").expect("encode");
        encode_record(&mut bytes, 8, b"").expect("encode");
        let (payload, end) = parse_record(&bytes, HEADER_LEN, 7).expect("record 7");
        assert_eq!(&bytes[payload], b"seven");
        assert_eq!(end as u64, HEADER_LEN as u64 + record_len(5));
        let (payload, end) = parse_record(&bytes, end, 8).expect("record 8");
        assert!(payload.is_empty() && end == bytes.len());
        assert_eq!(
            parse_record(&bytes, HEADER_LEN, 8),
            Err(CorruptionKind::OutOfOrder)
        );
        bytes[HEADER_LEN + RECORD_HEADER_LEN] ^= 1;
        assert_eq!(
            parse_record(&bytes, HEADER_LEN, 7),
            Err(CorruptionKind::BadChecksum)
        );
        assert_eq!(
            parse_record(&bytes, bytes.len() - 3, 9),
            Err(CorruptionKind::Truncated)
        );
        bytes[0] = b'X';
        assert!(check_header(&bytes, path, 7).is_err());
    }
}
