//! The read commands, on any [`Store`]: the store itself, or a
//! transaction's view of it (whose reads see the transaction's own
//! writes). A connection's plain `GET` and `MGET` take faster paths in
//! `commands.rs` that copy the value straight from the engine into the
//! reply; everything else reads here.

use bitcask_cluster::Store;

use super::commands::{Cmd, engine_error, int_arg, now_ms};
use super::reply::Out;

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
            out.bulk(byte_range(&value, start, end));
        }
        Cmd::Dbsize => out.int(db.len() as i64),
        other => return Err(format!("ERR command '{}' is not a read", other.name())),
    }
    Ok(())
}

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
}
