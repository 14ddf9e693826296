//! `GET /kv`: the ordered listing, a page at a time, optionally folded at a
//! delimiter into "folders" (as S3's common prefixes), with keys of any
//! bytes in base64.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bitcask::{Bitcask, KeyRange};
use serde::Deserialize;

use super::kv::{Consistency, with_applied};
use crate::error::ApiError;
use crate::state::AppState;

/// Query parameters of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys that start with this.
    #[serde(default)]
    prefix: String,
    /// Only keys after this one (the previous page's `next_start_after`).
    /// With `delimiter`, a folder named here skips every key in it.
    start_after: Option<String>,
    /// Keys (and folders) per page, 1 to 10,000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Folds keys into folders: the keys whose rest after `prefix` holds
    /// the delimiter are listed once, in `prefixes`, as `prefix` up to and
    /// including its first delimiter (`/`: `users/42/name` under `users/`
    /// is the folder `users/42/`). A folder costs one seek, whatever it holds.
    #[param(min_length = 1, max_length = 16)]
    delimiter: Option<String>,
    /// On a cluster node: `stale` or `linearizable` (the default), as for
    /// a get.
    consistency: Option<Consistency>,
    /// `base64`: keys of any bytes, each base64 (standard, padded); then
    /// `prefix`, `start_after`, `delimiter`, `prefixes` and
    /// `next_start_after` are base64 too. Without it keys are text, bytes
    /// that are not UTF-8 replaced by U+FFFD.
    encoding: Option<bitcask_wire::Encoding>,
}

/// Default and largest page of a listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;
/// Longest delimiter, in bytes.
const MAX_DELIMITER: usize = 16;

/// `GET /kv?prefix=&start_after=&limit=&delimiter=`: keys in byte order, a
/// page at a time.
#[utoipa::path(
    get,
    path = "/kv",
    tag = "kv",
    params(ListParams),
    responses(
        (status = 200, description = "A page of keys in byte order; X-Bitcask-Seq is the seq \
            to watch from to see every change after the listing", body = bitcask_wire::Page,
            headers(("X-Bitcask-Seq" = u64, description = "The change feed's next seq, taken before the listing"))),
        (status = 400, description = "A bad limit, delimiter or base64 parameter", body = crate::error::Detail),
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let stale = matches!(params.consistency, Some(Consistency::Stale));
    let applied = state.before_read(stale).await?;
    let store = state.store()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let base64 = params.encoding.is_some();
    let param = |name: &str, text: String| {
        if base64 {
            base64_param(name, text)
        } else {
            Ok(text.into_bytes())
        }
    };
    let prefix = param("prefix", params.prefix)?;
    let start_after = params
        .start_after
        .map(|s| param("start_after", s))
        .transpose()?;
    let delimiter = params
        .delimiter
        .map(|d| param("delimiter", d))
        .transpose()?;
    if let Some(d) = &delimiter
        && (d.is_empty() || d.len() > MAX_DELIMITER)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("delimiter must be 1 to {MAX_DELIMITER} bytes"),
        ));
    }
    // Taken before the listing: every write below it is in the listing, so
    // a watch from here loses nothing (docs/WATCH.md).
    let position = store.position();
    let listed = list(
        &store,
        &prefix,
        start_after.as_deref(),
        delimiter.as_deref(),
        limit,
    );
    let show = |key: Vec<u8>| {
        if base64 {
            base64::engine::general_purpose::STANDARD.encode(key)
        } else {
            String::from_utf8_lossy(&key).into_owned()
        }
    };
    let mut response = with_applied(
        axum::Json(bitcask_wire::Page {
            keys: listed.keys.into_iter().map(show).collect(),
            prefixes: delimiter
                .is_some()
                .then(|| listed.prefixes.into_iter().map(show).collect()),
            next_start_after: listed.next_start_after.map(show),
            encoding: params.encoding,
        })
        .into_response(),
        applied,
    );
    response.headers_mut().insert(
        super::watch::SEQ_HEADER,
        HeaderValue::from(position.next_seq),
    );
    Ok(response)
}

/// Decodes a base64 listing parameter (`encoding=base64`).
fn base64_param(name: &str, text: String) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} is not base64 (encoding=base64): {e}"),
            )
        })
}

/// One page of a listing, before encoding.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    keys: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    next_start_after: Option<Vec<u8>>,
}

