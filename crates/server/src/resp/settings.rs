//! What `CONFIG GET` reports and `CONFIG SET` may change, under Redis's
//! names.
//!
//! Two settings change while the server runs, if it was started with
//! `--resp-allow-config-set` (a client that may lower `maxclients` to 1
//! can lock the others out, so the operator opts in, as for `FLUSHALL`):
//! `timeout` (the RESP idle time-out, `--resp-idle-timeout`; seconds, 0
//! for none) and `maxclients` (at most `--resp-max-connections`, which
//! stays the ceiling: it is what the operator sized descriptors and memory
//! for). Both apply to the
//! connections already open too: a waiting connection is woken to take
//! the new time-out; lowering `maxclients` closes no one, it refuses new
//! connections until fewer are open (as Redis does).
//!
//! `notify-keyspace-events` (which keyspace notifications subscribers get,
//! [`super::pubsub::Flags`]; empty, none, as in Redis) may always change:
//! it only decides what subscribed connections are sent, and clients that
//! listen for invalidations set it themselves.
//!
//! The other settings reported (`save`, `appendonly`, `appendfsync`,
//! `databases`, `maxmemory`) are fixed by what bitcask is: setting one to
//! the value it already has succeeds (clients and scripts set them
//! defensively), any other value, or any other setting, is refused with
//! an error that names it. A `CONFIG SET` of several settings applies all
//! or none, as Redis 7's does.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use bitcask::SyncPolicy;
use tokio::sync::watch;

/// The run-time settings of one RESP listener.
pub struct Settings {
    /// The idle time-out; connections watch it.
    idle_timeout: watch::Sender<Option<Duration>>,
    max_clients: AtomicUsize,
    /// `--resp-max-connections`: the most `maxclients` may be.
    ceiling: usize,
    /// Reported by `appendfsync`.
    sync: SyncPolicy,
    /// Whether `timeout` and `maxclients` may change.
    changeable: bool,
    /// `notify-keyspace-events`, as [`super::pubsub::Flags`] bits.
    keyspace_events: AtomicU16,
}

/// One `name value` pair of a `CONFIG SET`, checked.
enum Change {
    Timeout(Option<Duration>),
    MaxClients(usize),
    KeyspaceEvents(super::pubsub::Flags),
    /// A fixed setting set to the value it has.
    Same,
}

impl Settings {
    /// Settings as the server was started: `idle_timeout` and `ceiling`
    /// from its configuration, `sync` its store's policy; `changeable`
    /// whether `timeout` and `maxclients` may change.
    pub fn new(
        idle_timeout: Option<Duration>,
        ceiling: usize,
        sync: SyncPolicy,
        changeable: bool,
    ) -> Self {
        Self {
            idle_timeout: watch::Sender::new(idle_timeout),
            max_clients: AtomicUsize::new(ceiling),
            ceiling,
            sync,
            changeable,
            keyspace_events: AtomicU16::new(0),
        }
    }

    /// Which keyspace notifications are sent now.
    pub fn keyspace_events(&self) -> super::pubsub::Flags {
        super::pubsub::Flags::from_bits(self.keyspace_events.load(Ordering::Relaxed))
    }

    /// The idle time-out now.
    pub fn idle_timeout(&self) -> Option<Duration> {
        *self.idle_timeout.borrow()
    }

    /// A handle that wakes when the idle time-out changes.
    pub fn watch_idle_timeout(&self) -> watch::Receiver<Option<Duration>> {
        self.idle_timeout.subscribe()
    }

    /// How many connections may be open now.
    pub fn max_clients(&self) -> usize {
        self.max_clients.load(Ordering::Relaxed)
    }

    /// Every setting `CONFIG GET` reports, with its value now.
    pub fn all(&self) -> [(&'static str, String); 8] {
        let timeout = self.idle_timeout().map_or(0, |t| {
            // Whole seconds, rounded up: a sub-second time-out is not "0"
            // (none).
            t.as_secs() + u64::from(t.subsec_nanos() > 0)
        });
        [
            ("save", String::new()),
            ("appendonly", "yes".to_string()),
            ("appendfsync", self.appendfsync().to_string()),
            ("databases", "1".to_string()),
            ("maxmemory", "0".to_string()),
            ("maxclients", self.max_clients().to_string()),
            ("timeout", timeout.to_string()),
            ("notify-keyspace-events", self.keyspace_events().show()),
        ]
    }

    /// Redis's name for the store's sync policy.
    fn appendfsync(&self) -> &'static str {
        match self.sync {
            SyncPolicy::Always => "always",
            SyncPolicy::Interval(_) => "everysec",
            _ => "no",
        }
    }

