//! The commands: Redis's semantics on the engine's strings (see
//! docs/RESP.md for the list and the differences).
//!
//! Read-modify-write commands (INCR, APPEND, EXPIRE, SET ... GET, GETDEL)
//! are compare-and-set loops on the key's version: read, compute, write
//! only if the version is still the one read, else read again. The engine
//! checks the condition under its writer lock, so each is atomic.

use std::sync::Arc;
use std::time::Duration;

use bitcask::{Batch, Bitcask, Condition, Error, KeyRange, Versioned, WriteOptions};
use bitcask_cluster::Store;
use bitcask_cluster::overlay::Overlay;

use super::frame::Commands;
use super::glob;
use super::reply::Out;
use super::session::{Flow, Session};
use super::strings;

/// What a command needs of the server: its arity, whether it writes and
/// whether it may run long.
#[derive(Debug)]
pub struct Spec {
    /// Which command it is.
    pub cmd: Cmd,
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: exact if positive, at least `-arity` if negative
    /// (the name counts).
    pub arity: i32,
    /// Whether it may write to the store.
    pub write: bool,
    /// Whether it walks the key space and may run long: it runs on the
    /// blocking pool, so that the connections sharing its thread go on.
    pub slow: bool,
    /// Positions of the first and last key and the step between keys
    /// (0, 0, 0 for none), as `COMMAND` reports them.
    pub keys: (i32, i32, i32),
    /// Whether `MULTI` may queue it. A transaction holds what one engine
    /// batch can: not the commands that walk every key (KEYS, SCAN,
    /// FLUSHDB, FLUSHALL, RANDOMKEY), nor those about the connection or
    /// the server, nor transaction control itself.
    pub queued: bool,
}

const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const READS: bool = false;
const WRITES: bool = true;
const FAST: bool = false;
const SLOW: bool = true;
const QUEUES: bool = true;
const ALONE: bool = false;

/// Declares [`Cmd`] and [`COMMANDS`] from one list, so that a command is
/// named once: every `match` on [`Cmd`] lists all of them (a command added
/// here without a way to run it does not compile), and its metric label,
/// `COMMAND` entry and lookup come from the same line.
macro_rules! commands {
    ($($cmd:ident = $name:literal, $arity:expr, $write:expr, $slow:expr, $keys:expr, $queued:expr;)*) => {
        /// A command the listener knows (see [`COMMANDS`] for each one's spec).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Cmd {
            $(#[doc = concat!("`", $name, "`")] $cmd,)*
        }

        /// Every command, in the order `COMMAND` lists them; a command's
        /// place here is its [`Cmd`] as a number.
        pub const COMMANDS: &[Spec] = &[
            $(Spec { cmd: Cmd::$cmd, name: $name, arity: $arity, write: $write, slow: $slow, keys: $keys, queued: $queued },)*
        ];
    };
}

commands! {
    Ping = "ping", -1, READS, FAST, NONE, QUEUES;
    Echo = "echo", 2, READS, FAST, NONE, QUEUES;
    Quit = "quit", -1, READS, FAST, NONE, ALONE;
    Hello = "hello", -1, READS, FAST, NONE, ALONE;
    Auth = "auth", -2, READS, FAST, NONE, ALONE;
    Select = "select", 2, READS, FAST, NONE, QUEUES;
    Get = "get", 2, READS, FAST, ONE, QUEUES;
    Mget = "mget", -2, READS, FAST, ALL, QUEUES;
    Strlen = "strlen", 2, READS, FAST, ONE, QUEUES;
    Exists = "exists", -2, READS, FAST, ALL, QUEUES;
    Type = "type", 2, READS, FAST, ONE, QUEUES;
    Ttl = "ttl", 2, READS, FAST, ONE, QUEUES;
    Pttl = "pttl", 2, READS, FAST, ONE, QUEUES;
    Set = "set", -3, WRITES, FAST, ONE, QUEUES;
    Setnx = "setnx", 3, WRITES, FAST, ONE, QUEUES;
    Getdel = "getdel", 2, WRITES, FAST, ONE, QUEUES;
    Del = "del", -2, WRITES, FAST, ALL, QUEUES;
    Mset = "mset", -3, WRITES, FAST, (1, -1, 2), QUEUES;
    Incr = "incr", 2, WRITES, FAST, ONE, QUEUES;
    Decr = "decr", 2, WRITES, FAST, ONE, QUEUES;
    Incrby = "incrby", 3, WRITES, FAST, ONE, QUEUES;
    Decrby = "decrby", 3, WRITES, FAST, ONE, QUEUES;
    Append = "append", 3, WRITES, FAST, ONE, QUEUES;
    Expire = "expire", -3, WRITES, FAST, ONE, QUEUES;
    Pexpire = "pexpire", -3, WRITES, FAST, ONE, QUEUES;
    Expireat = "expireat", -3, WRITES, FAST, ONE, QUEUES;
    Pexpireat = "pexpireat", -3, WRITES, FAST, ONE, QUEUES;
    Persist = "persist", 2, WRITES, FAST, ONE, QUEUES;
    Setex = "setex", 4, WRITES, FAST, ONE, QUEUES;
    Psetex = "psetex", 4, WRITES, FAST, ONE, QUEUES;
    Getset = "getset", 3, WRITES, FAST, ONE, QUEUES;
    Getex = "getex", -2, WRITES, FAST, ONE, QUEUES;
    Unlink = "unlink", -2, WRITES, FAST, ALL, QUEUES;
    Touch = "touch", -2, READS, FAST, ALL, QUEUES;
    Expiretime = "expiretime", 2, READS, FAST, ONE, QUEUES;
    Pexpiretime = "pexpiretime", 2, READS, FAST, ONE, QUEUES;
    Getrange = "getrange", 4, READS, FAST, ONE, QUEUES;
    Substr = "substr", 4, READS, FAST, ONE, QUEUES;
    Time = "time", 1, READS, FAST, NONE, QUEUES;
    Msetnx = "msetnx", -3, WRITES, FAST, (1, -1, 2), QUEUES;
    Rename = "rename", 3, WRITES, FAST, (1, 2, 1), QUEUES;
    Renamenx = "renamenx", 3, WRITES, FAST, (1, 2, 1), QUEUES;
    Copy = "copy", -3, WRITES, FAST, (1, 2, 1), QUEUES;
    Setrange = "setrange", 4, WRITES, FAST, ONE, QUEUES;
    Setbit = "setbit", 4, WRITES, FAST, ONE, QUEUES;
    Getbit = "getbit", 3, READS, FAST, ONE, QUEUES;
    Bitcount = "bitcount", -2, READS, FAST, ONE, QUEUES;
    Bitpos = "bitpos", -3, READS, FAST, ONE, QUEUES;
    Bitop = "bitop", -4, WRITES, FAST, (2, -1, 1), QUEUES;
    Incrbyfloat = "incrbyfloat", 3, WRITES, FAST, ONE, QUEUES;
    Lcs = "lcs", -3, READS, FAST, (1, 2, 1), QUEUES;
    Object = "object", -2, READS, FAST, (2, 2, 1), QUEUES;
    Memory = "memory", -2, READS, FAST, (2, 2, 1), QUEUES;
    Randomkey = "randomkey", 1, READS, FAST, NONE, ALONE;
    Multi = "multi", 1, READS, FAST, NONE, ALONE;
    Exec = "exec", 1, WRITES, FAST, NONE, ALONE;
    Discard = "discard", 1, READS, FAST, NONE, ALONE;
    Watch = "watch", -2, READS, FAST, ALL, ALONE;
    Unwatch = "unwatch", 1, READS, FAST, NONE, QUEUES;
    Keys = "keys", 2, READS, SLOW, NONE, ALONE;
    Scan = "scan", -2, READS, SLOW, NONE, ALONE;
    Dbsize = "dbsize", 1, READS, FAST, NONE, QUEUES;
    Info = "info", -1, READS, FAST, NONE, ALONE;
    Config = "config", -2, READS, FAST, NONE, ALONE;
    Command = "command", -1, READS, FAST, NONE, ALONE;
    Client = "client", -2, READS, FAST, NONE, ALONE;
    Function = "function", -2, READS, FAST, NONE, ALONE;
    Subscribe = "subscribe", -2, READS, FAST, NONE, ALONE;
    Psubscribe = "psubscribe", -2, READS, FAST, NONE, ALONE;
    Unsubscribe = "unsubscribe", -1, READS, FAST, NONE, ALONE;
    Punsubscribe = "punsubscribe", -1, READS, FAST, NONE, ALONE;
    Flushdb = "flushdb", -1, WRITES, SLOW, NONE, ALONE;
    Flushall = "flushall", -1, WRITES, SLOW, NONE, ALONE;
}

