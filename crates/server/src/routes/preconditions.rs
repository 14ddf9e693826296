//! HTTP preconditions as RFC 9110 (section 13) defines them, for the
//! versions the store gives every value (a value's `ETag` is its version in
//! quotes, `"42"`; versions are store-wide and start at 1):
//!
//! - `If-Match` on a write: `*` (the key exists), or a list of entity tags
//!   compared *strongly*: a weak tag (`W/"3"`) or an opaque one (`"abc"`)
//!   never matches, so a well-formed list of only those answers 412, not
//!   400. Only a header that is not an entity-tag list at all is 400.
//! - `If-None-Match` on a write: `*` only (create if absent).
//! - `If-None-Match` on `GET`/`HEAD`: a list compared *weakly*; a match
//!   answers 304 with the `ETag` and no body.
//!
//! The entity-tag grammar is parsed here by hand: it is a few lines, and
//! the `http` crate's header types do not parse entity-tag lists.

use axum::http::{HeaderMap, StatusCode, header};
use bitcask::Condition;

use crate::error::ApiError;

/// No key is ever at this version (versions start at 1): the condition for
/// an `If-Match` list that can match nothing.
const NO_VERSION: u64 = 0;

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntityTags {
    /// `*`.
    Any,
    /// One or more entity tags.
    List(Vec<EntityTag>),
}

/// One entity tag: `"opaque"`, or `W/"opaque"` when weak.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    /// The version this tag names, if it is one of ours.
    fn version(&self) -> Option<u64> {
        self.opaque.parse().ok()
    }
}

/// Parses `*` or a comma-separated list of entity tags (RFC 9110 §8.8.3);
/// `None` when the text is not that.
pub(crate) fn parse(text: &str) -> Option<EntityTags> {
    let text = text.trim_matches([' ', '\t']);
    if text == "*" {
        return Some(EntityTags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let tag = tag.strip_prefix('"')?;
        let end = tag.find('"')?;
        let opaque = &tag[..end];
        // etagc: %x21 / %x23-7E / obs-text.
        let etagc = |b: u8| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80;
        if !opaque.bytes().all(etagc) {
            return None;
        }
        tags.push(EntityTag {
            weak,
            opaque: opaque.to_string(),
        });
        rest = tag[end + 1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
    (!tags.is_empty()).then_some(EntityTags::List(tags))
}

/// The header's value as text (bytes past ASCII become replacement
/// characters: they can only be opaque tags, which match nothing anyway).
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The write condition `If-Match` / `If-None-Match` ask for. `current`
/// gives the key's version now; it is asked only for an `If-Match` list
/// of several versions, to pick the one the engine then checks atomically
/// (if the key moves on meanwhile, the write answers 412: never a wrong
/// success).
pub(crate) fn write_condition(
    headers: &HeaderMap,
    current: impl FnOnce() -> Result<Option<u64>, ApiError>,
) -> Result<Condition, ApiError> {
    if let Some(text) = header_text(headers, header::IF_MATCH) {
        let tags = parse(&text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "If-Match must be `*` or a list of entity tags such as \"42\"",
            )
        })?;
        let EntityTags::List(tags) = tags else {
            return Ok(Condition::Present);
        };
        // Strong comparison: weak tags never match.
        let versions: Vec<u64> = tags
            .iter()
            .filter(|t| !t.weak)
            .filter_map(EntityTag::version)
            .collect();
        return Ok(match versions.as_slice() {
            [] => Condition::Version(NO_VERSION),
            [only] => Condition::Version(*only),
            several => {
                let now = current()?;
                Condition::Version(now.filter(|v| several.contains(v)).unwrap_or(NO_VERSION))
            }
        });
    }
    if let Some(text) = header_text(headers, header::IF_NONE_MATCH) {
        return match parse(&text) {
            Some(EntityTags::Any) => Ok(Condition::Absent),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "If-None-Match on a write must be `*` (write only if the key is absent)",
            )),
        };
    }
    Ok(Condition::None)
}

/// Whether a read of a value at `version` is answered 304: `If-None-Match`
/// names it (weak comparison: `W/"3"` matches version 3), or is `*`. A
/// malformed `If-None-Match` is ignored, as RFC 9110 allows.
pub(crate) fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    none_match(headers, |t| t.version() == Some(version))
}

