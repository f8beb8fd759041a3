//! Invites: customers list the codes their purchases earned and redeem a friend's code; staff set the rules per
//! tier, run promotions that multiply the codes, and issue or withdraw codes by hand.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_commerce::{RedeemError, Redeemed, redeem_invite};
use cybervpn_db::{InviteSearch, Invites, NewInvite};
use cybervpn_domain::{
    CustomerId, ErrorCode, Invite, InvitePromotion, InviteRefusal, InviteRule, InviteSource,
    InviteStatus, PlanTier, StaffAccount,
    invite::{new_invite_code, validate_free_days, validate_valid_days},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, CustomerAuth, Staff, perm},
    error::{ApiError, Problem},
    routes::{
        audit::{self, Change, RequestTag},
        customer_subscriptions::MySubscriptionView,
    },
    state::AppState,
};

/// An invite code as its owner (or staff) sees it.
#[derive(Serialize, ToSchema, Clone)]
pub(crate) struct InviteView {
    id: uuid::Uuid,
    /// 12 characters of base32.
    pub(crate) code: String,
    /// `available`, `used` or `expired`.
    #[schema(value_type = String, example = "available")]
    pub(crate) status: InviteStatus,
    /// The Telegram bot's `/start` parameter: `inv_<code>`.
    pub(crate) bot_start_parameter: String,
    /// Free days the friend gets.
    pub(crate) free_days: u32,
    /// Days the owner gets when the friend first pays.
    bonus_days: u32,
    /// Whether the owner got that bonus.
    bonus_paid: bool,
    pub(crate) expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    redeemed_at: Option<DateTime<Utc>>,
}

impl InviteView {
    fn new(invite: &Invite, now: DateTime<Utc>) -> Self {
        Self {
            id: invite.id,
            code: invite.code.clone(),
            status: invite.status_at(now),
            bot_start_parameter: format!("inv_{}", invite.code),
            free_days: invite.free_days,
            bonus_days: invite.bonus_days,
            bonus_paid: invite.bonus_paid_at.is_some(),
            expires_at: invite.expires_at,
            created_at: invite.created_at,
            redeemed_at: invite.redeemed_at,
        }
    }
}

/// The customer's invite codes and the free access they received from one.
#[derive(Serialize, ToSchema)]
pub(crate) struct MyInvitesView {
    /// Newest first.
    pub(crate) items: Vec<InviteView>,
    /// Codes still available.
    pub(crate) available: usize,
    /// When the customer redeemed a friend's code; `null` if never (each customer can once).
    pub(crate) received_at: Option<DateTime<Utc>>,
}

/// The customer's invite codes (earned with purchases or given by staff) and whether they redeemed one.
pub(crate) async fn mine(
    state: &AppState,
    customer: CustomerId,
) -> Result<MyInvitesView, ApiError> {
    let now = Utc::now();
    let invites = Invites::on(state.db.conn());
    let items: Vec<InviteView> = invites
        .owned_by(customer)
        .await?
        .iter()
        .map(|invite| InviteView::new(invite, now))
        .collect();
    Ok(MyInvitesView {
        available: items
            .iter()
            .filter(|i| i.status == InviteStatus::Available)
            .count(),
        received_at: invites
            .redeemed_by(customer)
            .await?
            .and_then(|i| i.redeemed_at),
        items,
    })
}

