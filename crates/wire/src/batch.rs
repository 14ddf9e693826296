//! `POST /batch`: puts and deletes applied all or nothing, each op with
//! an optional condition on its key's version (`if_version`, `if_absent`,
//! `if_present`), and checks that only test a key; every condition is
//! checked against the store as it was before the batch, all at once, and
//! one that fails refuses the whole batch (412, naming it).

use serde::{Deserialize, Serialize};

/// The body: `{"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 60},
/// {"op": "delete", "key": "k", "if_version": 7},
/// {"op": "check", "key": "other", "if_absent": true}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The operations, applied in order.
    pub ops: Vec<BatchOp>,
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchOp {
    /// Store `value` under `key`, expiring after `ttl` seconds if given.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Time-to-live in seconds.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64))]
        #[serde(
            default,
            deserialize_with = "whole_seconds",
            skip_serializing_if = "Option::is_none"
        )]
        ttl: Option<u64>,
        /// Only if the key is at this version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<u64>,
        /// Only if the key is absent.
        #[serde(default, skip_serializing_if = "is_false")]
        if_absent: bool,
        /// Only if the key is present.
        #[serde(default, skip_serializing_if = "is_false")]
        if_present: bool,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
        /// Only if the key is at this version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<u64>,
        /// Only if the key is absent (then the delete changes nothing).
        #[serde(default, skip_serializing_if = "is_false")]
        if_absent: bool,
        /// Only if the key is present.
        #[serde(default, skip_serializing_if = "is_false")]
        if_present: bool,
    },
    /// Write nothing: only require a condition on `key` (exactly one of
    /// the three), for a batch that depends on keys it does not write.
    Check {
        /// The key.
        key: String,
        /// The key must be at this version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_version: Option<u64>,
        /// The key must be absent.
        #[serde(default, skip_serializing_if = "is_false")]
        if_absent: bool,
        /// The key must be present.
        #[serde(default, skip_serializing_if = "is_false")]
        if_present: bool,
    },
}

/// The three condition fields of any operation, by reference (they are
/// not a struct of their own: serde cannot deny unknown fields across a
/// flattened one).
macro_rules! condition_fields {
    ($op:expr) => {
        match $op {
            BatchOp::Put {
                if_version,
                if_absent,
                if_present,
                ..
            }
            | BatchOp::Delete {
                if_version,
                if_absent,
                if_present,
                ..
            }
            | BatchOp::Check {
                if_version,
                if_absent,
                if_present,
                ..
            } => (if_version, if_absent, if_present),
        }
    };
}

/// What an operation requires of its key's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// At exactly this version (`if_version`).
    Version(u64),
    /// Absent (`if_absent: true`).
    Absent,
    /// Present (`if_present: true`).
    Present,
}

impl BatchOp {
    /// A put with no time-to-live and no condition.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Put {
            key: key.into(),
            value: value.into(),
            ttl: None,
            if_version: None,
            if_absent: false,
            if_present: false,
        }
    }

    /// A delete with no condition.
    pub fn delete(key: impl Into<String>) -> Self {
        Self::Delete {
            key: key.into(),
            if_version: None,
            if_absent: false,
            if_present: false,
        }
    }

    /// A check that `key` is as `expect` says.
    pub fn check(key: impl Into<String>, expect: Expect) -> Self {
        let mut op = Self::Check {
            key: key.into(),
            if_version: None,
            if_absent: false,
            if_present: false,
        };
        op.set_expect(Some(expect));
        op
    }

    /// The same operation, with `expect` as its condition (none: `None`).
    #[must_use]
    pub fn expecting(mut self, expect: Option<Expect>) -> Self {
        self.set_expect(expect);
        self
    }

    fn set_expect(&mut self, expect: Option<Expect>) {
        let (if_version, if_absent, if_present) = condition_fields!(self);
        *if_version = match expect {
            Some(Expect::Version(v)) => Some(v),
            _ => None,
        };
        *if_absent = expect == Some(Expect::Absent);
        *if_present = expect == Some(Expect::Present);
    }

    /// The key it is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } | Self::Check { key, .. } => key,
        }
    }

    /// Its condition, if it has one; an error for more than one, or for a
    /// check with none.
    pub fn expect(&self) -> Result<Option<Expect>, String> {
        let (if_version, if_absent, if_present) = condition_fields!(self);
        let given = [
            if_version.map(Expect::Version),
            if_absent.then_some(Expect::Absent),
            if_present.then_some(Expect::Present),
        ];
        let mut given = given.into_iter().flatten();
        let expect = given.next();
        if given.next().is_some() {
            return Err(format!(
                "the operation on {:?} has more than one of if_version, if_absent, if_present",
                self.key()
            ));
        }
        if expect.is_none() && matches!(self, Self::Check { .. }) {
            return Err(format!(
                "the check of {:?} needs one of if_version, if_absent, if_present",
                self.key()
            ));
        }
        Ok(expect)
    }
}

