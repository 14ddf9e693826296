//! Lazy listings of a store (`keys()`, `items()`, `values()`, `iter()`):
//! pages of keys in byte order, fetched with the GIL released, each page
//! starting after the last key of the one before (so a listing holds no
//! engine lock between pages and sees writes made meanwhile as the
//! engine's own listing does: keys live throughout appear exactly once).

use std::collections::VecDeque;

use bitcask::KeyRange;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::store::Store;

/// Keys fetched per page.
const PAGE: usize = 256;

/// What a listing yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keys.
    Keys,
    /// `(key, value)` pairs.
    Items,
    /// Values.
    Values,
}

/// An iterator over a store's keys, items or values in key order.
#[pyclass(module = "bitcask._bitcask")]
pub struct Listing {
    store: Py<Store>,
    mode: Mode,
    prefix: Vec<u8>,
    /// Where the next page starts (after this key).
    after: Option<Vec<u8>>,
    /// How many more to yield, if limited.
    remaining: Option<usize>,
    /// Fetched and not yet yielded: keys, with their values for items and
    /// values.
    buffer: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    exhausted: bool,
}

impl Listing {
    /// A listing of `store`'s keys starting with `prefix`, after `after`,
    /// at most `limit`.
    pub fn new(
        store: Py<Store>,
        mode: Mode,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: Option<usize>,
    ) -> Self {
        Self {
            store,
            mode,
            prefix,
            after,
            remaining: limit,
            buffer: VecDeque::new(),
            exhausted: limit == Some(0),
        }
    }

    /// Fetches the next page into the buffer.
    fn fetch(&mut self, py: Python<'_>) -> PyResult<()> {
        let want = self.remaining.map_or(PAGE, |r| r.min(PAGE));
        let (prefix, after, mode) = (&self.prefix, &self.after, self.mode);
        let (page, listed, last) = self.store.get().with(py, |db| {
            let mut range = KeyRange::prefix(prefix.clone());
            if let Some(after) = after {
                range = range.start_after(after.clone());
            }
            let mut page = Vec::with_capacity(want);
            let mut listed = 0;
            let mut last = None;
            for key in db.keys_in(range).take(want) {
                listed += 1;
                if mode == Mode::Keys {
                    last = Some(key.clone());
                    page.push((key, None));
                    continue;
                }
                // A key deleted since it was listed is left out.
                let value = db.get(&key)?;
                last = Some(key.clone());
                if let Some(value) = value {
                    page.push((key, Some(value)));
                }
            }
            Ok((page, listed, last))
        })?;
        if listed < want {
            self.exhausted = true;
        }
        if last.is_some() {
            self.after = last;
        }
        self.buffer.extend(page);
        Ok(())
    }
}

#[pymethods]
impl Listing {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        while self.buffer.is_empty() {
            if self.exhausted {
                return Ok(None);
            }
            self.fetch(py)?;
        }
        let Some((key, value)) = self.buffer.pop_front() else {
            return Ok(None);
        };
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.exhausted = true;
                self.buffer.clear();
            }
        }
        let key = PyBytes::new(py, &key);
        let value = value.map(|v| PyBytes::new(py, &v));
        Ok(Some(match (self.mode, value) {
            (Mode::Items, Some(value)) => PyTuple::new(py, [key, value])?.into_any().unbind(),
            (Mode::Values, Some(value)) => value.into_any().unbind(),
            _ => key.into_any().unbind(),
        }))
    }
}
