//! Plan catalogue administration: list every plan, create, change, retire. Every change empties the cached
//! public catalogue, so `GET /api/v1/plans` on this replica shows it at once.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::Utc;
use cybervpn_db::Plans;
use cybervpn_domain::{
    Currency, Money, Plan, PlanDuration, PlanId, PlanTier, StaffAccount, TrafficLimit,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Authorized, Staff, perm},
    error::{ApiError, Problem},
    routes::{
        audit::{self, Change, RequestTag},
        plans::PlanView,
    },
    state::AppState,
};

/// Path and body of the update route, extracted after authorization.
type UpdatePlanParts = (web::Path<uuid::Uuid>, web::Json<UpdatePlanRequest>);

/// Gap left between a new plan's position and the last one, so plans can be slotted in between.
const SORT_STEP: i32 = 10;

/// A plan as staff see it: the public view plus whether it is on sale and where it is listed.
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminPlanView {
    #[serde(flatten)]
    plan: PlanView,
    /// Whether the plan is on sale (listed in the public catalogue).
    is_active: bool,
    /// Position in listings, ascending.
    sort_order: i32,
}

impl From<Plan> for AdminPlanView {
    fn from(plan: Plan) -> Self {
        Self {
            is_active: plan.is_active,
            sort_order: plan.sort_order,
            plan: plan.into(),
        }
    }
}

/// Every plan, on sale or retired.
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminPlanList {
    /// In display order.
    plans: Vec<AdminPlanView>,
}

/// A price in one currency.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceInput {
    /// `USD`, `RUB` or `XTR` (Telegram Stars).
    #[schema(example = "USD")]
    pub(crate) currency: String,
    /// Amount in minor units (cents, kopecks, stars), not negative.
    #[schema(example = 1299)]
    pub(crate) amount_minor: i64,
}

/// A new plan; its code is `<tier>_<duration_days>` and must not exist yet.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePlanRequest {
    /// `basic`, `pro`, `ultra` or `cyber`.
    #[schema(example = "pro")]
    pub(crate) tier: String,
    /// 30, 90, 180 or 365.
    #[schema(example = 90)]
    pub(crate) duration_days: i64,
    /// At least one, at most one per currency.
    pub(crate) prices: Vec<PriceInput>,
    /// Traffic allowance in bytes; `null` (or absent) is unlimited.
    #[schema(minimum = 1)]
    pub(crate) traffic_limit_bytes: Option<i64>,
    /// Devices that may connect at once, 1–32767.
    #[schema(minimum = 1, maximum = 32767)]
    pub(crate) device_limit: i64,
    /// Position in listings; after every existing plan when absent.
    pub(crate) sort_order: Option<i32>,
    /// On sale at once; `true` when absent.
    pub(crate) is_active: Option<bool>,
}

/// Changes to a plan; absent fields stay as they are. Tier and duration never change (create another plan).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePlanRequest {
    /// Replaces the whole price list.
    pub(crate) prices: Option<Vec<PriceInput>>,
    /// Traffic allowance in bytes; `null` makes the plan unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub(crate) traffic_limit_bytes: Option<Option<i64>>,
    /// Devices that may connect at once, 1–32767.
    #[schema(minimum = 1, maximum = 32767)]
    pub(crate) device_limit: Option<i64>,
    /// `false` retires the plan, `true` puts it on sale again.
    pub(crate) is_active: Option<bool>,
    /// Position in listings.
    pub(crate) sort_order: Option<i32>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`, through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_prices(input: Vec<PriceInput>) -> Result<Vec<Money>, ApiError> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, price)| {
            let currency: Currency = price.currency.parse().map_err(|_| {
                ApiError::invalid_field(
                    "prices",
                    format!("prices[{i}].currency must be one of: USD, RUB, XTR"),
                )
            })?;
            Money::new(price.amount_minor, currency).map_err(|_| {
                ApiError::invalid_field(
                    "prices",
                    format!("prices[{i}].amount_minor must not be negative"),
                )
            })
        })
        .collect()
}

fn parse_traffic_limit(bytes: Option<i64>) -> Result<TrafficLimit, ApiError> {
    let Some(bytes) = bytes else {
        return Ok(TrafficLimit::Unlimited);
    };
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b > 0)
        .map(|b| TrafficLimit::from_optional_bytes(Some(b)))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "traffic_limit_bytes",
                "must be positive, or null for unlimited",
            )
        })
}

fn parse_device_limit(devices: i64) -> Result<u16, ApiError> {
    u16::try_from(devices)
        .ok()
        .filter(|d| (1..=i16::MAX.unsigned_abs()).contains(d))
        .ok_or_else(|| ApiError::invalid_field("device_limit", "must be from 1 to 32767"))
}

/// Lists every plan, retired ones included.
#[utoipa::path(
    tag = "admin",
    security(("staff" = ["view_plans"])),
    responses(
        (status = 200, description = "Every plan", body = AdminPlanList),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_plans`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/plans")]
pub(crate) async fn list_all_plans(
    _staff: Staff<perm::ViewPlans>,
    state: web::Data<AppState>,
) -> Result<web::Json<AdminPlanList>, ApiError> {
    let plans = state.db.plans().list_all().await?;
    Ok(web::Json(AdminPlanList {
        plans: plans.into_iter().map(AdminPlanView::from).collect(),
    }))
}

