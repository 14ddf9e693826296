//! The engine's errors as the package's exceptions.
//!
//! The exception classes are defined in Python (`python/bitcask/_errors.py`:
//! Python classes can inherit from two bases, so `KeyTooLarge` is both a
//! `bitcask.Error` and a `ValueError`) and handed to this module once by
//! `_register_errors` when the package is imported; until then (someone
//! imported `bitcask._bitcask` alone) errors fall back to `RuntimeError`
//! naming the missing registration.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception classes, in the order of [`Kind`].
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Which exception a failure raises.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `bitcask.Error`: I/O failures and anything not more specific.
    Error,
    /// `LockedError`: another handle holds the directory.
    Locked,
    /// `CorruptionError`: bytes on disk failed verification.
    Corruption,
    /// `ConditionFailed`: a conditional write's condition did not hold.
    ConditionFailed,
    /// `KeyTooLarge`.
    KeyTooLarge,
    /// `ValueTooLarge`.
    ValueTooLarge,
    /// `ReadOnlyError`: a write on a read-only store.
    ReadOnly,
    /// `ClosedError`: the store was closed.
    Closed,
    /// `InvalidArgument`: an argument or option out of range.
    InvalidArgument,
    /// `PoisonedError`: an earlier failed write or fsync; reopen.
    Poisoned,
}

/// The names `_register_errors` takes, in the order of [`Kind`].
pub const NAMES: [&str; 10] = [
    "Error",
    "LockedError",
    "CorruptionError",
    "ConditionFailed",
    "KeyTooLarge",
    "ValueTooLarge",
    "ReadOnlyError",
    "ClosedError",
    "InvalidArgument",
    "PoisonedError",
];

/// Records the exception classes (called once by the package's
/// `__init__`, with one class per name of [`NAMES`], in order).
pub fn register(py: Python<'_>, classes: Vec<Py<PyType>>) -> PyResult<()> {
    if classes.len() != NAMES.len() {
        return Err(PyRuntimeError::new_err(format!(
            "_register_errors takes {} classes: {}",
            NAMES.len(),
            NAMES.join(", ")
        )));
    }
    // A second import (after a reload) keeps the first classes.
    let _ = CLASSES.set(py, classes);
    Ok(())
}

/// A new exception of `kind` with `message`.
pub fn new(py: Python<'_>, kind: Kind, message: impl Into<String>) -> PyErr {
    match CLASSES.get(py) {
        Some(classes) => PyErr::from_type(classes[kind as usize].bind(py).clone(), message.into()),
        None => PyRuntimeError::new_err(format!(
            "{} (bitcask._bitcask used without the bitcask package)",
            message.into()
        )),
    }
}

/// An engine error as the exception a Python caller expects.
pub fn from_engine(py: Python<'_>, error: bitcask::Error) -> PyErr {
    use bitcask::Error as E;
    let message = error.to_string();
    let kind = match &error {
        E::Locked { .. } => Kind::Locked,
        E::Corruption { .. } | E::UnsupportedVersion { .. } => Kind::Corruption,
        E::KeyTooLarge { .. } => Kind::KeyTooLarge,
        E::ValueTooLarge { .. } => Kind::ValueTooLarge,
        E::ReadOnly => Kind::ReadOnly,
        E::Poisoned => Kind::Poisoned,
        E::InvalidArgument { .. } | E::InvalidOption { .. } => Kind::InvalidArgument,
        E::ConditionFailed { current, .. } => return condition_failed(py, message, *current),
        _ => Kind::Error,
    };
    new(py, kind, message)
}

/// `ConditionFailed` with its `current_version` attribute (the key's
/// version when the write was tried, `None` if absent).
fn condition_failed(py: Python<'_>, message: String, current: Option<u64>) -> PyErr {
    let Some(classes) = CLASSES.get(py) else {
        return new(py, Kind::ConditionFailed, message);
    };
    let class = classes[Kind::ConditionFailed as usize].bind(py);
    let made = class.call1((message.clone(),)).and_then(|error| {
        error.setattr("current_version", current)?;
        Ok(PyErr::from_value(error))
    });
    made.unwrap_or_else(|e| e)
}

/// What a call on the store can fail with before Python sees it: built
/// without the GIL, turned into an exception with it.
#[derive(Debug)]
pub enum Failure {
    /// The engine refused or failed.
    Engine(bitcask::Error),
    /// The store was closed.
    Closed,
}

impl From<bitcask::Error> for Failure {
    fn from(error: bitcask::Error) -> Self {
        Self::Engine(error)
    }
}

impl Failure {
    /// The exception to raise.
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Self::Engine(error) => from_engine(py, error),
            Self::Closed => new(py, Kind::Closed, "the store is closed"),
        }
    }
}
