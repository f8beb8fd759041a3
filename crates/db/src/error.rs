use cybervpn_domain::DomainError;
use sea_orm::{DbErr, SqlErr};

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A business rule, e.g. a uniqueness constraint or a missing row.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database could not be reached in time.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] DbErr),
    /// A stored row does not parse into a domain value.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table holding the row.
        table: &'static str,
        /// What failed to parse.
        reason: String,
    },
}

/// Unique constraints the business relies on: PostgreSQL index name, SQLite's column list, what conflicts.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "uq_customers_email",
        "customers.email",
        "customer with this email",
    ),
    (
        "uq_customers_telegram_id",
        "customers.telegram_id",
        "customer with this Telegram id",
    ),
    (
        "uq_staff_accounts_email",
        "staff_accounts.email",
        "staff account with this email",
    ),
    ("uq_plans_code", "plans.code", "plan with this code"),
    (
        "uq_devices_token",
        "devices.token",
        "device with this token",
    ),
    (
        "uq_payments_provider_payment",
        "payments.provider, payments.provider_payment_id",
        "payment with this provider payment id",
    ),
    ("uq_servers_name", "servers.name", "server with this name"),
    (
        "uq_loyalty_rewards_customer_level",
        "loyalty_rewards.customer_id, loyalty_rewards.level",
        "loyalty reward for this level",
    ),
    (
        "uq_subscriptions_panel_user",
        "subscriptions.panel_user_id",
        "subscription for this panel user",
    ),
    (
        "uq_trials_customer_id",
        "trials.customer_id",
        "trial for this customer",
    ),
    (
        "uq_trials_telegram_id",
        "trials.telegram_id",
        "trial for this Telegram account",
    ),
    (
        "uq_customers_referral_code",
        "customers.referral_code",
        "customer with this referral code",
    ),
    ("uq_promo_codes_code", "promo_codes.code", "promo code"),
    (
        "uq_staff_telegram_links_telegram_id",
        "staff_telegram_links.telegram_id",
        "staff link of this Telegram account",
    ),
    (
        "uq_promo_redemptions_customer",
        "promo_redemptions.promo_code_id, promo_redemptions.customer_id",
        "use of this promo code by this customer",
    ),
    (
        "uq_promo_redemptions_payment",
        "promo_redemptions.payment_id",
        "promo code use by this payment",
    ),
    ("uq_invites_code", "invites.code", "invite code"),
    (
        "uq_invites_redeemed_by",
        "invites.redeemed_by",
        "free grant from an invite for this customer",
    ),
    (
        "uq_referrals_referred_id",
        "referrals.referred_id",
        "referral of this customer",
    ),
];

impl From<DbErr> for DbError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
            let known = UNIQUE_CONSTRAINTS.iter().find(|(pg, sqlite, _)| {
                message.contains(&format!("\"{pg}\"")) || message.ends_with(sqlite)
            });
            if let Some((_, _, what)) = known {
                return Self::Domain(DomainError::Conflict { what });
            }
        }
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(err),
            // SQLite's single writer: a transaction that could not take the write lock in time. Temporary, so
            // callers answer "try again" (503), never a 500.
            other if other.to_string().contains("database is locked") => Self::Unavailable(other),
            other => Self::Database(other),
        }
    }
}

impl DbError {
    /// A stored value in `table` failed to parse.
    pub(crate) fn corrupt(table: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            table,
            reason: err.to_string(),
        }
    }
}