/// Whether `If-None-Match` names the entity tag whose opaque part is
/// `opaque` (weak comparison), or is `*`: a static file's 304.
pub(crate) fn not_modified_tag(headers: &HeaderMap, opaque: &str) -> bool {
    none_match(headers, |t| t.opaque == opaque)
}

/// Whether `If-None-Match` is `*` or lists a tag `names` accepts (a
/// malformed header matches nothing).
fn none_match(headers: &HeaderMap, names: impl Fn(&EntityTag) -> bool) -> bool {
    match header_text(headers, header::IF_NONE_MATCH)
        .as_deref()
        .and_then(parse)
    {
        Some(EntityTags::Any) => true,
        Some(EntityTags::List(tags)) => tags.iter().any(names),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> EntityTag {
        EntityTag {
            weak,
            opaque: opaque.into(),
        }
    }

    #[test]
    fn entity_tag_lists_parse_as_rfc_9110_writes_them() {
        assert_eq!(parse("*"), Some(EntityTags::Any));
        assert_eq!(
            parse(r#""3""#),
            Some(EntityTags::List(vec![tag(false, "3")]))
        );
        assert_eq!(
            parse(r#" W/"3" , "abc",,"5"  "#),
            Some(EntityTags::List(vec![
                tag(true, "3"),
                tag(false, "abc"),
                tag(false, "5")
            ]))
        );
        // A comma inside a tag is part of it.
        assert_eq!(
            parse(r#""a,b""#),
            Some(EntityTags::List(vec![tag(false, "a,b")]))
        );
        for malformed in ["", "3", r#""3"#, r#""3" 4"#, r#"w/"3""#, r#""a b""#, ","] {
            assert_eq!(parse(malformed), None, "{malformed:?}");
        }
    }

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().expect("header value"));
        h
    }

    #[test]
    fn if_match_compares_strongly_and_a_list_that_cannot_match_is_412_not_400() {
        let no_read = || -> Result<Option<u64>, ApiError> { panic!("not needed") };
        let cond = |v: &str| write_condition(&headers(header::IF_MATCH, v), no_read).ok();
        assert_eq!(cond("*"), Some(Condition::Present));
        assert_eq!(cond(r#""7""#), Some(Condition::Version(7)));
        assert_eq!(cond(r#"W/"7""#), Some(Condition::Version(NO_VERSION)));
        assert_eq!(cond(r#""opaque""#), Some(Condition::Version(NO_VERSION)));
        assert_eq!(cond(r#"W/"7", "x""#), Some(Condition::Version(NO_VERSION)));
        assert!(cond("7").is_none(), "malformed: 400");
        // Several versions: the current one if listed.
        let at = |now: Option<u64>| {
            write_condition(&headers(header::IF_MATCH, r#""3", "9""#), move || Ok(now))
                .expect("condition")
        };
        assert_eq!(at(Some(9)), Condition::Version(9));
        assert_eq!(at(Some(4)), Condition::Version(NO_VERSION));
        assert_eq!(at(None), Condition::Version(NO_VERSION));
        // If-None-Match on a write: `*` only.
        let none = |v: &str| write_condition(&headers(header::IF_NONE_MATCH, v), no_read).ok();
        assert_eq!(none("*"), Some(Condition::Absent));
        assert!(none(r#""3""#).is_none());
    }

    #[test]
    fn if_none_match_on_reads_compares_weakly() {
        let h = |v: &str| headers(header::IF_NONE_MATCH, v);
        assert!(not_modified(&h(r#""3""#), 3));
        assert!(not_modified(&h(r#"W/"3""#), 3));
        assert!(not_modified(&h(r#""1", "3""#), 3));
        assert!(not_modified(&h("*"), 3));
        assert!(!not_modified(&h(r#""4""#), 3));
        assert!(!not_modified(&h("garbage"), 3));
        assert!(!not_modified(&HeaderMap::new(), 3));
    }

    #[test]
    fn if_none_match_names_any_opaque_tag_weakly() {
        let h = |v: &str| headers(header::IF_NONE_MATCH, v);
        assert!(not_modified_tag(&h(r#""ab12""#), "ab12"));
        assert!(not_modified_tag(&h(r#""x", W/"ab12""#), "ab12"));
        assert!(not_modified_tag(&h("*"), "ab12"));
        assert!(!not_modified_tag(&h(r#""ab1""#), "ab12"));
        assert!(!not_modified_tag(&h("ab12"), "ab12"), "not a tag");
    }
}
