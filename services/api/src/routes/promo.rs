//! Promo codes: customers check one before paying; staff create, change and switch them off.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_commerce::checkout;
use cybervpn_db::Promos;
use cybervpn_domain::{
    Currency, Money, PaymentProvider, PlanId, PromoBenefit, PromoCode, PromoCodeId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, CustomerAuth, perm},
    error::{ApiError, Problem},
    routes::audit::{self, Change, RequestTag},
    state::AppState,
};

/// What a promo code gives, as sent and received.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum BenefitView {
    /// A share of the price off.
    PercentOff {
        /// 1–99.
        percent: u8,
    },
    /// A fixed amount off prices in one currency.
    AmountOff {
        /// Minor units (cents, kopecks, Stars).
        amount_minor: i64,
        /// `USD`, `RUB` or `XTR`.
        #[schema(value_type = String, example = "USD")]
        currency: Currency,
    },
    /// Extra days at the full price.
    BonusDays {
        /// 1–365.
        days: u32,
    },
}

impl From<PromoBenefit> for BenefitView {
    fn from(benefit: PromoBenefit) -> Self {
        match benefit {
            PromoBenefit::PercentOff { percent } => Self::PercentOff { percent },
            PromoBenefit::AmountOff { amount } => Self::AmountOff {
                amount_minor: amount.amount_minor(),
                currency: amount.currency(),
            },
            PromoBenefit::BonusDays { days } => Self::BonusDays { days },
        }
    }
}

impl TryFrom<BenefitView> for PromoBenefit {
    type Error = ApiError;

    fn try_from(view: BenefitView) -> Result<Self, ApiError> {
        let benefit = match view {
            BenefitView::PercentOff { percent } => Self::PercentOff { percent },
            BenefitView::AmountOff {
                amount_minor,
                currency,
            } => Self::AmountOff {
                amount: Money::new(amount_minor, currency)?,
            },
            BenefitView::BonusDays { days } => Self::BonusDays { days },
        };
        benefit.validate()?;
        Ok(benefit)
    }
}

/// A customer's check of a promo code, optionally against the plan they want.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidatePromoRequest {
    /// The code as typed (case does not matter).
    #[schema(example = "WELCOME10")]
    code: String,
    /// Price this plan with the code.
    plan_id: Option<uuid::Uuid>,
    /// Currency of that price: `USD`, `RUB` or `XTR`; defaults to the provider's, else USD.
    #[schema(value_type = Option<String>, example = "USD")]
    currency: Option<Currency>,
    /// The gateway the customer will pay through (decides the default currency).
    #[schema(value_type = Option<String>, example = "cryptobot")]
    provider: Option<PaymentProvider>,
}

/// A plan's price with the code applied.
#[derive(Serialize, ToSchema)]
pub(crate) struct PricedView {
    plan_id: uuid::Uuid,
    /// Before the code, in minor units.
    list_amount_minor: i64,
    /// What the customer pays, in minor units.
    amount_minor: i64,
    currency: &'static str,
    /// Days the purchase adds.
    days: u32,
}

/// A promo code the customer may use.
#[derive(Serialize, ToSchema)]
pub(crate) struct ValidPromoView {
    /// The code, normalised.
    code: String,
    benefit: BenefitView,
    /// The only plan it applies to, if restricted.
    plan_id: Option<uuid::Uuid>,
    /// Usable until then.
    valid_until: Option<DateTime<Utc>>,
    /// The plan priced with it, when a plan was named.
    price: Option<PricedView>,
}

/// Checks a promo code for the signed-in customer: 200 when it can be used, a problem saying why not otherwise.
#[utoipa::path(
    tag = "payments",
    security(("customer" = [])),
    request_body = ValidatePromoRequest,
    responses(
        (status = 200, description = "The code can be used", body = ValidPromoView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such code (or plan)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Expired, used up, already used by you, or not for this plan or currency", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/promo/validate")]
pub(crate) async fn validate_promo(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    request: web::Json<ValidatePromoRequest>,
) -> Result<web::Json<ValidPromoView>, ApiError> {
    let request = request.into_inner();
    let now = Utc::now();
    let conn = state.db.conn();
    let (promo, price) = match request.plan_id {
        Some(plan) => {
            let currency = match request.provider {
                Some(provider) => checkout::currency_for(provider, request.currency)?,
                None => request.currency.unwrap_or(Currency::Usd),
            };
            let quote = checkout::quote(
                conn,
                auth.id,
                PlanId::from_uuid(plan),
                currency,
                Some(&request.code),
                now,
            )
            .await?;
            let price = PricedView {
                plan_id: plan,
                list_amount_minor: quote.list_price.amount_minor(),
                amount_minor: quote.price.amount_minor(),
                currency: quote.price.currency().as_str(),
                days: quote.days,
            };
            let promo = quote
                .promo
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("quote lost its promo code")))?;
            (promo, Some(price))
        }
        None => (
            checkout::usable_promo(conn, auth.id, &request.code, now).await?,
            None,
        ),
    };
    Ok(web::Json(ValidPromoView {
        code: promo.code,
        benefit: promo.benefit.into(),
        plan_id: promo.plan_id.map(|id| id.as_uuid()),
        valid_until: promo.valid_until,
        price,
    }))
}

