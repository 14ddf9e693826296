//! The CLI's settings file (`config.toml` in the platform's config
//! directory, e.g. `~/.config/bitcask/config.toml`), and how flags,
//! environment and file combine into the settings a command uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;

/// Names the settings file instead of the platform's default location.
pub const CONFIG_ENV: &str = "BITCASK_CLI_CONFIG";

/// The settings the file may hold, with what each means.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "server_url",
        "the server to call, e.g. http://localhost:8000",
    ),
    ("auth_token", "the bearer token the server requires"),
    (
        "timeout",
        "how long to wait for an answer (`30`, `500ms`, `2m`)",
    ),
];

/// The settings file's path: `$BITCASK_CLI_CONFIG`, else
/// `<config dir>/bitcask/config.toml`.
pub fn path() -> Result<PathBuf, Failure> {
    if let Some(path) = std::env::var_os(CONFIG_ENV) {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("bitcask").join("config.toml"))
        .ok_or_else(|| {
            Failure::usage(format!(
                "cannot tell where this platform keeps settings; set {CONFIG_ENV} to a file path"
            ))
        })
}

/// The settings in the file (empty if there is no file).
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Failure::usage(format!("{} is not valid TOML: {e}", path.display())))?;
    let mut settings = BTreeMap::new();
    for (name, value) in table {
        check_name(&name).map_err(|f| f.context(&format!("in {}", path.display())))?;
        let text = match value {
            toml::Value::String(s) => s,
            other => other.to_string(),
        };
        settings.insert(name, text);
    }
    Ok(settings)
}

/// Writes `settings` to the file (through a temporary file and a rename, so
/// a crash leaves the old file or the new one, never half of one).
pub fn save(path: &Path, settings: &BTreeMap<String, String>) -> Result<(), Failure> {
    let mut table = toml::Table::new();
    for (name, value) in settings {
        let value = match name.as_str() {
            "timeout" => value
                .parse::<f64>()
                .map(toml::Value::Float)
                .unwrap_or_else(|_| toml::Value::String(value.clone())),
            _ => toml::Value::String(value.clone()),
        };
        table.insert(name.clone(), value);
    }
    let text = toml::to_string(&table)
        .map_err(|e| Failure::usage(format!("cannot write settings: {e}")))?;
    let fail = |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("toml.tmp");
    // Readable by its owner only: it may hold a token.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(fail)?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Fails unless `name` is a known setting.
pub fn check_name(name: &str) -> Result<(), Failure> {
    if SETTINGS.iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    let known: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
    Err(Failure::usage(format!(
        "unknown setting {name:?}; the settings are {}",
        known.join(", ")
    )))
}

/// Fails unless `value` is valid for setting `name`.
pub fn check_value(name: &str, value: &str) -> Result<(), Failure> {
    match name {
        "server_url" => bitcask_client::Client::new(value)
            .map(|_| ())
            .map_err(|e| Failure::usage(e.to_string())),
        "timeout" => parse_timeout(value).map(|_| ()),
        _ => Ok(()),
    }
}

/// A duration: a number of seconds (`30`, `2.5`) or a number with its unit
/// (`500ms`, `30s`, `2m`, `1h 30m`), read by the `humantime` crate as the
/// server reads its own durations. Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let parsed = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => humantime::parse_duration(text).ok(),
    };
    parsed.filter(|d| !d.is_zero()).ok_or_else(|| {
        format!("expected a duration such as `30`, `500ms`, `30s` or `2m` (seconds without a unit), got {text:?}")
    })
}

/// A time-out, as [`parse_duration`] reads it.
pub fn parse_timeout(text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|e| Failure::usage(format!("timeout: {e}")))
}

/// A time-to-live in whole seconds, as [`parse_duration`] reads it (`60`,
/// `90s`, `1h`); the server counts expiry in whole seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let d = parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("a ttl is whole seconds, got {text:?}"));
    }
    Ok(d.as_secs())
}

/// What a command talking to a server uses, after flags, environment and
/// the file have been combined.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The server's URL.
    pub server_url: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The time-out per request.
    pub timeout: Duration,
}

/// Combines the sources, first found wins: flag, environment
/// (`BITCASK_SERVER`; the token's flag reads `BITCASK_AUTH_TOKEN`), the
/// settings file, the default.
pub fn remote(
    server_flag: Option<&str>,
    token_flag: Option<&str>,
    timeout_flag: Option<Duration>,
) -> Result<Remote, Failure> {
    let file = load(&path()?)?;
    let server_url = server_flag
        .map(str::to_string)
        .or_else(|| std::env::var(bitcask_client::SERVER_ENV).ok())
        .or_else(|| file.get("server_url").cloned())
        .unwrap_or_else(|| bitcask_client::DEFAULT_URL.to_string());
    let token = token_flag
        .map(str::to_string)
        .or_else(|| file.get("auth_token").cloned());
    let timeout = match (timeout_flag, file.get("timeout")) {
        (Some(timeout), _) => timeout,
        (None, Some(text)) => parse_timeout(text)?,
        (None, None) => Duration::from_secs(30),
    };
    Ok(Remote {
        server_url,
        token,
        timeout,
    })
}
