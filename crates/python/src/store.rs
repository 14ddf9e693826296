//! `Store`: one open store, shared safely between Python threads.
//!
//! The engine handle sits behind a read-write lock: every call holds it
//! for reading (calls overlap), `close` takes it for writing, so a close
//! waits for the calls in flight and every later call raises
//! `ClosedError`. Calls that may wait (for an fsync, for a file to be
//! read, for a merge) run with the GIL released ([`Store::with`]); the lock
//! is taken and released inside that region. Calls that cannot wait on
//! the disk keep the GIL ([`Store::with_gil`]): reads of one key (memory
//! maps) and writes that only hand bytes to the kernel (`sync` not
//! `"always"`, not `durable`, values under [`HOLD_GIL_BELOW`]); releasing
//! and retaking the GIL costs more than they do (docs/BENCHMARKS.md,
//! "Python package"). No lock holder ever needs the GIL to finish, and a
//! thread holding the GIL never blocks on the lock (it waits for it with
//! the GIL released, [`Store::read_holding_gil`]): no deadlock, and a
//! `close` waiting for a long merge does not stop the other Python threads.

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, TryLockError};

use bitcask::{Bitcask, Condition, Options, WriteOptions};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::batch::Batch;
use crate::convert::{bytes_of, sync_policy, ttl};
use crate::errors::{self, Failure, Kind};
use crate::iter::{Listing, Mode};
use crate::reports;

/// Writes of values at least this long release the GIL (copying them to
/// the kernel takes long enough to let other threads run).
pub const HOLD_GIL_BELOW: usize = 64 * 1024;

/// A bitcask store open in this process (see the package docs).
#[pyclass(module = "bitcask._bitcask", subclass, frozen)]
pub struct Store {
    db: RwLock<Option<Bitcask>>,
    path: PathBuf,
    /// Whether every write waits for an fsync (`sync="always"`).
    sync_always: bool,
}

/// A value with its version and expiry, from [`Store::get_versioned`].
#[pyclass(module = "bitcask._bitcask", frozen, get_all)]
pub struct Versioned {
    /// The value.
    value: Py<PyBytes>,
    /// The version the write that stored it got (versions only grow).
    version: u64,
    /// When it expires, in milliseconds since the Unix epoch; `None` if
    /// never.
    expires_at_ms: Option<u64>,
}

#[pymethods]
impl Versioned {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Versioned(value={}, version={}, expires_at_ms={})",
            self.value
                .bind(py)
                .repr()
                .map_or_else(|_| "?".into(), |r| r.to_string()),
            self.version,
            self.expires_at_ms
                .map_or_else(|| "None".to_string(), |at| at.to_string())
        )
    }
}

impl Store {
    /// Runs `f` on the open store with the GIL released.
    pub fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Bitcask) -> Result<R, Failure> + Send,
    ) -> PyResult<R> {
        py.detach(|| {
            let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
            match db.as_ref() {
                Some(db) => f(db),
                None => Err(Failure::Closed),
            }
        })
        .map_err(|failure| failure.into_py(py))
    }

    /// Runs `f` on the open store keeping the GIL: for reads whose cost
    /// is below that of releasing and taking the GIL back (measured in
    /// docs/BENCHMARKS.md, "Python package"), so that `f` can build the
    /// Python result straight from the engine's bytes.
    fn with_gil<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Bitcask) -> Result<R, Failure>,
    ) -> PyResult<R> {
        let db = self.read_holding_gil(py);
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(Failure::Closed),
        }
        .map_err(|failure| failure.into_py(py))
    }

    /// The handle, read-locked by a thread that holds the GIL. If the lock
    /// is taken for writing (a `close` waiting for a merge in flight), it
    /// waits with the GIL released, so that other Python threads run
    /// meanwhile, then tries again.
    fn read_holding_gil(&self, py: Python<'_>) -> RwLockReadGuard<'_, Option<Bitcask>> {
        loop {
            match self.db.try_read() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => py.detach(|| {
                    drop(self.db.read().unwrap_or_else(PoisonError::into_inner));
                }),
            }
        }
    }

    /// Runs a write of a `len`-byte value: without the GIL if it will wait
    /// for an fsync (the store's policy, or `durable`) or is large, else
    /// keeping it.
    fn write_op<R: Send>(
        &self,
        py: Python<'_>,
        durable: bool,
        len: usize,
        f: impl FnOnce(&Bitcask) -> Result<R, Failure> + Send,
    ) -> PyResult<R> {
        if self.sync_always || durable || len >= HOLD_GIL_BELOW {
            self.with(py, f)
        } else {
            self.with_gil(py, f)
        }
    }

    /// The value of `key` as `bytes`, or `None`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = bytes_of(key, "key")?;
        self.with_gil(py, |db| Ok(db.get_with(&key, |v| PyBytes::new(py, v))?))
    }
}

