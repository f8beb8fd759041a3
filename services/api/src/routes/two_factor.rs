//! TOTP enrolment for customers and staff: enable (secret + QR), verify (confirms, returns backup codes), disable.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Utc;
use cybervpn_auth::{Password, TotpSecret, Verification, totp};
use cybervpn_domain::{ErrorCode, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{AnyPrincipal, Limits},
    error::{ApiError, Problem},
    routes::auth::{check_second_factor, open_secret, second_factor_account},
    state::AppState,
};

/// A new TOTP secret to add to an authenticator app.
#[derive(Serialize, ToSchema)]
pub(crate) struct Enrollment {
    /// Base32 secret, for manual entry.
    secret: String,
    /// `otpauth://totp/…` URI.
    otpauth_uri: String,
    /// PNG QR code of the URI, base64.
    qr_png_base64: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeRequest {
    code: String,
}

/// Single-use backup codes, shown once.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupCodes {
    backup_codes: Vec<String>,
}

/// Proof for turning 2FA off: a current code or the password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisableRequest {
    code: Option<String>,
    password: Option<String>,
}

/// Starts TOTP enrolment; replaces an unconfirmed one. 409 when 2FA is already on.
#[utoipa::path(
    tag = "two-factor",
    security(("customer" = []), ("staff" = [])),
    responses(
        (status = 200, description = "Secret, URI and QR code", body = Enrollment),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already enabled", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/two-factor/enable")]
pub(crate) async fn enable(
    state: web::Data<AppState>,
    auth: AnyPrincipal,
) -> Result<web::Json<Enrollment>, ApiError> {
    let account = account_label(&state, auth.principal).await?;
    let secret = TotpSecret::generate();
    let sealed = state
        .auth
        .secret_box
        .seal(secret.as_bytes())
        .map_err(ApiError::internal)?;
    state
        .db
        .two_factor()
        .begin(auth.principal, sealed, Utc::now())
        .await?;
    let uri = totp::otpauth_uri(&secret, &state.auth.config.totp_issuer, &account);
    Ok(web::Json(Enrollment {
        secret: secret.to_base32(),
        qr_png_base64: totp::qr_png_base64(&uri).map_err(ApiError::internal)?,
        otpauth_uri: uri,
    }))
}

async fn account_label(state: &AppState, principal: Principal) -> Result<String, ApiError> {
    Ok(match principal {
        Principal::Customer(id) => {
            let customer = state.db.customers().get(id).await?;
            customer
                .email
                .map_or_else(|| customer.username.into_inner(), |e| e.into_inner())
        }
        Principal::Staff(id) => state.db.staff().get(id).await?.email.into_inner(),
    })
}

/// Confirms enrolment with a current code; returns ten single-use backup codes.
#[utoipa::path(
    tag = "two-factor",
    request_body = CodeRequest,
    security(("customer" = []), ("staff" = [])),
    responses(
        (status = 200, description = "2FA is on", body = BackupCodes),
        (status = 401, description = "Wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No enrolment started", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already confirmed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/two-factor/verify")]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AnyPrincipal,
    body: web::Json<CodeRequest>,
) -> Result<web::Json<BackupCodes>, ApiError> {
    let limits = Limits::new(&state);
    limits.per_ip("2fa-verify", &req).await?;
    limits
        .per_account("2fa-verify", &auth.principal.id().to_string())
        .await?;
    let enrollment = state
        .db
        .two_factor()
        .get(auth.principal)
        .await?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, "start with /api/v1/two-factor/enable")
        })?;
    if enrollment.confirmed {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "two-factor authentication is already on",
        ));
    }
    let secret = open_secret(&state, &enrollment.secret_sealed)?;
    let step = totp::verify_code(&secret, body.code.trim(), Utc::now(), None).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidTwoFactorCode,
            "the code is wrong or expired",
        )
    })?;
    let codes = totp::generate_backup_codes();
    let hashes = codes.iter().map(|c| totp::hash_backup_code(c)).collect();
    if !state
        .db
        .two_factor()
        .confirm(auth.principal, step, hashes, Utc::now())
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "two-factor authentication is already on",
        ));
    }
    Ok(web::Json(BackupCodes {
        backup_codes: codes,
    }))
}

/// Turns 2FA off, given a current code (or backup code) or the account password.
#[utoipa::path(
    tag = "two-factor",
    request_body = DisableRequest,
    security(("customer" = []), ("staff" = [])),
    responses(
        (status = 204, description = "2FA is off"),
        (status = 401, description = "Wrong code or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither code nor password given", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/two-factor/disable")]
pub(crate) async fn disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AnyPrincipal,
    body: web::Json<DisableRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = Limits::new(&state);
    limits.per_ip("2fa-disable", &req).await?;
    limits
        .per_account("2fa-disable", &auth.principal.id().to_string())
        .await?;
    match body.into_inner() {
        DisableRequest {
            code: Some(code), ..
        } => {
            check_second_factor(&state, auth.principal, &code).await?;
        }
        DisableRequest {
            password: Some(password),
            ..
        } => {
            let password = Password::for_login(&password)
                .map_err(|err| ApiError::invalid_field("password", err.to_string()))?;
            let hash = match auth.principal {
                Principal::Customer(id) => state.db.customers().password_hash(id).await?,
                Principal::Staff(id) => state.db.staff().password_hash(id).await?,
            };
            let limits = Limits::new(&state);
            let account = second_factor_account(auth.principal);
            limits.check_lock(&account).await?;
            let valid = match hash {
                Some(hash) => matches!(
                    state.auth.hasher.verify_blocking(password, hash).await?,
                    Verification::Valid { .. }
                ),
                None => false,
            };
            if !valid {
                limits.record_failure(&account).await?;
                return Err(ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the password is wrong",
                ));
            }
        }
        DisableRequest { .. } => {
            return Err(ApiError::invalid_field(
                "code",
                "send a current `code` or the `password`",
            ));
        }
    }
    state.db.two_factor().remove(auth.principal).await?;
    Ok(HttpResponse::NoContent().finish())
}
