//! The public plan catalogue.

use actix_web::{HttpResponse, get, http::header, post, web};
use cybervpn_domain::{Currency, DomainError, Money, Plan, PlanId};
use serde::{Deserialize, Serialize};
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
    let body = state
        .plans
        .get_or_refresh(|| async {
            let plans = state.db.plans().list_active().await?;
            let list = PlanList {
                plans: plans.into_iter().map(PlanView::from).collect(),
            };
            serde_json::to_vec(&list)
                .map(web::Bytes::from)
                .map_err(ApiError::internal)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.plans.ttl().as_secs()),
        ))
        .body(body))
}

/// Fetches one plan, on sale or not, so links to retired plans still resolve.
#[utoipa::path(
    tag = "plans",
    params(("id" = uuid::Uuid, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 404, description = "No such plan", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/plans/{id}")]
pub(crate) async fn get_plan(
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<PlanView>, ApiError> {
    let plan = state.db.plans().get(PlanId::from_uuid(*id)).await?;
    Ok(web::Json(plan.into()))
}

/// What a customer asks a price for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuoteRequest {
    /// Plan to price.
    plan_id: uuid::Uuid,
    /// Currency to pay in: `USD`, `RUB` or `XTR`.
    #[schema(value_type = String, example = "USD")]
    currency: Currency,
}

/// The price of one plan in one currency.
#[derive(Serialize, ToSchema)]
pub(crate) struct Quote {
    /// Plan priced.
    plan_id: uuid::Uuid,
    /// Its code.
    code: String,
    /// The price.
    price: PriceView,
}

/// Prices a plan on sale in the requested currency.
#[utoipa::path(
    tag = "plans",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The price", body = Quote),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan on sale", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong field types, or no price in that currency", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/plans/quote")]
pub(crate) async fn quote(
    state: web::Data<AppState>,
    request: web::Json<QuoteRequest>,
) -> Result<web::Json<Quote>, ApiError> {
    let QuoteRequest { plan_id, currency } = request.into_inner();
    let plan = state.db.plans().get(PlanId::from_uuid(plan_id)).await?;
    if !plan.is_active {
        return Err(DomainError::NotFound { entity: "plan" }.into());
    }
    let price = plan.price_in(currency).ok_or_else(|| {
        DomainError::invalid(
            "currency",
            format!("plan {} has no price in {currency}", plan.code),
        )
    })?;
    Ok(web::Json(Quote {
        plan_id,
        price: PriceView::from(&price),
        code: plan.code,
    }))
}
