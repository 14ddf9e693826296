//! `/ui`: the web console's files (docs/UI.md), embedded in the binary when
//! it is built, served with their content types, strong `ETag`s and a
//! strict `Content-Security-Policy`.
//!
//! A fixed table of a dozen files and `include_bytes!`: an embedding crate
//! (rust-embed) would add a build-time directory walk and a dependency for
//! what this table does in a few lines. The files hold no data and are
//! served without the bearer token (the login form must load); everything
//! the page shows comes from the API, with the token.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::Digest;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Declares an embedded file of `crates/server/ui/`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("charts.js", JS),
    asset!("keys.js", JS),
    asset!("space.js", JS),
    asset!("load.js", JS),
    asset!("live.js", JS),
    asset!("cluster.js", JS),
];

/// The policy every `/ui` answer carries: the page's own files only, no
/// inline script or style, no framing, no form posts, API calls to the
/// page's own origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Whether `path` is one of the console's (served without the token).
pub fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The console's routes: `/ui` (a redirect to `/ui/`), `/ui/` (the page)
/// and `/ui/{file}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                serve(&file, &headers)
            }),
        )
}

/// The opaque part of each asset's strong `ETag`, in [`ASSETS`] order: the
/// first 128 bits of the SHA-256 of its bytes in hex, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = sha2::Sha256::digest(a.bytes);
                digest[..16].iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect()
    })
}

/// The file `name`, or 404; 304 when `If-None-Match` names its `ETag`.
fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return with_policy(crate::error::detail_response(
            StatusCode::NOT_FOUND,
            "no such file in the console",
        ));
    };
    let asset = &ASSETS[index];
    let opaque = &etags()[index];
    let mut response = if super::preconditions::not_modified_tag(request, opaque) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    // Hex digits in quotes are always a valid header value.
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{opaque}\"")) {
        headers.insert(header::ETAG, etag);
    }
    // Revalidate every time: a new binary's files are fetched at once, an
    // unchanged file costs a 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_policy(response)
}

/// Adds the security headers every `/ui` answer carries.
fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_etag_and_is_not_empty() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        let mut tags: Vec<_> = etags().to_vec();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.bytes.is_empty()));
    }

    /// Whether markup has an attribute such as ` onclick=`.
    fn has_inline_handler(markup: &str) -> bool {
        markup.match_indices(" on").any(|(at, _)| {
            let rest = &markup[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn no_file_holds_inline_script_or_style_the_policy_would_refuse() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".html")) {
            let text = std::str::from_utf8(asset.bytes).expect("utf-8");
            assert!(!text.contains("<script>"), "{}: inline script", asset.name);
            assert!(!text.contains("style="), "{}: inline style", asset.name);
            assert!(!text.contains("<style"), "{}: inline style", asset.name);
            assert!(
                !has_inline_handler(text),
                "{}: an inline handler",
                asset.name
            );
        }
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).expect("utf-8");
            // Every key and value goes into the page as text.
            assert!(!text.contains("innerHTML"), "{}: innerHTML", asset.name);
            assert!(!text.contains("outerHTML"), "{}: outerHTML", asset.name);
            assert!(!text.contains("insertAdjacentHTML"), "{}", asset.name);
            assert!(!text.contains("eval("), "{}: eval", asset.name);
        }
    }
}
