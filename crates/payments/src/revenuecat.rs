//! RevenueCat webhooks (API v1): the mobile app's App Store and Google Play purchases, renewals and refunds.
//!
//! Wire facts (RevenueCat's "Event Types and Fields"): a `POST` of `{"api_version": "1.0", "event": {…}}` with
//! the `Authorization` header set to the exact value configured in the dashboard; non-2xx answers are retried
//! with the same `event.id`. Prices are JSON numbers (`price` in USD, `price_in_purchased_currency` in
//! `currency`), read here from their text, never through a float.

use cybervpn_domain::{Currency, Money};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether the `Authorization` header is the configured value (constant time, lengths included).
pub fn verify_authorization(expected: &str, given: &str) -> bool {
    let expected = Sha256::digest(expected.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    bool::from(expected.as_slice().ct_eq(given.as_slice()))
}

/// A webhook body (authorize it first with [`verify_authorization`]).
#[derive(Debug, Deserialize)]
pub struct Webhook {
    /// `"1.0"`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The event.
    pub event: Event,
}

/// What a webhook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `TEST`: sent from the dashboard.
    Test,
    /// `INITIAL_PURCHASE`: a new subscription.
    InitialPurchase,
    /// `RENEWAL`: a subscription renewed (or a lapsed one resubscribed).
    Renewal,
    /// `NON_RENEWING_PURCHASE`: a one-off purchase.
    NonRenewingPurchase,
    /// `PRODUCT_CHANGE`: the subscriber switched products (not necessarily in effect yet).
    ProductChange,
    /// `CANCELLATION`: auto-renew turned off, or (with `cancel_reason` `CUSTOMER_SUPPORT`) refunded.
    Cancellation,
    /// `EXPIRATION`: the subscription ran out.
    Expiration,
    /// `BILLING_ISSUE`: the store could not charge.
    BillingIssue,
    /// Any other type (`UNCANCELLATION`, `TRANSFER`, `SUBSCRIPTION_PAUSED`, …).
    Other,
}

impl EventKind {
    fn parse(name: &str) -> Self {
        match name {
            "TEST" => Self::Test,
            "INITIAL_PURCHASE" => Self::InitialPurchase,
            "RENEWAL" => Self::Renewal,
            "NON_RENEWING_PURCHASE" => Self::NonRenewingPurchase,
            "PRODUCT_CHANGE" => Self::ProductChange,
            "CANCELLATION" => Self::Cancellation,
            "EXPIRATION" => Self::Expiration,
            "BILLING_ISSUE" => Self::BillingIssue,
            _ => Self::Other,
        }
    }

    /// Whether the event reports money paid for a product.
    pub const fn is_purchase(self) -> bool {
        matches!(
            self,
            Self::InitialPurchase | Self::Renewal | Self::NonRenewingPurchase
        )
    }
}

/// One event, with the fields we act on (RevenueCat sends more).
#[derive(Debug, Deserialize)]
pub struct Event {
    /// Unique id of the event; retries repeat it.
    pub id: String,
    /// The event type as sent, such as `INITIAL_PURCHASE`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The app user id last seen (the app sets ours, the customer id).
    #[serde(default)]
    pub app_user_id: Option<String>,
    /// The first app user id of the subscriber.
    #[serde(default)]
    pub original_app_user_id: Option<String>,
    /// Every app user id the subscriber had.
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    /// The store's product id.
    #[serde(default)]
    pub product_id: Option<String>,
    /// `TRIAL`, `INTRO`, `NORMAL`, `PROMOTIONAL` or `PREPAID`.
    #[serde(default)]
    pub period_type: Option<String>,
    /// `PRODUCTION` or `SANDBOX`.
    #[serde(default)]
    pub environment: Option<String>,
    /// `APP_STORE`, `PLAY_STORE`, ….
    #[serde(default)]
    pub store: Option<String>,
    /// The store's id of this transaction.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// The store's id of the subscription's first transaction.
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    /// Why a `CANCELLATION` happened (`CUSTOMER_SUPPORT` is a refund).
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// ISO 4217 code of the purchased currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// The price in USD, as sent.
    #[serde(default)]
    pub price: Option<Box<RawValue>>,
    /// The price in `currency`, as sent.
    #[serde(default)]
    pub price_in_purchased_currency: Option<Box<RawValue>>,
}

/// An amount as RevenueCat reported it, converted to our money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// Exactly what the store charged, in its currency.
    Exact(Money),
    /// The store's currency is not one of ours: RevenueCat's USD figure, rounded half up to cents.
    UsdEstimate(Money),
}

impl Paid {
    /// The amount.
    pub const fn money(self) -> Money {
        match self {
            Self::Exact(money) | Self::UsdEstimate(money) => money,
        }
    }
}

impl Event {
    /// What the event reports.
    pub fn kind(&self) -> EventKind {
        EventKind::parse(&self.event_type)
    }

    /// Whether the purchase happened in a store's sandbox (test purchases).
    pub fn is_sandbox(&self) -> bool {
        self.environment.as_deref() == Some("SANDBOX")
    }

    /// Whether this `CANCELLATION` is a refund (`cancel_reason` `CUSTOMER_SUPPORT`).
    pub fn is_refund(&self) -> bool {
        self.kind() == EventKind::Cancellation
            && self.cancel_reason.as_deref() == Some("CUSTOMER_SUPPORT")
    }

