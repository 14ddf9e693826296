//! The read commands, on any [`Store`]: the store itself, or a
//! transaction's view of it (whose reads see the transaction's own
//! writes). A connection's plain `GET` and `MGET` take faster paths in
//! `commands.rs` that copy the value straight from the engine into the
//! reply; everything else reads here.

use bitcask_cluster::Store;

use super::commands::{Cmd, bit_offset, engine_error, int_arg, now_ms};
use super::reply::Out;
use super::strings::{self, Unit};

const SYNTAX: &str = "ERR syntax error";

/// Bytes `MEMORY USAGE` adds to a key and its value: the key directory's
/// entry (location, version, expiry) and its share of the map.
const ENTRY_OVERHEAD: usize = 64;

/// A failed command: the error reply's text.
type CmdResult = Result<(), String>;

/// Runs the read command `cmd` against `db`, writing its reply into `out`.
pub fn read_command<S: Store + ?Sized>(
    db: &S,
    cmd: Cmd,
    args: &[&[u8]],
    out: &mut Out,
) -> CmdResult {
    let key = || args[1];
    match cmd {
        Cmd::Get => out.bulk_or_null(db.get(key()).map_err(engine_error)?.as_deref()),
        Cmd::Mget => {
            out.array(args.len() - 1);
            for k in &args[1..] {
                out.bulk_or_null(db.get(k).map_err(engine_error)?.as_deref());
            }
        }
        Cmd::Strlen => {
            let len = db.get(key()).map_err(engine_error)?.map_or(0, |v| v.len());
            out.int(len as i64);
        }
        Cmd::Exists | Cmd::Touch => {
            let n = args[1..].iter().filter(|k| db.contains(k)).count();
            out.int(n as i64);
        }
        Cmd::Type => out.simple(if db.contains(key()) { "string" } else { "none" }),
        Cmd::Ttl | Cmd::Pttl | Cmd::Expiretime | Cmd::Pexpiretime => {
            // -2 absent, -1 no expiry; else the time left (TTL rounds to
            // the nearest second) or the absolute time.
            let reply = match db.expiry(key()).map_err(engine_error)? {
                None => -2,
                Some(None) => -1,
                Some(Some(at)) => {
                    let left = i64::try_from(at.saturating_sub(now_ms())).unwrap_or(i64::MAX);
                    let at = i64::try_from(at).unwrap_or(i64::MAX);
                    match cmd {
                        Cmd::Ttl => left.saturating_add(500) / 1000,
                        Cmd::Pttl => left,
                        Cmd::Expiretime => at / 1000,
                        _ => at,
                    }
                }
            };
            out.int(reply);
        }
        Cmd::Getrange | Cmd::Substr => {
            let (start, end) = (int_arg(args[2])?, int_arg(args[3])?);
            let value = db.get(key()).map_err(engine_error)?.unwrap_or_default();
            out.bulk(strings::byte_range(&value, start, end));
        }
        Cmd::Getbit => {
            let offset = bit_offset(args[2])?;
            let value = db.get(key()).map_err(engine_error)?.unwrap_or_default();
            out.int(i64::from(strings::get_bit(&value, offset)));
        }
        Cmd::Bitcount => {
            let range = match &args[2..] {
                [] => None,
                [start, end] => Some((int_arg(start)?, int_arg(end)?, Unit::Byte)),
                [start, end, unit] => Some((int_arg(start)?, int_arg(end)?, unit_arg(unit)?)),
                _ => return Err(SYNTAX.to_string()),
            };
            let value = db.get(key()).map_err(engine_error)?.unwrap_or_default();
            let bits = match range {
                // Both from the end and crossed: empty, before clamping.
                Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
                Some((start, end, unit)) => strings::bit_range(value.len(), start, end, unit),
                None => strings::bit_range(value.len(), 0, -1, Unit::Byte),
            };
            out.int(bits.map_or(0, |b| strings::count_bits(&value, b)) as i64);
        }
        Cmd::Bitpos => {
            let bit = match int_arg(args[2])? {
                0 => 0,
                1 => 1,
                _ => return Err("ERR The bit argument must be 1 or 0.".to_string()),
            };
            let (start, end, unit) = match &args[3..] {
                [] => (0, None, Unit::Byte),
                [start] => (int_arg(start)?, None, Unit::Byte),
                [start, end] => (int_arg(start)?, Some(int_arg(end)?), Unit::Byte),
                [start, end, unit] => (int_arg(start)?, Some(int_arg(end)?), unit_arg(unit)?),
                _ => return Err(SYNTAX.to_string()),
            };
            let Some(value) = db.get(key()).map_err(engine_error)? else {
                // An absent key is all zeros.
                out.int(if bit == 1 { -1 } else { 0 });
                return Ok(());
            };
            let range = strings::bit_range(value.len(), start, end.unwrap_or(-1), unit);
            out.int(strings::bit_position(&value, bit, range, end.is_some()));
        }
        Cmd::Lcs => lcs(db, args, out)?,
        Cmd::Object => object(db, args, out)?,
        Cmd::Memory => {
            let sub = args[1];
            if !sub.eq_ignore_ascii_case(b"USAGE") || args.len() < 3 {
                return Err(format!(
                    "ERR MEMORY {} is not supported by bitcask (only MEMORY USAGE)",
                    String::from_utf8_lossy(sub)
                ));
            }
            match &args[3..] {
                [] => {}
                [word, n] if word.eq_ignore_ascii_case(b"SAMPLES") => {
                    int_arg(n)?;
                }
                _ => return Err(SYNTAX.to_string()),
            }
            let key = args[2];
            match db.get(key).map_err(engine_error)? {
                Some(value) => out.int((key.len() + value.len() + ENTRY_OVERHEAD) as i64),
                None => out.null(),
            }
        }
        Cmd::Dbsize => out.int(db.len() as i64),
        other => return Err(format!("ERR command '{}' is not a read", other.name())),
    }
    Ok(())
}

