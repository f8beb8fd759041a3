//! A customer's own subscriptions and how to connect: the panel's subscription URL, its QR code and links.

use std::time::Duration;

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use cybervpn_domain::{ErrorCode, Subscription, SubscriptionId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::CustomerAuth,
    error::{ApiError, Problem},
    state::AppState,
};

/// How long the config route waits for the panel before answering without links.
const PANEL_WAIT: Duration = Duration::from_secs(5);

/// A subscription as its customer sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct MySubscriptionView {
    id: uuid::Uuid,
    /// `null` for a trial or a grant by staff.
    plan_id: Option<uuid::Uuid>,
    /// `active`, `expired`, `disabled` or `limited`.
    status: &'static str,
    expires_at: DateTime<Utc>,
    traffic_used_bytes: u64,
    /// `null` is unlimited.
    traffic_limit_bytes: Option<u64>,
    /// Whether the VPN panel serves it yet (`GET …/config` answers once it does).
    provisioned: bool,
    created_at: DateTime<Utc>,
}

impl From<&Subscription> for MySubscriptionView {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id.as_uuid(),
            plan_id: s.plan_id.map(|p| p.as_uuid()),
            status: s.status.as_str(),
            expires_at: s.expires_at,
            traffic_used_bytes: s.traffic_used.bytes(),
            traffic_limit_bytes: s.traffic_limit.as_optional_bytes(),
            provisioned: s.panel.is_some(),
            created_at: s.created_at,
        }
    }
}

/// The signed-in customer's subscriptions, newest first.
#[utoipa::path(
    tag = "subscriptions",
    security(("customer" = [])),
    responses(
        (status = 200, description = "Subscriptions, newest first", body = [MySubscriptionView]),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/subscriptions")]
pub(crate) async fn list_my_subscriptions(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<Vec<MySubscriptionView>>, ApiError> {
    let subscriptions = state.db.subscriptions().of_customer(auth.id).await?;
    Ok(web::Json(
        subscriptions.iter().map(MySubscriptionView::from).collect(),
    ))
}

/// How to connect with a subscription.
#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionConfig {
    subscription_id: uuid::Uuid,
    /// The URL to import into a VPN client.
    subscription_url: String,
    /// QR code of `subscription_url`: a PNG, standard base64.
    qr_code_png_base64: String,
    /// Per-host links the panel offers (`vless://…`, …); empty when the panel could not be asked.
    links: Vec<String>,
    /// Why `links` is empty although the panel should have some; absent when they were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    links_error: Option<String>,
}

/// The subscription URL, its QR code and the panel's per-host links, for the owner of the subscription.
#[utoipa::path(
    tag = "subscriptions",
    params(("id" = uuid::Uuid, Path, description = "Subscription id")),
    security(("customer" = [])),
    responses(
        (status = 200, description = "Connection details", body = SubscriptionConfig),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription of this customer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not provisioned on the panel yet; retry shortly", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/subscriptions/{id}/config")]
pub(crate) async fn subscription_config(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<SubscriptionConfig>, ApiError> {
    let subscription = state
        .db
        .subscriptions()
        .find(SubscriptionId::from_uuid(*id))
        .await?
        // Someone else's subscription is indistinguishable from a missing one.
        .filter(|s| s.customer_id == auth.id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such subscription"))?;
    let Some(panel_identity) = &subscription.panel else {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the subscription is not provisioned yet; try again in a moment",
        ));
    };
    let url = panel_identity.subscription_url.clone();
    let qr = cybervpn_auth::totp::qr_png_base64(&url).map_err(ApiError::internal)?;
    let (links, links_error) = match &state.panel {
        None => (
            Vec::new(),
            Some("the VPN panel is not configured".to_owned()),
        ),
        Some(panel) => {
            match tokio::time::timeout(
                PANEL_WAIT,
                panel.subscription_info(&panel_identity.short_uuid),
            )
            .await
            {
                Ok(Ok(Some(info))) => (info.links, None),
                Ok(Ok(None)) => (
                    Vec::new(),
                    Some("the VPN panel does not know this subscription yet".to_owned()),
                ),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "panel subscription info failed");
                    (
                        Vec::new(),
                        Some("the VPN panel is unreachable; use the subscription URL".to_owned()),
                    )
                }
                Err(_) => (
                    Vec::new(),
                    Some(
                        "the VPN panel did not answer in time; use the subscription URL".to_owned(),
                    ),
                ),
            }
        }
    };
    Ok(web::Json(SubscriptionConfig {
        subscription_id: subscription.id.as_uuid(),
        subscription_url: url,
        qr_code_png_base64: qr,
        links,
        links_error,
    }))
}
