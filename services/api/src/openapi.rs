//! The OpenAPI 3.1 document, generated from the registered routes.

use actix_web::App;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
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
        (name = "auth", description = "Customer sign-up, sign-in, token refresh and sign-out"),
        (name = "two-factor", description = "TOTP two-factor authentication for customers and staff"),
        (name = "trial", description = "The free trial, once per customer and per Telegram account"),
        (name = "referral", description = "Referral codes and the bonus days they earn"),
        (name = "invites", description = "Invite codes: the customer's own, and redeeming a friend's for free access"),
        (name = "loyalty", description = "The loyalty program: levels earned by paid tenure, their bonuses and perks"),
        (name = "devices", description = "A customer's devices that receive push notifications"),
        (name = "subscriptions", description = "A customer's own subscriptions and how to connect"),
        (name = "payments", description = "Paying for a plan through CryptoBot, Stripe, YooKassa or Telegram Stars"),
        (name = "webhooks", description = "Signed notifications from the panel and the payment gateways"),
        (name = "admin", description = "Staff routes; each requires the permission named in its security scope"),
        (name = "analytics", description = "Business analytics for staff (`view_analytics`): revenue, payment outcomes, growth, trial conversions and churn per UTC day, week or month"),
        (name = "websockets", description = "Live staff views: a single-use ticket, then node status, queue depth, payments, sign-ups and incidents as they happen"),
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&SecuritySchemes)
)]
pub(crate) struct ApiDoc;

/// Bearer schemes: `customer` and `staff` PASETO v4.public access tokens; a staff route's scopes name the
/// permission it requires.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, audience) in [("customer", "customer"), ("staff", "staff")] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("PASETO v4.public")
                        .description(Some(format!(
                            "Access token of the {audience} audience from the sign-in routes"
                        )))
                        .build(),
                ),
            );
        }
    }
}

/// The full OpenAPI document of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    doc
}