    /// Applies `CONFIG SET name value [name value ...]`: every pair is
    /// checked first and nothing changes unless all are accepted. The error
    /// is the reply's text.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        let changes = pairs
            .iter()
            .map(|&(name, value)| self.check(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        for change in changes {
            match change {
                Change::Timeout(timeout) => {
                    self.idle_timeout.send_replace(timeout);
                }
                Change::MaxClients(n) => self.max_clients.store(n, Ordering::Relaxed),
                Change::KeyspaceEvents(flags) => {
                    self.keyspace_events.store(flags.bits(), Ordering::Relaxed);
                }
                Change::Same => {}
            }
        }
        Ok(())
    }

    fn check(&self, name: &[u8], value: &[u8]) -> Result<Change, String> {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let text = String::from_utf8_lossy(value);
        let failed = |why: &str| {
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        let integer = || {
            text.parse::<u64>()
                .map_err(|_| failed("argument couldn't be parsed into an integer"))
        };
        let fixed = |current: &str, how: &str| {
            if text.eq_ignore_ascii_case(current) {
                Ok(Change::Same)
            } else {
                Err(format!(
                    "ERR CONFIG SET '{name}' to '{text}' is not supported by bitcask: {how}"
                ))
            }
        };
        let runtime = matches!(name.as_str(), "timeout" | "maxclients");
        if runtime && !self.changeable {
            return Err(format!(
                "ERR CONFIG SET '{name}' is disabled; start the server with --resp-allow-config-set"
            ));
        }
        match name.as_str() {
            "timeout" => {
                let seconds = integer()?;
                if seconds > i32::MAX as u64 {
                    return Err(failed(&format!(
                        "argument must be between 0 and {} inclusive",
                        i32::MAX
                    )));
                }
                Ok(Change::Timeout(
                    (seconds > 0).then(|| Duration::from_secs(seconds)),
                ))
            }
            "maxclients" => {
                let n = integer()?;
                if n == 0 || n > self.ceiling as u64 {
                    return Err(failed(&format!(
                        "argument must be between 1 and {} inclusive (--resp-max-connections)",
                        self.ceiling
                    )));
                }
                Ok(Change::MaxClients(n as usize))
            }
            "notify-keyspace-events" => super::pubsub::Flags::parse(value)
                .map(Change::KeyspaceEvents)
                .ok_or_else(|| failed("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")),
            "save" => fixed("", "it takes no snapshots (its log is the data)"),
            "appendonly" => fixed("yes", "its log is always on"),
            "appendfsync" => fixed(self.appendfsync(), "fsyncs follow --sync, fixed at start"),
            "databases" => fixed("1", "it has one database"),
            "maxmemory" => fixed("0", "it keeps values on disk and evicts nothing"),
            _ => Err(format!(
                "ERR CONFIG SET '{name}' is not supported by bitcask: settings are fixed at start \
                 (bitcask-server --help lists them)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(
            None,
            100,
            SyncPolicy::Interval(Duration::from_secs(1)),
            true,
        )
    }

    #[test]
    fn runtime_settings_change_and_fixed_ones_accept_only_their_value() {
        let s = settings();
        s.set(&[(b"TIMEOUT", b"5"), (b"maxclients", b"7")])
            .expect("both change");
        assert_eq!(
            (s.idle_timeout(), s.max_clients()),
            (Some(Duration::from_secs(5)), 7)
        );
        s.set(&[(b"timeout", b"0")]).expect("off");
        assert_eq!(s.idle_timeout(), None);
        for same in [
            (&b"save"[..], &b""[..]),
            (b"appendonly", b"yes"),
            (b"appendfsync", b"everysec"),
            (b"databases", b"1"),
            (b"maxmemory", b"0"),
        ] {
            s.set(&[same]).expect("the value it has");
        }
        let refused = s.set(&[(b"appendfsync", b"always")]).expect_err("fixed");
        assert!(
            refused.contains("'appendfsync'") && refused.contains("--sync"),
            "{refused}"
        );
        let unknown = s.set(&[(b"hz", b"100")]).expect_err("unknown");
        assert!(
            unknown.contains("'hz'") && unknown.contains("fixed at start"),
            "{unknown}"
        );
    }

    #[test]
    fn a_bad_pair_changes_nothing_and_errors_are_redis_s() {
        let s = settings();
        let e = s
            .set(&[(b"timeout", b"9"), (b"maxclients", b"101")])
            .expect_err("over the ceiling");
        assert_eq!(
            e,
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - \
             argument must be between 1 and 100 inclusive (--resp-max-connections)"
        );
        assert_eq!(
            (s.idle_timeout(), s.max_clients()),
            (None, 100),
            "all or none"
        );
        let e = s.set(&[(b"timeout", b"soon")]).expect_err("not a number");
        assert_eq!(
            e,
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - \
             argument couldn't be parsed into an integer"
        );
        assert!(s.set(&[(b"maxclients", b"0")]).is_err());
    }

    #[test]
    fn without_the_flag_runtime_settings_are_refused_and_fixed_ones_still_accepted() {
        let s = Settings::new(None, 100, SyncPolicy::Always, false);
        let e = s.set(&[(b"maxclients", b"1")]).expect_err("refused");
        assert!(e.contains("--resp-allow-config-set"), "{e}");
        assert_eq!(s.max_clients(), 100);
        assert!(s.set(&[(b"timeout", b"5")]).is_err());
        s.set(&[(b"appendfsync", b"always")])
            .expect("the value it has");
    }

    #[test]
    fn config_get_reports_a_sub_second_timeout_as_one_second_and_watchers_wake() {
        let s = Settings::new(
            Some(Duration::from_millis(300)),
            10,
            SyncPolicy::Always,
            true,
        );
        let all = s.all();
        assert!(all.contains(&("timeout", "1".to_string())), "{all:?}");
        assert!(all.contains(&("appendfsync", "always".to_string())));
        let mut watcher = s.watch_idle_timeout();
        watcher.borrow_and_update();
        s.set(&[(b"timeout", b"2")]).expect("set");
        assert!(watcher.has_changed().expect("sender alive"));
        assert_eq!(*watcher.borrow(), Some(Duration::from_secs(2)));
    }
}
