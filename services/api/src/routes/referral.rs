//! Referrals: every customer has a code; a customer who signs up with it earns the inviter bonus days.
//!
//! The unique index on `referrals.referred_id` pays each bonus once; the inviter's row lock keeps the cap.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use cybervpn_db::{Customers, DatabaseTransaction, DbError, Referrals};
use cybervpn_domain::{Customer, CustomerId, DomainError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::CustomerAuth,
    error::{ApiError, Problem},
    state::AppState,
};

/// Length of a referral code: 40 random bits.
pub(crate) const CODE_LEN: usize = 8;

/// A fresh referral code: 8 characters of base32.
pub(crate) fn new_referral_code() -> String {
    cybervpn_domain::invite::random_code(CODE_LEN)
}

/// A referral code as customers type it: case-insensitive, surrounding spaces ignored.
pub(crate) fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Gives the customer a referral code unless they have one; returns their code.
pub(crate) async fn ensure_code<C: cybervpn_db::ConnectionTrait>(
    conn: &C,
    customer: CustomerId,
) -> Result<String, ApiError> {
    let repo = Customers::on(conn);
    if let Some(code) = repo.referral_code(customer).await? {
        return Ok(code);
    }
    // 2^40 codes: a clash is rare; retry a few times before giving up.
    for _ in 0..5 {
        let code = new_referral_code();
        match repo.set_referral_code(customer, &code).await {
            Ok(true) => return Ok(code),
            // Someone issued one meanwhile: theirs stands.
            Ok(false) => break,
            Err(DbError::Domain(DomainError::Conflict { .. })) => {}
            Err(err) => return Err(err.into()),
        }
    }
    repo.referral_code(customer)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no free referral code found")))
}

/// Links `referred` (just registered, inside `txn`) to the owner of `code` and pays the bonus.
///
/// An unknown code is a validation error of `referral_code`; so are self-referral and cycles.
pub(crate) async fn link(
    state: &AppState,
    txn: &DatabaseTransaction,
    referred: &Customer,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let invalid = || ApiError::invalid_field("referral_code", "no customer has this referral code");
    let referrer = Customers::on(txn)
        .find_by_referral_code(&normalize_code(code))
        .await?
        .ok_or_else(invalid)?;
    let referrer_referred_by = Referrals::on(txn).referrer_of(referrer.id).await?;
    if let Some(reason) = refusal(referrer.id, referred.id, referrer_referred_by) {
        return Err(ApiError::invalid_field("referral_code", reason));
    }
    // Locks the referrer: concurrent sign-ups with one code count against the cap one at a time.
    Customers::on(txn).lock(referrer.id).await?;
    let config = &state.config.referral;
    let rewarded = Referrals::on(txn).rewarded_count(referrer.id).await?;
    let bonus = if rewarded < u64::from(config.max_referrals) {
        config.bonus_days
    } else {
        0
    };
    Referrals::on(txn)
        .record(referrer.id, referred.id, bonus, now)
        .await?;
    if bonus > 0 {
        cybervpn_commerce::grant::grant_days(txn, referrer.id, bonus, now).await?;
    }
    Ok(())
}

/// Why `referrer` may not be credited for `referred`: their own code, or a cycle (the referrer was
/// referred by the customer now using their code).
fn refusal(
    referrer: CustomerId,
    referred: CustomerId,
    referrer_referred_by: Option<CustomerId>,
) -> Option<&'static str> {
    if referrer == referred {
        Some("you cannot use your own referral code")
    } else if referrer_referred_by == Some(referred) {
        Some("this customer joined with your referral code; codes cannot be traded back")
    } else {
        None
    }
}

/// Ready-made ways to share a referral code.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReferralLinkParts {
    /// The Telegram bot's `/start` parameter: `ref_<code>`.
    bot_start_parameter: String,
    /// The website's query string: `?ref=<code>`.
    web_query: String,
}

/// The customer's referral code and what it earned.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReferralView {
    /// 8 characters of base32.
    code: String,
    link: ReferralLinkParts,
    /// Customers who signed up with the code.
    referrals_count: u64,
    /// Bonus days earned (referrals beyond the cap earn none).
    days_earned: u64,
    /// Days each new referral earns.
    bonus_days: u32,
    /// Referrals that earn a bonus, at most.
    max_referrals: u32,
}

/// The signed-in customer's referral code (issued on first request) and their referral earnings.
#[utoipa::path(
    tag = "referral",
    security(("customer" = [])),
    responses(
        (status = 200, description = "Code, share links and earnings", body = ReferralView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/referral")]
pub(crate) async fn my_referral(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<ReferralView>, ApiError> {
    let code = ensure_code(state.db.conn(), auth.id).await?;
    let stats = state.db.referrals().stats(auth.id).await?;
    Ok(web::Json(ReferralView {
        link: ReferralLinkParts {
            bot_start_parameter: format!("ref_{code}"),
            web_query: format!("?ref={code}"),
        },
        code,
        referrals_count: stats.referrals,
        days_earned: stats.days_earned,
        bonus_days: state.config.referral.bonus_days,
        max_referrals: state.config.referral.max_referrals,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_base32_characters_and_differ() {
        let a = new_referral_code();
        let b = new_referral_code();
        assert_eq!(a.len(), CODE_LEN);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() && !b"ILOU".contains(&c)),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(normalize_code(" ab12cd34 "), "AB12CD34");
    }

    #[test]
    fn own_codes_and_cycles_are_refused() {
        let (a, b, c) = (CustomerId::new(), CustomerId::new(), CustomerId::new());
        assert!(refusal(a, a, None).is_some(), "self-referral");
        assert!(
            refusal(a, b, Some(b)).is_some(),
            "b referred a: a cannot refer b"
        );
        assert_eq!(refusal(a, b, None), None);
        assert_eq!(refusal(a, b, Some(c)), None, "a chain is not a cycle");
    }
}
