//! Arithmetic on string values, as Redis's string commands define it:
//! ranges (`GETRANGE`, `BITCOUNT`, `BITPOS`), bits (`SETBIT`, `GETBIT`,
//! `BITOP`), `SETRANGE`, floats (`INCRBYFLOAT`), the longest common
//! subsequence (`LCS`) and the encoding `OBJECT ENCODING` reports. Pure
//! functions on bytes; the commands that read and write the store are in
//! `commands.rs` and `reads.rs`.

/// Redis's largest string (`proto-max-bulk-len`, 512 MiB): bit offsets at
/// or past `8 *` this are out of range whatever the store's value limit.
pub const MAX_BULK: u64 = 512 << 20;

/// Most cells (one per pair of positions) `LCS` may compute: its table is
/// four bytes a cell, so this bounds one command's memory to 64 MiB.
pub const MAX_LCS_CELLS: u64 = 16 << 20;

/// `GETRANGE`'s slice of `value`: `start` and `end` inclusive, negative
/// counting from the end, clamped as Redis (7.4 and later) clamps them: an
/// end still negative after counting from the end, or a start past the
/// end, is an empty slice.
pub fn byte_range(value: &[u8], start: i64, end: i64) -> &[u8] {
    // Redis's steps (t_string.c, getrangeCommand), in order.
    let len = value.len() as i64;
    let start = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let end = if end < 0 {
        end.saturating_add(len)
    } else {
        end
    };
    if len == 0 || start >= len || end < 0 || start > end {
        return &[];
    }
    let (from, to) = (start.max(0), end.min(len - 1));
    &value[from as usize..=to as usize]
}

/// Whether a `BITCOUNT`/`BITPOS` range counts bytes or bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `BYTE` (the default).
    Byte,
    /// `BIT`.
    Bit,
}

/// The bits (first and last, inclusive) that a `BITCOUNT`/`BITPOS` range
/// `start..=end` in `unit`s covers in a value of `len` bytes, clamped as
/// Redis clamps it (negative counts from the end); `None` if empty.
pub fn bit_range(len: usize, start: i64, end: i64, unit: Unit) -> Option<(u64, u64)> {
    let total = match unit {
        Unit::Byte => len as i64,
        Unit::Bit => (len as i64).saturating_mul(8),
    };
    let start = if start < 0 {
        start.saturating_add(total)
    } else {
        start
    }
    .max(0);
    let end = if end < 0 {
        end.saturating_add(total)
    } else {
        end
    }
    .max(0)
    .min(total - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match unit {
        Unit::Byte => (start * 8, end * 8 + 7),
        Unit::Bit => (start, end),
    })
}

/// Bit `offset` of `value` (bit 0 is the high bit of the first byte);
/// 0 past the end.
pub fn get_bit(value: &[u8], offset: u64) -> u8 {
    let byte = usize::try_from(offset / 8).unwrap_or(usize::MAX);
    value
        .get(byte)
        .map_or(0, |b| (b >> (7 - (offset % 8) as u32)) & 1)
}

/// Sets bit `offset` of `value` to `on`, growing it with zero bytes as
/// needed; returns the bit it had.
pub fn set_bit(value: &mut Vec<u8>, offset: u64, on: bool) -> u8 {
    let byte = (offset / 8) as usize;
    if value.len() <= byte {
        value.resize(byte + 1, 0);
    }
    let mask = 1u8 << (7 - (offset % 8) as u32);
    let old = u8::from(value[byte] & mask != 0);
    if on {
        value[byte] |= mask;
    } else {
        value[byte] &= !mask;
    }
    old
}

/// The set bits of `value` between bits `first` and `last` (inclusive).
pub fn count_bits(value: &[u8], (first, last): (u64, u64)) -> u64 {
    let (first_byte, last_byte) = ((first / 8) as usize, (last / 8) as usize);
    let mut count: u64 = value[first_byte..=last_byte]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    // Take off the bits of the edge bytes outside the range.
    for bit in first_byte as u64 * 8..first {
        count -= u64::from(get_bit(value, bit));
    }
    for bit in last + 1..(last_byte as u64 + 1) * 8 {
        count -= u64::from(get_bit(value, bit));
    }
    count
}

/// `BITPOS`: the first bit equal to `bit` within `range` of `value`. Not
/// found: -1, except when looking for a 0 with no end given, where the
/// value counts as followed by zeros (the bit after the range).
pub fn bit_position(value: &[u8], bit: u8, range: Option<(u64, u64)>, end_given: bool) -> i64 {
    let Some((first, last)) = range else {
        return -1;
    };
    let mut pos = first;
    while pos <= last {
        // Whole bytes that cannot hold the bit are skipped at once.
        if pos % 8 == 0 && pos + 7 <= last {
            let byte = value[(pos / 8) as usize];
            if (bit == 1 && byte == 0) || (bit == 0 && byte == 0xFF) {
                pos += 8;
                continue;
            }
        }
        if get_bit(value, pos) == bit {
            return pos as i64;
        }
        pos += 1;
    }
    if bit == 0 && !end_given {
        (last + 1) as i64
    } else {
        -1
    }
}

