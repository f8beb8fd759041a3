//! CyberVPN's business vocabulary: typed ids and validated values (email, money, traffic, ...),
//! the customer, staff, plan, subscription, payment, promo code, invite and server entities with the rules that guard
//! them, and the one catalogue of error codes every edge maps to. No I/O, no framework.

mod macros;

pub mod analytics;
pub mod broadcast;
pub mod customer;
pub mod error;
pub mod id;
pub mod invite;
pub mod live;
pub mod loyalty;
pub mod notice;
pub mod payment;
pub mod plan;
pub mod principal;
pub mod promo;
pub mod server;
pub mod staff;
pub mod subscription;
pub mod values;

pub use analytics::{Bucket, Granularity, ReportPeriod, basis_points};
pub use broadcast::{BroadcastAudience, BroadcastStatus, DeliveryOutcome};
pub use customer::{Customer, CustomerStatus, NewCustomer};
pub use error::{DomainError, ErrorCode};
pub use id::{CustomerId, PaymentId, PlanId, PromoCodeId, ServerId, StaffId, SubscriptionId};
pub use invite::{Invite, InvitePromotion, InviteRefusal, InviteRule, InviteSource, InviteStatus};
pub use live::{LiveEvent, LiveTopic};
pub use loyalty::{LoyaltyLevel, Tenure};
pub use notice::NoticeKind;
pub use payment::{Payment, PaymentProvider, PaymentStatus};
pub use plan::{Plan, PlanDuration, PlanTier};
pub use principal::Principal;
pub use promo::{PromoBenefit, PromoCode};
pub use server::{Server, ServerStatus};
pub use staff::{Permission, StaffAccount, StaffRole};
pub use subscription::{PanelIdentity, Subscription, SubscriptionStatus};
pub use values::*;
