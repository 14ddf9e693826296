//! CRC-32C (Castagnoli): the checksum of records, file headers and hints.
//!
//! Two paths compute the same function (tests compare both with the
//! `crc32c` crate, a third implementation; the format does not depend on
//! which one ran):
//!
//! - Inputs of [`FOLD_FROM`] bytes and more go to the `crc-fast` crate,
//!   which folds 64 to 256 bytes per step with carry-less multiplies
//!   (VPCLMULQDQ on CPUs with AVX-512, PCLMULQDQ otherwise, chosen at run
//!   time). A verified read of a large value is a pass over bytes that are
//!   usually not in the CPU's cache, and this path keeps up with memory: a
//!   4 KiB record costs about what summing its bytes costs (about 500 ns
//!   from memory on the benchmark machine), where the `crc32` instruction's
//!   three interleaved streams (the `crc32c` crate) took 820-880 ns. Random
//!   reads of 4 KiB values went from 0.74 to 1.16 million per second on one
//!   thread, of 1 KiB values from 0.97 to 1.31 million (docs/BENCHMARKS.md,
//!   "Checksums at memory speed").
//! - Shorter inputs on x86-64 CPUs with SSE 4.2, which is every record a
//!   point read of a small value verifies (a 16-byte key and a 100-byte
//!   value make 130 bytes), take one `crc32` instruction per 8 bytes and
//!   one per byte of the last 7. Below a few cache lines folding has
//!   nothing to fold, and a get spends most of its time waiting for its
//!   record to arrive from memory while the CPU runs ahead into the next
//!   get only as far as its instruction window reaches: a short
//!   verification lets it reach the next lookup. Random gets of 1,000,000
//!   keys went from about 2.0 to 2.6 million per second on one thread with
//!   this path (docs/BENCHMARKS.md, "What changed in the key-directory
//!   rebuild, and what it won").

use crc_fast::{CrcAlgorithm, Digest};

/// Inputs at least this long go to the `crc-fast` crate. Below it, the
/// two paths measured the same from memory except for short records,
/// where the instruction loop won (106 against 138 ns at 130 bytes).
const FOLD_FROM: usize = 256;

/// The CRC-32C of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    append(0, bytes)
}

/// The CRC-32C of the bytes whose CRC-32C is `crc`, followed by `bytes`.
pub(crate) fn append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < FOLD_FROM && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the only requirement for calling a function compiled with
        // `target_feature(enable = "sse4.2")` is that the CPU running it has
        // SSE 4.2, which was just checked; the function itself touches no
        // memory but the slice it is given.
        #[allow(unsafe_code)]
        return unsafe { append_short_sse42(crc, bytes) };
    }
    append_folded(crc, bytes)
}

/// [`append`] through the `crc-fast` crate. A CRC-32C's running state is
/// the complement of the CRC so far (the algorithm starts from all ones
/// and complements its result).
fn append_folded(crc: u32, bytes: &[u8]) -> u32 {
    let mut digest = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    digest.update(bytes);
    // A 32-bit algorithm's result fits in the low half.
    digest.finalize() as u32
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
        let bytes: Vec<u8> = (0..4 * FOLD_FROM as u32 + 64)
            .map(|i| (i * 31 + 7) as u8)
            .collect();
        for len in 0..bytes.len() {
            for start in 0..3 {
                let slice = &bytes[start..len.max(start)];
                assert_eq!(crc32c(slice), crc32c::crc32c(slice), "len {len}");
                assert_eq!(append_folded(0, slice), crc32c::crc32c(slice), "len {len}");
            }
        }
    }

    #[test]
    fn a_large_record_matches_the_crate() {
        // Past every block size the folding path splits into.
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 131 + i / 7) as u8).collect();
        for len in [4096, 4096 + 45, 65_536, 70_000] {
            assert_eq!(crc32c(&bytes[..len]), crc32c::crc32c(&bytes[..len]));
            assert_eq!(
                append(77, &bytes[..len]),
                crc32c::crc32c_append(77, &bytes[..len])
            );
        }
    }

    proptest! {
        #[test]
        fn matches_the_crate(
            seed in any::<u32>(),
            first in proptest::collection::vec(any::<u8>(), 0..5000),
            second in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let ours = append(append(seed, &first), &second);
            let theirs = crc32c::crc32c_append(crc32c::crc32c_append(seed, &first), &second);
            prop_assert_eq!(ours, theirs);
        }
    }
}
