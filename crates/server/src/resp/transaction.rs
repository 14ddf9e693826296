//! Transactions: `MULTI` starts queuing a connection's commands, `EXEC`
//! runs them as one atomic write, `DISCARD` drops them, and `WATCH` makes
//! the next `EXEC` apply only if the watched keys are still at the
//! versions they had (docs/RESP.md, "Transactions").
//!
//! On a single node `EXEC` runs the queued commands against a view of the
//! store ([`Overlay`]) that gathers their writes and remembers every key
//! they read, then writes one engine batch that applies only if the
//! watched keys and the keys read are unchanged. If a watched key changed,
//! `EXEC` answers the null array and writes nothing; if only a key read
//! changed (another client wrote it meanwhile), the commands run again on
//! the new state. So the transaction is serializable and atomic, and its
//! writes are one batch on disk: after a crash, all of them or none
//! (docs/FORMAT.md, "Batches"). On a cluster node the queue goes to the
//! cluster as one entry, applied by every node's state machine in the
//! same way.

use bitcask::{Batch, Bitcask, Condition, Error};
use bitcask_cluster::Store;
use bitcask_cluster::overlay::Overlay;

use super::commands::{Cmd, engine_error, lookup, write_command};
use super::reads::read_command;
use super::reply::Out;
use super::session::Session;

/// Most commands one transaction may queue.
pub const MAX_QUEUED: usize = 10_000;
/// Most keys one connection may watch.
pub const MAX_WATCHED: usize = 10_000;
/// How often `EXEC` runs its commands again because a key they read
/// changed before the batch was written.
const ATTEMPTS: usize = 100;

/// A queued command: its arguments, the name first.
pub type Queued = Vec<Vec<u8>>;

/// A key being watched and its version when `WATCH` ran (`None`: absent).
pub type Watched = (Vec<u8>, Option<u64>);

/// The commands queued since `MULTI`.
#[derive(Debug, Default)]
pub struct Queue {
    commands: Vec<Queued>,
    /// Bytes of arguments held.
    bytes: usize,
    /// A command was refused while queuing: `EXEC` will refuse too.
    failed: bool,
}

/// Whether `cmd` may be queued in a transaction (the command table's
/// `queued` column).
pub(super) fn queueable(cmd: Cmd) -> bool {
    cmd.spec().queued
}

/// Runs one queued command against `db` (the store's view), writing its
/// reply; a failure is its error reply, as in Redis (the others still run).
pub(super) fn run_one<S: Store + ?Sized>(db: &S, args: &[&[u8]], out: &mut Out) {
    let Some(spec) = args.first().and_then(|name| lookup(name)) else {
        out.error("ERR unknown command in a transaction");
        return;
    };
    let result = match spec.cmd {
        Cmd::Ping => {
            match args.get(1) {
                None => out.simple("PONG"),
                Some(msg) => out.bulk(msg),
            }
            Ok(())
        }
        Cmd::Echo => {
            out.bulk(args[1]);
            Ok(())
        }
        Cmd::Time => {
            let now = super::commands::now_ms();
            out.array(2);
            out.bulk((now / 1000).to_string().as_bytes());
            out.bulk(((now % 1000) * 1000).to_string().as_bytes());
            Ok(())
        }
        Cmd::Select if args[1] == b"0" => {
            out.ok();
            Ok(())
        }
        Cmd::Select => Err("ERR DB index is out of range".to_string()),
        Cmd::Unwatch => {
            out.ok();
            Ok(())
        }
        _ if spec.write => write_command(db, spec.cmd, args, out),
        _ if queueable(spec.cmd) => read_command(db, spec.cmd, args, out),
        _ => Err(format!(
            "ERR {} is not allowed in a transaction",
            spec.name.to_uppercase()
        )),
    };
    if let Err(message) = result {
        out.error(&message);
    }
}

/// Runs `commands` against `db`, their replies as one array.
fn run_queued<S: Store + ?Sized>(db: &S, commands: &[Queued], out: &mut Out) {
    out.array(commands.len());
    let mut args: Vec<&[u8]> = Vec::new();
    for command in commands {
        args.clear();
        args.extend(command.iter().map(Vec::as_slice));
        run_one(db, &args, out);
    }
}

