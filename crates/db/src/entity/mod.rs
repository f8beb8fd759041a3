//! sea-orm entities, one module per table; they never leave this crate's repositories.
#![expect(
    missing_docs,
    reason = "column fields mirror the migrations, which document them"
)]

pub mod audit_entry;
pub mod backup_code;
pub mod broadcast;
pub mod broadcast_recipient;
pub mod customer;
pub mod device;
pub mod gateway_switch;
pub mod invite;
pub mod invite_promotion;
pub mod invite_rule;
pub mod loyalty_account;
pub mod loyalty_reward;
pub mod notice_template;
pub mod notification;
pub mod outbox;
pub mod payment;
pub mod plan;
pub mod plan_price;
pub mod promo_code;
pub mod promo_redemption;
pub mod referral;
pub mod refresh_token;
pub mod revenuecat_event;
pub mod server;
pub mod snapshot;
pub mod staff_account;
pub mod staff_link_code;
pub mod staff_telegram_link;
pub mod subscription;
pub mod trial;
pub mod two_factor;
