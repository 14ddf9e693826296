//! A Bitcask-style key-value storage engine: append-only, checksummed data
//! files and an in-memory key directory, so a write is one append and a read
//! is one positioned read.
//!
//! ```
//! use bitcask::{Bitcask, Options, SyncPolicy};
//!
//! # fn main() -> bitcask::Result<()> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let db = Bitcask::open_with(dir.path(), Options::new().sync(SyncPolicy::Never))?;
//! db.put(b"hello", b"world")?;
//! assert_eq!(db.get(b"hello")?.as_deref(), Some(&b"world"[..]));
//! assert!(db.delete(b"hello")?);
//! assert_eq!(db.get(b"hello")?, None);
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! Durability is a choice made at open ([`SyncPolicy`]); the on-disk format
//! and the crash protocols are specified in `docs/FORMAT.md`.

mod datafile;
mod db;
mod durability;
mod error;
#[cfg(test)]
mod failpoint;
mod keybuf;
mod keydir;
mod lock;
mod options;
mod readmap;
mod record;
mod recovery;

pub use db::Bitcask;
pub use error::{CorruptionKind, Error, Result};
pub use keydir::Keys;
pub use options::{Options, SyncPolicy};

/// Compiles the examples in the repository's README as doctests, so they
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Bitcask>();
        assert_send_sync::<Error>();
    }
}
