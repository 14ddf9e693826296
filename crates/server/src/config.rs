//! Settings: command-line flags, `BITCASK_*` environment variables and a TOML
//! file, merged in that order of precedence over the defaults.
//!
//! Each setting is declared once, as a field of [`Config`]: its flag, its
//! environment variable, its file key (the field's name), its type, its
//! check and its default (taken from the engine where the engine owns it).
//! A file's values become the defaults of a second parse of the same
//! command line, so clap itself applies the precedence: flag, then
//! environment, then file, then built-in default. `bitcask-server --help`
//! lists them all.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bitcask::{MergeTrigger, Options, Scrub, SyncPolicy};
use clap::{CommandFactory, FromArgMatches, Parser};

/// Every server setting, merged and checked.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "bitcask-server",
    version,
    about = "HTTP/JSON server for a bitcask store",
    long_about = "HTTP/JSON server for a bitcask store.\n\nEvery setting can also be given as a \
                  BITCASK_* environment variable or in a TOML file (--config); flags beat the \
                  environment, which beats the file, which beats the defaults."
)]
// No argument group named after the struct: it would show in the start-up
// log's list of settings given, as if it were one.
#[group(skip)]
pub struct Config {
    /// Address to listen on
    #[arg(long, env = "BITCASK_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// HTTP port; 0 picks a free one
    #[arg(long, env = "BITCASK_PORT", default_value_t = 8000)]
    pub port: u16,
    /// The store's directory
    #[arg(long, env = "BITCASK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// When to fsync: `always`, `never`, or an interval such as `100ms` or
    /// `1s` (a power cut loses at most about that much of acknowledged
    /// writes; see the README's durability table)
    #[arg(long, env = "BITCASK_SYNC", default_value = "100ms", value_parser = parse_sync)]
    pub sync: SyncPolicy,
    /// A TOML file with any of these settings (names with underscores:
    /// `data_dir = "./data"`)
    #[arg(long, env = "BITCASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer token required on every route but /health (and by RESP's
    /// AUTH). A flag's value shows in the process list (`ps`) to every user
    /// of the machine: prefer --auth-token-file or the environment
    #[arg(long, env = "BITCASK_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<Secret>,
    /// A file holding the bearer token (its first line); read at start
    /// into `auth_token` unless that is given
    #[arg(long, env = "BITCASK_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Size at which a data file is sealed, e.g. `256MiB`
    #[arg(long, env = "BITCASK_MAX_FILE_SIZE", default_value = show_size(Options::DEFAULT_MAX_FILE_SIZE),
          value_parser = parse_size::<u64>)]
    pub max_file_size: u64,
    /// Longest key accepted, e.g. `1KiB`
    #[arg(long, env = "BITCASK_MAX_KEY_SIZE", default_value = show_size(Options::DEFAULT_MAX_KEY_SIZE as u64),
          value_parser = parse_size::<usize>)]
    pub max_key_size: usize,
    /// Longest value accepted, e.g. `1MiB`
    #[arg(long, env = "BITCASK_MAX_VALUE_SIZE", default_value = show_size(Options::DEFAULT_MAX_VALUE_SIZE as u64),
          value_parser = parse_size::<usize>)]
    pub max_value_size: usize,
    /// Longest time a request may take, e.g. `30s`
    #[arg(long, env = "BITCASK_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_span)]
    pub request_timeout: Duration,
    /// Log lines as `human` text or `json`
    #[arg(long, env = "BITCASK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Requests per second allowed from one client address (bursts of the
    /// same size); over it, 429 with Retry-After [default: no limit]
    #[arg(long, env = "BITCASK_RATE_LIMIT", value_parser = positive::<u32>)]
    pub rate_limit: Option<u32>,
    /// Requests handled at once; more are answered 503 at once
    #[arg(long, env = "BITCASK_MAX_CONCURRENT_REQUESTS", default_value_t = 1024,
          value_parser = positive::<usize>)]
    pub max_concurrent_requests: usize,
    /// HTTP connections open at once; more are answered 503 and closed.
    /// Lowered at start if the descriptor limit (ulimit -n) cannot hold it
    #[arg(long, env = "BITCASK_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = positive::<usize>)]
    pub max_connections: usize,
    /// Close an HTTP connection that sends and receives nothing for this
    /// long, before its first request too (never less than the request
    /// time-out)
    #[arg(long, env = "BITCASK_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_span)]
    pub idle_timeout: Duration,
    /// Slowest request body accepted, in bytes per second after a 5 s
    /// grace (e.g. `64KiB`); a body that arrives slower is cut off with
    /// 408; 0 turns the check off
    #[arg(long, env = "BITCASK_BODY_MIN_RATE", default_value = "64KiB",
          value_parser = parse_size::<u64>)]
    pub body_min_rate: u64,
    /// Watchers (`GET /watch` streams and long polls) open at once; more
    /// are answered 503
    #[arg(long, env = "BITCASK_WATCH_MAX", default_value_t = 1_000,
          value_parser = positive::<usize>)]
    pub watch_max: usize,
    /// Event bytes a watch stream may have queued that its client has not
    /// taken, e.g. `1MiB`; the server reads no further ahead for it
    #[arg(long, env = "BITCASK_WATCH_MAX_BACKLOG", default_value = "1MiB",
          value_parser = positive_size::<usize>)]
    pub watch_max_backlog: usize,
    /// How long a watch stream's backlog may stay full (its client taking
    /// nothing) before the stream is cut; the client resumes from its last
    /// event
    #[arg(long, env = "BITCASK_WATCH_STALL_TIMEOUT", default_value = "30s",
          value_parser = parse_span)]
    pub watch_stall_timeout: Duration,
    /// How often an idle watch stream is told where the store stands (an
    /// SSE `progress` event)
    #[arg(long, env = "BITCASK_WATCH_PROGRESS_INTERVAL", default_value = "10s",
          value_parser = parse_span)]
    pub watch_progress_interval: Duration,
    /// Host names HTTP requests may carry in their Host header, separated by
    /// commas; `*` allows any (protection against DNS rebinding)
    /// [default: loopback names when listening on a loopback address, else any]
    #[arg(long, env = "BITCASK_ALLOWED_HOSTS")]
    pub allowed_hosts: Option<AllowedHosts>,
    /// Port of the Redis-protocol (RESP) listener on the same host; 0 picks
    /// a free one [default: off]
    #[arg(long, env = "BITCASK_RESP_PORT")]
    pub resp_port: Option<u16>,
    /// RESP connections open at once
    #[arg(long, env = "BITCASK_RESP_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = positive::<usize>)]
    pub resp_max_connections: usize,
    /// Close a RESP connection that sends no command for this long, e.g.
    /// `300s`; `off` keeps idle clients, as Redis's `timeout 0` does
    #[arg(long, env = "BITCASK_RESP_IDLE_TIMEOUT", default_value_t = Switch::Off)]
    pub resp_idle_timeout: Switch,
    /// Most reply bytes one RESP command may need at once (a KEYS reply,
    /// which cannot be streamed); a client over it is disconnected
    #[arg(long, env = "BITCASK_RESP_MAX_OUTPUT", default_value = "64MiB",
          value_parser = positive_size::<usize>)]
    pub resp_max_output: usize,
    /// Threads serving RESP connections [default: half the CPUs, at least 1]
    #[arg(long, env = "BITCASK_RESP_THREADS", default_value_t = default_resp_threads(),
          hide_default_value = true, value_parser = positive::<usize>)]
    pub resp_threads: usize,
    /// The web console at /ui (docs/UI.md): `on` or `off` (its routes
    /// answer 404)
    #[arg(long, env = "BITCASK_UI", value_enum, default_value_t = OnOff::On)]
    pub ui: OnOff,
    /// Append records by copying them into a map of the active file's
    /// preallocated space (`on`, Linux) or with one `pwrite` each (`off`):
    /// the same durability; with `on`, an I/O error reading a page of the
    /// active file back ends the process instead of failing the write
    /// (docs/FORMAT.md, "Mapped appends")
    #[arg(long, env = "BITCASK_MAPPED_APPENDS", value_enum, default_value_t = OnOff::On)]
    pub mapped_appends: OnOff,
    /// Let RESP clients run FLUSHDB / FLUSHALL (delete every key)
    /// [default: refused]
    #[arg(long, env = "BITCASK_RESP_ALLOW_FLUSH")]
    pub resp_allow_flush: bool,
    /// Let RESP clients change `timeout` and `maxclients` with CONFIG SET
    /// [default: refused]
    #[arg(long, env = "BITCASK_RESP_ALLOW_CONFIG_SET")]
    pub resp_allow_config_set: bool,
    /// How often to check whether a merge is due, e.g. `60s`; `off` leaves
    /// merging to POST /admin/merge
    #[arg(long, env = "BITCASK_MERGE_CHECK_INTERVAL",
          default_value_t = Switch::On(MergeTrigger::default().check_every))]
    pub merge_check_interval: Switch,
    /// Merge when a sealed data file is at least this fraction dead
    #[arg(long, env = "BITCASK_MERGE_DEAD_FRACTION",
          default_value_t = MergeTrigger::default().dead_fraction, value_parser = fraction)]
    pub merge_dead_fraction: f64,
    /// Merge when the data files hold at least this many dead bytes
    #[arg(long, env = "BITCASK_MERGE_DEAD_BYTES",
          default_value = show_size(MergeTrigger::default().dead_bytes), value_parser = parse_size::<u64>)]
    pub merge_dead_bytes: u64,
    /// The directory `POST /admin/backup` (and `bitcask backup NAME`) writes
    /// copies into, each in a new subdirectory; not inside the data
    /// directory, ideally on another disk [default: off: backups over HTTP
    /// are refused; `bitcask backup --data-dir` works on the machine]
    #[arg(long, env = "BITCASK_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How often to verify every sealed data file's checksums in the
    /// background, e.g. `1440m` (a day); `off` leaves it to `bitcask check`
    #[arg(long, env = "BITCASK_SCRUB_INTERVAL", default_value_t = Switch::Off)]
    pub scrub_interval: Switch,
    /// Delete keys whose expiry has passed in the background, a sample
    /// every interval, as Redis's active expiry does, e.g. `100ms`; `off`
    /// leaves them until a merge (they read as absent either way). Always
    /// off on a cluster node, whose writes all come through the cluster
    #[arg(long, env = "BITCASK_EXPIRE_INTERVAL",
          default_value_t = Switch::On(Duration::from_millis(100)))]
    pub expire_interval: Switch,
    /// Bytes a scrub may read per second
    #[arg(long, env = "BITCASK_SCRUB_BYTES_PER_SEC", default_value = "16MiB",
          value_parser = positive_size::<u64>)]
    pub scrub_bytes_per_sec: u64,
    /// Bytes a merge may read and write per second [default: no limit]
    #[arg(long, env = "BITCASK_MERGE_BYTES_PER_SEC", value_parser = positive_size::<u64>)]
    pub merge_bytes_per_sec: Option<u64>,
    /// This node's id in a replicated cluster (a positive integer, never
    /// reused for another node); turns cluster mode on (docs/CLUSTER.md)
    /// [default: a single node]
    #[arg(long, env = "BITCASK_NODE_ID", value_parser = positive::<u64>)]
    pub node_id: Option<u64>,
    /// Port for node-to-node traffic, on --host (cluster mode)
    #[arg(long, env = "BITCASK_PEER_PORT")]
    pub peer_port: Option<u16>,
    /// The founding members as `id=host:port,...` (their peer addresses),
    /// the same list for every founder, on its first start only
    #[arg(long, env = "BITCASK_INITIAL_CLUSTER")]
    pub initial_cluster: Option<InitialCluster>,
    /// The secret the nodes of a cluster authenticate each other with
    /// (required when the peer port is not on a loopback address). A flag's
    /// value shows in the process list: prefer --cluster-token-file
    #[arg(long, env = "BITCASK_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<Secret>,
    /// A file holding the cluster token (its first line)
    #[arg(long, env = "BITCASK_CLUSTER_TOKEN_FILE")]
    pub cluster_token_file: Option<PathBuf>,
    /// Longest a request waits for a leader, or for its write to commit,
    /// before it is answered 503 (cluster mode)
    #[arg(long, env = "BITCASK_CLUSTER_WAIT", default_value = "5s", value_parser = parse_span)]
    pub cluster_wait: Duration,
    /// Peer connections open at once (cluster mode)
    #[arg(long, env = "BITCASK_PEER_MAX_CONNECTIONS", default_value_t = 256,
          value_parser = positive::<usize>)]
    pub peer_max_connections: usize,
    /// Longest a shutdown waits for requests in flight before it closes the
    /// store without them; a second SIGINT/SIGTERM stops waiting at once
    #[arg(long, env = "BITCASK_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_span)]
    pub shutdown_timeout: Duration,
    /// Where each setting that is not at its default came from (filled in
    /// by [`Config::from_args`]; not a setting).
    #[arg(skip)]
    pub origins: Vec<Given>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// A `BITCASK_*` environment variable.
    Env,
    /// The TOML file (`--config`).
    File,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "flag",
            Self::Env => "env",
            Self::File => "file",
        })
    }
}