impl Cmd {
    /// Its spec.
    pub fn spec(self) -> &'static Spec {
        &COMMANDS[self as usize]
    }

    /// Its lower-case name (the metric label).
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// The lengths of the slow commands' names, as bits (bit `n`: a slow
/// command has an `n`-byte name), worked out from [`COMMANDS`] at compile
/// time: most commands (GET, SET) are ruled out by their length alone.
const SLOW_NAME_LENGTHS: u64 = {
    let mut lengths = 0u64;
    let mut i = 0;
    while i < COMMANDS.len() {
        if COMMANDS[i].slow {
            lengths |= 1 << COMMANDS[i].name.len();
        }
        i += 1;
    }
    lengths
};

/// Whether `name` (any case) is a command that walks the key space. Asked
/// of every pipelined command: a length test first, the table only for
/// names as long as a slow one.
pub fn is_slow(name: &[u8]) -> bool {
    name.len() < 64
        && SLOW_NAME_LENGTHS & (1 << name.len()) != 0
        && lookup(name).is_some_and(|spec| spec.slow)
}

/// Slots of [`INDEX`]: a power of two well above the number of commands,
/// so that probes are short.
const INDEX_SLOTS: usize = 512;

/// Where a name's search in [`INDEX`] starts: from its length and its
/// first, middle and last bytes, case folded (cheap, and enough to spread
/// the names).
const fn name_slot(name: &[u8]) -> usize {
    let len = name.len();
    if len == 0 {
        return 0;
    }
    let first = name[0].to_ascii_lowercase() as usize;
    let last = name[len - 1].to_ascii_lowercase() as usize;
    let mid = name[len / 2].to_ascii_lowercase() as usize;
    (len * 131 + first * 31 + mid * 7 + last) % INDEX_SLOTS
}

/// Every command by [`name_slot`], with linear probing: `u8::MAX` marks an
/// empty slot, anything else is a place in [`COMMANDS`]. Built at compile
/// time, so a lookup is a hash and one or two comparisons instead of a
/// walk through the table (it runs for every command received).
const INDEX: [u8; INDEX_SLOTS] = {
    assert!(COMMANDS.len() < u8::MAX as usize);
    let mut index = [u8::MAX; INDEX_SLOTS];
    let mut i = 0;
    while i < COMMANDS.len() {
        let mut slot = name_slot(COMMANDS[i].name.as_bytes());
        while index[slot] != u8::MAX {
            slot = (slot + 1) % INDEX_SLOTS;
        }
        index[slot] = i as u8;
        i += 1;
    }
    index
};

/// The spec of `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 32 {
        return None;
    }
    let mut slot = name_slot(name);
    loop {
        let at = INDEX[slot];
        if at == u8::MAX {
            return None;
        }
        let spec = &COMMANDS[at as usize];
        if spec.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(spec);
        }
        slot = (slot + 1) % INDEX_SLOTS;
    }
}

/// How often a compare-and-set loop tries before giving up.
const CAS_ATTEMPTS: usize = 1000;

/// Most keys one `SCAN` examines, whatever its `COUNT` (Redis calls COUNT
/// a hint): bounds one reply and one command's time.
pub const MAX_SCAN_COUNT: usize = 10_000;

/// The latest expiry accepted, in Unix milliseconds (Redis's bound: the
/// time must fit a signed 64-bit count of milliseconds).
const MAX_EXPIRES_AT_MS: u64 = i64::MAX as u64;

/// Where the running of one read's commands stands, between the flushes of
/// the output: the next command to run, and how far into its reply a
/// command that stopped to let the output drain got.
#[derive(Debug, Default)]
pub struct Progress {
    /// Index of the next command to run (or to go on with).
    pub next: usize,
    resume: Option<Resume>,
}

/// How far into its reply a command got when it stopped for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// `MGET`: the header and the values before key `next` were written.
    Mget {
        /// Index (among the keys) of the next value to write.
        next: usize,
    },
}

/// A failed command: the error reply's text.
type CmdResult = Result<(), String>;

