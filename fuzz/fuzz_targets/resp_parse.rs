//! The RESP command parser over arbitrary bytes: what it reports as
//! parsed must lie inside what it says it used.
#![no_main]
use bitcask_server::resp::frame::{Limits, parse_all};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk: 4096,
        max_command: 65536,
    };
    let (mut spans, mut ends) = (Vec::new(), Vec::new());
    let (used, _error) = parse_all(data, &limits, &mut spans, &mut ends);
    assert!(used <= data.len());
    assert!(spans.iter().all(|r| r.start <= r.end && r.end <= used));
    assert!(ends.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(ends.last().copied().unwrap_or(0), spans.len());
});
