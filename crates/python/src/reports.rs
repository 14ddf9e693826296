//! The engine's reports (stats, merge, backup, check, repair) as `dict`s
//! of plain Python values: durations in seconds, times in milliseconds
//! since the Unix epoch, paths as `str`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// `Store.stats()`.
pub fn stats<'py>(py: Python<'py>, s: &bitcask::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("keys", s.keys)?;
    d.set_item("keys_with_expiry", s.keys_with_expiry)?;
    d.set_item("data_files", s.data_files)?;
    d.set_item("total_bytes", s.total_bytes)?;
    d.set_item("live_bytes", s.live_bytes)?;
    d.set_item("dead_bytes", s.dead_bytes)?;
    let files = PyList::empty(py);
    for f in &s.files {
        let file = PyDict::new(py);
        file.set_item("id", f.id)?;
        file.set_item("active", f.active)?;
        file.set_item("total_bytes", f.total_bytes)?;
        file.set_item("live_bytes", f.live_bytes)?;
        file.set_item("dead_bytes", f.dead_bytes)?;
        file.set_item("live_keys", f.live_keys)?;
        files.append(file)?;
    }
    d.set_item("files", files)?;
    d.set_item("merge_running", s.merge_running)?;
    d.set_item("merges_completed", s.merges_completed)?;
    let last_merge = s.last_merge.as_ref().map(|m| merge(py, m)).transpose()?;
    d.set_item("last_merge", last_merge)?;
    d.set_item("fsyncs", s.fsyncs)?;
    d.set_item("damaged_records", s.damaged_records)?;
    d.set_item("damaged_reads", s.damaged_reads)?;
    Ok(d)
}

/// `Store.merge()`.
pub fn merge<'py>(py: Python<'py>, m: &bitcask::MergeReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("started_at_ms", m.started_at_ms)?;
    d.set_item("duration", m.duration.as_secs_f64())?;
    d.set_item("files_merged", m.files_merged)?;
    d.set_item("files_written", m.files_written)?;
    d.set_item("bytes_read", m.bytes_read)?;
    d.set_item("bytes_written", m.bytes_written)?;
    d.set_item("bytes_reclaimed", m.bytes_reclaimed())?;
    d.set_item("records_kept", m.records_kept)?;
    d.set_item("records_dropped", m.records_dropped)?;
    Ok(d)
}

/// `Store.backup()`.
pub fn backup<'py>(py: Python<'py>, b: &bitcask::BackupReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("data_files", b.data_files)?;
    d.set_item("bytes", b.bytes)?;
    d.set_item("duration", b.duration.as_secs_f64())?;
    Ok(d)
}

/// `bitcask.check()`.
pub fn check<'py>(py: Python<'py>, c: &bitcask::CheckReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("damaged", c.is_damaged())?;
    d.set_item("records", c.records())?;
    d.set_item("bytes", c.bytes())?;
    let files = PyList::empty(py);
    for f in &c.files {
        let file = PyDict::new(py);
        file.set_item("file_id", f.file_id)?;
        file.set_item("path", f.path.display().to_string())?;
        file.set_item("len", f.len)?;
        file.set_item("records", f.records)?;
        file.set_item("torn_tail", f.torn_tail)?;
        let damage = PyList::empty(py);
        for region in &f.damage {
            let r = PyDict::new(py);
            r.set_item("offset", region.offset)?;
            r.set_item("len", region.len)?;
            r.set_item("kind", region.kind.to_string())?;
            let keys: Vec<Bound<'py, PyBytes>> =
                region.keys.iter().map(|k| PyBytes::new(py, k)).collect();
            r.set_item("keys", keys)?;
            damage.append(r)?;
        }
        file.set_item("damage", damage)?;
        files.append(file)?;
    }
    d.set_item("files", files)?;
    d.set_item("bad_hints", c.bad_hints.clone())?;
    Ok(d)
}

/// `bitcask.repair()`.
pub fn repair<'py>(py: Python<'py>, r: &bitcask::RepairReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("found", check(py, &r.found)?)?;
    d.set_item(
        "moved_to",
        r.moved_to.as_ref().map(|p| p.display().to_string()),
    )?;
    d.set_item("files_rewritten", r.files_rewritten.clone())?;
    d.set_item("files_removed", r.files_removed.clone())?;
    d.set_item("hints_removed", r.hints_removed.clone())?;
    Ok(d)
}
