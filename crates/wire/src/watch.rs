//! `GET /watch`: the change feed's events (docs/WATCH.md), as Server-Sent
//! Events' data or in a long poll's page, and the 410 a watch from
//! compacted history gets.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// What an event did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WatchOp {
    /// The key was set.
    Put,
    /// The key was deleted.
    Delete,
    /// The key was deleted because its time-to-live had passed.
    Expire,
}

impl WatchOp {
    /// The name on the wire (`put`, `delete`, `expire`): SSE's `event:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Delete => "delete",
            Self::Expire => "expire",
        }
    }

    /// The op named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "put" => Some(Self::Put),
            "delete" => Some(Self::Delete),
            "expire" => Some(Self::Expire),
            _ => None,
        }
    }
}

/// How an event's key and value are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Standard base64 (with padding): the key or the value is not UTF-8.
    Base64,
}

/// One committed change of one key: `{"seq": 42, "op": "put", "key": "k",
/// "value": "v", "version": 42}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchEvent {
    /// The write's sequence number; events arrive in its order.
    pub seq: u64,
    /// What happened.
    pub op: WatchOp,
    /// The key (base64 if `encoding` says so).
    pub key: String,
    /// The new value, for a put (base64 if `encoding` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The key's version after the change (equal to `seq`).
    pub version: u64,
    /// When the put value expires, in Unix milliseconds, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// `base64` when the key or the value is not UTF-8 (both are then
    /// base64); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

impl WatchEvent {
    /// The event for a change of `key` at `seq`: `value` for a put.
    pub fn new(
        seq: u64,
        op: WatchOp,
        key: &[u8],
        value: Option<&[u8]>,
        expires_at: Option<u64>,
    ) -> Self {
        let text = std::str::from_utf8(key).is_ok()
            && value.is_none_or(|v| std::str::from_utf8(v).is_ok());
        let show = |bytes: &[u8]| {
            if text {
                String::from_utf8_lossy(bytes).into_owned()
            } else {
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
        };
        Self {
            seq,
            op,
            key: show(key),
            value: value.map(show),
            version: seq,
            expires_at,
            encoding: (!text).then_some(Encoding::Base64),
        }
    }

    /// The key's bytes; `None` if `encoding` says base64 and it is not.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        self.decode(&self.key)
    }

    /// The value's bytes, for a put; `None` for a delete or bad base64.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        self.value.as_deref().and_then(|v| self.decode(v))
    }

    fn decode(&self, text: &str) -> Option<Vec<u8>> {
        match self.encoding {
            None => Some(text.as_bytes().to_vec()),
            Some(Encoding::Base64) => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
    }
}

/// A long poll's answer: `{"events": [...], "next_seq": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchPage {
    /// The matching events, in seq order, whole batches; empty if the wait
    /// ended with none.
    pub events: Vec<WatchEvent>,
    /// Where to resume: pass as `from_seq` next time.
    pub next_seq: u64,
}

/// A stream's progress (SSE event `progress`): everything below `next_seq`
/// has been looked at, matching or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchProgress {
    /// Where a watch resumes: every change below it has been sent if it
    /// matched.
    pub next_seq: u64,
}

/// The 410 answer to a watch from history a merge has dropped:
/// list the keys, then watch from the listing's `X-Bitcask-Seq`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compacted {
    /// What happened and what to do.
    pub detail: String,
    /// The oldest seq a watch may start from.
    pub compacted_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_bytes_go_base64_both_ways() {
        let text = WatchEvent::new(7, WatchOp::Put, b"k", Some(b"v"), Some(9));
        assert_eq!(
            serde_json::to_string(&text).expect("json"),
            r#"{"seq":7,"op":"put","key":"k","value":"v","version":7,"expires_at":9}"#
        );
        let binary = WatchEvent::new(8, WatchOp::Put, b"k", Some(&[0xff, 0]), None);
        assert_eq!(binary.encoding, Some(Encoding::Base64));
        assert_eq!(binary.key, "aw==");
        assert_eq!(binary.key_bytes().as_deref(), Some(&b"k"[..]));
        assert_eq!(binary.value_bytes().as_deref(), Some(&[0xff, 0][..]));
        let gone = WatchEvent::new(9, WatchOp::Delete, &[0xfe], None, None);
        let json = serde_json::to_string(&gone).expect("json");
        assert_eq!(
            json,
            r#"{"seq":9,"op":"delete","key":"/g==","version":9,"encoding":"base64"}"#
        );
        let back: WatchEvent = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.key_bytes().as_deref(), Some(&[0xfe][..]));
        assert_eq!(back.value_bytes(), None);
    }
}