    /// Every app user id the event names, the current one first (RevenueCat asks to search all of them).
    pub fn app_user_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        let aliases = self.aliases.iter().flatten().map(String::as_str);
        for id in [
            self.app_user_id.as_deref(),
            self.original_app_user_id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(aliases)
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// What was paid: exactly, in the purchased currency when it is one of ours (USD, RUB); else RevenueCat's
    /// USD figure. `None` when the price is missing, negative, zero or not a plain decimal.
    pub fn paid(&self) -> Option<Paid> {
        let known = self
            .currency
            .as_deref()
            .and_then(|code| code.parse::<Currency>().ok())
            .filter(|currency| *currency != Currency::Xtr);
        let paid = match known {
            Some(currency) => {
                let text = self.price_in_purchased_currency.as_deref()?.get();
                Paid::Exact(crate::cryptobot::decimal_to_money(text.trim(), currency).ok()?)
            }
            None => Paid::UsdEstimate(round_half_up(self.price.as_deref()?.get().trim())?),
        };
        (paid.money().amount_minor() > 0).then_some(paid)
    }
}

/// A plain non-negative decimal (`9.99`, `12.3456`) rounded half up to US cents, on its digits.
fn round_half_up(text: &str) -> Option<Money> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || !(fraction.is_empty() || is_digits(fraction)) {
        return None;
    }
    let cents: String = fraction.chars().chain("00".chars()).take(2).collect();
    let round_up = fraction
        .as_bytes()
        .get(2)
        .is_some_and(|digit| *digit >= b'5');
    let minor = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents.parse::<i64>().ok()?)?
        .checked_add(i64::from(round_up))?;
    Money::new(minor, Currency::Usd).ok()
}

/// Why a webhook body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a RevenueCat webhook: {0}")]
pub struct RevenueCatError(String);

/// Parses a webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, RevenueCatError> {
    let webhook: Webhook =
        serde_json::from_slice(body).map_err(|err| RevenueCatError(err.to_string()))?;
    if !(1..=128).contains(&webhook.event.id.trim().len()) {
        return Err(RevenueCatError(
            "event.id must be 1 to 128 characters".to_owned(),
        ));
    }
    Ok(webhook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_of(kind: &str, extra: &str) -> Event {
        let body = format!(
            r#"{{"api_version":"1.0","event":{{"id":"e1","type":"{kind}","app_user_id":"a"{extra}}}}}"#
        );
        parse_webhook(body.as_bytes()).unwrap().event
    }

    fn event(extra: &str) -> Event {
        event_of("INITIAL_PURCHASE", extra)
    }

    fn money(minor: i64, currency: Currency) -> Money {
        Money::new(minor, currency).unwrap()
    }

    #[test]
    fn the_authorization_header_must_match_exactly() {
        assert!(verify_authorization("Bearer abc", "Bearer abc"));
        assert!(!verify_authorization("Bearer abc", "Bearer abd"));
        assert!(!verify_authorization("Bearer abc", "Bearer abc "));
        assert!(!verify_authorization("Bearer abc", ""));
    }

    #[test]
    fn prices_are_read_from_their_text() {
        let paid = |extra: &str| event(extra).paid();
        assert_eq!(
            paid(r#","currency":"USD","price":4.99,"price_in_purchased_currency":4.99"#),
            Some(Paid::Exact(money(499, Currency::Usd)))
        );
        assert_eq!(
            paid(r#","currency":"RUB","price":3.2,"price_in_purchased_currency":299.0"#),
            Some(Paid::Exact(money(29_900, Currency::Rub)))
        );
        // 0.1 + 0.2 in a float is 0.30000000000000004; the text is what counts.
        assert_eq!(
            paid(r#","currency":"USD","price_in_purchased_currency":0.30"#),
            Some(Paid::Exact(money(30, Currency::Usd)))
        );
        assert_eq!(
            paid(r#","currency":"EUR","price":10.675,"price_in_purchased_currency":9.99"#),
            Some(Paid::UsdEstimate(money(1068, Currency::Usd)))
        );
        assert_eq!(
            paid(r#","currency":"JPY","price":7.3349,"price_in_purchased_currency":1100"#),
            Some(Paid::UsdEstimate(money(733, Currency::Usd)))
        );
        for unreadable in [
            r#","currency":"USD","price_in_purchased_currency":4.999"#,
            r#","currency":"USD","price_in_purchased_currency":-4.99"#,
            r#","currency":"USD","price_in_purchased_currency":5e2"#,
            r#","currency":"USD","price_in_purchased_currency":null"#,
            r#","currency":"USD","price_in_purchased_currency":0"#,
            r#","currency":"EUR","price":null"#,
            r#","price":0,"price_in_purchased_currency":0"#,
        ] {
            assert_eq!(paid(unreadable), None, "{unreadable}");
        }
    }

    #[test]
    fn kinds_refunds_and_user_ids() {
        let refund = event_of("CANCELLATION", r#","cancel_reason":"CUSTOMER_SUPPORT""#);
        assert!(refund.is_refund());
        let off = event_of("CANCELLATION", r#","cancel_reason":"UNSUBSCRIBE""#);
        assert!(!off.is_refund());
        assert_eq!(event("").kind(), EventKind::InitialPurchase);
        assert_eq!(event_of("TRANSFER", "").kind(), EventKind::Other);
        let ids = event(r#","original_app_user_id":"b","aliases":["a","c"]"#);
        assert_eq!(ids.app_user_ids(), ["a", "b", "c"]);
        assert!(event(r#","environment":"SANDBOX""#).is_sandbox());
        assert!(parse_webhook(br#"{"event":{"id":"","type":"TEST"}}"#).is_err());
        assert!(parse_webhook(b"[]").is_err());
    }
}
