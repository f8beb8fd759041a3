//! The free trial: a short subscription without a plan, once per customer and once per Telegram account.
//!
//! Unique indexes on `trials` hold "once"; two racing activations cannot both commit.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_db::{Customers, DbError, Subscriptions, Trial, Trials};
use cybervpn_domain::{CustomerId, DomainError, ErrorCode, Subscription, TrafficLimit};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::CustomerAuth,
    error::{ApiError, Problem},
    routes::{audit, customer_subscriptions::MySubscriptionView, operations::outbox_provision},
    state::AppState,
};

/// Whether the customer may start the trial, and the trial they took.
#[derive(Serialize, ToSchema)]
pub(crate) struct TrialStatus {
    /// True when `POST /trial/activate` would start a trial now.
    available: bool,
    /// When the customer took the trial; `null` if never.
    activated_at: Option<DateTime<Utc>>,
    /// When the trial ends (or ended); `null` if never taken.
    expires_at: Option<DateTime<Utc>>,
    /// Length of a trial, in days.
    days: u32,
    /// Traffic allowance of a trial; `null` is unlimited.
    traffic_limit_bytes: Option<u64>,
}

fn trial_traffic(state: &AppState) -> TrafficLimit {
    match state.config.trial.traffic_gb {
        0 => TrafficLimit::Unlimited,
        gb => TrafficLimit::from_optional_bytes(Some(gb.saturating_mul(1_000_000_000))),
    }
}

/// Why the customer may not start a trial, if anything stops them.
/// Whether the customer may start the free trial now.
pub(crate) async fn available(state: &AppState, customer: CustomerId) -> Result<bool, ApiError> {
    Ok(unavailable_because(state.db.conn(), customer, Utc::now())
        .await?
        .is_none())
}

async fn unavailable_because<C: cybervpn_db::ConnectionTrait>(
    conn: &C,
    customer: CustomerId,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, DbError> {
    if Trials::on(conn).for_customer(customer).await?.is_some() {
        return Ok(Some("the free trial was already used by this account"));
    }
    let profile = Customers::on(conn).get(customer).await?;
    if let Some(telegram_id) = profile.telegram_id
        && Trials::on(conn).taken_by_telegram(telegram_id).await?
    {
        return Ok(Some(
            "the free trial was already used with this Telegram account",
        ));
    }
    if let Some(current) = Subscriptions::on(conn).current_for(customer).await?
        && current.is_active_at(now)
    {
        return Ok(Some("you already have an active subscription"));
    }
    Ok(None)
}

/// Whether the free trial is available, and the one taken.
#[utoipa::path(
    tag = "trial",
    security(("customer" = [])),
    responses(
        (status = 200, description = "Trial availability", body = TrialStatus),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/trial/status")]
pub(crate) async fn trial_status(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<TrialStatus>, ApiError> {
    let conn = state.db.conn();
    let trial = Trials::on(conn).for_customer(auth.id).await?;
    let blocked = unavailable_because(conn, auth.id, Utc::now()).await?;

    Ok(web::Json(TrialStatus {
        available: blocked.is_none(),
        activated_at: trial.as_ref().map(|t| t.activated_at),
        expires_at: trial.as_ref().map(|t| t.expires_at),
        days: state.config.trial.days,
        traffic_limit_bytes: trial_traffic(&state).as_optional_bytes(),
    }))
}

/// Starts the free trial: a subscription of the configured days and traffic, provisioned by the worker.
#[utoipa::path(
    tag = "trial",
    security(("customer" = [])),
    responses(
        (status = 201, description = "The trial subscription", body = MySubscriptionView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Trial already used (by this account or Telegram account), or a subscription is active", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/trial/activate")]
pub(crate) async fn activate_trial(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<HttpResponse, ApiError> {
    let subscription = activate(&state, auth.id).await?;
    Ok(HttpResponse::Created().json(MySubscriptionView::from(&subscription)))
}

/// Starts the customer's free trial (the HTTP route and the bot's gRPC call): once per customer and per
/// Telegram account, provisioned and announced through the outbox in the same transaction.
pub(crate) async fn activate(
    state: &AppState,
    customer_id: CustomerId,
) -> Result<Subscription, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    // Serialises a customer's concurrent activations; the unique indexes catch the rest (Telegram).
    let customer = Customers::on(&txn).lock(customer_id).await?.customer;
    if let Some(reason) = unavailable_because(&txn, customer_id, now).await? {
        return Err(ApiError::new(ErrorCode::Conflict, reason));
    }
    let subscription = Subscription::start(
        customer_id,
        None,
        state.config.trial.days,
        trial_traffic(state),
        None,
        now,
    )?;
    let trial = Trial {
        customer_id,
        telegram_id: customer.telegram_id,
        subscription_id: subscription.id,
        activated_at: now,
        expires_at: subscription.expires_at,
    };
    Trials::on(&txn)
        .record(&trial)
        .await
        .map_err(trial_conflict)?;
    Subscriptions::on(&txn).create(&subscription).await?;
    outbox_provision(&txn, &subscription, now).await?;
    cybervpn_jobs::outbox::notify_customer_in(
        &txn,
        &format!("trial_started:{}", customer_id.as_uuid()),
        customer_id,
        cybervpn_domain::NoticeKind::TrialStarted,
        &[(
            "until",
            subscription
                .expires_at
                .format("%Y-%m-%d %H:%M UTC")
                .to_string(),
        )],
        now,
    )
    .await?;
    audit::commit(txn).await.map_err(|err| {
        // A racing activation with the same Telegram account may surface at commit on some engines.
        if err.code() == ErrorCode::Conflict {
            ApiError::new(ErrorCode::Conflict, "the free trial was already used")
        } else {
            err
        }
    })?;
    Ok(subscription)
}

/// A unique-index hit on `trials` in words the customer understands.
fn trial_conflict(err: DbError) -> ApiError {
    match err {
        DbError::Domain(DomainError::Conflict { what }) => ApiError::new(
            ErrorCode::Conflict,
            format!("the free trial was already used: a {what} exists"),
        ),
        other => other.into(),
    }
}
