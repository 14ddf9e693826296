//! `export` and `import`: a store as JSON lines, one record per line.
//!
//! ```text
//! {"key": "user/1", "value": "Ada"}
//! {"key": "avatar/1", "value_base64": "iVBORw0K..."}
//! {"key": "session/9", "value": "x", "expires_at_ms": 1795000000000}
//! ```
//!
//! A key or value that is not UTF-8 is written as `key_base64` /
//! `value_base64` (standard alphabet, padded). `expires_at_ms` (Unix
//! milliseconds) appears only on values that expire; import keeps it, and
//! skips records that have expired meanwhile. Unknown fields are ignored.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use base64::Engine;
use bitcask::{Bitcask, KeyRange, WriteOptions};
use serde_json::{Map, Value};

use crate::failure::Failure;
use crate::output;

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Records written.
    pub records: u64,
}

/// Writes every live key with `prefix` of `db`, in key order, to `out`.
pub fn export(db: &Bitcask, prefix: &str, out: impl Write) -> Result<Exported, Failure> {
    let mut out = BufWriter::new(out);
    let bar = output::progress(db.len() as u64, false, "exporting");
    let mut exported = Exported::default();
    let write_failed = |e: std::io::Error| Failure::failed(format!("cannot write the export: {e}"));
    for key in db.keys_in(KeyRange::prefix(prefix.as_bytes().to_vec())) {
        bar.inc(1);
        // A key that expired since it was listed is skipped.
        let Some(found) = db.get_versioned(&key)? else {
            continue;
        };
        let mut line = Map::new();
        output::value_fields(&mut line, "key", &key);
        output::value_fields(&mut line, "value", &found.value);
        if let Some(at) = found.expires_at_ms {
            line.insert("expires_at_ms".into(), at.into());
        }
        serde_json::to_writer(&mut out, &Value::Object(line))
            .map_err(|e| Failure::failed(format!("cannot write the export: {e}")))?;
        out.write_all(b"\n").map_err(write_failed)?;
        exported.records += 1;
    }
    out.flush().map_err(write_failed)?;
    bar.finish_and_clear();
    Ok(exported)
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Records stored.
    pub records: u64,
    /// Records skipped because they had expired.
    pub expired: u64,
}

/// Stores every record read from `source` (a file, or stdin for `None` or
/// `-`) into `db`. Stops at the first line that is not a valid record,
/// naming it; the records before it are stored (importing again after
/// fixing the line gives the same store).
pub fn import(db: &Bitcask, source: Option<&Path>) -> Result<Imported, Failure> {
    let (reader, bar): (Box<dyn Read>, _) = match source {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::failed(format!("cannot open {}: {e}", path.display())))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            (Box::new(file), output::progress(len, true, "importing"))
        }
        _ => (
            Box::new(std::io::stdin().lock()),
            output::spinner("importing"),
        ),
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut imported = Imported::default();
    let mut line = String::new();
    let mut number = 0u64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| Failure::failed(format!("cannot read the import: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        bar.inc(read as u64);
        if line.trim().is_empty() {
            continue;
        }
        let at_line = |f: Failure| {
            f.context(&format!("line {number}")).hint(format!(
                "{} records before it were imported; fix the line and import again",
                imported.records
            ))
        };
        let record = parse_record(&line).map_err(at_line)?;
        let mut options = WriteOptions::new();
        if let Some(at) = record.expires_at_ms {
            if at <= now_ms {
                imported.expired += 1;
                continue;
            }
            options = options.expires_at_ms(at);
        }
        db.put_with(&record.key, &record.value, options)
            .map_err(|e| at_line(e.into()))?;
        imported.records += 1;
    }
    bar.finish_and_clear();
    Ok(imported)
}

/// One record of an export.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    key: Vec<u8>,
    value: Vec<u8>,
    expires_at_ms: Option<u64>,
}

fn parse_record(line: &str) -> Result<Record, Failure> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| Failure::usage(format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Failure::usage("not a JSON object"));
    };
    let expires_at_ms = match map.get("expires_at_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|&ms| ms > 0).ok_or_else(|| {
            Failure::usage("expires_at_ms must be a positive integer (Unix milliseconds)")
        })?),
    };
    Ok(Record {
        key: bytes_field(&map, "key")?,
        value: bytes_field(&map, "value")?,
        expires_at_ms,
    })
}

/// `name` as text, or `name_base64` decoded: exactly one must be there.
fn bytes_field(map: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Failure> {
    let encoded_name = format!("{name}_base64");
    match (map.get(name), map.get(&encoded_name)) {
        (Some(Value::String(text)), None) => Ok(text.clone().into_bytes()),
        (None, Some(Value::String(encoded))) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| Failure::usage(format!("{encoded_name} is not base64: {e}"))),
        (Some(_), Some(_)) => Err(Failure::usage(format!(
            "both {name} and {encoded_name}: give one"
        ))),
        (None, None) => Err(Failure::usage(format!("no {name} (or {encoded_name})"))),
        _ => Err(Failure::usage(format!("{name} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_from_text_base64_and_expiry() {
        let r = parse_record(r#"{"key": "k", "value": "v", "expires_at_ms": 5, "extra": 1}"#)
            .expect("parse");
        assert_eq!(
            r,
            Record {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expires_at_ms: Some(5)
            }
        );
        let r = parse_record(r#"{"key_base64": "/w==", "value_base64": "AAE="}"#).expect("parse");
        assert_eq!((r.key, r.value), (vec![0xff], vec![0, 1]));
        for bad in [
            "nope",
            "[1]",
            r#"{"value": "v"}"#,
            r#"{"key": "k"}"#,
            r#"{"key": 1, "value": "v"}"#,
            r#"{"key": "k", "key_base64": "aw==", "value": "v"}"#,
            r#"{"key": "k", "value_base64": "***"}"#,
            r#"{"key": "k", "value": "v", "expires_at_ms": -1}"#,
        ] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
    }
}
