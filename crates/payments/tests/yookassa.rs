//! The YooKassa client against the loopback fake over real HTTP, plus notification parsing and source-network
//! authentication.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::{net::IpAddr, time::Duration};

use cybervpn_domain::{Currency, Money};
use cybervpn_payments::{
    fake::yookassa::YooKassaFake,
    yookassa::{
        CreatePayment, NotificationEvent, TrustedNetworks, YooKassa, YooKassaConfig, YooKassaError,
        YooPaymentStatus, client_ip, parse_notification,
    },
};
use cybervpn_telemetry::Metrics;
use serde_json::json;
use uuid::Uuid;

const SHOP: &str = "506751";
const SECRET: &str = "test_SECRETkey_0123456789";
/// base64("506751:test_SECRETkey_0123456789"), computed independently.
const BASIC: &str = "Basic NTA2NzUxOnRlc3RfU0VDUkVUa2V5XzAxMjM0NTY3ODk=";

async fn setup() -> (YooKassaFake, YooKassa, Metrics) {
    let fake = YooKassaFake::start(SHOP, SECRET).await.unwrap();
    let metrics = Metrics::new().unwrap();
    let client = client_for(&fake, SECRET, &metrics, Duration::from_secs(5));
    (fake, client, metrics)
}

fn client_for(fake: &YooKassaFake, secret: &str, metrics: &Metrics, timeout: Duration) -> YooKassa {
    let mut config = YooKassaConfig::new(SHOP, secret);
    config.api_url = fake.url();
    config.timeout = timeout;
    YooKassa::new(config, metrics.external.clone()).unwrap()
}

fn order(minor: i64, currency: Currency) -> CreatePayment {
    CreatePayment {
        amount: Money::new(minor, currency).unwrap(),
        description: "CyberVPN Pro, 30 days".to_owned(),
        return_url: "https://cybervpn.example/paid".to_owned(),
        payment_id: Uuid::new_v4(),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn metrics_text(metrics: &Metrics) -> String {
    String::from_utf8(metrics.render()).unwrap()
}

fn counted(metrics: &Metrics, operation: &str, status: &str) -> bool {
    metrics_text(metrics).contains(&format!(
        r#"external_requests_total{{operation="{operation}",service="yookassa",status="{status}"}} 1"#
    ))
}

#[tokio::test]
async fn create_sends_the_exact_body_with_basic_auth_and_idempotence_key() {
    let (fake, client, _metrics) = setup().await;
    for (minor, currency, value, code) in [
        (499, Currency::Usd, "4.99", "USD"),
        (49_900, Currency::Rub, "499.00", "RUB"),
    ] {
        let order = order(minor, currency);
        let key = Uuid::new_v4().to_string();
        let payment = client.create_payment(&order, &key).await.unwrap();

        let request = fake.requests().pop().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v3/payments");
        assert_eq!(request.header("authorization"), Some(BASIC));
        assert_eq!(request.header("idempotence-key"), Some(key.as_str()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.json().unwrap(),
            json!({
                "amount": {"value": value, "currency": code},
                "capture": true,
                "confirmation": {"type": "redirect", "return_url": "https://cybervpn.example/paid"},
                "description": "CyberVPN Pro, 30 days",
                "metadata": {"payment_id": order.payment_id.to_string()},
            })
        );

        assert_eq!(payment.status, YooPaymentStatus::Pending);
        assert!(!payment.paid);
        assert_eq!(payment.amount.value, value);
        assert_eq!(payment.amount_money().unwrap(), order.amount);
        assert_eq!(payment.payment_id, Some(order.payment_id));
        assert_eq!(
            payment.description.as_deref(),
            Some("CyberVPN Pro, 30 days")
        );
        assert!(
            payment
                .confirmation_url
                .as_deref()
                .is_some_and(|url| url.contains(&payment.id))
        );
    }
    assert_eq!(fake.payment_count(), 2);
}

#[tokio::test]
async fn a_retried_500_reuses_the_key_and_yields_one_payment() {
    let (fake, client, metrics) = setup().await;
    fake.fail_next(1, 500);
    let payment = client
        .create_payment(&order(499, Currency::Usd), "order-1")
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|request| request.header("idempotence-key") == Some("order-1"))
    );
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(fake.payment_count(), 1);
    assert!(fake.payment(&payment.id).is_some());
    assert!(counted(&metrics, "payments.create", "500"));
    assert!(counted(&metrics, "payments.create", "200"));
}

#[tokio::test]
async fn a_lost_answer_is_retried_into_the_same_payment() {
    let fake = YooKassaFake::start(SHOP, SECRET).await.unwrap();
    let metrics = Metrics::new().unwrap();
    let client = client_for(&fake, SECRET, &metrics, Duration::from_millis(300));
    // The first attempt creates the payment, but its answer arrives after the client gave up.
    fake.delay_next(1, Duration::from_secs(2));
    let order = order(49_900, Currency::Rub);
    let payment = client.create_payment(&order, "order-2").await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.payment_count(), 1);
    assert!(counted(&metrics, "payments.create", "timeout"));

    // Asking again with the same key and body answers the same payment; another body is refused.
    let again = client.create_payment(&order, "order-2").await.unwrap();
    assert_eq!(again.id, payment.id);
    let err = client
        .create_payment(&self::order(100, Currency::Rub), "order-2")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(fake.payment_count(), 1);
}