/// A promo code as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PromoView {
    id: uuid::Uuid,
    code: String,
    benefit: BenefitView,
    plan_id: Option<uuid::Uuid>,
    /// Uses allowed; unlimited when `null`.
    max_uses: Option<u32>,
    /// Payments holding or having used it.
    used_count: u32,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&PromoCode> for PromoView {
    fn from(promo: &PromoCode) -> Self {
        Self {
            id: promo.id.as_uuid(),
            code: promo.code.clone(),
            benefit: promo.benefit.into(),
            plan_id: promo.plan_id.map(|id| id.as_uuid()),
            max_uses: promo.max_uses,
            used_count: promo.used_count,
            valid_from: promo.valid_from,
            valid_until: promo.valid_until,
            is_active: promo.is_active,
            created_at: promo.created_at,
            updated_at: promo.updated_at,
        }
    }
}

/// One page of promo codes.
#[derive(Serialize, ToSchema)]
pub(crate) struct PromoPage {
    /// Newest first.
    items: Vec<PromoView>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Which page of promo codes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PromoQuery {
    /// Codes per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

/// Lists promo codes, newest first.
#[utoipa::path(
    tag = "admin",
    params(PromoQuery),
    security(("staff" = ["manage_promo_codes"])),
    responses(
        (status = 200, description = "A page of promo codes", body = PromoPage),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_promo_codes`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/promo-codes")]
pub(crate) async fn list_promo_codes(
    Authorized(_staff, query): Authorized<perm::ManagePromoCodes, web::Query<PromoQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<PromoPage>, ApiError> {
    let limit = audit::page_size(query.limit.as_deref())?;
    let before = audit::cursor("before", query.before.as_deref())?.map(PromoCodeId::from_uuid);
    let rows = state.db.promos().list(before, limit + 1).await?;
    let (rows, next_cursor) = audit::paginate(rows, limit, |promo| promo.id.as_uuid());
    Ok(web::Json(PromoPage {
        items: rows.iter().map(PromoView::from).collect(),
        next_cursor,
    }))
}

/// One promo code.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Promo code id")),
    security(("staff" = ["manage_promo_codes"])),
    responses(
        (status = 200, description = "The promo code", body = PromoView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_promo_codes`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such promo code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/promo-codes/{id}")]
pub(crate) async fn get_promo_code(
    Authorized(_staff, id): Authorized<perm::ManagePromoCodes, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<PromoView>, ApiError> {
    let promo = state
        .db
        .promos()
        .get(PromoCodeId::from_uuid(id.into_inner()))
        .await?;
    Ok(web::Json(PromoView::from(&promo)))
}

/// A new promo code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePromoRequest {
    /// 3–32 letters, digits, `_` or `-`; stored upper case.
    #[schema(example = "WELCOME10")]
    code: String,
    benefit: BenefitView,
    /// Restrict it to one plan.
    plan_id: Option<uuid::Uuid>,
    /// Uses allowed in all; unlimited when absent.
    #[schema(minimum = 1)]
    max_uses: Option<u32>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    /// Usable at once; `true` when absent.
    is_active: Option<bool>,
}

/// Creates a promo code.
#[utoipa::path(
    tag = "admin",
    request_body = CreatePromoRequest,
    security(("staff" = ["manage_promo_codes"])),
    responses(
        (status = 201, description = "Created", body = PromoView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_promo_codes`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid code, benefit, limit or window", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/promo-codes")]
pub(crate) async fn create_promo_code(
    Authorized(staff, body): Authorized<perm::ManagePromoCodes, web::Json<CreatePromoRequest>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let promo = PromoCode {
        id: PromoCodeId::new(),
        code: PromoCode::normalize(&body.code)?,
        benefit: body.benefit.try_into()?,
        plan_id: body.plan_id.map(PlanId::from_uuid),
        max_uses: body.max_uses,
        used_count: 0,
        valid_from: body.valid_from.map(|t| t.trunc_subsecs(6)),
        valid_until: body.valid_until.map(|t| t.trunc_subsecs(6)),
        is_active: body.is_active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    create(&state, &staff.account, &request, &promo).await?;
    let view = PromoView::from(&promo);
    Ok(HttpResponse::Created().json(view))
}

/// Stores a new promo code made by `staff`, with its audit entry.
pub(crate) async fn create(
    state: &AppState,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    promo: &PromoCode,
) -> Result<(), ApiError> {
    promo.validate()?;
    let txn = audit::begin(&state.db).await?;
    if let Some(plan) = promo.plan_id {
        cybervpn_db::Plans::on(&txn).get(plan).await?;
    }
    Promos::on(&txn).create(promo).await?;
    let change = Change {
        action: "promo_code.create",
        target_kind: "promo_code",
        target_id: promo.id.as_uuid(),
        before: None,
        after: Some(audit::snapshot(&PromoView::from(promo))?),
    };
    audit::record(&txn, staff, request, change, promo.created_at).await?;
    audit::commit(txn).await
}

/// Switches a promo code off (with its audit entry); false if it was off already.
pub(crate) async fn deactivate(
    state: &AppState,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    id: PromoCodeId,
) -> Result<bool, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let before = Promos::on(&txn).get(id).await?;
    if !before.is_active {
        return Ok(false);
    }
    let mut after = before.clone();
    after.is_active = false;
    after.updated_at = now;
    Promos::on(&txn).save(&after).await?;
    save_change(
        &txn,
        staff,
        request,
        "promo_code.deactivate",
        &before,
        &after,
        now,
    )
    .await?;
    audit::commit(txn).await?;
    Ok(true)
}

/// Changes to a promo code; absent fields stay. The code and its benefit never change (create another).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePromoRequest {
    /// Uses allowed in all (not below the uses already taken).
    #[schema(minimum = 1)]
    max_uses: Option<u32>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    /// `false` switches it off, `true` on again.
    is_active: Option<bool>,
}

/// Path and body of the update route, extracted after authorization.
type UpdatePromoParts = (web::Path<uuid::Uuid>, web::Json<UpdatePromoRequest>);

/// Changes a promo code's limits, window or state.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Promo code id")),
    request_body = UpdatePromoRequest,
    security(("staff" = ["manage_promo_codes"])),
    responses(
        (status = 200, description = "The updated promo code", body = PromoView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_promo_codes`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such promo code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or window", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/admin/promo-codes/{id}")]
pub(crate) async fn update_promo_code(
    Authorized(staff, parts): Authorized<perm::ManagePromoCodes, UpdatePromoParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<PromoView>, ApiError> {
    let (id, body) = parts;
    let body = body.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let before = Promos::on(&txn).get(PromoCodeId::from_uuid(*id)).await?;
    let mut after = before.clone();
    if let Some(max) = body.max_uses {
        if max < before.used_count {
            return Err(ApiError::invalid_field(
                "max_uses",
                format!(
                    "must be at least the {} uses already taken",
                    before.used_count
                ),
            ));
        }
        after.max_uses = Some(max);
    }
    after.valid_from = body
        .valid_from
        .map(|t| t.trunc_subsecs(6))
        .or(before.valid_from);
    after.valid_until = body
        .valid_until
        .map(|t| t.trunc_subsecs(6))
        .or(before.valid_until);
    after.is_active = body.is_active.unwrap_or(before.is_active);
    after.validate()?;
    if after == before {
        return Ok(web::Json(PromoView::from(&after)));
    }
    after.updated_at = now;
    Promos::on(&txn).save(&after).await?;
    save_change(
        &txn,
        &staff.account,
        &request,
        "promo_code.update",
        &before,
        &after,
        now,
    )
    .await?;
    audit::commit(txn).await?;
    Ok(web::Json(PromoView::from(&after)))
}

/// Switches a promo code off: it can no longer be used, but payments that used it keep their price.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Promo code id")),
    security(("staff" = ["manage_promo_codes"])),
    responses(
        (status = 204, description = "Switched off"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_promo_codes`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such promo code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/admin/promo-codes/{id}")]
pub(crate) async fn deactivate_promo_code(
    Authorized(staff, id): Authorized<perm::ManagePromoCodes, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    deactivate(
        &state,
        &staff.account,
        &request,
        PromoCodeId::from_uuid(*id),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn save_change(
    txn: &cybervpn_db::DatabaseTransaction,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    action: &'static str,
    before: &PromoCode,
    after: &PromoCode,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let change = Change {
        action,
        target_kind: "promo_code",
        target_id: after.id.as_uuid(),
        before: Some(audit::snapshot(&PromoView::from(before))?),
        after: Some(audit::snapshot(&PromoView::from(after))?),
    };
    audit::record(txn, staff, request, change, now).await
}
