//! A customer's own subscriptions and how to connect: the panel's subscription URL, its QR code and links.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use cybervpn_domain::{ErrorCode, Subscription, SubscriptionId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::CustomerAuth,
    error::{ApiError, Problem},
    routes::payments::{CreatePaymentRequest, PaymentView, start_payment},
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

/// What the customer does next to finish a purchase.
#[derive(Serialize, ToSchema)]
pub(crate) struct NextStep {
    /// `open_url`: pay on the gateway's page at `url`; `pay_in_telegram`: pay the Stars invoice the bot
    /// sends (or `payment.stars_invoice`).
    action: &'static str,
    /// The gateway's payment page, for `open_url`.
    url: Option<String>,
    /// One sentence for the customer.
    message: &'static str,
}

/// A purchase started: the pending payment and how to pay it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PurchaseStarted {
    payment: PaymentView,
    next_step: NextStep,
}

/// Starts buying a plan: opens a pending payment at the chosen gateway. The subscription starts (or is
/// extended) when the gateway confirms the payment.
#[utoipa::path(
    tag = "subscriptions",
    security(("customer" = [])),
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, description = "Payment opened; follow `next_step`", body = PurchaseStarted),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan or promo code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Provider, currency or promo code not usable", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/subscriptions")]
pub(crate) async fn start_purchase(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    request: web::Json<CreatePaymentRequest>,
) -> Result<HttpResponse, ApiError> {
    let payment = start_payment(&state, auth.id, request.into_inner()).await?;
    let next_step = match payment.invoice_url() {
        Some(url) => NextStep {
            action: "open_url",
            url: Some(url.to_owned()),
            message: "Open the payment page and pay; your subscription starts as soon as the payment arrives.",
        },
        None => NextStep {
            action: "pay_in_telegram",
            url: None,
            message: "Pay the Telegram Stars invoice in the bot; your subscription starts as soon as it is paid.",
        },
    };
    Ok(HttpResponse::Created().json(PurchaseStarted { payment, next_step }))
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
    let connection = connection(&state, &subscription).await?;
    Ok(web::Json(SubscriptionConfig {
        subscription_id: subscription.id.as_uuid(),
        qr_code_png_base64: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &connection.qr_png,
        ),
        subscription_url: connection.url,
        links: connection.links,
        links_error: connection.links_error,
    }))
}

/// How to connect with a provisioned subscription.
pub(crate) struct Connection {
    /// The panel's subscription URL.
    pub(crate) url: String,
    /// PNG of the URL.
    pub(crate) qr_png: Vec<u8>,
    /// Per-host links from the panel (empty when it could not be asked).
    pub(crate) links: Vec<String>,
    /// Why `links` is empty, if it is.
    pub(crate) links_error: Option<String>,
}

/// The subscription URL, its QR code and the panel's links (the HTTP route and the bot's gRPC call); a
/// subscription the panel does not serve yet is a conflict.
pub(crate) async fn connection(
    state: &AppState,
    subscription: &Subscription,
) -> Result<Connection, ApiError> {
    let Some(panel_identity) = &subscription.panel else {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the subscription is not provisioned yet; try again in a moment",
        ));
    };
    let url = panel_identity.subscription_url.clone();
    let qr_png = cybervpn_auth::totp::qr_png(&url).map_err(ApiError::internal)?;
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
    Ok(Connection {
        url,
        qr_png,
        links,
        links_error,
    })
}
