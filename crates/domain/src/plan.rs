//! The plan catalogue: what a customer can buy, for how long, and at what prices.

use serde::{Deserialize, Serialize};

use crate::{Currency, DomainError, Money, PlanId, TrafficLimit, macros::string_enum};

string_enum! {
    /// The product tier of a plan.
    pub enum PlanTier (field = "tier") {
        /// Entry tier.
        Basic => "basic",
        /// Mid tier.
        Pro => "pro",
        /// High tier.
        Ultra => "ultra",
        /// Top tier.
        Cyber => "cyber",
    }
}

/// How long one purchase of a plan lasts. Serialised as the number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum PlanDuration {
    /// One month.
    Days30,
    /// Three months.
    Days90,
    /// Six months.
    Days180,
    /// One year.
    Days365,
}

impl PlanDuration {
    /// Every duration, shortest first.
    pub const ALL: &'static [Self] = &[Self::Days30, Self::Days90, Self::Days180, Self::Days365];

    /// The length in days.
    pub const fn days(self) -> u16 {
        match self {
            Self::Days30 => 30,
            Self::Days90 => 90,
            Self::Days180 => 180,
            Self::Days365 => 365,
        }
    }
}

impl TryFrom<u16> for PlanDuration {
    type Error = DomainError;

    fn try_from(days: u16) -> Result<Self, Self::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|duration| duration.days() == days)
            .ok_or_else(|| DomainError::invalid("duration_days", "must be 30, 90, 180 or 365"))
    }
}

impl From<PlanDuration> for u16 {
    fn from(duration: PlanDuration) -> Self {
        duration.days()
    }
}

/// A plan in the catalogue; build it with [`Plan::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The plan's id.
    pub id: PlanId,
    /// Stable human-readable code, `"{tier}_{days}"` (e.g. `"pro_90"`).
    pub code: String,
    /// Product tier.
    pub tier: PlanTier,
    /// How long one purchase lasts.
    pub duration: PlanDuration,
    /// At most one price per currency, in [`Currency`] order.
    prices: Vec<Money>,
    /// Traffic allowance per purchase.
    pub traffic_limit: TrafficLimit,
    /// How many devices may connect at once (at least 1).
    pub device_limit: u16,
    /// Whether the plan is on sale.
    pub is_active: bool,
    /// Position in listings, ascending.
    pub sort_order: i32,
}

