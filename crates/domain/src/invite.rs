//! Invites: single-use codes that give a friend free access, issued to paying customers per their plan's rule
//! (more during promotions) or by staff, and earning the inviter bonus days when the friend first pays.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{CustomerId, DomainError, PlanTier, StaffId, macros::string_enum};

string_enum! {
    /// Where an invite code stands.
    pub enum InviteStatus (field = "status") {
        /// Can be redeemed.
        Available => "available",
        /// Redeemed by a friend.
        Used => "used",
        /// Past its validity, or withdrawn (its purchase was refunded, or staff revoked it).
        Expired => "expired",
    }
}

string_enum! {
    /// How an invite code came to be.
    pub enum InviteSource (field = "source") {
        /// Earned with a purchase, per the plan tier's rule.
        Purchase => "purchase",
        /// Issued by staff (partners, testers).
        Staff => "staff",
    }
}

/// Crockford's base32 alphabet: no `I`, `L`, `O` or `U` to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of an invite code: 12 base32 characters, 60 random bits.
pub const INVITE_CODE_LEN: usize = 12;

/// `len` (at most 12) characters of base32 from the OS random generator, 5 bits each.
pub fn random_code(len: usize) -> String {
    // The low 60 bits of a v4 UUID are all random (its version and variant bits are higher up).
    let random = Uuid::new_v4().as_u128();
    (0..len.min(12))
        .map(|i| char::from(ALPHABET[((random >> (i * 5)) & 31) as usize]))
        .collect()
}

/// A fresh, unguessable invite code.
pub fn new_invite_code() -> String {
    random_code(INVITE_CODE_LEN)
}

/// An invite code as customers type it: case-insensitive, spaces, dashes and an `inv_` prefix ignored.
pub fn normalize_invite_code(typed: &str) -> String {
    let typed = typed.trim();
    let typed = typed
        .strip_prefix("inv_")
        .or_else(|| typed.strip_prefix("INV_"))
        .unwrap_or(typed);
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// How a plan tier's purchases earn invites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InviteRule {
    /// The tier the rule applies to.
    pub tier: PlanTier,
    /// Codes issued per purchase (0 switches the tier off).
    pub codes_per_purchase: u32,
    /// Free days an invited friend gets.
    pub free_days: u32,
    /// Days the inviter gets when the friend first pays (0: none).
    pub bonus_days: u32,
    /// Days a code stays valid after it is issued.
    pub valid_days: u32,
}

impl InviteRule {
    /// Checks the limits: 0–20 codes, 7–30 free days, 0–30 bonus days, 1–365 days valid.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.codes_per_purchase > 20 {
            return Err(DomainError::invalid(
                "codes_per_purchase",
                "must be from 0 to 20",
            ));
        }
        validate_free_days(self.free_days)?;
        if self.bonus_days > 30 {
            return Err(DomainError::invalid("bonus_days", "must be from 0 to 30"));
        }
        validate_valid_days(self.valid_days)
    }
}

/// Checks the free days of an invite: 7 to 30.
pub fn validate_free_days(days: u32) -> Result<(), DomainError> {
    if (7..=30).contains(&days) {
        Ok(())
    } else {
        Err(DomainError::invalid("free_days", "must be from 7 to 30"))
    }
}

/// Checks how long an invite stays valid: 1 to 365 days.
pub fn validate_valid_days(days: u32) -> Result<(), DomainError> {
    if (1..=365).contains(&days) {
        Ok(())
    } else {
        Err(DomainError::invalid("valid_days", "must be from 1 to 365"))
    }
}

/// A window in which purchases earn more invite codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitePromotion {
    /// The promotion's id.
    pub id: Uuid,
    /// What staff call it.
    pub name: String,
    /// The tier it applies to; `None` for every tier.
    pub tier: Option<PlanTier>,
    /// Codes per purchase are multiplied by this (2–10).
    pub multiplier: u32,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// When it ends (exclusive).
    pub ends_at: DateTime<Utc>,
}

