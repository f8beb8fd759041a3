//! The public plan catalogue.

use actix_web::{HttpResponse, get, http::header, web};
use cybervpn_domain::{Money, Plan};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ApiError, state::AppState};

/// The plans on sale.
#[derive(Serialize, ToSchema)]
pub(crate) struct PlanList {
    /// Plans in display order.
    plans: Vec<PlanView>,
}

/// A plan as customers see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PlanView {
    /// Plan id, used when buying.
    id: uuid::Uuid,
    /// Stable code, `<tier>_<days>`.
    #[schema(example = "pro_90")]
    code: String,
    /// Tier: `basic`, `pro`, `ultra` or `cyber`.
    #[schema(example = "pro")]
    tier: &'static str,
    /// Days of access one purchase gives: 30, 90, 180 or 365.
    #[schema(example = 90)]
    duration_days: u16,
    /// Traffic allowance in bytes; `null` means unlimited.
    traffic_limit_bytes: Option<u64>,
    /// Devices that may connect at once.
    device_limit: u16,
    /// One price per currency.
    prices: Vec<PriceView>,
}

/// A price in one currency.
#[derive(Serialize, ToSchema)]
pub(crate) struct PriceView {
    /// ISO-4217 code, or `XTR` for Telegram Stars.
    #[schema(example = "USD")]
    currency: &'static str,
    /// Amount in minor units (cents, kopecks, stars).
    #[schema(example = 1887)]
    amount_minor: i64,
    /// Amount in major units as a decimal string, for display.
    #[schema(example = "18.87")]
    amount: String,
}

impl From<&Money> for PriceView {
    fn from(money: &Money) -> Self {
        Self {
            currency: money.currency().as_str(),
            amount_minor: money.amount_minor(),
            amount: money.to_major_string(),
        }
    }
}

impl From<Plan> for PlanView {
    fn from(plan: Plan) -> Self {
        Self {
            id: plan.id.as_uuid(),
            tier: plan.tier.as_str(),
            duration_days: plan.duration.days(),
            traffic_limit_bytes: plan.traffic_limit.as_optional_bytes(),
            device_limit: plan.device_limit,
            prices: plan.prices().iter().map(PriceView::from).collect(),
            code: plan.code,
        }
    }
}

/// Lists the plans on sale with their prices.
#[utoipa::path(
    tag = "plans",
    responses(
        (status = 200, description = "Active plans", body = PlanList),
        (status = 503, description = "Database unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/plans")]
pub(crate) async fn list_plans(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = match state.plans.get() {
        Some(body) => body,
        None => {
            let plans = state.db.plans().list_active().await?;
            let list = PlanList {
                plans: plans.into_iter().map(PlanView::from).collect(),
            };
            let body = web::Bytes::from(serde_json::to_vec(&list).map_err(ApiError::internal)?);
            state.plans.put(body.clone());
            body
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.plans.ttl().as_secs()),
        ))
        .body(body))
}
