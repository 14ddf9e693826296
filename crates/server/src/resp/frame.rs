//! Parsing commands out of the bytes a client sent: RESP arrays of bulk
//! strings, or inline commands, with limits (see docs/RESP.md).
//!
//! Written by hand: the RESP crates on crates.io either parse whole RESP3
//! values into owned trees (a copy per argument) or come with a client we do
//! not want; a command parser is a few dozen lines, and its limits are ours.
//!
//! The parser is incremental: for a command whose bytes have not all
//! arrived it remembers how far it got (the arguments found, or how much of
//! an inline line it searched), so a command sent slowly is read once, not
//! again from its start on every read.

use std::ops::Range;

/// Most elements one command may have (Redis's own limit).
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command.
pub const MAX_INLINE: usize = 64 * 1024;
/// Digits of any i64, a sign, and slack: the longest `*<n>` or `$<n>` line.
const MAX_LENGTH_LINE: usize = 24;

/// Limits on what one command may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most elements (the command name included).
    pub max_args: usize,
    /// Longest bulk string.
    pub max_bulk: usize,
    /// Most bytes one command may take in all, framing included.
    pub max_command: usize,
    /// Longest inline command.
    pub max_inline: usize,
}

impl Limits {
    /// The limits for an authenticated connection to a store that accepts
    /// values of up to `max_value_size`: an `MSET` of many values fits, and
    /// a value over the limit is refused before it is buffered.
    pub fn for_values(max_value_size: usize) -> Self {
        Self {
            max_args: MAX_ARGS,
            max_bulk: max_value_size.saturating_add(1024),
            max_command: (256 << 20).max(max_value_size.saturating_mul(2)),
            max_inline: MAX_INLINE,
        }
    }

    /// The limits before `AUTH`, when a token is set: Redis's own for
    /// unauthenticated clients (at most 10 elements, bulk strings of at most
    /// 16 KiB), so a stranger cannot make the server buffer more than about
    /// 160 KiB per connection.
    pub const fn unauthenticated() -> Self {
        Self {
            max_args: 10,
            max_bulk: 16 * 1024,
            max_command: 10 * (16 * 1024 + 32),
            max_inline: 16 * 1024,
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

/// A command whose bytes have not all arrived. Offsets are from the
/// command's first byte, which is the first byte of the next buffer the
/// parser is given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Partial {
    /// `*<count>` was read and `args` of its bulk strings; the next one's
    /// `$` is at `next`.
    Multibulk {
        count: usize,
        next: usize,
        args: Vec<Range<usize>>,
    },
    /// An inline command with no newline in its first `searched` bytes.
    Inline { searched: usize },
}

/// How far parsing one command got.
enum Step {
    /// Complete: it ends here (an offset from its first byte).
    Done(usize),
    /// More bytes are needed.
    More(Partial),
}

/// The command parser of one connection.
///
/// Each call to [`Parser::parse`] is given the connection's unconsumed
/// bytes; the caller then drops the bytes of the commands it was told are
/// complete (`used`), so an unfinished command always starts at the front
/// of the next call's buffer.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Option<Partial>,
}

impl Parser {
    /// A parser at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses up to `max_commands` complete commands from `buf`: appends
    /// each argument's byte range to `spans` and, after each command, the
    /// number of spans so far to `ends` (both should start empty). Returns
    /// how many bytes the complete commands take, and the protocol error
    /// that stopped parsing, if one did (the commands before it are complete
    /// and may run). Nothing is copied.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        max_commands: usize,
        spans: &mut Vec<Range<usize>>,
        ends: &mut Vec<usize>,
    ) -> (usize, Option<ProtocolError>) {
        let mut at = 0;
        let mut found = 0;
        while found < max_commands && at < buf.len() {
            let mark = spans.len();
            let step = match self.pending.take() {
                Some(partial) => resume(&buf[at..], at, partial, limits, spans),
                None => start(&buf[at..], at, limits, spans),
            };
            match step {
                Ok(Step::Done(len)) => {
                    ends.push(spans.len());
                    at += len;
                    found += 1;
                }
                Ok(Step::More(partial)) => {
                    spans.truncate(mark);
                    self.pending = Some(partial);
                    break;
                }
                Err(error) => {
                    spans.truncate(mark);
                    return (at, Some(error));
                }
            }
        }
        (at, None)
    }
}

