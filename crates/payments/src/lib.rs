//! Payment gateway clients (CryptoBot, YooKassa, Stripe, Telegram Stars refunds) with webhook verification, the
//! RevenueCat webhook of app-store purchases, and loopback fakes.
//!
//! Owns each gateway's wire format (the shared `contracts/payments.md`): requests, authentication, signatures
//! checked in constant time over the raw body bytes, and the `external_*` metrics. Money is integer minor units
//! ([`cybervpn_domain::Money`]); gateways' decimal strings are converted exactly, never through floats.

pub mod cryptobot;
pub mod revenuecat;
pub mod stripe;
pub mod telegram;
pub mod yookassa;

#[cfg(feature = "fake")]
pub mod fake;
