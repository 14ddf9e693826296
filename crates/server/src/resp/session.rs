//! One connection's state (authenticated? which protocol? its name) and
//! what all connections share (SCAN cursors, counters); the commands that
//! are about the connection or the server rather than the data.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bitcask::SyncPolicy;

use super::commands::{self, COMMANDS, Cmd, Resume};
use super::counts::Tally;
use super::frame::Limits;
use super::glob;
use super::reply::{Out, Protocol};
use super::settings::Settings;
use super::transaction::Queue;
use crate::metrics::{Disconnect, Listener};
use crate::middleware::token_matches;
use crate::state::AppState;

/// The Redis version whose protocol and commands the listener follows;
/// reported by `HELLO` and `INFO` because clients check it.
const REDIS_VERSION: &str = "7.2.0";
/// SCAN cursors kept (the newest): a scan needs only its latest cursor,
/// and this bounds the table to 16 MiB with 1 KiB keys.
const MAX_CURSORS: usize = 16_384;
/// Failed `AUTH` attempts a connection may make; the next failure closes it.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// What every RESP connection of a server shares.
pub struct Shared {
    state: AppState,
    /// Command limits once authenticated.
    limits: Limits,
    cursors: Mutex<Cursors>,
    started: Instant,
    port: u16,
    next_client_id: AtomicU64,
    /// The command count at the last `CONFIG RESETSTAT`: `INFO` reports
    /// the count since (the Prometheus counters themselves never go back).
    stats_base: AtomicU64,
    /// What `CONFIG GET` reports and `CONFIG SET` changes.
    settings: Settings,
}

impl Shared {
    /// Shared state for a listener on `port`.
    pub fn new(state: AppState, port: u16) -> Self {
        let limits = Limits::for_values(state.config().max_value_size);
        let config = state.config();
        let settings = Settings::new(
            config.resp_idle_timeout.duration(),
            state.caps().resp,
            config.sync,
            config.resp_allow_config_set,
        );
        Self {
            settings,
            state,
            limits,
            cursors: Mutex::new(Cursors::default()),
            started: Instant::now(),
            port,
            next_client_id: AtomicU64::new(1),
            stats_base: AtomicU64::new(0),
        }
    }

    /// The listener's run-time settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server's state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Whether FLUSHDB / FLUSHALL may run.
    pub fn allow_flush(&self) -> bool {
        self.state.config().resp_allow_flush
    }

    /// The SCAN cursor table.
    pub fn cursors(&self) -> MutexGuard<'_, Cursors> {
        self.cursors.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SCAN cursors: numbers naming the key a scan resumes after.
#[derive(Default)]
pub struct Cursors {
    resume: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    last: u64,
}

impl Cursors {
    /// A new cursor resuming after `key`.
    pub fn register(&mut self, key: Vec<u8>) -> u64 {
        // Never 0 (that ends a scan); wraps after 2^64 cursors.
        self.last = self.last.wrapping_add(1).max(1);
        let id = self.last;
        self.resume.insert(id, key);
        self.order.push_back(id);
        while self.order.len() > MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.resume.remove(&old);
            }
        }
        id
    }

    /// The key cursor `id` resumes after, if it is known.
    pub fn resume_key(&self, id: u64) -> Option<Vec<u8>> {
        self.resume.get(&id).cloned()
    }
}

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Send the replies so far and close (QUIT).
    Close,
}

/// One connection.
pub struct Session {
    /// What all connections share.
    pub shared: Arc<Shared>,
    authenticated: bool,
    auth_failures: u32,
    name: Option<Vec<u8>>,
    id: u64,
    peer: SocketAddr,
    /// Commands run but not yet added to the shared counts (added once per
    /// read, not per command: the counts are shared by every thread).
    counts: Tally,
    /// Where the command about to run left off (it stopped for the output).
    pub(super) resume: Option<Resume>,
    /// Set by a command that stopped for the output to drain.
    pub(super) stopped: Option<Resume>,
    /// Set when the server decided to close the connection, and why.
    disconnect: Option<Disconnect>,
    /// On a cluster node: whether the next read must wait for a read
    /// barrier (new commands arrived, or a write ran, since the last one).
    pub(super) needs_barrier: bool,
    /// The transaction being queued, after `MULTI`.
    pub(super) queue: Option<Queue>,
    /// The keys `WATCH`ed for the next `EXEC`, with their versions then
    /// (`None`: absent); a map, so that watching a key again is free.
    pub(super) watched: HashMap<Vec<u8>, Option<u64>>,
    /// Keyspace notifications subscribed to (`SUBSCRIBE`, `PSUBSCRIBE`);
    /// `None` outside subscribed mode.
    pub(super) subscriptions: Option<super::pubsub::Subscriptions>,
}

