//! The OpenAPI document, generated from the handlers' annotations, served
//! at `/openapi.json`. A test checks it against the router both ways.

use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::routes::{admin, backup, batch, cluster, health, kv, listing, watch};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bitcask-server",
        description = "The seed's key-value JSON API and its extensions. Errors are \
            `{\"detail\": \"...\"}`. With an auth token configured, every route but \
            /health needs `Authorization: Bearer <token>`."
    ),
    paths(
        health::health,
        kv::get_key,
        kv::put_key,
        kv::delete_key,
        listing::list_keys,
        watch::watch,
        batch::batch,
        admin::stats,
        admin::merge,
        admin::scrub,
        backup::backup,
        cluster::status,
        cluster::add,
        cluster::remove,
        crate::metrics::metrics,
        openapi_json,
    ),
    modifiers(&StrictBatchOps)
)]
pub struct ApiDoc;

/// Marks each kind of batch operation as admitting no other fields, as the
/// server enforces (`deny_unknown_fields`); utoipa says so for structs but
/// not for the variants of a tagged enum.
struct StrictBatchOps;

impl utoipa::Modify for StrictBatchOps {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut("BatchOp") {
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = item {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> axum::response::Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
