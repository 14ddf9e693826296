//! [`Overlay`]: the store as one log entry sees it while it is applied.
//! Writes are gathered into one engine batch (written with the entry's
//! mark by [`Overlay::commit`], so the entry applies all or nothing and its
//! applied position with it) and reads see the entry's earlier writes.
//!
//! The state machine is the store's only writer, so the versions the batch
//! will take are known in advance (`Bitcask::next_version`): each write
//! returns the version it gets, as the store's own methods do. Conditions,
//! expiry and time-to-live are judged by the entry's time, the leader's
//! (see `clock.rs`), so every node applies an entry to the same effect.
//!
//! A single node's transaction (RESP `MULTI`/`EXEC`) uses the same view
//! while other connections go on writing: it remembers the version of
//! every key it read from the store, and [`Overlay::into_checked_batch`]
//! turns its writes into a batch that applies only if all of those are
//! still current, which makes the transaction serializable (optimistic
//! concurrency; its caller runs it again when the batch is refused). The
//! versions its writes report are then provisional, only compared within
//! the view.

use std::cell::RefCell;
use std::time::Duration;

use bitcask::{Batch, Bitcask, Condition, Error, Result, Versioned, WriteOptions};

use crate::store::Store;

/// Maps keyed by client keys: foldhash, randomly seeded per map (fast, and
/// no key set chosen in advance collides).
type KeyMap<V> = std::collections::HashMap<Vec<u8>, V, foldhash::fast::RandomState>;

/// A key as first read from the store: its version and expiry, or `None`
/// for absent.
type Seen = Option<(u64, Option<u64>)>;

/// A transactional view of the store for one entry (see the module docs).
pub struct Overlay<'a> {
    db: &'a Bitcask,
    now_ms: u64,
    pending: RefCell<Pending>,
}

#[derive(Default)]
struct Pending {
    batch: Batch,
    /// Every key this view read from the store or wrote (one map, so that
    /// a key read and then written, as by `INCR`, is hashed and copied
    /// once).
    keys: KeyMap<Touched>,
    /// The version the next record takes.
    next_version: u64,
}

/// What a view did with one key.
#[derive(Default)]
struct Touched {
    /// `Some` if it was read from the store (not from this view's own
    /// writes): the version and expiry first seen, `None` for absent.
    read: Option<Seen>,
    /// `Some` once written: its value now, `None` once deleted.
    written: Option<Option<Versioned>>,
}

/// One write of a batch, before it is recorded.
struct Write<'b> {
    key: &'b [u8],
    /// Value and expiry (0: none) of a put; `None` for a delete.
    put: Option<(&'b [u8], u64)>,
}

impl<'a> Overlay<'a> {
    /// A view of `db` for an entry the leader stamped `now_ms`. `db` must
    /// be writable and have no other writer.
    pub fn new(db: &'a Bitcask, now_ms: u64) -> Result<Self> {
        Self::with_capacity(db, now_ms, 0)
    }

    /// [`Self::new`], with room for `keys` keys read or written before its
    /// map grows (a pipeline's run of writes knows how many it has).
    pub fn with_capacity(db: &'a Bitcask, now_ms: u64, keys: usize) -> Result<Self> {
        let next_version = db.next_version().ok_or(Error::ReadOnly)?;
        Ok(Self {
            db,
            now_ms,
            pending: RefCell::new(Pending {
                next_version,
                keys: KeyMap::with_capacity_and_hasher(keys, Default::default()),
                batch: Batch::default(),
            }),
        })
    }

    /// Writes everything gathered, with `mark` last, as one atomic batch.
    /// Returns the mark's version.
    pub fn commit(self, mark: &[u8]) -> Result<u64> {
        let mut pending = self.pending.into_inner();
        pending.batch.mark(mark.to_vec());
        let written = self.db.write_batch(&pending.batch)?;
        // The versions handed out assumed no other writer: check it.
        let expected = pending.next_version;
        match written {
            Some(version) if version == expected => Ok(version),
            other => Err(Error::InvalidArgument {
                reason: if other.is_some() {
                    "the state machine's store was written by someone else"
                } else {
                    "a marked batch wrote nothing"
                },
            }),
        }
    }

