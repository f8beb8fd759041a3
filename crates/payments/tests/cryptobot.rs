//! The CryptoBot client against the fake Crypto Pay API over real HTTP on loopback.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use cybervpn_domain::{Currency, Money};
use cybervpn_payments::{
    cryptobot::{
        CreateInvoice, CryptoBot, CryptoBotConfig, CryptoBotError, GetInvoices, InvoiceStatus,
        InvoiceStatusFilter, SIGNATURE_HEADER, UpdateType, parse_webhook, verify_webhook,
    },
    fake::cryptobot::{CryptoBotFake, Fault},
};
use cybervpn_telemetry::Metrics;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::mpsc};

const TOKEN: &str = "12345:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

struct Ctx {
    fake: CryptoBotFake,
    client: CryptoBot,
    metrics: Metrics,
}

async fn start_with(token: &str, timeout: Duration) -> Ctx {
    let fake = CryptoBotFake::start(TOKEN).await.unwrap();
    let metrics = Metrics::new().unwrap();
    let config = CryptoBotConfig {
        api_url: fake.url(),
        token: token.to_owned(),
        timeout,
    };
    let client = CryptoBot::new(config, metrics.external.clone()).unwrap();
    Ctx {
        fake,
        client,
        metrics,
    }
}

async fn start() -> Ctx {
    start_with(TOKEN, Duration::from_secs(5)).await
}

impl Ctx {
    fn metrics_text(&self) -> String {
        String::from_utf8(self.metrics.render()).unwrap()
    }

    fn count(&self, operation: &str, status: &str) -> usize {
        let line = format!(
            r#"external_requests_total{{operation="{operation}",service="cryptobot",status="{status}"}} "#
        );
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.parse().unwrap())
    }

    async fn create(&self, minor: i64, currency: Currency, payload: &str) -> i64 {
        let price = Money::new(minor, currency).unwrap();
        let invoice = self
            .client
            .create_invoice(&CreateInvoice::new(price, payload))
            .await
            .unwrap();
        invoice.invoice_id
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::Usd).unwrap()
}

#[tokio::test]
async fn fiat_invoices_carry_exact_amounts_and_our_payload() {
    let ctx = start().await;
    let mut request = CreateInvoice::new(usd(499), "pay_0190f3a2");
    request.accepted_assets = vec!["USDT".to_owned(), "TON".to_owned()];
    request.description = Some("CyberVPN, 1 month".to_owned());
    request.expires_in = Some(Duration::from_secs(3600));
    let invoice = ctx.client.create_invoice(&request).await.unwrap();
    assert_eq!(invoice.amount, "4.99");
    assert_eq!(invoice.fiat.as_deref(), Some("USD"));
    assert_eq!(invoice.status, InvoiceStatus::Active);
    assert_eq!(invoice.payload.as_deref(), Some("pay_0190f3a2"));
    assert_eq!(invoice.amount_money(), Some(usd(499)));
    assert!(invoice.bot_invoice_url.starts_with("https://t.me/"));
    assert!(invoice.expiration_date.is_some());

    let rub = Money::new(49_900, Currency::Rub).unwrap();
    let invoice = ctx
        .client
        .create_invoice(&CreateInvoice::new(rub, "pay_rub"))
        .await
        .unwrap();
    assert_eq!(invoice.amount, "499.00");
    assert_eq!(invoice.amount_money(), Some(rub));

    let sent = ctx.fake.requests();
    assert_eq!(sent.len(), 2);
    let first = &sent[0];
    assert_eq!(
        (first.http_method.as_str(), first.method.as_str()),
        ("POST", "createInvoice")
    );
    assert!(first.authorized);
    assert_eq!(first.params["currency_type"], "fiat");
    assert_eq!(first.params["fiat"], "USD");
    assert_eq!(first.params["amount"], "4.99");
    assert_eq!(first.params["accepted_assets"], "USDT,TON");
    assert_eq!(first.params["payload"], "pay_0190f3a2");
    assert_eq!(first.params["expires_in"], 3600);
    assert_eq!(sent[1].params["amount"], "499.00");
    assert_eq!(sent[1].params["fiat"], "RUB");
}