#[tokio::test]
async fn get_after_succeed_shows_the_status_and_exact_money() {
    let (fake, client, metrics) = setup().await;
    let order = order(49_999, Currency::Rub);
    let created = client.create_payment(&order, "order-3").await.unwrap();
    assert!(fake.succeed(&created.id));
    assert!(!fake.succeed(&created.id), "already final");

    let payment = client.get_payment(&created.id).await.unwrap();
    assert_eq!(payment.id, created.id);
    assert_eq!(payment.status, YooPaymentStatus::Succeeded);
    assert!(payment.status.is_final());
    assert!(payment.paid);
    assert_eq!(payment.amount.value, "499.99");
    assert_eq!(
        payment.amount_money().unwrap(),
        Money::new(49_999, Currency::Rub).unwrap()
    );
    assert_eq!(payment.payment_id, Some(order.payment_id));
    assert_eq!(payment.confirmation_url, None);
    assert_eq!(payment.created_at, created.created_at);
    assert!(payment.test);
    assert!(counted(&metrics, "payments.get", "200"));

    let other = client
        .create_payment(&self::order(100, Currency::Usd), "order-4")
        .await
        .unwrap();
    assert!(fake.cancel(&other.id));
    let canceled = client.get_payment(&other.id).await.unwrap();
    assert_eq!(canceled.status, YooPaymentStatus::Canceled);
    assert!(!canceled.paid);
    assert_eq!(
        canceled.cancellation_reason.as_deref(),
        Some("expired_on_confirmation")
    );
}

#[tokio::test]
async fn get_is_retried_on_transient_errors() {
    let (fake, client, metrics) = setup().await;
    let created = client
        .create_payment(&order(100, Currency::Rub), "order-5")
        .await
        .unwrap();
    fake.fail_next(2, 503);
    let payment = client.get_payment(&created.id).await.unwrap();
    assert_eq!(payment.id, created.id);
    assert_eq!(fake.requests().len(), 4);
    assert!(counted(&metrics, "payments.get", "200"));
    assert!(metrics_text(&metrics).contains(
        r#"external_requests_total{operation="payments.get",service="yookassa",status="503"} 2"#
    ));
}

