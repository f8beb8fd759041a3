//! Customer and staff authentication over HTTP: the full token lifecycle, 2FA, abuse protection.

use std::time::Duration;

use chrono::Utc;
use cybervpn_auth::Audience;
use cybervpn_domain::StaffRole;
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

on_both_backends!(
    register_login_me_refresh_reuse_logout,
    wrong_credentials_never_reveal_whether_an_email_exists,
    tokens_are_checked_for_expiry_signature_and_audience,
    two_factor_enrolment_login_and_replay,
    failed_logins_lock_the_account_progressively,
    sign_in_endpoints_are_rate_limited_per_ip,
    logout_all_ends_every_session,
    changed_argon2_parameters_rehash_on_login,
);

async fn register_login_me_refresh_reuse_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "Neo@Example.com", "password": "follow the white rabbit"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let customer: Value = response.json().await.unwrap();
    assert_eq!(customer["email"], "neo@example.com");
    assert_eq!(customer["status"], "active");
    assert!(customer.get("password_hash").is_none());

    let duplicate = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "neo@example.com", "password": "another good passphrase"}),
        )
        .await;
    assert_problem(duplicate, 409, "conflict").await;

    let login = app
        .login(
            "/api/v1/auth/login",
            "neo@example.com",
            "follow the white rabbit",
        )
        .await;
    assert_eq!(login.status(), 200);
    let pair: Value = login.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let access = pair["access_token"].as_str().unwrap();
    assert!(access.starts_with("v4.public."), "{access}");
    let refresh1 = pair["refresh_token"].as_str().unwrap();

    let me: Value = app
        .get_authed("/api/v1/auth/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], customer["id"]);
    assert_eq!(me["email"], "neo@example.com");

    let rotated = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh1}))
        .await;
    assert_eq!(rotated.status(), 200);
    let pair2: Value = rotated.json().await.unwrap();
    let refresh2 = pair2["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh1, "refresh tokens rotate on every use");
    assert_eq!(
        app.get_authed("/api/v1/auth/me", pair2["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // Presenting the spent token again is theft: the whole family dies, including refresh2.
    let reused = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh1}))
        .await;
    assert_problem(reused, 401, "refresh_token_reused").await;
    let after_reuse = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh2}))
        .await;
    assert_problem(after_reuse, 401, "refresh_token_reused").await;

    // A fresh sign-in, then sign-out with its refresh token.
    let pair3: Value = app
        .login(
            "/api/v1/auth/login",
            "neo@example.com",
            "follow the white rabbit",
        )
        .await
        .json()
        .await
        .unwrap();
    let access3 = pair3["access_token"].as_str().unwrap();
    let logout = app
        .post_authed(
            "/api/v1/auth/logout",
            access3,
            &json!({"refresh_token": pair3["refresh_token"]}),
        )
        .await;
    assert_eq!(logout.status(), 204);
    assert_problem(
        app.get_authed("/api/v1/auth/me", access3).await,
        401,
        "token_invalid",
    )
    .await;
    let refresh_after_logout = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": pair3["refresh_token"]}),
        )
        .await;
    assert_problem(refresh_after_logout, 401, "refresh_token_reused").await;

    let unknown = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": "not-a-token"}),
        )
        .await;
    assert_problem(unknown, 401, "token_invalid").await;
    app.stop().await;
}

async fn wrong_credentials_never_reveal_whether_an_email_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password = app.register("known@example.com").await;

    let wrong_password = app
        .login(
            "/api/v1/auth/login",
            "known@example.com",
            "definitely not it",
        )
        .await;
    let a = assert_problem(wrong_password, 401, "invalid_credentials").await;
    let unknown = app
        .login("/api/v1/auth/login", "nobody@example.com", &password)
        .await;
    let b = assert_problem(unknown, 401, "invalid_credentials").await;
    let not_an_email = app.login("/api/v1/auth/login", "nobody", &password).await;
    let c = assert_problem(not_an_email, 401, "invalid_credentials").await;
    assert_eq!(a, b, "identical answers for a known and an unknown email");
    assert_eq!(b, c);

    // Oversized passwords are refused before hashing.
    let huge = app
        .login(
            "/api/v1/auth/login",
            "known@example.com",
            &"x".repeat(10_000),
        )
        .await;
    let body = assert_problem(huge, 422, "validation_failed").await;
    assert_eq!(body["field"], "password");

    for (weak, why) in [
        ("short", "too short"),
        ("password123", "too common"),
        ("aaaaaaaaaaaa", "one character"),
    ] {
        let response = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": "weak@example.com", "password": weak}),
            )
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["field"], "password", "{why}");
    }
    let bad_email = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "not-an-email", "password": "a perfectly fine passphrase"}),
        )
        .await;
    assert_eq!(
        assert_problem(bad_email, 422, "validation_failed").await["field"],
        "email"
    );
    app.stop().await;
}

