//! Staff sign-in (staff audience: customer tokens never work on admin routes, nor staff tokens on customer ones).

use actix_web::{HttpRequest, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Staff, TokenPair, perm},
    error::{ApiError, Problem},
    routes::auth::{
        LoginRequest, LoginResponse, Realm, TwoFactorLoginRequest, password_login,
        second_factor_login,
    },
    state::AppState,
};

/// Signs a staff member in with email and password.
#[utoipa::path(
    tag = "admin",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or `two_factor_required` with a pending token", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account disabled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or locked out", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/auth/login")]
pub(crate) async fn staff_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    password_login(&state, &req, body.into_inner(), Realm::Staff).await
}

/// Completes a staff sign-in with the pending token and a TOTP or backup code.
#[utoipa::path(
    tag = "admin",
    request_body = TwoFactorLoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Bad pending token or code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/auth/login/2fa")]
pub(crate) async fn staff_login_two_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TwoFactorLoginRequest>,
) -> Result<web::Json<TokenPair>, ApiError> {
    second_factor_login(&state, &req, body.into_inner(), Realm::Staff).await
}

/// The signed-in staff member.
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffView {
    pub(crate) id: uuid::Uuid,
    pub(crate) email: String,
    pub(crate) username: String,
    /// `super_admin`, `admin`, `operator`, `support` or `viewer`.
    pub(crate) role: &'static str,
    pub(crate) is_active: bool,
    /// What the role allows.
    pub(crate) permissions: Vec<&'static str>,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
}

impl From<cybervpn_domain::StaffAccount> for StaffView {
    fn from(a: cybervpn_domain::StaffAccount) -> Self {
        Self {
            id: a.id.as_uuid(),
            email: a.email.into_inner(),
            username: a.username.into_inner(),
            role: a.role.as_str(),
            is_active: a.is_active,
            permissions: a.role.permissions().iter().map(|p| p.as_str()).collect(),
            created_at: a.created_at,
        }
    }
}

/// The signed-in staff member and their permissions.
#[utoipa::path(
    tag = "admin",
    security(("staff" = [])),
    responses(
        (status = 200, description = "The staff member", body = StaffView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/auth/me")]
pub(crate) async fn staff_me(staff: Staff<perm::AnyRole>) -> web::Json<StaffView> {
    web::Json(staff.account.into())
}

/// A one-time code that links a Telegram account to the signed-in staff member.
#[derive(Serialize, ToSchema)]
pub(crate) struct TelegramLinkCode {
    /// Send `/link <code>` to the bot from the Telegram account to link.
    code: String,
    /// The code stops working then (10 minutes), or once used.
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// Issues a one-time code that links the caller's staff account to a Telegram account (for the bot's admin
/// panel, which then acts with the caller's role).
#[utoipa::path(
    tag = "admin",
    security(("staff" = [])),
    responses(
        (status = 201, description = "The code", body = TelegramLinkCode),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/auth/telegram-link")]
pub(crate) async fn telegram_link_code(
    staff: Staff<perm::AnyRole>,
    state: web::Data<AppState>,
) -> Result<actix_web::HttpResponse, ApiError> {
    use chrono::SubsecRound as _;
    let code = crate::routes::referral::new_referral_code();
    let expires_at = chrono::Utc::now().trunc_subsecs(6) + crate::grpc::LINK_CODE_TTL;
    cybervpn_db::StaffLinks::on(state.db.conn())
        .issue_code(
            &crate::grpc::link_code_hash(&code),
            staff.account.id,
            expires_at,
        )
        .await?;
    Ok(actix_web::HttpResponse::Created().json(TelegramLinkCode { code, expires_at }))
}
