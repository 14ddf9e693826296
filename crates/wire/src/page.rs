//! `GET /kv`: a page of keys.

use serde::{Deserialize, Serialize};

/// One page of a key listing, and the cursor for the next.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// With `delimiter`: the folders on the page, in byte order (each a
    /// prefix ending in the delimiter; list it as `prefix` to open it).
    /// Absent without a delimiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
    /// Pass as `start_after` for the next page; `null` on the last page.
    pub next_start_after: Option<String>,
    /// `base64` when the listing was asked for with `encoding=base64`: the
    /// keys and `next_start_after` are then base64; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<crate::Encoding>,
}