fn wrong_args(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
/// Redis's error for a string that would grow past the largest allowed.
const TOO_LARGE: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const SYNTAX: &str = "ERR syntax error";

/// The error reply for an engine failure. A failure that names a file
/// (I/O, corruption) is logged with the path; the client is told what
/// happened, not where.
pub(super) fn engine_error(error: Error) -> String {
    crate::error::log_if_it_names_a_file(&error);
    format!("ERR {}", crate::error::public_message(&error))
}

pub(super) fn int_arg(arg: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| NOT_INTEGER.to_string())
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The time: the wall clock, or the entry's time while a cluster applies
/// an entry (see `bitcask_cluster::clock`).
pub(super) fn now_ms() -> u64 {
    bitcask_cluster::clock::now_ms()
}

/// Runs `attempt` until it does not fail a write condition.
fn cas<T>(attempt: impl FnMut() -> bitcask::Result<T>) -> Result<T, String> {
    cas_with(attempt, engine_error)
}

/// [`cas`] for a command that grows a value: a value past the store's
/// limit answers Redis's error for a string past its largest.
fn cas_growing<T>(attempt: impl FnMut() -> bitcask::Result<T>) -> Result<T, String> {
    cas_with(attempt, |error| match error {
        Error::ValueTooLarge { .. } => TOO_LARGE.replace("proto-max-bulk-len", "--max-value-size"),
        other => engine_error(other),
    })
}

/// Runs `attempt` until it does not fail a write condition; other errors
/// are answered with `explain`.
fn cas_with<T>(
    mut attempt: impl FnMut() -> bitcask::Result<T>,
    explain: fn(Error) -> String,
) -> Result<T, String> {
    for _ in 0..CAS_ATTEMPTS {
        match attempt() {
            Err(Error::ConditionFailed { .. }) => continue,
            other => return other.map_err(explain),
        }
    }
    Err("ERR the key changed too often to update it; retry".to_string())
}

/// The write condition that holds only if `old` is still current.
fn unchanged(old: Option<&Versioned>) -> Condition {
    old.map_or(Condition::Absent, |o| Condition::Version(o.version))
}

/// Keeps `old`'s expiry on a rewrite.
fn keep_expiry(options: WriteOptions, old: Option<&Versioned>) -> WriteOptions {
    match old.and_then(|o| o.expires_at_ms) {
        Some(at) => options.expires_at_ms(at),
        None => options,
    }
}

/// Most bytes of values one grouped write carries.
const MAX_GROUP_BYTES: usize = 8 << 20;

/// How often a group of pipelined writes runs again because another
/// writer changed a key it read, before its commands run one by one.
const GROUP_ATTEMPTS: usize = 8;

fn is_plain_set(commands: &Commands<'_>, i: usize) -> bool {
    commands.arg_count(i) == 3
        && commands
            .arg(i, 0)
            .is_some_and(|name| name.eq_ignore_ascii_case(b"SET"))
}

/// Whether command `i` is a write that can join a group (see
/// [`Session::write_group`]): a known write command a transaction may hold,
/// with the right number of arguments.
fn is_groupable_write(commands: &Commands<'_>, i: usize) -> bool {
    let Some(spec) = commands.arg(i, 0).and_then(lookup) else {
        return false;
    };
    let n = commands.arg_count(i);
    let arity_ok = if spec.arity >= 0 {
        n == spec.arity as usize
    } else {
        n >= spec.arity.unsigned_abs() as usize
    };
    spec.write && arity_ok && super::transaction::queueable(spec.cmd)
}

/// The bytes of command `i`'s arguments.
fn command_bytes(commands: &Commands<'_>, i: usize) -> usize {
    (0..commands.arg_count(i))
        .map(|j| commands.arg(i, j).map_or(0, <[u8]>::len))
        .sum()
}

impl Session {
    /// Runs `commands` from where `progress` stands, in order, answering
    /// each into `out`; returns after a QUIT, when all have run, or as soon
    /// as `out` holds [`super::reply::FLUSH_AT`] bytes, with `progress` saying
    /// where to go on once the caller has sent them. So a pipeline of large
    /// replies, or one `MGET` of many large values, never sits in memory
    /// whole.
    ///
    /// Consecutive plain `SET key value` commands (a pipeline's usual
    /// content) go to the engine as one batch: one lock, one `pwrite`. That
    /// is stronger than Redis's guarantee (they become atomic together) and
    /// the replies are the same; if the batch fails on a size limit, they
    /// run one by one so that each gets its own answer.
    pub fn run_some(
        &mut self,
        commands: &Commands<'_>,
        progress: &mut Progress,
        out: &mut Out,
    ) -> Flow {
        // Looked up once per call: one reference count touched per batch of
        // commands, none per command.
        let shared = Arc::clone(&self.shared);
        let store = shared.state().try_store();
        // On a cluster node, the first read of these commands waits for a
        // read barrier: they were all sent before it begins.
        self.needs_barrier = true;
        let flow = self.run_each(store.as_ref(), commands, progress, out);
        self.publish_counts();
        flow
    }

    fn run_each(
        &mut self,
        store: Option<&Arc<Bitcask>>,
        commands: &Commands<'_>,
        progress: &mut Progress,
        out: &mut Out,
    ) -> Flow {
        let mut args = Vec::with_capacity(8);
        while progress.next < commands.len() {
            if out.len() >= super::reply::FLUSH_AT {
                return Flow::Continue;
            }
            let i = progress.next;
            let mut run = 0;
            let mut bytes = 0;
            while i + run < commands.len()
                && is_plain_set(commands, i + run)
                && bytes <= MAX_GROUP_BYTES
            {
                bytes += commands.arg(i + run, 1).map_or(0, <[u8]>::len)
                    + commands.arg(i + run, 2).map_or(0, <[u8]>::len);
                run += 1;
            }
            // (A cluster node proposes each write: no engine batch here;
            // inside MULTI, the SETs are queued.)
            let single = !self.shared.state().is_clustered() && !self.in_multi();
            if let (true, true, true, Some(store)) =
                (run >= 2, single, self.is_authenticated(), store)
            {
                self.set_many(store, commands, i..i + run, out);
                progress.next += run;
                continue;
            }
            // Other consecutive writes (INCR, APPEND, SETEX, ...): one
            // engine batch for the run.
            let mut run = 0;
            let mut bytes = 0;
            while i + run < commands.len()
                && bytes <= MAX_GROUP_BYTES
                && is_groupable_write(commands, i + run)
            {
                bytes += command_bytes(commands, i + run);
                run += 1;
            }
            if let (true, true, true, Some(store)) =
                (run >= 2, single, self.is_authenticated(), store)
            {
                self.write_group(store, commands, i..i + run, out);
                progress.next += run;
                continue;
            }
            commands.args_of(i, &mut args);
            self.resume = progress.resume.take();
            let flow = self.execute(store, &args, out);
            if let Some(resume) = self.stopped.take() {
                progress.resume = Some(resume);
                return Flow::Continue;
            }
            progress.next += 1;
            if flow == Flow::Close {
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Runs consecutive write commands of a pipeline as one engine batch:
    /// against a view of the store ([`Overlay`]), as a transaction's are,
    /// then one write that applies only if every key they read is still as
    /// read (else they run again on the new state). The replies are the ones
    /// each command would have had alone, in order; a command that fails
    /// answers its error and the others apply. Stronger than Redis's
    /// promise (they become atomic together), and one lock, one `pwrite`
    /// and, under `sync=always`, one fsync for all of them. If other
    /// writers keep overtaking it, or the batch fails to write, the
    /// commands run one by one instead, each answered on its own.
    fn write_group(
        &mut self,
        db: &Arc<Bitcask>,
        commands: &Commands<'_>,
        group: std::ops::Range<usize>,
        out: &mut Out,
    ) {
        let start = out.len();
        let mut args = Vec::with_capacity(8);
        // Which commands of the last run answered with an error.
        let mut failed = Vec::with_capacity(group.len());
        for _ in 0..GROUP_ATTEMPTS {
            let now = now_ms();
            failed.clear();
            let batch = bitcask_cluster::clock::at(now, || -> bitcask::Result<Batch> {
                let view = Overlay::with_capacity(db, now, group.len())?;
                for i in group.clone() {
                    commands.args_of(i, &mut args);
                    let reply_at = out.len();
                    super::transaction::run_one(&view, &args, out);
                    failed.push(out.bytes().get(reply_at) == Some(&b'-'));
                }
                Ok(view.into_checked_batch())
            });
            let written = batch.and_then(|batch| db.write_batch(&batch));
            match written {
                Ok(_) => {
                    for (i, failed) in group.zip(&failed) {
                        if let Some(spec) = commands.arg(i, 0).and_then(lookup) {
                            self.count_commands(spec.cmd, 1);
                            if *failed {
                                self.count_failed(spec.cmd);
                            }
                        }
                    }
                    return;
                }
                Err(Error::ConditionFailed { .. }) => out.truncate(start),
                Err(_) => break,
            }
        }
        // One by one: each command meets its own outcome.
        out.truncate(start);
        for i in group {
            commands.args_of(i, &mut args);
            self.execute(Some(db), &args, out);
        }
    }

    fn set_many(
        &mut self,
        db: &Arc<Bitcask>,
        commands: &Commands<'_>,
        sets: std::ops::Range<usize>,
        out: &mut Out,
    ) {
        let mut batch = Batch::new();
        for i in sets.clone() {
            let (key, value) = (commands.arg(i, 1), commands.arg(i, 2));
            batch.put(key.unwrap_or_default(), value.unwrap_or_default());
        }
        match db.write_batch(&batch) {
            Ok(_) => {
                self.count_commands(Cmd::Set, sets.len() as u64);
                for _ in sets {
                    out.ok();
                }
            }
            Err(
                Error::KeyTooLarge { .. }
                | Error::ValueTooLarge { .. }
                | Error::InvalidArgument { .. },
            ) => {
                let mut args = Vec::with_capacity(3);
                for i in sets {
                    commands.args_of(i, &mut args);
                    self.execute(Some(db), &args, out);
                }
            }
            Err(e) => {
                self.count_commands(Cmd::Set, sets.len() as u64);
                let message = engine_error(e);
                for _ in sets {
                    out.error(&message);
                }
            }
        }
    }

    /// Runs one command against the open store, writing its reply.
    pub fn run_store_command(
        &mut self,
        spec: &Spec,
        store: &Arc<Bitcask>,
        args: &[&[u8]],
        out: &mut Out,
    ) {
        let result = match self.shared.state().cluster().cloned() {
            Some(node) => self.run_clustered(&node, spec, store, args, out),
            None => self.dispatch(spec, store, args, out),
        };
        if let Err(message) = result {
            out.error(&message);
        }
    }

    /// A command on a cluster node (run on the blocking pool, see
    /// `connection.rs`): a write is proposed to the cluster and answered
    /// with the reply the state machine wrote; a read first waits for a
    /// read barrier, once per batch of commands and after every write, so
    /// it sees every write committed before it was sent.
    fn run_clustered(
        &mut self,
        node: &bitcask_cluster::node::Node,
        spec: &Spec,
        store: &Arc<Bitcask>,
        args: &[&[u8]],
        out: &mut Out,
    ) -> CmdResult {
        let runtime = self.shared.state().runtime();
        if spec.write {
            if matches!(spec.cmd, Cmd::Flushdb | Cmd::Flushall) {
                return Err(format!(
                    "ERR {} is not supported on a cluster node",
                    spec.name.to_uppercase()
                ));
            }
            let mut owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            owned[0] = spec.name.as_bytes().to_vec();
            let request = crate::replicated::WriteRequest::Resp {
                resp3: out.protocol() == super::reply::Protocol::Resp3,
                args: owned,
            };
            return self.propose(node, &request, out);
        }
        if self.needs_barrier {
            runtime
                .block_on(node.read_barrier())
                .map_err(cluster_unavailable)?;
            self.needs_barrier = false;
        }
        self.dispatch(spec, store, args, out)
    }

    /// Proposes `request` (a RESP write or transaction) to the cluster and
    /// writes the reply its state machine wrote.
    pub(super) fn propose(
        &mut self,
        node: &bitcask_cluster::node::Node,
        request: &crate::replicated::WriteRequest,
        out: &mut Out,
    ) -> CmdResult {
        let runtime = self.shared.state().runtime();
        let encoded = bitcask_cluster::codec::encode(request).map_err(|e| format!("ERR {e}"))?;
        self.needs_barrier = true;
        let reply = runtime
            .block_on(node.write(encoded))
            .map_err(cluster_unavailable)?;
        match bitcask_cluster::codec::decode(&reply) {
            Ok(crate::replicated::WriteReply::Resp(bytes)) => {
                out.raw(&bytes);
                Ok(())
            }
            _ => Err("ERR the cluster answered a write with something else".to_string()),
        }
    }

    fn dispatch(
        &mut self,
        spec: &Spec,
        db: &Arc<Bitcask>,
        args: &[&[u8]],
        out: &mut Out,
    ) -> CmdResult {
        let key = || args[1];
        match spec.cmd {
            Cmd::Get => {
                // The value goes from the engine's buffer straight into the reply.
                let found = db
                    .get_with(key(), |value| out.bulk(value))
                    .map_err(engine_error)?;
                if found.is_none() {
                    out.null();
                }
            }
            Cmd::Mget => self.mget(db, &args[1..], out)?,
            Cmd::Strlen
            | Cmd::Exists
            | Cmd::Touch
            | Cmd::Type
            | Cmd::Ttl
            | Cmd::Pttl
            | Cmd::Expiretime
            | Cmd::Pexpiretime
            | Cmd::Getrange
            | Cmd::Substr
            | Cmd::Getbit
            | Cmd::Bitcount
            | Cmd::Bitpos
            | Cmd::Lcs
            | Cmd::Object
            | Cmd::Memory
            | Cmd::Dbsize => super::reads::read_command(&**db, spec.cmd, args, out)?,
            Cmd::Randomkey => out.bulk_or_null(random_key(db).as_deref()),
            Cmd::Set
            | Cmd::Setnx
            | Cmd::Getdel
            | Cmd::Del
            | Cmd::Mset
            | Cmd::Incr
            | Cmd::Decr
            | Cmd::Incrby
            | Cmd::Decrby
            | Cmd::Append
            | Cmd::Expire
            | Cmd::Pexpire
            | Cmd::Expireat
            | Cmd::Pexpireat
            | Cmd::Persist
            | Cmd::Setex
            | Cmd::Psetex
            | Cmd::Getset
            | Cmd::Getex
            | Cmd::Unlink
            | Cmd::Msetnx
            | Cmd::Rename
            | Cmd::Renamenx
            | Cmd::Copy
            | Cmd::Setrange
            | Cmd::Setbit
            | Cmd::Bitop
            | Cmd::Incrbyfloat => write_command(&**db, spec.cmd, args, out)?,
            Cmd::Watch => self.watch(db, &args[1..], out),
            Cmd::Keys => self.keys(db, args[1], out)?,
            Cmd::Scan => self.scan(db, args, out)?,
            Cmd::Flushdb | Cmd::Flushall => {
                if !self.shared.allow_flush() {
                    return Err(format!(
                        "ERR {} is disabled; start the server with --resp-allow-flush",
                        spec.name.to_uppercase()
                    ));
                }
                flush(db)?;
                out.ok();
            }
            // Answered by the session without the store.
            Cmd::Ping
            | Cmd::Time
            | Cmd::Echo
            | Cmd::Quit
            | Cmd::Hello
            | Cmd::Auth
            | Cmd::Select
            | Cmd::Info
            | Cmd::Config
            | Cmd::Command
            | Cmd::Client
            | Cmd::Function
            | Cmd::Multi
            | Cmd::Exec
            | Cmd::Discard
            | Cmd::Unwatch
            | Cmd::Subscribe
            | Cmd::Psubscribe
            | Cmd::Unsubscribe
            | Cmd::Punsubscribe => {
                return Err(format!("ERR command '{}' is not handled here", spec.name));
            }
        }
        Ok(())
    }

    /// `MGET key [key ...]`: the values go from the engine's maps straight
    /// into the output, and the command stops (to go on after the output is
    /// sent) whenever the output is full, so its reply is never whole in
    /// memory. An engine error before anything of the reply was sent is the
    /// whole reply; after, it takes the failed key's place in the array.
    fn mget(&mut self, db: &Bitcask, keys: &[&[u8]], out: &mut Out) -> CmdResult {
        let (mut i, started) = match self.resume.take() {
            Some(Resume::Mget { next }) => (next, true),
            None => (0, false),
        };
        let reply_start = out.len();
        if !started {
            out.array(keys.len());
        }
        while i < keys.len() {
            if out.len() >= super::reply::FLUSH_AT {
                self.stopped = Some(Resume::Mget { next: i });
                return Ok(());
            }
            match db.get_with(keys[i], |value| out.bulk(value)) {
                Ok(Some(())) => {}
                Ok(None) => out.null(),
                Err(e) if !started => {
                    out.truncate(reply_start);
                    return Err(engine_error(e));
                }
                Err(e) => out.error(&engine_error(e)),
            }
            i += 1;
        }
        Ok(())
    }

    /// `KEYS pattern`: the array's length comes first, so the keys are
    /// gathered before anything is written, up to the connection's output
    /// limit; a reply that would exceed it closes the connection (as Redis
    /// does with a client over its output-buffer limit).
    fn keys(&mut self, db: &Bitcask, pattern: &[u8], out: &mut Out) -> CmdResult {
        let compiled = compile(pattern)?;
        let limit = self.output_limit();
        let mut bytes = 0usize;
        let mut keys = Vec::new();
        for key in db.keys_in(KeyRange::prefix(glob::literal_prefix(pattern))) {
            if !compiled.matches(&key) {
                continue;
            }
            // A bulk string's framing is at most 16 bytes.
            bytes += key.len() + 16;
            if bytes > limit {
                self.over_output_limit(bytes);
                return Ok(());
            }
            keys.push(key);
        }
        out.array(keys.len());
        for k in &keys {
            out.bulk(k);
        }
        Ok(())
    }

    /// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` (see docs/RESP.md).
    fn scan(&mut self, db: &Arc<Bitcask>, args: &[&[u8]], out: &mut Out) -> CmdResult {
        let cursor: u64 = std::str::from_utf8(args[1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "ERR invalid cursor".to_string())?;
        let mut pattern: Option<glob::Pattern> = None;
        let mut prefix = Vec::new();
        let mut count = 10usize;
        let mut strings = true;
        let mut i = 2;
        while i < args.len() {
            let value = args.get(i + 1).ok_or_else(|| SYNTAX.to_string())?;
            if is(args[i], "MATCH") {
                pattern = Some(compile(value)?);
                prefix = glob::literal_prefix(value);
            } else if is(args[i], "COUNT") {
                count = usize::try_from(int_arg(value)?)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| SYNTAX.to_string())?
                    .min(MAX_SCAN_COUNT);
            } else if is(args[i], "TYPE") {
                strings = is(value, "string");
            } else {
                return Err(SYNTAX.to_string());
            }
            i += 2;
        }
        let mut range = KeyRange::prefix(prefix);
        if cursor != 0 {
            let after = self
                .shared
                .cursors()
                .resume_key(cursor)
                .ok_or_else(|| "ERR invalid cursor".to_string())?;
            range = range.start_after(after);
        }
        let page: Vec<Vec<u8>> = db.keys_in(range).take(count).collect();
        let next = match page.last() {
            Some(last) if page.len() == count => self.shared.cursors().register(last.clone()),
            _ => 0,
        };
        let shown: Vec<&Vec<u8>> = page
            .iter()
            .filter(|k| strings && pattern.as_ref().is_none_or(|p| p.matches(k)))
            .collect();
        out.array(2);
        out.bulk(next.to_string().as_bytes());
        out.array(shown.len());
        for k in shown {
            out.bulk(k);
        }
        Ok(())
    }
}

/// The error reply for a cluster that cannot take a command now.
fn cluster_unavailable(e: bitcask_cluster::node::ClusterError) -> String {
    match e {
        bitcask_cluster::node::ClusterError::Refused(why) => format!("ERR {why}"),
        other => format!("CLUSTERDOWN {other}"),
    }
}

/// Compiles a `KEYS` / `SCAN MATCH` pattern, refusing one too long to be
/// worth matching (no key is that long).
fn compile(pattern: &[u8]) -> Result<glob::Pattern, String> {
    if pattern.len() > glob::MAX_PATTERN {
        return Err(format!(
            "ERR pattern too long ({} bytes; the limit is {})",
            pattern.len(),
            glob::MAX_PATTERN
        ));
    }
    Ok(glob::Pattern::compile(pattern))
}

/// What the options of an `EXPIRE` allow (several may be given: XX with
/// GT or LT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ExpireRule {
    /// `NX`: only if the key has no expiry.
    nx: bool,
    /// `XX`: only if it has one.
    xx: bool,
    /// `GT`: only if the new one is later (no expiry counts as infinite).
    gt: bool,
    /// `LT`: only if the new one is sooner.
    lt: bool,
}

impl ExpireRule {
    /// The options in `args`, refused as Redis refuses them.
    fn parse(args: &[&[u8]]) -> Result<Self, String> {
        let mut rule = Self::default();
        for arg in args {
            let flag = if is(arg, "NX") {
                &mut rule.nx
            } else if is(arg, "XX") {
                &mut rule.xx
            } else if is(arg, "GT") {
                &mut rule.gt
            } else if is(arg, "LT") {
                &mut rule.lt
            } else {
                return Err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(arg)
                ));
            };
            *flag = true;
        }
        if rule.nx && (rule.xx || rule.gt || rule.lt) {
            return Err(
                "ERR NX and XX, GT or LT options at the same time are not compatible".to_string(),
            );
        }
        if rule.gt && rule.lt {
            return Err("ERR GT and LT options at the same time are not compatible".to_string());
        }
        Ok(rule)
    }

    /// Whether a key whose expiry is `current` may take `at_ms`.
    fn allows(self, current: Option<u64>, at_ms: i64) -> bool {
        (!self.nx || current.is_none())
            && (!self.xx || current.is_some())
            && (!self.gt || current.is_some_and(|c| at_ms > c as i64))
            && (!self.lt || current.is_none_or(|c| at_ms < c as i64))
    }
}

/// Runs a write command against `db` (the store, or a cluster entry's
/// overlay of it), writing its reply into `out`. Every node of a cluster
/// runs the same function on the same state with the same clock reading
/// (`bitcask_cluster::clock`), so every node computes the same effect.
pub fn write_command<S: Store + ?Sized>(
    db: &S,
    cmd: Cmd,
    args: &[&[u8]],
    out: &mut Out,
) -> CmdResult {
    let key = || args[1];
    match cmd {
        Cmd::Set => set(db, args, out)?,
        // SETEX key seconds value, PSETEX key ms value: SET ... EX|PX.
        Cmd::Setex | Cmd::Psetex => {
            let unit: &[u8] = if cmd == Cmd::Setex { b"EX" } else { b"PX" };
            let set_args = [b"SET".as_slice(), args[1], args[3], unit, args[2]];
            set_as(db, cmd.name(), &set_args, out)?;
        }
        // GETSET key value: SET ... GET.
        Cmd::Getset => {
            let set_args = [b"SET".as_slice(), args[1], args[2], b"GET"];
            set_as(db, cmd.name(), &set_args, out)?;
        }
        Cmd::Getex => getex(db, args, out)?,
        Cmd::Msetnx => {
            if args.len() % 2 != 1 {
                return Err(wrong_args("msetnx"));
            }
            // One batch: every key must be absent, checked with the writes.
            let mut batch = Batch::new();
            for pair in args[1..].chunks_exact(2) {
                batch.require(pair[0], Condition::Absent);
                batch.put(pair[0], pair[1]);
            }
            match db.write_batch(&batch) {
                Ok(_) => out.int(1),
                Err(Error::ConditionFailed { .. }) => out.int(0),
                Err(e) => return Err(engine_error(e)),
            }
        }
        Cmd::Rename | Cmd::Renamenx => {
            let renamed = rename(db, args[1], args[2], cmd == Cmd::Renamenx)?;
            if cmd == Cmd::Rename {
                out.ok();
            } else {
                out.int(i64::from(renamed));
            }
        }
        Cmd::Copy => {
            let mut replace = false;
            let mut i = 3;
            while i < args.len() {
                if is(args[i], "REPLACE") {
                    replace = true;
                } else if is(args[i], "DB") && i + 1 < args.len() {
                    // Only database 0 exists.
                    if int_arg(args[i + 1])? != 0 {
                        return Err("ERR DB index is out of range".to_string());
                    }
                    i += 1;
                } else {
                    return Err(SYNTAX.to_string());
                }
                i += 1;
            }
            if args[1] == args[2] {
                return Err("ERR source and destination objects are the same".to_string());
            }
            out.int(i64::from(copy(db, args[1], args[2], replace)?));
        }
        Cmd::Setrange => out.int(setrange(db, key(), args[2], args[3])? as i64),
        Cmd::Setbit => {
            let offset = bit_offset(args[2])?;
            let on = match args[3] {
                b"1" => true,
                b"0" => false,
                _ => return Err("ERR bit is not an integer or out of range".to_string()),
            };
            let old = cas_growing(|| {
                let old = db.get_versioned(key())?;
                let old_len = old.as_ref().map_or(0, |o| o.value.len());
                // Checked before the value grows (see SETRANGE).
                db.check_value_len(old_len.max((offset / 8) as usize + 1))?;
                let mut value = old.as_ref().map(|o| o.value.clone()).unwrap_or_default();
                let bit = strings::set_bit(&mut value, offset, on);
                let options = keep_expiry(
                    WriteOptions::new().condition(unchanged(old.as_ref())),
                    old.as_ref(),
                );
                db.put_with(key(), &value, options)?;
                Ok(bit)
            })?;
            out.int(i64::from(old));
        }
        Cmd::Bitop => out.int(bitop(db, args)? as i64),
        Cmd::Incrbyfloat => {
            let by = strings::parse_float(args[2]).ok_or_else(|| NOT_FLOAT.to_string())?;
            let text = cas(|| {
                let old = db.get_versioned(key())?;
                let current = match &old {
                    None => 0.0,
                    Some(o) => match strings::parse_float(&o.value) {
                        Some(f) => f,
                        None => return Ok(Err(NOT_FLOAT.to_string())),
                    },
                };
                let next = current + by;
                if !next.is_finite() {
                    return Ok(Err(
                        "ERR increment would produce NaN or Infinity".to_string()
                    ));
                }
                let text = strings::format_float(next);
                let options = keep_expiry(
                    WriteOptions::new().condition(unchanged(old.as_ref())),
                    old.as_ref(),
                );
                db.put_with(key(), text.as_bytes(), options)?;
                Ok(Ok(text))
            })
            .and_then(|outcome| outcome)?;
            out.bulk(text.as_bytes());
        }
        Cmd::Unlink => {
            let mut n = 0;
            for k in &args[1..] {
                n += i64::from(db.delete(k).map_err(engine_error)?);
            }
            out.int(n);
        }
        Cmd::Setnx => match db.put_with(
            key(),
            args[2],
            WriteOptions::new().condition(Condition::Absent),
        ) {
            Ok(_) => out.int(1),
            Err(Error::ConditionFailed { .. }) => out.int(0),
            Err(e) => return Err(engine_error(e)),
        },
        Cmd::Getdel => {
            let old = cas(|| {
                let Some(old) = db.get_versioned(key())? else {
                    return Ok(None);
                };
                let options = WriteOptions::new().condition(Condition::Version(old.version));
                db.delete_with(key(), options)?;
                Ok(Some(old.value))
            })?;
            out.bulk_or_null(old.as_deref());
        }
        Cmd::Del => {
            let mut n = 0;
            for k in &args[1..] {
                n += i64::from(db.delete(k).map_err(engine_error)?);
            }
            out.int(n);
        }
        Cmd::Mset => {
            if args.len() % 2 != 1 {
                return Err(wrong_args("mset"));
            }
            let mut batch = Batch::new();
            for pair in args[1..].chunks_exact(2) {
                batch.put(pair[0], pair[1]);
            }
            db.write_batch(&batch).map_err(engine_error)?;
            out.ok();
        }
        Cmd::Incr | Cmd::Decr | Cmd::Incrby | Cmd::Decrby => {
            let by = match cmd {
                Cmd::Incr => 1,
                Cmd::Decr => -1,
                Cmd::Incrby => int_arg(args[2])?,
                _ => int_arg(args[2])?
                    .checked_neg()
                    .ok_or_else(|| "ERR decrement would overflow".to_string())?,
            };
            let n = incr_by(db, key(), by)?;
            out.int(n);
        }
        Cmd::Append => {
            let len = cas(|| {
                let old = db.get_versioned(key())?;
                let mut value = old.as_ref().map(|o| o.value.clone()).unwrap_or_default();
                value.extend_from_slice(args[2]);
                let options = keep_expiry(
                    WriteOptions::new().condition(unchanged(old.as_ref())),
                    old.as_ref(),
                );
                db.put_with(key(), &value, options)?;
                Ok(value.len())
            })?;
            out.int(len as i64);
        }
        Cmd::Expire | Cmd::Pexpire | Cmd::Expireat | Cmd::Pexpireat => {
            let amount = int_arg(args[2])?;
            // A time that does not fit is refused, as Redis does (it
            // used to wrap, and TTL then answered a negative number).
            let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let at_ms = match cmd {
                Cmd::Expire => amount.checked_mul(1000).and_then(|ms| now.checked_add(ms)),
                Cmd::Pexpire => now.checked_add(amount),
                Cmd::Expireat => amount.checked_mul(1000),
                _ => Some(amount),
            }
            .ok_or_else(|| format!("ERR invalid expire time in '{}' command", cmd.name()))?;
            let rule = ExpireRule::parse(&args[3..])?;
            out.int(i64::from(expire(db, key(), at_ms, rule)?));
        }
        Cmd::Persist => {
            let changed = cas(|| {
                let Some(old) = db.get_versioned(key())? else {
                    return Ok(false);
                };
                if old.expires_at_ms.is_none() {
                    return Ok(false);
                }
                let options = WriteOptions::new().condition(Condition::Version(old.version));
                db.put_with(key(), &old.value, options)?;
                Ok(true)
            })?;
            out.int(i64::from(changed));
        }
        Cmd::Ping
        | Cmd::Echo
        | Cmd::Quit
        | Cmd::Hello
        | Cmd::Auth
        | Cmd::Select
        | Cmd::Touch
        | Cmd::Expiretime
        | Cmd::Pexpiretime
        | Cmd::Getrange
        | Cmd::Substr
        | Cmd::Time
        | Cmd::Get
        | Cmd::Mget
        | Cmd::Strlen
        | Cmd::Exists
        | Cmd::Type
        | Cmd::Ttl
        | Cmd::Pttl
        | Cmd::Keys
        | Cmd::Scan
        | Cmd::Dbsize
        | Cmd::Info
        | Cmd::Config
        | Cmd::Command
        | Cmd::Client
        | Cmd::Function
        | Cmd::Multi
        | Cmd::Exec
        | Cmd::Discard
        | Cmd::Watch
        | Cmd::Unwatch
        | Cmd::Subscribe
        | Cmd::Psubscribe
        | Cmd::Unsubscribe
        | Cmd::Punsubscribe
        | Cmd::Getbit
        | Cmd::Bitcount
        | Cmd::Bitpos
        | Cmd::Lcs
        | Cmd::Object
        | Cmd::Memory
        | Cmd::Randomkey
        | Cmd::Flushdb
        | Cmd::Flushall => return Err(format!("ERR command '{}' is not a write", cmd.name())),
    }
    Ok(())
}

/// Sets `key` to expire at `at_ms` (deleting it if that has passed);
/// returns whether anything changed.
fn expire<S: Store + ?Sized>(
    db: &S,
    key: &[u8],
    at_ms: i64,
    rule: ExpireRule,
) -> Result<bool, String> {
    cas(|| {
        let Some(old) = db.get_versioned(key)? else {
            return Ok(false);
        };
        if !rule.allows(old.expires_at_ms, at_ms) {
            return Ok(false);
        }
        let condition = Condition::Version(old.version);
        match u64::try_from(at_ms).ok().filter(|&at| at > now_ms()) {
            Some(at) => {
                let options = WriteOptions::new().condition(condition).expires_at_ms(at);
                db.put_with(key, &old.value, options)?;
            }
            None => {
                db.delete_with(key, WriteOptions::new().condition(condition))?;
            }
        }
        Ok(true)
    })
}

/// `INCRBY`: the new value.
fn incr_by<S: Store + ?Sized>(db: &S, key: &[u8], by: i64) -> Result<i64, String> {
    cas(|| {
        let old = db.get_versioned(key)?;
        let current = match &old {
            None => 0,
            Some(o) => match std::str::from_utf8(&o.value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) => n,
                None => return Ok(Err(NOT_INTEGER.to_string())),
            },
        };
        let Some(next) = current.checked_add(by) else {
            return Ok(Err("ERR increment or decrement would overflow".to_string()));
        };
        let options = keep_expiry(
            WriteOptions::new().condition(unchanged(old.as_ref())),
            old.as_ref(),
        );
        db.put_with(key, next.to_string().as_bytes(), options)?;
        Ok(Ok(next))
    })
    .and_then(|outcome| outcome)
}

