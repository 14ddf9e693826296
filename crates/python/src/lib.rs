//! `bitcask._bitcask`: the engine as a CPython extension module (PyO3,
//! abi3 for CPython 3.9 and later). The package `bitcask`
//! (`python/bitcask/`) wraps it: `bitcask.open`, the exceptions, the text
//! view and the seed-compatible `bitcask.compat`. The API is documented in
//! docs/PYTHON.md and the package's docstrings.
//!
//! Modules: `store` (the `Store` class), `batch` (all-or-nothing
//! batches), `iter` (lazy listings), `convert` (Python values in),
//! `reports` (engine reports out as dicts), `errors` (engine errors as the
//! package's exceptions).

// PyO3's `#[pymodule]`, `#[pyclass]` and `#[pymethods]` expand to unsafe
// FFI glue that PyO3 itself proves sound; this crate writes no unsafe code
// of its own.
#![allow(unsafe_code)]

mod batch;
mod convert;
mod errors;
mod iter;
mod reports;
mod store;

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

/// Verifies every record of the store in `path` (which must not be open
/// for writing elsewhere); a report of what is damaged. Reads only.
#[pyfunction]
fn check(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let report = py
        .detach(|| bitcask::check(&path))
        .map_err(|e| errors::from_engine(py, e))?;
    reports::check(py, &report)
}

/// Repairs the store in `path` (closed everywhere): damaged files are
/// rewritten with their surviving records, the originals kept aside; a
/// report.
#[pyfunction]
fn repair(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let report = py
        .detach(|| bitcask::repair(&path))
        .map_err(|e| errors::from_engine(py, e))?;
    reports::repair(py, &report)
}

/// Hands the package's exception classes to the module (once, at import).
#[pyfunction]
#[pyo3(signature = (*classes))]
fn _register_errors(py: Python<'_>, classes: Vec<Py<PyType>>) -> PyResult<()> {
    errors::register(py, classes)
}

#[pymodule]
fn _bitcask(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<store::Versioned>()?;
    m.add_class::<batch::Batch>()?;
    m.add_class::<iter::Listing>()?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(repair, m)?)?;
    m.add_function(wrap_pyfunction!(_register_errors, m)?)?;
    m.add("ERROR_NAMES", errors::NAMES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
