//! A customer's own subscriptions and their connection details (URL, QR code, the panel's links).

use base64::Engine as _;
use chrono::Utc;
use cybervpn_config::Secret;
use cybervpn_domain::PanelIdentity;
use cybervpn_panel_fake::{FakeOptions, PanelFake};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    customers_see_only_their_own_subscriptions,
    config_has_url_qr_and_panel_links,
    config_survives_an_unreachable_panel,
);

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

async fn spawn_with_panel(backend: Backend) -> (TestApp, PanelFake) {
    let fake = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
        .await
        .unwrap();
    let url = fake.url();
    let token = fake.token().to_owned();
    let app = TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        config.remnawave.url = Some(url);
        config.remnawave.token = Some(Secret::new(token));
        config.remnawave.timeout_secs = 2;
    })
    .await;
    (app, fake)
}

/// Gives `subscription` the identity of a new user on the fake panel, as provisioning would.
async fn provision_on(
    app: &TestApp,
    fake: &PanelFake,
    subscription: &cybervpn_domain::Subscription,
) -> PanelIdentity {
    let user = fake
        .seed_user(
            &format!("c_{}", subscription.id.as_uuid().simple()),
            subscription.expires_at,
            0,
            None,
        )
        .expect("a fresh username");
    let identity = PanelIdentity {
        user_id: user.id,
        short_uuid: user.short_uuid,
        subscription_url: user.subscription_url,
    };
    app.db
        .subscriptions()
        .set_panel(subscription.id, Some(&identity), Utc::now())
        .await
        .unwrap();
    identity
}

fn png_of(config: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(config["qr_code_png_base64"].as_str().unwrap())
        .unwrap()
}

async fn customers_see_only_their_own_subscriptions(backend: Backend) {
    let (app, _fake) = spawn_with_panel(backend).await;
    let alice = app.customer_id("alice@example.com").await;
    let alice_token = app
        .customer_token_for("alice@example.com", "correct horse alice@example.com")
        .await;
    let bob_token = app.customer_token("bob@example.com").await;

    assert_eq!(
        json_body(
            app.get_authed("/api/v1/subscriptions", &alice_token).await,
            200
        )
        .await,
        serde_json::json!([])
    );
    let older = app.subscribe(alice, 10).await;
    let newer = app.subscribe(alice, 30).await;
    let list = json_body(
        app.get_authed("/api/v1/subscriptions", &alice_token).await,
        200,
    )
    .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let (older_id, newer_id) = (
        older.id.as_uuid().to_string(),
        newer.id.as_uuid().to_string(),
    );
    assert_eq!(ids, [newer_id.as_str(), older_id.as_str()], "newest first");
    assert_eq!(list[0]["provisioned"], false);
    assert_eq!(
        json_body(
            app.get_authed("/api/v1/subscriptions", &bob_token).await,
            200
        )
        .await,
        serde_json::json!([])
    );

    let path = format!("/api/v1/subscriptions/{newer_id}/config");
    assert_problem(app.get_authed(&path, &bob_token).await, 404, "not_found").await;
    let missing = format!("/api/v1/subscriptions/{}/config", uuid::Uuid::now_v7());
    assert_problem(
        app.get_authed(&missing, &alice_token).await,
        404,
        "not_found",
    )
    .await;
    let problem = assert_problem(
        app.get_authed(&path, &alice_token).await,
        409,
        "invalid_state_transition",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not provisioned yet"),
        "{problem}"
    );
    assert_problem(
        app.get_authed("/api/v1/subscriptions/not-a-uuid/config", &alice_token)
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(app.get("/api/v1/subscriptions").await, 401, "unauthorized").await;
    app.stop().await;
}

async fn config_has_url_qr_and_panel_links(backend: Backend) {
    let (app, fake) = spawn_with_panel(backend).await;
    let id = app.customer_id("linked@example.com").await;
    let token = app
        .customer_token_for("linked@example.com", "correct horse linked@example.com")
        .await;
    let subscription = app.subscribe(id, 30).await;
    let identity = provision_on(&app, &fake, &subscription).await;

    let list = json_body(app.get_authed("/api/v1/subscriptions", &token).await, 200).await;
    assert_eq!(list[0]["provisioned"], true);
    let path = format!("/api/v1/subscriptions/{}/config", subscription.id.as_uuid());
    let config = json_body(app.get_authed(&path, &token).await, 200).await;
    assert_eq!(config["subscription_url"], identity.subscription_url);
    assert!(
        png_of(&config).starts_with(PNG_MAGIC),
        "the QR code is a PNG"
    );
    let links = config["links"].as_array().unwrap();
    assert!(!links.is_empty(), "{config}");
    assert!(
        links.iter().all(|l| l.as_str().unwrap().contains("://")),
        "{config}"
    );
    assert!(config.get("links_error").is_none(), "{config}");
    app.stop().await;
}

async fn config_survives_an_unreachable_panel(backend: Backend) {
    let (app, fake) = spawn_with_panel(backend).await;
    let id = app.customer_id("offline@example.com").await;
    let token = app
        .customer_token_for("offline@example.com", "correct horse offline@example.com")
        .await;
    let subscription = app.subscribe(id, 30).await;
    let identity = provision_on(&app, &fake, &subscription).await;
    fake.shutdown();

    let path = format!("/api/v1/subscriptions/{}/config", subscription.id.as_uuid());
    let config = json_body(app.get_authed(&path, &token).await, 200).await;
    assert_eq!(config["subscription_url"], identity.subscription_url);
    assert!(png_of(&config).starts_with(PNG_MAGIC));
    assert_eq!(config["links"], serde_json::json!([]));
    assert!(config["links_error"].is_string(), "{config}");
    app.stop().await;
}
