//! Helpers shared by the measuring examples (not an example itself).
#![allow(dead_code)]

/// A 16-byte key for index `i` ("key" and 13 decimal digits), built without
/// allocating so that measurements see the engine, not `format!`.
pub fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key0000000000000";
    let mut n = i;
    for slot in k[3..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// The process's resident memory in KiB (0 if `/proc` cannot be read).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