/// Write options from a call's keyword arguments.
fn write_options(
    py: Python<'_>,
    ttl_arg: Option<&Bound<'_, PyAny>>,
    if_version: Option<u64>,
    if_absent: bool,
    if_present: bool,
    durable: Option<bool>,
) -> PyResult<WriteOptions> {
    let mut options = WriteOptions::new();
    if let Some(t) = ttl_arg {
        options = options.ttl(ttl(t)?);
    }
    let conditions =
        usize::from(if_version.is_some()) + usize::from(if_absent) + usize::from(if_present);
    if conditions > 1 {
        return Err(errors::new(
            py,
            Kind::InvalidArgument,
            "give at most one of if_version, if_absent and if_present",
        ));
    }
    let condition = match (if_version, if_absent, if_present) {
        (Some(v), _, _) => Condition::Version(v),
        (_, true, _) => Condition::Absent,
        (_, _, true) => Condition::Present,
        _ => Condition::None,
    };
    options = options.condition(condition);
    if durable == Some(true) {
        options = options.durable(true);
    }
    Ok(options)
}

#[pymethods]
impl Store {
    /// Opens (creating if needed) the store in directory `path`.
    #[new]
    #[pyo3(signature = (path, *, sync=None, read_only=false, max_file_size=None, max_key_size=None, max_value_size=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        sync: Option<&Bound<'_, PyAny>>,
        read_only: bool,
        max_file_size: Option<u64>,
        max_key_size: Option<usize>,
        max_value_size: Option<usize>,
    ) -> PyResult<Self> {
        let mut options = Options::new().read_only(read_only);
        let mut sync_always = true; // the engine's default
        if let Some(sync) = sync {
            let policy = sync_policy(sync)?;
            sync_always = policy == bitcask::SyncPolicy::Always;
            options = options.sync(policy);
        }
        if let Some(n) = max_file_size {
            options = options.max_file_size(n);
        }
        if let Some(n) = max_key_size {
            options = options.max_key_size(n);
        }
        if let Some(n) = max_value_size {
            options = options.max_value_size(n);
        }
        let opened = py.detach(|| Bitcask::open_with(&path, options));
        let db = opened.map_err(|e| errors::from_engine(py, e))?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path,
            sync_always,
        })
    }

    /// Syncs, stops the store's background work and releases the
    /// directory. Waits for calls in flight on other threads; idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let closed = py.detach(|| {
            let taken = self
                .db
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            taken.map(Bitcask::close)
        });
        match closed {
            Some(Err(e)) => Err(errors::from_engine(py, e)),
            _ => Ok(()),
        }
    }

    /// Whether [`Store::close`] was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.read_holding_gil(py).is_none()
    }

    /// The store's directory, as given to `open`.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// The value of `key` (`bytes` or `str`), or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match self.lookup(py, key)? {
            Some(value) => Some(value.into_any()),
            None => default,
        })
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.lookup(py, key)?
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.clone().unbind()))
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, value) = (bytes_of(key, "key")?, bytes_of(value, "value")?);
        self.write_op(py, false, value.len(), |db| {
            Ok(db.put(&key, &value).map(|_| ())?)
        })
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = bytes_of(key, "key")?;
        if self.write_op(py, false, 0, |db| Ok(db.delete(&bytes)?))? {
            Ok(())
        } else {
            Err(pyo3::exceptions::PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = bytes_of(key, "key")?;
        self.with_gil(py, |db| Ok(db.contains(&key)))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_gil(py, |db| Ok(db.len()))
    }

    fn __iter__(slf: Bound<'_, Self>) -> PyResult<Listing> {
        Ok(Listing::new(
            slf.unbind(),
            Mode::Keys,
            Vec::new(),
            None,
            None,
        ))
    }

    /// Stores `value` under `key`; returns the write's version.
    #[pyo3(signature = (key, value, *, ttl=None, if_version=None, if_absent=false, if_present=false, durable=None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        if_version: Option<u64>,
        if_absent: bool,
        if_present: bool,
        durable: Option<bool>,
    ) -> PyResult<u64> {
        let (key, value) = (bytes_of(key, "key")?, bytes_of(value, "value")?);
        let options = write_options(py, ttl, if_version, if_absent, if_present, durable)?;
        self.write_op(py, options.is_durable(), value.len(), |db| {
            Ok(db.put_with(&key, &value, options)?)
        })
    }

    /// `key`'s value, version and expiry, or `None`.
    fn get_versioned(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Versioned>> {
        let key = bytes_of(key, "key")?;
        let found = self.with_gil(py, |db| Ok(db.get_versioned(&key)?))?;
        Ok(found.map(|v| Versioned {
            value: PyBytes::new(py, &v.value).unbind(),
            version: v.version,
            expires_at_ms: v.expires_at_ms,
        }))
    }

    /// Deletes `key`; whether it was there.
    #[pyo3(signature = (key, *, if_version=None, durable=None))]
    fn delete(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        if_version: Option<u64>,
        durable: Option<bool>,
    ) -> PyResult<bool> {
        let key = bytes_of(key, "key")?;
        let options = write_options(py, None, if_version, false, false, durable)?;
        self.write_op(py, options.is_durable(), 0, |db| {
            Ok(db.delete_with(&key, options)?.is_some())
        })
    }

    /// Keys in byte order, lazily: those starting with `prefix`, after
    /// `start_after`, at most `limit`.
    #[pyo3(signature = (prefix=None, *, start_after=None, limit=None))]
    fn keys(
        slf: Bound<'_, Self>,
        prefix: Option<&Bound<'_, PyAny>>,
        start_after: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
    ) -> PyResult<Listing> {
        listing(slf, Mode::Keys, prefix, start_after, limit)
    }

    /// `(key, value)` pairs in key order, lazily (as [`Store::keys`]).
    #[pyo3(signature = (prefix=None, *, start_after=None, limit=None))]
    fn items(
        slf: Bound<'_, Self>,
        prefix: Option<&Bound<'_, PyAny>>,
        start_after: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
    ) -> PyResult<Listing> {
        listing(slf, Mode::Items, prefix, start_after, limit)
    }

    /// Values in key order, lazily (as [`Store::keys`]).
    #[pyo3(signature = (prefix=None, *, start_after=None, limit=None))]
    fn values(
        slf: Bound<'_, Self>,
        prefix: Option<&Bound<'_, PyAny>>,
        start_after: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
    ) -> PyResult<Listing> {
        listing(slf, Mode::Values, prefix, start_after, limit)
    }

    /// A batch of writes and conditions applied all or nothing.
    #[pyo3(signature = (*, durable=false))]
    fn batch(slf: Bound<'_, Self>, durable: bool) -> Batch {
        Batch::new(slf.unbind(), durable)
    }

    /// Flushes and fsyncs every write so far.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |db| Ok(db.sync()?))
    }

    /// Rewrites the sealed files without their dead records; a report.
    fn merge<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = self.with(py, |db| Ok(db.merge()?))?;
        reports::merge(py, &report)
    }

    /// Copies a consistent snapshot of the store into `dest` (a new or
    /// empty directory); a report.
    fn backup<'py>(&self, py: Python<'py>, dest: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let report = self.with(py, |db| Ok(db.backup(&dest)?))?;
        reports::backup(py, &report)
    }

    /// Keys, files, live and dead bytes, merges, fsyncs, damage.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.with(py, |db| Ok(db.stats()))?;
        reports::stats(py, &stats)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { "closed" } else { "open" };
        format!("<bitcask.Store {} ({state})>", self.path.display())
    }
}

impl Store {
    /// Writes `batch` (from [`Batch`]); its last version, or `None` if it
    /// wrote nothing.
    pub fn write(&self, py: Python<'_>, batch: &bitcask::Batch) -> PyResult<Option<u64>> {
        self.with(py, |db| Ok(db.write_batch(batch)?))
    }

    /// An exception of `kind` (for the other modules).
    pub fn error(py: Python<'_>, kind: Kind, message: &str) -> PyErr {
        errors::new(py, kind, message)
    }
}

/// A listing of the store `slf` from a listing method's arguments.
fn listing(
    slf: Bound<'_, Store>,
    mode: Mode,
    prefix: Option<&Bound<'_, PyAny>>,
    start_after: Option<&Bound<'_, PyAny>>,
    limit: Option<usize>,
) -> PyResult<Listing> {
    let prefix = match prefix {
        Some(prefix) => bytes_of(prefix, "prefix")?.into_owned(),
        None => Vec::new(),
    };
    let after = match start_after {
        Some(after) => Some(bytes_of(after, "start_after")?.into_owned()),
        None => None,
    };
    Ok(Listing::new(slf.unbind(), mode, prefix, after, limit))
}