/// A `BITOP` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `XOR`.
    Xor,
    /// `NOT` (one source).
    Not,
}

impl BitOp {
    /// The operation named `name` (any case).
    pub fn parse(name: &[u8]) -> Option<Self> {
        [
            ("AND", Self::And),
            ("OR", Self::Or),
            ("XOR", Self::Xor),
            ("NOT", Self::Not),
        ]
        .into_iter()
        .find(|(word, _)| name.eq_ignore_ascii_case(word.as_bytes()))
        .map(|(_, op)| op)
    }

    /// The result over `sources` (absent keys are empty), as long as the
    /// longest; shorter sources count as padded with zero bytes.
    pub fn apply(self, sources: &[Vec<u8>]) -> Vec<u8> {
        let len = sources.iter().map(Vec::len).max().unwrap_or(0);
        let byte = |s: &Vec<u8>, i: usize| s.get(i).copied().unwrap_or(0);
        (0..len)
            .map(|i| {
                let mut bytes = sources.iter().map(|s| byte(s, i));
                let first = bytes.next().unwrap_or(0);
                match self {
                    Self::And => bytes.fold(first, |acc, b| acc & b),
                    Self::Or => bytes.fold(first, |acc, b| acc | b),
                    Self::Xor => bytes.fold(first, |acc, b| acc ^ b),
                    Self::Not => !first,
                }
            })
            .collect()
    }
}

/// `value` with `patch` written at `offset`, zero bytes filling any gap.
pub fn set_range(value: &[u8], offset: usize, patch: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    let end = offset + patch.len();
    if out.len() < end {
        out.resize(end, 0);
    }
    out[offset..end].copy_from_slice(patch);
    out
}

/// A float as `INCRBYFLOAT` reads one: the whole argument, no spaces, not
/// NaN (infinities parse, and the sum is then refused).
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.len() > 5000 || text.trim() != text {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// A float as `INCRBYFLOAT` answers and stores it: plain decimal, no
/// exponent, the shortest digits that read back as the same number, no
/// negative zero. (Redis computes in 80-bit `long double` and prints 17
/// decimals; here it is 64-bit, so the last digits can differ.)
pub fn format_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    format!("{f}")
}

/// What `OBJECT ENCODING` answers for a value, by Redis's rules for a
/// stored string: `int` if it is a 64-bit integer written canonically
/// (as Redis would store it as a number), `embstr` up to 44 bytes, `raw`
/// beyond. (Redis also answers `raw` for a short value last changed in
/// place by APPEND, SETRANGE or SETBIT; here values are not kept in a
/// mutable buffer, so the encoding follows the value alone.)
pub fn encoding(value: &[u8]) -> &'static str {
    let canonical_int = value.len() <= 20
        && std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|n| n.to_string().as_bytes() == value);
    if canonical_int {
        "int"
    } else if value.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// One matching run of an `LCS`: its positions in each string (first and
/// last, inclusive) and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Range in the first string.
    pub a: (usize, usize),
    /// Range in the second string.
    pub b: (usize, usize),
    /// Its length.
    pub len: usize,
}

/// The longest common subsequence of `a` and `b` and its matching runs,
/// last first (the order Redis lists them in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lcs {
    /// The subsequence.
    pub sequence: Vec<u8>,
    /// The runs of at least `min_len` bytes.
    pub matches: Vec<Match>,
}