/// The signed-in customer's invite codes.
#[utoipa::path(
    tag = "invites",
    security(("customer" = [])),
    responses(
        (status = 200, description = "The customer's codes", body = MyInvitesView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/invites")]
pub(crate) async fn my_invites(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<MyInvitesView>, ApiError> {
    Ok(web::Json(mine(&state, auth.id).await?))
}

/// A code to redeem.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeemRequest {
    /// The code as typed (case, spaces, dashes and an `inv_` prefix do not matter).
    #[schema(example = "7K3M9Q2XHB4D")]
    code: String,
}

/// A redeemed code and the subscription it gave.
#[derive(Serialize, ToSchema)]
pub(crate) struct RedeemedView {
    /// Free days granted.
    free_days: u32,
    subscription: MySubscriptionView,
}

/// Redeems `code` for `customer` (the HTTP route and the bot's gRPC call).
pub(crate) async fn redeem(
    state: &AppState,
    customer: CustomerId,
    code: &str,
) -> Result<Redeemed, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    redeem_invite(&state.db, customer, code, now)
        .await
        .map_err(|err| match err {
            RedeemError::Refused(refusal) => refused(refusal),
            RedeemError::Db(err) => err.into(),
        })
}

/// A refusal as a problem: unknown 404, own code 422, used, expired or a second grant 409.
fn refused(refusal: InviteRefusal) -> ApiError {
    let message = refusal.to_string();
    match refusal {
        InviteRefusal::Unknown => ApiError::new(ErrorCode::NotFound, message),
        InviteRefusal::OwnCode => ApiError::invalid_field("code", message),
        InviteRefusal::Used | InviteRefusal::Expired | InviteRefusal::AlreadyGranted => {
            ApiError::new(ErrorCode::Conflict, message)
        }
    }
}

/// Redeems a friend's invite code: free days on the customer's subscription (or a new one), once per customer.
#[utoipa::path(
    tag = "invites",
    security(("customer" = [])),
    request_body = RedeemRequest,
    responses(
        (status = 200, description = "Redeemed: the free days and the subscription", body = RedeemedView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No invite has this code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code was used or has expired, or the customer already received free access from an invite", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The customer's own code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/invites/redeem")]
pub(crate) async fn redeem_code(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    body: web::Json<RedeemRequest>,
) -> Result<web::Json<RedeemedView>, ApiError> {
    let redeemed = redeem(&state, auth.id, &body.code).await?;
    Ok(web::Json(RedeemedView {
        free_days: redeemed.invite.free_days,
        subscription: MySubscriptionView::from(&redeemed.subscription),
    }))
}

/// A tier's invite rule.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleBody {
    /// Codes issued per purchase, 0–20 (0: none).
    codes_per_purchase: u32,
    /// Free days an invited friend gets, 7–30.
    free_days: u32,
    /// Days the inviter gets when the friend first pays, 0–30.
    bonus_days: u32,
    /// Days a code stays valid, 1–365.
    valid_days: u32,
}

/// A tier's rule as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleView {
    /// `basic`, `pro`, `ultra` or `cyber`.
    #[schema(value_type = String, example = "pro")]
    tier: PlanTier,
    #[serde(flatten)]
    rule: RuleBody,
}

impl From<&InviteRule> for RuleView {
    fn from(rule: &InviteRule) -> Self {
        Self {
            tier: rule.tier,
            rule: RuleBody {
                codes_per_purchase: rule.codes_per_purchase,
                free_days: rule.free_days,
                bonus_days: rule.bonus_days,
                valid_days: rule.valid_days,
            },
        }
    }
}

