//! [`Store`]: the engine operations an application's write commands use,
//! so that one implementation of a command runs against the store itself
//! (a single node) or against the state machine's [`Overlay`] (a cluster,
//! where every node must apply it to the same effect).
//!
//! [`Overlay`]: crate::overlay::Overlay

use bitcask::{Batch, Bitcask, Result, Versioned, WriteOptions};

/// Reads and writes of one key-value store, with the meaning
/// [`Bitcask`]'s methods of the same names give them.
pub trait Store {
    /// [`Bitcask::get`].
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// [`Bitcask::get_versioned`].
    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>>;
    /// [`Bitcask::contains`].
    fn contains(&self, key: &[u8]) -> bool;
    /// [`Bitcask::put_with`].
    fn put_with(&self, key: &[u8], value: &[u8], options: WriteOptions) -> Result<u64>;
    /// [`Bitcask::delete_with`].
    fn delete_with(&self, key: &[u8], options: WriteOptions) -> Result<Option<u64>>;
    /// [`Bitcask::write_batch`].
    fn write_batch(&self, batch: &Batch) -> Result<Option<u64>>;
    /// [`Bitcask::expiry`]: `None` if the key is absent, else its expiry
    /// (`None`: never).
    fn expiry(&self, key: &[u8]) -> Result<Option<Option<u64>>> {
        Ok(self.get_versioned(key)?.map(|v| v.expires_at_ms))
    }
    /// [`Bitcask::len`].
    fn len(&self) -> usize;
    /// [`Bitcask::max_value_size`].
    fn max_value_size(&self) -> usize;
    /// Refuses a value of `len` bytes over [`Self::max_value_size`] with
    /// [`bitcask::Error::ValueTooLarge`], before anyone builds it.
    fn check_value_len(&self, len: usize) -> Result<()> {
        let max = self.max_value_size();
        if len > max {
            return Err(bitcask::Error::ValueTooLarge { len, max });
        }
        Ok(())
    }
    /// [`Bitcask::is_empty`].
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// [`Bitcask::delete`].
    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.delete_with(key, WriteOptions::new())
            .map(|v| v.is_some())
    }
}

impl Store for Bitcask {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Bitcask::get(self, key)
    }

    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>> {
        Bitcask::get_versioned(self, key)
    }

    fn contains(&self, key: &[u8]) -> bool {
        Bitcask::contains(self, key)
    }

    fn put_with(&self, key: &[u8], value: &[u8], options: WriteOptions) -> Result<u64> {
        Bitcask::put_with(self, key, value, options)
    }

    fn delete_with(&self, key: &[u8], options: WriteOptions) -> Result<Option<u64>> {
        Bitcask::delete_with(self, key, options)
    }

    fn write_batch(&self, batch: &Batch) -> Result<Option<u64>> {
        Bitcask::write_batch(self, batch)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        Bitcask::delete(self, key)
    }

    fn len(&self) -> usize {
        Bitcask::len(self)
    }

    fn max_value_size(&self) -> usize {
        Bitcask::max_value_size(self)
    }

    fn expiry(&self, key: &[u8]) -> Result<Option<Option<u64>>> {
        // From memory: no value read.
        Ok(Bitcask::expiry(self, key))
    }
}