    /// The writes gathered, as a batch that also requires every key read
    /// from the store to be as it was first read (at that version, or
    /// absent). Writing it applies the view only if nothing it read has
    /// changed since; a batch of no writes still checks the reads.
    pub fn into_checked_batch(self) -> Batch {
        let pending = self.pending.into_inner();
        let mut batch = pending.batch;
        // In the map's order: which condition fails first is not reported
        // to anyone (a refused batch just runs again).
        for (key, touched) in pending.keys {
            if let Some(seen) = touched.read {
                let condition = seen.map_or(Condition::Absent, |(version, _)| {
                    Condition::Version(version)
                });
                batch.require(key, condition);
            }
        }
        batch
    }

    /// The expiry a put asks for, as an absolute time (0: none).
    fn expiry(&self, ttl: Option<Duration>, at: Option<u64>) -> Result<u64> {
        match (at, ttl) {
            (Some(0), _) => Err(Error::InvalidArgument {
                reason: "an expiry time must be after 1970",
            }),
            (Some(at), _) => Ok(at),
            (None, Some(ttl)) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                if ms == 0 {
                    return Err(Error::InvalidArgument {
                        reason: "a time-to-live must be at least one millisecond",
                    });
                }
                Ok(self.now_ms.saturating_add(ms))
            }
            (None, None) => Ok(0),
        }
    }

    fn unexpired(&self, v: Versioned) -> Option<Versioned> {
        v.expires_at_ms
            .is_none_or(|at| at > self.now_ms)
            .then_some(v)
    }

    fn check(&self, key: &[u8], condition: Condition) -> Result<()> {
        if condition == Condition::None {
            return Ok(());
        }
        let current = self.current_version(key)?;
        let holds = match condition {
            Condition::None => true,
            Condition::Absent => current.is_none(),
            Condition::Present => current.is_some(),
            Condition::Version(v) => current == Some(v),
        };
        if holds {
            Ok(())
        } else {
            Err(Error::ConditionFailed { current, index: 0 })
        }
    }

    /// The key's version as this view sees it, without reading its value
    /// again when it was read before.
    fn current_version(&self, key: &[u8]) -> Result<Option<u64>> {
        {
            let pending = self.pending.borrow();
            match pending.keys.get(key) {
                Some(Touched {
                    written: Some(now), ..
                }) => {
                    return Ok(now
                        .as_ref()
                        .filter(|v| v.expires_at_ms.is_none_or(|at| at > self.now_ms))
                        .map(|v| v.version));
                }
                Some(Touched {
                    read: Some(seen), ..
                }) => {
                    let live = |&(_, expires): &(u64, Option<u64>)| {
                        expires.is_none_or(|at| at > self.now_ms)
                    };
                    return Ok(seen.filter(live).map(|(version, _)| version));
                }
                _ => {}
            }
        }
        Ok(self.get_versioned(key)?.map(|v| v.version))
    }

    /// Adds the writes to the batch and the view; returns the last version.
    fn record(&self, writes: &[Write<'_>]) -> u64 {
        let mut pending = self.pending.borrow_mut();
        let mut version = pending.next_version;
        for write in writes {
            version = pending.next_version;
            pending.next_version += 1;
            let now = match write.put {
                Some((value, expires)) => {
                    if expires == 0 {
                        pending.batch.put(write.key, value);
                    } else {
                        pending.batch.put_expiring_at(write.key, value, expires);
                    }
                    Some(Versioned {
                        value: value.to_vec(),
                        version,
                        expires_at_ms: (expires != 0).then_some(expires),
                    })
                }
                None => {
                    pending.batch.delete(write.key);
                    None
                }
            };
            match pending.keys.get_mut(write.key) {
                Some(touched) => touched.written = Some(now),
                None => {
                    let touched = Touched {
                        read: None,
                        written: Some(now),
                    };
                    pending.keys.insert(write.key.to_vec(), touched);
                }
            }
        }
        version
    }
}