/// `SET key value [EX|PX|EXAT|PXAT n | KEEPTTL] [NX|XX] [GET]`.
fn set<S: Store + ?Sized>(db: &S, args: &[&[u8]], out: &mut Out) -> CmdResult {
    set_as(db, "set", args, out)
}

/// `SET` with the options in `args`, its errors naming `name` (SETEX,
/// PSETEX and GETSET are SETs with fixed options).
fn set_as<S: Store + ?Sized>(db: &S, name: &str, args: &[&[u8]], out: &mut Out) -> CmdResult {
    #[derive(Clone, Copy)]
    enum Expiry {
        None,
        After(Duration),
        At(u64),
        Keep,
    }
    let (key, value) = (args[1], args[2]);
    let mut expiry = Expiry::None;
    let mut condition = Condition::None;
    let mut get = false;
    let mut i = 3;
    while i < args.len() {
        let arg = &args[i];
        // Milliseconds from `n` units; a relative time must also fit once
        // added to now (Redis's rule: the result fits a signed 64-bit count).
        let mut amount = |unit_ms: u64, relative: bool| -> Result<u64, String> {
            i += 1;
            let n = int_arg(args.get(i).ok_or_else(|| SYNTAX.to_string())?)?;
            let most = if relative {
                MAX_EXPIRES_AT_MS.saturating_sub(now_ms())
            } else {
                MAX_EXPIRES_AT_MS
            };
            u64::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .and_then(|n| n.checked_mul(unit_ms))
                .filter(|&ms| ms <= most)
                .ok_or_else(|| format!("ERR invalid expire time in '{name}' command"))
        };
        let exclusive = |current: &Expiry| matches!(current, Expiry::None);
        if is(arg, "EX") && exclusive(&expiry) {
            expiry = Expiry::After(Duration::from_millis(amount(1000, true)?));
        } else if is(arg, "PX") && exclusive(&expiry) {
            expiry = Expiry::After(Duration::from_millis(amount(1, true)?));
        } else if is(arg, "EXAT") && exclusive(&expiry) {
            expiry = Expiry::At(amount(1000, false)?);
        } else if is(arg, "PXAT") && exclusive(&expiry) {
            expiry = Expiry::At(amount(1, false)?);
        } else if is(arg, "KEEPTTL") && exclusive(&expiry) {
            expiry = Expiry::Keep;
        } else if is(arg, "NX") && condition == Condition::None {
            condition = Condition::Absent;
        } else if is(arg, "XX") && condition == Condition::None {
            condition = Condition::Present;
        } else if is(arg, "GET") {
            get = true;
        } else {
            return Err(SYNTAX.to_string());
        }
        i += 1;
    }
    let with_expiry = |options: WriteOptions, old: Option<&Versioned>| match expiry {
        Expiry::None => options,
        Expiry::After(ttl) => options.ttl(ttl),
        Expiry::At(at) => options.expires_at_ms(at),
        Expiry::Keep => keep_expiry(options, old),
    };
    if !get && !matches!(expiry, Expiry::Keep) {
        // One engine write; the condition is checked under its lock.
        return match db.put_with(
            key,
            value,
            with_expiry(WriteOptions::new().condition(condition), None),
        ) {
            Ok(_) => {
                out.ok();
                Ok(())
            }
            Err(Error::ConditionFailed { .. }) => {
                out.null();
                Ok(())
            }
            Err(e) => Err(engine_error(e)),
        };
    }
    // GET or KEEPTTL need the old record: compare-and-set on its version.
    let (old, written) = cas(|| {
        let old = db.get_versioned(key)?;
        let blocked = match condition {
            Condition::Absent => old.is_some(),
            Condition::Present => old.is_none(),
            _ => false,
        };
        if blocked {
            return Ok((old, false));
        }
        let options = with_expiry(
            WriteOptions::new().condition(unchanged(old.as_ref())),
            old.as_ref(),
        );
        db.put_with(key, value, options)?;
        Ok((old, true))
    })?;
    if get {
        out.bulk_or_null(old.as_ref().map(|o| o.value.as_slice()));
    } else if written {
        out.ok();
    } else {
        out.null();
    }
    Ok(())
}

