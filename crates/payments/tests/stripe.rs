#![expect(clippy::unwrap_used, reason = "tests fail loudly")]
//! The real Stripe client against the loopback fake, and webhook verification against the contract.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_domain::{Currency, Money};
use cybervpn_payments::{
    fake::stripe::{StripeFake, signature_header},
    stripe::{
        CheckoutRequest, DEFAULT_TOLERANCE, Event, EventPayload, PaymentStatus, SessionStatus,
        SignatureError, Stripe, StripeConfig, StripeError, parse_event, verify_webhook,
    },
};
use cybervpn_telemetry::Metrics;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use uuid::Uuid;

const KEY: &str = "sk_test_51FakeSecretKeyForTests";
const WHSEC: &str = "whsec_fake_endpoint_secret";

struct Setup {
    fake: StripeFake,
    stripe: Stripe,
    metrics: Metrics,
}

async fn setup_with(key: &str, timeout: Duration) -> Setup {
    let fake = StripeFake::start(KEY, WHSEC).await.unwrap();
    let metrics = Metrics::new().unwrap();
    let mut config = StripeConfig::new(key);
    config.api_url = fake.url();
    config.timeout = timeout;
    let stripe = Stripe::new(config, metrics.external.clone()).unwrap();
    Setup {
        fake,
        stripe,
        metrics,
    }
}

async fn setup() -> Setup {
    setup_with(KEY, Duration::from_secs(5)).await
}

fn checkout(amount: Money) -> CheckoutRequest {
    CheckoutRequest {
        payment_id: Uuid::new_v4(),
        amount,
        product_name: "CyberVPN Pro, 30 days".to_owned(),
        success_url: "https://cybervpn.example/paid?session={CHECKOUT_SESSION_ID}".to_owned(),
        cancel_url: "https://cybervpn.example/cancelled".to_owned(),
    }
}

fn usd(major: &str) -> Money {
    Money::parse_major(major, Currency::Usd).unwrap()
}

fn rendered(metrics: &Metrics) -> String {
    String::from_utf8(metrics.render()).unwrap()
}

