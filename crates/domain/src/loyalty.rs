//! The loyalty program: levels earned by continuous paid tenure, counted in paid days (so long plans
//! accelerate growth), kept through a grace period after the paid coverage ends, with a one-time bonus per
//! level.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Language, macros::string_enum};

string_enum! {
    /// A loyalty level, lowest first.
    pub enum LoyaltyLevel (field = "level") {
        /// Every customer (0 months).
        Bronze => "bronze",
        /// 3 months of paid tenure.
        Silver => "silver",
        /// 6 months: priority support.
        Gold => "gold",
        /// 12 months: premium nodes and early access.
        Platinum => "platinum",
    }
}

/// Paid days that make a loyalty month.
pub const DAYS_PER_MONTH: u32 = 30;

/// Days after the paid coverage ends during which the level is kept; after them the streak restarts.
pub const GRACE_DAYS: i64 = 14;

impl LoyaltyLevel {
    /// Months of paid tenure the level needs.
    pub const fn months(self) -> u32 {
        match self {
            Self::Bronze => 0,
            Self::Silver => 3,
            Self::Gold => 6,
            Self::Platinum => 12,
        }
    }

    /// Paid days the level needs.
    pub const fn threshold_days(self) -> u32 {
        self.months() * DAYS_PER_MONTH
    }

    /// Free days granted once when the level is first reached.
    pub const fn bonus_days(self) -> u32 {
        match self {
            Self::Bronze => 0,
            Self::Silver => 3,
            Self::Gold => 7,
            Self::Platinum => 14,
        }
    }

    /// Whether the level's customers get priority support.
    pub const fn priority_support(self) -> bool {
        matches!(self, Self::Gold | Self::Platinum)
    }

    /// Whether the level's customers get early access to new features.
    pub const fn early_access(self) -> bool {
        matches!(self, Self::Platinum)
    }

    /// Whether the level's customers get the premium nodes squad.
    pub const fn premium_squad(self) -> bool {
        matches!(self, Self::Platinum)
    }

    /// The level `tenure_days` paid days reach.
    pub fn for_tenure(tenure_days: u32) -> Self {
        Self::ALL
            .iter()
            .rev()
            .copied()
            .find(|level| tenure_days >= level.threshold_days())
            .unwrap_or(Self::Bronze)
    }

    /// The next level up, if any.
    pub fn next(self) -> Option<Self> {
        Self::ALL.iter().copied().find(|level| *level > self)
    }

    /// The levels with a bonus that `tenure_days` reach, lowest first.
    pub fn rewarded_up_to(tenure_days: u32) -> impl Iterator<Item = Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |level| level.bonus_days() > 0 && tenure_days >= level.threshold_days())
    }

    /// The level's name in `language`.
    pub const fn title(self, language: Language) -> &'static str {
        match (self, language) {
            (Self::Bronze, Language::En) => "Bronze",
            (Self::Silver, Language::En) => "Silver",
            (Self::Gold, Language::En) => "Gold",
            (Self::Platinum, Language::En) => "Platinum",
            (Self::Bronze, Language::Ru) => "Бронза",
            (Self::Silver, Language::Ru) => "Серебро",
            (Self::Gold, Language::Ru) => "Золото",
            (Self::Platinum, Language::Ru) => "Платина",
        }
    }

    const fn rank(self) -> u8 {
        match self {
            Self::Bronze => 0,
            Self::Silver => 1,
            Self::Gold => 2,
            Self::Platinum => 3,
        }
    }
}

impl PartialOrd for LoyaltyLevel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LoyaltyLevel {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// A customer's paid streak: paid days counted since it (re)started, and when the paid coverage ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tenure {
    /// Paid days in the current streak.
    pub days: u32,
    /// When the paid coverage ends (bonus and free days not counted); `None` before the first payment.
    pub paid_until: Option<DateTime<Utc>>,
}

impl Tenure {
    /// When the grace period after the paid coverage ends.
    pub fn grace_until(&self) -> Option<DateTime<Utc>> {
        self.paid_until
            .and_then(|until| until.checked_add_signed(TimeDelta::days(GRACE_DAYS)))
    }

    /// Whether the streak is broken at `now`: the grace period after the paid coverage is over.
    pub fn lapsed_at(&self, now: DateTime<Utc>) -> bool {
        self.grace_until().is_some_and(|grace| grace <= now)
    }

    /// Paid days that count at `now` (none once the streak is broken).
    pub fn days_at(&self, now: DateTime<Utc>) -> u32 {
        if self.lapsed_at(now) { 0 } else { self.days }
    }

    /// The level at `now`.
    pub fn level_at(&self, now: DateTime<Utc>) -> LoyaltyLevel {
        LoyaltyLevel::for_tenure(self.days_at(now))
    }

    /// Whether the paid coverage has ended at `now` but the level is still kept.
    pub fn in_grace_at(&self, now: DateTime<Utc>) -> bool {
        self.paid_until.is_some_and(|until| until <= now) && !self.lapsed_at(now)
    }

