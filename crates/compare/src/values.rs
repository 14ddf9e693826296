//! The values written: one repeated byte, which compresses to almost
//! nothing, or distinct windows of a pseudo-random pool, which do not
//! compress (a store that compresses, as fjall does, then writes as much as
//! the others).

use crate::keys::splitmix64;

/// Which values to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueKind {
    /// Every value is the byte `v` repeated.
    Repeated,
    /// Every value is a different window of 16 MiB of pseudo-random bytes
    /// (windows repeat only 16 MiB apart, beyond a compressor's window).
    Random,
}

/// Values of one size.
pub struct Values {
    pool: Vec<u8>,
    size: usize,
    random: bool,
}

impl Values {
    /// Values of `size` bytes of kind `kind`.
    pub fn new(kind: ValueKind, size: usize) -> Self {
        match kind {
            ValueKind::Repeated => Self {
                pool: vec![b'v'; size],
                size,
                random: false,
            },
            ValueKind::Random => {
                let len = (16 << 20).max(2 * size);
                let mut pool = Vec::with_capacity(len + 8);
                // SplitMix64: fixed seed, reproducible.
                let mut state = 0xC0FF_EE00_u64;
                while pool.len() < len {
                    pool.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
                }
                pool.truncate(len);
                Self {
                    pool,
                    size,
                    random: true,
                }
            }
        }
    }

    /// Writes a value of `size` bytes of kind `kind` for index `i` into
    /// `buf` without a pool (for the memory run, whose peak must not include
    /// one): for `Random`, pseudo-random bytes seeded by `i`.
    pub fn fill(kind: ValueKind, i: u64, size: usize, buf: &mut Vec<u8>) {
        buf.clear();
        match kind {
            ValueKind::Repeated => buf.resize(size, b'v'),
            ValueKind::Random => {
                let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FF_EE00;
                while buf.len() < size {
                    buf.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
                }
                buf.truncate(size);
            }
        }
    }

    /// The `i`-th value.
    pub fn get(&self, i: usize) -> &[u8] {
        if !self.random {
            return &self.pool[..self.size];
        }
        let windows = (self.pool.len() / self.size.max(1)).max(1);
        let start = (i % windows) * self.size;
        &self.pool[start..start + self.size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_size_and_random_ones_differ() {
        let repeated = Values::new(ValueKind::Repeated, 100);
        assert_eq!(repeated.get(0), repeated.get(7));
        assert_eq!(repeated.get(3).len(), 100);
        let random = Values::new(ValueKind::Random, 100);
        assert_eq!(random.get(5).len(), 100);
        assert_ne!(random.get(0), random.get(1));
        let big = Values::new(ValueKind::Random, 4096);
        assert_eq!(big.get(123_456).len(), 4096);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Values::fill(ValueKind::Random, 1, 100, &mut a);
        Values::fill(ValueKind::Random, 2, 100, &mut b);
        assert_eq!((a.len(), b.len()), (100, 100));
        assert_ne!(a, b);
        Values::fill(ValueKind::Repeated, 1, 10, &mut a);
        assert_eq!(a, vec![b'v'; 10]);
    }
}
