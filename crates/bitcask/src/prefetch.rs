//! Telling the CPU which memory will be read soon, for loops whose reads
//! jump around too much for its own prefetcher (recovery reading hint
//! entries in the key directory's order).

/// Starts loading the cache line holding the first byte of `bytes` (a
/// hint: nothing happens on CPUs without the instruction, or for an empty
/// slice).
#[inline]
pub(crate) fn read(bytes: &[u8]) {
    if let Some(first) = bytes.first() {
        read_value(first);
    }
}

/// Starts loading the cache line holding the start of `value` (a hint, as
/// [`read`]).
#[inline]
pub(crate) fn read_value<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it
        // is in the target's baseline features). A prefetch is a hint: it
        // never faults and changes no memory, and the pointer comes from a
        // live reference in any case.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
