//! Payments for staff: search, and refunds through the gateway that took the money.

use actix_web::{get, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_commerce::{RefundSource, Refunded, refund_payment};
use cybervpn_db::PaymentSearch;
use cybervpn_domain::{
    CustomerId, DomainError, ErrorCode, Payment, PaymentId, PaymentProvider, PaymentStatus,
};
use cybervpn_telemetry::AttemptError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, perm},
    error::{ApiError, Problem},
    routes::{
        audit::{self, RequestTag},
        payments::PaymentView,
    },
    state::AppState,
};

/// A payment as staff see it: the customer's view plus who paid, the gateway's reference and any review
/// or refund note.
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminPaymentView {
    #[serde(flatten)]
    payment: PaymentView,
    customer_id: uuid::Uuid,
    plan_id: Option<uuid::Uuid>,
    /// The gateway's id of the payment.
    provider_payment_id: Option<String>,
    /// Why it was set aside for staff instead of credited.
    review_reason: Option<String>,
    /// Why it was refunded.
    refund_reason: Option<String>,
}

impl From<&Payment> for AdminPaymentView {
    fn from(payment: &Payment) -> Self {
        Self {
            payment: PaymentView::of(payment, None),
            customer_id: payment.customer_id.as_uuid(),
            plan_id: payment.plan_id.map(|id| id.as_uuid()),
            provider_payment_id: payment.provider_payment_id.clone(),
            review_reason: payment.review_reason.clone(),
            refund_reason: payment.refund_reason.clone(),
        }
    }
}

/// Filters of the payment search; every given one must match.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PaymentQuery {
    /// `pending`, `completed`, `failed`, `expired` or `refunded`.
    status: Option<String>,
    /// `cryptobot`, `stripe`, `yookassa`, `telegram_stars` or `revenuecat` (app-store purchases).
    provider: Option<String>,
    /// Payments of this customer.
    customer_id: Option<uuid::Uuid>,
    /// `true`: only payments set aside for staff review.
    needs_review: Option<bool>,
    /// The gateway's id of the payment (invoice id, session or PaymentIntent id, charge id).
    provider_payment_id: Option<String>,
    /// Created at or after (RFC 3339).
    created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    created_to: Option<DateTime<Utc>>,
    /// Payments per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

/// One page of payments.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentPage {
    /// Newest first.
    items: Vec<AdminPaymentView>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Searches payments, newest first.
