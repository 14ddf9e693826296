//! Redis's glob patterns for `KEYS` and `SCAN MATCH`: `*`, `?`, `[abc]`,
//! `[^abc]`, `[a-z]` and `\` to escape, over bytes.
//!
//! Written by hand: the glob crates match paths (`/` is special to them,
//! and they work on `str`); Redis's `stringmatchlen` works on any bytes.
//!
//! A pattern is compiled once per command into tokens, a character class
//! into a 256-bit set, so matching a key costs one step per token and byte
//! whatever the classes hold (matching the text of a class at every
//! position, as `stringmatchlen` does, let one `SCAN` with a class of a
//! million bytes stall a thread for seconds).

/// Longest pattern accepted (longer ones are refused before compiling): a
/// key of the default 1 KiB limit with every byte escaped, and room for
/// wildcards.
pub const MAX_PATTERN: usize = 4 * 1024;

/// One position of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// This byte.
    Byte(u8),
    /// `?`: any one byte.
    Any,
    /// `*`: any run of bytes (runs of stars are one token).
    Star,
    /// `[...]`: one byte of the set (negation already applied).
    Class(Box<[u64; 4]>),
}

impl Token {
    /// Whether this single-byte token takes `c` (`Star` is handled apart).
    fn takes(&self, c: u8) -> bool {
        match self {
            Self::Byte(b) => *b == c,
            Self::Any | Self::Star => true,
            Self::Class(set) => set[usize::from(c >> 6)] & (1 << (c & 63)) != 0,
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
    /// Bytes any match has at least (tokens other than `*`).
    min_len: usize,
    has_star: bool,
}

impl Pattern {
    /// Compiles `pattern` (any bytes: an unclosed `[` is a literal `[`, a
    /// trailing `\` a literal `\`).
    pub fn compile(pattern: &[u8]) -> Self {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'[' => match class(pattern, i) {
                    Some((set, next)) => {
                        tokens.push(Token::Class(Box::new(set)));
                        i = next;
                    }
                    None => {
                        tokens.push(Token::Byte(b'['));
                        i += 1;
                    }
                },
                b'\\' if i + 1 < pattern.len() => {
                    tokens.push(Token::Byte(pattern[i + 1]));
                    i += 2;
                }
                c => {
                    tokens.push(Token::Byte(c));
                    i += 1;
                }
            }
        }
        let min_len = tokens.iter().filter(|t| **t != Token::Star).count();
        let has_star = min_len < tokens.len();
        Self {
            tokens,
            min_len,
            has_star,
        }
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &[u8]) -> bool {
        if text.len() < self.min_len || (!self.has_star && text.len() != self.min_len) {
            return false;
        }
        // Greedy, with one backtrack point at the last `*` (an earlier star
        // never needs to take more once a later one matched): no recursion,
        // and at most one pass over the text per position of that star.
        let tokens = &self.tokens;
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(token) if token.takes(text[t]) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            // Mismatch: let the last `*` swallow one more byte, if there is one.
            match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            }
        }
        tokens[p..].iter().all(|t| *t == Token::Star)
    }
}

/// Whether `text` matches `pattern` (compiles it: for one-off matches).
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::compile(pattern).matches(text)
}

/// The class starting at `pattern[open] == b'['`, as a set of bytes, and the
/// index after it; `None` if it is not closed.
fn class(pattern: &[u8], open: usize) -> Option<([u64; 4], usize)> {
    let mut set = [0u64; 4];
    let mut add = |lo: u8, hi: u8| {
        for c in lo..=hi {
            set[usize::from(c >> 6)] |= 1 << (c & 63);
        }
    };
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    loop {
        match *pattern.get(i)? {
            b']' => break,
            b'\\' => {
                let lit = *pattern.get(i + 1)?;
                add(lit, lit);
                i += 2;
            }
            lo if pattern.get(i + 1) == Some(&b'-')
                && pattern.get(i + 2).is_some_and(|&h| h != b']') =>
            {
                let hi = pattern[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                add(lo, hi);
                i += 3;
            }
            lit => {
                add(lit, lit);
                i += 1;
            }
        }
    }
    if negate {
        for word in &mut set {
            *word = !*word;
        }
    }
    Some((set, i + 1))
}

/// The literal bytes every match starts with (to narrow a key scan).
pub fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' if i + 1 < pattern.len() => {
                prefix.push(pattern[i + 1]);
                i += 2;
            }
            c => {
                prefix.push(c);
                i += 1;
            }
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_in_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hello world", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h[b-a]llo", "hallo", true),
            ("h[\\]]llo", "h]llo", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("a**b", "ab", true),
            ("[", "[", true),
            ("[ab", "[ab", true),
            ("abc", "abcd", false),
            ("abc*", "abc", true),
            ("a\\xb", "a\\b", false),
            ("a\\", "a\\", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn a_huge_class_is_one_token() {
        // The pattern that made the old matcher re-read a million-byte class
        // at every position of every key.
        let mut pattern = b"*[".to_vec();
        pattern.extend(std::iter::repeat_n(b'a', 1_000_000));
        pattern.push(b']');
        let compiled = Pattern::compile(&pattern);
        assert_eq!(compiled.tokens.len(), 2);
        assert!(compiled.matches(b"xyz-a"));
        assert!(!compiled.matches(b"xyz-b"));
    }

    #[test]
    fn the_literal_prefix_stops_at_the_first_wildcard() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"a\\*b?"), b"a*b");
        assert_eq!(literal_prefix(b"*x"), b"");
        assert_eq!(literal_prefix(b"plain"), b"plain");
    }
}