/// `GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]`: the value,
/// and the expiry changed as asked (compare-and-set on its version).
fn getex<S: Store + ?Sized>(db: &S, args: &[&[u8]], out: &mut Out) -> CmdResult {
    enum Change {
        None,
        At(u64),
        Persist,
    }
    let key = args[1];
    let change = match &args[2..] {
        [] => Change::None,
        [flag] if is(flag, "PERSIST") => Change::Persist,
        [flag, amount] => {
            let n = int_arg(amount)?;
            let invalid = || "ERR invalid expire time in 'getex' command".to_string();
            let n = u64::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(invalid)?;
            let at = if is(flag, "EX") {
                n.checked_mul(1000).and_then(|ms| now_ms().checked_add(ms))
            } else if is(flag, "PX") {
                now_ms().checked_add(n)
            } else if is(flag, "EXAT") {
                n.checked_mul(1000)
            } else if is(flag, "PXAT") {
                Some(n)
            } else {
                return Err(SYNTAX.to_string());
            };
            Change::At(
                at.filter(|&at| at <= MAX_EXPIRES_AT_MS)
                    .ok_or_else(invalid)?,
            )
        }
        _ => return Err(SYNTAX.to_string()),
    };
    let value = cas(|| {
        let Some(old) = db.get_versioned(key)? else {
            return Ok(None);
        };
        let condition = Condition::Version(old.version);
        match change {
            Change::None => {}
            Change::Persist if old.expires_at_ms.is_none() => {}
            Change::Persist => {
                db.put_with(key, &old.value, WriteOptions::new().condition(condition))?;
            }
            Change::At(at) if at <= now_ms() => {
                db.delete_with(key, WriteOptions::new().condition(condition))?;
            }
            Change::At(at) => {
                let options = WriteOptions::new().condition(condition).expires_at_ms(at);
                db.put_with(key, &old.value, options)?;
            }
        }
        Ok(Some(old.value))
    })?;
    out.bulk_or_null(value.as_deref());
    Ok(())
}