async fn tokens_are_checked_for_expiry_signature_and_audience(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app.customer_token("aud@example.com").await;
    let staff = app.staff_token(StaffRole::Viewer).await;

    assert_problem(app.get("/api/v1/auth/me").await, 401, "unauthorized").await;
    assert_problem(
        app.get_authed("/api/v1/auth/me", &staff).await,
        401,
        "token_invalid",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/admin/auth/me", &customer).await,
        401,
        "token_invalid",
    )
    .await;
    assert_eq!(
        app.get_authed("/api/v1/admin/auth/me", &staff)
            .await
            .status(),
        200
    );

    let me: Value = app
        .get_authed("/api/v1/auth/me", &customer)
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = me["id"].as_str().unwrap().parse().unwrap();
    let expired = app.forge_token(
        id,
        "customer",
        Audience::Customer,
        Utc::now() - chrono::Duration::hours(1),
        chrono::Duration::minutes(15),
    );
    assert_problem(
        app.get_authed("/api/v1/auth/me", &expired).await,
        401,
        "token_expired",
    )
    .await;

    let (_, other_key) = cybervpn_auth::TokenKeys::generate().unwrap();
    let forged = cybervpn_auth::TokenKeys::from_paserk(&other_key, &[])
        .unwrap()
        .issue(&cybervpn_auth::Claims::new(
            id,
            "customer",
            Audience::Customer,
            Utc::now(),
            chrono::Duration::minutes(15),
        ))
        .unwrap();
    assert_problem(
        app.get_authed("/api/v1/auth/me", &forged).await,
        401,
        "token_invalid",
    )
    .await;

    for junk in [
        "v4.public.AAAA",
        "v4.local.AAAA",
        "garbage",
        &format!("{customer}x"),
    ] {
        assert_problem(
            app.get_authed("/api/v1/auth/me", junk).await,
            401,
            "token_invalid",
        )
        .await;
    }
    // A pending 2FA token is not an access token.
    let pending = app.forge_token(
        id,
        "customer",
        Audience::CustomerTwoFactor,
        Utc::now(),
        chrono::Duration::minutes(5),
    );
    assert_problem(
        app.get_authed("/api/v1/auth/me", &pending).await,
        401,
        "token_invalid",
    )
    .await;
    app.stop().await;
}

fn code_at(uri: &str, at: chrono::DateTime<Utc>) -> String {
    // Computed independently of our TOTP code, from the otpauth URI the api returned.
    totp_rs::Totp::from_url(uri)
        .expect("a valid otpauth URI")
        .generate(u64::try_from(at.timestamp()).unwrap())
        .to_string()
}

async fn two_factor_enrolment_login_and_replay(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password = app.register("totp@example.com").await;
    let pair: Value = app
        .login("/api/v1/auth/login", "totp@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap();

    let enable: Value = app
        .post_authed("/api/v1/two-factor/enable", access, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let uri = enable["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/CyberVPN:totp%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={}", enable["secret"].as_str().unwrap())));
    let png = base64_decode(enable["qr_png_base64"].as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG QR code");

    let wrong = app
        .post_authed(
            "/api/v1/two-factor/verify",
            access,
            &json!({"code": "000000"}),
        )
        .await;
    if wrong.status() != 200 {
        assert_problem(wrong, 401, "invalid_two_factor_code").await;
    }
    let now = Utc::now();
    let verify = app
        .post_authed(
            "/api/v1/two-factor/verify",
            access,
            &json!({"code": code_at(uri, now)}),
        )
        .await;
    assert_eq!(verify.status(), 200);
    let codes: Value = verify.json().await.unwrap();
    let backup: Vec<String> = codes["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backup.len(), 10);

    let challenge: Value = app
        .login("/api/v1/auth/login", "totp@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(challenge["two_factor_required"], true);
    assert!(challenge.get("access_token").is_none());
    let pending = challenge["pending_token"].as_str().unwrap();
    assert_problem(
        app.get_authed("/api/v1/auth/me", pending).await,
        401,
        "token_invalid",
    )
    .await;

    // The code that confirmed enrolment is spent: replay refused, and the pending token with it.
    let replay = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": code_at(uri, now)}),
        )
        .await;
    assert_problem(replay, 401, "invalid_two_factor_code").await;
    let next = code_at(uri, now + chrono::Duration::seconds(30));
    let burned = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": next}),
        )
        .await;
    assert_problem(burned, 401, "token_invalid").await;

    // A fresh password step; the next step's code is inside the ±1 window and accepted once.
    let pending = challenge_for(&app, &password).await;
    let ok = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": next}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert_eq!(
        app.get_authed("/api/v1/auth/me", tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let pending = challenge_for(&app, &password).await;
    let replayed_totp = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": next}),
        )
        .await;
    assert_problem(replayed_totp, 401, "invalid_two_factor_code").await;

    // Backup codes work once each.
    let pending = challenge_for(&app, &password).await;
    let with_backup = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": backup[0]}),
        )
        .await;
    assert_eq!(with_backup.status(), 200);
    let pending = challenge_for(&app, &password).await;
    let backup_again = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": pending, "code": backup[0]}),
        )
        .await;
    assert_problem(backup_again, 401, "invalid_two_factor_code").await;

    // Disabling needs proof; the password works.
    let no_proof = app
        .post_authed("/api/v1/two-factor/disable", access, &json!({}))
        .await;
    assert_problem(no_proof, 422, "validation_failed").await;
    let wrong_password = app
        .post_authed(
            "/api/v1/two-factor/disable",
            access,
            &json!({"password": "nope nope nope"}),
        )
        .await;
    assert_problem(wrong_password, 401, "invalid_credentials").await;
    let disabled = app
        .post_authed(
            "/api/v1/two-factor/disable",
            access,
            &json!({"password": password}),
        )
        .await;
    assert_eq!(disabled.status(), 204);
    let plain: Value = app
        .login("/api/v1/auth/login", "totp@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    assert!(plain["access_token"].is_string(), "{plain}");
    app.stop().await;
}

