//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature
//! only; not a stable API): the decoders and recovery over arbitrary bytes.
//! Each must return, never panic, whatever the input; the recovery target
//! also checks that whatever opens reads back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::datafile::{FILE_HEADER_LEN, FileHeader, KIND_DATA, KIND_HINT};
use crate::hint::Hint;
use crate::record::{self, RecordKind};
use crate::{Bitcask, Options, SyncPolicy};

/// Decodes `bytes` as one whole record, as the read path does.
pub fn record(bytes: &[u8]) {
    if let Ok(rec) = record::decode_whole(bytes) {
        assert_eq!(
            record::HEADER_LEN + rec.key.len() + rec.value.len(),
            bytes.len()
        );
    }
}

/// Verifies and walks a hint file made of a valid header, `body`, and a
/// valid checksum (so that the parser behind the checksum is reached), for
/// a data file of `data_len` bytes. Returns the entries it yields.
pub fn hint(body: &[u8], data_len: u64) -> usize {
    let header = FileHeader {
        file_kind: KIND_HINT,
        file_id: 1,
        seq_floor: 1,
        flags: 0,
    };
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(body);
    let crc = crate::crc::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let data_header = FileHeader {
        file_kind: KIND_DATA,
        file_id: 1,
        seq_floor: 1,
        flags: 0,
    };
    match Hint::from_bytes_for_fuzzing(bytes, &data_header, data_len) {
        Some(hint) => hint
            .entries()
            .inspect(|e| assert!(u64::from(e.offset) + u64::from(e.len) <= data_len))
            .count(),
        None => 0,
    }
}

/// A fresh directory for one run.
fn scratch_dir() -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bitcask-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Builds data file 1 from `input` and opens a store on it: read-only, then
/// writable (which cuts a torn tail), then checks and repairs it. Whatever
/// opens must list only keys that read back (or fail with an error), and
/// check must agree with the writable open on what survives.
///
/// The first input byte picks the mode: odd, the rest is the file's bytes
/// after a valid header; even, the rest describes records that are encoded
/// with valid checksums (kind, seq, key and value lengths, bytes), and the
/// last two bytes, if any are left, name one byte to flip.
pub fn recovery(input: &[u8]) {
    let Ok(dir) = scratch_dir() else { return };
    let mut file = FileHeader {
        file_kind: KIND_DATA,
        file_id: 1,
        seq_floor: 1,
        flags: 0,
    }
    .encode()
    .to_vec();
    match input.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => file.extend_from_slice(rest),
        Some((_, rest)) => encode_records(rest, &mut file),
        None => {}
    }
    if std::fs::write(dir.join("0000000001.data"), &file).is_ok() {
        open_and_read(&dir, true);
        // Check and a writable open apply one rule (survival.rs): damage
        // found means the open fails; none found means the open succeeds
        // and keeps exactly the records check counted.
        let before = crate::check(&dir).ok();
        let opened = open_and_read(&dir, false);
        if let Some(before) = before {
            let _ = before.to_string();
            assert_eq!(
                opened,
                !before.is_damaged(),
                "check and open disagree: {before}"
            );
            if opened {
                let after = crate::check(&dir).expect("check after a clean open");
                assert!(!after.is_damaged(), "{after}");
                assert!(after.files.iter().all(|f| f.torn_tail.is_none()), "{after}");
                assert_eq!(
                    after.records(),
                    before.records(),
                    "before: {before}\nafter: {after}"
                );
            }
        }
        if crate::repair(&dir).is_ok() {
            // A repaired store opens.
            let opened = Bitcask::open_with(&dir, options(false));
            assert!(
                opened.is_ok(),
                "a repaired store must open: {:?}",
                opened.err()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn options(read_only: bool) -> Options {
    Options::new()
        .sync(SyncPolicy::Never)
        .read_only(read_only)
        .merge_trigger(None)
}

/// Opens the store and reads every key; whether it opened.
fn open_and_read(dir: &std::path::Path, read_only: bool) -> bool {
    let Ok(db) = Bitcask::open_with(dir, options(read_only)) else {
        return false;
    };
    for key in db.keys().collect::<Vec<_>>() {
        // A listed key reads back, or the damage is reported: never garbage.
        match db.get(&key) {
            Ok(Some(_)) | Err(crate::Error::Corruption { .. }) => {}
            Ok(None) => {} // expired between listing and reading
            Err(other) => panic!("reading a listed key failed: {other}"),
        }
    }
    let _ = db.close();
    true
}

/// Encodes records described by `spec` (see [`recovery`]) after `out`'s header.
fn encode_records(spec: &[u8], out: &mut Vec<u8>) {
    let mut rest = spec;
    let mut seq = 1u64;
    while let [kind, step, key_len, value_len, tail @ ..] = rest {
        let (key_len, value_len) = (usize::from(*key_len % 32), usize::from(*value_len));
        if tail.len() < key_len + value_len {
            break;
        }
        let (key, tail) = tail.split_at(key_len);
        let (value, tail) = tail.split_at(value_len);
        let kind = match kind % 5 {
            0 => RecordKind::Put,
            1 => RecordKind::Delete,
            2 => RecordKind::BatchPut,
            3 => RecordKind::BatchDelete,
            _ => RecordKind::Mark,
        };
        seq += u64::from(*step % 4);
        if record::encode_into(out, seq, 0, kind, key, value).is_err() {
            break;
        }
        rest = tail;
    }
    if let [hi, lo] = rest
        && out.len() > FILE_HEADER_LEN
    {
        let at = FILE_HEADER_LEN
            + usize::from(u16::from_le_bytes([*lo, *hi])) % (out.len() - FILE_HEADER_LEN);
        out[at] ^= 0x5a;
    }
}

#[cfg(test)]
mod tests {
    //! The fuzz targets' properties, run as property tests in the normal
    //! suite (the fuzzers in fuzz/ search the same code much longer).

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_decode_as_a_record_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            super::record(&bytes);
        }

        #[test]
        fn any_hint_body_with_a_valid_checksum_verifies_or_is_refused(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            data_len in 0u64..10_000,
        ) {
            super::hint(&body, data_len);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_data_file_opens_reads_back_or_fails_cleanly_and_repair_makes_it_open(
            input in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            super::recovery(&input);
        }
    }
}