/// The answer to a batch refused because a condition did not hold (412).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchConflict {
    /// What went wrong, for a person.
    pub detail: String,
    /// The first condition that failed.
    pub failed: FailedCondition,
}

/// Which condition of a batch failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedCondition {
    /// The operation's place in `ops` (from 0).
    pub op: usize,
    /// Its key.
    pub key: String,
    /// The key's version when the batch was tried; `null` if absent.
    pub current_version: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResult {
    /// `success`.
    #[serde(default = "success")]
    pub status: String,
    /// Operations applied.
    pub count: usize,
    /// Version of the last operation (each operation takes the next one);
    /// `null` for an empty batch.
    pub version: Option<u64>,
}

fn success() -> String {
    "success".into()
}

/// A time-to-live: a JSON integer, or a number with no fraction (`60.0`,
/// which JSON Schema counts as an integer too).
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = n.as_u64() {
        return Ok(Some(n));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "ttl must be a whole number of seconds, not {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_what_it_writes_and_refuses_what_is_not_a_batch() {
        let mut put = BatchOp::put("k", "v");
        if let BatchOp::Put { ttl, .. } = &mut put {
            *ttl = Some(60);
        }
        let body = BatchBody {
            ops: vec![put, BatchOp::delete("d")],
        };
        let text = serde_json::to_string(&body).expect("json");
        assert_eq!(
            text,
            r#"{"ops":[{"op":"put","key":"k","value":"v","ttl":60},{"op":"delete","key":"d"}]}"#
        );
        assert_eq!(
            serde_json::from_str::<BatchBody>(&text).expect("parse"),
            body
        );
        let whole: BatchBody =
            serde_json::from_str(r#"{"ops":[{"op":"put","key":"k","value":"v","ttl":60.0}]}"#)
                .expect("60.0 is whole");
        assert!(matches!(&whole.ops[0], BatchOp::Put { ttl: Some(60), .. }));
        for bad in [
            r#"{"ops":[{"op":"put","key":"k","value":"v","ttl":1.5}]}"#,
            r#"{"ops":[{"op":"put","key":"k","value":"v","extra":1}]}"#,
            r#"{"ops":[{"op":"rename","key":"k"}]}"#,
            r#"{"ops":[],"more":true}"#,
            r#"{"ops":[{"op":"check","key":"k","value":"v"}]}"#,
        ] {
            assert!(serde_json::from_str::<BatchBody>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_read_back_and_at_most_one_per_operation() {
        let body = BatchBody {
            ops: vec![
                BatchOp::put("a", "1").expecting(Some(Expect::Absent)),
                BatchOp::delete("b").expecting(Some(Expect::Version(7))),
                BatchOp::check("c", Expect::Present),
            ],
        };
        let text = serde_json::to_string(&body).expect("json");
        assert_eq!(
            text,
            r#"{"ops":[{"op":"put","key":"a","value":"1","if_absent":true},{"op":"delete","key":"b","if_version":7},{"op":"check","key":"c","if_present":true}]}"#
        );
        let parsed: BatchBody = serde_json::from_str(&text).expect("parse");
        let expects: Vec<Option<Expect>> = parsed
            .ops
            .iter()
            .map(|op| op.expect().expect("one each"))
            .collect();
        assert_eq!(
            expects,
            vec![
                Some(Expect::Absent),
                Some(Expect::Version(7)),
                Some(Expect::Present)
            ]
        );
        let two: BatchBody = serde_json::from_str(
            r#"{"ops":[{"op":"put","key":"a","value":"1","if_absent":true,"if_version":3}]}"#,
        )
        .expect("parses");
        assert!(two.ops[0].expect().is_err(), "two conditions");
        let bare: BatchBody =
            serde_json::from_str(r#"{"ops":[{"op":"check","key":"a"}]}"#).expect("parses");
        assert!(bare.ops[0].expect().is_err(), "a check with none");
        let unset: BatchBody = serde_json::from_str(
            r#"{"ops":[{"op":"put","key":"a","value":"1","if_absent":false}]}"#,
        )
        .expect("parses");
        assert_eq!(unset.ops[0].expect(), Ok(None));
    }
}
