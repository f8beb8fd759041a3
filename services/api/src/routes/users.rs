//! Customer administration for staff: search, read, edit, ban and unban, delete (soft, personal data scrubbed).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_db::{CustomerRecord, CustomerSearch, Customers, Sessions, TwoFactor};
use cybervpn_domain::{
    CustomerId, CustomerStatus, ErrorCode, Language, PlanId, Principal, StaffAccount, Username,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, perm},
    error::{ApiError, Problem},
    routes::audit::{self, Change, RequestTag},
    state::AppState,
};

/// Path and optional body of the ban route, extracted after authorization.
type BanParts = (web::Path<uuid::Uuid>, web::Bytes);

/// Path and body of the update route, extracted after authorization.
type UpdateCustomerParts = (web::Path<uuid::Uuid>, web::Json<UpdateCustomerRequest>);

/// Longest search text accepted (the longest email).
const MAX_SEARCH_CHARS: usize = 254;
/// Longest ban reason accepted.
const MAX_REASON_CHARS: usize = 500;

/// A customer as staff see them.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerAdminView {
    id: uuid::Uuid,
    /// `null` when they signed up through Telegram only, or after deletion.
    email: Option<String>,
    username: String,
    telegram_id: Option<i64>,
    /// `active`, `disabled` (banned), `limited` or `expired`.
    status: &'static str,
    /// `en` or `ru`.
    language: &'static str,
    /// Referral code given at sign-up.
    referral_code_used: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<CustomerRecord> for CustomerAdminView {
    fn from(record: CustomerRecord) -> Self {
        let c = record.customer;
        Self {
            id: c.id.as_uuid(),
            email: c.email.map(cybervpn_domain::Email::into_inner),
            username: c.username.into_inner(),
            telegram_id: c.telegram_id.map(|t| t.get()),
            status: c.status.as_str(),
            language: c.language.as_str(),
            referral_code_used: record.referral_code_used,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// What the audit log keeps of a customer: the fields staff change, never contact details, so deleting a
/// customer's personal data does not leave a copy in the log.
#[derive(Serialize)]
struct CustomerSnapshot {
    username: String,
    status: &'static str,
    language: &'static str,
}

impl From<&cybervpn_domain::Customer> for CustomerSnapshot {
    fn from(c: &cybervpn_domain::Customer) -> Self {
        Self {
            username: c.username.as_str().to_owned(),
            status: c.status.as_str(),
            language: c.language.as_str(),
        }
    }
}

/// Filters and page of the customer list; every filter is optional and they combine.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CustomerQuery {
    /// Customers per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Case-insensitive part of the email or username; a number also matches the exact Telegram id.
    q: Option<String>,
    /// `active`, `disabled`, `limited` or `expired`.
    status: Option<String>,
    /// Only customers with a subscription to this plan.
    #[param(value_type = Option<uuid::Uuid>)]
    plan_id: Option<String>,
    /// Only customers with a subscription expiring before this RFC 3339 instant.
    #[param(value_type = Option<DateTime<Utc>>)]
    expiring_before: Option<String>,
}

impl CustomerQuery {
    fn search(&self) -> Result<CustomerSearch, ApiError> {
        let text = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| {
                if q.chars().count() > MAX_SEARCH_CHARS {
                    Err(ApiError::invalid_field(
                        "q",
                        format!("must be at most {MAX_SEARCH_CHARS} characters"),
                    ))
                } else {
                    Ok(q.to_owned())
                }
            })
            .transpose()?;
        let status = self
            .status
            .as_deref()
            .map(str::parse::<CustomerStatus>)
            .transpose()?;
        let plan_id = self
            .plan_id
            .as_deref()
            .map(|id| {
                uuid::Uuid::try_parse(id)
                    .map(PlanId::from_uuid)
                    .map_err(|_| ApiError::invalid_field("plan_id", "must be a UUID"))
            })
            .transpose()?;
        let expiring_before = self
            .expiring_before
            .as_deref()
            .map(|instant| {
                DateTime::parse_from_rfc3339(instant)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid_field(
                            "expiring_before",
                            "must be an RFC 3339 instant such as 2030-01-31T00:00:00Z",
                        )
                    })
            })
            .transpose()?;
        Ok(CustomerSearch {
            text,
            status,
            plan_id,
            expiring_before,
        })
    }
}