/// Computes the [`Lcs`] of `a` and `b` (Redis's dynamic programming and
/// walk back, t_string.c), keeping runs of at least `min_len`; `None` if
/// the table would exceed [`MAX_LCS_CELLS`].
pub fn lcs(a: &[u8], b: &[u8], min_len: usize) -> Option<Lcs> {
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).checked_mul(blen as u64 + 1)?;
    if cells > MAX_LCS_CELLS {
        return None;
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let mut sequence = Vec::with_capacity(table[alen * width + blen] as usize);
    let mut matches = Vec::new();
    // The open run: first and last positions in a and b.
    let mut run: Option<((usize, usize), (usize, usize))> = None;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            sequence.push(a[i - 1]);
            run = match run {
                None => Some(((i - 1, i - 1), (j - 1, j - 1))),
                Some(((a_start, a_end), (b_start, b_end))) if a_start == i && b_start == j => {
                    Some(((a_start - 1, a_end), (b_start - 1, b_end)))
                }
                open => {
                    emit = true;
                    open
                }
            };
            if let Some(((a_start, _), (b_start, _))) = run
                && (a_start == 0 || b_start == 0)
            {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit && let Some((a_range, b_range)) = run.take() {
            let len = a_range.1 - a_range.0 + 1;
            if len >= min_len {
                matches.push(Match {
                    a: a_range,
                    b: b_range,
                    len,
                });
            }
        }
    }
    sequence.reverse();
    Some(Lcs { sequence, matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_clamps_as_redis_does() {
        let v = b"Hello World";
        for (start, end, want) in [
            (0, 3, &b"Hell"[..]),
            (0, -1, b"Hello World"),
            (-3, -1, b"rld"),
            (5, 3, b""),
            (5, 5000, b" World"),
            (-5000, 10000, b"Hello World"),
            (-10, -9, b"el"),
            (-20, -15, b""),
            (0, -100, b""),
            (-100, -99, b""),
            (1, -100, b""),
            (-1, -5, b""),
            (20, 30, b""),
        ] {
            assert_eq!(byte_range(v, start, end), want, "{start} {end}");
        }
        assert_eq!(byte_range(b"", 0, -1), b"");
    }

    #[test]
    fn bits_are_numbered_from_the_high_bit_of_the_first_byte() {
        let mut v = Vec::new();
        assert_eq!(set_bit(&mut v, 1, true), 0);
        assert_eq!(v, vec![0b0100_0000]);
        assert_eq!(set_bit(&mut v, 15, true), 0);
        assert_eq!(v, vec![0b0100_0000, 0b0000_0001]);
        assert_eq!(set_bit(&mut v, 1, false), 1);
        assert_eq!(
            (get_bit(&v, 15), get_bit(&v, 14), get_bit(&v, 1000)),
            (1, 0, 0)
        );
        // "foobar" as in Redis's documentation of BITCOUNT.
        let foobar = b"foobar";
        let all = bit_range(6, 0, -1, Unit::Byte);
        assert_eq!(count_bits(foobar, all.expect("range")), 26);
        assert_eq!(
            count_bits(foobar, bit_range(6, 1, 1, Unit::Byte).expect("r")),
            6
        );
        assert_eq!(
            count_bits(foobar, bit_range(6, 5, 30, Unit::Bit).expect("r")),
            17
        );
        assert_eq!(bit_range(6, 4, 2, Unit::Byte), None);
        assert_eq!(bit_range(0, 0, -1, Unit::Byte), None);
    }

    #[test]
    fn bitpos_finds_the_first_bit_and_pads_with_zeros_only_without_an_end() {
        let v = [0xFF, 0xF0, 0x00];
        let whole = bit_range(3, 0, -1, Unit::Byte);
        assert_eq!(bit_position(&v, 0, whole, false), 12);
        assert_eq!(
            bit_position(&v, 1, bit_range(3, 2, -1, Unit::Byte), true),
            -1
        );
        let ones = [0xFF, 0xFF];
        assert_eq!(
            bit_position(&ones, 0, bit_range(2, 0, -1, Unit::Byte), false),
            16
        );
        assert_eq!(
            bit_position(&ones, 0, bit_range(2, 0, -1, Unit::Byte), true),
            -1
        );
        assert_eq!(bit_position(&v, 1, bit_range(3, 7, 15, Unit::Bit), true), 7);
        assert_eq!(bit_position(&v, 0, None, false), -1);
    }

    #[test]
    fn bitop_pads_shorter_sources_with_zeros() {
        let (a, b) = (vec![0b1100, 0xFF], vec![0b1010]);
        assert_eq!(BitOp::And.apply(&[a.clone(), b.clone()]), vec![0b1000, 0]);
        assert_eq!(BitOp::Or.apply(&[a.clone(), b.clone()]), vec![0b1110, 0xFF]);
        assert_eq!(BitOp::Xor.apply(&[a.clone(), b]), vec![0b0110, 0xFF]);
        assert_eq!(BitOp::Not.apply(&[a]), vec![!0b1100u8, 0]);
        assert_eq!(BitOp::parse(b"xor"), Some(BitOp::Xor));
        assert_eq!(BitOp::parse(b"nand"), None);
    }

    #[test]
    fn floats_read_strictly_and_print_shortest() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"+inf"), Some(f64::INFINITY));
        for bad in [&b" 1"[..], b"1 ", b"", b"nan", b"1\x002", b"abc"] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(17179869184.0 + 1.5), "17179869185.5");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(3.0), "3");
    }

    #[test]
    fn encodings_follow_redis_rules_for_a_stored_string() {
        assert_eq!(encoding(b"12345"), "int");
        assert_eq!(encoding(b"-9223372036854775808"), "int");
        assert_eq!(encoding(b"012"), "embstr", "not canonical");
        assert_eq!(encoding(b"+1"), "embstr");
        assert_eq!(encoding(b"9223372036854775808"), "embstr", "too big");
        assert_eq!(encoding(&[b'x'; 44]), "embstr");
        assert_eq!(encoding(&[b'x'; 45]), "raw");
    }

    #[test]
    fn lcs_matches_redis_example() {
        // The example from Redis's LCS documentation.
        let found = lcs(b"ohmytext", b"mynewtext", 0).expect("small");
        assert_eq!(found.sequence, b"mytext");
        assert_eq!(
            found.matches,
            vec![
                Match {
                    a: (4, 7),
                    b: (5, 8),
                    len: 4
                },
                Match {
                    a: (2, 3),
                    b: (0, 1),
                    len: 2
                },
            ]
        );
        let long_only = lcs(b"ohmytext", b"mynewtext", 4).expect("small");
        assert_eq!(long_only.matches.len(), 1);
        assert_eq!(lcs(b"", b"abc", 0).expect("empty").sequence, b"");
        let big = vec![0u8; 5000];
        assert!(lcs(&big, &big, 0).is_none(), "25M cells: over the limit");
    }
}
