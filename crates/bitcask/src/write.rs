//! What a caller can ask of a write: a time-to-live, a condition on the
//! key's current version, durability for this one write, and batches of
//! several writes applied all or nothing.

use std::time::Duration;

/// A condition on a key's current version, checked atomically with the
/// write (under the writer lock). An expired key counts as absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Condition {
    /// No condition. The default.
    #[default]
    None,
    /// The key must be absent (HTTP `If-None-Match: *`).
    Absent,
    /// The key must be present, at any version (HTTP `If-Match: *`).
    Present,
    /// The key must be present at exactly this version (HTTP `If-Match`).
    Version(u64),
}

impl Condition {
    /// Whether the condition holds for a key whose current version is `current`.
    pub(crate) fn holds(self, current: Option<u64>) -> bool {
        match self {
            Self::None => true,
            Self::Absent => current.is_none(),
            Self::Present => current.is_some(),
            Self::Version(v) => current == Some(v),
        }
    }
}

/// Options of one write: `WriteOptions::new().ttl(Duration::from_secs(60)).durable(true)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct WriteOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) condition: Condition,
    pub(crate) durable: bool,
}

impl WriteOptions {
    /// No time-to-live, no condition, durability as the store's policy says.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value expires this long after the write (puts only; must be at
    /// least one millisecond). Expiry is judged by the store's clock.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self.expires_at_ms = None;
        self
    }

    /// The value expires at this Unix time in milliseconds (puts only; must
    /// not be 0). For copying values with their expiry from elsewhere, as
    /// an import does; replaces a [`Self::ttl`]. A time already past stores
    /// a value that reads as absent.
    pub fn expires_at_ms(mut self, unix_ms: u64) -> Self {
        self.expires_at_ms = Some(unix_ms);
        self.ttl = None;
        self
    }

    /// Write only if `condition` holds; otherwise fail with
    /// [`Error::ConditionFailed`](crate::Error::ConditionFailed) and write nothing.
    pub fn condition(mut self, condition: Condition) -> Self {
        self.condition = condition;
        self
    }

    /// Return only once the write is durable (fsynced, sharing the fsync
    /// with concurrent writers), whatever the store's [`SyncPolicy`](crate::SyncPolicy).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The time-to-live asked for, if any.
    pub fn ttl_of(&self) -> Option<Duration> {
        self.ttl
    }

    /// The absolute expiry asked for, if any (Unix milliseconds).
    pub fn expires_at_ms_of(&self) -> Option<u64> {
        self.expires_at_ms
    }

    /// The condition asked for.
    pub fn condition_of(&self) -> Condition {
        self.condition
    }

    /// Whether the write asked to be durable on return.
    pub fn is_durable(&self) -> bool {
        self.durable
    }
}

/// One operation of a [`Batch`], as [`Batch::ops`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOpRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value of a put; `None` for a delete.
    pub value: Option<&'a [u8]>,
    /// A put's time-to-live, if any.
    pub ttl: Option<Duration>,
    /// A put's absolute expiry (Unix ms), if any.
    pub expires_at_ms: Option<u64>,
}

/// A value with its version, from [`Bitcask::get_versioned`](crate::Bitcask::get_versioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Vec<u8>,
    /// Its version: the sequence number of the write that stored it.
    pub version: u64,
    /// When it expires, in Unix milliseconds; `None` = never.
    pub expires_at_ms: Option<u64>,
}

/// A value with its version, lent by
/// [`Bitcask::get_versioned_with`](crate::Bitcask::get_versioned_with)
/// from the data file's memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionedRef<'a> {
    /// The value.
    pub value: &'a [u8],
    /// Its version: the sequence number of the write that stored it.
    pub version: u64,
    /// When it expires, in Unix milliseconds; `None` = never.
    pub expires_at_ms: Option<u64>,
}