#[tokio::test]
async fn checkout_sends_exactly_the_contract_fields() {
    let s = setup().await;
    let request = checkout(usd("4.99"));
    let session = s
        .stripe
        .create_checkout_session(&request, "pay-key-1")
        .await
        .unwrap();

    let requests = s.fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert!(sent.authorized, "Authorization: Bearer <key>");
    assert_eq!(sent.idempotency_key.as_deref(), Some("pay-key-1"));
    assert_eq!(
        sent.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let id = request.payment_id.to_string();
    let expected: Vec<(String, String)> = [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "499"),
        (
            "line_items[0][price_data][product_data][name]",
            "CyberVPN Pro, 30 days",
        ),
        ("line_items[0][quantity]", "1"),
        ("success_url", request.success_url.as_str()),
        ("cancel_url", request.cancel_url.as_str()),
        ("client_reference_id", id.as_str()),
        ("metadata[payment_id]", id.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(sent.form, expected);

    assert!(session.id.starts_with("cs_"));
    assert!(session.url.as_deref().unwrap().contains(&session.id));
    assert_eq!(session.payment_status, PaymentStatus::Unpaid);
    assert_eq!(session.status, Some(SessionStatus::Open));
    assert_eq!(session.amount_total, Some(499));
    assert_eq!(session.currency.as_deref(), Some("usd"));
    assert_eq!(session.client_reference_id.as_deref(), Some(id.as_str()));
    assert_eq!(session.payment_id(), Some(request.payment_id));
    assert_eq!(session.amount(), Some(usd("4.99")));
}

#[tokio::test]
async fn rub_is_sent_in_kopecks_lowercase() {
    let s = setup().await;
    let amount = Money::parse_major("499.00", Currency::Rub).unwrap();
    let session = s
        .stripe
        .create_checkout_session(&checkout(amount), "rub-1")
        .await
        .unwrap();
    let sent = &s.fake.requests()[0];
    assert_eq!(
        sent.param("line_items[0][price_data][unit_amount]"),
        Some("49900")
    );
    assert_eq!(
        sent.param("line_items[0][price_data][currency]"),
        Some("rub")
    );
    assert_eq!(session.amount(), Some(amount));
}

#[tokio::test]
async fn stars_are_refused_before_sending() {
    let s = setup().await;
    let stars = Money::new(100, Currency::Xtr).unwrap();
    let err = s
        .stripe
        .create_checkout_session(&checkout(stars), "xtr-1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StripeError::Invalid {
                operation: "checkout.sessions.create",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("XTR"), "{err}");
    let empty_key = s
        .stripe
        .create_checkout_session(&checkout(usd("1.00")), " ")
        .await
        .unwrap_err();
    assert!(matches!(empty_key, StripeError::Invalid { .. }));
    assert!(s.fake.requests().is_empty());
}

#[tokio::test]
async fn same_idempotency_key_returns_the_same_session() {
    let s = setup().await;
    let request = checkout(usd("4.99"));
    let first = s
        .stripe
        .create_checkout_session(&request, "same")
        .await
        .unwrap();
    let second = s
        .stripe
        .create_checkout_session(&request, "same")
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(s.fake.session_count(), 1);

    let other = s
        .stripe
        .create_checkout_session(&request, "different")
        .await
        .unwrap();
    assert_ne!(other.id, first.id);

    // The same key with other parameters is Stripe's idempotency_error, not a new session.
    let err = s
        .stripe
        .create_checkout_session(&checkout(usd("9.99")), "same")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.kind(), Some("idempotency_error"));
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .starts_with("stripe checkout.sessions.create: HTTP 400"),
        "{err}"
    );
    assert_eq!(s.fake.session_count(), 2);
}

#[tokio::test]
async fn a_retried_500_reuses_the_key_and_is_counted() {
    let s = setup().await;
    s.fake.fail_next(1);
    let session = s
        .stripe
        .create_checkout_session(&checkout(usd("4.99")), "retry-key")
        .await
        .unwrap();
    let requests = s.fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some("retry-key"))
    );
    assert_eq!(requests[0].form, requests[1].form);
    assert_eq!(s.fake.session_count(), 1);
    assert!(s.fake.session(&session.id).is_some());

    let text = rendered(&s.metrics);
    for status in ["500", "200"] {
        let line = format!(
            r#"external_requests_total{{operation="checkout.sessions.create",service="stripe",status="{status}"}} 1"#
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn persistent_500s_give_up_with_a_typed_error() {
    let s = setup().await;
    s.fake.fail_next(3);
    let err = s
        .stripe
        .create_checkout_session(&checkout(usd("4.99")), "down")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.kind(), Some("api_error"));
    assert!(err.is_retryable());
    assert_eq!(s.fake.requests().len(), 3);
}

#[tokio::test]
async fn a_timed_out_create_is_retried_with_the_same_key() {
    let s = setup_with(KEY, Duration::from_millis(300)).await;
    s.fake.delay_next(1, Duration::from_millis(800));
    s.stripe
        .create_checkout_session(&checkout(usd("4.99")), "slow")
        .await
        .unwrap();
    // Give a delayed first attempt time to finish server-side: it must not make a second session.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(s.fake.session_count(), 1);
    assert!(rendered(&s.metrics).contains(
        r#"external_requests_total{operation="checkout.sessions.create",service="stripe",status="timeout"} 1"#
    ));
}

#[tokio::test]
async fn retrieve_shows_payment_and_missing_sessions_are_typed() {
    let s = setup().await;
    let created = s
        .stripe
        .create_checkout_session(&checkout(usd("4.99")), "r-1")
        .await
        .unwrap();
    assert!(s.fake.complete(&created.id));
    let session = s
        .stripe
        .retrieve_checkout_session(&created.id)
        .await
        .unwrap();
    assert!(session.is_paid());
    assert_eq!(session.status, Some(SessionStatus::Complete));
    assert!(session.url.is_none());
    assert!(
        session
            .payment_intent
            .as_deref()
            .unwrap()
            .starts_with("pi_")
    );

    let err = s
        .stripe
        .retrieve_checkout_session("cs_missing")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.operation(), Some("checkout.sessions.retrieve"));
    assert!(
        matches!(&err, StripeError::Api { code: Some(code), .. } if code == "resource_missing")
    );
    assert!(rendered(&s.metrics).contains(
        r#"external_requests_total{operation="checkout.sessions.retrieve",service="stripe",status="404"} 1"#
    ));
}

