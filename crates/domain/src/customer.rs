//! Customers: the people who buy and use the VPN.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{CustomerId, DomainError, Email, Language, TelegramId, Username, macros::string_enum};

string_enum! {
    /// Where a customer's account stands.
    pub enum CustomerStatus (field = "status") {
        /// May use the service.
        Active => "active",
        /// Switched off by staff.
        Disabled => "disabled",
        /// Ran out of traffic.
        Limited => "limited",
        /// Has no running subscription.
        Expired => "expired",
    }
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    /// The customer's id.
    pub id: CustomerId,
    /// Email address, if they signed up with one.
    pub email: Option<Email>,
    /// Telegram account, if they came through the bot.
    pub telegram_id: Option<TelegramId>,
    /// Public handle.
    pub username: Username,
    /// Account status.
    pub status: CustomerStatus,
    /// Language the product speaks to them in.
    pub language: Language,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

/// A customer that is about to be registered; build it with [`NewCustomer::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    /// Email address, if any.
    pub email: Option<Email>,
    /// Telegram account, if any.
    pub telegram_id: Option<TelegramId>,
    /// Public handle.
    pub username: Username,
    /// Preferred language.
    pub language: Language,
}

impl NewCustomer {
    /// Checks that the customer can be reached: at least one of email or Telegram id.
    pub fn new(
        email: Option<Email>,
        telegram_id: Option<TelegramId>,
        username: Username,
        language: Language,
    ) -> Result<Self, DomainError> {
        if email.is_none() && telegram_id.is_none() {
            return Err(DomainError::invalid(
                "email",
                "a customer needs an email address or a Telegram account",
            ));
        }
        Ok(Self {
            email,
            telegram_id,
            username,
            language,
        })
    }

    /// Turns the registration into an active customer with a fresh id, created at `now`.
    pub fn into_customer(self, now: DateTime<Utc>) -> Customer {
        Customer {
            id: CustomerId::new(),
            email: self.email,
            telegram_id: self.telegram_id,
            username: self.username,
            status: CustomerStatus::Active,
            language: self.language,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn username() -> Username {
        Username::parse("neo").unwrap()
    }

    #[test]
    fn needs_email_or_telegram() {
        let err = NewCustomer::new(None, None, username(), Language::En).unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field: "email", .. }),
            "{err:?}"
        );

        let email = Email::parse("neo@example.com").unwrap();
        let telegram = TelegramId::new(7).unwrap();
        assert!(NewCustomer::new(Some(email.clone()), None, username(), Language::En).is_ok());
        assert!(NewCustomer::new(None, Some(telegram), username(), Language::Ru).is_ok());
        assert!(NewCustomer::new(Some(email), Some(telegram), username(), Language::En).is_ok());
    }

    #[test]
    fn into_customer_is_active_with_fresh_id() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let telegram = TelegramId::new(7).unwrap();
        let new = NewCustomer::new(None, Some(telegram), username(), Language::Ru).unwrap();
        let first = new.clone().into_customer(now);
        let second = new.into_customer(now);
        assert_ne!(first.id, second.id);
        assert_eq!(first.status, CustomerStatus::Active);
        assert_eq!(first.telegram_id, Some(telegram));
        assert_eq!(first.language, Language::Ru);
        assert_eq!((first.created_at, first.updated_at), (now, now));
    }

    #[test]
    fn status_strings() {
        assert_eq!(CustomerStatus::ALL.len(), 4);
        for status in CustomerStatus::ALL {
            assert_eq!(status.as_str().parse::<CustomerStatus>().unwrap(), *status);
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(
                serde_json::from_str::<CustomerStatus>(&json).unwrap(),
                *status
            );
        }
        let err = "Active".parse::<CustomerStatus>().unwrap_err();
        assert_eq!(
            err,
            DomainError::invalid(
                "status",
                "expected one of: active, disabled, limited, expired"
            )
        );
    }
}
