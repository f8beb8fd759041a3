//! Sign-up, sign-in (password, then TOTP when enabled), refresh rotation and sign-out, for customers and staff.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use cybervpn_auth::{
    Audience, Password, PasswordError, TotpSecret, Verification, generate_opaque_token,
    hash_opaque_token, totp,
};
use cybervpn_db::Rotation;
use cybervpn_domain::{
    Customer, CustomerStatus, DomainError, Email, ErrorCode, Language, NewCustomer, Principal,
    StaffId, Username,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{AnyPrincipal, CustomerAuth, Limits, TokenPair},
    error::{ApiError, Problem},
    routes::{audit, referral},
    state::AppState,
};

/// A new customer account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    /// Sign-in email.
    #[schema(example = "neo@example.com")]
    email: String,
    /// At least 10 characters, not a common password.
    password: String,
    /// Referral code of the customer who invited them.
    referral_code: Option<String>,
    /// Public handle (3–32 of `A-Z a-z 0-9 _`); derived from the email when absent.
    username: Option<String>,
    /// `en` or `ru`; `en` when absent.
    language: Option<String>,
}

/// A customer as they see themselves.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerView {
    id: uuid::Uuid,
    email: Option<String>,
    username: String,
    telegram_id: Option<i64>,
    /// `active`, `disabled`, `limited` or `expired`.
    status: &'static str,
    /// `en` or `ru`.
    language: &'static str,
    created_at: chrono::DateTime<Utc>,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        Self {
            id: c.id.as_uuid(),
            email: c.email.map(Email::into_inner),
            username: c.username.into_inner(),
            telegram_id: c.telegram_id.map(|t| t.get()),
            status: c.status.as_str(),
            language: c.language.as_str(),
            created_at: c.created_at,
        }
    }
}

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

/// Tokens, or a request for the second factor.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum LoginResponse {
    /// Signed in.
    Tokens(TokenPair),
    /// Password accepted; exchange `pending_token` and a TOTP or backup code at `…/login/2fa`.
    TwoFactor(TwoFactorChallenge),
}

/// The first sign-in step succeeded; the second factor is due.
#[derive(Serialize, ToSchema)]
pub(crate) struct TwoFactorChallenge {
    /// Always `true`.
    two_factor_required: bool,
    /// Short-lived token for the second step.
    pending_token: String,
}

/// The second sign-in step.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TwoFactorLoginRequest {
    pending_token: String,
    /// A 6-digit TOTP code or a backup code.
    code: String,
}

/// A refresh token to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Optionally, the refresh token whose session ends too.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    refresh_token: Option<String>,
}

/// Which account table a sign-in addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Realm {
    Customer,
    Staff,
}

impl Realm {
    const fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
        }
    }

    const fn pending_audience(self) -> Audience {
        match self {
            Self::Customer => Audience::CustomerTwoFactor,
            Self::Staff => Audience::StaffTwoFactor,
        }
    }
}

fn password_error(err: PasswordError) -> ApiError {
    ApiError::invalid_field("password", err.to_string())
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the email or password is wrong",
    )
}

/// Registers a customer with email and password.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = CustomerView),
        (status = 409, description = "Email taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, username, referral code or weak password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/register")]
pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = Limits::new(&state);
    limits.per_ip("register", &req).await?;
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let password = Password::new_for_signup(&body.password).map_err(password_error)?;
    let username = match &body.username {
        Some(name) => Username::parse(name)?,
        None => derive_username(&email)?,
    };
    let language = body
        .language
        .as_deref()
        .map(Language::parse_tag)
        .transpose()?
        .unwrap_or_default();
    let referral_code = body
        .referral_code
        .map(|code| parse_referral_code(&code))
        .transpose()?;
    let new = NewCustomer::new(Some(email), None, username, language)?;
    let hash = state.auth.hasher.hash_blocking(password).await?;
    let now = Utc::now();
    // The account, its own referral code and the inviter's bonus commit together or not at all.
    let txn = audit::begin(&state.db).await?;
    let customer = cybervpn_db::Customers::on(&txn)
        .register(new, hash, referral_code.clone(), now)
        .await?;
    referral::ensure_code(&txn, customer.id).await?;
    if let Some(code) = &referral_code {
        referral::link(&state, &txn, &customer, code, now).await?;
    }
    audit::commit(txn).await?;
    state
        .publish_live(
            cybervpn_domain::LiveTopic::Customers,
            "customer_registered",
            serde_json::json!({ "customer_id": customer.id.as_uuid(), "via": "api" }),
        )
        .await;
    Ok(HttpResponse::Created().json(CustomerView::from(customer)))
}

