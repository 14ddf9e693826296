//! Settings: command-line flags, `BITCASK_*` environment variables and a TOML
//! file, merged in that order of precedence over the defaults.
//!
//! Every setting is optional at each layer; [`Config::load`] takes, for each,
//! the flag if given, else the environment variable, else the file's value,
//! else the default. `bitcask-server --help` lists them all.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcask::{Options, SyncPolicy};
use clap::Parser;
use serde::Deserialize;

/// Default sync interval: a power cut loses at most about this much of
/// acknowledged writes (see the README's durability table).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// The command line (and, through clap, the environment).
#[derive(Debug, Default, Parser)]
#[command(
    name = "bitcask-server",
    version,
    about = "HTTP/JSON server for a bitcask store",
    long_about = "HTTP/JSON server for a bitcask store.\n\nEvery setting can also be given as a \
                  BITCASK_* environment variable or in a TOML file (--config); flags beat the \
                  environment, which beats the file, which beats the defaults."
)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "BITCASK_HOST")]
    pub host: Option<IpAddr>,
    /// HTTP port; 0 picks a free one [default: 8000]
    #[arg(long, env = "BITCASK_PORT")]
    pub port: Option<u16>,
    /// The store's directory [default: ./data]
    #[arg(long, env = "BITCASK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When to fsync: `always`, `never`, or an interval such as `100ms` or `1s`
    /// [default: 100ms]
    #[arg(long, env = "BITCASK_SYNC")]
    pub sync: Option<String>,
    /// A TOML file with any of these settings (names with underscores:
    /// `data_dir = "./data"`)
    #[arg(long, env = "BITCASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer token required on every route but /health (and by RESP's
    /// AUTH). A flag's value shows in the process list (`ps`) to every user
    /// of the machine: prefer --auth-token-file or the environment
    #[arg(long, env = "BITCASK_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// A file holding the bearer token (its first line)
    #[arg(long, env = "BITCASK_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Size at which a data file is sealed, in bytes [default: 268435456]
    #[arg(long, env = "BITCASK_MAX_FILE_SIZE")]
    pub max_file_size: Option<u64>,
    /// Longest key accepted, in bytes [default: 1024]
    #[arg(long, env = "BITCASK_MAX_KEY_SIZE")]
    pub max_key_size: Option<usize>,
    /// Longest value accepted, in bytes [default: 1048576]
    #[arg(long, env = "BITCASK_MAX_VALUE_SIZE")]
    pub max_value_size: Option<usize>,
    /// Longest time a request may take, e.g. `30s` [default: 30s]
    #[arg(long, env = "BITCASK_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Log lines as `human` text or `json` [default: human]
    #[arg(long, env = "BITCASK_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Requests per second allowed from one client address (bursts of the
    /// same size); over it, 429 with Retry-After [default: no limit]
    #[arg(long, env = "BITCASK_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests handled at once; more are answered 503 at once
    /// [default: 1024]
    #[arg(long, env = "BITCASK_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// HTTP connections open at once; more are answered 503 and closed.
    /// Lowered at start if the descriptor limit (ulimit -n) cannot hold it
    /// [default: 10000]
    #[arg(long, env = "BITCASK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Close an HTTP connection that sends and receives nothing for this
    /// long, before its first request too (never less than the request
    /// time-out) [default: 60s]
    #[arg(long, env = "BITCASK_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Slowest request body accepted, in bytes per second after a 5 s
    /// grace; a body that arrives slower is cut off with 408; 0 turns the
    /// check off [default: 65536]
    #[arg(long, env = "BITCASK_BODY_MIN_RATE")]
    pub body_min_rate: Option<u64>,
    /// Host names HTTP requests may carry in their Host header, separated by
    /// commas; `*` allows any (protection against DNS rebinding)
    /// [default: loopback names when listening on a loopback address, else any]
    #[arg(long, env = "BITCASK_ALLOWED_HOSTS")]
    pub allowed_hosts: Option<String>,
    /// Port of the Redis-protocol (RESP) listener on the same host; 0 picks
    /// a free one [default: off]
    #[arg(long, env = "BITCASK_RESP_PORT")]
    pub resp_port: Option<u16>,
    /// RESP connections open at once [default: 10000]
    #[arg(long, env = "BITCASK_RESP_MAX_CONNECTIONS")]
    pub resp_max_connections: Option<usize>,
    /// Close a RESP connection that sends no command for this long, e.g.
    /// `300s`; `off` keeps idle clients, as Redis's `timeout 0` does
    /// [default: off]
    #[arg(long, env = "BITCASK_RESP_IDLE_TIMEOUT")]
    pub resp_idle_timeout: Option<String>,
    /// Most reply bytes one RESP command may need at once (a KEYS reply,
    /// which cannot be streamed); a client over it is disconnected
    /// [default: 67108864]
    #[arg(long, env = "BITCASK_RESP_MAX_OUTPUT")]
    pub resp_max_output: Option<usize>,
    /// Threads serving RESP connections [default: half the CPUs, at least 1]
    #[arg(long, env = "BITCASK_RESP_THREADS")]
    pub resp_threads: Option<usize>,
    /// How often to check whether a merge is due, e.g. `60s`; `off` leaves
    /// merging to POST /admin/merge [default: 60s]
    #[arg(long, env = "BITCASK_MERGE_CHECK_INTERVAL")]
    pub merge_check_interval: Option<String>,
    /// Merge when a sealed data file is at least this fraction dead
    /// [default: 0.5]
    #[arg(long, env = "BITCASK_MERGE_DEAD_FRACTION")]
    pub merge_dead_fraction: Option<f64>,
    /// Merge when the data files hold at least this many dead bytes
    /// [default: 1073741824]
    #[arg(long, env = "BITCASK_MERGE_DEAD_BYTES")]
    pub merge_dead_bytes: Option<u64>,
    /// Bytes a merge may read and write per second [default: no limit]
    #[arg(long, env = "BITCASK_MERGE_BYTES_PER_SEC")]
    pub merge_bytes_per_sec: Option<u64>,
    /// Let RESP clients run FLUSHDB / FLUSHALL (delete every key)
    /// [default: refused]
    #[arg(long, env = "BITCASK_RESP_ALLOW_FLUSH")]
    pub resp_allow_flush: bool,
}