/// A `BITCOUNT`/`BITPOS` unit: `BYTE` or `BIT`.
fn unit_arg(arg: &[u8]) -> Result<Unit, String> {
    if arg.eq_ignore_ascii_case(b"BYTE") {
        Ok(Unit::Byte)
    } else if arg.eq_ignore_ascii_case(b"BIT") {
        Ok(Unit::Bit)
    } else {
        Err(SYNTAX.to_string())
    }
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`.
fn lcs<S: Store + ?Sized>(db: &S, args: &[&[u8]], out: &mut Out) -> Result<(), String> {
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut i = 3;
    while i < args.len() {
        let arg = args[i];
        if arg.eq_ignore_ascii_case(b"LEN") {
            len_only = true;
        } else if arg.eq_ignore_ascii_case(b"IDX") {
            idx = true;
        } else if arg.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            with_len = true;
        } else if arg.eq_ignore_ascii_case(b"MINMATCHLEN") && i + 1 < args.len() {
            min_len = usize::try_from(int_arg(args[i + 1])?).unwrap_or(0);
            i += 1;
        } else {
            return Err(SYNTAX.to_string());
        }
        i += 1;
    }
    if len_only && idx {
        return Err(
            "ERR If you want both the length and indexes, please just use IDX.".to_string(),
        );
    }
    let a = db.get(args[1]).map_err(engine_error)?.unwrap_or_default();
    let b = db.get(args[2]).map_err(engine_error)?.unwrap_or_default();
    let found = strings::lcs(&a, &b, min_len).ok_or_else(|| {
        format!(
            "ERR Insufficient memory, transient memory for LCS exceeds the limit ({} cells)",
            strings::MAX_LCS_CELLS
        )
    })?;
    if idx {
        out.map(2);
        out.bulk(b"matches");
        out.array(found.matches.len());
        for m in &found.matches {
            out.array(2 + usize::from(with_len));
            for (first, last) in [m.a, m.b] {
                out.array(2);
                out.int(first as i64);
                out.int(last as i64);
            }
            if with_len {
                out.int(m.len as i64);
            }
        }
        out.bulk(b"len");
        out.int(found.sequence.len() as i64);
    } else if len_only {
        out.int(found.sequence.len() as i64);
    } else {
        out.bulk(&found.sequence);
    }
    Ok(())
}

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key` and `OBJECT HELP`.
fn object<S: Store + ?Sized>(db: &S, args: &[&[u8]], out: &mut Out) -> Result<(), String> {
    let sub = args[1];
    let is = |word: &str| sub.eq_ignore_ascii_case(word.as_bytes());
    if is("HELP") && args.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Not tracked by bitcask (no LFU eviction).",
            "IDLETIME <key>",
            "    Not tracked by bitcask (no access times are kept).",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key> (always 1: values are not shared).",
        ];
        out.array(lines.len());
        for line in lines {
            out.simple(line);
        }
        return Ok(());
    }
    let known = is("ENCODING") || is("REFCOUNT") || is("IDLETIME") || is("FREQ");
    if !known || args.len() != 3 {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
    let Some(value) = db.get(args[2]).map_err(engine_error)? else {
        out.null();
        return Ok(());
    };
    if is("ENCODING") {
        out.bulk(strings::encoding(&value).as_bytes());
    } else if is("REFCOUNT") {
        out.int(1);
    } else if is("IDLETIME") {
        return Err("ERR bitcask keeps no access times, so idle time is not tracked.".to_string());
    } else {
        return Err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked."
                .to_string(),
        );
    }
    Ok(())
}