impl Plan {
    /// Builds a plan, deriving its code and checking its prices and device limit.
    #[expect(
        clippy::too_many_arguments,
        reason = "a plan has this many independent attributes; a builder would only hide them"
    )]
    pub fn new(
        id: PlanId,
        tier: PlanTier,
        duration: PlanDuration,
        prices: Vec<Money>,
        traffic_limit: TrafficLimit,
        device_limit: u16,
        is_active: bool,
        sort_order: i32,
    ) -> Result<Self, DomainError> {
        if device_limit == 0 {
            return Err(DomainError::invalid("device_limit", "must be at least 1"));
        }
        Ok(Self {
            id,
            code: Self::code_for(tier, duration),
            tier,
            duration,
            prices: Self::checked_prices(prices)?,
            traffic_limit,
            device_limit,
            is_active,
            sort_order,
        })
    }

    /// The code a plan of this tier and duration carries, e.g. `"pro_90"`.
    pub fn code_for(tier: PlanTier, duration: PlanDuration) -> String {
        format!("{}_{}", tier.as_str(), duration.days())
    }

    /// The plan's prices, one per currency, in [`Currency`] order.
    pub fn prices(&self) -> &[Money] {
        &self.prices
    }

    /// The price in `currency`, if the plan is sold in it.
    pub fn price_in(&self, currency: Currency) -> Option<Money> {
        self.prices
            .iter()
            .copied()
            .find(|p| p.currency() == currency)
    }

    /// Replaces the prices, with the same checks as [`Plan::new`].
    pub fn set_prices(&mut self, prices: Vec<Money>) -> Result<(), DomainError> {
        self.prices = Self::checked_prices(prices)?;
        Ok(())
    }

    fn checked_prices(mut prices: Vec<Money>) -> Result<Vec<Money>, DomainError> {
        if prices.is_empty() {
            return Err(DomainError::invalid(
                "prices",
                "a plan needs at least one price",
            ));
        }
        prices.sort_by_key(Money::currency);
        if let Some(pair) = prices
            .windows(2)
            .find(|pair| pair[0].currency() == pair[1].currency())
        {
            return Err(DomainError::invalid(
                "prices",
                format!("more than one price in {}", pair[0].currency()),
            ));
        }
        Ok(prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, currency: Currency) -> Money {
        Money::new(minor, currency).unwrap()
    }

    fn plan_with(prices: Vec<Money>, device_limit: u16) -> Result<Plan, DomainError> {
        Plan::new(
            PlanId::new(),
            PlanTier::Pro,
            PlanDuration::Days90,
            prices,
            TrafficLimit::Unlimited,
            device_limit,
            true,
            10,
        )
    }

    #[track_caller]
    fn assert_invalid(result: Result<Plan, DomainError>, expected: &str) {
        match result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected),
            other => panic!("expected Invalid {{ field: {expected:?} }}, got {other:?}"),
        }
    }

    #[test]
    fn new_derives_code_and_sorts_prices() {
        let stars = money(750, Currency::Xtr);
        let usd = money(1299, Currency::Usd);
        let rub = money(99_900, Currency::Rub);
        let plan = plan_with(vec![stars, usd, rub], 3).unwrap();
        assert_eq!(plan.code, "pro_90");
        assert_eq!(plan.prices(), &[usd, rub, stars]);
        assert_eq!(plan.price_in(Currency::Rub), Some(rub));
        assert_eq!(plan.device_limit, 3);
    }

    #[test]
    fn price_in_missing_currency_is_none() {
        let plan = plan_with(vec![money(499, Currency::Usd)], 1).unwrap();
        assert_eq!(plan.price_in(Currency::Xtr), None);
    }

    #[test]
    fn new_rejects_bad_prices_and_devices() {
        assert_invalid(plan_with(vec![], 1), "prices");
        let twice = vec![money(499, Currency::Usd), money(500, Currency::Usd)];
        assert_invalid(plan_with(twice, 1), "prices");
        assert_invalid(
            plan_with(vec![money(499, Currency::Usd)], 0),
            "device_limit",
        );
    }

    #[test]
    fn set_prices_keeps_the_rules() {
        let mut plan = plan_with(vec![money(499, Currency::Usd)], 1).unwrap();
        assert_invalid(plan.set_prices(vec![]).map(|()| plan.clone()), "prices");
        assert_eq!(plan.prices(), &[money(499, Currency::Usd)]);
        plan.set_prices(vec![money(10, Currency::Xtr), money(1, Currency::Usd)])
            .unwrap();
        assert_eq!(
            plan.prices(),
            &[money(1, Currency::Usd), money(10, Currency::Xtr)]
        );
    }

    #[test]
    fn code_for_every_combination_is_unique() {
        let mut codes = std::collections::HashSet::new();
        for tier in PlanTier::ALL {
            for duration in PlanDuration::ALL {
                assert!(codes.insert(Plan::code_for(*tier, *duration)));
            }
        }
        assert!(codes.contains("cyber_365"));
        assert!(codes.contains("basic_30"));
    }

    #[test]
    fn duration_days_and_conversions() {
        let days: Vec<u16> = PlanDuration::ALL.iter().map(|d| d.days()).collect();
        assert_eq!(days, [30, 90, 180, 365]);
        for duration in PlanDuration::ALL {
            assert_eq!(PlanDuration::try_from(duration.days()), Ok(*duration));
            let json = serde_json::to_string(duration).unwrap();
            assert_eq!(json, duration.days().to_string());
            assert_eq!(
                serde_json::from_str::<PlanDuration>(&json).unwrap(),
                *duration
            );
        }
        for bad in [0, 1, 31, 364, 366, u16::MAX] {
            let err = PlanDuration::try_from(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    DomainError::Invalid {
                        field: "duration_days",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        assert!(serde_json::from_str::<PlanDuration>("60").is_err());
    }

    #[test]
    fn tier_strings_and_plan_serialisation() {
        assert_eq!("ultra".parse::<PlanTier>().unwrap(), PlanTier::Ultra);
        let err = "gold".parse::<PlanTier>().unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field: "tier", .. }),
            "{err:?}"
        );

        let plan = plan_with(vec![money(499, Currency::Usd)], 2).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["code"], "pro_90");
        assert_eq!(json["tier"], "pro");
        assert_eq!(json["duration"], 90);
        assert_eq!(json["traffic_limit"], serde_json::Value::Null);
        assert_eq!(
            json["prices"],
            serde_json::json!([{"amount_minor": 499, "currency": "USD"}])
        );
    }
}
