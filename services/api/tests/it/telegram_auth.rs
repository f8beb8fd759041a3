//! `POST /api/v1/auth/telegram`: Mini App and Login Widget data signed here with a test bot token (HMAC computed
//! in the test, independently of the api's code), the same customer as the bot's, and every refusal, on both
//! backends.

use chrono::{Duration, Utc};
use cybervpn_domain::{StaffRole, TelegramId};
use cybervpn_rpc::bot::v1::{self as pb, bot_service_client::BotServiceClient};
use cybervpn_testkit::{Backend, on_both_backends};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    the_mini_app_signs_in_as_the_customer_the_bot_knows,
    a_new_telegram_user_is_registered_once_for_the_app_and_the_bot,
    the_login_widget_signs_in_the_same_customer,
    forged_tampered_expired_and_malformed_data_is_refused,
    banned_customers_cannot_sign_in_with_telegram,
    telegram_sign_in_needs_the_bot_token,
);

const BOT_TOKEN: &str = "7000001:AAtest-bot-token-for-sign-in";
const SERVICE_TOKEN: &str = "bot-service-token-0123456789abcdef";
const PATH: &str = "/api/v1/auth/telegram";
const MAX_AGE_SECS: u64 = 3600;

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        config.telegram.bot_token = Some(cybervpn_config::Secret::new(BOT_TOKEN.to_owned()));
        config.telegram.auth_max_age_secs = MAX_AGE_SECS;
        config.grpc.bot_token = Some(cybervpn_config::Secret::new(SERVICE_TOKEN.to_owned()));
        config.grpc.listen = "127.0.0.1:0".to_owned();
    })
    .await
}

type Client = BotServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        cybervpn_rpc::BearerToken,
    >,
>;

async fn bot(app: &TestApp) -> Client {
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    BotServiceClient::with_interceptor(
        channel,
        cybervpn_rpc::BearerToken::new(SERVICE_TOKEN).unwrap(),
    )
}