/// A setting given by a flag, the environment or the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// Its name (the file key).
    pub name: String,
    /// Its value as given (`<hidden>` for a secret).
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

impl fmt::Display for Given {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} ({})", self.name, self.value, self.origin)
    }
}

/// The settings whose values are never shown.
const SECRETS: [&str; 2] = ["auth_token", "cluster_token"];

/// What `matches` took from the command line and the environment, and
/// what it took from `file` (given to clap as defaults).
fn origins(matches: &clap::ArgMatches, file: &[String]) -> Vec<Given> {
    use clap::parser::ValueSource;
    let mut given = Vec::new();
    for id in matches.ids() {
        let name = id.as_str();
        let origin = match matches.value_source(name) {
            Some(ValueSource::CommandLine) => Origin::Flag,
            Some(ValueSource::EnvVariable) => Origin::Env,
            Some(ValueSource::DefaultValue) if file.iter().any(|k| k == name) => Origin::File,
            _ => continue,
        };
        let value = if SECRETS.contains(&name) {
            "<hidden>".to_string()
        } else {
            let raw = matches.get_raw(name).into_iter().flatten();
            let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            values.join(",")
        };
        given.push(Given {
            name: name.to_string(),
            value,
            origin,
        });
    }
    given
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line or the environment was refused (or asked for
    /// `--help` / `--version`); [`clap::Error::exit`] prints it.
    #[error("{0}")]
    Cli(#[from] clap::Error),
    /// Anything else: a file, a token, a combination of settings.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Parses `argv` (its first item is the program's name) with the
    /// environment and the file it names (`--config`), and checks the
    /// result.
    pub fn from_args<I, T>(argv: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        let matches = Self::cli()
            .try_get_matches_from(argv.iter().cloned())
            .map_err(|e| blame_environment(e, &Self::cli(), &argv))?;
        let mut config = Self::from_arg_matches(&matches)?;
        config.origins = origins(&matches, &[]);
        if let Some(path) = config.config.clone() {
            let mut command = Self::cli();
            let mut from_file = Vec::new();
            for (key, value) in read_file(&path)? {
                let known = command
                    .get_arguments()
                    .any(|a| a.get_id() == key.as_str() && a.get_long().is_some());
                if !known || ["config", "help", "version"].contains(&key.as_str()) {
                    return Err(invalid(format!(
                        "{}: unknown setting `{key}`",
                        path.display()
                    )));
                }
                let text = file_value(&value).ok_or_else(|| {
                    invalid(format!(
                        "{}: `{key}` must be a string, a number or a boolean",
                        path.display()
                    ))
                })?;
                command = command.mut_arg(&key, |arg| arg.default_value(text));
                from_file.push(key);
            }
            let matches = command.try_get_matches_from(argv).map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                invalid(format!(
                    "{}: {}",
                    path.display(),
                    first.trim_start_matches("error: ")
                ))
            })?;
            config = Self::from_arg_matches(&matches)?;
            config.origins = origins(&matches, &from_file);
        }
        config.finish()
    }

    /// The command line's declaration, as `--help` shows it: environment
    /// variables by name only (`[env: BITCASK_PORT]`: a value shown there
    /// would be the one of whoever runs `--help`, empty when unset).
    fn cli() -> clap::Command {
        Self::command().mut_args(|arg| arg.hide_env_values(true))
    }

    /// `bitcask-server --help`, as text.
    pub fn command_help() -> String {
        Self::cli().render_long_help().to_string()
    }

    /// Reads the token file, applies the rules between settings and checks
    /// the engine's options.
    fn finish(mut self) -> Result<Self, ConfigError> {
        if self.auth_token.is_none()
            && let Some(path) = &self.auth_token_file
        {
            self.auth_token = Some(read_token(path)?);
        }
        if self.cluster_token.is_none()
            && let Some(path) = &self.cluster_token_file
        {
            self.cluster_token = Some(read_token(path)?);
        }
        self.check_cluster()?;
        self.check_backup_dir()?;
        // Never shorter than a request may take: a connection waiting for a
        // slow answer is not idle.
        self.idle_timeout = self.idle_timeout.max(self.request_timeout);
        self.engine_options()
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(self)
    }

    /// Makes the backup directory absolute (as the server's working
    /// directory at start says) and refuses one inside the data directory:
    /// a copy there shares the store's disk and would be taken for part of
    /// it by anyone cleaning up.
    fn check_backup_dir(&mut self) -> Result<(), ConfigError> {
        let Some(dir) = &self.backup_dir else {
            return Ok(());
        };
        let absolute =
            |p: &Path| std::path::absolute(p).map_err(|e| invalid(format!("{}: {e}", p.display())));
        let backups = absolute(dir)?;
        let data = absolute(&self.data_dir)?;
        if backups.starts_with(&data) {
            return Err(invalid(format!(
                "backup_dir {} is inside the data directory {}: put backups elsewhere \
                 (another disk, ideally)",
                backups.display(),
                data.display()
            )));
        }
        self.backup_dir = Some(backups);
        Ok(())
    }

    /// The rules between the cluster settings (see `docs/CLUSTER.md`).
    fn check_cluster(&self) -> Result<(), ConfigError> {
        let Some(node_id) = self.node_id else {
            if self.peer_port.is_some()
                || self.initial_cluster.is_some()
                || self.cluster_token.is_some()
            {
                return Err(invalid(
                    "peer_port, initial_cluster and cluster_token need node_id (cluster mode)"
                        .into(),
                ));
            }
            return Ok(());
        };
        let Some(peer_port) = self.peer_port else {
            return Err(invalid(
                "node_id needs peer_port: the port other nodes reach this one at".into(),
            ));
        };
        if peer_port != 0 && (peer_port == self.port || Some(peer_port) == self.resp_port) {
            return Err(invalid(
                "peer_port must differ from port and resp_port".into(),
            ));
        }
        // (The address listed for this node may differ from the port it
        // listens on, with a proxy or a NAT in front: warned at start.)
        if let Some(founders) = &self.initial_cluster
            && !founders.0.contains_key(&node_id)
        {
            return Err(invalid(format!(
                "initial_cluster does not list this node (id {node_id})"
            )));
        }
        if !self.host.is_loopback() && self.cluster_token.is_none() {
            return Err(invalid(format!(
                "the peer port would listen on {}, which is not a loopback address, without a \
                 cluster token: anyone who reaches it could join or feed the cluster. Set \
                 --cluster-token-file (the same secret on every node), or listen on 127.0.0.1",
                self.host
            )));
        }
        Ok(())
    }

    /// When background merges start (`None`: only on request).
    pub fn merge_trigger(&self) -> Option<MergeTrigger> {
        let check_every = self.merge_check_interval.duration()?;
        Some(MergeTrigger {
            dead_fraction: self.merge_dead_fraction,
            dead_bytes: self.merge_dead_bytes,
            check_every,
        })
    }

    /// The engine options these settings ask for.
    pub fn engine_options(&self) -> Options {
        Options::new()
            .sync(self.sync)
            .mapped_appends(self.mapped_appends == OnOff::On)
            .max_file_size(self.max_file_size)
            .max_key_size(self.max_key_size)
            .max_value_size(self.max_value_size)
            .merge_trigger(self.merge_trigger())
            .merge_bytes_per_sec(self.merge_bytes_per_sec)
            .scrub(self.scrub_interval.duration().map(|every| Scrub {
                every,
                bytes_per_sec: self.scrub_bytes_per_sec,
            }))
            // A cluster's store is written by its state machine alone.
            .expire_interval(
                self.expire_interval
                    .duration()
                    .filter(|_| self.node_id.is_none()),
            )
    }
}

