//! A data file of arbitrary (or arbitrarily described) records: open,
//! read back, check and repair.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bitcask::fuzzing::recovery(data));