#[tokio::test]
async fn paid_invoices_show_in_get_invoices_by_status_and_ids() {
    let ctx = start().await;
    let paid = ctx.create(499, Currency::Usd, "pay_a").await;
    let open = ctx.create(999, Currency::Usd, "pay_b").await;
    assert!(ctx.fake.mark_paid(paid));

    let by_status = ctx
        .client
        .get_invoices(&GetInvoices {
            status: Some(InvoiceStatusFilter::Paid),
            ..GetInvoices::default()
        })
        .await
        .unwrap();
    assert_eq!(by_status.len(), 1);
    let invoice = &by_status[0];
    assert_eq!(invoice.invoice_id, paid);
    assert_eq!(invoice.status, InvoiceStatus::Paid);
    assert!(invoice.paid_at.is_some());
    assert_eq!(invoice.payload.as_deref(), Some("pay_a"));
    assert_eq!(invoice.amount_money(), Some(usd(499)));

    let by_ids = ctx
        .client
        .get_invoices(&GetInvoices {
            invoice_ids: vec![open, paid],
            ..GetInvoices::default()
        })
        .await
        .unwrap();
    let ids: Vec<i64> = by_ids.iter().map(|i| i.invoice_id).collect();
    assert_eq!(ids, vec![open, paid], "newest first");

    let active = ctx
        .client
        .get_invoices(&GetInvoices {
            invoice_ids: vec![paid],
            status: Some(InvoiceStatusFilter::Active),
            ..GetInvoices::default()
        })
        .await
        .unwrap();
    assert!(active.is_empty());
    let query = &ctx.fake.requests()[4];
    assert_eq!(query.http_method, "GET");
    assert_eq!(query.params["invoice_ids"], format!("{paid}"));
    assert_eq!(query.params["status"], "active");
}

#[tokio::test]
async fn the_fakes_webhook_verifies_and_parses() {
    let ctx = start().await;
    let id = ctx.create(499, Currency::Usd, "pay_hook").await;
    assert!(ctx.fake.mark_paid(id));
    let (body, signature) = ctx.fake.signed_webhook(id).unwrap();
    assert!(verify_webhook(TOKEN, &body, &signature));

    let update = parse_webhook(&body).unwrap();
    assert_eq!(update.update_type, UpdateType::InvoicePaid);
    assert_eq!(update.payload.invoice_id, id);
    assert_eq!(update.payload.status, InvoiceStatus::Paid);
    assert_eq!(update.payload.payload.as_deref(), Some("pay_hook"));
    assert_eq!(update.payload.amount_money(), Some(usd(499)));
}

#[tokio::test]
async fn webhook_verification_rejects_forgeries() {
    let ctx = start().await;
    let id = ctx.create(499, Currency::Usd, "pay_forged").await;
    assert!(ctx.fake.mark_paid(id));
    let (body, signature) = ctx.fake.signed_webhook(id).unwrap();

    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("4.99", "0.01");
    assert_ne!(tampered.as_bytes(), body.as_slice());
    assert!(!verify_webhook(TOKEN, tampered.as_bytes(), &signature));
    assert!(!verify_webhook(
        "12345:AAanotherAppToken",
        &body,
        &signature
    ));

    // The common bug: keying with the hex string of SHA-256(token) instead of its 32 raw bytes.
    let hex_key = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(hex_key.as_bytes()).unwrap();
    mac.update(&body);
    let buggy = hex::encode(mac.finalize().into_bytes());
    assert_ne!(buggy, signature);
    assert!(!verify_webhook(TOKEN, &body, &buggy));

    // Keying with the token itself is wrong too.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(&body);
    assert!(!verify_webhook(
        TOKEN,
        &body,
        &hex::encode(mac.finalize().into_bytes())
    ));

    for header in [
        &signature[..63],
        &signature[..32],
        &signature.to_uppercase(),
        &format!("{signature}00"),
        &format!(" {signature}"),
        &"Z".repeat(64),
        &"g".repeat(64),
        "",
    ] {
        assert!(!verify_webhook(TOKEN, &body, header), "{header:?}");
    }
    assert!(verify_webhook(TOKEN, &body, &signature));
}

/// A loopback receiver that answers 200 and hands over each webhook's signature header and body.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<(Option<String>, Bytes)>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!(
        "http://{}/webhooks/cryptobot",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let signature = request
                        .headers()
                        .get(SIGNATURE_HEADER)
                        .map(|value| value.to_str().unwrap().to_owned());
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    tx.send((signature, body)).unwrap();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, rx)
}