impl InvitePromotion {
    /// Checks a new promotion: a name of 1–100 characters, ×2 to ×10, and an end after its start.
    pub fn validate(&self) -> Result<(), DomainError> {
        let name = self.name.trim().chars().count();
        if !(1..=100).contains(&name) {
            return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
        }
        if !(2..=10).contains(&self.multiplier) {
            return Err(DomainError::invalid("multiplier", "must be from 2 to 10"));
        }
        if self.ends_at <= self.starts_at {
            return Err(DomainError::invalid("ends_at", "must be after starts_at"));
        }
        Ok(())
    }

    /// Whether it boosts a purchase of `tier` at `now`.
    pub fn applies(&self, tier: PlanTier, now: DateTime<Utc>) -> bool {
        self.tier.is_none_or(|t| t == tier) && self.starts_at <= now && now < self.ends_at
    }
}

/// Codes a purchase of `tier` earns at `now` under `rule`: promotions multiply (the largest applies, they do
/// not stack).
pub fn codes_for_purchase(
    rule: &InviteRule,
    promotions: &[InvitePromotion],
    now: DateTime<Utc>,
) -> u32 {
    let multiplier = promotions
        .iter()
        .filter(|p| p.applies(rule.tier, now))
        .map(|p| p.multiplier)
        .max()
        .unwrap_or(1);
    rule.codes_per_purchase.saturating_mul(multiplier)
}

/// An invite code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    /// The invite's id.
    pub id: Uuid,
    /// The code friends type (or open as `/start inv_<code>`).
    pub code: String,
    /// The customer who may hand it out; `None` for a code staff issued to someone outside.
    pub owner_id: Option<CustomerId>,
    /// How it came to be.
    pub source: InviteSource,
    /// The purchase that earned it.
    pub payment_id: Option<Uuid>,
    /// The staff member who issued it by hand.
    pub issued_by: Option<StaffId>,
    /// Staff's label (e.g. the partner it was given to).
    pub note: Option<String>,
    /// Free days the friend gets.
    pub free_days: u32,
    /// Days the owner gets when the friend first pays.
    pub bonus_days: u32,
    /// When it stops being redeemable.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Who redeemed it (`None` if not, or if that customer was deleted since).
    pub redeemed_by: Option<CustomerId>,
    /// When it was redeemed.
    pub redeemed_at: Option<DateTime<Utc>>,
    /// When withdrawn (a refunded purchase, or staff).
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the owner got the bonus for the friend's first payment.
    pub bonus_paid_at: Option<DateTime<Utc>>,
}

impl Invite {
    /// Where the code stands at `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> InviteStatus {
        if self.redeemed_at.is_some() {
            InviteStatus::Used
        } else if self.revoked_at.is_some() || self.expires_at <= now {
            InviteStatus::Expired
        } else {
            InviteStatus::Available
        }
    }

    /// Why `customer` may not redeem it at `now`, if they may not.
    pub fn refusal(&self, customer: CustomerId, now: DateTime<Utc>) -> Option<InviteRefusal> {
        match self.status_at(now) {
            InviteStatus::Used => Some(InviteRefusal::Used),
            InviteStatus::Expired => Some(InviteRefusal::Expired),
            InviteStatus::Available if self.owner_id == Some(customer) => {
                Some(InviteRefusal::OwnCode)
            }
            InviteStatus::Available => None,
        }
    }
}