/// One page of customers.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerPage {
    /// Newest first.
    items: Vec<CustomerAdminView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Changes to a customer; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateCustomerRequest {
    /// 3–32 of `A-Z a-z 0-9 _`.
    username: Option<String>,
    /// `en` or `ru`.
    language: Option<String>,
    /// `active`, `limited` or `expired`; banning (`disabled`) has its own route.
    status: Option<String>,
}

/// Why a customer is banned, kept in the audit log.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BanRequest {
    /// Up to 500 characters.
    reason: Option<String>,
}

/// Lists customers, newest first, with search and filters; deleted customers never appear.
#[utoipa::path(
    tag = "admin",
    params(CustomerQuery),
    security(("staff" = ["view_customers"])),
    responses(
        (status = 200, description = "One page of customers", body = CustomerPage),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit, cursor or filter", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users")]
pub(crate) async fn list_customers(
    Authorized(_staff, query): Authorized<perm::ViewCustomers, web::Query<CustomerQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<CustomerPage>, ApiError> {
    let limit = audit::page_size(query.limit.as_deref())?;
    let before = audit::cursor("cursor", query.cursor.as_deref())?.map(CustomerId::from_uuid);
    let search = query.search()?;
    let rows = state
        .db
        .customers()
        .search(&search, before, limit + 1)
        .await?;
    let (rows, next_cursor) = audit::paginate(rows, limit, |r| r.customer.id.as_uuid());
    Ok(web::Json(CustomerPage {
        items: rows.into_iter().map(CustomerAdminView::from).collect(),
        next_cursor,
    }))
}

/// Fetches one customer.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["view_customers"])),
    responses(
        (status = 200, description = "The customer", body = CustomerAdminView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/users/{id}")]
pub(crate) async fn get_customer(
    Authorized(_staff, id): Authorized<perm::ViewCustomers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<CustomerAdminView>, ApiError> {
    let record = state
        .db
        .customers()
        .record(CustomerId::from_uuid(*id))
        .await?;
    Ok(web::Json(record.into()))
}

/// Changes a customer's username, language or status (not to `disabled`: ban instead).
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    request_body = UpdateCustomerRequest,
    security(("staff" = ["manage_customers"])),
    responses(
        (status = 200, description = "The updated customer", body = CustomerAdminView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or deleted", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Status change of a banned customer (unban instead)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/users/{id}")]
pub(crate) async fn update_customer(
    Authorized(staff, parts): Authorized<perm::ManageCustomers, UpdateCustomerParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<CustomerAdminView>, ApiError> {
    let (id, body) = parts;
    let body = body.into_inner();
    let username = body.username.as_deref().map(Username::parse).transpose()?;
    let language = body
        .language
        .as_deref()
        .map(Language::parse_tag)
        .transpose()?;
    let status = body
        .status
        .as_deref()
        .map(str::parse::<CustomerStatus>)
        .transpose()?;
    if status == Some(CustomerStatus::Disabled) {
        return Err(ApiError::invalid_field(
            "status",
            "use POST /api/v1/users/{id}/ban to disable a customer",
        ));
    }

    // At the precision the database keeps, so the response shows what a later read returns.
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let mut record = Customers::on(&txn).lock(CustomerId::from_uuid(*id)).await?;
    let before = record.customer.clone();
    if status.is_some_and(|s| s != before.status) && before.status == CustomerStatus::Disabled {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the customer is banned: use POST /api/v1/users/{id}/unban",
        ));
    }
    let customer = &mut record.customer;
    customer.username = username.unwrap_or_else(|| customer.username.clone());
    customer.language = language.unwrap_or(customer.language);
    customer.status = status.unwrap_or(customer.status);
    if *customer == before {
        // Nothing changes, so nothing is recorded.
        return Ok(web::Json(record.into()));
    }
    customer.updated_at = now;
    Customers::on(&txn).update(customer).await?;
    let change = Change {
        action: "customer.update",
        target_kind: "customer",
        target_id: customer.id.as_uuid(),
        before: Some(audit::snapshot(&CustomerSnapshot::from(&before))?),
        after: Some(audit::snapshot(&CustomerSnapshot::from(&*customer))?),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    state.profiles.forget(&CustomerId::from_uuid(*id));
    Ok(web::Json(record.into()))
}

/// Deletes a customer: the account stays for payment history, personal data is scrubbed, every session
/// and the 2FA enrolment end. Deleting again answers 404.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["delete_customers"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `delete_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or already deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/users/{id}")]
pub(crate) async fn delete_customer(
    Authorized(staff, id): Authorized<perm::DeleteCustomers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let id = CustomerId::from_uuid(*id);
    let txn = audit::begin(&state.db).await?;
    let record = Customers::on(&txn).lock(id).await?;
    Customers::on(&txn).soft_delete(id, now).await?;
    Sessions::on(&txn)
        .revoke_all(Principal::Customer(id), now)
        .await?;
    TwoFactor::on(&txn).remove(Principal::Customer(id)).await?;
    let change = Change {
        action: "customer.delete",
        target_kind: "customer",
        target_id: id.as_uuid(),
        // The username may be personal (it often comes from the email), so only the status is kept.
        before: Some(serde_json::json!({ "status": record.customer.status.as_str() })),
        after: Some(serde_json::json!({ "deleted": true })),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    // A deleted customer is not live: provisioning disables their panel user rather than leaving the VPN
    // serving them until the next reconciliation.
    if let Some(subscription) = cybervpn_db::Subscriptions::on(&txn).current_for(id).await? {
        crate::routes::operations::outbox_provision(&txn, &subscription, now).await?;
    }
    audit::commit(txn).await?;
    state.profiles.forget(&id);
    // Access tokens already issued stop working too, not only refresh tokens.
    state
        .auth
        .revoke_issued_tokens(Principal::Customer(id), now)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Bans a customer: status `disabled`, every session revoked, sign-in refused. Banning a banned customer
/// answers 409 `invalid_state_transition`.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    request_body(content = Option<BanRequest>, description = "Optional reason, kept in the audit log"),
    security(("staff" = ["ban_customers"])),
    responses(
        (status = 200, description = "The banned customer", body = CustomerAdminView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `ban_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or deleted", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already banned", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid reason", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/ban")]
pub(crate) async fn ban_customer(
    Authorized(staff, parts): Authorized<perm::BanCustomers, BanParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<CustomerAdminView>, ApiError> {
    let (id, body) = parts;
    let reason = ban_reason(&body)?;
    let change = StatusChange::ban(reason);
    set_banned(
        &state,
        &staff.account,
        &request,
        CustomerId::from_uuid(*id),
        change,
    )
    .await
}

/// Lifts a ban: status `active`. Unbanning a customer who is not banned answers 409
/// `invalid_state_transition`.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["ban_customers"])),
    responses(
        (status = 200, description = "The customer, active again", body = CustomerAdminView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `ban_customers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or deleted", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not banned", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/unban")]
pub(crate) async fn unban_customer(
    Authorized(staff, id): Authorized<perm::BanCustomers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<CustomerAdminView>, ApiError> {
    let change = StatusChange::unban();
    set_banned(
        &state,
        &staff.account,
        &request,
        CustomerId::from_uuid(*id),
        change,
    )
    .await
}

/// The optional JSON body of a ban; an empty body is no reason.
fn ban_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: BanRequest = serde_json::from_slice(body).map_err(|err| {
        if err.is_data() {
            ApiError::new(ErrorCode::ValidationFailed, err.to_string())
        } else {
            ApiError::new(ErrorCode::MalformedJson, format!("malformed JSON: {err}"))
        }
    })?;
    let reason = request
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(ApiError::invalid_field(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason)
}

/// A ban or an unban.
pub(crate) struct StatusChange {
    action: &'static str,
    /// Whether the customer must be banned now (unban) or not (ban).
    from_disabled: bool,
    reason: Option<String>,
}

impl StatusChange {
    /// A ban, with the staff member's reason.
    pub(crate) const fn ban(reason: Option<String>) -> Self {
        Self {
            action: "customer.ban",
            from_disabled: false,
            reason,
        }
    }

    /// Lifting a ban.
    pub(crate) const fn unban() -> Self {
        Self {
            action: "customer.unban",
            from_disabled: true,
            reason: None,
        }
    }
}

/// Bans or unbans in one transaction with the session revocation and the audit entry.
pub(crate) async fn set_banned(
    state: &AppState,
    staff: &StaffAccount,
    request: &RequestTag,
    id: CustomerId,
    change: StatusChange,
) -> Result<web::Json<CustomerAdminView>, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let mut record = Customers::on(&txn).lock(id).await?;
    let before = CustomerSnapshot::from(&record.customer);
    let banned = record.customer.status == CustomerStatus::Disabled;
    if banned != change.from_disabled {
        let detail = if banned {
            "the customer is already banned"
        } else {
            "the customer is not banned"
        };
        return Err(ApiError::new(ErrorCode::InvalidStateTransition, detail));
    }
    record.customer.status = if banned {
        CustomerStatus::Active
    } else {
        CustomerStatus::Disabled
    };
    record.customer.updated_at = now;
    Customers::on(&txn).update(&record.customer).await?;
    if !banned {
        // Refresh tokens stop working at once; sign-in is refused while the status is `disabled`.
        Sessions::on(&txn)
            .revoke_all(Principal::Customer(id), now)
            .await?;
    }
    let mut after = audit::snapshot(&CustomerSnapshot::from(&record.customer))?;
    if let (Some(reason), Some(fields)) = (change.reason, after.as_object_mut()) {
        fields.insert("reason".to_owned(), reason.into());
    }
    let entry = Change {
        action: change.action,
        target_kind: "customer",
        target_id: id.as_uuid(),
        before: Some(audit::snapshot(&before)?),
        after: Some(after),
    };
    audit::record(&txn, staff, request, entry, now).await?;
    // The panel user follows the ban (disabled) or its lifting (active again if the subscription is live).
    if let Some(subscription) = cybervpn_db::Subscriptions::on(&txn).current_for(id).await? {
        crate::routes::operations::outbox_provision(&txn, &subscription, now).await?;
    }
    audit::commit(txn).await?;
    state.profiles.forget(&id);
    if !banned {
        state
            .auth
            .revoke_issued_tokens(Principal::Customer(id), now)
            .await?;
    }
    Ok(web::Json(record.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_reasons_are_optional_trimmed_and_bounded() {
        assert_eq!(ban_reason(b"").ok().flatten(), None);
        assert_eq!(ban_reason(b" \n").ok().flatten(), None);
        assert_eq!(ban_reason(b"{}").ok().flatten(), None);
        assert_eq!(
            ban_reason(br#"{"reason":"  spam  "}"#).ok().flatten(),
            Some("spam".to_owned())
        );
        let too_long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_REASON_CHARS + 1));
        assert!(ban_reason(too_long.as_bytes()).is_err());
        let code = |body: &[u8]| ban_reason(body).err().map(|e| e.code());
        assert_eq!(code(b"{"), Some(ErrorCode::MalformedJson));
        assert_eq!(code(br#"{"why":1}"#), Some(ErrorCode::ValidationFailed));
    }
}
