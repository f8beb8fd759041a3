//! Promo codes: a discount or bonus days on a purchase, within limits staff set.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Currency, DomainError, Money, PlanId, PromoCodeId};

/// What a promo code gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromoBenefit {
    /// This share of the price off, 1–99 %.
    PercentOff {
        /// Percent off.
        percent: u8,
    },
    /// A fixed amount off a price in the same currency (the price never drops below one minor unit).
    AmountOff {
        /// Amount off.
        amount: Money,
    },
    /// Extra days on top of the plan's, at the full price.
    BonusDays {
        /// Days added.
        days: u32,
    },
}

impl PromoBenefit {
    /// The stored kind: `percent_off`, `amount_off` or `bonus_days`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::PercentOff { .. } => "percent_off",
            Self::AmountOff { .. } => "amount_off",
            Self::BonusDays { .. } => "bonus_days",
        }
    }

    /// Checks the benefit's own limits.
    pub fn validate(&self) -> Result<(), DomainError> {
        match *self {
            Self::PercentOff { percent } if !(1..=99).contains(&percent) => {
                Err(DomainError::invalid("percent_off", "must be from 1 to 99"))
            }
            Self::AmountOff { amount } if amount.amount_minor() < 1 => {
                Err(DomainError::invalid("amount_off", "must be positive"))
            }
            Self::BonusDays { days } if !(1..=365).contains(&days) => {
                Err(DomainError::invalid("bonus_days", "must be from 1 to 365"))
            }
            _ => Ok(()),
        }
    }
}

/// A promo code as staff configured it, with how often it was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromoCode {
    /// The code's id.
    pub id: PromoCodeId,
    /// What customers type, normalised by [`PromoCode::normalize`].
    pub code: String,
    /// What it gives.
    pub benefit: PromoBenefit,
    /// The only plan it applies to, if restricted.
    pub plan_id: Option<PlanId>,
    /// How many payments may hold it at once or have used it; unlimited when `None`.
    pub max_uses: Option<u32>,
    /// Payments holding or having used it (released uses are not counted).
    pub used_count: u32,
    /// Not usable before this moment.
    pub valid_from: Option<DateTime<Utc>>,
    /// Not usable from this moment on.
    pub valid_until: Option<DateTime<Utc>>,
    /// Staff can switch a code off without deleting its history.
    pub is_active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Shortest and longest code.
const CODE_LEN: std::ops::RangeInclusive<usize> = 3..=32;