/// Every tier's invite rule.
#[utoipa::path(
    tag = "admin",
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 200, description = "The rules", body = Vec<RuleView>),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/invite-rules")]
pub(crate) async fn list_rules(
    _staff: Staff<perm::ManageInvites>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<RuleView>>, ApiError> {
    let rules = state.db.invites().rules().await?;
    Ok(web::Json(rules.iter().map(RuleView::from).collect()))
}

/// Path and body of the rule route, extracted after authorization.
type SetRuleParts = (web::Path<String>, web::Json<RuleBody>);

/// Sets a tier's invite rule (purchases from now on follow it; issued codes keep their terms).
#[utoipa::path(
    tag = "admin",
    params(("tier" = String, Path, description = "Plan tier: basic, pro, ultra or cyber")),
    request_body = RuleBody,
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown tier or a value out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/admin/invite-rules/{tier}")]
pub(crate) async fn set_rule(
    Authorized(staff, (tier, body)): Authorized<perm::ManageInvites, SetRuleParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<RuleView>, ApiError> {
    let tier: PlanTier = tier.parse()?;
    let rule = InviteRule {
        tier,
        codes_per_purchase: body.codes_per_purchase,
        free_days: body.free_days,
        bonus_days: body.bonus_days,
        valid_days: body.valid_days,
    };
    rule.validate()?;
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let invites = Invites::on(&txn);
    let before = invites.rule(tier).await?;
    invites.save_rule(&rule, now).await?;
    let view = RuleView::from(&rule);
    let change = Change {
        action: "invite_rule.update",
        target_kind: "invite_rule",
        target_id: uuid::Uuid::nil(),
        before: before
            .as_ref()
            .map(|rule| audit::snapshot(&RuleView::from(rule)))
            .transpose()?,
        after: Some(audit::snapshot(&view)?),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(web::Json(view))
}

/// A promotion: purchases in the window earn `multiplier` times the codes.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromotionBody {
    /// What staff call it, 1–100 characters.
    #[schema(example = "Black Friday ×2")]
    name: String,
    /// Only purchases of this tier; every tier when absent.
    #[schema(value_type = Option<String>, example = "pro")]
    tier: Option<PlanTier>,
    /// 2–10.
    multiplier: u32,
    starts_at: DateTime<Utc>,
    /// Exclusive; after `starts_at`.
    ends_at: DateTime<Utc>,
}

/// A promotion as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PromotionView {
    id: uuid::Uuid,
    #[serde(flatten)]
    promotion: PromotionBody,
}

impl From<&InvitePromotion> for PromotionView {
    fn from(p: &InvitePromotion) -> Self {
        Self {
            id: p.id,
            promotion: PromotionBody {
                name: p.name.clone(),
                tier: p.tier,
                multiplier: p.multiplier,
                starts_at: p.starts_at,
                ends_at: p.ends_at,
            },
        }
    }
}

/// Promotions running or to come.
#[utoipa::path(
    tag = "admin",
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 200, description = "Promotions that have not ended, soonest first", body = Vec<PromotionView>),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/invite-promotions")]
pub(crate) async fn list_promotions(
    _staff: Staff<perm::ManageInvites>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<PromotionView>>, ApiError> {
    let promotions = state.db.invites().promotions(Utc::now()).await?;
    Ok(web::Json(
        promotions.iter().map(PromotionView::from).collect(),
    ))
}

/// Starts (or schedules) a promotion.
#[utoipa::path(
    tag = "admin",
    request_body = PromotionBody,
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 201, description = "Created", body = PromotionView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, multiplier or window", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/invite-promotions")]
pub(crate) async fn create_promotion(
    Authorized(staff, body): Authorized<perm::ManageInvites, web::Json<PromotionBody>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let promotion = InvitePromotion {
        id: uuid::Uuid::now_v7(),
        name: body.name.trim().to_owned(),
        tier: body.tier,
        multiplier: body.multiplier,
        starts_at: body.starts_at.trunc_subsecs(6),
        ends_at: body.ends_at.trunc_subsecs(6),
    };
    promotion.validate()?;
    if promotion.ends_at <= now {
        return Err(ApiError::invalid_field("ends_at", "must be in the future"));
    }
    let view = PromotionView::from(&promotion);
    let txn = audit::begin(&state.db).await?;
    Invites::on(&txn).create_promotion(&promotion, now).await?;
    let change = Change {
        action: "invite_promotion.create",
        target_kind: "invite_promotion",
        target_id: promotion.id,
        before: None,
        after: Some(audit::snapshot(&view)?),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Ends a promotion now (deletes it).
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Promotion id")),
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such promotion", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/admin/invite-promotions/{id}")]
pub(crate) async fn delete_promotion(
    Authorized(staff, id): Authorized<perm::ManageInvites, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    if !Invites::on(&txn).delete_promotion(id).await? {
        return Err(ApiError::new(ErrorCode::NotFound, "promotion not found"));
    }
    let change = Change {
        action: "invite_promotion.delete",
        target_kind: "invite_promotion",
        target_id: id,
        before: None,
        after: None,
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Codes to issue by hand.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueRequest {
    /// How many, 1–100.
    count: u32,
    /// The customer who hands them out (and earns the bonus); absent for partners and testers outside.
    owner_id: Option<uuid::Uuid>,
    /// Free days each gives, 7–30.
    free_days: u32,
    /// Days the owner gets when a friend first pays, 0–30 (0 when absent).
    bonus_days: Option<u32>,
    /// Days the codes stay valid, 1–365.
    valid_days: u32,
    /// Who they are for, up to 200 characters.
    note: Option<String>,
}

/// Codes staff issued.
#[derive(Serialize, ToSchema)]
pub(crate) struct IssuedView {
    items: Vec<AdminInviteView>,
}

/// A code as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminInviteView {
    #[serde(flatten)]
    invite: InviteView,
    owner_id: Option<uuid::Uuid>,
    /// `purchase` or `staff`.
    #[schema(value_type = String, example = "staff")]
    source: InviteSource,
    note: Option<String>,
    redeemed_by: Option<uuid::Uuid>,
}

impl AdminInviteView {
    fn new(invite: &Invite, now: DateTime<Utc>) -> Self {
        Self {
            invite: InviteView::new(invite, now),
            owner_id: invite.owner_id.as_ref().map(CustomerId::as_uuid),
            source: invite.source,
            note: invite.note.clone(),
            redeemed_by: invite.redeemed_by.as_ref().map(CustomerId::as_uuid),
        }
    }
}

/// Issues codes by hand (partners, testers, goodwill).
#[utoipa::path(
    tag = "admin",
    request_body = IssueRequest,
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 201, description = "The codes", body = IssuedView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/invites")]
pub(crate) async fn issue_invites(
    Authorized(staff, body): Authorized<perm::ManageInvites, web::Json<IssueRequest>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let invites = issue(&state, &staff.account, &request, &body, now).await?;
    Ok(HttpResponse::Created().json(IssuedView {
        items: invites
            .iter()
            .map(|invite| AdminInviteView::new(invite, now))
            .collect(),
    }))
}

async fn issue(
    state: &AppState,
    staff: &StaffAccount,
    request: &RequestTag,
    body: &IssueRequest,
    now: DateTime<Utc>,
) -> Result<Vec<Invite>, ApiError> {
    if !(1..=100).contains(&body.count) {
        return Err(ApiError::invalid_field("count", "must be from 1 to 100"));
    }
    validate_free_days(body.free_days)?;
    validate_valid_days(body.valid_days)?;
    let bonus_days = body.bonus_days.unwrap_or(0);
    if bonus_days > 30 {
        return Err(ApiError::invalid_field(
            "bonus_days",
            "must be from 0 to 30",
        ));
    }
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "note",
            "must be at most 200 characters",
        ));
    }
    let owner = body.owner_id.map(CustomerId::from_uuid);
    let txn = audit::begin(&state.db).await?;
    if let Some(owner) = owner {
        cybervpn_db::Customers::on(&txn).get(owner).await?;
    }
    let new: Vec<NewInvite> = (0..body.count)
        .map(|_| NewInvite {
            code: new_invite_code(),
            owner_id: owner,
            source: InviteSource::Staff,
            payment_id: None,
            issued_by: Some(staff.id),
            note: note.map(str::to_owned),
            free_days: body.free_days,
            bonus_days,
            expires_at: now + TimeDelta::days(i64::from(body.valid_days)),
        })
        .collect();
    let issued = Invites::on(&txn).issue(&new, now).await?;
    let change = Change {
        action: "invite.issue",
        target_kind: "customer",
        target_id: owner
            .as_ref()
            .map_or(uuid::Uuid::nil(), CustomerId::as_uuid),
        before: None,
        after: Some(serde_json::json!({
            "count": body.count,
            "codes": issued.iter().map(|i| i.id).collect::<Vec<_>>(),
            "free_days": body.free_days,
            "bonus_days": bonus_days,
            "valid_days": body.valid_days,
            "note": note,
        })),
    };
    audit::record(&txn, staff, request, change, now).await?;
    audit::commit(txn).await?;
    Ok(issued)
}

