//! Staff administration: list, create (with a one-time password), change role, disable, reset 2FA.
//!
//! Staff manage only roles strictly below their own (a super admin manages anyone), and never their own
//! account: [`StaffRole::may_manage`] is the rule.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::Utc;
use cybervpn_auth::{Password, generate_opaque_token};
use cybervpn_db::{Sessions, TwoFactor};
use cybervpn_domain::{Email, ErrorCode, Principal, StaffAccount, StaffId, StaffRole, Username};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Authorized, Staff, perm},
    error::{ApiError, Problem},
    routes::{
        admin_auth::StaffView,
        audit::{self, Change, RequestTag},
    },
    state::AppState,
};

/// Path and body of the update route, extracted after authorization.
type UpdateStaffParts = (web::Path<uuid::Uuid>, web::Json<UpdateStaffRequest>);

/// Every staff account.
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffList {
    /// Oldest first.
    items: Vec<StaffView>,
}

/// A new staff account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateStaffRequest {
    /// Sign-in email.
    #[schema(example = "ops@example.com")]
    email: String,
    /// `super_admin`, `admin`, `operator`, `support` or `viewer`; only roles below the caller's own
    /// (a super admin may create any).
    #[schema(example = "operator")]
    role: String,
    /// 3–32 of `A-Z a-z 0-9 _`; derived from the email when absent.
    username: Option<String>,
}

/// The created account and its password, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedStaff {
    staff: StaffView,
    /// Generated password; hand it over securely, it is not stored in clear and cannot be shown again.
    password: String,
}

/// Changes to a staff account; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateStaffRequest {
    /// New role; the caller must outrank both the current and the new role (a super admin may set any).
    role: Option<String>,
    /// `false` disables the account and ends its sessions; `true` enables it again.
    is_active: Option<bool>,
}

/// What the audit log keeps of a staff account (never the password hash).
#[derive(Serialize)]
struct StaffSnapshot {
    email: String,
    username: String,
    role: &'static str,
    is_active: bool,
}

impl From<&StaffAccount> for StaffSnapshot {
    fn from(a: &StaffAccount) -> Self {
        Self {
            email: a.email.as_str().to_owned(),
            username: a.username.as_str().to_owned(),
            role: a.role.as_str(),
            is_active: a.is_active,
        }
    }
}

/// Refuses unless `caller` may manage accounts of `role`.
fn ensure_may_manage(caller: &StaffAccount, role: StaffRole) -> Result<(), ApiError> {
    if caller.role.may_manage(role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "a {} may not manage {} accounts: only roles below their own",
                caller.role, role
            ),
        ))
    }
}

/// Refuses changes of one's own account, so no one locks themselves out or promotes themselves.
fn ensure_not_self(caller: &StaffAccount, target: StaffId) -> Result<(), ApiError> {
    if caller.id == target {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "staff cannot change their own account here",
        ))
    } else {
        Ok(())
    }
}

/// Lists every staff account.
#[utoipa::path(
    tag = "admin",
    security(("staff" = ["view_staff"])),
    responses(
        (status = 200, description = "Staff accounts", body = StaffList),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_staff`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/staff")]
pub(crate) async fn list_staff(
    _staff: Staff<perm::ViewStaff>,
    state: web::Data<AppState>,
) -> Result<web::Json<StaffList>, ApiError> {
    let accounts = state.db.staff().list().await?;
    Ok(web::Json(StaffList {
        items: accounts.into_iter().map(StaffView::from).collect(),
    }))
}

/// Creates a staff account with a generated password, returned once.
#[utoipa::path(
    tag = "admin",
    request_body = CreateStaffRequest,
    security(("staff" = ["manage_staff"])),
    responses(
        (status = 201, description = "Created; the password is shown only now", body = CreatedStaff),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_staff`, or the role is not below the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, role or username", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/staff")]
