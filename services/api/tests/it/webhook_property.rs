//! Property-style: a few thousand randomized CryptoBot webhook deliveries (duplicates, reorderings,
//! tampering, wrong signatures, truncations, unknown payments) credit exactly the distinct paid payments,
//! each once, on both backends. The seed is printed in every assertion message; set
//! `WEBHOOK_PROPERTY_SEED` to replay a run.

use std::collections::HashMap;

use chrono::Duration;
use cybervpn_config::Secret;
use cybervpn_domain::{CustomerId, PaymentId, PaymentStatus};
use cybervpn_payments::fake::cryptobot::{CryptoBotFake, sign_webhook};
use cybervpn_testkit::{Backend, on_both_backends};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_body};

on_both_backends!(randomized_webhook_deliveries_credit_each_paid_payment_exactly_once);

const CRYPTOBOT_TOKEN: &str = "12345:AAtest-cryptobot-token";
const CUSTOMERS: usize = 40;
/// In flight at once. SQLite (standalone) gets one at a time: its single writer answers 503 (busy, retried by
/// the gateway) to a delivery that waits too long for the write lock, and this test checks exact outcomes.
const fn concurrency(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 16,
        Backend::Sqlite => 1,
    }
}

/// xorshift64*: small, seeded, good enough to shuffle test traffic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn seed() -> u64 {
    std::env::var("WEBHOOK_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            u64::try_from(nanos % u128::from(u64::MAX)).unwrap()
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A paid invoice's correctly signed update (replayed byte for byte, or freshly signed).
    Valid,
    /// An unpaid invoice's signed update, flipped to paid after signing.
    TamperedUnpaid,
    /// A paid invoice's signed update with the amount changed after signing.
    TamperedAmount,
    /// A paid invoice's update with a signature by another token, or a corrupted one.
    WrongSignature,
    /// No signature header at all.
    Unsigned,
    /// A paid invoice's update cut short, with the original signature.
    Truncated,
    /// A correctly signed update naming a payment we never created.
    Unknown,
    /// A correctly signed body that is not an update.
    SignedGarbage,
}

impl Kind {
    const fn expected(self) -> u16 {
        match self {
            Self::Valid | Self::Unknown => 200,
            Self::SignedGarbage => 400,
            Self::TamperedUnpaid
            | Self::TamperedAmount
            | Self::WrongSignature
            | Self::Unsigned
            | Self::Truncated => 401,
        }
    }
}

struct Delivery {
    kind: Kind,
    body: Vec<u8>,
    signature: Option<String>,
}

struct Created {
    id: PaymentId,
    customer: CustomerId,
    invoice_id: i64,
    days: i64,
    paid: bool,
}

fn signed_json(fake: &CryptoBotFake, invoice_id: i64) -> (Value, Vec<u8>, String) {
    let (body, signature) = fake.signed_webhook(invoice_id).unwrap();
    (serde_json::from_slice(&body).unwrap(), body, signature)
}