impl Store for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.map(|v| v.value))
    }

    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>> {
        if let Some(Touched {
            written: Some(now), ..
        }) = self.pending.borrow().keys.get(key)
        {
            return Ok(now.clone().and_then(|v| self.unexpired(v)));
        }
        // The store's clock is the apply clock: the entry's time here too.
        let found = self.db.get_versioned(key)?;
        let seen = found.as_ref().map(|v| (v.version, v.expires_at_ms));
        let mut pending = self.pending.borrow_mut();
        match pending.keys.get_mut(key) {
            Some(touched) => {
                touched.read.get_or_insert(seen);
            }
            None => {
                let touched = Touched {
                    read: Some(seen),
                    written: None,
                };
                pending.keys.insert(key.to_vec(), touched);
            }
        }
        Ok(found.and_then(|v| self.unexpired(v)))
    }

    fn max_value_size(&self) -> usize {
        self.db.max_value_size()
    }

    fn len(&self) -> usize {
        // The store's count, corrected by the keys this view wrote.
        let pending = self.pending.borrow();
        let mut len = self.db.len();
        let written = pending
            .keys
            .iter()
            .filter_map(|(key, touched)| Some((key, touched.written.as_ref()?)));
        for (key, now) in written {
            let before = self.db.contains(key);
            let after = now.clone().and_then(|v| self.unexpired(v)).is_some();
            match (before, after) {
                (false, true) => len += 1,
                (true, false) => len = len.saturating_sub(1),
                _ => {}
            }
        }
        len
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.get_versioned(key).is_ok_and(|v| v.is_some())
    }

    fn put_with(&self, key: &[u8], value: &[u8], options: WriteOptions) -> Result<u64> {
        self.db.check_sizes(key, value)?;
        let expires = self.expiry(options.ttl_of(), options.expires_at_ms_of())?;
        self.check(key, options.condition_of())?;
        Ok(self.record(&[Write {
            key,
            put: Some((value, expires)),
        }]))
    }

    fn delete_with(&self, key: &[u8], options: WriteOptions) -> Result<Option<u64>> {
        self.db.check_sizes(key, &[])?;
        self.check(key, options.condition_of())?;
        // As the store does: deleting an absent key writes nothing.
        if self.get_versioned(key)?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.record(&[Write { key, put: None }])))
    }

    fn write_batch(&self, batch: &Batch) -> Result<Option<u64>> {
        let mut writes = Vec::with_capacity(batch.len());
        // Every condition and operation is checked before any is recorded:
        // all or nothing, as the store's own batch.
        for (index, (key, condition)) in batch.conditions().enumerate() {
            self.check(key, condition).map_err(|e| match e {
                Error::ConditionFailed { current, .. } => Error::ConditionFailed { current, index },
                other => other,
            })?;
        }
        for op in batch.ops() {
            self.db.check_sizes(op.key, op.value.unwrap_or_default())?;
            let put = match op.value {
                Some(value) => Some((value, self.expiry(op.ttl, op.expires_at_ms)?)),
                None => None,
            };
            writes.push(Write { key: op.key, put });
        }
        if writes.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.record(&writes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Bitcask) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open_with(
            dir.path(),
            bitcask::Options::new()
                .sync(bitcask::SyncPolicy::Never)
                .max_value_size(64),
        )
        .expect("open");
        (dir, db)
    }

    #[test]
    fn an_entry_sees_its_own_writes_and_commits_them_with_the_versions_it_promised() {
        let (_dir, db) = store();
        db.put(b"old", b"1").expect("put");
        let overlay = Overlay::new(&db, 1_000).expect("overlay");
        let v1 = overlay
            .put_with(b"a", b"x", WriteOptions::new())
            .expect("put");
        assert_eq!(overlay.get(b"a").expect("get").as_deref(), Some(&b"x"[..]));
        let cas = WriteOptions::new().condition(Condition::Version(v1));
        let v2 = overlay
            .put_with(b"a", b"y", cas)
            .expect("cas on a pending write");
        assert!(matches!(
            overlay.put_with(b"a", b"z", cas),
            Err(Error::ConditionFailed { current: Some(v), .. }) if v == v2
        ));
        assert_eq!(
            overlay
                .delete_with(b"absent", WriteOptions::new())
                .expect("delete"),
            None
        );
        let v3 = overlay
            .delete_with(b"old", WriteOptions::new())
            .expect("delete")
            .expect("v");
        assert!(!overlay.contains(b"old"));
        assert!(db.contains(b"old"), "nothing written before the commit");
        let mut batch = Batch::new();
        batch.put("b", "1").put("c", vec![0u8; 65]);
        assert!(matches!(
            overlay.write_batch(&batch),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(!overlay.contains(b"b"), "a refused batch records nothing");
        // A batch's conditions are checked against the entry's own writes.
        let mut guarded = Batch::new();
        guarded.require("a", Condition::Version(v1)).put("d", "1");
        assert!(matches!(
            overlay.write_batch(&guarded),
            Err(Error::ConditionFailed { current: Some(v), .. }) if v == v2
        ));
        assert!(
            !overlay.contains(b"d"),
            "a batch whose condition fails records nothing"
        );
        let mark_version = overlay.commit(b"mark").expect("commit");
        assert_eq!((v2, v3, mark_version), (v1 + 1, v1 + 2, v1 + 3));
        let a = db.get_versioned(b"a").expect("get").expect("a");
        assert_eq!((a.value.as_slice(), a.version), (&b"y"[..], v2));
        assert!(!db.contains(b"old"));
        assert_eq!(db.mark().as_deref(), Some(&b"mark"[..]));
    }

    #[test]
    fn a_checked_batch_applies_only_if_what_the_view_read_is_unchanged() {
        let (_dir, db) = store();
        db.put(b"read", b"1").expect("put");
        // Reads a present and an absent key, writes a third.
        let run = |db: &Bitcask| {
            let view = Overlay::new(db, crate::clock::now_ms()).expect("view");
            let seen = view.get(b"read").expect("get");
            assert!(!view.contains(b"absent"));
            view.put_with(b"out", b"x", WriteOptions::new())
                .expect("put");
            assert_eq!(view.len(), db.len() + 1, "the view counts its own put");
            (seen, view.into_checked_batch())
        };
        let (_, batch) = run(&db);
        assert_eq!(batch.conditions().count(), 2, "one per key read");
        db.write_batch(&batch).expect("nothing changed: applies");
        assert_eq!(db.get(b"out").expect("get").as_deref(), Some(&b"x"[..]));
        // Someone writes a key the view read: refused whole.
        for key in [&b"read"[..], b"absent"] {
            db.delete(b"out").expect("delete");
            let (_, batch) = run(&db);
            db.put(key, b"2").expect("another writer");
            assert!(matches!(
                db.write_batch(&batch),
                Err(Error::ConditionFailed { .. })
            ));
            assert_eq!(db.get(b"out").expect("get"), None, "nothing applied");
            db.delete(b"absent").expect("reset");
        }
    }

    #[test]
    fn expiry_is_judged_by_the_entry_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = std::sync::Arc::new(crate::clock::ApplyClock);
        let options = bitcask::Options::new()
            .sync(bitcask::SyncPolicy::Never)
            .clock(clock);
        let db = Bitcask::open_with(dir.path(), options).expect("open");
        let at = crate::clock::now_ms() + 60_000;
        crate::clock::at(1_000, || {
            let overlay = Overlay::new(&db, 1_000).expect("overlay");
            overlay
                .put_with(
                    b"t",
                    b"v",
                    WriteOptions::new().ttl(Duration::from_millis(500)),
                )
                .expect("put");
            overlay
                .put_with(b"abs", b"v", WriteOptions::new().expires_at_ms(at))
                .expect("put");
            let t = overlay.get_versioned(b"t").expect("get").expect("t");
            assert_eq!(
                t.expires_at_ms,
                Some(1_500),
                "the entry's time plus the ttl"
            );
            overlay.commit(b"m").expect("commit");
        });
        let abs = db.get_versioned(b"abs").expect("get").expect("abs");
        assert_eq!(abs.expires_at_ms, Some(at));
        // By the wall clock `t` has long expired; an entry stamped before
        // its expiry still sees it, one stamped after does not.
        assert!(!db.contains(b"t"));
        crate::clock::at(1_200, || {
            let overlay = Overlay::new(&db, 1_200).expect("overlay");
            assert!(overlay.contains(b"t"));
            let cas = WriteOptions::new().condition(Condition::Present);
            overlay.put_with(b"t", b"w", cas).expect("present at 1200");
        });
        crate::clock::at(1_600, || {
            let overlay = Overlay::new(&db, 1_600).expect("overlay");
            assert!(!overlay.contains(b"t"));
        });
    }
}