/// The same settings in a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    host: Option<IpAddr>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    sync: Option<String>,
    auth_token: Option<String>,
    auth_token_file: Option<PathBuf>,
    max_file_size: Option<u64>,
    max_key_size: Option<usize>,
    max_value_size: Option<usize>,
    request_timeout: Option<String>,
    log_format: Option<String>,
    rate_limit: Option<u32>,
    max_concurrent_requests: Option<usize>,
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
    body_min_rate: Option<u64>,
    allowed_hosts: Option<String>,
    merge_check_interval: Option<String>,
    merge_dead_fraction: Option<f64>,
    merge_dead_bytes: Option<u64>,
    merge_bytes_per_sec: Option<u64>,
    resp_port: Option<u16>,
    resp_max_connections: Option<usize>,
    resp_idle_timeout: Option<String>,
    resp_max_output: Option<usize>,
    resp_threads: Option<usize>,
    resp_allow_flush: Option<bool>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// The merged, validated settings.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub host: IpAddr,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// The store's directory.
    pub data_dir: PathBuf,
    /// The store's fsync policy.
    pub sync: SyncPolicy,
    /// Bearer token, if auth is on. Never logged.
    pub auth_token: Option<String>,
    /// Engine size limits.
    pub max_file_size: u64,
    /// Longest key accepted, in bytes.
    pub max_key_size: usize,
    /// Longest value accepted, in bytes.
    pub max_value_size: usize,
    /// Longest time a request may take.
    pub request_timeout: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Requests per second per client address, if limited.
    pub rate_limit: Option<u32>,
    /// Requests handled at once.
    pub max_concurrent_requests: usize,
    /// HTTP connections open at once (before the descriptor limit's cap).
    pub max_connections: usize,
    /// How long an HTTP connection may stay silent.
    pub idle_timeout: Duration,
    /// Slowest request body accepted, bytes per second (0: no check).
    pub body_min_rate: u64,
    /// Host header values accepted, or any.
    pub allowed_hosts: AllowedHosts,
    /// When background merges start (`None`: only on request).
    pub merge_trigger: Option<bitcask::MergeTrigger>,
    /// A merge's I/O budget.
    pub merge_bytes_per_sec: Option<u64>,
    /// Port of the RESP listener, if on.
    pub resp_port: Option<u16>,
    /// RESP connections open at once (before the descriptor limit's cap).
    pub resp_max_connections: usize,
    /// How long a RESP connection may send nothing, if limited.
    pub resp_idle_timeout: Option<Duration>,
    /// Most bytes of replies one RESP connection may hold at once.
    pub resp_max_output: usize,
    /// Threads serving RESP connections.
    pub resp_threads: usize,
    /// Whether RESP's FLUSHDB / FLUSHALL are allowed.
    pub resp_allow_flush: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("sync", &self.sync)
            .field("auth", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("max_file_size", &self.max_file_size)
            .field("max_key_size", &self.max_key_size)
            .field("max_value_size", &self.max_value_size)
            .field("request_timeout", &self.request_timeout)
            .field("log_format", &self.log_format)
            .field("rate_limit", &self.rate_limit)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_min_rate", &self.body_min_rate)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("merge_trigger", &self.merge_trigger)
            .field("merge_bytes_per_sec", &self.merge_bytes_per_sec)
            .field("resp_port", &self.resp_port)
            .field("resp_max_connections", &self.resp_max_connections)
            .field("resp_idle_timeout", &self.resp_idle_timeout)
            .field("resp_max_output", &self.resp_max_output)
            .field("resp_threads", &self.resp_threads)
            .field("resp_allow_flush", &self.resp_allow_flush)
            .finish()
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Merges `args` (flags and environment) over the file they name over the
    /// defaults, and validates the result.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let sync = match args.sync.or(file.sync) {
            Some(text) => parse_sync(&text)?,
            None => SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL),
        };
        let token_file = args.auth_token_file.or(file.auth_token_file);
        let auth_token = match (args.auth_token.or(file.auth_token), token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(read_token(&path)?),
            (None, None) => None,
        };
        if auth_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError("the auth token is empty".into()));
        }
        let request_timeout = match args.request_timeout.or(file.request_timeout) {
            Some(text) => parse_duration(&text)
                .ok_or_else(|| ConfigError(format!("request_timeout: not a duration: {text:?}")))?,
            None => Duration::from_secs(30),
        };
        let duration = |name: &str, text: Option<String>, default: Duration| match text {
            Some(text) => parse_duration(&text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError(format!("{name}: not a duration: {text:?}"))),
            None => Ok(default),
        };
        // Never shorter than a request may take: a connection waiting for a
        // slow answer is not idle.
        let idle_timeout = duration(
            "idle_timeout",
            args.idle_timeout.or(file.idle_timeout),
            DEFAULT_IDLE_TIMEOUT,
        )?
        .max(request_timeout);
        let resp_idle_timeout = match args.resp_idle_timeout.or(file.resp_idle_timeout) {
            Some(text) if text.trim() == "off" => None,
            text @ Some(_) => Some(duration("resp_idle_timeout", text, Duration::ZERO)?),
            None => None,
        };
        let allowed_hosts = match args.allowed_hosts.or(file.allowed_hosts) {
            Some(list) => AllowedHosts::parse(&list)?,
            None => AllowedHosts::Default,
        };
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "log_format: expected `human` or `json`, got {other:?}"
                )));
            }
        };
        let merge_trigger = match args
            .merge_check_interval
            .or(file.merge_check_interval)
            .as_deref()
        {
            Some("off") => None,
            interval => {
                let defaults = bitcask::MergeTrigger::default();
                let check_every = match interval {
                    Some(text) => parse_duration(text).ok_or_else(|| {
                        ConfigError(format!(
                            "merge_check_interval: expected `off` or a duration, got {text:?}"
                        ))
                    })?,
                    None => defaults.check_every,
                };
                let dead_fraction = args
                    .merge_dead_fraction
                    .or(file.merge_dead_fraction)
                    .unwrap_or(defaults.dead_fraction);
                if !(dead_fraction > 0.0 && dead_fraction <= 1.0) {
                    return Err(ConfigError(
                        "merge_dead_fraction must be above 0 and at most 1".into(),
                    ));
                }
                Some(bitcask::MergeTrigger {
                    dead_fraction,
                    dead_bytes: args
                        .merge_dead_bytes
                        .or(file.merge_dead_bytes)
                        .unwrap_or(defaults.dead_bytes),
                    check_every,
                })
            }
        };
        let config = Self {
            host: args
                .host
                .or(file.host)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port: args.port.or(file.port).unwrap_or(8000),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            sync,
            auth_token,
            max_file_size: args
                .max_file_size
                .or(file.max_file_size)
                .unwrap_or(DEFAULT_MAX_FILE_SIZE),
            max_key_size: args.max_key_size.or(file.max_key_size).unwrap_or(1024),
            max_value_size: args
                .max_value_size
                .or(file.max_value_size)
                .unwrap_or(1 << 20),
            request_timeout,
            log_format,
            rate_limit: args.rate_limit.or(file.rate_limit),
            max_concurrent_requests: args
                .max_concurrent_requests
                .or(file.max_concurrent_requests)
                .unwrap_or(1024),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            idle_timeout,
            body_min_rate: args
                .body_min_rate
                .or(file.body_min_rate)
                .unwrap_or(DEFAULT_BODY_MIN_RATE),
            allowed_hosts,
            merge_trigger,
            merge_bytes_per_sec: args.merge_bytes_per_sec.or(file.merge_bytes_per_sec),
            resp_port: args.resp_port.or(file.resp_port),
            resp_max_connections: args
                .resp_max_connections
                .or(file.resp_max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            resp_idle_timeout,
            resp_max_output: args
                .resp_max_output
                .or(file.resp_max_output)
                .unwrap_or(DEFAULT_RESP_MAX_OUTPUT),
            resp_threads: args
                .resp_threads
                .or(file.resp_threads)
                .unwrap_or_else(default_resp_threads),
            resp_allow_flush: args.resp_allow_flush || file.resp_allow_flush.unwrap_or(false),
        };
        if config.rate_limit == Some(0)
            || config.max_concurrent_requests == 0
            || config.max_connections == 0
            || config.resp_max_connections == 0
            || config.resp_max_output == 0
            || config.resp_threads == 0
        {
            return Err(ConfigError(
                "rate_limit, max_concurrent_requests, max_connections, resp_max_connections, \
                 resp_max_output and resp_threads must be above zero"
                    .into(),
            ));
        }
        config
            .engine_options()
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(config)
    }

    /// The engine options these settings ask for.
    pub fn engine_options(&self) -> Options {
        Options::new()
            .sync(self.sync)
            .max_file_size(self.max_file_size)
            .max_key_size(self.max_key_size)
            .max_value_size(self.max_value_size)
            .merge_trigger(self.merge_trigger)
            .merge_bytes_per_sec(self.merge_bytes_per_sec)
    }
}

