//! A hint file with a valid checksum around arbitrary contents.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (len, body) = match data.split_first_chunk::<4>() {
        Some((len, body)) => (u64::from(u32::from_le_bytes(*len)), body),
        None => (0, data),
    };
    bitcask::fuzzing::hint(body, len);
});