#[tokio::test]
async fn delivered_webhooks_carry_a_valid_signature_header() {
    let ctx = start().await;
    let id = ctx.create(49_900, Currency::Rub, "pay_delivered").await;
    assert!(ctx.fake.mark_paid(id));
    let (url, mut received) = webhook_receiver().await;
    assert_eq!(ctx.fake.deliver_webhook(&url, id).await.unwrap(), 200);
    let (signature, body) = received.recv().await.unwrap();
    assert!(verify_webhook(TOKEN, &body, &signature.unwrap()));
    let update = parse_webhook(&body).unwrap();
    assert_eq!(update.payload.invoice_id, id);
    assert_eq!(
        update.payload.amount_money(),
        Some(Money::new(49_900, Currency::Rub).unwrap())
    );
}

#[tokio::test]
async fn a_bad_token_is_a_typed_error_naming_the_operation() {
    let wrong = "99999:AAwrongTokenNobodyIssued";
    let ctx = start_with(wrong, Duration::from_secs(5)).await;
    let err = ctx.client.get_me().await.unwrap_err();
    assert!(
        matches!(&err, CryptoBotError::Api { operation: "getMe", status: 401, code: 401, name }
            if name == "UNAUTHORIZED"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("getMe") && text.contains("UNAUTHORIZED"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !format!("{err:?} {:?}", ctx.client).contains(wrong));
    assert_eq!(ctx.fake.requests().len(), 1, "refusals are not retried");

    let err = ctx
        .client
        .create_invoice(&CreateInvoice::new(usd(100), "pay_x"))
        .await
        .unwrap_err();
    assert_eq!(err.operation(), Some("createInvoice"));
    assert_eq!(err.name(), Some("UNAUTHORIZED"));
}

#[tokio::test]
async fn get_invoices_is_retried_after_a_server_error() {
    let ctx = start().await;
    let id = ctx.create(499, Currency::Usd, "pay_retry").await;
    ctx.fake.inject(Fault::Status(502), 1);
    ctx.fake.inject(Fault::ApiError(500, "INTERNAL_ERROR"), 1);
    let invoices = ctx
        .client
        .get_invoices(&GetInvoices::default())
        .await
        .unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].invoice_id, id);
    let reads = ctx
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "getInvoices")
        .count();
    assert_eq!(reads, 3);
    assert_eq!(ctx.count("getInvoices", "502"), 1);
    assert_eq!(ctx.count("getInvoices", "500"), 1);
    assert_eq!(ctx.count("getInvoices", "200"), 1);
}

