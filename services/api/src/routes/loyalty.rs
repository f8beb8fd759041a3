//! The loyalty program as the customer sees it — their level, progress, perks and the bonuses granted — and the
//! same view of any customer for staff (support sees who gets priority).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use cybervpn_commerce::LoyaltyStatus;
use serde::Serialize;
use utoipa::ToSchema;

use cybervpn_domain::CustomerId;

use crate::{
    auth::{Authorized, CustomerAuth, perm},
    error::{ApiError, Problem},
    state::AppState,
};

/// The perks of a level.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoyaltyPerks {
    /// Priority support (Gold and Platinum).
    priority_support: bool,
    /// Early access to new features (Platinum).
    early_access: bool,
    /// The premium nodes (Platinum).
    premium_squad: bool,
}

/// A level bonus granted once.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoyaltyRewardView {
    /// `silver`, `gold` or `platinum`.
    level: String,
    /// Bonus days added to the subscription.
    days: u32,
    /// The payment that reached the level.
    payment_id: uuid::Uuid,
    granted_at: DateTime<Utc>,
}

/// The customer's loyalty standing.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoyaltyView {
    /// `bronze`, `silver`, `gold` or `platinum`.
    level: String,
    /// Paid days in the current streak (a loyalty month is 30 paid days).
    tenure_days: u32,
    /// The next level, absent at Platinum.
    next_level: Option<String>,
    /// Paid days still needed for the next level.
    days_to_next_level: Option<u32>,
    /// When the paid coverage ends (or ended).
    paid_until: Option<DateTime<Utc>>,
    /// Until when the level is kept without a renewal (14 days after the paid coverage); absent once the
    /// streak is broken.
    grace_until: Option<DateTime<Utc>>,
    /// True when the paid coverage ended and only the grace period keeps the level.
    in_grace: bool,
    perks: LoyaltyPerks,
    /// Bonuses granted, lowest level first.
    rewards: Vec<LoyaltyRewardView>,
}

impl From<LoyaltyStatus> for LoyaltyView {
    fn from(status: LoyaltyStatus) -> Self {
        let level = status.level;
        Self {
            level: level.as_str().to_owned(),
            tenure_days: status.tenure_days,
            next_level: status.next.map(|(next, _)| next.as_str().to_owned()),
            days_to_next_level: status.next.map(|(_, days)| days),
            paid_until: status.paid_until,
            grace_until: status.grace_until,
            in_grace: status.in_grace,
            perks: LoyaltyPerks {
                priority_support: level.priority_support(),
                early_access: level.early_access(),
                premium_squad: level.premium_squad(),
            },
            rewards: status
                .rewards
                .into_iter()
                .map(|reward| LoyaltyRewardView {
                    level: reward.level.as_str().to_owned(),
                    days: reward.days,
                    payment_id: reward.payment_id.as_uuid(),
                    granted_at: reward.granted_at,
                })
                .collect(),
        }
    }
}

/// The signed-in customer's loyalty level, progress to the next one, perks and bonuses granted.
#[utoipa::path(
    tag = "loyalty",
    security(("customer" = [])),
    responses(
        (status = 200, description = "Level, progress, grace period, perks and bonuses", body = LoyaltyView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/loyalty")]
pub(crate) async fn my_loyalty(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<LoyaltyView>, ApiError> {
    let status = cybervpn_commerce::loyalty_status(&state.db, auth.id, Utc::now()).await?;
    Ok(web::Json(status.into()))
}

/// A customer's loyalty standing, for staff (priority support is for Gold and Platinum).
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["view_customers"])),
    responses(
        (status = 200, description = "Level, progress, grace period, perks and bonuses", body = LoyaltyView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users/{id}/loyalty")]
pub(crate) async fn customer_loyalty(
    Authorized(_staff, id): Authorized<perm::ViewCustomers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<LoyaltyView>, ApiError> {
    let customer = CustomerId::from_uuid(id.into_inner());
    state.db.customers().get(customer).await?;
    let status = cybervpn_commerce::loyalty_status(&state.db, customer, Utc::now()).await?;
    Ok(web::Json(status.into()))
}
