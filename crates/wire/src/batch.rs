//! `POST /batch`: puts and deletes applied all or nothing.

use serde::{Deserialize, Serialize};

/// The body: `{"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 60},
/// {"op": "delete", "key": "k"}]}`.
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
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
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
        let body = BatchBody {
            ops: vec![
                BatchOp::Put {
                    key: "k".into(),
                    value: "v".into(),
                    ttl: Some(60),
                },
                BatchOp::Delete { key: "d".into() },
            ],
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
        ] {
            assert!(serde_json::from_str::<BatchBody>(bad).is_err(), "{bad}");
        }
    }
}