    /// The next level and the paid days still needed for it at `now`, if there is one.
    pub fn progress_at(&self, now: DateTime<Utc>) -> Option<(LoyaltyLevel, u32)> {
        let days = self.days_at(now);
        LoyaltyLevel::for_tenure(days)
            .next()
            .map(|next| (next, next.threshold_days().saturating_sub(days)))
    }

    /// Counts `days` paid at `now`: a broken streak restarts first; the paid coverage grows from its end, or
    /// from `now` if it already ended.
    pub fn credit(&mut self, days: u32, now: DateTime<Utc>) {
        self.days = self.days_at(now).saturating_add(days);
        let start = self.paid_until.map_or(now, |until| until.max(now));
        self.paid_until = Some(
            start
                .checked_add_signed(TimeDelta::days(i64::from(days)))
                .unwrap_or(start),
        );
    }

    /// Takes back `days` of a refunded payment: never below zero, and the coverage ends no earlier than `now`.
    pub fn debit(&mut self, days: u32, now: DateTime<Utc>) {
        self.days = self.days.saturating_sub(days);
        self.paid_until = self.paid_until.map(|until| {
            until
                .checked_sub_signed(TimeDelta::days(i64::from(days)))
                .unwrap_or(now)
                .max(now)
                .min(until)
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::days(n)
    }

    #[test]
    fn levels_follow_paid_days() {
        assert_eq!(LoyaltyLevel::for_tenure(0), LoyaltyLevel::Bronze);
        assert_eq!(LoyaltyLevel::for_tenure(89), LoyaltyLevel::Bronze);
        assert_eq!(LoyaltyLevel::for_tenure(90), LoyaltyLevel::Silver);
        assert_eq!(LoyaltyLevel::for_tenure(180), LoyaltyLevel::Gold);
        assert_eq!(LoyaltyLevel::for_tenure(365), LoyaltyLevel::Platinum);
        assert_eq!(LoyaltyLevel::Gold.next(), Some(LoyaltyLevel::Platinum));
        assert_eq!(LoyaltyLevel::Platinum.next(), None);
        assert!(LoyaltyLevel::Bronze < LoyaltyLevel::Silver);
        assert!(LoyaltyLevel::Gold.priority_support() && !LoyaltyLevel::Gold.early_access());
        assert!(LoyaltyLevel::Platinum.premium_squad());
        assert_eq!(
            LoyaltyLevel::rewarded_up_to(365).collect::<Vec<_>>(),
            [
                LoyaltyLevel::Silver,
                LoyaltyLevel::Gold,
                LoyaltyLevel::Platinum
            ]
        );
        assert_eq!(LoyaltyLevel::rewarded_up_to(89).count(), 0);
    }

    #[test]
    fn an_annual_payment_reaches_platinum_at_once() {
        let mut tenure = Tenure::default();
        tenure.credit(365, day(0));
        assert_eq!(tenure.level_at(day(0)), LoyaltyLevel::Platinum);
        assert_eq!(tenure.paid_until, Some(day(365)));
        assert_eq!(tenure.progress_at(day(0)), None);
    }

    #[test]
    fn grace_keeps_the_level_and_then_the_streak_restarts() {
        let mut tenure = Tenure::default();
        for month in 0..3 {
            tenure.credit(30, day(month * 30));
        }
        assert_eq!(tenure.paid_until, Some(day(90)));
        assert_eq!(tenure.level_at(day(95)), LoyaltyLevel::Silver);
        assert!(tenure.in_grace_at(day(95)));
        assert_eq!(tenure.grace_until(), Some(day(104)));
        assert_eq!(tenure.progress_at(day(95)), Some((LoyaltyLevel::Gold, 90)));

        // Renewed inside the grace: the streak goes on from the coverage's end.
        let mut kept = tenure;
        kept.credit(30, day(100));
        assert_eq!(kept.days, 120);
        assert_eq!(kept.paid_until, Some(day(130)));

        // After the grace: Bronze, and the streak restarts from the payment.
        assert_eq!(tenure.level_at(day(104)), LoyaltyLevel::Bronze);
        assert!(!tenure.in_grace_at(day(104)));
        tenure.credit(30, day(110));
        assert_eq!(tenure.days, 30);
        assert_eq!(tenure.paid_until, Some(day(140)));
    }

    #[test]
    fn a_refund_takes_days_back_but_not_below_zero_or_the_past() {
        let mut tenure = Tenure::default();
        tenure.credit(30, day(0));
        tenure.debit(30, day(10));
        assert_eq!(tenure.days, 0);
        assert_eq!(tenure.paid_until, Some(day(10)));
        tenure.debit(30, day(12));
        assert_eq!(tenure.days, 0);
        assert_eq!(tenure.paid_until, Some(day(10)), "never moves later");
    }
}
