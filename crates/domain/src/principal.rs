//! Who is acting: a customer or a staff member.

use uuid::Uuid;

use crate::{CustomerId, StaffId};

/// An authenticated party; customers and staff never share tokens, sessions or routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A customer account.
    Customer(CustomerId),
    /// A staff account.
    Staff(StaffId),
}

impl Principal {
    /// `"customer"` or `"staff"`, as stored.
    pub const fn kind(self) -> &'static str {
        match self {
            Self::Customer(_) => "customer",
            Self::Staff(_) => "staff",
        }
    }

    /// The account id.
    pub const fn id(self) -> Uuid {
        match self {
            Self::Customer(id) => id.as_uuid(),
            Self::Staff(id) => id.as_uuid(),
        }
    }

    /// Rebuilds a principal from its stored kind and id; `None` for an unknown kind.
    pub fn from_parts(kind: &str, id: Uuid) -> Option<Self> {
        match kind {
            "customer" => Some(Self::Customer(CustomerId::from_uuid(id))),
            "staff" => Some(Self::Staff(StaffId::from_uuid(id))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_parts() {
        for principal in [
            Principal::Customer(CustomerId::new()),
            Principal::Staff(StaffId::new()),
        ] {
            assert_eq!(
                Principal::from_parts(principal.kind(), principal.id()),
                Some(principal)
            );
        }
        assert_eq!(Principal::from_parts("robot", Uuid::nil()), None);
    }
}