/// `/start` in the bot, through the api's gRPC service as the bot calls it.
async fn bot_start(app: &TestApp, id: i64, username: &str) -> pb::RegisterCustomerResponse {
    bot(app)
        .await
        .register_customer(pb::RegisterCustomerRequest {
            user: Some(pb::TelegramUser {
                id,
                username: username.to_owned(),
                first_name: "Bot".to_owned(),
                language_code: "en".to_owned(),
            }),
            referral_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `key=value` lines of every field, sorted by key, as Telegram documents the data-check-string.
fn check_string(fields: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.sort();
    lines.join("\n")
}

/// Percent-encodes everything but unreserved characters, as `URLSearchParams` would send it.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Mini App init data for `fields`, signed with `token` as Telegram signs it.
fn init_data_signed_with(token: &str, fields: &[(&str, String)]) -> String {
    let secret = hmac_sha256(b"WebAppData", token.as_bytes());
    let hash = hex::encode(hmac_sha256(&secret, check_string(fields).as_bytes()));
    let mut pairs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    pairs.push(format!("hash={hash}"));
    pairs.join("&")
}

/// The fields a Mini App gets for Telegram user `id`, signed `age` ago (with a third-party `signature`,
/// which Telegram includes and which is part of the data-check-string).
fn mini_app_fields(
    id: i64,
    username: &str,
    language: &str,
    age: Duration,
) -> Vec<(&'static str, String)> {
    let user = json!({
        "id": id,
        "first_name": "Neo Anderson",
        "last_name": "+ / ? &",
        "username": username,
        "language_code": language,
        "allows_write_to_pm": true,
    });
    vec![
        ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc".to_owned()),
        ("user", user.to_string()),
        ("chat_instance", "-8134722200314281151".to_owned()),
        ("chat_type", "private".to_owned()),
        ("auth_date", (Utc::now() - age).timestamp().to_string()),
        (
            "signature",
            "TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L".to_owned(),
        ),
    ]
}

fn init_data(id: i64, username: &str, language: &str) -> String {
    init_data_signed_with(
        BOT_TOKEN,
        &mini_app_fields(id, username, language, Duration::seconds(5)),
    )
}

/// Login Widget fields for `id`, signed with SHA256(`token`) as Telegram signs them.
fn widget_signed_with(token: &str, id: i64, age: Duration) -> Value {
    let fields = [
        ("id", id.to_string()),
        ("first_name", "Trinity".to_owned()),
        ("username", "trinity_w".to_owned()),
        (
            "photo_url",
            "https://t.me/i/userpic/320/trinity.jpg".to_owned(),
        ),
        ("auth_date", (Utc::now() - age).timestamp().to_string()),
    ];
    let secret = sha2::Sha256::digest(token.as_bytes());
    let hash = hex::encode(hmac_sha256(&secret, check_string(&fields).as_bytes()));
    json!({
        "id": id,
        "first_name": "Trinity",
        "username": "trinity_w",
        "photo_url": "https://t.me/i/userpic/320/trinity.jpg",
        "auth_date": (Utc::now() - age).timestamp(),
        "hash": hash,
    })
}

/// Signs in with `body` and returns the access token.
async fn sign_in(app: &TestApp, body: &Value) -> String {
    let tokens = json_body(app.post_json(PATH, body).await, 200).await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn me(app: &TestApp, token: &str) -> Value {
    json_body(app.get_authed("/api/v1/auth/me", token).await, 200).await
}

async fn the_mini_app_signs_in_as_the_customer_the_bot_knows(backend: Backend) {
    let app = spawn(backend).await;
    let started = bot_start(&app, 7001, "neo_bot").await;
    assert!(started.created);
    let bot_customer = started.customer.unwrap().id;

    let token = sign_in(
        &app,
        &json!({ "init_data": init_data(7001, "neo_app", "ru") }),
    )
    .await;
    let profile = me(&app, &token).await;
    assert_eq!(profile["id"], bot_customer.as_str(), "{profile}");
    assert_eq!(profile["telegram_id"], 7001);
    // An existing customer keeps their name and language.
    assert_eq!(profile["username"], "neo_bot");
    assert_eq!(profile["language"], "en");

    // The token works on the customer endpoints, for that customer.
    let subscriptions = json_body(app.get_authed("/api/v1/subscriptions", &token).await, 200).await;
    assert_eq!(subscriptions, json!([]));
    let trial = json_body(app.get_authed("/api/v1/trial/status", &token).await, 200).await;
    assert_eq!(trial["available"], true, "{trial}");
    let taken = app
        .post_authed("/api/v1/trial/activate", &token, &json!({}))
        .await;
    assert_eq!(taken.status(), 201, "{}", taken.text().await.unwrap());
    let subscriptions = json_body(app.get_authed("/api/v1/subscriptions", &token).await, 200).await;
    assert_eq!(
        subscriptions.as_array().unwrap().len(),
        1,
        "{subscriptions}"
    );
    // The bot sees the trial the app took: one customer.
    let seen = bot(&app)
        .await
        .get_customer(pb::GetCustomerRequest {
            telegram_user_id: 7001,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!seen.trial_available);
    assert!(seen.subscription.is_some());

    // Telegram allows the same init data again while it is fresh.
    let again = sign_in(
        &app,
        &json!({ "init_data": init_data(7001, "neo_app", "ru") }),
    )
    .await;
    assert_eq!(me(&app, &again).await["id"], bot_customer.as_str());
    app.stop().await;
}

async fn a_new_telegram_user_is_registered_once_for_the_app_and_the_bot(backend: Backend) {
    let app = spawn(backend).await;
    let token = sign_in(
        &app,
        &json!({ "init_data": init_data(7002, "morpheus", "ru-RU") }),
    )
    .await;
    let profile = me(&app, &token).await;
    assert_eq!(profile["telegram_id"], 7002);
    assert_eq!(profile["username"], "morpheus");
    assert_eq!(profile["language"], "ru", "language from language_code");

    let started = bot_start(&app, 7002, "morpheus").await;
    assert!(!started.created, "the bot finds the app's customer");
    assert_eq!(
        started.customer.unwrap().id,
        profile["id"].as_str().unwrap()
    );

    // A username Telegram allows but we do not falls back to tg_<id>, as in the bot.
    let token = sign_in(&app, &json!({ "init_data": init_data(7003, "ab", "de") })).await;
    let profile = me(&app, &token).await;
    assert_eq!(profile["username"], "tg_7003");
    assert_eq!(profile["language"], "en");
    let stored = app
        .db
        .customers()
        .find_by_telegram_id(TelegramId::new(7003).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.id.as_uuid().to_string(),
        profile["id"].as_str().unwrap()
    );
    app.stop().await;
}

async fn the_login_widget_signs_in_the_same_customer(backend: Backend) {
    let app = spawn(backend).await;
    let from_app = sign_in(
        &app,
        &json!({ "init_data": init_data(7004, "trinity_w", "en") }),
    )
    .await;
    let widget = widget_signed_with(BOT_TOKEN, 7004, Duration::seconds(5));
    let from_web = sign_in(&app, &json!({ "widget": widget })).await;
    assert_eq!(
        me(&app, &from_app).await["id"],
        me(&app, &from_web).await["id"]
    );

    // Widget data is signed with SHA256(token), not the Mini App key; and every field counts.
    let mut tampered = widget_signed_with(BOT_TOKEN, 7004, Duration::seconds(5));
    tampered["username"] = json!("agent_smith");
    assert_problem(
        app.post_json(PATH, &json!({ "widget": tampered })).await,
        401,
        "unauthorized",
    )
    .await;
    let other_bot = widget_signed_with("7000002:another-bot", 7004, Duration::seconds(5));
    assert_problem(
        app.post_json(PATH, &json!({ "widget": other_bot })).await,
        401,
        "unauthorized",
    )
    .await;
    let old = widget_signed_with(BOT_TOKEN, 7004, Duration::hours(2));
    assert_problem(
        app.post_json(PATH, &json!({ "widget": old })).await,
        401,
        "token_expired",
    )
    .await;
    let mut no_hash = widget_signed_with(BOT_TOKEN, 7004, Duration::seconds(5));
    no_hash.as_object_mut().unwrap().remove("hash");
    assert_problem(
        app.post_json(PATH, &json!({ "widget": no_hash })).await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

async fn forged_tampered_expired_and_malformed_data_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let fresh = Duration::seconds(5);
    let unauthorized = |body: Value| {
        let app = &app;
        async move { assert_problem(app.post_json(PATH, &body).await, 401, "unauthorized").await }
    };

    // Signed with another bot's token.
    let forged = init_data_signed_with(
        "7000002:another-bot",
        &mini_app_fields(7010, "x_user", "en", fresh),
    );
    unauthorized(json!({ "init_data": forged })).await;
    // A field changed after signing: another user id, or the signature field dropped.
    let signed = init_data(7010, "x_user", "en");
    assert!(signed.contains("%22id%22%3A7010%2C"), "{signed}");
    unauthorized(
        json!({ "init_data": signed.replace("%22id%22%3A7010%2C", "%22id%22%3A7011%2C") }),
    )
    .await;
    let without_signature: Vec<&str> = signed
        .split('&')
        .filter(|pair| !pair.starts_with("signature="))
        .collect();
    unauthorized(json!({ "init_data": without_signature.join("&") })).await;
    // A hash that is not hex at all.
    let (unsigned, _) = signed.split_once("&hash=").unwrap();
    unauthorized(json!({ "init_data": format!("{unsigned}&hash=zz") })).await;

    // Signed, but older than telegram.auth_max_age_secs, or from the future.
    let max_age = Duration::seconds(i64::try_from(MAX_AGE_SECS).unwrap());
    let old = init_data_signed_with(
        BOT_TOKEN,
        &mini_app_fields(7010, "x_user", "en", max_age + Duration::seconds(30)),
    );
    let body = assert_problem(
        app.post_json(PATH, &json!({ "init_data": old })).await,
        401,
        "token_expired",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let future = init_data_signed_with(
        BOT_TOKEN,
        &mini_app_fields(7010, "x_user", "en", -Duration::hours(1)),
    );
    assert_problem(
        app.post_json(PATH, &json!({ "init_data": future })).await,
        401,
        "token_expired",
    )
    .await;

    // Malformed: no hash, a field twice, bad escapes, a signed user that is not a user, neither or both.
    for (body, field) in [
        (json!({ "init_data": unsigned }), "init_data"),
        (
            json!({ "init_data": format!("{signed}&auth_date=1") }),
            "init_data",
        ),
        (json!({ "init_data": "user=%zz&hash=00" }), "init_data"),
        (
            json!({ "init_data": init_data_signed_with(BOT_TOKEN, &[
                ("user", "not json".to_owned()),
                ("auth_date", Utc::now().timestamp().to_string()),
            ]) }),
            "init_data",
        ),
        (json!({}), "init_data"),
        (
            json!({ "init_data": signed, "widget": widget_signed_with(BOT_TOKEN, 7010, fresh) }),
            "init_data",
        ),
    ] {
        let problem =
            assert_problem(app.post_json(PATH, &body).await, 422, "validation_failed").await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_problem(
        app.post_json(PATH, &json!({ "init_data": signed, "extra": 1 }))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let not_json = app
        .client
        .post(app.url(PATH))
        .header("content-type", "application/json")
        .body("{\"init_data\": ")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 400, "malformed_json").await;

    // Nothing refused created a customer.
    for id in [7010, 7011] {
        assert!(
            app.db
                .customers()
                .find_by_telegram_id(TelegramId::new(id).unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
    app.stop().await;
}

async fn banned_customers_cannot_sign_in_with_telegram(backend: Backend) {
    let app = spawn(backend).await;
    let token = sign_in(
        &app,
        &json!({ "init_data": init_data(7020, "cypher", "en") }),
    )
    .await;
    let id = me(&app, &token).await["id"].as_str().unwrap().to_owned();
    let support = app.staff_token(StaffRole::Support).await;
    let banned = app
        .post_authed(
            &format!("/api/v1/users/{id}/ban"),
            &support,
            &json!({ "reason": "chargeback fraud" }),
        )
        .await;
    assert_eq!(banned.status(), 200, "{}", banned.text().await.unwrap());
    assert_problem(
        app.post_json(
            PATH,
            &json!({ "init_data": init_data(7020, "cypher", "en") }),
        )
        .await,
        403,
        "account_disabled",
    )
    .await;
    assert_problem(
        app.post_json(
            PATH,
            &json!({ "widget": widget_signed_with(BOT_TOKEN, 7020, Duration::seconds(5)) }),
        )
        .await,
        403,
        "account_disabled",
    )
    .await;
    app.stop().await;
}

async fn telegram_sign_in_needs_the_bot_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = assert_problem(
        app.post_json(PATH, &json!({ "init_data": init_data(7030, "tank", "en") }))
            .await,
        503,
        "service_unavailable",
    )
    .await;
    assert!(!body["detail"].as_str().unwrap().contains(BOT_TOKEN));
    app.stop().await;
}
