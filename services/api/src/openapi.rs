//! The OpenAPI 3.1 document, generated from the registered routes.

use actix_web::App;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

/// Document-level metadata; paths come from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "CyberVPN API",
        description = "Public (`/api/v1`) and admin REST API of the CyberVPN platform. Errors are RFC 7807 \
                       `application/problem+json` documents with a stable `code`.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "plans", description = "The plan catalogue"),
    ),
    components(schemas(crate::error::Problem))
)]
pub(crate) struct ApiDoc;

/// The full OpenAPI document of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    doc
}