/// A bad value that came from an environment variable, reported under the
/// variable's name: clap names the flag (`--port <PORT>`), which the user
/// never typed. Other errors pass through as clap's.
fn blame_environment(
    error: clap::Error,
    command: &clap::Command,
    argv: &[OsString],
) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return ConfigError::Cli(error);
    };
    let Some(long) = shown
        .split_whitespace()
        .next()
        .and_then(|flag| flag.strip_prefix("--"))
    else {
        return ConfigError::Cli(error);
    };
    let typed = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a.strip_prefix("--")
            .is_some_and(|rest| rest == long || rest.starts_with(&format!("{long}=")))
    });
    let env = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) if !typed && std::env::var_os(&env).is_some() => {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            let reason = first
                .trim_start_matches("error: ")
                .replace(&format!("for '{shown}'"), &format!("in {env}"));
            invalid(format!(
                "{reason} (from the environment; unset it or fix it)"
            ))
        }
        _ => ConfigError::Cli(error),
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

/// Half the CPUs, at least one: the rest is left for HTTP, the engine's
/// background threads and (often, on small machines) the clients. On the
/// 2-vCPU benchmark machine one thread matched Redis without pipelining and
/// two were faster with it (docs/BENCHMARKS.md).
fn default_resp_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// A feature turned on or off: the web console (`ui`), mapped appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On (the console served at /ui; records copied into a map).
    On,
    /// Off.
    Off,
}

