//! Parsing commands out of the bytes a client sent: RESP arrays of bulk
//! strings, or inline commands, with limits (see docs/RESP.md).
//!
//! Written by hand: the RESP crates on crates.io either parse whole RESP3
//! values into owned trees (a copy per argument) or come with a client we do
//! not want; a command parser is a few dozen lines, and its limits are ours.

use std::ops::Range;

/// Most elements one command may have (Redis's own limit).
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command.
pub const MAX_INLINE: usize = 64 * 1024;

/// Limits on what one command may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest bulk string.
    pub max_bulk: usize,
    /// Most bytes one command may take in all.
    pub max_command: usize,
}

impl Limits {
    /// The limits for a store that accepts values of up to `max_value_size`.
    pub fn for_values(max_value_size: usize) -> Self {
        Self {
            max_bulk: max_value_size.saturating_add(1024),
            max_command: (256 << 20).max(max_value_size.saturating_mul(2)),
        }
    }
}

/// A malformed or oversized command: answered with an error, then the
/// connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn error<T>(what: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(what.into()))
}

/// Parses every complete command in `buf`: appends each argument's byte
/// range to `spans` and, after each command, the number of spans so far to
/// `ends`. Returns how many bytes the complete commands take, and the
/// protocol error that stopped parsing, if one did (the commands before it
/// are complete and may run). Nothing is copied.
pub fn parse_all(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    ends: &mut Vec<usize>,
) -> (usize, Option<ProtocolError>) {
    let mut at = 0;
    loop {
        let mark = spans.len();
        match parse_command(buf, at, limits, spans) {
            Ok(Some(next)) => {
                ends.push(spans.len());
                at = next;
            }
            Ok(None) => {
                spans.truncate(mark);
                return (at, None);
            }
            Err(error) => {
                spans.truncate(mark);
                return (at, Some(error));
            }
        }
    }
}

/// The commands [`parse_all`] found: the bytes, and where each argument lies.
#[derive(Debug, Clone, Copy)]
pub struct Commands<'a> {
    /// The bytes parsed.
    pub data: &'a [u8],
    /// Byte ranges of every argument of every command, in order.
    pub spans: &'a [Range<usize>],
    /// After each command, the number of spans up to its end.
    pub ends: &'a [usize],
}

impl<'a> Commands<'a> {
    /// Number of commands.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn spans_of(&self, i: usize) -> &'a [Range<usize>] {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.spans[from..self.ends[i]]
    }

    /// Number of arguments (the name included) of command `i`.
    pub fn arg_count(&self, i: usize) -> usize {
        self.spans_of(i).len()
    }

    /// Argument `j` of command `i`.
    pub fn arg(&self, i: usize, j: usize) -> Option<&'a [u8]> {
        self.spans_of(i).get(j).map(|r| &self.data[r.clone()])
    }

    /// Fills `args` with the arguments of command `i`.
    pub fn args_of(&self, i: usize, args: &mut Vec<&'a [u8]>) {
        args.clear();
        args.extend(self.spans_of(i).iter().map(|r| &self.data[r.clone()]));
    }
}

/// Parses the command starting at `buf[at]`, pushing its arguments' ranges;
/// returns where it ends, or `Ok(None)` if more bytes are needed. A blank
/// inline line or an empty array is a command without arguments.
fn parse_command(
    buf: &[u8],
    at: usize,
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    match buf.get(at) {
        None => Ok(None),
        Some(b'*') => multibulk(buf, at, limits, spans),
        Some(_) => inline(buf, at, spans),
    }
}

/// Finds `\r\n` at or after `from`; returns the index of `\r`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Parses a decimal length written after a type byte at `at` (`*3`, `$5`).
/// `Ok(None)` if the line is not complete yet.
fn length_line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    /// Digits of any i64, a sign, and slack.
    const MAX_LINE: usize = 24;
    let Some(end) = line_end(buf, at + 1) else {
        if buf.len() - at > MAX_LINE {
            return error("length line too long");
        }
        return Ok(None);
    };
    let digits = &buf[at + 1..end];
    let text = std::str::from_utf8(digits).map_err(|_| ProtocolError("invalid length".into()))?;
    let n: i64 = text
        .parse()
        .map_err(|_| ProtocolError(format!("invalid length {text:?}")))?;
    Ok(Some((n, end + 2)))
}

/// `*<n>\r\n` followed by `n` bulk strings `$<len>\r\n<bytes>\r\n`.
fn multibulk(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut at)) = length_line(buf, start)? else {
        return Ok(None);
    };
    if count <= 0 {
        // `*0` and `*-1`: an empty command.
        return Ok(Some(at));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_ARGS {
        return error("invalid multibulk length");
    }
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => {
                return error(format!(
                    "expected '$', got '{}'",
                    char::from(other).escape_default()
                ));
            }
        }
        let Some((len, from)) = length_line(buf, at)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length".into()))?;
        if len > limits.max_bulk {
            return error("invalid bulk length");
        }
        let end = from + len;
        if end - start > limits.max_command {
            return error("command too large");
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return error("bulk string not followed by CRLF");
        }
        spans.push(from..end);
        at = end + 2;
    }
    Ok(Some(at))
}