/// Whether every watched key is still at the version it had.
fn unchanged<S: Store + ?Sized>(db: &S, watched: &[Watched]) -> bitcask::Result<bool> {
    for (key, version) in watched {
        if db.get_versioned(key)?.map(|v| v.version) != *version {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A transaction as a cluster entry runs it: against the entry's view
/// (the state machine is the only writer, so it runs once), answering the
/// null array if a watched key changed.
pub fn apply_entry<S: Store + ?Sized>(
    db: &S,
    watched: &[Watched],
    commands: &[Queued],
    out: &mut Out,
) {
    match unchanged(db, watched) {
        Ok(true) => run_queued(db, commands, out),
        Ok(false) => out.null_array(),
        Err(e) => out.error(&engine_error(e)),
    }
}

/// A transaction on a single node (see the module docs): runs until its
/// batch applies, a watched key is found changed, or [`ATTEMPTS`] runs
/// were each overtaken by another writer.
fn exec_single(
    db: &Bitcask,
    commands: &[Queued],
    watched: &[Watched],
    out: &mut Out,
) -> Result<(), String> {
    for _ in 0..ATTEMPTS {
        if !unchanged(db, watched).map_err(engine_error)? {
            out.null_array();
            return Ok(());
        }
        let start = out.len();
        // One time for every command, as one cluster entry has.
        let now = bitcask_cluster::clock::now_ms();
        let batch = bitcask_cluster::clock::at(now, || -> bitcask::Result<Batch> {
            let view = Overlay::with_capacity(db, now, commands.len())?;
            run_queued(&view, commands, out);
            Ok(view.into_checked_batch())
        });
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                out.truncate(start);
                return Err(engine_error(e));
            }
        };
        for (key, version) in watched {
            batch.require(
                key.clone(),
                version.map_or(Condition::Absent, Condition::Version),
            );
        }
        match db.write_batch(&batch) {
            Ok(_) => return Ok(()),
            Err(Error::ConditionFailed { .. }) => out.truncate(start),
            Err(e) => {
                out.truncate(start);
                return Err(engine_error(e));
            }
        }
    }
    Err(
        "ERR the transaction's keys kept changing under it; nothing was applied (retry)"
            .to_string(),
    )
}

impl Session {
    /// `MULTI`.
    pub(super) fn multi(&mut self, out: &mut Out) {
        if self.queue.is_some() {
            out.error("ERR MULTI calls can not be nested");
            return;
        }
        self.queue = Some(Queue::default());
        out.ok();
    }

    /// Whether the connection is queuing commands (after `MULTI`).
    pub(super) fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// A command refused while queuing (unknown, wrong arity): `EXEC`
    /// will refuse the transaction.
    pub(super) fn queuing_failed(&mut self) {
        if let Some(queue) = &mut self.queue {
            queue.failed = true;
        }
    }

    /// Queues `args` (a known command of the right arity) after `MULTI`.
    pub(super) fn enqueue(&mut self, cmd: Cmd, args: &[&[u8]], out: &mut Out) {
        let limit = self.output_limit();
        let Some(queue) = &mut self.queue else {
            return;
        };
        if !queueable(cmd) {
            queue.failed = true;
            self.count_rejected(cmd);
            out.error(&format!(
                "ERR {} is not allowed in a transaction",
                cmd.name().to_uppercase()
            ));
            return;
        }
        // Each argument costs its bytes and a vector's header.
        let bytes: usize = args.iter().map(|a| a.len() + 24).sum();
        if queue.commands.len() >= MAX_QUEUED || queue.bytes + bytes > limit {
            queue.failed = true;
            out.error(&format!(
                "ERR the transaction is too large (at most {MAX_QUEUED} commands and {limit} bytes)"
            ));
            return;
        }
        queue.bytes += bytes;
        queue
            .commands
            .push(args.iter().map(|a| a.to_vec()).collect());
        out.simple("QUEUED");
    }

    /// `DISCARD`.
    pub(super) fn discard(&mut self, out: &mut Out) {
        if self.queue.take().is_none() {
            out.error("ERR DISCARD without MULTI");
            return;
        }
        self.watched.clear();
        out.ok();
    }

    /// `WATCH key [key ...]` against `db` (outside MULTI: the session
    /// answers a WATCH inside one).
    pub(super) fn watch(&mut self, db: &Bitcask, keys: &[&[u8]], out: &mut Out) {
        for key in keys {
            if self.watched.contains_key(*key) {
                // Already watched: the version from the first WATCH holds.
                continue;
            }
            if self.watched.len() >= MAX_WATCHED {
                out.error(&format!(
                    "ERR a connection may watch at most {MAX_WATCHED} keys"
                ));
                return;
            }
            self.watched.insert(key.to_vec(), db.version(key));
        }
        out.ok();
    }

    /// `UNWATCH`.
    pub(super) fn unwatch(&mut self, out: &mut Out) {
        self.watched.clear();
        out.ok();
    }

    /// `EXEC` against `db` (the open store).
    pub(super) fn exec(&mut self, db: Option<&std::sync::Arc<Bitcask>>, out: &mut Out) {
        let Some(queue) = self.queue.take() else {
            out.error("ERR EXEC without MULTI");
            return;
        };
        let watched: Vec<Watched> = std::mem::take(&mut self.watched).into_iter().collect();
        if queue.failed {
            out.error("EXECABORT Transaction discarded because of previous errors.");
            return;
        }
        let Some(db) = db else {
            out.error("LOADING Bitcask is loading the dataset in memory");
            return;
        };
        self.count_queued(&queue.commands);
        let result = match self.shared.state().cluster().cloned() {
            Some(node) => self.exec_clustered(&node, &queue.commands, watched, out),
            None => exec_single(db, &queue.commands, &watched, out),
        };
        if let Err(message) = result {
            out.error(&message);
        }
    }

    /// Counts the commands a transaction runs, each under its own name.
    fn count_queued(&mut self, commands: &[Queued]) {
        for command in commands {
            if let Some(spec) = command.first().and_then(|name| lookup(name)) {
                self.count_commands(spec.cmd, 1);
            }
        }
    }

    /// `EXEC` on a cluster node: the queue is one entry of the cluster's
    /// log; the reply is the one the state machine wrote.
    fn exec_clustered(
        &mut self,
        node: &bitcask_cluster::node::Node,
        commands: &[Queued],
        watched: Vec<Watched>,
        out: &mut Out,
    ) -> Result<(), String> {
        let request = crate::replicated::WriteRequest::Transaction {
            resp3: out.protocol() == super::reply::Protocol::Resp3,
            watched,
            commands: commands.to_vec(),
        };
        self.propose(node, &request, out)
    }
}