#[tokio::test]
async fn a_wrong_key_is_a_401_that_never_shows_the_key() {
    let wrong = "sk_test_WRONG_secret_value_123";
    let s = setup_with(wrong, Duration::from_secs(5)).await;
    let err = s
        .stripe
        .create_checkout_session(&checkout(usd("4.99")), "k")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    // The fake echoes the key unmasked; the client must scrub it.
    let text = format!("{err} {err:?} {:?}", s.stripe);
    assert!(!text.contains(wrong), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("Invalid API Key provided"), "{text}");
    assert_eq!(s.fake.requests().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn connection_failures_are_typed_and_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let metrics = Metrics::new().unwrap();
    let mut config = StripeConfig::new(KEY);
    config.api_url = url;
    let stripe = Stripe::new(config, metrics.external.clone()).unwrap();
    let err = stripe.retrieve_checkout_session("cs_1").await.unwrap_err();
    assert!(
        matches!(
            err,
            StripeError::Connection {
                operation: "checkout.sessions.retrieve",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(KEY));
    assert!(rendered(&metrics).contains(
        r#"external_requests_total{operation="checkout.sessions.retrieve",service="stripe",status="connection"} 3"#
    ));
}

// --- webhook signatures ---------------------------------------------------------------------------------

const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed"}"#;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

fn v1_of(header: &str) -> &str {
    header
        .split(',')
        .find_map(|item| item.strip_prefix("v1="))
        .unwrap()
}

fn verify(secret: &str, body: &[u8], header: &str) -> Result<(), SignatureError> {
    verify_webhook(secret, body, header, t0(), DEFAULT_TOLERANCE)
}

#[test]
fn a_correct_signature_verifies() {
    let header = signature_header(WHSEC, BODY, t0());
    assert_eq!(verify(WHSEC, BODY, &header), Ok(()));
    let only_v1 = format!("t={},v1={}", t0().timestamp(), v1_of(&header));
    assert_eq!(verify(WHSEC, BODY, &only_v1), Ok(()));
}

#[test]
fn any_of_several_v1_signatures_verifies() {
    // During secret rotation Stripe signs with the old and the new secret.
    let good = signature_header(WHSEC, BODY, t0());
    let old = signature_header("whsec_old_secret", BODY, t0());
    let header = format!(
        "t={},v1={},v1={}",
        t0().timestamp(),
        v1_of(&old),
        v1_of(&good)
    );
    assert_eq!(verify(WHSEC, BODY, &header), Ok(()));
    let header = format!("t={},v1=nothex,v1={}", t0().timestamp(), v1_of(&good));
    assert_eq!(verify(WHSEC, BODY, &header), Ok(()));
}

#[test]
fn a_tampered_body_is_refused() {
    let header = signature_header(WHSEC, BODY, t0());
    let tampered = BODY
        .to_vec()
        .into_iter()
        .map(|b| if b == b'1' { b'2' } else { b })
        .collect::<Vec<_>>();
    assert_eq!(
        verify(WHSEC, &tampered, &header),
        Err(SignatureError::BadSignature)
    );
    // Re-serialised JSON is a different body too: verification is over the raw bytes.
    let mut spaced = BODY.to_vec();
    spaced.push(b'\n');
    assert_eq!(
        verify(WHSEC, &spaced, &header),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn a_wrong_secret_is_refused() {
    let header = signature_header("whsec_someone_else", BODY, t0());
    assert_eq!(
        verify(WHSEC, BODY, &header),
        Err(SignatureError::BadSignature)
    );
    assert_eq!(verify("", BODY, &header), Err(SignatureError::NoSecret));
}

#[test]
fn the_secret_without_its_whsec_prefix_is_refused() {
    // The common bug: treating `whsec_…` as a prefix to strip (or base64-decoding the rest).
    let bare = WHSEC.strip_prefix("whsec_").unwrap();
    let signed_with_bare = signature_header(bare, BODY, t0());
    assert_eq!(
        verify(WHSEC, BODY, &signed_with_bare),
        Err(SignatureError::BadSignature)
    );
    let correct = signature_header(WHSEC, BODY, t0());
    assert_eq!(
        verify(bare, BODY, &correct),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn a_v0_only_header_is_refused() {
    let good = signature_header(WHSEC, BODY, t0());
    let header = format!("t={},v0={}", t0().timestamp(), v1_of(&good));
    assert_eq!(
        verify(WHSEC, BODY, &header),
        Err(SignatureError::NoV1Signature)
    );
}

#[test]
fn timestamps_outside_the_tolerance_are_refused() {
    let now = t0();
    let at = |seconds_ago: i64| now - TimeDelta::seconds(seconds_ago);
    let check = |signed_at: DateTime<Utc>| {
        let header = signature_header(WHSEC, BODY, signed_at);
        verify_webhook(WHSEC, BODY, &header, now, DEFAULT_TOLERANCE)
    };
    assert_eq!(check(at(300)), Ok(()));
    assert!(matches!(
        check(at(301)),
        Err(SignatureError::TimestampOutsideTolerance {
            tolerance_seconds: 300,
            ..
        })
    ));
    assert!(matches!(
        check(at(-301)),
        Err(SignatureError::TimestampOutsideTolerance { .. })
    ));
    // A custom tolerance is honoured.
    let header = signature_header(WHSEC, BODY, at(301));
    assert_eq!(
        verify_webhook(WHSEC, BODY, &header, now, Duration::from_secs(600)),
        Ok(())
    );
}

#[test]
fn malformed_headers_are_refused_without_panicking() {
    let good = signature_header(WHSEC, BODY, t0());
    let v1 = v1_of(&good);
    let cases = [
        String::new(),
        " ".to_owned(),
        format!("v1={v1}"),
        "garbage".to_owned(),
        ",,,==,=".to_owned(),
        format!("t=abc,v1={v1}"),
        format!("t=,v1={v1}"),
        format!("t=99999999999999999999999,v1={v1}"),
        format!("t=1,t=2,v1={v1}"),
        "t=\u{1F600},v1=ß".to_owned(),
        "x".repeat(100_000),
    ];
    for header in &cases {
        let result = verify(WHSEC, BODY, header);
        assert!(
            matches!(result, Err(SignatureError::MalformedHeader(_))),
            "{header:.40}: {result:?}"
        );
    }
    assert_eq!(
        verify(WHSEC, BODY, &format!("t={}", t0().timestamp())),
        Err(SignatureError::NoV1Signature)
    );
    assert_eq!(
        verify(WHSEC, BODY, &format!("t={},v1=", t0().timestamp())),
        Err(SignatureError::BadSignature)
    );
}

// --- events ---------------------------------------------------------------------------------------------

fn event(fake: &StripeFake, event_type: &str, session_id: &str) -> Event {
    let (body, header) = fake
        .signed_event(event_type, session_id, Utc::now())
        .unwrap();
    verify_webhook(WHSEC, &body, &header, Utc::now(), DEFAULT_TOLERANCE).unwrap();
    parse_event(&body).unwrap()
}

#[tokio::test]
async fn events_we_act_on_are_typed() {
    let s = setup().await;
    let request = checkout(usd("4.99"));
    let created = s
        .stripe
        .create_checkout_session(&request, "e-1")
        .await
        .unwrap();

    let unpaid = event(&s.fake, "checkout.session.completed", &created.id);
    assert!(unpaid.id.starts_with("evt_"));
    assert_eq!(unpaid.event_type, "checkout.session.completed");
    assert!(matches!(
        unpaid.payload,
        EventPayload::CheckoutSessionCompleted(_)
    ));
    assert!(
        unpaid.paid_session().is_none(),
        "completed but unpaid must not grant"
    );

    assert!(s.fake.complete(&created.id));
    let paid = event(&s.fake, "checkout.session.completed", &created.id);
    let session = paid.paid_session().unwrap();
    assert_eq!(session.payment_id(), Some(request.payment_id));
    assert_eq!(session.amount(), Some(usd("4.99")));
    assert_eq!(paid.object["id"], created.id.as_str());

    let succeeded = event(
        &s.fake,
        "checkout.session.async_payment_succeeded",
        &created.id,
    );
    assert!(succeeded.paid_session().is_some());
    let failed = event(
        &s.fake,
        "checkout.session.async_payment_failed",
        &created.id,
    );
    assert!(matches!(
        failed.payload,
        EventPayload::CheckoutSessionAsyncPaymentFailed(_)
    ));
    assert!(failed.paid_session().is_none());

    let refunded = event(&s.fake, "charge.refunded", &created.id);
    let EventPayload::ChargeRefunded(charge) = &refunded.payload else {
        panic!("{refunded:?}");
    };
    assert_eq!(charge.payment_intent, session.payment_intent);
    assert_eq!(charge.amount_refunded, 499);
    assert_eq!(charge.refunded_amount(), Some(usd("4.99")));

    let other = event(&s.fake, "customer.created", &created.id);
    assert_eq!(other.payload, EventPayload::Other);

    assert!(parse_event(b"{}").is_err());
    assert!(
        parse_event(br#"{"id":"evt_1","type":"charge.refunded","created":1,"data":{"object":{}}}"#)
            .is_err()
    );
}

/// A webhook endpoint that answers 200 to verified events and 400 to the rest.
async fn webhook_endpoint(secret: &'static str) -> (String, Arc<Mutex<Vec<Event>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let store = Arc::clone(&store);
                    async move {
                        let header = request
                            .headers()
                            .get("stripe-signature")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let verified =
                            verify_webhook(secret, &body, &header, Utc::now(), DEFAULT_TOLERANCE);
                        let status = if verified.is_ok() {
                            store.lock().unwrap().push(parse_event(&body).unwrap());
                            StatusCode::OK
                        } else {
                            StatusCode::BAD_REQUEST
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _closed = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

#[tokio::test]
async fn delivered_events_verify_at_a_real_endpoint() {
    let s = setup().await;
    let created = s
        .stripe
        .create_checkout_session(&checkout(usd("4.99")), "d-1")
        .await
        .unwrap();
    s.fake.complete(&created.id);

    let (url, received) = webhook_endpoint(WHSEC).await;
    let status = s
        .fake
        .deliver(&url, "checkout.session.completed", &created.id)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let events = received.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].paid_session().unwrap().id, created.id);

    let (other_url, other_received) = webhook_endpoint("whsec_another_endpoint").await;
    let status = s
        .fake
        .deliver(&other_url, "checkout.session.completed", &created.id)
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(other_received.lock().unwrap().is_empty());
    assert!(
        s.fake
            .deliver(&url, "checkout.session.completed", "cs_nope")
            .await
            .is_err()
    );
}