/// Referral codes are short tokens of `A-Z a-z 0-9 _ -`.
fn parse_referral_code(code: &str) -> Result<String, ApiError> {
    let code = code.trim();
    if (1..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(code.to_owned())
    } else {
        Err(ApiError::invalid_field(
            "referral_code",
            "referral codes are 1–32 letters, digits, `_` or `-`",
        ))
    }
}

/// A handle from the email's local part plus a random suffix.
pub(crate) fn derive_username(email: &Email) -> Result<Username, ApiError> {
    let local: String = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(20)
        .collect();
    let suffix = &hash_opaque_token(&generate_opaque_token())[..6];
    let candidate = if local.len() >= 3 {
        format!("{local}_{suffix}")
    } else {
        format!("user_{suffix}")
    };
    // The candidate holds only allowed characters within the length bounds, so this cannot fail.
    Username::parse(&candidate).map_err(ApiError::internal)
}

/// Signs a customer in with email and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or `two_factor_required` with a pending token", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account disabled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or locked out", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub(crate) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    password_login(&state, &req, body.into_inner(), Realm::Customer).await
}

/// Password step shared by customers and staff: rate limits, lockout, constant time for unknown emails.
pub(crate) async fn password_login(
    state: &AppState,
    req: &HttpRequest,
    body: LoginRequest,
    realm: Realm,
) -> Result<web::Json<LoginResponse>, ApiError> {
    let endpoint = format!("{}-login", realm.name());
    let limits = Limits::new(state);
    limits.per_ip(&endpoint, req).await?;
    let password = Password::for_login(&body.password).map_err(password_error)?;
    let account_key = format!("{}:{}", realm.name(), body.email.trim().to_lowercase());
    limits.per_account(&endpoint, &account_key).await?;
    limits.check_lock(&account_key).await?;

    let found = match Email::parse(&body.email) {
        Ok(email) => lookup(state, realm, &email).await?,
        Err(_) => None,
    };
    let Some((principal, role, hash, active)) = found else {
        state.auth.hasher.verify_dummy_blocking(password).await;
        limits.record_failure(&account_key).await?;
        return Err(bad_credentials());
    };
    let Some(hash) = hash else {
        state.auth.hasher.verify_dummy_blocking(password).await;
        limits.record_failure(&account_key).await?;
        return Err(bad_credentials());
    };
    match state
        .auth
        .hasher
        .verify_blocking(password.clone(), hash)
        .await?
    {
        Verification::Invalid => {
            limits.record_failure(&account_key).await?;
            return Err(bad_credentials());
        }
        Verification::Valid { needs_rehash } => {
            limits.clear_failures(&account_key).await?;
            if needs_rehash {
                rehash(state, principal, password).await;
            }
        }
    }
    if !active {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    Ok(web::Json(
        signed_in(state, principal, &role, Utc::now()).await?,
    ))
}

/// The answer to a first sign-in step that proved who it is: tokens, or the second factor when it is enabled.
pub(crate) async fn signed_in(
    state: &AppState,
    principal: Principal,
    role: &str,
    now: chrono::DateTime<Utc>,
) -> Result<LoginResponse, ApiError> {
    let two_factor = state.db.two_factor().get(principal).await?;
    if two_factor.is_some_and(|e| e.confirmed) {
        return Ok(LoginResponse::TwoFactor(TwoFactorChallenge {
            two_factor_required: true,
            pending_token: state.auth.pending_token(principal, role, now)?,
        }));
    }
    let pair = state
        .auth
        .start_session(&state.db, principal, role, now)
        .await?;
    Ok(LoginResponse::Tokens(pair))
}

/// (principal, role, password hash, may sign in) of the account with this email.
async fn lookup(
    state: &AppState,
    realm: Realm,
    email: &Email,
) -> Result<Option<(Principal, String, Option<String>, bool)>, ApiError> {
    Ok(match realm {
        Realm::Customer => {
            state
                .db
                .customers()
                .credentials_by_email(email)
                .await?
                .map(|(c, hash)| {
                    let active = c.status != CustomerStatus::Disabled;
                    (
                        Principal::Customer(c.id),
                        "customer".to_owned(),
                        hash,
                        active,
                    )
                })
        }
        Realm::Staff => state
            .db
            .staff()
            .credentials_by_email(email)
            .await?
            .map(|(s, hash)| {
                (
                    Principal::Staff(s.id),
                    s.role.as_str().to_owned(),
                    hash,
                    s.is_active,
                )
            }),
    })
}

/// Stores a hash made with the current parameters; a failure only means the next login tries again.
async fn rehash(state: &AppState, principal: Principal, password: Password) {
    let stored = match state.auth.hasher.hash_blocking(password).await {
        Ok(hash) => match principal {
            Principal::Customer(id) => state.db.customers().set_password_hash(id, hash).await,
            Principal::Staff(id) => state.db.staff().set_password_hash(id, hash).await,
        },
        Err(err) => {
            tracing::warn!(error = %err, "password rehash failed");
            return;
        }
    };
    if let Err(err) = stored {
        tracing::warn!(error = %err, "storing the rehashed password failed");
    }
}

/// Completes a sign-in with the pending token and a TOTP or backup code.
#[utoipa::path(
    tag = "auth",
    request_body = TwoFactorLoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Bad or expired pending token, wrong or replayed code", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login/2fa")]
