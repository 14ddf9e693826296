//! The write path: one write (a put, a delete, a batch, a mark) appended to
//! the active file under the writer lock, its condition checked there,
//! then the key directory, the space accounts and the current mark
//! updated; durability through group commit (docs/FORMAT.md, "Writes").

use std::sync::Arc;

use super::{Shared, Writer};
use crate::datafile::FILE_HEADER_LEN;
use crate::error::{Error, Result};
use crate::keydir::{ArenaFull, Entry};
use crate::options::SyncPolicy;
use crate::record::{self, RecordKind};
use crate::recovery::Mark;
use crate::write::Condition;

/// One put or delete on its way to the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Op<'a> {
    pub(super) key: &'a [u8],
    /// `Some(value)` for a put.
    pub(super) value: Option<&'a [u8]>,
    pub(super) expires_at_ms: u64,
}

/// Whether a write returns before or after its fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// As the store's sync policy says.
    Policy,
    /// After an fsync that covers it, whatever the policy.
    Fsync,
}

impl Wait {
    /// The wait a caller's `durable` flag asks for.
    pub(super) fn durable(durable: bool) -> Self {
        if durable { Self::Fsync } else { Self::Policy }
    }
}

/// How a write's records are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// One plain put or delete.
    Single,
    /// A batch: every record but the last waits for the last to commit it
    /// (a batch of one is framed so too, and writes even a delete of an
    /// absent key).
    Batch,
}

impl Shared {
    /// Checks `conditions` in order against the keys' current versions;
    /// the first that fails is the error. The caller holds the writer lock,
    /// so that nothing changes between the check and what it guards.
    pub(super) fn check_conditions(&self, conditions: &[(&[u8], Condition)]) -> Result<()> {
        for (index, &(key, condition)) in conditions.iter().enumerate() {
            if condition != Condition::None {
                let current = self.live_entry(key).map(|e| e.seq);
                if !condition.holds(current) {
                    return Err(Error::ConditionFailed { current, index });
                }
            }
        }
        Ok(())
    }