/// `RENAME src dst` (or `RENAMENX`, only if `dst` is absent): one batch
/// that deletes `src` and puts its value and expiry under `dst`, applied
/// only if `src` is still at the version read (and `dst` absent, for NX),
/// retried if another write came between. Whether it renamed (false only
/// for NX with `dst` present).
fn rename<S: Store + ?Sized>(db: &S, src: &[u8], dst: &[u8], nx: bool) -> Result<bool, String> {
    let renamed = cas(|| {
        let Some(old) = db.get_versioned(src)? else {
            return Ok(None);
        };
        if src == dst {
            // Redis: renaming a key onto itself is OK (NX: 0, it exists).
            return Ok(Some(!nx));
        }
        if nx && db.contains(dst) {
            return Ok(Some(false));
        }
        let mut batch = Batch::new();
        batch.require(src, Condition::Version(old.version));
        if nx {
            batch.require(dst, Condition::Absent);
        }
        batch.delete(src);
        match old.expires_at_ms {
            Some(at) => batch.put_expiring_at(dst, old.value, at),
            None => batch.put(dst, old.value),
        };
        db.write_batch(&batch)?;
        Ok(Some(true))
    })?;
    renamed.ok_or_else(|| "ERR no such key".to_string())
}

/// `COPY src dst [REPLACE]`: `src`'s value and expiry under `dst` (only if
/// `dst` is absent without REPLACE), as one conditional write. Whether it
/// copied.
fn copy<S: Store + ?Sized>(db: &S, src: &[u8], dst: &[u8], replace: bool) -> Result<bool, String> {
    cas(|| {
        let Some(old) = db.get_versioned(src)? else {
            return Ok(false);
        };
        if src == dst {
            return Ok(false);
        }
        if !replace && db.contains(dst) {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.require(src, Condition::Version(old.version));
        if !replace {
            batch.require(dst, Condition::Absent);
        }
        match old.expires_at_ms {
            Some(at) => batch.put_expiring_at(dst, old.value, at),
            None => batch.put(dst, old.value),
        };
        db.write_batch(&batch)?;
        Ok(true)
    })
}

/// A `SETBIT`/`GETBIT` offset: 0 up to Redis's largest string's bits.
pub(super) fn bit_offset(arg: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&offset| offset / 8 < strings::MAX_BULK)
        .ok_or_else(|| "ERR bit offset is not an integer or out of range".to_string())
}