/// Half the CPUs, at least one: the rest is left for HTTP, the engine's
/// background threads and (often, on small machines) the clients. On the
/// 2-vCPU benchmark machine one thread matched Redis without pipelining and
/// two were faster with it (docs/BENCHMARKS.md).
fn default_resp_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The engine's default data file size.
const DEFAULT_MAX_FILE_SIZE: u64 = 256 << 20;
/// Connections per listener, before the descriptor limit's cap.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long an HTTP connection may stay silent.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Slowest request body accepted (after the grace), bytes per second.
const DEFAULT_BODY_MIN_RATE: u64 = 64 * 1024;
/// Most reply bytes one RESP command may need at once.
const DEFAULT_RESP_MAX_OUTPUT: usize = 64 << 20;

/// Which `Host` header values HTTP requests may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Loopback names (`localhost`, `*.localhost`, `127.0.0.1`, `::1`) when
    /// the server listens on a loopback address; any otherwise.
    Default,
    /// Any host.
    Any,
    /// These names (lower case, without ports).
    Only(Vec<String>),
}

impl AllowedHosts {
    /// `*`, or host names separated by commas.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().trim_start_matches('[').trim_end_matches(']'))
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if names.is_empty() {
            return Err(ConfigError(
                "allowed_hosts: expected `*` or host names separated by commas".into(),
            ));
        }
        if names.iter().any(|n| n == "*") {
            return Ok(Self::Any);
        }
        Ok(Self::Only(names))
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// `always`, `never`, or a duration (`100ms`, `1s`, `2m`).
pub fn parse_sync(text: &str) -> Result<SyncPolicy, ConfigError> {
    match text.trim() {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => match parse_duration(other) {
            Some(d) if !d.is_zero() => Ok(SyncPolicy::Interval(d)),
            _ => Err(ConfigError(format!(
                "sync: expected `always`, `never` or an interval such as `100ms` or `1s`, got {text:?}"
            ))),
        },
    }
}

/// A whole number followed by `ms`, `s` or `m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("bitcask-server").chain(list.iter().copied()))
            .expect("parse")
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = Config::load(Args::default()).expect("defaults");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 8000);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.sync, SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL));
        assert!(c.auth_token.is_none());
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "port = 9001\ndata_dir = \"/from/file\"\nsync = \"always\"\n",
        )
        .expect("write");
        let c = Config::load(args(&[
            "--config",
            file.to_str().expect("utf-8"),
            "--port",
            "9002",
        ]))
        .expect("load");
        assert_eq!(c.port, 9002, "flag over file");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"), "file over default");
        assert_eq!(c.sync, SyncPolicy::Always);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        for bad in [
            vec!["--sync", "sometimes"],
            vec!["--sync", "0ms"],
            vec!["--request-timeout", "soon"],
            vec!["--log-format", "xml"],
            vec!["--max-file-size", "0"],
        ] {
            let err = Config::load(args(&bad)).expect_err("refused");
            assert!(!err.to_string().is_empty());
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "prot = 1\n").expect("write");
        let err = Config::load(args(&["--config", file.to_str().expect("utf-8")]))
            .expect_err("unknown key");
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn limits_parse_and_the_idle_time_out_is_never_below_the_request_time_out() {
        let c = Config::load(Args::default()).expect("defaults");
        assert_eq!(c.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(c.allowed_hosts, AllowedHosts::Default);
        assert_eq!(c.resp_idle_timeout, None);
        let c = Config::load(args(&[
            "--request-timeout",
            "90s",
            "--idle-timeout",
            "10s",
            "--resp-idle-timeout",
            "5m",
            "--allowed-hosts",
            "DB.example.com, [::1]",
        ]))
        .expect("load");
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.resp_idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(
            c.allowed_hosts,
            AllowedHosts::Only(vec!["db.example.com".into(), "::1".into()])
        );
        let c = Config::load(args(&[
            "--allowed-hosts",
            "*",
            "--resp-idle-timeout",
            "off",
        ]))
        .expect("load");
        assert_eq!(
            (c.allowed_hosts, c.resp_idle_timeout),
            (AllowedHosts::Any, None)
        );
        for bad in [
            vec!["--idle-timeout", "0s"],
            vec!["--resp-idle-timeout", "soon"],
            vec!["--allowed-hosts", " , "],
            vec!["--max-connections", "0"],
            vec!["--resp-max-output", "0"],
        ] {
            assert!(Config::load(args(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_sync_policies_parse() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("5"), None);
        assert!(matches!(parse_sync("never"), Ok(SyncPolicy::Never)));
        assert!(matches!(parse_sync("1s"), Ok(SyncPolicy::Interval(_))));
    }

    #[test]
    fn the_token_file_is_read_and_the_token_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let c = Config::load(args(&["--auth-token-file", file.to_str().expect("utf-8")]))
            .expect("load");
        assert_eq!(c.auth_token.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