impl Session {
    /// A new connection's session.
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let authenticated = shared.state.config().auth_token.is_none();
        Self {
            shared,
            authenticated,
            auth_failures: 0,
            name: None,
            id,
            peer,
            counts: Tally::default(),
            resume: None,
            stopped: None,
            disconnect: None,
            needs_barrier: true,
            queue: None,
            watched: HashMap::new(),
            subscriptions: None,
        }
    }

    /// The keyspace notifications this connection subscribed to, if any.
    pub fn subscriptions(&self) -> Option<&super::pubsub::Subscriptions> {
        self.subscriptions.as_ref()
    }

    /// Notes how far the notifications have been sent (where a feed that
    /// failed is opened again).
    pub fn notified_up_to(&mut self, next_seq: u64) {
        if let Some(subs) = self.subscriptions.as_mut() {
            subs.from_seq = next_seq;
        }
    }

    /// Whether the connection may run data commands.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// What one command may hold: tiny before authentication.
    pub fn limits(&self) -> Limits {
        if self.authenticated {
            self.shared.limits
        } else {
            Limits::unauthenticated()
        }
    }

    /// Most bytes of replies the connection may hold at once.
    pub fn output_limit(&self) -> usize {
        self.shared.state.config().resp_max_output
    }

    /// A reply of `bytes` would exceed the output limit: the connection is
    /// closed without it.
    pub fn over_output_limit(&mut self, bytes: usize) {
        tracing::warn!(
            peer = %self.peer,
            bytes,
            limit = self.output_limit(),
            "RESP client over its output limit; closing the connection"
        );
        self.close_for(Disconnect::OutputLimit);
    }

    /// Marks the connection for closing, counted under `reason`.
    pub fn close_for(&mut self, reason: Disconnect) {
        self.shared.state.metrics().disconnected(reason);
        self.disconnect = Some(reason);
    }

    /// Why the server is closing the connection, if it is.
    pub fn disconnect(&self) -> Option<Disconnect> {
        self.disconnect
    }

    /// Counts `n` runs of `cmd` outside [`Self::execute`].
    pub fn count_commands(&mut self, cmd: Cmd, n: u64) {
        self.counts.add(cmd, n);
    }

    /// Adds the commands run since the last call to the shared counts.
    pub fn publish_counts(&mut self) {
        self.counts
            .publish(self.shared.state.metrics().resp_commands());
    }

    /// Runs one command, writing its reply into `out`. `store` is the open
    /// store, if it is open yet.
    pub fn execute(
        &mut self,
        store: Option<&Arc<bitcask::Bitcask>>,
        args: &[&[u8]],
        out: &mut Out,
    ) -> Flow {
        let Some(name) = args.first() else {
            return Flow::Continue; // an empty inline line
        };
        if name.eq_ignore_ascii_case(b"POST") || name.eq_ignore_ascii_case(b"Host:") {
            // An HTTP request sent to this port: a web page can make a
            // browser do that to a local server. Redis closes such
            // connections; so do we, without running anything more.
            tracing::warn!(
                peer = %self.peer,
                "an HTTP request on the RESP port (possible cross-protocol attack); connection closed"
            );
            self.close_for(Disconnect::CrossProtocol);
            return Flow::Close;
        }
        let Some(spec) = commands::lookup(name) else {
            self.counts.add_unknown();
            self.queuing_failed();
            let mut text = format!(
                "ERR unknown command '{}', with args beginning with:",
                String::from_utf8_lossy(name)
            );
            for arg in args.iter().skip(1).take(8) {
                text.push_str(&format!(" '{}'", String::from_utf8_lossy(arg)));
            }
            out.error(&text);
            return Flow::Continue;
        };
        let arity_ok = if spec.arity >= 0 {
            args.len() == spec.arity as usize
        } else {
            args.len() >= spec.arity.unsigned_abs() as usize
        };
        if !arity_ok {
            self.counts.add(spec.cmd, 1);
            self.counts.reject(spec.cmd);
            self.queuing_failed();
            out.error(&format!(
                "ERR wrong number of arguments for '{}' command",
                spec.name
            ));
            return Flow::Continue;
        }
        if !self.authenticated && !matches!(spec.cmd, Cmd::Auth | Cmd::Hello | Cmd::Quit) {
            self.counts.add(spec.cmd, 1);
            self.counts.reject(spec.cmd);
            out.error("NOAUTH Authentication required.");
            return Flow::Continue;
        }
        if self.in_multi()
            && !matches!(
                spec.cmd,
                Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit
            )
        {
            // Counted when EXEC runs it.
            self.enqueue(spec.cmd, args, out);
            return Flow::Continue;
        }
        if self.subscriptions.is_some()
            && !matches!(
                spec.cmd,
                Cmd::Subscribe
                    | Cmd::Psubscribe
                    | Cmd::Unsubscribe
                    | Cmd::Punsubscribe
                    | Cmd::Ping
                    | Cmd::Quit
            )
            && out.protocol() == super::reply::Protocol::Resp2
        {
            self.counts.add(spec.cmd, 1);
            self.counts.reject(spec.cmd);
            out.error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ));
            return Flow::Continue;
        }
        let fresh = self.resume.is_none();
        if fresh {
            self.counts.add(spec.cmd, 1);
            tracing::debug!(peer = %self.peer, command = spec.name, "RESP command");
        }
        let reply_at = out.len();
        match spec.cmd {
            Cmd::Ping if self.subscriptions.is_some() => {
                // In subscribed mode PING answers as a message would.
                super::pubsub::push_header(out, 2);
                out.bulk(b"pong");
                out.bulk(args.get(1).copied().unwrap_or_default());
            }
            Cmd::Ping => match args {
                [_] => out.simple("PONG"),
                [_, msg] => out.bulk(msg),
                _ => out.error("ERR wrong number of arguments for 'ping' command"),
            },
            Cmd::Echo => out.bulk(args[1]),
            Cmd::Time => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                out.array(2);
                out.bulk(now.as_secs().to_string().as_bytes());
                out.bulk(now.subsec_micros().to_string().as_bytes());
            }
            Cmd::Quit => {
                out.ok();
                return Flow::Close;
            }
            Cmd::Hello => self.hello(args, out),
            Cmd::Auth => {
                if let Err(e) = self.auth(&args[1..]) {
                    out.error(&e);
                } else {
                    out.ok();
                }
            }
            Cmd::Select => {
                if args[1] == b"0" {
                    out.ok();
                } else {
                    out.error("ERR DB index is out of range");
                }
            }
            Cmd::Info => self.info(args, out),
            Cmd::Config => self.config(args, out),
            Cmd::Command => command(args, out),
            Cmd::Client => self.client(args, out),
            Cmd::Function => function(args, out),
            Cmd::Subscribe | Cmd::Psubscribe => self.subscribe(spec.cmd, store, &args[1..], out),
            Cmd::Unsubscribe | Cmd::Punsubscribe => {
                let kind = if spec.cmd == Cmd::Unsubscribe {
                    super::pubsub::Kind::Channel
                } else {
                    super::pubsub::Kind::Pattern
                };
                let mut subs = self
                    .subscriptions
                    .take()
                    .unwrap_or_else(|| super::pubsub::Subscriptions::new(0));
                subs.unsubscribe(kind, &args[1..], out);
                // None left: out of subscribed mode.
                self.subscriptions = (subs.count() > 0).then_some(subs);
            }
            Cmd::Multi => self.multi(out),
            Cmd::Discard => self.discard(out),
            Cmd::Unwatch => self.unwatch(out),
            Cmd::Exec => self.exec(store, out),
            Cmd::Watch if self.in_multi() => out.error("ERR WATCH inside MULTI is not allowed"),
            // Every other command is about the data: `dispatch` (an
            // exhaustive match) decides how each runs.
            _ => match store {
                Some(store) => self.run_store_command(spec, store, args, out),
                None => out.error("LOADING Bitcask is loading the dataset in memory"),
            },
        }
        if fresh && out.bytes().get(reply_at) == Some(&b'-') {
            self.counts.fail(spec.cmd);
        }
        if self.disconnect.is_some() {
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Counts one run of `cmd` (already counted) as answered with an error.
    pub(super) fn count_failed(&mut self, cmd: Cmd) {
        self.counts.fail(cmd);
    }

    /// Counts a command refused while queuing in a transaction.
    pub(super) fn count_rejected(&mut self, cmd: Cmd) {
        self.counts.add(cmd, 1);
        self.counts.reject(cmd);
    }

    /// `AUTH [user] token`.
    fn auth(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let Some(expected) = self
            .shared
            .state
            .config()
            .auth_token
            .as_ref()
            .map(crate::config::Secret::expose)
        else {
            return Err(
                "ERR AUTH <password> called without any password configured for the \
                        default user. Are you sure your configuration is correct?"
                    .to_string(),
            );
        };
        let (user, token) = match args {
            [token] => (&b"default"[..], *token),
            [user, token] => (*user, *token),
            _ => return Err("ERR syntax error".to_string()),
        };
        if user == b"default" && token_matches(token, expected.as_bytes()) {
            self.authenticated = true;
            self.auth_failures = 0;
            return Ok(());
        }
        self.auth_failures += 1;
        self.shared.state.metrics().auth_failed(Listener::Resp);
        if self.auth_failures >= MAX_AUTH_FAILURES {
            tracing::warn!(
                peer = %self.peer,
                failures = self.auth_failures,
                "repeated failed AUTH; connection closed"
            );
            self.close_for(Disconnect::AuthFailures);
        }
        Err("WRONGPASS invalid username-password pair or user is disabled.".to_string())
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    fn hello(&mut self, args: &[&[u8]], out: &mut Out) {
        let mut protocol = out.protocol();
        if let Some(version) = args.get(1) {
            protocol = match *version {
                b"2" => Protocol::Resp2,
                b"3" => Protocol::Resp3,
                _ => {
                    out.error("NOPROTO unsupported protocol version");
                    return;
                }
            };
        }
        let mut i = 2;
        while i < args.len() {
            if args[i].eq_ignore_ascii_case(b"AUTH") && i + 2 < args.len() {
                if let Err(e) = self.auth(&args[i + 1..i + 3]) {
                    out.error(&e);
                    return;
                }
                i += 3;
            } else if args[i].eq_ignore_ascii_case(b"SETNAME") && i + 1 < args.len() {
                self.name = Some(args[i + 1].to_vec());
                i += 2;
            } else {
                out.error("ERR syntax error in HELLO option");
                return;
            }
        }
        if !self.authenticated {
            out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
            return;
        }
        out.set_protocol(protocol);
        out.map(7);
        out.bulk(b"server");
        out.bulk(b"redis");
        out.bulk(b"version");
        out.bulk(REDIS_VERSION.as_bytes());
        out.bulk(b"proto");
        out.int(if protocol == Protocol::Resp3 { 3 } else { 2 });
        out.bulk(b"id");
        out.int(self.id as i64);
        out.bulk(b"mode");
        out.bulk(b"standalone");
        out.bulk(b"role");
        out.bulk(b"master");
        out.bulk(b"modules");
        out.array(0);
    }

    /// `CLIENT SETNAME|GETNAME|SETINFO|ID|INFO`.
    fn client(&mut self, args: &[&[u8]], out: &mut Out) {
        let sub = &args[1];
        if sub.eq_ignore_ascii_case(b"SETNAME") && args.len() == 3 {
            self.name = Some(args[2].to_vec()).filter(|n| !n.is_empty());
            out.ok();
        } else if sub.eq_ignore_ascii_case(b"GETNAME") {
            out.bulk_or_null(self.name.as_deref());
        } else if sub.eq_ignore_ascii_case(b"SETINFO") && args.len() == 4 {
            out.ok();
        } else if sub.eq_ignore_ascii_case(b"ID") {
            out.int(self.id as i64);
        } else if sub.eq_ignore_ascii_case(b"INFO") {
            let name = self
                .name
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            out.bulk(format!("id={} name={} db=0\n", self.id, name).as_bytes());
        } else {
            out.error(&format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            ));
        }
    }

    /// The commands run so far, this connection's not yet published ones
    /// included.
    fn commands_processed(&self) -> u64 {
        self.shared.state.metrics().resp_commands().total() + self.counts.pending()
    }

    /// `SUBSCRIBE channel ...` / `PSUBSCRIBE pattern ...`: keyspace
    /// notifications from now on (the change feed's position when the
    /// first subscription is made; the connection reads the feed from
    /// there, `super::connection`).
    fn subscribe(
        &mut self,
        cmd: Cmd,
        store: Option<&Arc<bitcask::Bitcask>>,
        names: &[&[u8]],
        out: &mut Out,
    ) {
        let kind = if cmd == Cmd::Subscribe {
            super::pubsub::Kind::Channel
        } else {
            super::pubsub::Kind::Pattern
        };
        let mut subs = match self.subscriptions.take() {
            Some(subs) => subs,
            None => match store {
                Some(store) => super::pubsub::Subscriptions::new(store.position().next_seq),
                None => {
                    out.error("LOADING the store is still opening; retry shortly");
                    return;
                }
            },
        };
        if let Err(error) = subs.subscribe(kind, names, out) {
            out.error(&error);
        }
        // (A refused first subscription does not enter subscribed mode.)
        self.subscriptions = (subs.count() > 0).then_some(subs);
    }

    /// `CONFIG GET pattern [pattern ...]`, `CONFIG SET name value [name
    /// value ...]` (what may change: [`Settings`]) and `CONFIG RESETSTAT`.
    fn config(&self, args: &[&[u8]], out: &mut Out) {
        let sub = &args[1];
        if sub.eq_ignore_ascii_case(b"RESETSTAT") && args.len() == 2 {
            self.shared
                .stats_base
                .store(self.commands_processed(), Ordering::Relaxed);
            out.ok();
            return;
        }
        if sub.eq_ignore_ascii_case(b"SET") {
            if args.len() < 4 || !args.len().is_multiple_of(2) {
                out.error("ERR wrong number of arguments for 'config|set' command");
                return;
            }
            let pairs: Vec<(&[u8], &[u8])> =
                args[2..].chunks_exact(2).map(|p| (p[0], p[1])).collect();
            match self.shared.settings.set(&pairs) {
                Ok(()) => out.ok(),
                Err(error) => out.error(&error),
            }
            return;
        }
        if !sub.eq_ignore_ascii_case(b"GET") || args.len() < 3 {
            out.error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(sub)
            ));
            return;
        }
        let params = self.shared.settings.all();
        let found: Vec<&(&str, String)> = params
            .iter()
            .filter(|(name, _)| {
                args[2..]
                    .iter()
                    .any(|p| glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
            })
            .collect();
        out.map(found.len());
        for (name, value) in found {
            out.bulk(name.as_bytes());
            out.bulk(value.as_bytes());
        }
    }

    /// `INFO [section ...]`: the default sections, or those named
    /// (`all` and `everything` add `commandstats`).
    fn info(&self, args: &[&[u8]], out: &mut Out) {
        let wanted = |section: &str| {
            let by_default = section != "commandstats";
            (args.len() == 1 && by_default)
                || args[1..].iter().any(|a| {
                    a.eq_ignore_ascii_case(section.as_bytes())
                        || a.eq_ignore_ascii_case(b"all")
                        || a.eq_ignore_ascii_case(b"everything")
                        || (by_default && a.eq_ignore_ascii_case(b"default"))
                })
        };
        let state = &self.shared.state;
        let mut text = String::new();
        if wanted("server") {
            text.push_str(&format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nbitcask_version:{}\r\nredis_mode:standalone\r\n\
                 os:{}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                usize::BITS,
                std::process::id(),
                self.shared.port,
                self.shared.started.elapsed().as_secs(),
            ));
        }
        if wanted("clients") {
            text.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
                self.shared.state.metrics().resp_connections(),
                self.shared.settings.max_clients()
            ));
        }
        if wanted("memory") {
            let rss = process::resident_bytes();
            text.push_str(&format!(
                "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\n\r\n",
                rss as f64 / (1 << 20) as f64
            ));
        }
        let stats = state.try_store().map(|s| s.stats());
        if wanted("persistence") {
            let policy = match state.config().sync {
                SyncPolicy::Always => "always".to_string(),
                SyncPolicy::Interval(d) => format!("interval {}ms", d.as_millis()),
                _ => "never".to_string(),
            };
            text.push_str(&format!(
                "# Persistence\r\nloading:{}\r\nsync_policy:{policy}\r\naof_enabled:1\r\n\
                 merge_in_progress:{}\r\nmerges_completed:{}\r\ndata_files:{}\r\ndead_bytes:{}\r\n\r\n",
                u8::from(stats.is_none()),
                stats.as_ref().map_or(0, |s| u8::from(s.merge_running)),
                stats.as_ref().map_or(0, |s| s.merges_completed),
                stats.as_ref().map_or(0, |s| s.data_files),
                stats.as_ref().map_or(0, |s| s.dead_bytes),
            ));
        }
        if wanted("stats") {
            let since_reset = self
                .commands_processed()
                .saturating_sub(self.shared.stats_base.load(Ordering::Relaxed));
            text.push_str(&format!(
                "# Stats\r\ntotal_commands_processed:{since_reset}\r\n\r\n"
            ));
        }
        if wanted("replication") {
            // Redis's replication is not offered (a cluster replicates with
            // raft): every server is a primary with no replicas.
            text.push_str(
                "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n",
            );
        }
        if wanted("cpu") {
            let cpu = process::cpu_seconds();
            text.push_str(&format!(
                "# CPU\r\nused_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\n\
                 used_cpu_sys_children:{:.6}\r\nused_cpu_user_children:{:.6}\r\n\r\n",
                cpu.sys, cpu.user, cpu.children_sys, cpu.children_user
            ));
        }
        if wanted("commandstats") {
            text.push_str("# Commandstats\r\n");
            for stat in self.shared.state.metrics().resp_commands().stats() {
                // Time per command is not measured: no usec fields.
                text.push_str(&format!(
                    "cmdstat_{}:calls={},rejected_calls={},failed_calls={}\r\n",
                    stat.name, stat.calls, stat.rejected, stat.failed
                ));
            }
            text.push_str("\r\n");
        }
        if wanted("keyspace") {
            text.push_str("# Keyspace\r\n");
            if let Some(s) = &stats
                && s.keys > 0
            {
                text.push_str(&format!(
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    s.keys, s.keys_with_expiry
                ));
            }
        }
        out.bulk(text.as_bytes());
    }
}