/// Up to `limit` keys and folders under `prefix` after `start_after`, in
/// byte order; folded at `delimiter` if given.
fn list(
    store: &Bitcask,
    prefix: &[u8],
    start_after: Option<&[u8]>,
    delimiter: Option<&[u8]>,
    limit: usize,
) -> Listed {
    let mut listed = Listed::default();
    let mut range = KeyRange::prefix(prefix.to_vec());
    if let Some(after) = start_after {
        range = match delimiter.and_then(|d| folder_of(prefix, after, d)) {
            // A folder's name as the cursor: resume past all it holds.
            Some(folder) if folder.len() == after.len() => match successor(&folder) {
                Some(next) => range.start_at(next),
                None => return listed,
            },
            _ => range.start_after(after.to_vec()),
        };
    }
    'scan: loop {
        for key in store.keys_in(std::mem::take(&mut range)) {
            // One item past the page says whether another page follows.
            if listed.keys.len() + listed.prefixes.len() == limit {
                listed.next_start_after = last_item(&listed);
                break 'scan;
            }
            match delimiter.and_then(|d| folder_of(prefix, &key, d)) {
                None => listed.keys.push(key),
                Some(folder) => {
                    // Skip the folder's keys with one seek past them all.
                    let next = successor(&folder);
                    listed.prefixes.push(folder);
                    match next {
                        Some(next) => {
                            range = KeyRange::prefix(prefix.to_vec()).start_at(next);
                            continue 'scan;
                        }
                        None => break 'scan,
                    }
                }
            }
        }
        break;
    }
    listed
}

/// The later of the last key and the last folder listed.
fn last_item(listed: &Listed) -> Option<Vec<u8>> {
    listed
        .keys
        .last()
        .into_iter()
        .chain(listed.prefixes.last())
        .max()
        .cloned()
}

/// The folder `key` is in under `prefix`: `prefix` and the rest of the key
/// up to and including the first `delimiter` after `prefix`; `None` if the
/// rest holds no delimiter (the key is listed itself).
fn folder_of(prefix: &[u8], key: &[u8], delimiter: &[u8]) -> Option<Vec<u8>> {
    let rest = key.strip_prefix(prefix)?;
    let at = rest.windows(delimiter.len()).position(|w| w == delimiter)?;
    Some(key[..prefix.len() + at + delimiter.len()].to_vec())
}

/// The smallest key after every key that starts with `prefix`; `None` if
/// there is none (the prefix is all `0xFF` bytes).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: &[&[u8]]) -> (tempfile::TempDir, Bitcask) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Bitcask::open(dir.path()).expect("open");
        for k in keys {
            db.put(k, b"v").expect("put");
        }
        (dir, db)
    }

    /// Every page of a listing, concatenated: (keys, folders).
    fn all_pages(
        db: &Bitcask,
        prefix: &[u8],
        delimiter: Option<&[u8]>,
        limit: usize,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut keys, mut folders) = (Vec::new(), Vec::new());
        let mut after: Option<Vec<u8>> = None;
        for _ in 0..1000 {
            let page = list(db, prefix, after.as_deref(), delimiter, limit);
            assert!(page.keys.len() + page.prefixes.len() <= limit);
            keys.extend(page.keys);
            folders.extend(page.prefixes);
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return (keys, folders),
            }
        }
        panic!("the listing never ended");
    }

    #[test]
    fn folders_fold_at_the_delimiter_and_each_is_listed_once() {
        let (_dir, db) = store(&[
            b"a",
            b"a/",
            b"a/1",
            b"a/2/x",
            b"a/2/y",
            b"a/3",
            b"b/1",
            b"b/2",
            b"c",
            b"\xff/\xff",
        ]);
        let s = |v: &[&[u8]]| v.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        for limit in 1..6 {
            assert_eq!(
                all_pages(&db, b"", Some(b"/"), limit),
                (s(&[b"a", b"c"]), s(&[b"a/", b"b/", b"\xff/"])),
                "page size {limit}"
            );
            assert_eq!(
                all_pages(&db, b"a/", Some(b"/"), limit),
                (s(&[b"a/", b"a/1", b"a/3"]), s(&[b"a/2/"])),
                "page size {limit}"
            );
        }
        // Without a delimiter, every key.
        assert_eq!(all_pages(&db, b"", None, 3).0.len(), 10);
        // A longer delimiter.
        assert_eq!(
            all_pages(&db, b"", Some(b"/2/"), 2),
            (
                s(&[
                    b"a",
                    b"a/",
                    b"a/1",
                    b"a/3",
                    b"b/1",
                    b"b/2",
                    b"c",
                    b"\xff/\xff"
                ]),
                s(&[b"a/2/"])
            )
        );
    }

    #[test]
    fn a_page_ends_exactly_at_the_limit_and_says_so() {
        let (_dir, db) = store(&[b"x/1", b"x/2", b"y"]);
        let page = list(&db, b"", None, Some(b"/"), 2);
        assert_eq!(page.prefixes, vec![b"x/".to_vec()]);
        assert_eq!(page.keys, vec![b"y".to_vec()]);
        assert_eq!(page.next_start_after, None, "nothing follows");
        let page = list(&db, b"", None, Some(b"/"), 1);
        assert_eq!(page.next_start_after, Some(b"x/".to_vec()));
        let page = list(&db, b"", Some(b"x/"), Some(b"/"), 1);
        assert_eq!(page.keys, vec![b"y".to_vec()], "past the folder");
    }

    #[test]
    fn successors_skip_exactly_the_prefix() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(folder_of(b"a/", b"a/b/c", b"/"), Some(b"a/b/".to_vec()));
        assert_eq!(folder_of(b"a/", b"a/b", b"/"), None);
        assert_eq!(folder_of(b"a/", b"b/c", b"/"), None);
    }
}
