//! State files: a small value replaced whole and atomically (write a
//! temporary file, fsync it, rename it over the old one, fsync the
//! directory). The journal keeps its floor in one; the cluster keeps its
//! vote in one (`docs/FORMAT.md`, "Journal").

use std::path::Path;

use crate::crc::crc32c;
use crate::error::{CorruptionKind, Error, IoContext, Result};

const MAGIC: [u8; 8] = *b"BCSTATE\0";
const FORMAT_VERSION: u16 = 1;
/// Magic, version, reserved, length.
const HEADER_LEN: usize = 16;
/// Largest value a state file holds.
pub const MAX_STATE_LEN: usize = 1 << 20;

/// Replaces `dir/name` with `value`, durably: when this returns, a power
/// cut leaves the new value; if it fails or is cut short, the old one (or
/// none, if there was none) and at most a `name.tmp`.
pub fn write_state_file(dir: &Path, name: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_STATE_LEN {
        return Err(Error::InvalidArgument {
            reason: "a state file holds at most 1 MiB",
        });
    }
    let mut bytes = Vec::with_capacity(HEADER_LEN + value.len() + 4);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    let len = crate::error::disk_u32(value.len(), "a state file value past 4 GiB")?;
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(value);
    let crc = crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());

    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let file = crate::disk::create(&tmp).at(&tmp)?;
    crate::disk::write_at(&file, &bytes, 0).at(&tmp)?;
    crate::disk::sync_all(&file).at(&tmp)?;
    drop(file);
    crate::disk::rename(&tmp, &path).at(&path)?;
    crate::disk::sync_dir(dir).at(dir)
}

/// The value in `dir/name`, or `None` if there is no such file. A file
/// that does not verify is [`Error::Corruption`], never `None`: a state
/// file holds what must not be forgotten (a vote, a floor).
pub fn read_state_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path, source }),
    };
    let corrupt = |kind| Error::Corruption {
        path: path.clone(),
        offset: 0,
        kind,
    };
    if bytes.len() < HEADER_LEN + 4 {
        return Err(corrupt(CorruptionKind::Truncated));
    }
    if bytes[..8] != MAGIC {
        return Err(corrupt(CorruptionKind::BadMagic));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc);
    if u32::from_le_bytes(stored) != crc32c(body) {
        return Err(corrupt(CorruptionKind::BadChecksum));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    if HEADER_LEN + len != body.len() {
        return Err(corrupt(CorruptionKind::Truncated));
    }
    Ok(Some(body[HEADER_LEN..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_is_replaced_whole_and_damage_is_never_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_state_file(dir.path(), "VOTE").expect("read"), None);
        write_state_file(dir.path(), "VOTE", b"term 1").expect("write");
        write_state_file(dir.path(), "VOTE", b"term 2").expect("replace");
        assert_eq!(
            read_state_file(dir.path(), "VOTE")
                .expect("read")
                .as_deref(),
            Some(&b"term 2"[..])
        );
        assert!(!dir.path().join("VOTE.tmp").exists());
        let path = dir.path().join("VOTE");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 5;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).expect("damage");
        assert!(matches!(
            read_state_file(dir.path(), "VOTE"),
            Err(Error::Corruption { .. })
        ));
        std::fs::write(&path, b"BCSTATE").expect("cut short");
        assert!(matches!(
            read_state_file(dir.path(), "VOTE"),
            Err(Error::Corruption { .. })
        ));
    }
}
