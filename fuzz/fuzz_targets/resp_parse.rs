//! The RESP command parser over arbitrary bytes: what it reports as
//! parsed must lie inside what it says it used, and feeding the same bytes
//! in two pieces (as a connection reads them) must give the same commands
//! as feeding them whole.
#![no_main]
use bitcask_server::resp::frame::{Limits, Parser, parse_all};

/// Every complete command as owned arguments, and whether an error stopped
/// parsing; bytes fed in `pieces`, consumed as a connection does.
fn commands(data: &[u8], limits: &Limits, cut: usize) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut parser = Parser::new();
    let mut buffer = Vec::new();
    let mut found = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        buffer.extend_from_slice(piece);
        loop {
            let (mut spans, mut ends) = (Vec::new(), Vec::new());
            let (used, error) = parser.parse(&buffer, limits, usize::MAX, &mut spans, &mut ends);
            let mut from = 0;
            for &to in &ends {
                found.push(spans[from..to].iter().map(|r| buffer[r.clone()].to_vec()).collect());
                from = to;
            }
            if error.is_some() {
                return (found, true);
            }
            buffer.drain(..used);
            if ends.is_empty() {
                break;
            }
        }
    }
    (found, false)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_args: 64,
        max_bulk: 4096,
        max_command: 65536,
        max_inline: 4096,
    };
    let (mut spans, mut ends) = (Vec::new(), Vec::new());
    let (used, _error) = parse_all(data, &limits, &mut spans, &mut ends);
    assert!(used <= data.len());
    assert!(spans.iter().all(|r| r.start <= r.end && r.end <= used));
    assert!(ends.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(ends.last().copied().unwrap_or(0), spans.len());
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    assert_eq!(commands(data, &limits, cut), commands(data, &limits, data.len()));
});