impl fmt::Display for OnOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Human => "human",
            Self::Json => "json",
        })
    }
}

/// The founding members of a cluster: node id to peer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialCluster(pub std::collections::BTreeMap<u64, String>);

impl FromStr for InitialCluster {
    type Err = String;

    /// `id=host:port` entries separated by commas.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut members = std::collections::BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let shape = || format!("expected id=host:port, got {entry:?}");
            let (id, addr) = entry.split_once('=').ok_or_else(shape)?;
            let id: u64 = id
                .trim()
                .parse()
                .ok()
                .filter(|&id| id > 0)
                .ok_or_else(shape)?;
            let addr = addr.trim();
            let port = addr.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(shape());
            }
            if members.insert(id, addr.to_string()).is_some() {
                return Err(format!("node {id} is listed twice"));
            }
        }
        if members.is_empty() {
            return Err("expected id=host:port entries separated by commas".into());
        }
        Ok(Self(members))
    }
}

impl fmt::Display for InitialCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self.0.iter().map(|(id, a)| format!("{id}={a}")).collect();
        f.write_str(&entries.join(","))
    }
}

/// A secret setting (a token): never shown by `Debug`, so a logged
/// [`Config`] does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for comparing; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<set>")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Self(text.to_string()))
    }
}

/// A duration that can be turned `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Off.
    Off,
    /// On, with this duration.
    On(Duration),
}

