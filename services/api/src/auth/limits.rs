//! Rate limits per IP and per account, and progressive lockout after failed sign-ins.

use std::time::Duration;

use actix_web::HttpRequest;
use cybervpn_auth::hash_opaque_token;
use cybervpn_domain::ErrorCode;
use cybervpn_kv::RateDecision;

use crate::{error::ApiError, state::AppState};

/// How long failed sign-ins are remembered.
const FAILURE_WINDOW: Duration = Duration::from_secs(3600);

/// Abuse protection for the sign-in endpoints, backed by the shared store.
pub(crate) struct Limits<'a> {
    app: &'a AppState,
    state: &'a super::AuthState,
}

impl<'a> Limits<'a> {
    pub(crate) const fn new(app: &'a AppState) -> Self {
        Self {
            app,
            state: &app.auth,
        }
    }

    /// Takes a token from the bucket of the client's IP on this endpoint.
    pub(crate) async fn per_ip(&self, endpoint: &str, req: &HttpRequest) -> Result<(), ApiError> {
        let ip = client_ip(req, self.app.config.api.trust_forwarded_headers);
        let per_minute = self.state.config.ip_requests_per_minute;
        self.take(&format!("rl:{endpoint}:ip:{ip}"), per_minute)
            .await
    }

    /// Takes a token from the bucket of this account (an email or an id) on this endpoint.
    pub(crate) async fn per_account(&self, endpoint: &str, account: &str) -> Result<(), ApiError> {
        let per_minute = self.state.config.account_requests_per_minute;
        let key = format!("rl:{endpoint}:acct:{}", account_key(account));
        self.take(&key, per_minute).await
    }

    async fn take(&self, key: &str, per_minute: u32) -> Result<(), ApiError> {
        match self
            .state
            .store
            .take_token(key, per_minute, per_minute)
            .await?
        {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => Err(ApiError::retry_later(
                ErrorCode::RateLimited,
                "too many requests; slow down",
                retry_after,
            )),
        }
    }

    /// Refuses a locked account, saying when it unlocks.
    pub(crate) async fn check_lock(&self, account: &str) -> Result<(), ApiError> {
        let key = format!("lock:{}", account_key(account));
        match self.state.store.time_to_live(&key).await? {
            Some(left) => Err(ApiError::retry_later(
                ErrorCode::AccountLocked,
                "too many failed sign-ins; try again later",
                left,
            )),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in; from the threshold on, locks the account for a doubling delay.
    pub(crate) async fn record_failure(&self, account: &str) -> Result<(), ApiError> {
        let config = &self.state.config;
        let account = account_key(account);
        let failures = self
            .state
            .store
            .increment(&format!("fail:{account}"), FAILURE_WINDOW)
            .await?;
        let Some(excess) = failures.checked_sub(u64::from(config.lockout_threshold)) else {
            return Ok(());
        };
        let factor = 1_u64
            .checked_shl(u32::try_from(excess).unwrap_or(u32::MAX))
            .unwrap_or(u64::MAX);
        let lock = config
            .lockout_base_secs
            .saturating_mul(factor)
            .min(config.lockout_max_secs);
        self.state
            .store
            .set_expiring(&format!("lock:{account}"), Duration::from_secs(lock))
            .await?;
        Ok(())
    }

    /// Forgets failed sign-ins after a success.
    pub(crate) async fn clear_failures(&self, account: &str) -> Result<(), ApiError> {
        self.state
            .store
            .delete(&format!("fail:{}", account_key(account)))
            .await?;
        Ok(())
    }
}

/// Accounts appear in keys only hashed, so shared state holds no email addresses.
fn account_key(account: &str) -> String {
    hash_opaque_token(&account.to_lowercase())
}

/// The client's IP: the peer address, or — behind a trusted proxy — the address that proxy appended last to
/// `X-Forwarded-For` (earlier entries come from the client and can be forged).
fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> String {
    let forwarded = trust_forwarded
        .then(|| {
            req.headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .filter(|hop| !hop.is_empty())
                .last()
                .map(str::to_owned)
        })
        .flatten();
    forwarded
        .or_else(|| req.peer_addr().map(|addr| addr.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::client_ip;

    #[test]
    fn only_the_proxy_appended_hop_is_trusted() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:1234".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&req, true), "203.0.113.7");
        assert_eq!(
            client_ip(&req, false),
            "10.0.0.2",
            "headers ignored unless trusted"
        );
        let direct = TestRequest::default()
            .peer_addr("10.0.0.2:1234".parse().unwrap())
            .to_http_request();
        assert_eq!(client_ip(&direct, true), "10.0.0.2");
    }
}