#[utoipa::path(
    tag = "admin",
    params(PaymentQuery),
    security(("staff" = ["view_payments"])),
    responses(
        (status = 200, description = "A page of payments", body = PaymentPage),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_payments`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/payments")]
pub(crate) async fn list_payments(
    Authorized(_staff, query): Authorized<perm::ViewPayments, web::Query<PaymentQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<PaymentPage>, ApiError> {
    let query = query.into_inner();
    let limit = audit::page_size(query.limit.as_deref())?;
    let before = audit::cursor("before", query.before.as_deref())?.map(PaymentId::from_uuid);
    let filter = PaymentSearch {
        status: query
            .status
            .as_deref()
            .map(str::parse::<PaymentStatus>)
            .transpose()?,
        provider: query
            .provider
            .as_deref()
            .map(str::parse::<PaymentProvider>)
            .transpose()?,
        customer_id: query.customer_id.map(CustomerId::from_uuid),
        needs_review: query.needs_review.unwrap_or(false),
        provider_payment_id: query.provider_payment_id,
        created_from: query.created_from,
        created_to: query.created_to,
    };
    let rows = state
        .db
        .payments()
        .search(&filter, before, limit + 1)
        .await?;
    let (rows, next_cursor) = audit::paginate(rows, limit, |payment| payment.id.as_uuid());
    Ok(web::Json(PaymentPage {
        items: rows.iter().map(AdminPaymentView::from).collect(),
        next_cursor,
    }))
}

/// One payment, with the staff-only details.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Payment id")),
    security(("staff" = ["view_payments"])),
    responses(
        (status = 200, description = "The payment", body = AdminPaymentView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_payments`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/payments/{id}")]
pub(crate) async fn get_payment_admin(
    Authorized(_staff, id): Authorized<perm::ViewPayments, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<AdminPaymentView>, ApiError> {
    let payment = state
        .db
        .payments()
        .get(PaymentId::from_uuid(id.into_inner()))
        .await?;
    Ok(web::Json(AdminPaymentView::from(&payment)))
}

/// Why staff refund a payment, and whether the money already went back outside our gateways' APIs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundRequest {
    /// Kept on the payment and in the audit log.
    #[schema(example = "customer could not connect")]
    reason: String,
    /// `true` records a refund made in the gateway's own dashboard (CryptoBot, YooKassa) without calling it.
    #[serde(default)]
    already_refunded_at_gateway: bool,
}

/// Path and body of the refund route, extracted after authorization.
type RefundParts = (web::Path<uuid::Uuid>, web::Json<RefundRequest>);

/// Refunds a completed payment: Telegram Stars through `refundStarPayment`, Stripe through a refund of its
/// PaymentIntent; then takes back the days it bought (not time already used) and tells the customer.
/// Refunding a refunded payment changes nothing.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Payment id")),
    request_body = RefundRequest,
    security(("staff" = ["manage_payments"])),
    responses(
        (status = 200, description = "Refunded (now or before)", body = AdminPaymentView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_payments`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a completed payment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason, the gateway cannot refund through its API, or it refused; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway could not be reached; nothing changed, try again", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/payments/{id}/refund")]
pub(crate) async fn refund_payment_admin(
    Authorized(staff, parts): Authorized<perm::ManagePayments, RefundParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<AdminPaymentView>, ApiError> {
    let (id, body) = parts;
    let body = body.into_inner();
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "must be 1 to 500 characters",
        ));
    }
    let payments = state.db.payments();
    let payment = payments.get(PaymentId::from_uuid(id.into_inner())).await?;
    match payment.status {
        PaymentStatus::Refunded => return Ok(web::Json(AdminPaymentView::from(&payment))),
        PaymentStatus::Completed => {}
        other => {
            return Err(DomainError::InvalidTransition {
                entity: "payment",
                from: other.as_str(),
                to: PaymentStatus::Refunded.as_str(),
            }
            .into());
        }
    }
    if !body.already_refunded_at_gateway {
        refund_at_gateway(&state, &payment).await?;
    }
    let source = RefundSource::Staff {
        staff_id: staff.account.id,
        request_id: request.id().map(str::to_owned),
    };
    let now = Utc::now().trunc_subsecs(6);
    match refund_payment(&state.db, payment.id, reason, &source, now).await? {
        Refunded::Reversed(_) | Refunded::AlreadyRefunded => {}
    }
    let payment = payments.get(payment.id).await?;
    Ok(web::Json(AdminPaymentView::from(&payment)))
}

/// Gives the money back through the gateway's API; nothing is recorded if it fails.
async fn refund_at_gateway(state: &AppState, payment: &Payment) -> Result<(), ApiError> {
    // A temporary failure may succeed later (503); a refusal will not (422). Nothing was recorded either way.
    let failed = |err: &dyn AttemptError| {
        tracing::warn!(payment = %payment.id.as_uuid(), error = %err, "gateway refund failed");
        let code = if err.is_retryable() {
            ErrorCode::ServiceUnavailable
        } else {
            ErrorCode::ValidationFailed
        };
        ApiError::new(
            code,
            format!("{} did not refund: {err}", payment.provider.as_str()),
        )
    };
    let reference = payment.provider_payment_id.as_deref().ok_or_else(|| {
        ApiError::invalid_field(
            "payment",
            "the gateway's reference of this payment is unknown",
        )
    })?;
    match payment.provider {
        PaymentProvider::TelegramStars => {
            let client = state.gateways.stars.as_ref().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "Telegram is not configured (telegram.bot_token)",
                )
            })?;
            let customer = state.db.customers().get(payment.customer_id).await?;
            let user = customer.telegram_id.ok_or_else(|| {
                ApiError::invalid_field("payment", "the customer has no Telegram account to refund")
            })?;
            client
                .refund_star_payment(user.get(), reference)
                .await
                .map_err(|err| failed(&err))
        }
        PaymentProvider::Stripe => {
            let client = state.gateways.stripe.as_ref().ok_or_else(|| {
                ApiError::new(ErrorCode::ServiceUnavailable, "Stripe is not configured")
            })?;
            client
                .refund_payment_intent(reference, &format!("refund-{}", payment.id.as_uuid()))
                .await
                .map(|_| ())
                .map_err(|err| failed(&err))
        }
        PaymentProvider::RevenueCat => Err(ApiError::invalid_field(
            "already_refunded_at_gateway",
            "app-store purchases are refunded by Apple or Google; RevenueCat reports the refund, or record it with already_refunded_at_gateway: true",
        )),
        PaymentProvider::CryptoBot | PaymentProvider::YooKassa => Err(ApiError::invalid_field(
            "already_refunded_at_gateway",
            format!(
                "{} refunds are made in its dashboard; then record it with already_refunded_at_gateway: true",
                payment.provider.as_str()
            ),
        )),
    }
}