#[tokio::test]
async fn errors_are_typed_name_the_operation_and_never_show_the_secret() {
    let (fake, _client, metrics) = setup().await;
    let wrong_secret = "live_WRONGsecret_9876543210";
    let client = client_for(&fake, wrong_secret, &metrics, Duration::from_secs(5));

    let err = client
        .create_payment(&order(499, Currency::Usd), "order-6")
        .await
        .unwrap_err();
    assert!(
        matches!(err, YooKassaError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(err.operation(), Some("payments.create"));
    assert_eq!(err.code(), Some("invalid_credentials"));
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 1, "a 401 is not retried");
    let text = err.to_string();
    assert!(
        text.starts_with("yookassa payments.create: HTTP 401 invalid_credentials:"),
        "{text}"
    );
    for shown in [text, format!("{err:?}"), format!("{client:?}")] {
        assert!(!shown.contains(wrong_secret), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
    assert!(counted(&metrics, "payments.create", "401"));

    let (fake, client, _metrics) = setup().await;
    let err = client.get_payment("no-such-payment").await.unwrap_err();
    assert_eq!(err.operation(), Some("payments.get"));
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert!(err.to_string().contains("(parameter payment_id)"), "{err}");
    assert!(!err.to_string().contains(SECRET));
    assert_eq!(fake.requests().len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn stars_and_bad_arguments_are_refused_before_sending() {
    let (fake, client, _metrics) = setup().await;
    let err = client
        .create_payment(&order(150, Currency::Xtr), "order-7")
        .await
        .unwrap_err();
    assert!(matches!(err, YooKassaError::Invalid { .. }), "{err:?}");
    assert_eq!(err.operation(), Some("payments.create"));
    assert!(err.to_string().contains("XTR"), "{err}");

    let refused = [
        (order(0, Currency::Rub), "order-8".to_owned()),
        (order(100, Currency::Rub), String::new()),
        (order(100, Currency::Rub), "k".repeat(65)),
        (order(100, Currency::Rub), "line\nbreak".to_owned()),
        (
            CreatePayment {
                description: "x".repeat(129),
                ..order(100, Currency::Rub)
            },
            "order-9".to_owned(),
        ),
    ];
    for (order, key) in refused {
        let err = client.create_payment(&order, &key).await.unwrap_err();
        assert!(matches!(err, YooKassaError::Invalid { .. }), "{err:?}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn notifications_parse_every_event_kind() {
    let (fake, client, _metrics) = setup().await;
    let created = client
        .create_payment(&order(499, Currency::Usd), "order-10")
        .await
        .unwrap();
    fake.succeed(&created.id);
    let cases = [
        ("payment.succeeded", NotificationEvent::PaymentSucceeded),
        (
            "payment.waiting_for_capture",
            NotificationEvent::PaymentWaitingForCapture,
        ),
        ("payment.canceled", NotificationEvent::PaymentCanceled),
        (
            "payout.succeeded",
            NotificationEvent::Other("payout.succeeded".to_owned()),
        ),
    ];
    for (name, event) in cases {
        let notification = parse_notification(&fake.notification_body(name, &created.id)).unwrap();
        assert_eq!(notification.event, event);
        assert_eq!(notification.event.as_str(), name);
        assert_eq!(notification.object_id, created.id);
    }
    let payout =
        parse_notification(&fake.notification_body("payout.succeeded", &created.id)).unwrap();
    assert_eq!(payout.yookassa_payment_id, None);
    let paid =
        parse_notification(&fake.notification_body("payment.succeeded", &created.id)).unwrap();
    assert_eq!(
        paid.yookassa_payment_id.as_deref(),
        Some(created.id.as_str())
    );

    let refund =
        parse_notification(&fake.notification_body("refund.succeeded", &created.id)).unwrap();
    assert_eq!(refund.event, NotificationEvent::RefundSucceeded);
    assert_ne!(refund.object_id, created.id, "a refund has its own id");
    assert_eq!(
        refund.yookassa_payment_id.as_deref(),
        Some(created.id.as_str())
    );

    for bad in [
        &b"not json"[..],
        br#"{}"#,
        br#"{"type":"error","event":"payment.succeeded","object":{"id":"x"}}"#,
        br#"{"type":"notification","event":"payment.succeeded","object":{"id":""}}"#,
        br#"{"type":"notification","event":"payment.succeeded"}"#,
    ] {
        assert!(
            parse_notification(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn default_networks_are_exactly_yookassas() {
    let networks = TrustedNetworks::yookassa_default();
    for inside in [
        "185.71.76.0",
        "185.71.76.5",
        "185.71.76.31",
        "185.71.77.17",
        "77.75.153.127",
        "77.75.156.11",
        "77.75.156.35",
        "77.75.154.200",
        "2a02:5180:0:1509::1",
        "2a02:5180:0:2655:ffff:ffff:ffff:ffff",
        "2a02:5180:0:1533::42",
        "2a02:5180:0:2669::1",
        "::ffff:185.71.76.5",
    ] {
        assert!(networks.contains(ip(inside)), "{inside} should be trusted");
    }
    for outside in [
        "185.71.76.32",
        "8.8.8.8",
        "77.75.153.128",
        "77.75.156.12",
        "77.75.154.127",
        "2a02:5180:0:1510::1",
        "2a02:5180::1",
        "::ffff:8.8.8.8",
        "::1",
    ] {
        assert!(
            !networks.contains(ip(outside)),
            "{outside} should not be trusted"
        );
    }
}

#[test]
fn networks_parse_from_configuration_and_name_bad_entries() {
    let networks =
        TrustedNetworks::parse(["10.0.0.0/8", " 192.168.1.1 ", "2a02:5180::/32"]).unwrap();
    assert!(networks.contains(ip("10.200.0.1")));
    assert!(networks.contains(ip("192.168.1.1")));
    assert!(!networks.contains(ip("192.168.1.2")));
    assert!(networks.contains(ip("2a02:5180:0:9999::1")));
    assert!(
        TrustedNetworks::parse(Vec::<String>::new())
            .unwrap()
            .is_empty()
    );

    for bad in [
        "10.0.0.0/33",
        "10.0.0.1/8",
        "not-an-ip",
        "2a02:5180::/129",
        "",
    ] {
        let err = TrustedNetworks::parse(["127.0.0.1", bad]).unwrap_err();
        assert_eq!(err.entry, bad);
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
    }
}

#[test]
fn client_ip_believes_forwarded_for_only_from_trusted_proxies() {
    let proxies = TrustedNetworks::parse(["10.0.0.0/8", "fd00::/8"]).unwrap();
    let none = TrustedNetworks::none();

    // Direct connection: the peer is the client; a header from an untrusted peer is ignored.
    assert_eq!(
        client_ip(ip("185.71.76.5"), None, &proxies),
        ip("185.71.76.5")
    );
    assert_eq!(
        client_ip(ip("8.8.8.8"), Some("185.71.76.5"), &proxies),
        ip("8.8.8.8"),
        "spoofed X-Forwarded-For from an untrusted peer"
    );
    assert_eq!(
        client_ip(ip("10.0.0.2"), Some("185.71.76.5"), &none),
        ip("10.0.0.2")
    );

    // Behind a trusted proxy.
    assert_eq!(
        client_ip(ip("10.0.0.2"), Some("185.71.76.5"), &proxies),
        ip("185.71.76.5")
    );
    assert_eq!(client_ip(ip("10.0.0.2"), None, &proxies), ip("10.0.0.2"));
    assert_eq!(
        client_ip(ip("::ffff:10.0.0.2"), Some("185.71.76.5"), &proxies),
        ip("185.71.76.5"),
        "IPv4-mapped peer"
    );

    // Several hops: the client may prepend anything; only the rightmost untrusted hop counts.
    assert_eq!(
        client_ip(
            ip("10.0.0.2"),
            Some("185.71.76.5, 8.8.8.8, 10.1.1.1"),
            &proxies
        ),
        ip("8.8.8.8")
    );
    assert_eq!(
        client_ip(
            ip("10.0.0.2"),
            Some("1.2.3.4,185.71.76.5 , 10.1.1.1,fd00::7"),
            &proxies
        ),
        ip("185.71.76.5")
    );
    assert_eq!(
        client_ip(
            ip("fd00::1"),
            Some("[2a02:5180:0:1509::9]:443, ::ffff:10.9.9.9"),
            &proxies
        ),
        ip("2a02:5180:0:1509::9")
    );
    assert_eq!(
        client_ip(ip("10.0.0.2"), Some("10.3.3.3, 10.1.1.1"), &proxies),
        ip("10.3.3.3"),
        "all hops trusted: the leftmost"
    );
    // Garbage stops the walk at the last trusted hop, which is no notification source.
    assert_eq!(
        client_ip(
            ip("10.0.0.2"),
            Some("185.71.76.5, garbage, 10.1.1.1"),
            &proxies
        ),
        ip("10.1.1.1")
    );
    assert_eq!(
        client_ip(ip("10.0.0.2"), Some(""), &proxies),
        ip("10.0.0.2")
    );
}