impl PromoCode {
    /// The canonical form of a code as typed: trimmed, upper case, 3–32 of `A-Z 0-9 _ -`.
    pub fn normalize(input: &str) -> Result<String, DomainError> {
        let code = input.trim().to_ascii_uppercase();
        if !CODE_LEN.contains(&code.len())
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(DomainError::invalid(
                "promo_code",
                "must be 3 to 32 letters, digits, '_' or '-'",
            ));
        }
        Ok(code)
    }

    /// Checks the code's own settings (benefit limits, validity window order).
    pub fn validate(&self) -> Result<(), DomainError> {
        self.benefit.validate()?;
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && from >= until
        {
            return Err(DomainError::invalid(
                "valid_until",
                "must be after valid_from",
            ));
        }
        if self.max_uses == Some(0) {
            return Err(DomainError::invalid("max_uses", "must be at least 1"));
        }
        Ok(())
    }

    /// Why this code cannot be used at `now` whatever is bought (switched off, outside its window, used up).
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        let refuse = |reason: &str| Err(DomainError::invalid("promo_code", reason));
        if !self.is_active {
            return refuse("is no longer valid");
        }
        if self.valid_from.is_some_and(|from| now < from) {
            return refuse("is not valid yet");
        }
        if self.valid_until.is_some_and(|until| now >= until) {
            return refuse("has expired");
        }
        if self.max_uses.is_some_and(|max| self.used_count >= max) {
            return refuse("has been used up");
        }
        Ok(())
    }

    /// Why this code cannot be used for `plan` paid in `currency` at `now`, if it cannot.
    pub fn check(
        &self,
        plan: PlanId,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.check_usable(now)?;
        if self.plan_id.is_some_and(|only| only != plan) {
            return Err(DomainError::invalid(
                "promo_code",
                "does not apply to this plan",
            ));
        }
        if let PromoBenefit::AmountOff { amount } = self.benefit
            && amount.currency() != currency
        {
            return Err(DomainError::invalid(
                "promo_code",
                format!("applies to {} payments only", amount.currency()),
            ));
        }
        Ok(())
    }

    /// The price and days of a purchase with this code: `price` and `days` are the plan's.
    ///
    /// A discount never takes the price below one minor unit, and rounds in the customer's favour
    /// by at most one minor unit.
    pub fn apply(&self, price: Money, days: u32) -> Result<(Money, u32), DomainError> {
        let minor = price.amount_minor();
        match self.benefit {
            PromoBenefit::PercentOff { percent } => {
                let off = i128::from(minor) * i128::from(percent) / 100;
                let off = i64::try_from(off).unwrap_or(minor);
                Ok((Money::new((minor - off).max(1), price.currency())?, days))
            }
            PromoBenefit::AmountOff { amount } => {
                let left = minor.saturating_sub(amount.amount_minor()).max(1);
                Ok((Money::new(left, price.currency())?, days))
            }
            PromoBenefit::BonusDays { days: bonus } => Ok((price, days.saturating_add(bonus))),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
    }

    fn code(benefit: PromoBenefit) -> PromoCode {
        PromoCode {
            id: PromoCodeId::new(),
            code: "WELCOME".to_owned(),
            benefit,
            plan_id: None,
            max_uses: None,
            used_count: 0,
            valid_from: None,
            valid_until: None,
            is_active: true,
            created_at: at(1),
            updated_at: at(1),
        }
    }

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::Usd).unwrap()
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(
            PromoCode::normalize("  black-friday_25 ").unwrap(),
            "BLACK-FRIDAY_25"
        );
        for bad in ["", "ab", "with space", "emoji🙂x", &"X".repeat(33)] {
            assert!(PromoCode::normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn discounts_price_the_purchase() {
        let ten_off = code(PromoBenefit::PercentOff { percent: 10 });
        assert_eq!(ten_off.apply(usd(499), 30).unwrap(), (usd(450), 30));
        let fixed = code(PromoBenefit::AmountOff { amount: usd(200) });
        assert_eq!(fixed.apply(usd(499), 30).unwrap(), (usd(299), 30));
        assert_eq!(fixed.apply(usd(150), 30).unwrap(), (usd(1), 30));
        let bonus = code(PromoBenefit::BonusDays { days: 7 });
        assert_eq!(bonus.apply(usd(499), 30).unwrap(), (usd(499), 37));
    }

    #[test]
    fn check_names_what_is_wrong() {
        let plan = PlanId::new();
        let reason = |promo: &PromoCode, currency, now| match promo.check(plan, currency, now) {
            Err(DomainError::Invalid { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let mut promo = code(PromoBenefit::AmountOff { amount: usd(100) });
        assert!(promo.check(plan, Currency::Usd, at(5)).is_ok());
        assert_eq!(
            reason(&promo, Currency::Rub, at(5)),
            "applies to USD payments only"
        );
        promo.valid_from = Some(at(10));
        assert_eq!(reason(&promo, Currency::Usd, at(5)), "is not valid yet");
        promo.valid_until = Some(at(20));
        assert!(promo.check(plan, Currency::Usd, at(10)).is_ok());
        assert_eq!(reason(&promo, Currency::Usd, at(20)), "has expired");
        promo.plan_id = Some(PlanId::new());
        assert_eq!(
            reason(&promo, Currency::Usd, at(15)),
            "does not apply to this plan"
        );
        promo.plan_id = Some(plan);
        promo.max_uses = Some(3);
        promo.used_count = 3;
        assert_eq!(reason(&promo, Currency::Usd, at(15)), "has been used up");
        promo.used_count = 2;
        promo.is_active = false;
        assert_eq!(reason(&promo, Currency::Usd, at(15)), "is no longer valid");
    }

    #[test]
    fn settings_are_validated() {
        assert!(
            code(PromoBenefit::PercentOff { percent: 100 })
                .validate()
                .is_err()
        );
        assert!(
            code(PromoBenefit::PercentOff { percent: 0 })
                .validate()
                .is_err()
        );
        assert!(
            code(PromoBenefit::BonusDays { days: 0 })
                .validate()
                .is_err()
        );
        assert!(
            code(PromoBenefit::AmountOff { amount: usd(0) })
                .validate()
                .is_err()
        );
        let mut window = code(PromoBenefit::BonusDays { days: 3 });
        window.valid_from = Some(at(10));
        window.valid_until = Some(at(10));
        assert!(window.validate().is_err());
        window.valid_until = Some(at(11));
        assert!(window.validate().is_ok());
    }

    proptest! {
        #[test]
        fn a_discount_never_raises_the_price_nor_makes_it_free(
            minor in 1_i64..10_000_000,
            percent in 1_u8..=99,
            off in 1_i64..10_000_000,
        ) {
            for benefit in [
                PromoBenefit::PercentOff { percent },
                PromoBenefit::AmountOff { amount: usd(off) },
            ] {
                let (price, days) = code(benefit).apply(usd(minor), 30).unwrap();
                prop_assert!(price.amount_minor() >= 1);
                prop_assert!(price.amount_minor() <= minor);
                prop_assert_eq!(price.currency(), Currency::Usd);
                prop_assert_eq!(days, 30);
            }
            // Percent off takes at most `percent`% off, rounding down the discount.
            let (price, _) = code(PromoBenefit::PercentOff { percent }).apply(usd(minor), 30).unwrap();
            prop_assert!((minor - price.amount_minor()) * 100 <= minor * i64::from(percent));
        }
    }
}
