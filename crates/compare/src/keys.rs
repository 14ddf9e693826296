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
    /// A fixed random order of the same keys (the random fill's order).
    pub shuffled: Vec<[u8; 16]>,
    /// Another random order of the same keys, unrelated to `shuffled`: the
    /// reads' order. Reading in the fill's order would walk a log-structured
    /// store's files front to back, which no random read does.
    pub reads: Vec<[u8; 16]>,
    /// Keys never written, in random order.
    pub missing: Vec<[u8; 16]>,
}

impl Keys {
    /// The keys for a run of `n`.
    pub fn new(n: usize) -> Self {
        let sequential: Vec<[u8; 16]> = (0..n as u64).map(key).collect();
        let shuffled = shuffle(&sequential, 0x5EED);
        let reads = shuffle(&sequential, 0x0DDBA11);
        // A `z` is never a hex digit: these were never written.
        let missing = reads
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
            reads,
            missing,
        }
    }
}

/// `keys` in a fixed pseudo-random order picked by `seed` (Fisher-Yates with
/// SplitMix64, reproducible from run to run).
fn shuffle(keys: &[[u8; 16]], seed: u64) -> Vec<[u8; 16]> {
    let mut out = keys.to_vec();
    let mut state = seed;
    for i in (1..out.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
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
    fn read_order_is_the_keys_in_another_order() {
        let keys = Keys::new(1000);
        let mut sorted = keys.reads.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, keys.sequential);
        let same_place = keys
            .reads
            .iter()
            .zip(&keys.shuffled)
            .filter(|(a, b)| a == b)
            .count();
        assert!(same_place < 10, "{same_place} keys in the fill's place");
    }

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