    /// Appends `ops` and then `mark`, if any, as one write (a batch if more
    /// than one record) and updates the key directory and the current mark.
    /// Returns the last seq, or `None` for a delete (not in a batch) of an
    /// absent key, which writes nothing. Every condition (a key and what
    /// its current version must be) is checked first, under the writer
    /// lock: one that fails writes nothing. At least one op or a mark.
    pub(super) fn write(
        &self,
        ops: &[Op<'_>],
        mark: Option<&[u8]>,
        conditions: &[(&[u8], Condition)],
        wait: Wait,
        framing: Framing,
    ) -> Result<Option<u64>> {
        let (w, commit) = self.lock_writer()?;
        self.check_conditions(conditions)?;
        self.write_locked(w, commit, ops, mark, wait, framing)
    }

    /// Deletes those of `keys` that are still at the version given and
    /// expired (checked under the writer lock), as one batch of deletes;
    /// returns how many. Crash protocol: a batch like any other (all or
    /// none after a crash; docs/FORMAT.md, "Expiry purge").
    pub(super) fn purge_expired(&self, keys: &[(Vec<u8>, u64)]) -> Result<usize> {
        let (w, commit) = self.lock_writer()?;
        let now = self.options.clock.now_ms();
        // Each tombstone carries the expiry it enforces (a user's carries
        // 0): the change feed tells an expiry from a delete by it
        // (docs/FORMAT.md, "Record").
        let ops: Vec<Op<'_>> = keys
            .iter()
            .filter_map(|(key, seq)| {
                let entry = self.keydir.get(key)?;
                (entry.seq == *seq && entry.is_expired(now)).then_some(Op {
                    key,
                    value: None,
                    expires_at_ms: entry.expires_at_ms,
                })
            })
            .collect();
        if ops.is_empty() {
            return Ok(0);
        }
        self.write_locked(w, commit, &ops, None, Wait::Policy, Framing::Batch)?;
        Ok(ops.len())
    }

    /// [`Self::write`]'s work once the writer lock is held (conditions
    /// checked).
    fn write_locked(
        &self,
        mut w: super::WriterGuard<'_>,
        commit: &crate::durability::GroupCommit,
        ops: &[Op<'_>],
        mark: Option<&[u8]>,
        wait: Wait,
        framing: Framing,
    ) -> Result<Option<u64>> {
        let single_delete = framing == Framing::Single
            && mark.is_none()
            && ops.len() == 1
            && ops[0].value.is_none();
        if single_delete && self.live_entry(ops[0].key).is_none() {
            return Ok(None);
        }
        // Before anything reaches the disk: a new key the key directory
        // could not hold would be a record that reads miss and that the
        // next open could not load.
        let puts = ops.iter().filter(|op| op.value.is_some()).map(|op| op.key);
        if !self.keydir.has_room_for(puts) {
            return Err(Error::KeyDirectoryFull);
        }
        let mark_len = mark.map_or(0, |m| record::encoded_len(&[], m) as u64);
        let total: u64 = ops
            .iter()
            .map(|op| record::encoded_len(op.key, op.value.unwrap_or_default()) as u64)
            .sum::<u64>()
            + mark_len;
        if w.offset > FILE_HEADER_LEN as u64 && w.offset + total > self.options.max_file_size {
            self.rotate(&mut w, commit)?;
        }
        let first_seq = w.next_seq;
        let offset = w.offset;
        if offset + total > w.allocated {
            Self::allocate(&mut w, offset + total, self.options.max_file_size)?;
        }
        let Writer {
            buf,
            active,
            map,
            allocated,
            ..
        } = &mut *w;
        // Copied through the map only where the space is allocated (the
        // map's safety argument, writemap.rs), and only for a write that
        // does not wait for an fsync right after: an fsync write-protects
        // the pages it wrote back, so the next copy into the same page
        // faults, which cost a durable writer 15-20% (docs/BENCHMARKS.md);
        // `pwrite` has no such fault.
        let synced_now = wait == Wait::Fsync || self.options.sync == SyncPolicy::Always;
        let map = map
            .as_mut()
            .filter(|_| offset + total <= *allocated && !synced_now);
        buf.clear();
        // The record that commits the write: the mark if there is one, else
        // the last op.
        let records = ops.len() + usize::from(mark.is_some());
        let last = records.saturating_sub(1);
        for (i, op) in ops.iter().enumerate() {
            let kind = RecordKind::for_op(op.value.is_some(), i == last);
            let value = op.value.unwrap_or_default();
            record::encode_into(
                buf,
                first_seq + i as u64,
                op.expires_at_ms,
                kind,
                op.key,
                value,
            )?;
        }
        if let Some(mark) = mark {
            let seq = first_seq + last as u64;
            record::encode_into(buf, seq, 0, RecordKind::Mark, &[], mark)?;
        }
        if let Err(source) = active.append_at(map, buf, offset) {
            // Cut off whatever part of the write reached the file, so the
            // next record does not land after garbage.
            if let Err(cut) = active.truncate(offset) {
                tracing::error!(path = %active.path.display(), error = %cut,
                    "could not undo a failed write; the store refuses writes until reopened");
                commit.poison();
            }
            let path = active.path.clone();
            w.allocated = offset;
            w.map = None;
            return Err(Error::Io { path, source });
        }
        let file_id = active.id;
        let mut at = offset;
        for (i, op) in ops.iter().enumerate() {
            let len = record::encoded_len(op.key, op.value.unwrap_or_default()) as u64;
            let live = op.value.map(|_| Entry {
                file_id,
                // Both fit: files are at most 4 GiB (see options).
                offset: at as u32,
                len: len as u32,
                seq: first_seq + i as u64,
                expires_at_ms: op.expires_at_ms,
            });
            let replaced = match live {
                Some(entry) => match self.keydir.insert(op.key, entry) {
                    Ok(replaced) => replaced,
                    Err(ArenaFull) => {
                        // Not reached: the room was checked above, under
                        // this lock, and only the writer adds keys. Were it
                        // ever, the record is on disk but not in the key
                        // directory: refuse writes until a reopen (which
                        // loads it, or refuses with this error).
                        tracing::error!("a new key found the key directory full after its check");
                        commit.poison();
                        return Err(Error::KeyDirectoryFull);
                    }
                },
                None => self.keydir.remove(op.key),
            };
            self.accounts.written(
                file_id,
                len,
                op.expires_at_ms,
                live.as_ref(),
                replaced.as_ref(),
            );
            at += len;
        }
        let last_seq = first_seq + last as u64;
        if let Some(mark) = mark {
            // Dead from the start: only the current mark matters, and it is
            // at most 64 KiB (docs/FORMAT.md, "Marks").
            self.accounts.written(file_id, mark_len, 0, None, None);
            *self.lock_mark() = Some(Mark {
                seq: last_seq,
                value: Arc::from(mark),
            });
        }
        w.offset += total;
        w.next_seq = last_seq + 1;
        // The change feed reads up to the published end: under `always`
        // only once the fsync covers the write (a watcher never sees a
        // write a power cut could take back; docs/WATCH.md), otherwise now,
        // as the write is acknowledged now.
        let end = w.offset;
        let always = self.options.sync == SyncPolicy::Always;
        if !always {
            self.publish_committed(file_id, end, last_seq);
        }
        commit.note_written(last_seq);
        drop(w);
        if wait == Wait::Fsync || always {
            commit.sync_through(last_seq)?;
        }
        if always {
            self.publish_committed(file_id, end, last_seq);
        }
        self.notify_commit(last_seq);
        Ok(Some(last_seq))
    }
}
