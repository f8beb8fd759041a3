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

    /// Every permission this role holds: the one place the access model is defined.
    pub const fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::Viewer => &[ViewCustomers, ViewPlans, ViewServers],
            Self::Support => &[
                ViewCustomers,
                ViewPlans,
                ViewServers,
                BanCustomers,
                ViewPayments,
            ],
            Self::Operator => &[
                ViewCustomers,
                ViewPlans,
                ViewServers,
                BanCustomers,
                ManageCustomers,
                ManageSubscriptions,
                ViewPayments,
                ViewAnalytics,
            ],
            Self::Admin => &[
                ViewCustomers,
                ViewPlans,
                ViewServers,
                BanCustomers,
                ManageCustomers,
                ManageSubscriptions,
                ManageJobs,
                DeleteCustomers,
                ManagePlans,
                ViewStaff,
                ManageStaff,
                ViewAuditLog,
                ViewPayments,
                ManagePayments,
                ManagePromoCodes,
                SendBroadcasts,
                ManageTemplates,
                ViewAnalytics,
                ManageInvites,
            ],
            Self::SuperAdmin => Permission::ALL,
        }
    }

    /// Whether this role holds `permission`.
    pub fn can(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether a staff member with this role may create, change or disable accounts of `target` role:
    /// only roles strictly below their own, except that a super admin may manage anyone.
    pub fn may_manage(self, target: Self) -> bool {
        self.can(Permission::ManageStaff) && (self == Self::SuperAdmin || target < self)
    }
}

string_enum! {
    /// Something a staff member may do; each admin route requires exactly one.
    pub enum Permission (field = "permission") {
        /// List, search and read customer accounts.
        ViewCustomers => "view_customers",
        /// Edit customer accounts.
        ManageCustomers => "manage_customers",
        /// Ban and unban customers.
        BanCustomers => "ban_customers",
        /// Delete customer accounts (soft delete, personal data scrubbed).
        DeleteCustomers => "delete_customers",
        /// Read the plan catalogue including retired plans.
        ViewPlans => "view_plans",
        /// Create, change and retire plans.
        ManagePlans => "manage_plans",
        /// List staff accounts.
        ViewStaff => "view_staff",
        /// Create staff, change roles, disable accounts, reset their 2FA.
        ManageStaff => "manage_staff",
        /// Read the audit log of staff actions.
        ViewAuditLog => "view_audit_log",
        /// Change platform-wide settings (maintenance mode, signing keys).
        ManageSettings => "manage_settings",
        /// Read servers, their statistics and the monitoring views.
        ViewServers => "view_servers",
        /// Extend subscriptions, reset traffic, revoke subscription links.
        ManageSubscriptions => "manage_subscriptions",
        /// List and re-drive dead background jobs.
        ManageJobs => "manage_jobs",
        /// List, search and read payments.
        ViewPayments => "view_payments",
        /// Refund payments.
        ManagePayments => "manage_payments",
        /// Create, change and switch off promo codes.
        ManagePromoCodes => "manage_promo_codes",
        /// Send a message to all, active or trial customers through the bot.
        SendBroadcasts => "send_broadcasts",
        /// Reword the notices sent to customers.
        ManageTemplates => "manage_templates",
        /// Read business analytics: revenue, payment outcomes, growth, conversions, churn.
        ViewAnalytics => "view_analytics",
        /// Set invite rules and promotions, issue and withdraw invite codes.
        ManageInvites => "manage_invites",
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
mod permission_tests {
    use super::*;

    #[test]
    fn higher_roles_hold_every_permission_of_lower_roles() {
        for pair in StaffRole::ALL.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            for permission in lower.permissions() {
                assert!(
                    higher.can(*permission),
                    "{higher} lacks {permission} that {lower} has"
                );
            }
            assert!(higher.permissions().len() > lower.permissions().len());
        }
        assert_eq!(StaffRole::SuperAdmin.permissions(), Permission::ALL);
    }

    #[test]
    fn business_analytics_are_for_operators_and_above() {
        // Company-wide money figures: support sees single payments to help customers, not the totals.
        for role in StaffRole::ALL {
            assert_eq!(
                role.can(Permission::ViewAnalytics),
                role.at_least(StaffRole::Operator),
                "{role}"
            );
        }
    }

    #[test]
    fn staff_manage_only_roles_below_their_own() {
        assert!(StaffRole::SuperAdmin.may_manage(StaffRole::SuperAdmin));
        assert!(StaffRole::Admin.may_manage(StaffRole::Operator));
        assert!(!StaffRole::Admin.may_manage(StaffRole::Admin));
        assert!(!StaffRole::Admin.may_manage(StaffRole::SuperAdmin));
        assert!(
            !StaffRole::Operator.may_manage(StaffRole::Viewer),
            "no manage_staff"
        );
    }
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
