//! Bearer-token extractors: a handler's arguments say who may call it.

use std::{future::Future, marker::PhantomData, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use chrono::Utc;
use cybervpn_auth::{Audience, Claims, TokenError};
use cybervpn_domain::{CustomerId, ErrorCode, Permission, Principal, StaffAccount, StaffId};

use super::{deny_key, revoked_key};
use crate::{error::ApiError, state::AppState};

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// A signed-in customer (customer-audience access token).
pub(crate) struct CustomerAuth {
    pub(crate) id: CustomerId,
}

/// A signed-in customer or staff member, for routes both may use (2FA setup, sign-out).
pub(crate) struct AnyPrincipal {
    pub(crate) principal: Principal,
    pub(crate) claims: Claims,
}

/// A signed-in, active staff member holding the permission `P` requires.
pub(crate) struct Staff<P> {
    pub(crate) account: StaffAccount,
    _requirement: PhantomData<P>,
}

/// What a staff route requires.
pub(crate) trait Requirement {
    /// The permission, or `None` for routes any active staff member may use.
    const PERMISSION: Option<Permission>;
}

/// Permission markers for [`Staff`], one per [`Permission`].
pub(crate) mod perm {
    use cybervpn_domain::Permission;

    use super::Requirement;

    macro_rules! markers {
        ($($name:ident),+ $(,)?) => {$(
            /// Requires the permission of the same name.
            pub(crate) struct $name;

            impl Requirement for $name {
                const PERMISSION: Option<Permission> = Some(Permission::$name);
            }
        )+};
    }

    markers!(
        ViewCustomers,
        ManageCustomers,
        BanCustomers,
        DeleteCustomers,
        ViewPlans,
        ManagePlans,
        ViewStaff,
        ManageStaff,
        ViewAuditLog,
        ViewServers,
        ManageSubscriptions,
        ManageJobs,
        ViewPayments,
        ManagePayments,
        ManagePromoCodes,
        ViewAnalytics,
        ManageInvites,
    );

    /// Any active staff member.
    pub(crate) struct AnyRole;

    impl Requirement for AnyRole {
        const PERMISSION: Option<Permission> = None;
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            // The scheme is case-insensitive (RFC 7235).
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a bearer access token is required"))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))
}

pub(crate) fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "the token has expired"),
        TokenError::Malformed
        | TokenError::UnknownKey
        | TokenError::BadSignature
        | TokenError::WrongAudience => {
            ApiError::new(ErrorCode::TokenInvalid, "the token is not valid here")
        }
        TokenError::Internal(reason) => ApiError::internal(anyhow::anyhow!(reason)),
    }
}

/// Verifies the token for one of `audiences` (tried in order) and checks the deny-list.
async fn verify(state: &AppState, token: &str, audiences: &[Audience]) -> Result<Claims, ApiError> {
    let now = Utc::now();
    let token_hash = cybervpn_auth::hash_opaque_token(token);
    let mut last = TokenError::WrongAudience;
    for audience in audiences {
        let cached = state
            .auth
            .verified
            .get(&token_hash)
            .filter(|claims| claims.aud == *audience && claims.exp > now);
        let verified = match cached {
            Some(claims) => Ok(claims),
            None => state
                .auth
                .keys
                .verify(token, *audience, now)
                .inspect(|claims| {
                    state.auth.verified.put(token_hash.clone(), claims.clone());
                }),
        };
        match verified {
            Ok(claims) => {
                let principal = match claims.aud {
                    Audience::Staff => Principal::Staff(StaffId::from_uuid(claims.sub)),
                    _ => Principal::Customer(CustomerId::from_uuid(claims.sub)),
                };
                let checks = state
                    .auth
                    .store
                    .numbers(&[deny_key(&claims), revoked_key(principal)])
                    .await?;
                let denied = checks.first().is_some_and(Option::is_some);
                let revoked_before = checks.get(1).copied().flatten();
                if denied
                    || revoked_before.is_some_and(|before| claims.iat.timestamp_millis() < before)
                {
                    return Err(ApiError::new(
                        ErrorCode::TokenInvalid,
                        "the token has been revoked",
                    ));
                }
                return Ok(claims);
            }
            Err(TokenError::WrongAudience) => {}
            Err(err) => {
                last = err;
                break;
            }
        }
    }
    Err(token_error(last))
}