pub(crate) async fn login_two_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TwoFactorLoginRequest>,
) -> Result<web::Json<TokenPair>, ApiError> {
    second_factor_login(&state, &req, body.into_inner(), Realm::Customer).await
}

/// Second step shared by customers and staff; the pending token is single use.
pub(crate) async fn second_factor_login(
    state: &AppState,
    req: &HttpRequest,
    body: TwoFactorLoginRequest,
    realm: Realm,
) -> Result<web::Json<TokenPair>, ApiError> {
    let endpoint = format!("{}-2fa", realm.name());
    let limits = Limits::new(state);
    limits.per_ip(&endpoint, req).await?;
    let now = Utc::now();
    let claims = state
        .auth
        .keys
        .verify(&body.pending_token, realm.pending_audience(), now)
        .map_err(crate::auth::token_error)?;
    let principal = match realm {
        Realm::Customer => Principal::Customer(cybervpn_domain::CustomerId::from_uuid(claims.sub)),
        Realm::Staff => Principal::Staff(StaffId::from_uuid(claims.sub)),
    };
    limits
        .per_account(&endpoint, &principal.id().to_string())
        .await?;
    // One attempt per pending token, claimed atomically: a wrong code, a replay or a parallel request
    // all need a new password step.
    let left = (claims.exp - now).to_std().unwrap_or_default() + std::time::Duration::from_secs(1);
    if !state
        .auth
        .store
        .claim(&crate::auth::deny_key(&claims), left)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::TokenInvalid,
            "the pending token was already used",
        ));
    }
    check_second_factor(state, principal, &body.code).await?;
    // The account may have been disabled, or its role changed, since the password step.
    let role = current_role(state, principal).await?;
    let pair = state
        .auth
        .start_session(&state.db, principal, &role, now)
        .await?;
    Ok(web::Json(pair))
}

/// Accepts a current TOTP code (each at most once) or an unused backup code.
pub(crate) async fn check_second_factor(
    state: &AppState,
    principal: Principal,
    code: &str,
) -> Result<(), ApiError> {
    let limits = Limits::new(state);
    let account = second_factor_account(principal);
    limits.check_lock(&account).await?;
    match verify_second_factor(state, principal, code).await {
        Ok(()) => limits.clear_failures(&account).await,
        Err(err) => {
            if err.code() == ErrorCode::InvalidTwoFactorCode {
                limits.record_failure(&account).await?;
            }
            Err(err)
        }
    }
}

/// Lockout key of an account's second factor (and of the password check that can replace it).
pub(crate) fn second_factor_account(principal: Principal) -> String {
    format!("2fa:{}:{}", principal.kind(), principal.id())
}

async fn verify_second_factor(
    state: &AppState,
    principal: Principal,
    code: &str,
) -> Result<(), ApiError> {
    let wrong = || {
        ApiError::new(
            ErrorCode::InvalidTwoFactorCode,
            "the code is wrong or already used",
        )
    };
    let enrollment = state
        .db
        .two_factor()
        .get(principal)
        .await?
        .filter(|e| e.confirmed)
        .ok_or_else(wrong)?;
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let secret = open_secret(state, &enrollment.secret_sealed)?;
        let step = totp::verify_code(&secret, code, Utc::now(), None).ok_or_else(wrong)?;
        // The conditional update makes the code single use, even across replicas.
        if state.db.two_factor().use_step(principal, step).await? {
            return Ok(());
        }
        return Err(wrong());
    }
    let hash = totp::hash_backup_code(code);
    if state
        .db
        .two_factor()
        .use_backup_code(principal, &hash, Utc::now())
        .await?
    {
        return Ok(());
    }
    Err(wrong())
}

