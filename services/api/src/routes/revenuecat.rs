//! `POST /api/v1/webhooks/revenuecat`: purchases, renewals and refunds made in the mobile app's stores.
//!
//! The app sets RevenueCat's app user id to our customer id after `POST /auth/telegram`. A purchase of a
//! mapped product (`payments.revenuecat_products`) becomes a `revenuecat` payment credited through the one
//! completion path, once per store transaction; a refund (`CANCELLATION` with `CUSTOMER_SUPPORT`) takes the
//! days back through the refund path. Each event id is handled once and recorded with its outcome.
//!
//! Everything we cannot act on is answered 200, because RevenueCat retries other answers and a retry would
//! not make an unknown customer or product known: it is logged, recorded, and (when money is involved) sent
//! to staff as a notification instead.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_commerce::{Completion, RefundSource, Refunded, StorePurchase};
use cybervpn_db::{Audience, DbError, StoreEvent, StoreEvents, TransactionTrait};
use cybervpn_domain::{CustomerId, DomainError, ErrorCode, PaymentId, PaymentProvider};
use cybervpn_payments::revenuecat::{self, Event, Paid};

use crate::{
    error::{ApiError, Problem},
    routes::payments::{count, header, not_configured, ok, unauthorized},
    state::AppState,
};

const SOURCE: &str = "revenuecat";

/// What was done with an event.
struct Handled {
    /// Bounded metric label and stored outcome.
    outcome: &'static str,
    payment_id: Option<PaymentId>,
    detail: Option<String>,
}

impl Handled {
    fn done(outcome: &'static str, payment_id: PaymentId) -> Self {
        Self {
            outcome,
            payment_id: Some(payment_id),
            detail: None,
        }
    }

    fn ignored(detail: impl Into<String>) -> Self {
        Self {
            outcome: "ignored",
            payment_id: None,
            detail: Some(detail.into()),
        }
    }

    /// Money may be involved but nothing was credited: staff look at it.
    fn set_aside(detail: impl Into<String>, payment_id: Option<PaymentId>) -> Self {
        Self {
            outcome: "set_aside",
            payment_id,
            detail: Some(detail.into()),
        }
    }
}

/// RevenueCat's webhook: `Authorization` must be the configured value exactly.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "`{api_version, event: {id, type, app_user_id, product_id, transaction_id, price_in_purchased_currency, currency, environment, …}}` as RevenueCat sends it"),
    responses(
        (status = 200, description = "Accepted (also duplicates, unknown customers or products, and events we do not act on)"),
        (status = 400, description = "Not a webhook body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong Authorization", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "RevenueCat is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/revenuecat")]
pub(crate) async fn revenuecat_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = &state.config.payments.revenuecat_webhook_secret else {
        return Err(not_configured(SOURCE));
    };
    if !revenuecat::verify_authorization(secret.expose(), header(&request, "authorization")) {
        return Err(unauthorized(
            &state,
            SOURCE,
            "missing or wrong Authorization header",
        ));
    }
    let event = revenuecat::parse_webhook(&body)
        .map_err(|err| {
            count(&state, SOURCE, "malformed");
            ApiError::new(ErrorCode::MalformedJson, err.to_string())
        })?
        .event;
    if state.db.store_events().seen(&event.id).await? {
        count(&state, SOURCE, "duplicate");
        return Ok(ok());
    }
    let now = Utc::now().trunc_subsecs(6);
    let handled = handle(&state, &event, now).await?;
    match handled.outcome {
        "set_aside" => tracing::warn!(
            event = %event.id,
            event_type = %event.event_type,
            detail = handled.detail.as_deref().unwrap_or_default(),
            "RevenueCat event set aside for staff"
        ),
        outcome => {
            tracing::info!(event = %event.id, event_type = %event.event_type, outcome, "RevenueCat event handled")
        }
    }
    record(&state, &event, &handled, now).await?;
    count(&state, SOURCE, handled.outcome);
    Ok(ok())
}