async fn challenge_for(app: &TestApp, password: &str) -> String {
    let challenge: Value = app
        .login("/api/v1/auth/login", "totp@example.com", password)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(challenge["two_factor_required"], true);
    challenge["pending_token"].as_str().unwrap().to_owned()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0_u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

async fn failed_logins_lock_the_account_progressively(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.lockout_threshold = 3;
        c.auth.lockout_base_secs = 60;
    })
    .await;
    let password = app.register("victim@example.com").await;
    for _ in 0..3 {
        let response = app
            .login(
                "/api/v1/auth/login",
                "victim@example.com",
                "wrong guess 1234",
            )
            .await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    // Locked: even the right password waits, and the client is told how long.
    let locked = app
        .login("/api/v1/auth/login", "victim@example.com", &password)
        .await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    assert_problem(locked, 429, "account_locked").await;
    // Other accounts are unaffected.
    let other = app.register("bystander@example.com").await;
    assert_eq!(
        app.login("/api/v1/auth/login", "bystander@example.com", &other)
            .await
            .status(),
        200
    );
    app.stop().await;
}

async fn sign_in_endpoints_are_rate_limited_per_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.auth.ip_requests_per_minute = 4).await;
    for i in 0..4 {
        let response = app
            .login(
                "/api/v1/auth/login",
                &format!("u{i}@example.com"),
                "some password 1",
            )
            .await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let limited = app
        .login("/api/v1/auth/login", "u9@example.com", "some password 1")
        .await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=15).contains(&retry_after),
        "one token per 15 s: {retry_after}"
    );
    assert_problem(limited, 429, "rate_limited").await;
    // Each endpoint has its own bucket.
    let refresh = app
        .post_json("/api/v1/auth/refresh", &json!({"refresh_token": "x"}))
        .await;
    assert_problem(refresh, 401, "token_invalid").await;
    app.stop().await;
}

async fn logout_all_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password = app.register("many@example.com").await;
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let pair: Value = app
            .login("/api/v1/auth/login", "many@example.com", &password)
            .await
            .json()
            .await
            .unwrap();
        pairs.push(pair);
    }
    let response = app
        .post_authed(
            "/api/v1/auth/logout-all",
            pairs[0]["access_token"].as_str().unwrap(),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 204);
    for pair in &pairs {
        assert_problem(
            app.get_authed("/api/v1/auth/me", pair["access_token"].as_str().unwrap())
                .await,
            401,
            "token_invalid",
        )
        .await;
        let refresh = app
            .post_json(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": pair["refresh_token"]}),
            )
            .await;
        assert_problem(refresh, 401, "refresh_token_reused").await;
    }
    // Signing in again afterwards works: only tokens issued before the sign-out are revoked.
    let pair: Value = app
        .login("/api/v1/auth/login", "many@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.get_authed("/api/v1/auth/me", pair["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    app.stop().await;
}