/// Why an invite code cannot be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteRefusal {
    /// No invite has this code.
    #[error("no invite has this code")]
    Unknown,
    /// Somebody redeemed it already.
    #[error("this invite code was already used")]
    Used,
    /// Past its validity or withdrawn.
    #[error("this invite code has expired")]
    Expired,
    /// The customer's own code.
    #[error("you cannot redeem your own invite code")]
    OwnCode,
    /// The customer already had free access from an invite.
    #[error("you already received free access from an invite")]
    AlreadyGranted,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
    }

    fn rule(codes: u32) -> InviteRule {
        InviteRule {
            tier: PlanTier::Pro,
            codes_per_purchase: codes,
            free_days: 14,
            bonus_days: 7,
            valid_days: 30,
        }
    }

    fn promotion(tier: Option<PlanTier>, multiplier: u32, from: u32, to: u32) -> InvitePromotion {
        InvitePromotion {
            id: Uuid::now_v7(),
            name: "black friday".into(),
            tier,
            multiplier,
            starts_at: at(from),
            ends_at: at(to),
        }
    }

    #[test]
    fn codes_are_unguessable_base32_and_normalised_as_typed() {
        let codes: std::collections::HashSet<String> =
            (0..1000).map(|_| new_invite_code()).collect();
        assert_eq!(codes.len(), 1000);
        for code in &codes {
            assert_eq!(code.len(), INVITE_CODE_LEN);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        }
        assert_eq!(
            normalize_invite_code(" inv_abcd-efgh 1234 "),
            "ABCDEFGH1234"
        );
        assert_eq!(normalize_invite_code("INV_XYZ"), "XYZ");
    }

    #[test]
    fn the_largest_running_promotion_for_the_tier_multiplies_the_codes() {
        let promotions = [
            promotion(None, 2, 20, 28),
            promotion(Some(PlanTier::Pro), 3, 25, 27),
            promotion(Some(PlanTier::Basic), 10, 1, 30),
        ];
        assert_eq!(codes_for_purchase(&rule(2), &promotions, at(10)), 2);
        assert_eq!(codes_for_purchase(&rule(2), &promotions, at(21)), 4);
        assert_eq!(codes_for_purchase(&rule(2), &promotions, at(26)), 6);
        // The end is exclusive.
        assert_eq!(codes_for_purchase(&rule(2), &promotions, at(28)), 2);
        assert_eq!(codes_for_purchase(&rule(0), &promotions, at(26)), 0);
    }

    #[test]
    fn rules_and_promotions_are_checked() {
        assert!(rule(2).validate().is_ok());
        assert!(rule(21).validate().is_err());
        assert!(
            InviteRule {
                free_days: 6,
                ..rule(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            InviteRule {
                free_days: 31,
                ..rule(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            InviteRule {
                bonus_days: 31,
                ..rule(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            InviteRule {
                valid_days: 0,
                ..rule(1)
            }
            .validate()
            .is_err()
        );
        assert!(promotion(None, 2, 1, 2).validate().is_ok());
        assert!(promotion(None, 1, 1, 2).validate().is_err());
        assert!(promotion(None, 2, 2, 2).validate().is_err());
    }

    #[test]
    fn status_and_refusals_follow_the_code_s_life() {
        let owner = CustomerId::new();
        let friend = CustomerId::new();
        let mut invite = Invite {
            id: Uuid::now_v7(),
            code: new_invite_code(),
            owner_id: Some(owner),
            source: InviteSource::Purchase,
            payment_id: None,
            issued_by: None,
            note: None,
            free_days: 14,
            bonus_days: 7,
            expires_at: at(20),
            created_at: at(1),
            redeemed_by: None,
            redeemed_at: None,
            revoked_at: None,
            bonus_paid_at: None,
        };
        assert_eq!(invite.status_at(at(10)), InviteStatus::Available);
        assert_eq!(invite.refusal(friend, at(10)), None);
        assert_eq!(invite.refusal(owner, at(10)), Some(InviteRefusal::OwnCode));
        assert_eq!(invite.refusal(friend, at(20)), Some(InviteRefusal::Expired));
        invite.revoked_at = Some(at(5));
        assert_eq!(invite.refusal(friend, at(10)), Some(InviteRefusal::Expired));
        invite.revoked_at = None;
        invite.redeemed_at = Some(at(11));
        assert_eq!(invite.status_at(at(25)), InviteStatus::Used);
        assert_eq!(invite.refusal(friend, at(12)), Some(InviteRefusal::Used));
    }
}
