//! Payments and their life cycle.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{CustomerId, DomainError, Money, PaymentId, PlanId, PromoCodeId, macros::string_enum};

string_enum! {
    /// Where a payment stands in its life cycle.
    pub enum PaymentStatus (field = "status") {
        /// Created, waiting for the provider.
        Pending => "pending",
        /// Money received.
        Completed => "completed",
        /// The provider declined it.
        Failed => "failed",
        /// Nobody paid in time.
        Expired => "expired",
        /// Money returned after completion.
        Refunded => "refunded",
    }
}

impl PaymentStatus {
    /// Whether the state machine allows going from `self` to `next` (never to itself).
    pub const fn can_transition_to(self, next: Self) -> bool {
        matches!(
            (self, next),
            (
                Self::Pending,
                Self::Completed | Self::Failed | Self::Expired
            ) | (Self::Completed, Self::Refunded)
        )
    }

    /// Moves to `next`, or says why it cannot.
    pub const fn transition(self, next: Self) -> Result<Self, DomainError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(DomainError::InvalidTransition {
                entity: "payment",
                from: self.as_str(),
                to: next.as_str(),
            })
        }
    }

    /// Whether no further transition is possible (failed, expired, refunded).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Expired | Self::Refunded)
    }
}

string_enum! {
    /// Who processes a payment.
    pub enum PaymentProvider (field = "provider") {
        /// Crypto Bot (Telegram crypto payments).
        CryptoBot => "cryptobot",
        /// YooKassa (Russian cards, SBP).
        YooKassa => "yookassa",
        /// Stripe (international cards).
        Stripe => "stripe",
        /// Telegram Stars.
        TelegramStars => "telegram_stars",
        /// App Store and Google Play purchases in the mobile app, reported by RevenueCat.
        RevenueCat => "revenuecat",
    }
}

impl PaymentProvider {
    /// Whether customers open payments through us here; app-store purchases are only reported afterwards.
    pub const fn takes_checkout(self) -> bool {
        !matches!(self, Self::RevenueCat)
    }
}

/// A payment for a plan (or a top-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// The payment's id.
    pub id: PaymentId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// What is bought, if a plan.
    pub plan_id: Option<PlanId>,
    /// How much.
    pub amount: Money,
    /// Where it stands.
    pub status: PaymentStatus,
    /// Who processes it.
    pub provider: PaymentProvider,
    /// The provider's own id for it, once known.
    pub provider_payment_id: Option<String>,
    /// Days of service it buys, frozen at creation.
    pub days: u32,
    /// Where the customer pays (the gateway's invoice or checkout page).
    pub invoice_url: Option<String>,
    /// When a still pending payment is closed as expired.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was credited.
    pub completed_at: Option<DateTime<Utc>>,
    /// Why staff must look at it (amount mismatch, paid after it was closed); never credited meanwhile.
    pub review_reason: Option<String>,
    /// The promo code that priced it, if any.
    pub promo_code_id: Option<PromoCodeId>,
    /// When the money went back to the customer.
    pub refunded_at: Option<DateTime<Utc>>,
    /// Why it was refunded.
    pub refund_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// Moves the payment to `next` if the state machine allows it, stamping `updated_at`.
    pub fn set_status(
        &mut self,
        next: PaymentStatus,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.status = self.status.transition(next)?;
        self.updated_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::Currency;

    use PaymentStatus::*;

    const LEGAL: [(PaymentStatus, PaymentStatus); 4] = [
        (Pending, Completed),
        (Pending, Failed),
        (Pending, Expired),
        (Completed, Refunded),
    ];

    #[test]
    fn only_the_listed_transitions_are_legal() {
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(
                    from.can_transition_to(*to),
                    LEGAL.contains(&(*from, *to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_means_no_way_out() {
        for from in PaymentStatus::ALL {
            let has_exit = PaymentStatus::ALL
                .iter()
                .any(|to| from.can_transition_to(*to));
            assert_eq!(from.is_terminal(), !has_exit, "{from}");
        }
        assert!(!Completed.is_terminal());
    }

    #[test]
    fn set_status_moves_and_stamps() {
        let created = Utc.with_ymd_and_hms(2025, 5, 1, 0, 0, 0).unwrap();
        let later = Utc.with_ymd_and_hms(2025, 5, 1, 0, 5, 0).unwrap();
        let mut payment = Payment {
            id: PaymentId::new(),
            customer_id: CustomerId::new(),
            plan_id: Some(PlanId::new()),
            amount: Money::new(499, Currency::Usd).unwrap(),
            status: Pending,
            provider: PaymentProvider::Stripe,
            provider_payment_id: None,
            days: 30,
            invoice_url: None,
            expires_at: None,
            completed_at: None,
            review_reason: None,
            promo_code_id: None,
            refunded_at: None,
            refund_reason: None,
            created_at: created,
            updated_at: created,
        };
        payment.set_status(Completed, later).unwrap();
        assert_eq!((payment.status, payment.updated_at), (Completed, later));

        let err = payment.set_status(Pending, created).unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidTransition {
                entity: "payment",
                from: "completed",
                to: "pending"
            }
        );
        assert_eq!((payment.status, payment.updated_at), (Completed, later));
    }

    #[test]
    fn provider_names_are_explicit() {
        let names: Vec<&str> = PaymentProvider::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "cryptobot",
                "yookassa",
                "stripe",
                "telegram_stars",
                "revenuecat"
            ]
        );
        for provider in PaymentProvider::ALL {
            let json = serde_json::to_string(provider).unwrap();
            assert_eq!(json, format!("\"{}\"", provider.as_str()));
            assert_eq!(
                serde_json::from_str::<PaymentProvider>(&json).unwrap(),
                *provider
            );
            assert_eq!(
                provider.as_str().parse::<PaymentProvider>().unwrap(),
                *provider
            );
        }
        assert!(serde_json::from_str::<PaymentProvider>("\"crypto_bot\"").is_err());
        let err = "yoo_kassa".parse::<PaymentProvider>().unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "provider",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    proptest! {
        #[test]
        fn transition_succeeds_iff_allowed(
            from in prop::sample::select(PaymentStatus::ALL),
            to in prop::sample::select(PaymentStatus::ALL),
        ) {
            match from.transition(to) {
                Ok(next) => {
                    prop_assert!(from.can_transition_to(to));
                    prop_assert_eq!(next, to);
                }
                Err(err) => {
                    prop_assert!(!from.can_transition_to(to));
                    prop_assert_eq!(
                        err,
                        DomainError::InvalidTransition { entity: "payment", from: from.as_str(), to: to.as_str() }
                    );
                }
            }
        }
    }
}
