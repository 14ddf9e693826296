//! `Batch`: writes and conditions gathered in Python and applied as one
//! engine batch, all or nothing (`with store.batch() as b: ...`).

use bitcask::Condition;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{bytes_of, ttl};
use crate::errors::Kind;
use crate::store::Store;

/// Writes applied together when the `with` block ends without an
/// exception (or on `apply()`); an exception discards them.
#[pyclass(module = "bitcask._bitcask")]
pub struct Batch {
    store: Py<Store>,
    /// `None` once applied or discarded.
    batch: Option<bitcask::Batch>,
}

impl Batch {
    /// An empty batch for `store`; `durable` makes it wait for its fsync.
    pub fn new(store: Py<Store>, durable: bool) -> Self {
        let mut batch = bitcask::Batch::new();
        batch.durable(durable);
        Self {
            store,
            batch: Some(batch),
        }
    }

    fn open(&mut self, py: Python<'_>) -> PyResult<&mut bitcask::Batch> {
        self.batch.as_mut().ok_or_else(|| {
            Store::error(
                py,
                Kind::Error,
                "the batch was already applied or discarded",
            )
        })
    }
}

#[pymethods]
impl Batch {
    /// Adds a put of `value` under `key` (with a time-to-live in seconds).
    #[pyo3(signature = (key, value, *, ttl=None))]
    fn put(
        &mut self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, value) = (bytes_of(key, "key")?, bytes_of(value, "value")?);
        let ttl = ttl.map(self::ttl).transpose()?;
        let batch = self.open(py)?;
        match ttl {
            Some(ttl) => batch.put_with_ttl(key.into_owned(), value.into_owned(), ttl),
            None => batch.put(key.into_owned(), value.into_owned()),
        };
        Ok(())
    }

    /// Adds a delete of `key` (a missing key is not an error).
    fn delete(&mut self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = bytes_of(key, "key")?.into_owned();
        self.open(py)?.delete(key);
        Ok(())
    }

    /// Requires `key` to be at `version`, absent or present when the batch
    /// applies (checked with the writes, all or nothing).
    #[pyo3(signature = (key, *, version=None, absent=false, present=false))]
    fn require(
        &mut self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        version: Option<u64>,
        absent: bool,
        present: bool,
    ) -> PyResult<()> {
        let condition = match (version, absent, present) {
            (Some(v), false, false) => Condition::Version(v),
            (None, true, false) => Condition::Absent,
            (None, false, true) => Condition::Present,
            _ => {
                return Err(Store::error(
                    py,
                    Kind::InvalidArgument,
                    "require needs exactly one of version=, absent=True, present=True",
                ));
            }
        };
        let key = bytes_of(key, "key")?.into_owned();
        self.open(py)?.require(key, condition);
        Ok(())
    }

    /// Applies the batch now; the version of its last write, or `None` if
    /// it wrote nothing. A batch applies once.
    fn apply(&mut self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.open(py)?;
        let batch = self.batch.take().unwrap_or_default();
        self.store.get().write(py, &batch)
    }

    /// Drops what was gathered; nothing is written.
    fn discard(&mut self) {
        self.batch = None;
    }

    fn __len__(&self) -> usize {
        self.batch.as_ref().map_or(0, bitcask::Batch::len)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*exc))]
    fn __exit__(&mut self, py: Python<'_>, exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let raised = exc.get_item(0).is_ok_and(|t| !t.is_none());
        if raised {
            self.discard();
        } else if self.batch.is_some() {
            self.apply(py)?;
        }
        Ok(false)
    }
}
