//! Authentication at the edge: key loading, bearer-token extractors, token pairs, rate limits, lockout.

mod extract;
mod keys;
mod limits;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cybervpn_auth::{
    Audience, Claims, PasswordHasher, SecretBox, TokenKeys, generate_opaque_token,
    hash_opaque_token,
};
use cybervpn_config::AuthConfig;
use cybervpn_db::Db;
use cybervpn_domain::Principal;
use cybervpn_kv::Store;
use serde::Serialize;
use utoipa::ToSchema;

pub(crate) use extract::{
    AnyPrincipal, Authorized, CustomerAuth, Staff, authorize_staff, perm, token_error,
};
pub(crate) use keys::load_keys;

pub(crate) use limits::Limits;

use crate::{error::ApiError, state::TtlCache};

/// Keys, hasher and shared state every authentication route needs.
pub(crate) struct AuthState {
    pub(crate) keys: TokenKeys,
    /// Access tokens (by hash) whose signature was already checked, so a client's repeated requests skip the
    /// Ed25519 verification; expiry, audience and the deny-list are still checked on every request.
    pub(crate) verified: TtlCache<String, Claims>,
    pub(crate) secret_box: SecretBox,
    pub(crate) hasher: Arc<PasswordHasher>,
    pub(crate) store: Store,
    pub(crate) config: AuthConfig,
}

/// An access token with its refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenPair {
    /// PASETO v4.public access token; send as `Authorization: Bearer …`.
    pub(crate) access_token: String,
    /// Opaque refresh token, single use: each refresh returns a new one.
    pub(crate) refresh_token: String,
    /// Always `Bearer`.
    pub(crate) token_type: &'static str,
    /// Seconds until the access token expires.
    pub(crate) expires_in: u64,
}

impl AuthState {
    /// Signs an access token for `principal` with `role`.
    pub(crate) fn access_token(
        &self,
        principal: Principal,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let audience = match principal {
            Principal::Customer(_) => Audience::Customer,
            Principal::Staff(_) => Audience::Staff,
        };
        self.sign(
            principal,
            role,
            audience,
            self.config.access_token_ttl_secs,
            now,
        )
    }

    /// Signs the short-lived token that stands between a correct password and the 2FA code.
    pub(crate) fn pending_token(
        &self,
        principal: Principal,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let audience = match principal {
            Principal::Customer(_) => Audience::CustomerTwoFactor,
            Principal::Staff(_) => Audience::StaffTwoFactor,
        };
        self.sign(
            principal,
            role,
            audience,
            self.config.pending_token_ttl_secs,
            now,
        )
    }

    fn sign(
        &self,
        principal: Principal,
        role: &str,
        audience: Audience,
        ttl_secs: u64,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let ttl = Duration::seconds(secs(ttl_secs));
        self.keys
            .issue(&Claims::new(principal.id(), role, audience, now, ttl))
            .map_err(ApiError::internal)
    }

    /// Starts a new session: an access token and the first refresh token of a new family.
    pub(crate) async fn start_session(
        &self,
        db: &Db,
        principal: Principal,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, ApiError> {
        let refresh_token = generate_opaque_token();
        db.sessions()
            .start(
                principal,
                hash_opaque_token(&refresh_token),
                self.refresh_expiry(now),
                now,
            )
            .await?;
        self.pair(principal, role, refresh_token, now)
    }

    /// A pair around an already stored refresh token.
    pub(crate) fn pair(
        &self,
        principal: Principal,
        role: &str,
        refresh_token: String,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, ApiError> {
        Ok(TokenPair {
            access_token: self.access_token(principal, role, now)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
        })
    }

    /// When a refresh token issued now expires.
    pub(crate) fn refresh_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::seconds(secs(self.config.refresh_token_ttl_secs))
    }

    /// Puts an access token's id on the deny-list until the token would have expired anyway.
    pub(crate) async fn deny(&self, claims: &Claims, now: DateTime<Utc>) -> Result<(), ApiError> {
        let left = (claims.exp - now).to_std().unwrap_or_default();
        if !left.is_zero() {
            self.store
                .set_expiring(&deny_key(claims), left + std::time::Duration::from_secs(1))
                .await?;
        }
        Ok(())
    }
}

impl AuthState {
    /// Refuses every access token of `principal` issued before `now` (ban, deletion, sign-out everywhere);
    /// tokens issued later are unaffected, so nothing needs undoing on unban.
    pub(crate) async fn revoke_issued_tokens(
        &self,
        principal: Principal,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let ttl = std::time::Duration::from_secs(self.config.access_token_ttl_secs + 1);
        self.store
            .set_number(&revoked_key(principal), now.timestamp_millis(), ttl)
            .await?;
        Ok(())
    }
}

/// Key holding the time (ms) before which a principal's access tokens are revoked.
pub(crate) fn revoked_key(principal: Principal) -> String {
    format!("revoked:{}:{}", principal.kind(), principal.id())
}

/// Deny-list key of a token.
pub(crate) fn deny_key(claims: &Claims) -> String {
    format!("deny:{}", claims.jti)
}

/// Configured seconds as a chrono duration (configuration bounds keep them far from overflow).
fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 1000)
}