#[tokio::test]
async fn create_invoice_is_sent_once_despite_a_server_error() {
    let ctx = start().await;
    ctx.fake.inject(Fault::Status(500), 1);
    let err = ctx
        .client
        .create_invoice(&CreateInvoice::new(usd(499), "pay_once"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CryptoBotError::Http {
                operation: "createInvoice",
                status: 500,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable(), "the caller may retry after a lookup");
    assert_eq!(ctx.fake.requests().len(), 1);
    assert!(ctx.fake.invoices().is_empty());
    assert_eq!(ctx.count("createInvoice", "500"), 1);
}

#[tokio::test]
async fn a_lost_create_answer_is_recovered_by_payload() {
    let ctx = start().await;
    ctx.create(100, Currency::Usd, "pay_other").await;
    ctx.fake.inject(Fault::DropAfterProcessing, 1);
    let err = ctx
        .client
        .create_invoice(&CreateInvoice::new(usd(499), "pay_lost"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CryptoBotError::Connection {
                operation: "createInvoice",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        ctx.fake.invoices().len(),
        2,
        "created despite the lost answer"
    );

    let found = ctx
        .client
        .find_invoice_by_payload("pay_lost", 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.amount_money(), Some(usd(499)));
    assert!(
        ctx.client
            .find_invoice_by_payload("pay_never", 1000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(ctx.count("createInvoice", "connection"), 1);
}

#[tokio::test]
async fn timeouts_are_typed_and_reads_give_up_after_three_attempts() {
    let ctx = start_with(TOKEN, Duration::from_millis(200)).await;
    ctx.fake.inject(Fault::Delay(Duration::from_secs(2)), 3);
    let err = ctx.client.get_me().await.unwrap_err();
    assert!(
        matches!(err, CryptoBotError::Timeout { operation: "getMe" }),
        "{err:?}"
    );
    assert_eq!(ctx.fake.requests().len(), 3);
    assert_eq!(ctx.count("getMe", "timeout"), 3);

    ctx.fake.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let err = ctx
        .client
        .create_invoice(&CreateInvoice::new(usd(499), "pay_slow"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CryptoBotError::Timeout {
                operation: "createInvoice"
            }
        ),
        "{err:?}"
    );
    assert_eq!(ctx.fake.requests().len(), 4, "createInvoice is not retried");

    let app = ctx.client.get_me().await.unwrap();
    assert_eq!(app.app_id, 4242);
}

#[tokio::test]
async fn garbage_success_bodies_are_decode_errors() {
    let ctx = start().await;
    ctx.fake.inject(Fault::Garbage, 1);
    let err = ctx.client.get_me().await.unwrap_err();
    assert!(
        matches!(
            err,
            CryptoBotError::Decode {
                operation: "getMe",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(ctx.count("getMe", "decode"), 1);
}

#[tokio::test]
async fn metrics_count_every_attempt_under_cryptobot() {
    let ctx = start().await;
    ctx.create(499, Currency::Usd, "pay_m").await;
    ctx.client.get_me().await.unwrap();
    ctx.client
        .get_invoices(&GetInvoices::default())
        .await
        .unwrap();
    let text = ctx.metrics_text();
    for line in [
        r#"external_requests_total{operation="createInvoice",service="cryptobot",status="200"} 1"#,
        r#"external_requests_total{operation="getMe",service="cryptobot",status="200"} 1"#,
        r#"external_requests_total{operation="getInvoices",service="cryptobot",status="200"} 1"#,
        r#"external_request_duration_seconds_count{operation="getMe",service="cryptobot"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[tokio::test]
async fn the_client_refuses_what_crypto_bot_cannot_take_without_sending() {
    let ctx = start().await;
    let stars = Money::new(100, Currency::Xtr).unwrap();
    let err = ctx
        .client
        .create_invoice(&CreateInvoice::new(stars, "pay_stars"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CryptoBotError::Invalid {
            operation: "createInvoice",
            ..
        }
    ));
    let mut long = CreateInvoice::new(usd(499), "p".repeat(4097));
    assert!(ctx.client.create_invoice(&long).await.is_err());
    long.payload = "pay_ok".to_owned();
    long.expires_in = Some(Duration::from_secs(40 * 24 * 3600));
    assert!(ctx.client.create_invoice(&long).await.is_err());
    let too_many = GetInvoices {
        count: 1001,
        ..GetInvoices::default()
    };
    assert!(ctx.client.get_invoices(&too_many).await.is_err());
    assert!(ctx.fake.requests().is_empty());
}

#[tokio::test]
async fn the_fake_refuses_parameters_the_real_api_refuses() {
    let ctx = start().await;
    let http = reqwest::Client::new();
    let send = |body: serde_json::Value| {
        let request = http
            .post(format!("{}createInvoice", ctx.fake.url()))
            .header("Crypto-Pay-API-Token", TOKEN)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let fiat = |amount: &str| serde_json::json!({"currency_type": "fiat", "fiat": "USD", "amount": amount});
    for (body, name) in [
        (fiat("4.999"), "AMOUNT_INVALID"),
        (fiat("1e3"), "AMOUNT_INVALID"),
        (fiat("-4.99"), "AMOUNT_INVALID"),
        (fiat("0.00"), "AMOUNT_INVALID"),
        (fiat("4,99"), "AMOUNT_INVALID"),
        (
            serde_json::json!({"currency_type": "fiat", "fiat": "XXX", "amount": "1"}),
            "FIAT_INVALID",
        ),
        (
            serde_json::json!({"currency_type": "fiat", "fiat": "USD", "amount": "1", "accepted_assets": "USDT,FOO"}),
            "ACCEPTED_ASSETS_INVALID",
        ),
        (serde_json::json!({"amount": "1"}), "ASSET_INVALID"),
        (
            serde_json::json!({"currency_type": "gold", "amount": "1"}),
            "CURRENCY_TYPE_INVALID",
        ),
        (
            serde_json::json!({"asset": "TON", "amount": "1", "expires_in": 0}),
            "EXPIRES_IN_INVALID",
        ),
    ] {
        let (status, answer) = send(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            answer,
            serde_json::json!({"ok": false, "error": {"code": 400, "name": name}}),
            "{body}"
        );
    }
    let (status, answer) = send(serde_json::json!({"asset": "TON", "amount": "1.5"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["result"]["amount"], "1.5");

    let unauthorized = http
        .get(format!("{}getMe", ctx.fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    assert_eq!(
        unauthorized.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ok": false, "error": {"code": 401, "name": "UNAUTHORIZED"}})
    );
    assert!(ctx.fake.invoices().len() == 1);
}