/// Parses every complete command in `buf` with a fresh parser: see
/// [`Parser::parse`].
pub fn parse_all(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    ends: &mut Vec<usize>,
) -> (usize, Option<ProtocolError>) {
    Parser::new().parse(buf, limits, usize::MAX, spans, ends)
}

/// The commands a parse found: the bytes, and where each argument lies.
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

/// Starts parsing the command at the front of `cmd` (which lies at `base`
/// in the caller's buffer), pushing its arguments' ranges onto `spans`. A
/// blank inline line or an empty array is a command without arguments.
fn start(
    cmd: &[u8],
    base: usize,
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Step, ProtocolError> {
    if cmd.first() != Some(&b'*') {
        return inline(cmd, base, 0, limits, spans);
    }
    let Some((count, next)) = length_line(cmd, 0)? else {
        // Not even the element count yet: at most a few bytes to re-read.
        return Ok(Step::More(Partial::Multibulk {
            count: 0,
            next: 0,
            args: Vec::new(),
        }));
    };
    if count <= 0 {
        // `*0` and `*-1`: an empty command.
        return Ok(Step::Done(next));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.max_args {
        return error("invalid multibulk length");
    }
    let mark = spans.len();
    match bulk_strings(cmd, base, count, next, spans, mark, limits)? {
        Ok(end) => Ok(Step::Done(end)),
        Err(next) => {
            // Keep what was found, relative to the command's first byte.
            let args = spans
                .drain(mark..)
                .map(|r| r.start - base..r.end - base)
                .collect();
            Ok(Step::More(Partial::Multibulk { count, next, args }))
        }
    }
}

/// Goes on with a command that was waiting for bytes, now at `base`.
fn resume(
    cmd: &[u8],
    base: usize,
    partial: Partial,
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Step, ProtocolError> {
    match partial {
        Partial::Multibulk { count: 0, .. } => start(cmd, base, limits, spans),
        Partial::Multibulk {
            count,
            next,
            mut args,
        } => match bulk_strings(cmd, 0, count, next, &mut args, 0, limits)? {
            Ok(end) => {
                spans.extend(args.iter().map(|r| base + r.start..base + r.end));
                Ok(Step::Done(end))
            }
            Err(next) => Ok(Step::More(Partial::Multibulk { count, next, args })),
        },
        Partial::Inline { searched } => inline(cmd, base, searched, limits, spans),
    }
}

/// Parses bulk strings `$<len>\r\n<bytes>\r\n` of a command of `count`
/// elements from `cmd[next..]`, pushing each one's range (shifted by
/// `shift`) onto `args`, whose elements from `mark` on are this command's.
/// `Ok(Ok(end))` when all are there, `Ok(Err(next))` where to go on when
/// more bytes arrive.
fn bulk_strings(
    cmd: &[u8],
    shift: usize,
    count: usize,
    mut next: usize,
    args: &mut Vec<Range<usize>>,
    mark: usize,
    limits: &Limits,
) -> Result<Result<usize, usize>, ProtocolError> {
    while args.len() - mark < count {
        match cmd.get(next) {
            None => return Ok(Err(next)),
            Some(b'$') => {}
            Some(&other) => {
                return error(format!(
                    "expected '$', got '{}'",
                    char::from(other).escape_default()
                ));
            }
        }
        let Some((len, from)) = length_line(cmd, next)? else {
            return Ok(Err(next));
        };
        let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length".into()))?;
        if len > limits.max_bulk {
            return error("invalid bulk length");
        }
        let end = from + len;
        if end + 2 > limits.max_command {
            return error("command too large");
        }
        if cmd.len() < end + 2 {
            return Ok(Err(next));
        }
        if &cmd[end..end + 2] != b"\r\n" {
            return error("bulk string not followed by CRLF");
        }
        args.push(shift + from..shift + end);
        next = end + 2;
    }
    Ok(Ok(next))
}

/// Parses a decimal length written after a type byte at `at` (`*3`, `$5`).
/// `Ok(None)` if the line is not complete yet. Looks at no more than the
/// longest valid line.
fn length_line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window = &buf[at + 1..buf.len().min(at + 1 + MAX_LENGTH_LINE)];
    let Some(len) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() - at > MAX_LENGTH_LINE {
            return error("length line too long");
        }
        return Ok(None);
    };
    // Redis's words for a length that is not a number.
    let invalid = || {
        ProtocolError(if buf[at] == b'*' {
            "invalid multibulk length".into()
        } else {
            "invalid bulk length".into()
        })
    };
    let n: i64 = std::str::from_utf8(&window[..len])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(invalid)?;
    Ok(Some((n, at + 1 + len + 2)))
}

/// A line of words; double or single quotes group words (no escapes). As
/// in Redis, a closing quote must be followed by a space or the end.
/// `searched` bytes of it are known to hold no newline.
fn inline(
    cmd: &[u8],
    base: usize,
    searched: usize,
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Step, ProtocolError> {
    let window = cmd.len().min(limits.max_inline + 1);
    let Some(found) = cmd[searched.min(window)..window]
        .iter()
        .position(|&b| b == b'\n')
    else {
        if cmd.len() > limits.max_inline {
            return error("too big inline request");
        }
        return Ok(Step::More(Partial::Inline {
            searched: cmd.len(),
        }));
    };
    let newline = searched.min(window) + found;
    if newline > limits.max_inline {
        return error("too big inline request");
    }
    let mut end = newline;
    if end > 0 && cmd[end - 1] == b'\r' {
        end -= 1;
    }
    let mut i = 0;
    while i < end {
        match cmd[i] {
            b' ' | b'\t' => i += 1,
            quote @ (b'"' | b'\'') => {
                let from = i + 1;
                let Some(len) = cmd[from..end].iter().position(|&b| b == quote) else {
                    return error("unbalanced quotes in request");
                };
                let after = from + len + 1;
                if after < end && !matches!(cmd[after], b' ' | b'\t') {
                    return error("unbalanced quotes in request");
                }
                spans.push(base + from..base + from + len);
                i = after;
            }
            _ => {
                let from = i;
                while i < end && !matches!(cmd[i], b' ' | b'\t') {
                    i += 1;
                }
                spans.push(base + from..base + i);
            }
        }
    }
    Ok(Step::Done(newline + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_args: 1000,
            max_bulk: 100,
            max_command: 1000,
            max_inline: MAX_INLINE,
        }
    }

    /// Every complete command, as argument lists, and the bytes consumed.
    fn parse(input: &[u8]) -> (Vec<Vec<&[u8]>>, usize, Option<ProtocolError>) {
        let (mut spans, mut ends) = (Vec::new(), Vec::new());
        let (used, error) = parse_all(input, &limits(), &mut spans, &mut ends);
        (split(input, &spans, &ends), used, error)
    }

    fn split<'a>(input: &'a [u8], spans: &[Range<usize>], ends: &[usize]) -> Vec<Vec<&'a [u8]>> {
        let mut commands = Vec::new();
        let mut from = 0;
        for &to in ends {
            commands.push(spans[from..to].iter().map(|r| &input[r.clone()]).collect());
            from = to;
        }
        commands
    }

    fn parse_ok(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let (commands, used, error) = parse(input);
        assert_eq!(error, None);
        assert_eq!(used, input.len());
        commands
    }

    /// Feeds `input` to one parser `chunk` bytes at a time, as a connection
    /// would (dropping the bytes of complete commands); returns the commands
    /// as owned argument lists, and the error if one stopped it.
    fn feed(
        input: &[u8],
        chunk: usize,
        limits: &Limits,
    ) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut parser = Parser::new();
        let mut buffer = Vec::new();
        let mut commands = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buffer.extend_from_slice(piece);
            let (mut spans, mut ends) = (Vec::new(), Vec::new());
            let (used, error) = parser.parse(&buffer, limits, usize::MAX, &mut spans, &mut ends);
            for command in split(&buffer, &spans, &ends) {
                commands.push(command.iter().map(|a| a.to_vec()).collect());
            }
            if error.is_some() {
                return (commands, error);
            }
            buffer.drain(..used);
        }
        (commands, None)
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
    fn commands_fed_in_pieces_parse_as_when_whole() {
        let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\n\
            *0\r\nSET 'a b' \"c\"\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        let whole = feed(input, input.len(), &limits());
        assert_eq!(whole.0.len(), 5);
        assert_eq!(whole.1, None);
        for chunk in 1..input.len() {
            assert_eq!(feed(input, chunk, &limits()), whole, "{chunk}-byte pieces");
        }
    }

    #[test]
    fn an_unfinished_command_is_not_read_again_from_its_start() {
        // Two of three elements arrive; the parser keeps them.
        let mut parser = Parser::new();
        let mut buffer = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n".to_vec();
        let (mut spans, mut ends) = (Vec::new(), Vec::new());
        let (used, error) = parser.parse(&buffer, &limits(), usize::MAX, &mut spans, &mut ends);
        assert_eq!((used, error, ends.len()), (0, None, 0));
        // Were the parser to go back over those bytes it would now find
        // garbage: it does not, it goes on from where it stopped.
        let seen = buffer.len();
        buffer[4..seen].fill(b'#');
        buffer.extend_from_slice(b"$1\r\nv\r\n");
        let (used, error) = parser.parse(&buffer, &limits(), usize::MAX, &mut spans, &mut ends);
        assert_eq!((used, error), (buffer.len(), None));
        assert_eq!(ends, vec![3]);
        assert_eq!(&buffer[spans[2].clone()], b"v");
        // The same for an inline line searched so far.
        let mut parser = Parser::new();
        let mut buffer = b"SET k ".to_vec();
        let (used, _) = parser.parse(&buffer, &limits(), usize::MAX, &mut spans, &mut ends);
        assert_eq!(used, 0);
        buffer[0] = b'\n'; // a newline in what was searched is not looked at again
        buffer.extend_from_slice(b"v\r\n");
        spans.clear();
        ends.clear();
        let (used, error) = parser.parse(&buffer, &limits(), usize::MAX, &mut spans, &mut ends);
        assert_eq!((used, error, ends.len()), (buffer.len(), None, 1));
    }

    #[test]
    fn at_most_max_commands_are_parsed() {
        let mut parser = Parser::new();
        let input = b"PING\r\nPING\r\nPING\r\n";
        let (mut spans, mut ends) = (Vec::new(), Vec::new());
        let (used, error) = parser.parse(input, &limits(), 1, &mut spans, &mut ends);
        assert_eq!((used, error, ends.len()), (6, None, 1));
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
            b"*1001\r\n",
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
    fn before_auth_only_small_commands_are_taken() {
        let strict = Limits::unauthenticated();
        let many = [b"*11\r\n".as_slice(), &b"$1\r\na\r\n".repeat(11)].concat();
        assert!(feed(&many, 4, &strict).1.is_some(), "11 elements");
        let big = [b"*2\r\n$3\r\nSET\r\n$16385\r\n".as_slice()].concat();
        assert!(
            feed(&big, 4, &strict).1.is_some(),
            "a 16 KiB + 1 bulk string"
        );
        let long_line = vec![b'a'; 16 * 1024 + 1];
        assert!(
            feed(&long_line, 1024, &strict).1.is_some(),
            "a long inline line"
        );
        let auth = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n";
        assert_eq!(feed(auth, 3, &strict).0.len(), 1);
    }

    #[test]
    fn empty_arrays_are_empty_commands() {
        let got = parse_ok(b"*0\r\n*-1\r\n");
        assert_eq!(got, vec![Vec::<&[u8]>::new(); 2]);
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_of_a_pipeline_parses_as_the_whole(
            commands in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..12), 0..5),
                1..6,
            ),
            chunk in 1usize..40,
        ) {
            let mut input = Vec::new();
            for args in &commands {
                input.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                for arg in args {
                    input.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    input.extend_from_slice(arg);
                    input.extend_from_slice(b"\r\n");
                }
            }
            let (got, error) = feed(&input, chunk, &limits());
            proptest::prop_assert_eq!(error, None);
            proptest::prop_assert_eq!(got, commands);
        }
    }
}