/// `SETRANGE key offset value`: the new length.
fn setrange<S: Store + ?Sized>(
    db: &S,
    key: &[u8],
    offset: &[u8],
    patch: &[u8],
) -> Result<usize, String> {
    let offset = int_arg(offset)?;
    let offset = usize::try_from(offset).map_err(|_| "ERR offset is out of range".to_string())?;
    cas_growing(|| {
        let old = db.get_versioned(key)?;
        if patch.is_empty() {
            // Setting nothing: the length, and nothing written.
            return Ok(Ok(old.map_or(0, |o| o.value.len())));
        }
        if (offset as u64).saturating_add(patch.len() as u64) > strings::MAX_BULK {
            return Ok(Err(TOO_LARGE.to_string()));
        }
        let current = old.as_ref().map(|o| o.value.as_slice()).unwrap_or_default();
        // Refused before the value is built: an offset near 512 MiB must
        // not cost 512 MiB of memory to learn that it is too large.
        db.check_value_len(current.len().max(offset + patch.len()))?;
        let value = strings::set_range(current, offset, patch);
        let options = keep_expiry(
            WriteOptions::new().condition(unchanged(old.as_ref())),
            old.as_ref(),
        );
        db.put_with(key, &value, options)?;
        Ok(Ok(value.len()))
    })
    .and_then(|outcome| outcome)
}

