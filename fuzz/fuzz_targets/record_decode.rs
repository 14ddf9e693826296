//! One record decoded from arbitrary bytes, as the read path does.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bitcask::fuzzing::record(data));