/// Adds a plan to the catalogue.
#[utoipa::path(
    tag = "admin",
    request_body = CreatePlanRequest,
    security(("staff" = ["manage_plans"])),
    responses(
        (status = 201, description = "Created", body = AdminPlanView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_plans`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A plan with this tier and duration exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid tier, duration, price or limit", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/plans")]
pub(crate) async fn create_plan(
    Authorized(staff, body): Authorized<perm::ManagePlans, web::Json<CreatePlanRequest>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let plan = create(&state, &staff.account, &request, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(AdminPlanView::from(plan)))
}

/// Changes a plan's prices (the whole list), limits, position or sale status.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Plan id")),
    request_body = UpdatePlanRequest,
    security(("staff" = ["manage_plans"])),
    responses(
        (status = 200, description = "The updated plan", body = AdminPlanView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_plans`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid price or limit", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/plans/{id}")]
pub(crate) async fn update_plan(
    Authorized(staff, parts): Authorized<perm::ManagePlans, UpdatePlanParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<AdminPlanView>, ApiError> {
    let (id, body) = parts;
    let after = update(
        &state,
        &staff.account,
        &request,
        PlanId::from_uuid(*id),
        body.into_inner(),
    )
    .await?;
    Ok(web::Json(after.into()))
}

/// Retires a plan: it leaves the public catalogue and cannot be bought, but stays readable by id for
/// existing subscriptions. Retiring a retired plan changes nothing.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Plan id")),
    security(("staff" = ["manage_plans"])),
    responses(
        (status = 204, description = "Retired"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_plans`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/plans/{id}")]
pub(crate) async fn deactivate_plan(
    Authorized(staff, id): Authorized<perm::ManagePlans, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    deactivate(&state, &staff.account, &request, PlanId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Retires a plan for `staff` (with its audit entry); false if it was retired already.
pub(crate) async fn deactivate(
    state: &AppState,
    staff: &StaffAccount,
    request: &RequestTag,
    id: PlanId,
) -> Result<bool, ApiError> {
    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let before = Plans::on(&txn).lock(id).await?;
    if !before.is_active {
        return Ok(false);
    }
    let mut after = before.clone();
    after.is_active = false;
    save(
        &txn,
        staff,
        request,
        "plan.deactivate",
        &before,
        &after,
        now,
    )
    .await?;
    audit::commit(txn).await?;
    state.plans.clear();
    Ok(true)
}

/// Adds a plan made by `staff` to the catalogue, with its audit entry.
pub(crate) async fn create(
    state: &AppState,
    staff: &StaffAccount,
    request: &RequestTag,
    body: CreatePlanRequest,
) -> Result<Plan, ApiError> {
    let tier: PlanTier = body.tier.parse()?;
    let duration = u16::try_from(body.duration_days)
        .ok()
        .and_then(|days| PlanDuration::try_from(days).ok())
        .ok_or_else(|| ApiError::invalid_field("duration_days", "must be 30, 90, 180 or 365"))?;
    let prices = parse_prices(body.prices)?;
    let traffic = parse_traffic_limit(body.traffic_limit_bytes)?;
    let devices = parse_device_limit(body.device_limit)?;

    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let sort_order = match body.sort_order {
        Some(order) => order,
        None => Plans::on(&txn)
            .list_all()
            .await?
            .iter()
            .map(|p| p.sort_order)
            .max()
            .map_or(SORT_STEP, |last| last.saturating_add(SORT_STEP)),
    };
    let plan = Plan::new(
        PlanId::new(),
        tier,
        duration,
        prices,
        traffic,
        devices,
        body.is_active.unwrap_or(true),
        sort_order,
    )?;
    Plans::on(&txn).create(&plan, now).await?;
    let change = Change {
        action: "plan.create",
        target_kind: "plan",
        target_id: plan.id.as_uuid(),
        before: None,
        after: Some(audit::snapshot(&AdminPlanView::from(plan.clone()))?),
    };
    audit::record(&txn, staff, request, change, now).await?;
    audit::commit(txn).await?;
    state.plans.clear();
    Ok(plan)
}

/// Changes a plan for `staff` (absent fields stay), with its audit entry.
pub(crate) async fn update(
    state: &AppState,
    staff: &StaffAccount,
    request: &RequestTag,
    id: PlanId,
    body: UpdatePlanRequest,
) -> Result<Plan, ApiError> {
    let prices = body.prices.map(parse_prices).transpose()?;
    let traffic = body
        .traffic_limit_bytes
        .map(parse_traffic_limit)
        .transpose()?;
    let devices = body.device_limit.map(parse_device_limit).transpose()?;

    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let before = Plans::on(&txn).lock(id).await?;
    let after = Plan::new(
        before.id,
        before.tier,
        before.duration,
        prices.unwrap_or_else(|| before.prices().to_vec()),
        traffic.unwrap_or(before.traffic_limit),
        devices.unwrap_or(before.device_limit),
        body.is_active.unwrap_or(before.is_active),
        body.sort_order.unwrap_or(before.sort_order),
    )?;
    if after == before {
        return Ok(after);
    }
    save(&txn, staff, request, "plan.update", &before, &after, now).await?;
    audit::commit(txn).await?;
    state.plans.clear();
    Ok(after)
}

/// Stores a changed plan and its audit entry in `txn`.
async fn save(
    txn: &cybervpn_db::DatabaseTransaction,
    staff: &StaffAccount,
    request: &RequestTag,
    action: &'static str,
    before: &Plan,
    after: &Plan,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    Plans::on(txn).update(after, now).await?;
    let change = Change {
        action,
        target_kind: "plan",
        target_id: after.id.as_uuid(),
        before: Some(audit::snapshot(&AdminPlanView::from(before.clone()))?),
        after: Some(audit::snapshot(&AdminPlanView::from(after.clone()))?),
    };
    audit::record(txn, staff, request, change, now).await
}