pub(crate) async fn create_staff(
    Authorized(staff, body): Authorized<perm::ManageStaff, web::Json<CreateStaffRequest>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let role: StaffRole = body.role.parse()?;
    let username = match body.username.as_deref() {
        Some(name) => Username::parse(name)?,
        None => username_from(&email)?,
    };
    ensure_may_manage(&staff.account, role)?;

    let password = generate_opaque_token();
    let hash = state
        .auth
        .hasher
        .hash_blocking(Password::for_login(&password).map_err(ApiError::internal)?)
        .await?;
    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let account = cybervpn_db::Staff::on(&txn)
        .create(email, username, role, hash, now)
        .await?;
    let change = Change {
        action: "staff.create",
        target_kind: "staff",
        target_id: account.id.as_uuid(),
        before: None,
        after: Some(audit::snapshot(&StaffSnapshot::from(&account))?),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::Created().json(CreatedStaff {
        staff: account.into(),
        password,
    }))
}

/// A handle from the email's local part, or `staff` when that is too short.
fn username_from(email: &Email) -> Result<Username, ApiError> {
    let local: String = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(Username::MAX_LEN)
        .collect();
    Username::parse(&local)
        .or_else(|_| Username::parse("staff"))
        .map_err(ApiError::internal)
}

/// Changes a staff member's role or disables (or re-enables) their account; disabling ends their sessions.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Staff account id")),
    request_body = UpdateStaffRequest,
    security(("staff" = ["manage_staff"])),
    responses(
        (status = 200, description = "The updated account", body = StaffView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_staff`, a role not below the caller's, or the caller's own account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such staff account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid role", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/admin/staff/{id}")]
pub(crate) async fn update_staff(
    Authorized(staff, parts): Authorized<perm::ManageStaff, UpdateStaffParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<StaffView>, ApiError> {
    let (id, body) = parts;
    let id = StaffId::from_uuid(*id);
    let body = body.into_inner();
    let role = body
        .role
        .as_deref()
        .map(str::parse::<StaffRole>)
        .transpose()?;
    ensure_not_self(&staff.account, id)?;

    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let before = cybervpn_db::Staff::on(&txn).get(id).await?;
    ensure_may_manage(&staff.account, before.role)?;
    if let Some(role) = role {
        ensure_may_manage(&staff.account, role)?;
    }
    let mut after = before.clone();
    after.role = role.unwrap_or(before.role);
    after.is_active = body.is_active.unwrap_or(before.is_active);
    if after == before {
        return Ok(web::Json(after.into()));
    }
    cybervpn_db::Staff::on(&txn).update(&after).await?;
    if before.is_active && !after.is_active {
        // Access tokens are refused at once (the extractor reads the account); refresh tokens die here.
        Sessions::on(&txn)
            .revoke_all(Principal::Staff(id), now)
            .await?;
    }
    let change = Change {
        action: "staff.update",
        target_kind: "staff",
        target_id: id.as_uuid(),
        before: Some(audit::snapshot(&StaffSnapshot::from(&before))?),
        after: Some(audit::snapshot(&StaffSnapshot::from(&after))?),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(web::Json(after.into()))
}

/// Removes a staff member's 2FA enrolment and backup codes (a lost authenticator); they enrol again.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Staff account id")),
    security(("staff" = ["manage_staff"])),
    responses(
        (status = 204, description = "Two-factor authentication removed"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_staff`, a role not below the caller's, or the caller's own account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such staff account", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/staff/{id}/reset-2fa")]
pub(crate) async fn reset_staff_two_factor(
    Authorized(staff, id): Authorized<perm::ManageStaff, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let id = StaffId::from_uuid(*id);
    ensure_not_self(&staff.account, id)?;
    let now = Utc::now();
    let txn = audit::begin(&state.db).await?;
    let target = cybervpn_db::Staff::on(&txn).get(id).await?;
    ensure_may_manage(&staff.account, target.role)?;
    let enrolled = TwoFactor::on(&txn).get(Principal::Staff(id)).await?;
    TwoFactor::on(&txn).remove(Principal::Staff(id)).await?;
    let change = Change {
        action: "staff.reset_2fa",
        target_kind: "staff",
        target_id: id.as_uuid(),
        before: Some(serde_json::json!({ "two_factor": enrolled.is_some_and(|e| e.confirmed) })),
        after: Some(serde_json::json!({ "two_factor": false })),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}
