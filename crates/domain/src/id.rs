//! Typed entity ids: a `CustomerId` cannot be passed where a `PlanId` is expected.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

macro_rules! typed_id {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id that was minted elsewhere (database row, wire message).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| DomainError::invalid("id", "must be a UUID"))
            }
        }
    )+};
}

typed_id! {
    /// Identifies a customer (an end user of the VPN).
    CustomerId;
    /// Identifies a staff account (admin panel user).
    StaffId;
    /// Identifies a plan in the catalogue.
    PlanId;
    /// Identifies a customer's subscription.
    SubscriptionId;
    /// Identifies a payment.
    PaymentId;
    /// Identifies a VPN server (panel node).
    ServerId;
    /// Identifies a promo code.
    PromoCodeId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_distinct_and_ordered() {
        let first = CustomerId::new();
        let second = CustomerId::new();
        assert_ne!(first, second);
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second, "v7 ids minted later sort later");
        assert_eq!(PlanId::default().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let text = "0190a5f2-7b3c-7def-8a12-3456789abcde";
        let id: PaymentId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(id, PaymentId::from_uuid(Uuid::parse_str(text).unwrap()));
    }

    #[test]
    fn from_str_rejects_garbage_with_id_field() {
        let err = "not-a-uuid".parse::<ServerId>().unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field: "id", .. }),
            "{err:?}"
        );
        assert!("".parse::<StaffId>().is_err());
    }

    #[test]
    fn serde_is_a_plain_uuid_string() {
        let id = SubscriptionId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: SubscriptionId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }
}