impl VersionedRef<'_> {
    /// The same, with the value copied out.
    pub fn to_versioned(self) -> Versioned {
        Versioned {
            value: self.value.to_vec(),
            version: self.version,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// One operation of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchOp {
    pub key: Vec<u8>,
    /// `Some(value)` for a put, `None` for a delete.
    pub value: Option<Vec<u8>>,
    pub ttl: Option<Duration>,
    /// An absolute expiry (Unix ms), instead of `ttl`.
    pub expires_at_ms: Option<u64>,
}

/// Puts and deletes applied all or nothing by
/// [`Bitcask::write_batch`](crate::Bitcask::write_batch), also across a crash:
/// recovery never applies part of a batch. Operations apply in the order
/// they were added (a later one on the same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub(crate) ops: Vec<BatchOp>,
    pub(crate) durable: bool,
    pub(crate) mark: Option<Vec<u8>>,
    /// Conditions on keys' current versions, all checked under the writer
    /// lock before anything is written.
    pub(crate) conditions: Vec<(Vec<u8>, Condition)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp {
            key: key.into(),
            value: Some(value.into()),
            ttl: None,
            expires_at_ms: None,
        });
        self
    }

    /// Adds a put that expires after `ttl`.
    pub fn put_with_ttl(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl: Duration,
    ) -> &mut Self {
        self.ops.push(BatchOp {
            key: key.into(),
            value: Some(value.into()),
            ttl: Some(ttl),
            expires_at_ms: None,
        });
        self
    }

    /// Adds a put that expires at `unix_ms` (Unix milliseconds, not 0), as
    /// [`WriteOptions::expires_at_ms`] does for one write.
    pub fn put_expiring_at(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        unix_ms: u64,
    ) -> &mut Self {
        self.ops.push(BatchOp {
            key: key.into(),
            value: Some(value.into()),
            ttl: None,
            expires_at_ms: Some(unix_ms),
        });
        self
    }

    /// Adds a delete of `key` (written even if the key is absent).
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp {
            key: key.into(),
            value: None,
            ttl: None,
            expires_at_ms: None,
        });
        self
    }

    /// Applies the batch only if `key`'s current version satisfies
    /// `condition` (absent, present, or a given version). Every condition
    /// of a batch is checked under the writer lock, together and before
    /// anything is written: if one fails,
    /// [`write_batch`](crate::Bitcask::write_batch) fails with
    /// [`Error::ConditionFailed`](crate::Error::ConditionFailed) and writes
    /// nothing. (How multi-key commands such as RENAME or MSETNX stay
    /// atomic, and how `WATCH` checks its keys.) A batch with conditions
    /// and no operation checks them and writes nothing.
    pub fn require(&mut self, key: impl Into<Vec<u8>>, condition: Condition) -> &mut Self {
        self.conditions.push((key.into(), condition));
        self
    }

    /// The conditions the batch requires, in the order they were added.
    pub fn conditions(&self) -> impl Iterator<Item = (&[u8], Condition)> {
        self.conditions.iter().map(|(k, c)| (k.as_slice(), *c))
    }

    /// Return only once the batch is durable, whatever the store's policy.
    pub fn durable(&mut self, durable: bool) -> &mut Self {
        self.durable = durable;
        self
    }

    /// Writes `value` as the batch's *mark*, atomically with its operations
    /// (at most 64 KiB; see `docs/FORMAT.md`, "Marks"): after any crash,
    /// [`Bitcask::mark`](crate::Bitcask::mark) returns the mark of the newest
    /// batch that survived, and every operation of that batch and of the
    /// batches before it survived too. A batch may be a mark alone. The
    /// mark's record comes last and takes the last sequence number.
    pub fn mark(&mut self, value: impl Into<Vec<u8>>) -> &mut Self {
        self.mark = Some(value.into());
        self
    }

    /// The operations, in the order they apply.
    pub fn ops(&self) -> impl Iterator<Item = BatchOpRef<'_>> {
        self.ops.iter().map(|op| BatchOpRef {
            key: &op.key,
            value: op.value.as_deref(),
            ttl: op.ttl,
            expires_at_ms: op.expires_at_ms,
        })
    }

    /// The mark the batch carries, if any.
    pub fn mark_of(&self) -> Option<&[u8]> {
        self.mark.as_deref()
    }

    /// Number of operations (a mark is not one).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch writes nothing: no operation and no mark.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.mark.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_against_current_versions() {
        assert!(Condition::None.holds(None) && Condition::None.holds(Some(3)));
        assert!(Condition::Absent.holds(None) && !Condition::Absent.holds(Some(3)));
        assert!(!Condition::Present.holds(None) && Condition::Present.holds(Some(3)));
        assert!(Condition::Version(3).holds(Some(3)));
        assert!(!Condition::Version(3).holds(Some(4)) && !Condition::Version(3).holds(None));
    }
}