/// What `INFO` reports of the process, from `/proc` (Linux; zeros
/// elsewhere).
mod process {
    /// CPU time used, in seconds.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct CpuSeconds {
        pub user: f64,
        pub sys: f64,
        pub children_user: f64,
        pub children_sys: f64,
    }

    /// This process's CPU time (`/proc/self/stat`: utime, stime, cutime,
    /// cstime, in clock ticks).
    pub fn cpu_seconds() -> CpuSeconds {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return CpuSeconds::default();
        };
        // The command name, in parentheses, may hold spaces: count fields
        // after its closing parenthesis (field 3 is the first after it).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return CpuSeconds::default();
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
        let field = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .map_or(0.0, |t| t / ticks)
        };
        CpuSeconds {
            user: field(14),
            sys: field(15),
            children_user: field(16),
            children_sys: field(17),
        }
    }

    /// The process's resident memory in bytes (`/proc/self/statm`).
    pub fn resident_bytes() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * rustix::param::page_size() as u64)
    }
}

/// `FUNCTION FLUSH|LIST`: there is no scripting, so there are never any
/// functions: flushing them is done, listing them is empty (Redis's test
/// harness and some clients' reset paths call these); anything else is
/// refused.
fn function(args: &[&[u8]], out: &mut Out) {
    let sub = args[1];
    if is_word(sub, "FLUSH") && args.len() <= 3 {
        out.ok();
    } else if is_word(sub, "LIST") {
        out.array(0);
    } else {
        out.error("ERR scripting (FUNCTION, EVAL) is not supported by bitcask");
    }
}

