//! CRC-32C (Castagnoli): the checksum of records, file headers and hints.
//!
//! The `crc32c` crate computes it, with one exception written here: inputs
//! shorter than [`SHORT`] on x86-64 CPUs with SSE 4.2, which is every record
//! a point read of a small value verifies (a 16-byte key and a 100-byte value
//! make 130 bytes). For those the crate runs a general routine (a byte loop
//! up to 8-byte alignment, three block phases, a byte loop for the tail)
//! that is correct but long; this path is one `crc32` instruction per 8
//! bytes and one per byte of the last 7. It is not faster in isolation; it
//! is shorter, and a get spends most of its time waiting for its record to
//! arrive from memory, while the CPU can run ahead into the next get only
//! as far as its instruction window reaches: a short verification lets it
//! reach the next lookup. Random gets of 1,000,000 keys went from about 2.0
//! to 2.6 million per second on one thread (docs/BENCHMARKS.md, "What
//! changed in the key-directory rebuild, and what it won").
//!
//! Both paths compute the same function (a property test compares them);
//! the format does not depend on which one ran.

/// Inputs at least this long go to the `crc32c` crate, whose three
/// interleaved streams win once there are enough bytes to split (its
/// smallest split is 3 x 256 bytes).
const SHORT: usize = 768;

/// The CRC-32C of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    append(0, bytes)
}

/// The CRC-32C of the bytes whose CRC-32C is `crc`, followed by `bytes`.
pub(crate) fn append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < SHORT && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the only requirement for calling a function compiled with
        // `target_feature(enable = "sse4.2")` is that the CPU running it has
        // SSE 4.2, which was just checked; the function itself touches no
        // memory but the slice it is given.
        #[allow(unsafe_code)]
        return unsafe { append_short_sse42(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

/// [`append`] with the `crc32` instruction, 8 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn append_short_sse42(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let (words, tail) = bytes.as_chunks::<8>();
    let mut wide = u64::from(!crc);
    for word in words {
        wide = _mm_crc32_u64(wide, u64::from_le_bytes(*word));
    }
    // The instruction leaves the 32-bit CRC in the low half.
    let mut crc = wide as u32;
    for &byte in tail {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_check_value() {
        // The CRC-32C check value from the CRC catalogue (and RFC 3720).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn every_length_around_the_paths_matches_the_crate() {
        let bytes: Vec<u8> = (0..2 * SHORT as u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..bytes.len() {
            for start in 0..3 {
                let slice = &bytes[start..len.max(start)];
                assert_eq!(crc32c(slice), crc32c::crc32c(slice), "len {len}");
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_crate(
            seed in any::<u32>(),
            first in proptest::collection::vec(any::<u8>(), 0..1000),
            second in proptest::collection::vec(any::<u8>(), 0..1000),
        ) {
            let ours = append(append(seed, &first), &second);
            let theirs = crc32c::crc32c_append(crc32c::crc32c_append(seed, &first), &second);
            prop_assert_eq!(ours, theirs);
        }
    }
}