/// The app state and the verified claims of the request's bearer token for one of `audiences`.
fn authenticate(
    req: &HttpRequest,
    audiences: &'static [Audience],
) -> Extracting<(web::Data<AppState>, Claims)> {
    let input = state(req).and_then(|state| Ok((state, bearer(req)?)));
    Box::pin(async move {
        let (state, token) = input?;
        let claims = verify(&state, &token, audiences).await?;
        Ok((state, claims))
    })
}

impl FromRequest for CustomerAuth {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req, &[Audience::Customer]);
        Box::pin(async move {
            let (_, claims) = authenticated.await?;
            Ok(Self {
                id: CustomerId::from_uuid(claims.sub),
            })
        })
    }
}

impl FromRequest for AnyPrincipal {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req, &[Audience::Customer, Audience::Staff]);
        Box::pin(async move {
            let (state, claims) = authenticated.await?;
            let principal = match claims.aud {
                Audience::Staff => {
                    let account = active_staff(&state, StaffId::from_uuid(claims.sub)).await?;
                    Principal::Staff(account.id)
                }
                _ => Principal::Customer(CustomerId::from_uuid(claims.sub)),
            };
            Ok(Self { principal, claims })
        })
    }
}

impl<P: Requirement + 'static> FromRequest for Staff<P> {
    type Error = ApiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req, &[Audience::Staff]);
        Box::pin(async move {
            let (state, claims) = authenticated.await?;
            let account =
                authorize_staff(&state, StaffId::from_uuid(claims.sub), P::PERMISSION).await?;
            Ok(Self {
                account,
                _requirement: PhantomData,
            })
        })
    }
}

/// The active staff account `id` if it holds `permission` (and has 2FA when staff must): the staff check of
/// [`Staff`], also for routes that serve customers too.
pub(crate) async fn authorize_staff(
    state: &AppState,
    id: StaffId,
    permission: Option<Permission>,
) -> Result<StaffAccount, ApiError> {
    // Role and status come from the database, so demotions and disabling apply at once.
    let account = active_staff(state, id).await?;
    if let Some(permission) = permission.filter(|p| !account.role.can(*p)) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this action requires the `{permission}` permission"),
        ));
    }
    if state.auth.config.staff_require_two_factor {
        let enrolled = state
            .db
            .two_factor()
            .get(Principal::Staff(account.id))
            .await?
            .is_some_and(|e| e.confirmed);
        if !enrolled {
            return Err(ApiError::new(
                ErrorCode::TwoFactorSetupRequired,
                "enable two-factor authentication at /api/v1/two-factor/enable first",
            ));
        }
    }
    Ok(account)
}

async fn active_staff(state: &AppState, id: StaffId) -> Result<StaffAccount, ApiError> {
    let account = match state.db.staff().get(id).await {
        Ok(account) => account,
        Err(cybervpn_db::DbError::Domain(cybervpn_domain::DomainError::NotFound { .. })) => {
            return Err(ApiError::new(
                ErrorCode::TokenInvalid,
                "the token is not valid here",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    if !account.is_active {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this staff account is disabled",
        ));
    }
    Ok(account)
}

/// A staff member holding `P`, then the request parts `T` (path, query, body): authorization is decided
/// before anything else is parsed, so callers without the permission learn nothing about valid input.
pub(crate) struct Authorized<P, T>(pub(crate) Staff<P>, pub(crate) T);

impl<P: Requirement + 'static, T: FromRequest + 'static> FromRequest for Authorized<P, T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let staff = Staff::<P>::from_request(req, &mut Payload::None);
        // Created now (it takes the payload) but only polled once authorization has passed.
        let parts = T::from_request(req, payload);
        Box::pin(async move {
            let staff = staff.await?;
            let parts = parts.await.map_err(Into::into)?;
            Ok(Self(staff, parts))
        })
    }
}