async fn handle(state: &AppState, event: &Event, now: DateTime<Utc>) -> Result<Handled, ApiError> {
    let kind = event.kind();
    if event.is_sandbox() && !state.config.payments.revenuecat_accept_sandbox {
        return Ok(Handled {
            outcome: "sandbox",
            payment_id: None,
            detail: Some("sandbox purchases are not accepted".to_owned()),
        });
    }
    if event.is_refund() {
        return refund(state, event, now).await;
    }
    if !kind.is_purchase() {
        // Auto-renew off, expiry, billing trouble, product changes (the new product's purchase arrives as its
        // own RENEWAL or INITIAL_PURCHASE), tests: the days already paid for stand.
        return Ok(Handled::ignored(format!(
            "{} changes no days",
            event.event_type
        )));
    }
    let Some(customer_id) = customer_of(state, event).await? else {
        return Ok(Handled::set_aside(
            format!("no customer for app user ids {:?}", event.app_user_ids()),
            None,
        ));
    };
    let product = event.product_id.as_deref().unwrap_or_default();
    let plan = match state.config.payments.revenuecat_products.get(product) {
        Some(code) => state.db.plans().find_by_code(code).await?,
        None => None,
    };
    let Some(plan) = plan else {
        return Ok(Handled::set_aside(
            format!("product {product:?} is not mapped to a plan (payments.revenuecat_products)"),
            None,
        ));
    };
    let Some(paid) = event.paid() else {
        if event.period_type.as_deref() == Some("TRIAL") {
            return Ok(Handled::ignored("a free store trial pays nothing"));
        }
        return Ok(Handled::set_aside(
            "the price is missing, zero or not a plain decimal",
            None,
        ));
    };
    if let Paid::UsdEstimate(money) = paid {
        tracing::info!(event = %event.id, currency = event.currency.as_deref().unwrap_or_default(), usd = %money, "store currency is not ours: recorded at RevenueCat's USD price");
    }
    // The store's transaction id; an event without one is its own transaction.
    let transaction_id = event
        .transaction_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(|| format!("event:{}", event.id));
    let purchase = StorePurchase {
        customer_id,
        plan,
        paid: paid.money(),
        transaction_id,
    };
    let (payment_id, completion) =
        cybervpn_commerce::credit_store_purchase(&state.db, &purchase, now).await?;
    Ok(match completion {
        Completion::Credited(_) => Handled::done("applied", payment_id),
        Completion::AlreadyCompleted => Handled::done("duplicate", payment_id),
        Completion::NeedsReview(reason) => Handled::set_aside(reason, Some(payment_id)),
        Completion::Unknown => Handled::set_aside("the payment disappeared", Some(payment_id)),
    })
}

/// Our customer among the event's app user ids (ours are customer ids).
async fn customer_of(state: &AppState, event: &Event) -> Result<Option<CustomerId>, ApiError> {
    for id in event.app_user_ids() {
        let Ok(uuid) = uuid::Uuid::try_parse(id.trim()) else {
            continue;
        };
        match state.db.customers().get(CustomerId::from_uuid(uuid)).await {
            Ok(customer) => return Ok(Some(customer.id)),
            Err(DbError::Domain(DomainError::NotFound { .. })) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(None)
}

/// A store refund: the payment of its transaction is refunded and its days taken back (once).
async fn refund(state: &AppState, event: &Event, now: DateTime<Utc>) -> Result<Handled, ApiError> {
    let payment = match event.transaction_id.as_deref() {
        Some(id) => {
            state
                .db
                .payments()
                .find_by_provider_id(PaymentProvider::RevenueCat, id)
                .await?
        }
        None => None,
    };
    let Some(payment) = payment else {
        return Ok(Handled::set_aside(
            format!(
                "refund of transaction {:?}, which credited nothing here",
                event.transaction_id.as_deref().unwrap_or_default()
            ),
            None,
        ));
    };
    match cybervpn_commerce::refund_payment(
        &state.db,
        payment.id,
        "refunded by the app store (RevenueCat)",
        &RefundSource::Gateway,
        now,
    )
    .await
    {
        Ok(Refunded::Reversed(_)) => Ok(Handled::done("refunded", payment.id)),
        Ok(Refunded::AlreadyRefunded) => Ok(Handled::done("duplicate", payment.id)),
        // Refunded before it was credited: nothing to take back, staff should know.
        Err(DbError::Domain(DomainError::InvalidTransition { from, .. })) => {
            let reason = format!("refunded by the app store while {from}");
            state.db.payments().flag(payment.id, &reason, now).await?;
            Ok(Handled::set_aside(reason, Some(payment.id)))
        }
        Err(err) => Err(err.into()),
    }
}

/// Records the event with its outcome and, when it was set aside, tells staff, in one transaction.
async fn record(
    state: &AppState,
    event: &Event,
    handled: &Handled,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let txn = state.db.conn().begin().await.map_err(DbError::from)?;
    let recorded = StoreEvents::on(&txn)
        .record(&StoreEvent {
            id: event.id.clone(),
            event_type: event.event_type.chars().take(48).collect(),
            app_user_id: event
                .app_user_id
                .as_ref()
                .map(|id| id.chars().take(128).collect()),
            product_id: event
                .product_id
                .as_ref()
                .map(|id| id.chars().take(200).collect()),
            transaction_id: event
                .transaction_id
                .as_ref()
                .map(|id| id.chars().take(128).collect()),
            environment: event
                .environment
                .as_ref()
                .map(|env| env.chars().take(16).collect()),
            outcome: handled.outcome.to_owned(),
            payment_id: handled.payment_id,
            detail: handled.detail.clone(),
            received_at: now,
        })
        .await?;
    if recorded && handled.outcome == "set_aside" {
        let body = format!(
            "RevenueCat {} {} set aside, nothing credited: {}",
            event.event_type,
            event.id,
            handled.detail.as_deref().unwrap_or_default()
        );
        cybervpn_jobs::outbox::notify_in(
            &txn,
            &format!("revenuecat:{}", event.id),
            Audience::Staff,
            "revenuecat_set_aside",
            &body,
            now,
        )
        .await?;
    }
    txn.commit().await.map_err(DbError::from)?;
    Ok(())
}