async fn changed_argon2_parameters_rehash_on_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password = app.register("rehash@example.com").await;
    let stored = |db: cybervpn_db::Db| async move {
        let email = cybervpn_domain::Email::parse("rehash@example.com").unwrap();
        let (_, hash) = db
            .customers()
            .credentials_by_email(&email)
            .await
            .unwrap()
            .unwrap();
        hash.unwrap()
    };
    let before = stored(app.db.clone()).await;
    assert!(
        before.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{before}"
    );

    let stronger = app.sibling(|c| c.auth.argon2_iterations = 3).await;
    let response = app
        .client
        .post(format!("{stronger}/api/v1/auth/login"))
        .json(&json!({"email": "rehash@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after = stored(app.db.clone()).await;
    assert!(
        after.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
        "{after}"
    );
    // The old parameters still verify the new hash (the PHC string carries its parameters).
    assert_eq!(
        app.login("/api/v1/auth/login", "rehash@example.com", &password)
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn two_api_instances_sharing_redis_see_the_same_revocation() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.sibling(|_| {}).await;
    let password = app.register("shared@example.com").await;
    let pair: Value = app
        .login("/api/v1/auth/login", "shared@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let me_on_other = |token: String| {
        let client = app.client.clone();
        let url = format!("{other}/api/v1/auth/me");
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(me_on_other(access.to_owned()).await.status(), 200);
    let logout = app
        .post_authed("/api/v1/auth/logout", access, &json!({}))
        .await;
    assert_eq!(logout.status(), 204);
    assert_problem(me_on_other(access.to_owned()).await, 401, "token_invalid").await;
    app.stop().await;
}

#[tokio::test]
async fn staff_sign_in_with_two_factor_required_by_config() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.auth.staff_require_two_factor = true).await;
    let token = app.staff_token(StaffRole::Admin).await;
    // Signed in, but admin routes wait for 2FA; enrolment itself is allowed.
    assert_problem(
        app.get_authed("/api/v1/admin/auth/me", &token).await,
        403,
        "two_factor_setup_required",
    )
    .await;
    let enable: Value = app
        .post_authed("/api/v1/two-factor/enable", &token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let uri = enable["otpauth_uri"].as_str().unwrap().to_owned();
    let verify = app
        .post_authed(
            "/api/v1/two-factor/verify",
            &token,
            &json!({"code": code_at(&uri, Utc::now())}),
        )
        .await;
    assert_eq!(verify.status(), 200);
    let me: Value = app
        .get_authed("/api/v1/admin/auth/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert!(
        me["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("manage_plans"))
    );
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn admin_create_command_prints_a_working_one_time_password() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let url = app.config.database.url.as_ref().unwrap().expose().clone();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .args([
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--role",
            "super_admin",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let password = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the password on stdout: {stdout}"
    );
    assert!(password.len() >= 20, "{password}");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(password),
        "never logged"
    );

    let login = app
        .login("/api/v1/admin/auth/login", "root@example.com", password)
        .await;
    assert_eq!(login.status(), 200);
    let pair: Value = login.json().await.unwrap();
    let me: Value = app
        .get_authed(
            "/api/v1/admin/auth/me",
            pair["access_token"].as_str().unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "super_admin");

    let bad_role = std::process::Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .args([
            "admin",
            "create",
            "--email",
            "x@example.com",
            "--role",
            "god",
        ])
        .output()
        .unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("role"));
    app.stop().await;
}

#[tokio::test]
async fn rotated_signing_keys_keep_old_tokens_valid_while_listed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.customer_token("rotate@example.com").await;
    let old_secret = app
        .config
        .auth
        .token_signing_key
        .as_ref()
        .unwrap()
        .expose()
        .clone();
    let old_public = cybervpn_auth::TokenKeys::from_paserk(&old_secret, &[])
        .unwrap()
        .public_paserk();
    let (_, new_secret) = cybervpn_auth::TokenKeys::generate().unwrap();

    let me = |base: String, token: String| {
        let client = app.client.clone();
        async move {
            client
                .get(format!("{base}/api/v1/auth/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // Rotation step 1: new signing key, old public key still accepted.
    let rotated = app
        .sibling(|c| {
            c.auth.token_signing_key = Some(cybervpn_config::Secret::new(new_secret.clone()));
            c.auth.previous_public_keys = vec![old_public.clone()];
        })
        .await;
    assert_eq!(me(rotated.clone(), token.clone()).await.status(), 200);
    // Tokens it issues carry the new key id and are accepted too.
    let pair: Value = app
        .client
        .post(format!("{rotated}/api/v1/auth/login"))
        .json(
            &json!({"email": "rotate@example.com", "password": "correct horse rotate@example.com"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(rotated.clone(), fresh.clone()).await.status(), 200);
    // The old deployment does not know the new key.
    assert_problem(me(app.base.clone(), fresh).await, 401, "token_invalid").await;

    // Step 2: the old key is dropped; its tokens stop working.
    let retired = app
        .sibling(|c| {
            c.auth.token_signing_key = Some(cybervpn_config::Secret::new(new_secret.clone()));
            c.auth.previous_public_keys = Vec::new();
        })
        .await;
    assert_problem(me(retired, token).await, 401, "token_invalid").await;
    app.stop().await;
}

#[tokio::test]
async fn profile_changes_by_staff_show_at_once_on_me() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.customer_token("profile@example.com").await;
    let me: Value = app
        .get_authed("/api/v1/auth/me", &token)
        .await
        .json()
        .await
        .unwrap();
    let admin = app.staff_token(StaffRole::Admin).await;
    let patched = app
        .client
        .patch(app.url(&format!("/api/v1/users/{}", me["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .json(&json!({"username": "renamed_by_support"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let me: Value = app
        .get_authed("/api/v1/auth/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["username"], "renamed_by_support",
        "the cached profile was dropped"
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_second_factors_lock_the_account() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.auth.lockout_threshold = 2).await;
    let password = app.register("guess@example.com").await;
    let token = app.customer_token_for("guess@example.com", &password).await;
    let enable: Value = app
        .post_authed("/api/v1/two-factor/enable", &token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let uri = enable["otpauth_uri"].as_str().unwrap().to_owned();
    let verified = app
        .post_authed(
            "/api/v1/two-factor/verify",
            &token,
            &json!({"code": code_at(&uri, Utc::now())}),
        )
        .await;
    assert_eq!(verified.status(), 200);
    let wrong = "not-a-backup-code";
    for _ in 0..2 {
        let challenge: Value = app
            .login("/api/v1/auth/login", "guess@example.com", &password)
            .await
            .json()
            .await
            .unwrap();
        let response = app
            .post_json(
                "/api/v1/auth/login/2fa",
                &json!({"pending_token": challenge["pending_token"], "code": wrong}),
            )
            .await;
        assert_problem(response, 401, "invalid_two_factor_code").await;
    }
    let challenge: Value = app
        .login("/api/v1/auth/login", "guess@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    let next = code_at(&uri, Utc::now() + chrono::Duration::seconds(30));
    let locked = app
        .post_json(
            "/api/v1/auth/login/2fa",
            &json!({"pending_token": challenge["pending_token"], "code": next}),
        )
        .await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, 429, "account_locked").await;
    app.stop().await;
}

#[tokio::test]
async fn token_responses_are_never_cached_and_the_scheme_is_case_insensitive() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let password = app.register("cache@example.com").await;
    let login = app
        .login("/api/v1/auth/login", "cache@example.com", &password)
        .await;
    assert_eq!(login.headers()["cache-control"], "no-store");
    let pair: Value = login.json().await.unwrap();
    let me = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header(
            "authorization",
            format!("bearer {}", pair["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["cache-control"], "no-store");
    let plans = app.get("/api/v1/plans").await;
    assert!(
        plans.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );

    // A logout body that is sent must be right, or the session would silently stay alive.
    let typo = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .header("content-type", "application/json")
        .body(r#"{"refreshToken": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(typo, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn each_failure_past_the_threshold_doubles_the_lock_for_every_spelling_of_the_email() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth.lockout_threshold = 2;
        c.auth.lockout_base_secs = 1;
    })
    .await;
    app.register("double@example.com").await;
    let attempt = |email: &'static str| app.login("/api/v1/auth/login", email, "wrong guess 1234");
    assert_problem(
        attempt("double@example.com").await,
        401,
        "invalid_credentials",
    )
    .await;
    // Case and whitespace variants are the same account.
    assert_problem(
        attempt(" DOUBLE@example.com ").await,
        401,
        "invalid_credentials",
    )
    .await;
    let locked = attempt("Double@Example.com").await;
    assert_eq!(locked.headers()["retry-after"], "1");
    assert_problem(locked, 429, "account_locked").await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The third failure locks for twice as long.
    assert_problem(
        attempt("double@example.com").await,
        401,
        "invalid_credentials",
    )
    .await;
    let locked = attempt("double@example.com").await;
    assert_eq!(locked.headers()["retry-after"], "2");
    assert_problem(locked, 429, "account_locked").await;

    // Unknown emails lock the same way, so locking reveals nothing either.
    for _ in 0..2 {
        assert_problem(
            attempt("ghost@example.com").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_problem(attempt("ghost@example.com").await, 429, "account_locked").await;
    app.stop().await;
}
