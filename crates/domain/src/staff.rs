//! Staff accounts and their roles in the admin panel.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Email, StaffId, Username, macros::string_enum};

string_enum! {
    /// What a staff member may do; later variants outrank earlier ones.
    #[derive(PartialOrd, Ord)]
    pub enum StaffRole (field = "role") {
        /// Reads dashboards.
        Viewer => "viewer",
        /// Helps customers.
        Support => "support",
        /// Runs servers and subscriptions.
        Operator => "operator",
        /// Manages plans, payments and staff.
        Admin => "admin",
        /// Everything, including other admins.
        SuperAdmin => "super_admin",
    }
}

impl StaffRole {
    /// Whether this role is `min` or outranks it.
    pub fn at_least(self, min: Self) -> bool {
        self >= min
    }
}

/// A staff member's account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaffAccount {
    /// The account's id.
    pub id: StaffId,
    /// Login email.
    pub email: Email,
    /// Display handle.
    pub username: Username,
    /// What they may do.
    pub role: StaffRole,
    /// Whether they may sign in.
    pub is_active: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainError;

    #[test]
    fn roles_are_ranked() {
        use StaffRole::*;
        assert!(SuperAdmin > Admin && Admin > Operator && Operator > Support && Support > Viewer);
        assert!(Admin.at_least(Admin));
        assert!(Admin.at_least(Support));
        assert!(!Support.at_least(Operator));
        assert!(SuperAdmin.at_least(Viewer));
        assert!(!Viewer.at_least(SuperAdmin));
        let mut sorted = StaffRole::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, StaffRole::ALL);
    }

    #[test]
    fn role_strings() {
        assert_eq!(StaffRole::SuperAdmin.as_str(), "super_admin");
        assert_eq!(
            "super_admin".parse::<StaffRole>().unwrap(),
            StaffRole::SuperAdmin
        );
        assert_eq!(
            serde_json::to_string(&StaffRole::SuperAdmin).unwrap(),
            "\"super_admin\""
        );
        let err = "superadmin".parse::<StaffRole>().unwrap_err();
        assert!(
            matches!(err, DomainError::Invalid { field: "role", .. }),
            "{err:?}"
        );
    }
}