impl Switch {
    /// The duration, when on.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::On(d) => Some(d),
        }
    }
}

impl FromStr for Switch {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self::Off);
        }
        parse_span(text)
            .map(Self::On)
            .map_err(|_| format!("expected `off` or a duration such as `300s`, got {text:?}"))
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::On(d) => write!(f, "{}", show_duration(*d)),
        }
    }
}

/// Which `Host` header values HTTP requests may carry, when given (the
/// default, `None` in [`Config::allowed_hosts`], is loopback names when the
/// server listens on a loopback address and any otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host.
    Any,
    /// These names (lower case, without ports).
    Only(Vec<String>),
}

impl FromStr for AllowedHosts {
    type Err = String;

    /// `*`, or host names separated by commas.
    fn from_str(list: &str) -> Result<Self, String> {
        let names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().trim_start_matches('[').trim_end_matches(']'))
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if names.is_empty() {
            return Err("expected `*` or host names separated by commas".into());
        }
        if names.iter().any(|n| n == "*") {
            return Ok(Self::Any);
        }
        Ok(Self::Only(names))
    }
}

/// A TOML file's settings, by name.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// A file's value as the text a flag would carry.
fn file_value(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_token(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// `always`, `never`, or a duration (`100ms`, `1s`, `2m`).
pub fn parse_sync(text: &str) -> Result<SyncPolicy, String> {
    match text.trim() {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => parse_span(other).map(SyncPolicy::Interval).map_err(|_| {
            format!(
                "expected `always`, `never` or an interval such as `100ms` or `1s`, got {text:?}"
            )
        }),
    }
}

/// A duration longer than zero, as [`parse_duration`] reads it.
fn parse_span(text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("expected a duration such as `100ms`, `30s`, `5m` or `24h`, got {text:?}")
        })
}

