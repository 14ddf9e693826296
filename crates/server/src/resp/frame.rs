//! Parsing commands out of the bytes a client sent: RESP arrays of bulk
//! strings, or inline commands, with limits (see docs/RESP.md).
//!
//! Written by hand: the RESP crates on crates.io either parse whole RESP3
//! values into owned trees (a copy per argument) or come with a client we do
//! not want; a command parser is a few dozen lines, and its limits are ours.

use bytes::{Buf, Bytes, BytesMut};

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

/// Takes the next complete command off the front of `buf`: its arguments
/// (slices of one shared buffer, no copies). `Ok(None)` if more bytes are
/// needed; an empty command (a blank inline line) gives an empty vector.
pub fn next_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => multibulk(buf, limits),
        Some(_) => inline(buf),
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
fn length_line(
    buf: &[u8],
    at: usize,
    max_digits: usize,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(end) = line_end(buf, at + 1) else {
        if buf.len() - at > max_digits + 3 {
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
fn multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((count, mut at)) = length_line(buf, 0, 20)? else {
        return Ok(None);
    };
    if count <= 0 {
        // `*0` and `*-1` are empty commands: skip them.
        buf.advance(at);
        return Ok(Some(Vec::new()));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_ARGS {
        return error("invalid multibulk length");
    }
    // First pass: find where each argument lies, without copying.
    let mut spans = Vec::with_capacity(count.min(1024));
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
        let Some((len, start)) = length_line(buf, at, 20)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length".into()))?;
        if len > limits.max_bulk {
            return error("invalid bulk length");
        }
        let end = start + len;
        if end > limits.max_command {
            return error("command too large");
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return error("bulk string not followed by CRLF");
        }
        spans.push(start..end);
        at = end + 2;
    }
    let frame = buf.split_to(at).freeze();
    Ok(Some(spans.into_iter().map(|r| frame.slice(r)).collect()))
}

/// A line of words; double or single quotes group words (no escapes).
fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return error("too big inline request");
        }
        return Ok(None);
    };
    if newline > MAX_INLINE {
        return error("too big inline request");
    }
    let line = buf.split_to(newline + 1).freeze();
    let text = line.slice(..newline);
    let text = text.strip_suffix(b"\r").unwrap_or(&text);
    let mut args = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' => i += 1,
            quote @ (b'"' | b'\'') => {
                let start = i + 1;
                let Some(len) = text[start..].iter().position(|&b| b == quote) else {
                    return error("unbalanced quotes in request");
                };
                args.push(Bytes::copy_from_slice(&text[start..start + len]));
                i = start + len + 1;
            }
            _ => {
                let start = i;
                while i < text.len() && !matches!(text[i], b' ' | b'\t') {
                    i += 1;
                }
                args.push(Bytes::copy_from_slice(&text[start..i]));
            }
        }
    }
    Ok(Some(args))
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

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = next_command(&mut buf, &limits())? {
            out.push(cmd);
        }
        Ok(out)
    }

    #[test]
    fn pipelined_commands_parse_in_order() {
        let got = parse_all(
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n",
        )
        .expect("parse");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(got[1][2], Bytes::new());
        assert_eq!(got[2], vec![Bytes::from("PING")]);
    }

    #[test]
    fn every_prefix_of_a_command_asks_for_more() {
        let full = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(next_command(&mut buf, &limits()), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut buf = BytesMut::from(&full[..]);
        let cmd = next_command(&mut buf, &limits())
            .expect("ok")
            .expect("complete");
        assert_eq!(
            cmd[2],
            Bytes::from("va\r\nl"),
            "bulk strings are binary-safe"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn inline_commands_split_on_spaces_and_quotes() {
        let got = parse_all(b"SET k \"hello world\"\r\n\r\nget  'k'\n").expect("parse");
        assert_eq!(
            got[0],
            vec![
                Bytes::from("SET"),
                Bytes::from("k"),
                Bytes::from("hello world")
            ]
        );
        assert!(got[1].is_empty());
        assert_eq!(got[2], vec![Bytes::from("get"), Bytes::from("k")]);
        assert!(parse_all(b"SET k \"open\r\n").is_err());
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
            assert!(
                parse_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Eleven 100-byte arguments exceed a 1,000-byte command.
        let mut big = b"*11\r\n".to_vec();
        for _ in 0..11 {
            big.extend_from_slice(b"$100\r\n");
            big.extend_from_slice(&[b'x'; 100]);
            big.extend_from_slice(b"\r\n");
        }
        assert!(parse_all(&big).is_err());
        // A line without end that is already too long.
        assert!(parse_all(&vec![b'a'; MAX_INLINE + 1]).is_err());
        assert!(parse_all(&[b"*1\r\n$".as_slice(), &[b'9'; 40]].concat()).is_err());
    }

    #[test]
    fn empty_arrays_are_skipped() {
        assert_eq!(
            parse_all(b"*0\r\n*-1\r\n").expect("parse"),
            vec![Vec::<Bytes>::new(); 2]
        );
    }
}