/// A line of words; double or single quotes group words (no escapes).
fn inline(
    buf: &[u8],
    start: usize,
    spans: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = buf[start..].iter().position(|&b| b == b'\n') else {
        if buf.len() - start > MAX_INLINE {
            return error("too big inline request");
        }
        return Ok(None);
    };
    if newline > MAX_INLINE {
        return error("too big inline request");
    }
    let mut end = start + newline;
    if end > start && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let mut i = start;
    while i < end {
        match buf[i] {
            b' ' | b'\t' => i += 1,
            quote @ (b'"' | b'\'') => {
                let from = i + 1;
                let Some(len) = buf[from..end].iter().position(|&b| b == quote) else {
                    return error("unbalanced quotes in request");
                };
                spans.push(from..from + len);
                i = from + len + 1;
            }
            _ => {
                let from = i;
                while i < end && !matches!(buf[i], b' ' | b'\t') {
                    i += 1;
                }
                spans.push(from..i);
            }
        }
    }
    Ok(Some(start + newline + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_bulk: 100,
            max_command: 1000,
        }
    }

    /// Every complete command, as argument lists, and the bytes consumed.
    fn parse(input: &[u8]) -> (Vec<Vec<&[u8]>>, usize, Option<ProtocolError>) {
        let (mut spans, mut ends) = (Vec::new(), Vec::new());
        let (used, error) = parse_all(input, &limits(), &mut spans, &mut ends);
        let mut commands = Vec::new();
        let mut from = 0;
        for &to in &ends {
            commands.push(spans[from..to].iter().map(|r| &input[r.clone()]).collect());
            from = to;
        }
        (commands, used, error)
    }

    fn parse_ok(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let (commands, used, error) = parse(input);
        assert_eq!(error, None);
        assert_eq!(used, input.len());
        commands
    }

    #[test]
    fn pipelined_commands_parse_in_order() {
        let got = parse_ok(
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n",
        );
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![&b"GET"[..], b"k"]);
        assert_eq!(got[1][2], b"");
        assert_eq!(got[2], vec![&b"PING"[..]]);
    }

    #[test]
    fn every_prefix_of_a_command_asks_for_more() {
        let full = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
        for cut in 0..full.len() {
            let (commands, used, error) = parse(&full[..cut]);
            assert!(
                commands.is_empty() && used == 0 && error.is_none(),
                "cut at {cut}"
            );
        }
        let got = parse_ok(full);
        assert_eq!(got[0][2], b"va\r\nl", "bulk strings are binary-safe");
        // A complete command followed by part of the next: only the first.
        let mut more = full.to_vec();
        more.extend_from_slice(b"*1\r\n$4\r\nPI");
        let (commands, used, error) = parse(&more);
        assert_eq!((commands.len(), used, error), (1, full.len(), None));
    }

    #[test]
    fn inline_commands_split_on_spaces_and_quotes() {
        let got = parse_ok(b"SET k \"hello world\"\r\n\r\nget  'k'\n");
        assert_eq!(got[0], vec![&b"SET"[..], b"k", b"hello world"]);
        assert!(got[1].is_empty());
        assert_eq!(got[2], vec![&b"get"[..], b"k"]);
        assert!(parse(b"SET k \"open\r\n").2.is_some());
    }

    #[test]
    fn malformed_and_oversized_input_is_a_protocol_error() {
        for bad in [
            &b"*2\r\n$3\r\nGET\r\n:1\r\n"[..],
            b"*1\r\n$x\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$101\r\n",
            b"*99999999999\r\n",
            b"*1\r\n$3\r\nGETXX",
            b"*abc\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
        ] {
            assert!(parse(bad).2.is_some(), "{:?}", String::from_utf8_lossy(bad));
        }
        // Eleven 100-byte arguments exceed a 1,000-byte command.
        let mut big = b"*11\r\n".to_vec();
        for _ in 0..11 {
            big.extend_from_slice(b"$100\r\n");
            big.extend_from_slice(&[b'x'; 100]);
            big.extend_from_slice(b"\r\n");
        }
        assert!(parse(&big).2.is_some());
        // Lines without an end that are already too long.
        assert!(parse(&vec![b'a'; MAX_INLINE + 1]).2.is_some());
        assert!(
            parse(&[b"*1\r\n$".as_slice(), &[b'9'; 40]].concat())
                .2
                .is_some()
        );
        // The commands before an error are complete and reported.
        let (commands, used, error) = parse(b"PING\r\n*1\r\n$x\r\n");
        assert_eq!((commands.len(), used), (1, 6));
        assert!(error.is_some());
    }

    #[test]
    fn empty_arrays_are_empty_commands() {
        let got = parse_ok(b"*0\r\n*-1\r\n");
        assert_eq!(got, vec![Vec::<&[u8]>::new(); 2]);
    }
}