/// A duration with its unit (`100ms`, `30s`, `5m`, `24h`, `1h 30m`), as the
/// `humantime` crate reads it; a bare number is refused (seconds or
/// milliseconds?).
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// A sync policy as `--sync` takes it.
pub fn show_sync(policy: SyncPolicy) -> String {
    match policy {
        SyncPolicy::Always => "always".into(),
        SyncPolicy::Never => "never".into(),
        SyncPolicy::Interval(every) => show_duration(every),
    }
}

/// A duration as [`parse_duration`] reads it back (`30s`, `1m 40s`, `100ms`).
pub fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Byte units: IEC (powers of 1,024) and SI (powers of 1,000), as people
/// write them in settings.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// A size in bytes: a whole number, optionally followed by a unit of
/// [`SIZE_UNITS`] (`65536`, `64KiB`, `256MiB`, `1GiB`, `1.5 GB` is refused:
/// no fractions). Written by hand rather than taken from a crate such as
/// `bytesize`: settings want exact integers with overflow refused, where
/// those parse through floating point.
pub fn parse_size<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let shape = || {
        format!(
            "expected a size such as `65536`, `64KiB`, `256MiB` or `1GiB` (B, KiB, MiB, GiB, \
             TiB; KB, MB, GB, TB), got {text:?}"
        )
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| shape())?;
    let unit = unit.trim();
    let scale = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, scale)| scale)
            .ok_or_else(shape)?
    };
    let bytes = number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is more bytes than fit in 64 bits"))?;
    T::try_from(bytes).map_err(|_| format!("{text:?} is more bytes than this setting can hold"))
}

/// A size as [`parse_size`] reads it: in the largest binary unit that holds
/// it exactly (`256MiB`, `1GiB`, `64KiB`; `1000` stays in bytes).
pub fn show_size(bytes: u64) -> String {
    SIZE_UNITS[1..5]
        .iter()
        .rev()
        .find(|&&(_, scale)| bytes >= scale && bytes.is_multiple_of(scale))
        .map_or_else(
            || bytes.to_string(),
            |(name, scale)| format!("{}{name}", bytes / scale),
        )
}

/// A size above zero, as [`parse_size`] reads it.
fn positive_size<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    match parse_size::<u64>(text)? {
        0 => Err(format!("must be above zero, got {text:?}")),
        bytes => T::try_from(bytes).map_err(|_| format!("{text:?} is too large for this setting")),
    }
}