/// The role to put in a new access token, refusing disabled accounts (read fresh from the database).
async fn current_role(state: &AppState, principal: Principal) -> Result<String, ApiError> {
    let disabled = || ApiError::new(ErrorCode::AccountDisabled, "this account is disabled");
    match principal {
        Principal::Customer(id) => {
            let customer = state.db.customers().get(id).await?;
            if customer.status == CustomerStatus::Disabled {
                return Err(disabled());
            }
            Ok("customer".to_owned())
        }
        Principal::Staff(id) => {
            let staff = state.db.staff().get(id).await?;
            if !staff.is_active {
                return Err(disabled());
            }
            Ok(staff.role.as_str().to_owned())
        }
    }
}

/// Decrypts a stored TOTP secret.
pub(crate) fn open_secret(state: &AppState, sealed: &str) -> Result<TotpSecret, ApiError> {
    let bytes = state
        .auth
        .secret_box
        .open(sealed)
        .map_err(ApiError::internal)?;
    TotpSecret::from_bytes(bytes).map_err(ApiError::internal)
}

/// Exchanges a refresh token for a new pair; a reused token revokes its whole session family.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair (the old refresh token is now spent)", body = TokenPair),
        (status = 401, description = "Unknown, expired or reused refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub(crate) async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<web::Json<TokenPair>, ApiError> {
    Limits::new(&state).per_ip("refresh", &req).await?;
    let now = Utc::now();
    let next = generate_opaque_token();
    let rotation = state
        .db
        .sessions()
        .rotate(
            &hash_opaque_token(&body.refresh_token),
            hash_opaque_token(&next),
            state.auth.refresh_expiry(now),
            now,
        )
        .await?;
    let principal = match rotation {
        Rotation::Rotated { principal } => principal,
        Rotation::Reused { principal } => {
            tracing::warn!(kind = principal.kind(), id = %principal.id(), "refresh token reuse: session family revoked");
            return Err(ApiError::new(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; sign in again",
            ));
        }
        Rotation::Expired => {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "the refresh token has expired",
            ));
        }
        Rotation::Unknown => {
            return Err(ApiError::new(
                ErrorCode::TokenInvalid,
                "unknown refresh token",
            ));
        }
    };
    let role = current_role(&state, principal).await?;
    Ok(web::Json(state.auth.pair(principal, &role, next, now)?))
}

/// Signs out: revokes this access token and, if given, the refresh token's session.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<LogoutRequest>),
    security(("customer" = []), ("staff" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/logout")]
pub(crate) async fn logout(
    state: web::Data<AppState>,
    auth: AnyPrincipal,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    // The body is optional, but when sent it must be right: a typo must not leave a session alive.
    let request: LogoutRequest = if body.is_empty() {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::invalid_field("refresh_token", err.to_string()))?
    };
    if let Some(refresh_token) = request.refresh_token {
        state
            .db
            .sessions()
            .revoke_family_of(auth.principal, &hash_opaque_token(&refresh_token), now)
            .await?;
    }
    state.auth.deny(&auth.claims, now).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Signs out everywhere: revokes every session and this access token.
#[utoipa::path(
    tag = "auth",
    security(("customer" = []), ("staff" = [])),
    responses(
        (status = 204, description = "Every session revoked"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/logout-all")]
pub(crate) async fn logout_all(
    state: web::Data<AppState>,
    auth: AnyPrincipal,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    state.db.sessions().revoke_all(auth.principal, now).await?;
    // Every device's access token, this one included, stops working too.
    state.auth.revoke_issued_tokens(auth.principal, now).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The signed-in customer.
#[utoipa::path(
    tag = "auth",
    security(("customer" = [])),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/auth/me")]
pub(crate) async fn me(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<HttpResponse, ApiError> {
    // Bans and deletions revoke the token itself, so a profile a second or two old is safe to serve.
    let body = match state.profiles.get(&auth.id) {
        Some(body) => body,
        None => {
            let customer = match state.db.customers().get(auth.id).await {
                Ok(customer) => customer,
                Err(cybervpn_db::DbError::Domain(DomainError::NotFound { .. })) => {
                    return Err(ApiError::new(
                        ErrorCode::TokenInvalid,
                        "the account no longer exists",
                    ));
                }
                Err(err) => return Err(err.into()),
            };
            let body = web::Bytes::from(
                serde_json::to_vec(&CustomerView::from(customer)).map_err(ApiError::internal)?,
            );
            state.profiles.put(auth.id, body.clone());
            body
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}