async fn randomized_webhook_deliveries_credit_each_paid_payment_exactly_once(backend: Backend) {
    let started = std::time::Instant::now();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let ctx = format!("seed {seed} ({backend:?}; WEBHOOK_PROPERTY_SEED={seed} replays it)");

    let fake = CryptoBotFake::start(CRYPTOBOT_TOKEN).await.unwrap();
    let fake_url = fake.url();
    let app = TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        config.payments.cryptobot_token = Some(Secret::new(CRYPTOBOT_TOKEN.to_owned()));
        config.payments.cryptobot_api_url = fake_url;
    })
    .await;
    let plans: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let plan_id = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "basic_30")
        .unwrap()["id"]
        .clone();

    // Customers with one or two payments each, created through the api (prices frozen on them).
    let mut payments: Vec<Created> = Vec::new();
    let mut customers = Vec::new();
    for n in 0..CUSTOMERS {
        let email = format!("prop{n}@example.com");
        let token = app.customer_token(&email).await;
        let customer = app
            .db
            .customers()
            .find_by_email(&cybervpn_domain::Email::parse(&email).unwrap())
            .await
            .unwrap()
            .unwrap()
            .id;
        customers.push(customer);
        for _ in 0..=rng.below(2) {
            let created = json_body(
                app.post_authed(
                    "/api/v1/payments",
                    &token,
                    &json!({ "plan_id": plan_id, "provider": "cryptobot" }),
                )
                .await,
                201,
            )
            .await;
            let id = PaymentId::from_uuid(
                uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap(),
            );
            let stored = app.db.payments().get(id).await.unwrap();
            payments.push(Created {
                id,
                customer,
                invoice_id: stored.provider_payment_id.unwrap().parse().unwrap(),
                days: created["days"].as_i64().unwrap(),
                paid: false,
            });
        }
    }

    // A random subset is paid at the gateway.
    for payment in &mut payments {
        if rng.chance(55) {
            assert!(fake.mark_paid(payment.invoice_id), "{ctx}");
            payment.paid = true;
        }
    }

    // The deliveries.
    let mut deliveries: Vec<Delivery> = Vec::new();
    let valid = |body: Vec<u8>, signature: String| Delivery {
        kind: Kind::Valid,
        body,
        signature: Some(signature),
    };
    // Enough replays that every seed makes at least 2,000 deliveries, however few invoices were paid.
    let paid_count = payments.iter().filter(|p| p.paid).count();
    let replays = (2_000 / paid_count.max(1)).max(20);
    for payment in &payments {
        if payment.paid {
            let (json, body, signature) = signed_json(&fake, payment.invoice_id);
            // Replays of one update, and fresh updates (new update_id) about the same invoice.
            for _ in 0..replays + rng.below(20) {
                deliveries.push(valid(body.clone(), signature.clone()));
            }
            for _ in 0..5 + rng.below(10) {
                let (body, signature) = fake.signed_webhook(payment.invoice_id).unwrap();
                deliveries.push(valid(body, signature));
            }
            for _ in 0..3 + rng.below(5) {
                let mut changed = json.clone();
                let amount: f64 = changed["payload"]["amount"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                changed["payload"]["amount"] = json!(format!("{:.2}", amount / 100.0));
                changed["payload"]["paid_amount"] = changed["payload"]["amount"].clone();
                deliveries.push(Delivery {
                    kind: Kind::TamperedAmount,
                    body: serde_json::to_vec(&changed).unwrap(),
                    signature: Some(signature.clone()),
                });
            }
            for n in 0..3 + rng.below(5) {
                let signature = if n % 2 == 0 {
                    sign_webhook("99999:AAanother-token", &body)
                } else {
                    let mut corrupted = signature.clone().into_bytes();
                    let at = rng.below(corrupted.len());
                    corrupted[at] = if corrupted[at] == b'0' { b'1' } else { b'0' };
                    String::from_utf8(corrupted).unwrap()
                };
                deliveries.push(Delivery {
                    kind: Kind::WrongSignature,
                    body: body.clone(),
                    signature: Some(signature),
                });
            }
            for _ in 0..2 + rng.below(4) {
                let cut = rng.below(body.len());
                deliveries.push(Delivery {
                    kind: Kind::Truncated,
                    body: body[..cut].to_vec(),
                    signature: Some(signature.clone()),
                });
            }
            deliveries.push(Delivery {
                kind: Kind::Unsigned,
                body: body.clone(),
                signature: None,
            });
            for _ in 0..1 + rng.below(3) {
                let mut unknown = json.clone();
                unknown["payload"]["payload"] = json!(uuid::Uuid::new_v4().to_string());
                unknown["payload"]["invoice_id"] = json!(900_000_000 + rng.below(1_000_000));
                let body = serde_json::to_vec(&unknown).unwrap();
                let signature = sign_webhook(CRYPTOBOT_TOKEN, &body);
                deliveries.push(Delivery {
                    kind: Kind::Unknown,
                    body,
                    signature: Some(signature),
                });
            }
        } else {
            // CryptoBot never signs a paid update for it; the only way to claim it is to tamper.
            for _ in 0..10 + rng.below(15) {
                let (mut json, _, signature) = signed_json(&fake, payment.invoice_id);
                json["update_type"] = json!("invoice_paid");
                json["payload"]["status"] = json!("paid");
                json["payload"]["paid_at"] = json["request_date"].clone();
                json["payload"]["paid_amount"] = json["payload"]["amount"].clone();
                deliveries.push(Delivery {
                    kind: Kind::TamperedUnpaid,
                    body: serde_json::to_vec(&json).unwrap(),
                    signature: Some(signature),
                });
            }
        }
    }
    for _ in 0..20 {
        let garbage = format!("{{\"update_id\": {}, \"nope\"", rng.next());
        let signature = sign_webhook(CRYPTOBOT_TOKEN, garbage.as_bytes());
        deliveries.push(Delivery {
            kind: Kind::SignedGarbage,
            body: garbage.into_bytes(),
            signature: Some(signature),
        });
    }
    rng.shuffle(&mut deliveries);

    // Delivered in the shuffled order, several at a time.
    let url = app.url("/api/v1/webhooks/cryptobot");
    let client = &app.client;
    let outcomes: Vec<(usize, Kind, u16)> = stream::iter(deliveries.iter().enumerate())
        .map(|(index, delivery)| {
            let request = || {
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(delivery.body.clone());
                if let Some(signature) = &delivery.signature {
                    request = request.header("crypto-pay-api-signature", signature);
                }
                request
            };
            async move {
                // A 503 asks the gateway to deliver again later, as CryptoBot does; a busy SQLite writer answers it.
                let mut status = request().send().await.unwrap().status().as_u16();
                for _ in 0..5 {
                    if status != 503 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    status = request().send().await.unwrap().status().as_u16();
                }
                (index, delivery.kind, status)
            }
        })
        .buffer_unordered(concurrency(backend))
        .collect()
        .await;
    let mut per_kind: HashMap<Kind, usize> = HashMap::new();
    for (index, kind, status) in &outcomes {
        *per_kind.entry(*kind).or_default() += 1;
        assert_eq!(
            *status,
            kind.expected(),
            "{ctx}: delivery #{index} ({kind:?}) answered {status}"
        );
    }

    // Exactly the distinct paid payments are completed, once each; the rest stay pending.
    let paid: Vec<&Created> = payments.iter().filter(|p| p.paid).collect();
    for payment in &payments {
        let stored = app.db.payments().get(payment.id).await.unwrap();
        let expected = if payment.paid {
            PaymentStatus::Completed
        } else {
            PaymentStatus::Pending
        };
        assert_eq!(
            stored.status, expected,
            "{ctx}: payment {:?}",
            payment.invoice_id
        );
        assert!(
            stored.review_reason.is_none(),
            "{ctx}: payment {} set aside: {:?}",
            payment.invoice_id,
            stored.review_reason
        );
    }

    // Each customer's subscription runs exactly the sum of their paid payments' days from its start.
    for customer in &customers {
        let days: i64 = paid
            .iter()
            .filter(|p| p.customer == *customer)
            .map(|p| p.days)
            .sum();
        let subscriptions = app.db.subscriptions().of_customer(*customer).await.unwrap();
        if days == 0 {
            assert!(subscriptions.is_empty(), "{ctx}: {subscriptions:?}");
            continue;
        }
        assert_eq!(subscriptions.len(), 1, "{ctx}: {subscriptions:?}");
        let subscription = &subscriptions[0];
        assert_eq!(
            subscription.expires_at - subscription.created_at,
            Duration::days(days),
            "{ctx}: customer {customer:?} credited {days} days"
        );
    }

    // Per distinct paid payment: one provisioning, and two notices (the payment, the invite codes it earned)
    // each with its push.
    let outbox = app.outbox().await;
    let count = |job: &str| outbox.iter().filter(|m| m.job == job).count();
    assert_eq!(count("provision_subscription"), paid.len(), "{ctx}");
    assert_eq!(count("deliver_notification"), 2 * paid.len(), "{ctx}");
    assert_eq!(count("push_notification"), 2 * paid.len(), "{ctx}");
    assert_eq!(outbox.len(), 5 * paid.len(), "{ctx}");

    let total = outcomes.len();
    assert!(total >= 2_000, "{ctx}: only {total} deliveries");
    let mut summary: Vec<String> = per_kind.iter().map(|(k, n)| format!("{k:?}={n}")).collect();
    summary.sort();
    println!(
        "{ctx}: {total} deliveries for {} payments ({} paid) in {:?}: {}",
        payments.len(),
        paid.len(),
        started.elapsed(),
        summary.join(" ")
    );
    app.stop().await;
}