/// A number above zero.
fn positive<T>(text: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + Default,
    T::Err: fmt::Display,
{
    let n: T = text.trim().parse().map_err(|e| format!("{e}"))?;
    if n <= T::default() {
        return Err("must be above zero".into());
    }
    Ok(n)
}

/// A fraction above 0 and at most 1.
fn fraction(text: &str) -> Result<f64, String> {
    let x: f64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    if !(x > 0.0 && x <= 1.0) {
        return Err("must be above 0 and at most 1".into());
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(list: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("bitcask-server").chain(list.iter().copied()))
    }

    #[test]
    fn defaults_match_the_seed_and_the_engine() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 8000);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.sync, SyncPolicy::Interval(Duration::from_millis(100)));
        assert!(c.auth_token.is_none());
        assert_eq!(c.max_file_size, Options::DEFAULT_MAX_FILE_SIZE);
        assert_eq!(c.max_value_size, Options::DEFAULT_MAX_VALUE_SIZE);
        assert_eq!(c.merge_trigger(), Some(MergeTrigger::default()));
        assert_eq!(c.resp_idle_timeout, Switch::Off);
        assert!(!c.resp_allow_flush);
        assert!(!c.resp_allow_config_set);
    }

    #[test]
    fn mapped_appends_are_on_by_default_and_can_be_turned_off() {
        let on = load(&[]).expect("defaults");
        assert_eq!(on.mapped_appends, OnOff::On);
        assert!(format!("{:?}", on.engine_options()).contains("mapped_appends: true"));
        let off = load(&["--mapped-appends", "off"]).expect("off");
        assert_eq!(off.mapped_appends, OnOff::Off);
        assert!(format!("{:?}", off.engine_options()).contains("mapped_appends: false"));
        assert!(load(&["--mapped-appends", "sometimes"]).is_err());
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "port = 9001\ndata_dir = \"/from/file\"\nsync = \"always\"\n\
             resp_allow_flush = true\nmerge_dead_fraction = 0.25\nmerge_check_interval = \"off\"\n",
        )
        .expect("write");
        let c = load(&["--config", file.to_str().expect("utf-8"), "--port", "9002"]).expect("load");
        assert_eq!(c.port, 9002, "flag over file");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"), "file over default");
        assert_eq!(c.sync, SyncPolicy::Always);
        assert!(c.resp_allow_flush, "a boolean from the file");
        assert_eq!(c.merge_dead_fraction, 0.25, "a float from the file");
        assert_eq!(c.merge_trigger(), None);
        let origin = |name: &str| c.origins.iter().find(|g| g.name == name).cloned();
        let port = origin("port").expect("port was given");
        assert_eq!((port.value.as_str(), port.origin), ("9002", Origin::Flag));
        let dir = origin("data_dir").expect("data_dir was given");
        assert_eq!(
            (dir.value.as_str(), dir.origin),
            ("/from/file", Origin::File)
        );
        assert_eq!(origin("sync").map(|g| g.origin), Some(Origin::File));
        assert_eq!(origin("host"), None, "defaults are not listed");
        let c = load(&["--auth-token", "s3cret", "--port", "1"]).expect("load");
        let shown: Vec<String> = c.origins.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(&"auth_token=<hidden> (flag)".to_string()),
            "{shown:?}"
        );
        assert!(shown.contains(&"port=1 (flag)".to_string()), "{shown:?}");
        assert_eq!(
            shown.len(),
            2,
            "settings only, no argument group: {shown:?}"
        );
    }

    #[test]
    fn the_backup_directory_is_made_absolute_and_never_inside_the_data_directory() {
        assert_eq!(load(&[]).expect("defaults").backup_dir, None);
        let c = load(&["--data-dir", "/srv/data", "--backup-dir", "backups"]).expect("load");
        let dir = c.backup_dir.expect("set");
        assert!(
            dir.is_absolute() && dir.ends_with("backups"),
            "{}",
            dir.display()
        );
        for inside in ["/srv/data", "/srv/data/backups", "/srv/data/./b"] {
            let err = load(&["--data-dir", "/srv/data", "--backup-dir", inside]).expect_err(inside);
            assert!(
                err.to_string().contains("inside the data directory"),
                "{err}"
            );
        }
        assert!(
            load(&[
                "--data-dir",
                "/srv/data",
                "--backup-dir",
                "/srv/data-backups"
            ])
            .is_ok()
        );
    }

    #[test]
    fn the_scrub_is_off_by_default_and_paced_when_on() {
        assert!(
            load(&[])
                .expect("defaults")
                .engine_options()
                .validate()
                .is_ok()
        );
        assert_eq!(load(&[]).expect("defaults").scrub_interval, Switch::Off);
        let defaults = load(&[]).expect("defaults");
        assert_eq!(
            defaults.expire_interval,
            Switch::On(Duration::from_millis(100))
        );
        assert!(load(&["--expire-interval", "off"]).is_ok());
        let c = load(&["--scrub-interval", "60m", "--scrub-bytes-per-sec", "1000"]).expect("load");
        assert_eq!(c.scrub_interval, Switch::On(Duration::from_secs(3600)));
        assert_eq!(c.scrub_bytes_per_sec, 1000);
        assert!(load(&["--scrub-bytes-per-sec", "0"]).is_err());
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        for (bad, reason) in [
            (vec!["--sync", "sometimes"], "sometimes"),
            (vec!["--sync", "0ms"], "0ms"),
            (vec!["--request-timeout", "soon"], "soon"),
            (vec!["--log-format", "xml"], "xml"),
            (vec!["--max-file-size", "0"], "max_file_size"),
            (vec!["--merge-dead-fraction", "1.5"], "above 0"),
            (vec!["--auth-token", " "], "empty"),
        ] {
            let err = load(&bad).expect_err("refused");
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        for (text, reason) in [
            ("prot = 1\n", "unknown setting `prot`"),
            ("config = \"x\"\n", "unknown setting `config`"),
            ("port = [1]\n", "`port` must be"),
            ("port = 70000\n", "70000"),
            ("sync = \"sometimes\"\n", "sometimes"),
            ("port = \n", "c.toml"),
        ] {
            std::fs::write(&file, text).expect("write");
            let err = load(&["--config", file.to_str().expect("utf-8")]).expect_err(text);
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn limits_parse_and_the_idle_time_out_is_never_below_the_request_time_out() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.allowed_hosts, None);
        let c = load(&[
            "--request-timeout",
            "90s",
            "--idle-timeout",
            "10s",
            "--resp-idle-timeout",
            "5m",
            "--allowed-hosts",
            "DB.example.com, [::1]",
        ])
        .expect("load");
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.resp_idle_timeout, Switch::On(Duration::from_secs(300)));
        assert_eq!(
            c.allowed_hosts,
            Some(AllowedHosts::Only(vec![
                "db.example.com".into(),
                "::1".into()
            ]))
        );
        let c = load(&["--allowed-hosts", "*", "--resp-idle-timeout", "off"]).expect("load");
        assert_eq!(
            (c.allowed_hosts, c.resp_idle_timeout),
            (Some(AllowedHosts::Any), Switch::Off)
        );
        for bad in [
            vec!["--idle-timeout", "0s"],
            vec!["--resp-idle-timeout", "soon"],
            vec!["--allowed-hosts", " , "],
            vec!["--max-connections", "0"],
            vec!["--resp-max-output", "0"],
            vec!["--rate-limit", "0"],
        ] {
            assert!(load(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_sync_policies_parse_and_print_back() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("5"), None);
        assert!(matches!(parse_sync("never"), Ok(SyncPolicy::Never)));
        assert!(matches!(parse_sync("1s"), Ok(SyncPolicy::Interval(_))));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5_400)));
        for (text, shown) in [
            ("1500ms", "1s 500ms"),
            ("90s", "1m 30s"),
            ("2m", "2m"),
            ("off", "off"),
        ] {
            let switch = text.parse::<Switch>().expect(text);
            assert_eq!(switch.to_string(), shown);
            assert_eq!(shown.parse::<Switch>().expect(shown), switch, "reads back");
        }
    }

    #[test]
    fn sizes_take_units_and_print_in_the_largest_exact_one() {
        for (text, bytes) in [
            ("0", 0u64),
            ("65536", 65_536),
            ("64KiB", 65_536),
            ("64kib", 65_536),
            ("256MiB", 256 << 20),
            ("1 GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("10KB", 10_000),
            ("1GB", 1_000_000_000),
            ("7B", 7),
        ] {
            assert_eq!(parse_size::<u64>(text), Ok(bytes), "{text}");
        }
        for bad in ["", "MiB", "1.5GiB", "-1", "12 parsecs", "99999999999TiB"] {
            assert!(parse_size::<u64>(bad).is_err(), "{bad}");
        }
        assert!(parse_size::<u32>("4GiB").is_err(), "over the type's range");
        assert!(positive_size::<u64>("0").is_err());
        for (bytes, shown) in [
            (256u64 << 20, "256MiB"),
            (1 << 30, "1GiB"),
            (65_536, "64KiB"),
            (1_000, "1000"),
            (1_536, "1536"),
        ] {
            assert_eq!(show_size(bytes), shown);
            assert_eq!(parse_size::<u64>(shown), Ok(bytes));
        }
        let c = load(&["--max-file-size", "64MiB", "--max-value-size", "2MiB"]).expect("load");
        assert_eq!((c.max_file_size, c.max_value_size), (64 << 20, 2 << 20));
        assert!(load(&["--max-file-size", "lots"]).is_err());
    }

    #[test]
    fn cluster_settings_are_checked_together() {
        let c = load(&[
            "--node-id",
            "2",
            "--peer-port",
            "9002",
            "--initial-cluster",
            "1=127.0.0.1:9001, 2=127.0.0.1:9002,3=127.0.0.1:9003",
        ])
        .expect("load");
        assert_eq!(c.node_id, Some(2));
        let founders = c.initial_cluster.expect("founders").0;
        assert_eq!(founders.len(), 3);
        assert_eq!(founders[&2], "127.0.0.1:9002");
        for (bad, reason) in [
            (vec!["--peer-port", "9001"], "need node_id"),
            (vec!["--node-id", "1"], "needs peer_port"),
            (vec!["--node-id", "0", "--peer-port", "9001"], "above zero"),
            (
                vec![
                    "--node-id",
                    "4",
                    "--peer-port",
                    "9004",
                    "--initial-cluster",
                    "1=127.0.0.1:9001",
                ],
                "does not list this node",
            ),
            (
                vec![
                    "--node-id",
                    "1",
                    "--peer-port",
                    "9001",
                    "--initial-cluster",
                    "1=x",
                ],
                "id=host:port",
            ),
            (
                vec![
                    "--node-id",
                    "1",
                    "--peer-port",
                    "9001",
                    "--initial-cluster",
                    "1=a:1,1=b:2",
                ],
                "twice",
            ),
            (vec!["--node-id", "1", "--peer-port", "8000"], "must differ"),
            (
                vec!["--node-id", "1", "--peer-port", "9001", "--host", "0.0.0.0"],
                "cluster token",
            ),
        ] {
            let err = load(&bad).expect_err("refused");
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
        let c = load(&[
            "--node-id",
            "1",
            "--peer-port",
            "9001",
            "--host",
            "0.0.0.0",
            "--cluster-token",
            "s3cret",
        ])
        .expect("a token allows a public peer port");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn the_token_file_is_read_and_the_token_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let c = load(&["--auth-token-file", file.to_str().expect("utf-8")]).expect("load");
        assert_eq!(c.auth_token.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        std::fs::write(&file, "\n").expect("write");
        let err = load(&["--auth-token-file", file.to_str().expect("utf-8")]).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
