//! Which events a watcher wants: a key prefix or a key range, and a set of
//! ops.

use axum::http::StatusCode;
use bitcask_wire::WatchOp;

use crate::error::ApiError;

/// A watcher's filter: keys under a prefix or in `[start, end)`, and
/// which ops.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    prefix: Vec<u8>,
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    /// Put, delete, expire: wanted or not.
    ops: [bool; 3],
}

impl Filter {
    /// Every event.
    pub fn all() -> Self {
        Self {
            ops: [true; 3],
            ..Self::default()
        }
    }

    /// A filter from a request's parameters: `prefix`, or `start`/`end`;
    /// `ops` as a comma-separated list (`put,delete,expire`). 400 for a
    /// prefix with a range, an empty range, or an unknown op.
    pub fn parse(
        prefix: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        ops: Option<&str>,
    ) -> Result<Self, ApiError> {
        let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, why);
        let prefix = prefix.unwrap_or_default();
        if !prefix.is_empty() && (start.is_some() || end.is_some()) {
            return Err(bad("give either prefix or start/end, not both".to_string()));
        }
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            return Err(bad(format!(
                "the key range is empty: start {start:?} is not before end {end:?}"
            )));
        }
        let mut wanted = [true; 3];
        if let Some(ops) = ops {
            wanted = [false; 3];
            for name in ops.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let op = WatchOp::parse(name).ok_or_else(|| {
                    bad(format!(
                        "unknown op {name:?} in ops; use put, delete and expire, separated by commas"
                    ))
                })?;
                wanted[op as usize] = true;
            }
            if wanted == [false; 3] {
                return Err(bad("ops names no op; use put, delete or expire".to_string()));
            }
        }
        Ok(Self {
            prefix: prefix.as_bytes().to_vec(),
            start: start.map(|s| s.as_bytes().to_vec()),
            end: end.map(|s| s.as_bytes().to_vec()),
            ops: wanted,
        })
    }

    /// Whether every event is wanted.
    pub fn is_all(&self) -> bool {
        self.prefix.is_empty()
            && self.start.is_none()
            && self.end.is_none()
            && self.ops == [true; 3]
    }

    /// Whether an event of `op` on `key` is wanted.
    pub fn matches(&self, key: &[u8], op: WatchOp) -> bool {
        self.ops[op as usize]
            && key.starts_with(&self.prefix)
            && self.start.as_deref().is_none_or(|s| key >= s)
            && self.end.as_deref().is_none_or(|e| key < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_and_ops_select_what_they_say() {
        let all = Filter::all();
        assert!(all.matches(b"anything", WatchOp::Expire));
        let prefix = Filter::parse(Some("user/"), None, None, Some("put,expire")).expect("ok");
        assert!(prefix.matches(b"user/1", WatchOp::Put));
        assert!(prefix.matches(b"user/1", WatchOp::Expire));
        assert!(!prefix.matches(b"user/1", WatchOp::Delete));
        assert!(!prefix.matches(b"users", WatchOp::Put));
        let range = Filter::parse(None, Some("b"), Some("d"), None).expect("ok");
        assert!(!range.matches(b"a", WatchOp::Put));
        assert!(range.matches(b"b", WatchOp::Put));
        assert!(range.matches(b"cz", WatchOp::Delete));
        assert!(!range.matches(b"d", WatchOp::Put));
        let open_end = Filter::parse(None, Some("m"), None, None).expect("ok");
        assert!(open_end.matches(b"zz", WatchOp::Put));
        assert!(!open_end.matches(b"a", WatchOp::Put));
    }

    #[test]
    fn contradictions_and_unknown_ops_are_refused() {
        for (prefix, start, end, ops) in [
            (Some("p"), Some("a"), None, None),
            (None, Some("b"), Some("a"), None),
            (None, Some("a"), Some("a"), None),
            (None, None, None, Some("put,upsert")),
            (None, None, None, Some(",")),
        ] {
            let error = Filter::parse(prefix, start, end, ops).expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{}", error.detail);
        }
    }
}
