//! `POST /admin/backup`: a consistent copy of the store, written by the
//! server into a new directory under `--backup-dir` (off by default).
//!
//! A client names only the copy, never a path: the server writes nowhere
//! but the directory its operator chose, into a name that does not exist
//! yet, one backup at a time. The copy itself is the engine's crash-safe
//! backup (docs/FORMAT.md, "Backup"): a crash leaves `NAME.partial`, never
//! a `NAME` that looks complete.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bitcask_wire::{BackupReport, BackupRequest};

use crate::error::ApiError;
use crate::state::AppState;

/// Longest backup name.
const MAX_NAME: usize = 128;

/// `POST /admin/backup`.
#[utoipa::path(post, path = "/admin/backup", tag = "admin",
    request_body(content = Option<BackupRequest>, description = "Optional: `{\"name\": \"nightly-1\"}`; without it the copy is named after the time"),
    responses(
        (status = 200, description = "The copy is complete and synced", body = BackupReport),
        (status = 400, description = "A name that is not a plain directory name", body = crate::error::Detail),
        (status = 403, description = "Backups over HTTP are off (no --backup-dir)", body = crate::error::Detail),
        (status = 409, description = "The name exists, another backup is running, or this is a cluster node", body = crate::error::Detail),
        (status = 507, description = "The backup disk is full", body = crate::error::Detail),
    ))]
pub async fn backup(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::body::Body(body): crate::body::Body,
) -> Result<Response, ApiError> {
    let request: BackupRequest = if body.is_empty() {
        BackupRequest::default()
    } else {
        super::require_json(&headers)?;
        super::parse_json_body(&body, r#"{"name": "nightly-1"}"#)?
    };
    let Some(root) = state.config().backup_dir.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "backups over HTTP are off: start the server with --backup-dir DIR, or run \
             `bitcask backup DEST --data-dir DIR` on the server's machine",
        ));
    };
    if state.is_clustered() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a cluster node's store is not backed up over HTTP yet (docs/OPERATIONS.md)",
        ));
    }
    let name = match request.name {
        Some(name) => checked_name(&name)?,
        None => timestamped_name(),
    };
    let Ok(_one_at_a_time) = state.backup_lock().try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "another backup is running; retry when it is done",
        ));
    };
    let store = state.store()?;
    let data_dir = state.config().data_dir.clone();
    let dest_name = name.clone();
    let report = tokio::task::spawn_blocking(move || {
        let dest = destination(&root, &data_dir, &dest_name)?;
        Ok::<_, ApiError>(store.backup(&dest)?)
    })
    .await??;
    tracing::info!(%name, bytes = report.bytes, files = report.data_files, "backup written over HTTP");
    Ok(axum::Json(BackupReport::of(name, &report)).into_response())
}

/// `name` if it is a plain directory name (400 otherwise): no separator, no
/// `..`, no leading dot (no hidden copies, no `.partial` clash), printable.
fn checked_name(name: &str) -> Result<String, ApiError> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.ends_with(".partial")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        Ok(name.to_string())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "a backup name is 1 to {MAX_NAME} of A-Z a-z 0-9 . _ - (not starting with a \
                 dot, not ending in .partial): it names a new directory inside the server's \
                 backup directory, never a path"
            ),
        ))
    }
}

/// `bitcask-2026-12-04T01-15-00Z`: the time in UTC, without colons.
fn timestamped_name() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!("bitcask-{}", now.to_string().replace(':', "-"))
}

/// `root/name`, after making sure `root` exists and, with every link
/// followed, is not inside the data directory; 409 if `name` exists.
fn destination(root: &Path, data_dir: &Path, name: &str) -> Result<PathBuf, ApiError> {
    let io = |path: &Path, e: std::io::Error| {
        ApiError::from(bitcask::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    };
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let real_root = root.canonicalize().map_err(|e| io(root, e))?;
    let real_data = data_dir.canonicalize().map_err(|e| io(data_dir, e))?;
    if real_root.starts_with(&real_data) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the backup directory resolves to a place inside the data directory; \
             set --backup-dir elsewhere",
        ));
    }
    let dest = real_root.join(name);
    if dest.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a backup named {name:?} exists; choose another name"),
        ));
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_taken() {
        for good in ["nightly", "2026-12-04", "a.b_c-d", &"x".repeat(MAX_NAME)] {
            assert_eq!(checked_name(good).expect(good), good);
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../escape",
            "a/b",
            "/abs",
            "a\\b",
            "name.partial",
            "sp ace",
            "nul\0",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            let err = checked_name(bad).expect_err(bad);
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn a_default_name_is_a_plain_name() {
        let name = timestamped_name();
        assert!(
            name.starts_with("bitcask-20") && name.ends_with('Z'),
            "{name}"
        );
        assert_eq!(checked_name(&name).expect("plain"), name);
    }
}
