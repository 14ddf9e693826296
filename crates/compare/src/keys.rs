//! The benchmark's keys: 16 bytes each, the hex of a counter.

/// The key for counter `i`.
pub fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:016x}").as_bytes());
    k
}

/// SplitMix64: the next pseudo-random number from `state` (fast, fixed
/// sequences for reproducible runs; not for anything secret).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` present keys in sequential and shuffled order, and `n` absent ones.
pub struct Keys {
    /// In counter order.
    pub sequential: Vec<[u8; 16]>,
    /// A fixed random order of the same keys.
    pub shuffled: Vec<[u8; 16]>,
    /// Keys never written, in random order.
    pub missing: Vec<[u8; 16]>,
}

impl Keys {
    /// The keys for a run of `n`.
    pub fn new(n: usize) -> Self {
        let sequential: Vec<[u8; 16]> = (0..n as u64).map(key).collect();
        let mut shuffled = sequential.clone();
        // Fisher-Yates with SplitMix64: a fixed, reproducible order.
        let mut state = 0x5EED_u64;
        for i in (1..shuffled.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        // A `z` is never a hex digit: these were never written.
        let missing = shuffled
            .iter()
            .map(|k| {
                let mut m = *k;
                m[0] = b'z';
                m
            })
            .collect();
        Self {
            sequential,
            shuffled,
            missing,
        }
    }
}

/// The `i`-th of `n` keys in a scrambled order computed on the fly (for the
/// memory run, which must not hold a key list of its own): multiplying by a
/// prime that does not divide `n` permutes `0..n`.
pub fn scrambled(i: u64, n: u64) -> [u8; 16] {
    const PRIME: u128 = 2_654_435_761;
    debug_assert!(n == 0 || u128::from(n) % PRIME != 0);
    key(((u128::from(i) * PRIME) % u128::from(n.max(1))) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrambled_is_a_permutation() {
        for n in [1u64, 7, 1000, 4096] {
            let mut seen: Vec<[u8; 16]> = (0..n).map(|i| scrambled(i, n)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, n);
        }
    }

    #[test]
    fn missing_keys_are_not_present_keys() {
        let keys = Keys::new(1000);
        let mut present = keys.sequential.clone();
        present.sort_unstable();
        assert!(
            keys.missing
                .iter()
                .all(|m| present.binary_search(m).is_err())
        );
        let mut shuffled = keys.shuffled.clone();
        shuffled.sort_unstable();
        assert_eq!(shuffled, present);
    }
}