/// Which page of codes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InviteQuery {
    /// Owned by this customer.
    owner_id: Option<uuid::Uuid>,
    /// `available`, `used` or `expired`.
    status: Option<String>,
    /// `purchase` or `staff`.
    source: Option<String>,
    /// Codes per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

/// One page of codes.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvitePage {
    /// Newest first.
    items: Vec<AdminInviteView>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Lists invite codes, newest first.
#[utoipa::path(
    tag = "admin",
    params(InviteQuery),
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 200, description = "A page of codes", body = InvitePage),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/invites")]
pub(crate) async fn list_invites(
    Authorized(_staff, query): Authorized<perm::ManageInvites, web::Query<InviteQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<InvitePage>, ApiError> {
    let limit = audit::page_size(query.limit.as_deref())?;
    let before = audit::cursor("before", query.before.as_deref())?;
    let filter = InviteSearch {
        owner_id: query.owner_id.map(CustomerId::from_uuid),
        status: query.status.as_deref().map(str::parse).transpose()?,
        source: query.source.as_deref().map(str::parse).transpose()?,
    };
    let now = Utc::now();
    let rows = state
        .db
        .invites()
        .search(&filter, now, before, limit + 1)
        .await?;
    let (rows, next_cursor) = audit::paginate(rows, limit, |invite| invite.id);
    Ok(web::Json(InvitePage {
        items: rows
            .iter()
            .map(|invite| AdminInviteView::new(invite, now))
            .collect(),
        next_cursor,
    }))
}

/// Withdraws a code nobody redeemed.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Invite id")),
    security(("staff" = ["manage_invites"])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_invites`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Redeemed or withdrawn already", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/admin/invites/{id}")]
pub(crate) async fn revoke_invite(
    Authorized(staff, id): Authorized<perm::ManageInvites, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let invites = Invites::on(&txn);
    let before = invites.get(id).await?;
    if !invites.revoke(id, now).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this invite code was redeemed or withdrawn already",
        ));
    }
    let change = Change {
        action: "invite.revoke",
        target_kind: "invite",
        target_id: id,
        before: Some(audit::snapshot(&AdminInviteView::new(&before, now))?),
        after: None,
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}
