//! Python values in and out: keys and values (`bytes`, or `str` encoded as
//! UTF-8), the sync policy, times-to-live.

use std::borrow::Cow;
use std::time::Duration;

use bitcask::SyncPolicy;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::errors::{self, Kind};

/// `InvalidArgument` (a `bitcask.Error` and a `ValueError`).
fn invalid(py: Python<'_>, message: String) -> PyErr {
    errors::new(py, Kind::InvalidArgument, message)
}

/// The bytes of a key or value: borrowed from a `bytes` object (no copy),
/// or the UTF-8 of a `str`, or a copy of a `bytearray`.
pub fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = obj.cast::<PyString>() {
        // Borrowed where the interpreter holds the UTF-8 already.
        return Ok(match text.to_cow()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        });
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(array.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be bytes or str, not {}",
        obj.get_type().name()?
    )))
}

/// The engine's sync policy from `sync=`: `"always"`, `"never"`, a
/// duration (`"100ms"`, `"1s"`, `"0.5s"`) or a number of seconds.
pub fn sync_policy(obj: &Bound<'_, PyAny>) -> PyResult<SyncPolicy> {
    if let Ok(text) = obj.cast::<PyString>() {
        let text = text.to_cow()?;
        let text = text.trim();
        return match text.to_ascii_lowercase().as_str() {
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            other => {
                let seconds = if let Some(ms) = other.strip_suffix("ms") {
                    number(ms).map(|ms| ms / 1000.0)
                } else if let Some(s) = other.strip_suffix('s') {
                    number(s)
                } else {
                    None
                };
                seconds.and_then(interval).ok_or_else(|| {
                    invalid(
                        obj.py(),
                        format!(
                            "sync must be \"always\", \"never\", a duration such as \"100ms\" or \
                         \"1s\", or seconds as a number; not {text:?}"
                        ),
                    )
                })
            }
        };
    }
    let seconds: f64 = obj.extract().map_err(|_| {
        PyTypeError::new_err("sync must be a str (\"always\", \"never\", \"100ms\") or seconds")
    })?;
    interval(seconds).ok_or_else(|| {
        invalid(
            obj.py(),
            format!("sync interval must be above 0 seconds, not {seconds}"),
        )
    })
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// `seconds` as an interval policy, if it is a positive, finite time.
fn interval(seconds: f64) -> Option<SyncPolicy> {
    (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
        .filter(|d| !d.is_zero())
        .map(SyncPolicy::Interval)
}

/// A time-to-live from seconds (`int`/`float`) or a `datetime.timedelta`.
pub fn ttl(obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let seconds: f64 = match obj.extract() {
        Ok(seconds) => seconds,
        Err(_) => obj
            .call_method0("total_seconds")
            .and_then(|s| s.extract())
            .map_err(|_| PyTypeError::new_err("ttl must be seconds or a datetime.timedelta"))?,
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(invalid(
            obj.py(),
            format!("ttl must be above 0 seconds, not {seconds}"),
        ));
    }
    let ttl = Duration::try_from_secs_f64(seconds)
        .map_err(|_| invalid(obj.py(), format!("ttl {seconds} is out of range")))?;
    if ttl < Duration::from_millis(1) {
        return Err(invalid(
            obj.py(),
            "ttl must be at least one millisecond".into(),
        ));
    }
    Ok(ttl)
}