fn is_word(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// `COMMAND [COUNT|INFO|DOCS|LIST]`.
fn command(args: &[&[u8]], out: &mut Out) {
    let Some(sub) = args.get(1) else {
        out.array(COMMANDS.len());
        for spec in COMMANDS {
            commands::command_entry(spec, out);
        }
        return;
    };
    if sub.eq_ignore_ascii_case(b"COUNT") {
        out.int(COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        out.array(COMMANDS.len());
        for spec in COMMANDS {
            out.bulk(spec.name.as_bytes());
        }
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        out.array(args.len() - 2);
        for name in &args[2..] {
            match commands::lookup(name) {
                Some(spec) => commands::command_entry(spec, out),
                None => out.null(),
            }
        }
    } else if sub.eq_ignore_ascii_case(b"DOCS") {
        // No documentation to offer: redis-cli then shows no hints.
        out.map(0);
    } else {
        out.error(&format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_resume_and_the_oldest_are_forgotten() {
        let mut cursors = Cursors::default();
        let first = cursors.register(b"a".to_vec());
        assert_ne!(first, 0);
        assert_eq!(cursors.resume_key(first), Some(b"a".to_vec()));
        for i in 0..MAX_CURSORS {
            cursors.register(i.to_be_bytes().to_vec());
        }
        assert_eq!(cursors.resume_key(first), None);
        assert_eq!(cursors.resume.len(), MAX_CURSORS);
    }
}
