//! Why a command failed, and the exit code that tells scripts.

use std::fmt;

/// Exit codes (also in `bitcask --help` and the README).
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// The answer is "no": key absent (get), damage found (check), server
    /// not healthy (health).
    pub const NO: u8 = 1;
    /// Bad arguments or settings (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The server cannot be reached (not running, wrong address, time-out).
    pub const UNREACHABLE: u8 = 3;
    /// A write's condition (`--if-version`, `--if-absent`, `--if-present`) did not hold.
    pub const CONDITION: u8 = 4;
    /// Any other failure: refused by the server, server error, store error.
    pub const FAILED: u8 = 5;
    /// `watch`: the changes asked for were compacted by a merge (410).
    pub const COMPACTED: u8 = 6;
}

/// A failed command: the exit code, a message, and maybe a hint.
#[derive(Debug)]
pub struct Failure {
    /// The process's exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// A usage or settings error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(code::USAGE, message)
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(code::FAILED, message)
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with where it happened.
    pub fn context(mut self, place: &str) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl From<bitcask_client::Error> for Failure {
    fn from(error: bitcask_client::Error) -> Self {
        use bitcask_client::Error as E;
        let message = error.to_string();
        match error {
            E::Connect { .. } => Self::new(code::UNREACHABLE, message).hint(
                "another server: --server URL, BITCASK_SERVER or `bitcask config set server_url URL`",
            ),
            E::Timeout { .. } => Self::new(code::UNREACHABLE, message)
                .hint("the server is slow or stuck; a longer --timeout may help"),
            E::PreconditionFailed { .. } => Self::new(code::CONDITION, message),
            E::Unauthorized { .. } => Self::failed(message).hint(
                "pass the server's token with --token, BITCASK_AUTH_TOKEN or \
                 `bitcask config set auth_token TOKEN`",
            ),
            E::InvalidArgument { .. } => Self::usage(message),
            _ => Self::failed(message),
        }
    }
}

impl From<bitcask::Error> for Failure {
    fn from(error: bitcask::Error) -> Self {
        let message = error.to_string();
        match error {
            bitcask::Error::ConditionFailed { .. } => Self::new(code::CONDITION, message),
            bitcask::Error::Corruption { .. } => Self::failed(message).hint(
                "run `bitcask --data-dir DIR check` to see all damage, and `repair` to fix it",
            ),
            bitcask::Error::KeyTooLarge { .. }
            | bitcask::Error::ValueTooLarge { .. }
            | bitcask::Error::InvalidArgument { .. } => Self::usage(message),
            _ => Self::failed(message),
        }
    }
}