/// `BITOP op dest src [src ...]`: the result's length. One batch that
/// requires every source to be at the version read.
fn bitop<S: Store + ?Sized>(db: &S, args: &[&[u8]]) -> Result<usize, String> {
    let op = strings::BitOp::parse(args[1]).ok_or_else(|| SYNTAX.to_string())?;
    let (dest, sources) = (args[2], &args[3..]);
    if op == strings::BitOp::Not && sources.len() != 1 {
        return Err("ERR BITOP NOT must be called with a single source key.".to_string());
    }
    cas_growing(|| {
        let mut batch = Batch::new();
        let mut values = Vec::with_capacity(sources.len());
        for source in sources {
            let found = db.get_versioned(source)?;
            batch.require(*source, unchanged(found.as_ref()));
            values.push(found.map(|v| v.value).unwrap_or_default());
        }
        let result = op.apply(&values);
        let len = result.len();
        if result.is_empty() {
            batch.delete(dest);
        } else {
            batch.put(dest, result);
        }
        db.write_batch(&batch)?;
        Ok(len)
    })
}

/// A key at a random place in the key order (`RANDOMKEY`), or `None` if
/// the store is empty. (Not uniform: a key after a wide gap in the order
/// is likelier; the key directory keeps no index to draw from evenly.)
fn random_key(db: &Bitcask) -> Option<Vec<u8>> {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    let start = hasher.finish().to_be_bytes().to_vec();
    db.keys_in(KeyRange::prefix(Vec::new()).start_after(start))
        .next()
        .or_else(|| db.keys().next())
}

/// Deletes every key, 10,000 per batch.
fn flush(db: &Bitcask) -> CmdResult {
    loop {
        let keys: Vec<Vec<u8>> = db.keys().take(10_000).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for k in keys {
            batch.delete(k);
        }
        db.write_batch(&batch).map_err(engine_error)?;
    }
}

/// `COMMAND` entries: `[name, arity, [flags], first, last, step]`.
pub fn command_entry(spec: &Spec, out: &mut Out) {
    out.array(6);
    out.bulk(spec.name.as_bytes());
    out.int(i64::from(spec.arity));
    out.array(1);
    out.simple(if spec.write { "write" } else { "readonly" });
    out.int(i64::from(spec.keys.0));
    out.int(i64::from(spec.keys.1));
    out.int(i64::from(spec.keys.2));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_by_its_name_in_any_case_and_nothing_else_is() {
        for spec in COMMANDS {
            assert_eq!(lookup(spec.name.as_bytes()).map(|s| s.cmd), Some(spec.cmd));
            let upper = spec.name.to_uppercase();
            assert_eq!(lookup(upper.as_bytes()).map(|s| s.cmd), Some(spec.cmd));
        }
        for name in ["", "gett", "se", "lpush", "x", "multi2", &"a".repeat(100)] {
            assert!(lookup(name.as_bytes()).is_none(), "{name}");
        }
    }

    #[test]
    fn the_commands_that_walk_the_key_space_are_slow() {
        for name in ["keys", "SCAN", "FlushDB", "flushall"] {
            assert!(is_slow(name.as_bytes()), "{name}");
            assert!(lookup(name.as_bytes()).is_some(), "{name}");
        }
        for name in ["get", "SET", "mget", "dbsize", "key", "scanx"] {
            assert!(!is_slow(name.as_bytes()), "{name}");
        }
    }
}
