//! Subscriptions: a customer's paid (or trial) right to use the VPN until a date.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    CustomerId, DomainError, PlanId, SubscriptionId, TrafficBytes, TrafficLimit,
    macros::string_enum,
};

string_enum! {
    /// Where a subscription stands.
    pub enum SubscriptionStatus (field = "status") {
        /// Running.
        Active => "active",
        /// Ran past its end date.
        Expired => "expired",
        /// Switched off by staff; cannot be extended.
        Disabled => "disabled",
        /// Used up its traffic.
        Limited => "limited",
    }
}

/// The subscription's user on the VPN panel (Remnawave 3.x user ids are numeric).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PanelIdentity {
    /// The panel's numeric user id.
    pub user_id: i64,
    /// The panel's short UUID used in subscription links.
    pub short_uuid: String,
    /// The URL customers import into their VPN client.
    pub subscription_url: String,
}

/// A customer's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The subscription's id.
    pub id: SubscriptionId,
    /// Whose subscription this is.
    pub customer_id: CustomerId,
    /// The plan bought; `None` for a trial.
    pub plan_id: Option<PlanId>,
    /// Where it stands.
    pub status: SubscriptionStatus,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// Traffic used so far.
    pub traffic_used: TrafficBytes,
    /// Traffic allowance.
    pub traffic_limit: TrafficLimit,
    /// Devices that may connect at once; `None` means the plan's (or the configured default).
    pub device_limit: Option<u16>,
    /// The matching panel user, once provisioned.
    pub panel: Option<PanelIdentity>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// A new active subscription of `days` days from `now` (a purchase, a trial or a grant by staff).
    pub fn start(
        customer_id: CustomerId,
        plan_id: Option<PlanId>,
        days: u32,
        traffic_limit: TrafficLimit,
        device_limit: Option<u16>,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        let mut subscription = Self {
            id: SubscriptionId::new(),
            customer_id,
            plan_id,
            status: SubscriptionStatus::Expired,
            expires_at: now,
            traffic_used: TrafficBytes::ZERO,
            traffic_limit,
            device_limit,
            panel: None,
            created_at: now,
            updated_at: now,
        };
        subscription.extend_by(days, now)?;
        Ok(subscription)
    }

    /// Longest single extension, in days (ten years).
    pub const MAX_EXTENSION_DAYS: u32 = 3650;

    /// Whether the subscription grants access at `now`: active and not yet past its end.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.status == SubscriptionStatus::Active && self.expires_at > now
    }

    /// Adds `days` (1..=3650) of service and stamps `updated_at`.
    ///
    /// Time still left is kept: the extension starts at `expires_at` if that is after `now`,
    /// otherwise at `now`. An expired subscription becomes active again; a limited one stays
    /// limited (more days do not mean more traffic); a disabled one cannot be extended.
    pub fn extend_by(&mut self, days: u32, now: DateTime<Utc>) -> Result<(), DomainError> {
        if !(1..=Self::MAX_EXTENSION_DAYS).contains(&days) {
            return Err(DomainError::invalid("days", "must be between 1 and 3650"));
        }
        if self.status == SubscriptionStatus::Disabled {
            return Err(DomainError::InvalidTransition {
                entity: "subscription",
                from: SubscriptionStatus::Disabled.as_str(),
                to: SubscriptionStatus::Active.as_str(),
            });
        }
        let start = self.expires_at.max(now);
        self.expires_at = start
            .checked_add_signed(TimeDelta::days(i64::from(days)))
            .ok_or_else(|| DomainError::invalid("days", "end date is out of range"))?;
        if self.status == SubscriptionStatus::Expired {
            self.status = SubscriptionStatus::Active;
        }
        self.updated_at = now;
        Ok(())
    }

    /// Takes back `days` of service (a refunded purchase): the end moves earlier, but never before `now`;
    /// a subscription left with no time expires at once.
    pub fn shorten_by(&mut self, days: u32, now: DateTime<Utc>) {
        let end = self
            .expires_at
            .checked_sub_signed(TimeDelta::days(i64::from(days)))
            .unwrap_or(now)
            .max(now);
        self.expires_at = end.min(self.expires_at);
        if self.expires_at <= now && self.status != SubscriptionStatus::Disabled {
            self.status = SubscriptionStatus::Expired;
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn shortening_takes_back_days_but_never_the_past() {
        let mut running = subscription(SubscriptionStatus::Active, at(20));
        running.shorten_by(5, at(1));
        assert_eq!(running.expires_at, at(15));
        assert_eq!(running.status, SubscriptionStatus::Active);
        running.shorten_by(30, at(1));
        assert_eq!(running.expires_at, at(1));
        assert_eq!(running.status, SubscriptionStatus::Expired);
        let mut ended = subscription(SubscriptionStatus::Expired, at(1));
        ended.shorten_by(3, at(10));
        assert_eq!(
            ended.expires_at,
            at(1),
            "an ended subscription does not move forward"
        );
        let mut disabled = subscription(SubscriptionStatus::Disabled, at(20));
        disabled.shorten_by(30, at(1));
        assert_eq!(disabled.status, SubscriptionStatus::Disabled);
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, day, 12, 0, 0).unwrap()
    }

    fn subscription(status: SubscriptionStatus, expires_at: DateTime<Utc>) -> Subscription {
        Subscription {
            id: SubscriptionId::new(),
            customer_id: CustomerId::new(),
            plan_id: None,
            status,
            expires_at,
            traffic_used: TrafficBytes::ZERO,
            traffic_limit: TrafficLimit::Unlimited,
            panel: Some(PanelIdentity {
                user_id: 17,
                short_uuid: "abc123".to_owned(),
                subscription_url: "https://sub.example.com/abc123".to_owned(),
            }),
            device_limit: None,
            created_at: at(1),
            updated_at: at(1),
        }
    }

    #[test]
    fn is_active_at_needs_active_status_and_future_end() {
        let active = subscription(SubscriptionStatus::Active, at(10));
        assert!(active.is_active_at(at(9)));
        assert!(
            !active.is_active_at(at(10)),
            "ends exactly now: no longer active"
        );
        assert!(!active.is_active_at(at(11)));
        for status in [
            SubscriptionStatus::Expired,
            SubscriptionStatus::Disabled,
            SubscriptionStatus::Limited,
        ] {
            assert!(
                !subscription(status, at(10)).is_active_at(at(9)),
                "{status}"
            );
        }
    }

    #[test]
    fn extend_keeps_remaining_time() {
        let mut sub = subscription(SubscriptionStatus::Active, at(10));
        sub.extend_by(30, at(5)).unwrap();
        assert_eq!(sub.expires_at, at(10) + TimeDelta::days(30));
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.updated_at, at(5));
    }

    #[test]
    fn extend_after_lapse_starts_now_and_reactivates() {
        let mut sub = subscription(SubscriptionStatus::Expired, at(2));
        sub.extend_by(7, at(20)).unwrap();
        assert_eq!(sub.expires_at, at(27));
        assert_eq!(sub.status, SubscriptionStatus::Active);
    }

    #[test]
    fn extend_keeps_limited_limited() {
        let mut sub = subscription(SubscriptionStatus::Limited, at(10));
        sub.extend_by(1, at(5)).unwrap();
        assert_eq!(sub.expires_at, at(11));
        assert_eq!(sub.status, SubscriptionStatus::Limited);
    }

    #[test]
    fn extend_rejects_disabled() {
        let mut sub = subscription(SubscriptionStatus::Disabled, at(10));
        let before = sub.clone();
        assert_eq!(
            sub.extend_by(30, at(5)),
            Err(DomainError::InvalidTransition {
                entity: "subscription",
                from: "disabled",
                to: "active",
            })
        );
        assert_eq!(sub, before);
    }

    #[test]
    fn extend_checks_day_range() {
        let mut sub = subscription(SubscriptionStatus::Active, at(10));
        for days in [0, 3651, u32::MAX] {
            let err = sub.extend_by(days, at(5)).unwrap_err();
            assert!(
                matches!(err, DomainError::Invalid { field: "days", .. }),
                "{err:?}"
            );
        }
        assert_eq!(sub.expires_at, at(10));
        sub.extend_by(3650, at(5)).unwrap();
        assert_eq!(sub.expires_at, at(10) + TimeDelta::days(3650));
    }

    #[test]
    fn extend_reports_calendar_overflow() {
        let mut sub = subscription(SubscriptionStatus::Active, DateTime::<Utc>::MAX_UTC);
        let err = sub.extend_by(1, at(5)).unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field: "days", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn status_strings() {
        assert_eq!(
            "limited".parse::<SubscriptionStatus>().unwrap(),
            SubscriptionStatus::Limited
        );
        let err = "paused".parse::<SubscriptionStatus>().unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "status",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
