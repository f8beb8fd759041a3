//! Admin routes over HTTP: customers, staff, the audit log and the plan catalogue, on both backends.

use std::collections::HashSet;

use chrono::{Duration, SecondsFormat, Utc};
use cybervpn_db::{ActiveValue::Set, EntityTrait, entity};
use cybervpn_domain::{Language, NewCustomer, Principal, StaffId, StaffRole, TelegramId, Username};
use cybervpn_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

on_both_backends!(
    customers_are_searched_filtered_and_paged,
    customers_are_read_and_edited,
    a_ban_ends_sessions_and_sign_in_until_lifted,
    deleting_a_customer_scrubs_personal_data,
    staff_manage_only_roles_below_their_own,
    disabling_staff_ends_their_sessions,
    staff_two_factor_is_reset,
    audit_log_pages_newest_first,
    plan_changes_reach_the_public_catalogue_at_once,
    bad_plan_input_is_rejected_by_field,
);

/// An app whose sign-in rate limits leave room for the many sign-ins a test makes.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await
}

/// A request with `body` (if any) to `path`, as `token`, tagged with `request_id` when given.
fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    request_id: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(id) = request_id {
        request = request.header("X-Request-ID", id);
    }
    request
}

/// Sends [`request`].
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    request_id: Option<&str>,
) -> reqwest::Response {
    request(app, method, path, token, body, request_id)
        .send()
        .await
        .unwrap()
}

/// Awaits a request built by [`request`].
async fn sent(
    pending: impl Future<Output = reqwest::Result<reqwest::Response>>,
) -> reqwest::Response {
    pending.await.unwrap()
}

async fn json_ok(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    json_ok(app.get_authed(path, token).await, 200).await
}

/// A signed-in staff member of `role`: (access token, id, email, password).
async fn staff_session(app: &TestApp, role: StaffRole) -> (String, String, String, String) {
    let (email, password) = app.create_staff(role).await;
    let tokens = json_ok(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        200,
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let me = get(app, "/api/v1/admin/auth/me", &token).await;
    (
        token,
        me["id"].as_str().unwrap().to_owned(),
        email,
        password,
    )
}

/// Registers and signs in a customer: (customer id, refresh token, password).
async fn customer_session(app: &TestApp, email: &str) -> (String, String, String) {
    let password = app.register(email).await;
    let tokens = json_ok(app.login("/api/v1/auth/login", email, &password).await, 200).await;
    let me = get(
        app,
        "/api/v1/auth/me",
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    (
        me["id"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
        password,
    )
}

/// Every audit entry, newest first, walking the pages.
async fn audit_log(app: &TestApp, token: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = "/api/v1/admin/audit-log?limit=100".to_owned();
    loop {
        let page = get(app, &path, token).await;
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/admin/audit-log?limit=100&before={cursor}"),
            None => return entries,
        }
    }
}

/// The newest audit entry with this action.
async fn last_entry(app: &TestApp, token: &str, action: &str) -> Value {
    audit_log(app, token)
        .await
        .into_iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no `{action}` entry"))
}

/// Ids of the customers a list query returns (one page).
async fn ids(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let page = get(app, &format!("/api/v1/users?{query}"), token).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn add_subscription(app: &TestApp, customer: &str, plan: &str, expires_in: Duration) {
    let now = Utc::now();
    entity::subscription::Entity::insert(entity::subscription::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        customer_id: Set(customer.parse().unwrap()),
        plan_id: Set(Some(plan.parse().unwrap())),
        status: Set("active".to_owned()),
        expires_at: Set(now + expires_in),
        traffic_used_bytes: Set(0),
        traffic_limit_bytes: Set(None),
        panel_user_id: Set(None),
        panel_short_uuid: Set(None),
        subscription_url: Set(None),
        device_limit: Set(None),
        panel_synced_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(app.db.conn())
    .await
    .unwrap();
}

fn instant(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn customers_are_searched_filtered_and_paged(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, ..) = staff_session(&app, StaffRole::Admin).await;
    let mut everyone = Vec::new();
    for email in [
        "alice@example.com",
        "bob@example.com",
        "carol@CORP.test",
        "dave@corp.test",
        "erin@example.com",
    ] {
        everyone.push(customer_session(&app, email).await.0);
    }
    let bot = app
        .db
        .customers()
        .create(
            NewCustomer::new(
                None,
                Some(TelegramId::new(123_456_789).unwrap()),
                Username::parse("Neo_The_One").unwrap(),
                Language::Ru,
            )
            .unwrap(),
            Utc::now(),
        )
        .await
        .unwrap();
    let bot = bot.id.to_string();
    everyone.push(bot.clone());

    // Newest first, every field staff need.
    let page = get(&app, "/api/v1/users", &admin).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(items[0]["id"], bot.as_str());
    assert_eq!(items[0]["telegram_id"], 123_456_789);
    assert_eq!(items[0]["email"], Value::Null);
    assert_eq!(items[0]["language"], "ru");
    let alice = items
        .iter()
        .find(|c| c["email"] == "alice@example.com")
        .unwrap();
    for field in ["username", "status", "created_at", "updated_at"] {
        assert!(alice[field].is_string(), "{field}: {alice}");
    }
    assert_eq!(alice["referral_code_used"], Value::Null);

    // Search: email fragment (any case), username fragment, exact Telegram id; wildcards are literal.
    assert_eq!(ids(&app, &admin, "q=CORP").await.len(), 2);
    assert_eq!(
        ids(&app, &admin, "q=Alice%40Exa").await,
        [everyone[0].as_str()]
    );
    assert_eq!(ids(&app, &admin, "q=the_one").await, [bot.as_str()]);
    assert_eq!(ids(&app, &admin, "q=123456789").await, [bot.as_str()]);
    assert!(
        ids(&app, &admin, "q=12345678").await.is_empty(),
        "ids match exactly"
    );
    assert!(
        ids(&app, &admin, "q=a_i").await.is_empty(),
        "`_` is not a wildcard"
    );
    assert!(
        ids(&app, &admin, "q=%25").await.is_empty(),
        "`%` is not a wildcard"
    );
    assert_eq!(ids(&app, &admin, "q=nobody").await.len(), 0);

    // Status filter.
    json_ok(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/ban", everyone[1]),
            &admin,
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    json_ok(
        send(
            &app,
            Method::PATCH,
            &format!("/api/v1/users/{}", everyone[2]),
            &admin,
            Some(json!({"status": "limited"})),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        ids(&app, &admin, "status=disabled").await,
        [everyone[1].as_str()]
    );
    assert_eq!(
        ids(&app, &admin, "status=limited").await,
        [everyone[2].as_str()]
    );
    assert_eq!(ids(&app, &admin, "status=active").await.len(), 4);
    assert_eq!(ids(&app, &admin, "status=active&q=example").await.len(), 2);

    // Subscriptions: by plan, by expiry, both on the same subscription.
    let plans = json_ok(app.get("/api/v1/plans").await, 200).await;
    let plan_a = plans["plans"][0]["id"].as_str().unwrap().to_owned();
    let plan_b = plans["plans"][1]["id"].as_str().unwrap().to_owned();
    add_subscription(&app, &everyone[0], &plan_a, Duration::days(3)).await;
    add_subscription(&app, &everyone[3], &plan_b, Duration::days(60)).await;
    let soon = instant(Utc::now() + Duration::days(10));
    let later = instant(Utc::now() + Duration::days(90));
    assert_eq!(
        ids(&app, &admin, &format!("plan_id={plan_a}")).await,
        [everyone[0].as_str()]
    );
    assert_eq!(
        ids(&app, &admin, &format!("plan_id={plan_b}")).await,
        [everyone[3].as_str()]
    );
    assert_eq!(
        ids(&app, &admin, &format!("expiring_before={soon}")).await,
        [everyone[0].as_str()]
    );
    assert_eq!(
        ids(&app, &admin, &format!("expiring_before={later}")).await,
        [everyone[3].as_str(), everyone[0].as_str()]
    );
    assert!(
        ids(
            &app,
            &admin,
            &format!("plan_id={plan_b}&expiring_before={soon}")
        )
        .await
        .is_empty()
    );

    // Pages of two walk everyone exactly once, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=2".to_owned();
    loop {
        let page = get(&app, &path, &admin).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected = everyone.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);

    // Deleted customers never appear.
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{}", everyone[4]),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    let listed = ids(&app, &admin, "limit=100").await;
    assert_eq!(listed.len(), 5);
    assert!(!listed.contains(&everyone[4]));
    assert!(ids(&app, &admin, "q=erin").await.is_empty());
    assert!(ids(&app, &admin, "q=deleted_").await.is_empty());

    // Bad input names its field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("status=banned", "status"),
        ("plan_id=basic_30", "plan_id"),
        ("expiring_before=tomorrow", "expiring_before"),
        ("expiring_before=2030-01-01", "expiring_before"),
    ] {
        let body = assert_problem(
            app.get_authed(&format!("/api/v1/users?{query}"), &admin)
                .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    app.stop().await;
}

async fn customers_are_read_and_edited(backend: Backend) {
    let app = spawn(backend).await;
    let (operator, operator_id, ..) = staff_session(&app, StaffRole::Operator).await;
    let (admin, ..) = staff_session(&app, StaffRole::Admin).await;
    let (id, ..) = customer_session(&app, "neo@example.com").await;
    let path = format!("/api/v1/users/{id}");

    let before = get(&app, &path, &operator).await;
    assert_eq!(before["email"], "neo@example.com");
    assert_eq!(before["status"], "active");

    let updated = json_ok(
        send(
            &app,
            Method::PATCH,
            &path,
            &operator,
            Some(json!({"username": "the_one", "language": "ru", "status": "expired"})),
            Some("req-patch-1"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["username"], "the_one");
    assert_eq!(updated["language"], "ru");
    assert_eq!(updated["status"], "expired");
    assert_eq!(updated["email"], "neo@example.com");
    assert_eq!(get(&app, &path, &operator).await, updated);

    let entry = last_entry(&app, &admin, "customer.update").await;
    assert_eq!(entry["staff_id"], operator_id.as_str());
    assert_eq!(entry["target_kind"], "customer");
    assert_eq!(entry["target_id"], id.as_str());
    assert_eq!(entry["request_id"], "req-patch-1");
    assert_eq!(entry["before"]["username"], before["username"]);
    assert_eq!(entry["before"]["status"], "active");
    assert_eq!(entry["after"]["username"], "the_one");
    assert_eq!(entry["after"]["status"], "expired");
    assert!(
        entry["after"].get("email").is_none(),
        "no contact details: {entry}"
    );

    // A request that changes nothing is answered but not recorded.
    let entries = audit_log(&app, &admin).await.len();
    json_ok(
        send(
            &app,
            Method::PATCH,
            &path,
            &operator,
            Some(json!({"language": "ru"})),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(audit_log(&app, &admin).await.len(), entries);

    for (body, field) in [
        (json!({"username": "no spaces"}), Some("username")),
        (json!({"language": "de"}), Some("language")),
        (json!({"status": "disabled"}), Some("status")),
        (json!({"status": "gone"}), Some("status")),
        (json!({"email": "x@example.com"}), None),
    ] {
        let problem = assert_problem(
            send(
                &app,
                Method::PATCH,
                &path,
                &operator,
                Some(body.clone()),
                None,
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }

    // A banned customer's status changes only through unban.
    json_ok(
        send(
            &app,
            Method::POST,
            &format!("{path}/ban"),
            &operator,
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_problem(
        send(
            &app,
            Method::PATCH,
            &path,
            &operator,
            Some(json!({"status": "active"})),
            None,
        )
        .await,
        409,
        "invalid_state_transition",
    )
    .await;

    let unknown = format!("/api/v1/users/{}", uuid::Uuid::now_v7());
    assert_problem(app.get_authed(&unknown, &operator).await, 404, "not_found").await;
    assert_problem(
        send(
            &app,
            Method::PATCH,
            &unknown,
            &operator,
            Some(json!({"language": "en"})),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/users/not-a-uuid", &operator).await,
        422,
        "validation_failed",
    )
    .await;
    // Operators may edit but not delete.
    assert_problem(
        send(&app, Method::DELETE, &path, &operator, None, None).await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

async fn a_ban_ends_sessions_and_sign_in_until_lifted(backend: Backend) {
    let app = spawn(backend).await;
    let (support, support_id, ..) = staff_session(&app, StaffRole::Support).await;
    let (admin, ..) = staff_session(&app, StaffRole::Admin).await;
    let email = "mallory@example.com";
    let (id, refresh_token, password) = customer_session(&app, email).await;
    let pair: Value = app
        .login("/api/v1/auth/login", email, &password)
        .await
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get_authed("/api/v1/auth/me", &access).await.status(),
        200
    );

    let banned = json_ok(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{id}/ban"),
            &support,
            Some(json!({"reason": "chargeback fraud"})),
            Some("req-ban-42"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(banned["status"], "disabled");

    assert_problem(
        app.login("/api/v1/auth/login", email, &password).await,
        403,
        "account_disabled",
    )
    .await;
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await;
    assert_eq!(refreshed.status(), 401, "the session was revoked");
    assert_problem(
        app.get_authed("/api/v1/auth/me", &access).await,
        401,
        "token_invalid",
    )
    .await;

    let entry = last_entry(&app, &admin, "customer.ban").await;
    assert_eq!(entry["staff_id"], support_id.as_str());
    assert_eq!(entry["target_id"], id.as_str());
    assert_eq!(entry["request_id"], "req-ban-42");
    assert_eq!(entry["before"]["status"], "active");
    assert_eq!(entry["after"]["status"], "disabled");
    assert_eq!(entry["after"]["reason"], "chargeback fraud");

    // Banning twice is refused, so the log never shows a ban that changed nothing.
    assert_problem(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{id}/ban"),
            &support,
            None,
            None,
        )
        .await,
        409,
        "invalid_state_transition",
    )
    .await;
    assert_problem(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{id}/ban"),
            &support,
            Some(json!({"reason": "x".repeat(501)})),
            None,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    let lifted = json_ok(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{id}/unban"),
            &support,
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(lifted["status"], "active");
    json_ok(app.login("/api/v1/auth/login", email, &password).await, 200).await;
    let entry = last_entry(&app, &admin, "customer.unban").await;
    assert_eq!(entry["before"]["status"], "disabled");
    assert_eq!(entry["after"]["status"], "active");
    assert_problem(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{id}/unban"),
            &support,
            None,
            None,
        )
        .await,
        409,
        "invalid_state_transition",
    )
    .await;
    app.stop().await;
}

async fn deleting_a_customer_scrubs_personal_data(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    let email = "trinity@example.com";
    let (id, refresh_token, password) = customer_session(&app, email).await;
    let path = format!("/api/v1/users/{id}");

    let response = send(&app, Method::DELETE, &path, &admin, None, Some("req-del-7")).await;
    assert_eq!(response.status(), 204);

    let row = entity::customer::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
        .one(app.db.conn())
        .await
        .unwrap()
        .expect("the row stays");
    assert!(row.deleted_at.is_some());
    assert_eq!(row.email, None);
    assert_eq!(row.telegram_id, None);
    assert_eq!(row.password_hash, None);
    assert_eq!(row.referral_code_used, None);
    assert_eq!(
        row.username,
        format!("deleted_{}", &id.replace('-', "")[24..])
    );

    assert_problem(
        app.login("/api/v1/auth/login", email, &password).await,
        401,
        "invalid_credentials",
    )
    .await;
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_problem(app.get_authed(&path, &admin).await, 404, "not_found").await;
    assert_problem(
        send(&app, Method::DELETE, &path, &admin, None, None).await,
        404,
        "not_found",
    )
    .await;
    // The email is free again.
    app.register(email).await;

    let entry = last_entry(&app, &admin, "customer.delete").await;
    assert_eq!(entry["staff_id"], admin_id.as_str());
    assert_eq!(entry["target_id"], id.as_str());
    assert_eq!(entry["request_id"], "req-del-7");
    assert_eq!(entry["before"], json!({"status": "active"}));
    assert_eq!(entry["after"], json!({"deleted": true}));
    assert!(!entry.to_string().contains("trinity"), "{entry}");
    app.stop().await;
}

async fn staff_manage_only_roles_below_their_own(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    let (root, ..) = staff_session(&app, StaffRole::SuperAdmin).await;
    let create = |token: &str, body: Value| {
        sent(
            request(
                &app,
                Method::POST,
                "/api/v1/admin/staff",
                token,
                Some(body),
                Some("req-staff-1"),
            )
            .send(),
        )
    };

    for role in ["super_admin", "admin"] {
        assert_problem(
            create(&admin, json!({"email": "boss@example.com", "role": role})).await,
            403,
            "forbidden",
        )
        .await;
    }
    let created = json_ok(
        create(
            &admin,
            json!({"email": "Ops.Lead@Example.com", "role": "operator"}),
        )
        .await,
        201,
    )
    .await;
    let operator_id = created["staff"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["staff"]["email"], "ops.lead@example.com");
    assert_eq!(created["staff"]["username"], "opslead", "from the email");
    assert_eq!(created["staff"]["role"], "operator");
    assert_eq!(created["staff"]["is_active"], true);
    let password = created["password"].as_str().unwrap();
    assert!(password.len() >= 32, "{password}");

    // The one-time password signs in.
    let tokens = json_ok(
        app.login("/api/v1/admin/auth/login", "ops.lead@example.com", password)
            .await,
        200,
    )
    .await;
    let me = get(
        &app,
        "/api/v1/admin/auth/me",
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(me["id"], operator_id.as_str());

    assert_problem(
        create(
            &admin,
            json!({"email": "OPS.lead@example.com", "role": "viewer"}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    for (body, field) in [
        (
            json!({"email": "x@example.com", "role": "intern"}),
            Some("role"),
        ),
        (
            json!({"email": "not an email", "role": "viewer"}),
            Some("email"),
        ),
        (
            json!({"email": "x@example.com", "role": "viewer", "username": "a"}),
            Some("username"),
        ),
        (json!({"email": "x@example.com"}), None),
        (
            json!({"email": "x@example.com", "role": "viewer", "password": "x"}),
            None,
        ),
    ] {
        let problem =
            assert_problem(create(&admin, body.clone()).await, 422, "validation_failed").await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }

    let entry = last_entry(&app, &admin, "staff.create").await;
    assert_eq!(entry["staff_id"], admin_id.as_str());
    assert_eq!(entry["target_kind"], "staff");
    assert_eq!(entry["target_id"], operator_id.as_str());
    assert_eq!(entry["request_id"], "req-staff-1");
    assert_eq!(entry["before"], Value::Null);
    assert_eq!(entry["after"]["role"], "operator");
    assert!(!entry.to_string().contains("password"), "{entry}");
    assert!(!entry.to_string().contains(password), "{entry}");

    let listed = get(&app, "/api/v1/admin/staff", &admin).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == operator_id.as_str())
    );

    // Changes: below one's own rank only, never oneself.
    let patch = |token: &str, id: &str, body: Value| {
        let path = format!("/api/v1/admin/staff/{id}");
        sent(request(&app, Method::PATCH, &path, token, Some(body), None).send())
    };
    assert_problem(
        patch(&admin, &admin_id, json!({"role": "viewer"})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        patch(&admin, &operator_id, json!({"role": "admin"})).await,
        403,
        "forbidden",
    )
    .await;
    let demoted = json_ok(
        patch(&admin, &operator_id, json!({"role": "support"})).await,
        200,
    )
    .await;
    assert_eq!(demoted["role"], "support");
    assert_eq!(
        demoted["permissions"],
        json!([
            "view_customers",
            "view_plans",
            "view_servers",
            "ban_customers",
            "view_payments"
        ])
    );
    let entry = last_entry(&app, &admin, "staff.update").await;
    assert_eq!(entry["before"]["role"], "operator");
    assert_eq!(entry["after"]["role"], "support");

    let (_, other_admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    assert_problem(
        patch(&admin, &other_admin_id, json!({"is_active": false})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        patch(&admin, &operator_id, json!({"role": "root"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        patch(
            &admin,
            &uuid::Uuid::now_v7().to_string(),
            json!({"role": "viewer"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // A super admin manages anyone, admins included, but still not themselves.
    let promoted = json_ok(
        patch(&root, &other_admin_id, json!({"role": "super_admin"})).await,
        200,
    )
    .await;
    assert_eq!(promoted["role"], "super_admin");
    let created = json_ok(
        send(
            &app,
            Method::POST,
            "/api/v1/admin/staff",
            &root,
            Some(
                json!({"email": "second@example.com", "role": "admin", "username": "second_admin"}),
            ),
            None,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["staff"]["username"], "second_admin");
    app.stop().await;
}

async fn disabling_staff_ends_their_sessions(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, ..) = staff_session(&app, StaffRole::Admin).await;
    let (email, password) = app.create_staff(StaffRole::Operator).await;
    let tokens = json_ok(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        200,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = get(&app, "/api/v1/admin/auth/me", access).await;
    let id = me["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/staff/{id}");

    let disabled = json_ok(
        send(
            &app,
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"is_active": false})),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(disabled["is_active"], false);
    assert_problem(
        app.get_authed("/api/v1/admin/auth/me", access).await,
        403,
        "account_disabled",
    )
    .await;
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 401, "the session was revoked");
    assert_problem(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        403,
        "account_disabled",
    )
    .await;
    let entry = last_entry(&app, &admin, "staff.update").await;
    assert_eq!(entry["before"]["is_active"], true);
    assert_eq!(entry["after"]["is_active"], false);

    json_ok(
        send(
            &app,
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"is_active": true})),
            None,
        )
        .await,
        200,
    )
    .await;
    let tokens = json_ok(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        200,
    )
    .await;
    get(
        &app,
        "/api/v1/admin/auth/me",
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    app.stop().await;
}

async fn staff_two_factor_is_reset(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    let (_, viewer_id, email, password) = staff_session(&app, StaffRole::Viewer).await;
    let viewer = Principal::Staff(StaffId::from_uuid(viewer_id.parse().unwrap()));
    let now = Utc::now();
    app.db
        .two_factor()
        .begin(viewer, "sealed-secret".to_owned(), now)
        .await
        .unwrap();
    assert!(
        app.db
            .two_factor()
            .confirm(viewer, 1, vec!["backup-hash".to_owned()], now)
            .await
            .unwrap()
    );
    let challenge = json_ok(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        200,
    )
    .await;
    assert_eq!(challenge["two_factor_required"], true);

    let response = send(
        &app,
        Method::POST,
        &format!("/api/v1/admin/staff/{viewer_id}/reset-2fa"),
        &admin,
        None,
        Some("req-2fa"),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.db.two_factor().get(viewer).await.unwrap(), None);
    let tokens = json_ok(
        app.login("/api/v1/admin/auth/login", &email, &password)
            .await,
        200,
    )
    .await;
    assert!(tokens["access_token"].is_string(), "{tokens}");

    let entry = last_entry(&app, &admin, "staff.reset_2fa").await;
    assert_eq!(entry["target_id"], viewer_id.as_str());
    assert_eq!(entry["request_id"], "req-2fa");
    assert_eq!(entry["before"], json!({"two_factor": true}));
    assert_eq!(entry["after"], json!({"two_factor": false}));

    assert_problem(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/admin/staff/{admin_id}/reset-2fa"),
            &admin,
            None,
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let (_, peer_id, ..) = staff_session(&app, StaffRole::Admin).await;
    assert_problem(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/admin/staff/{peer_id}/reset-2fa"),
            &admin,
            None,
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

async fn audit_log_pages_newest_first(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    let (id, ..) = customer_session(&app, "audited@example.com").await;
    let path = format!("/api/v1/users/{id}");
    for (n, language) in ["ru", "en", "ru"].iter().enumerate() {
        json_ok(
            send(
                &app,
                Method::PATCH,
                &path,
                &admin,
                Some(json!({"language": language})),
                Some(&format!("req-{n}")),
            )
            .await,
            200,
        )
        .await;
    }

    let first = get(&app, "/api/v1/admin/audit-log?limit=2", &admin).await;
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["request_id"], "req-2");
    assert_eq!(items[1]["request_id"], "req-1");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(
        &app,
        &format!("/api/v1/admin/audit-log?limit=2&before={cursor}"),
        &admin,
    )
    .await;
    let items = second["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let entry = &items[0];
    assert_eq!(entry["request_id"], "req-0");
    assert_eq!(entry["staff_id"], admin_id.as_str());
    assert_eq!(entry["action"], "customer.update");
    assert_eq!(entry["before"]["language"], "en");
    assert_eq!(entry["after"]["language"], "ru");
    assert!(entry["created_at"].is_string());

    // Without a request id header, the one the edge assigned is recorded.
    let response = send(
        &app,
        Method::POST,
        &format!("{path}/ban"),
        &admin,
        None,
        None,
    )
    .await;
    let assigned = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.status(), 200);
    assert_eq!(
        last_entry(&app, &admin, "customer.ban").await["request_id"],
        assigned.as_str()
    );

    for query in ["limit=0", "limit=1000", "before=yesterday"] {
        assert_problem(
            app.get_authed(&format!("/api/v1/admin/audit-log?{query}"), &admin)
                .await,
            422,
            "validation_failed",
        )
        .await;
    }
    let (operator, ..) = staff_session(&app, StaffRole::Operator).await;
    assert_problem(
        app.get_authed("/api/v1/admin/audit-log", &operator).await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

/// The public catalogue's plan with this code.
async fn public_plan(app: &TestApp, code: &str) -> Option<Value> {
    let list = json_ok(app.get("/api/v1/plans").await, 200).await;
    list["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .cloned()
}

async fn public_count(app: &TestApp) -> usize {
    let list = json_ok(app.get("/api/v1/plans").await, 200).await;
    list["plans"].as_array().unwrap().len()
}

async fn plan_changes_reach_the_public_catalogue_at_once(backend: Backend) {
    // A long cache: only the invalidation can make changes visible within the test.
    let app = TestApp::spawn_with(backend, |config| {
        config.api.plans_cache_ttl_secs = 3_600;
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await;
    let (admin, admin_id, ..) = staff_session(&app, StaffRole::Admin).await;
    assert_eq!(public_count(&app).await, 16);
    let basic = public_plan(&app, "basic_30").await.unwrap();
    let basic_id = basic["id"].as_str().unwrap().to_owned();

    // Retire: gone from the catalogue at once, still readable by id and listed for staff.
    let response = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/plans/{basic_id}"),
        &admin,
        None,
        Some("req-plan-del"),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(public_count(&app).await, 15);
    assert!(public_plan(&app, "basic_30").await.is_none());
    json_ok(app.get(&format!("/api/v1/plans/{basic_id}")).await, 200).await;
    let all = get(&app, "/api/v1/admin/plans", &admin).await;
    let all = all["plans"].as_array().unwrap();
    assert_eq!(all.len(), 16);
    let retired = all.iter().find(|p| p["id"] == basic_id.as_str()).unwrap();
    assert_eq!(retired["is_active"], false);
    assert!(retired["sort_order"].is_i64());
    let entry = last_entry(&app, &admin, "plan.deactivate").await;
    assert_eq!(entry["staff_id"], admin_id.as_str());
    assert_eq!(entry["target_kind"], "plan");
    assert_eq!(entry["target_id"], basic_id.as_str());
    assert_eq!(entry["request_id"], "req-plan-del");
    assert_eq!(entry["before"]["is_active"], true);
    assert_eq!(entry["after"]["is_active"], false);
    // Retiring again changes nothing and records nothing.
    let entries = audit_log(&app, &admin).await.len();
    let response = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/plans/{basic_id}"),
        &admin,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(audit_log(&app, &admin).await.len(), entries);

    // Update: prices replace the whole list; `null` traffic is unlimited.
    let pro = public_plan(&app, "pro_90").await.unwrap();
    let pro_id = pro["id"].as_str().unwrap().to_owned();
    let updated = json_ok(
        send(
            &app,
            Method::PATCH,
            &format!("/api/v1/plans/{pro_id}"),
            &admin,
            Some(json!({
                "prices": [{"currency": "XTR", "amount_minor": 500}, {"currency": "usd", "amount_minor": 1299}],
                "traffic_limit_bytes": null,
                "device_limit": 4,
            })),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["device_limit"], 4);
    assert_eq!(updated["traffic_limit_bytes"], Value::Null);
    assert_eq!(updated["is_active"], true);
    let pro = public_plan(&app, "pro_90").await.unwrap();
    assert_eq!(
        pro["prices"],
        json!([
            {"currency": "USD", "amount_minor": 1299, "amount": "12.99"},
            {"currency": "XTR", "amount_minor": 500, "amount": "500"},
        ])
    );
    assert_eq!(pro["device_limit"], 4);
    assert_eq!(pro["traffic_limit_bytes"], Value::Null);
    let entry = last_entry(&app, &admin, "plan.update").await;
    assert_eq!(entry["before"]["prices"].as_array().unwrap().len(), 3);
    assert_eq!(entry["after"]["prices"].as_array().unwrap().len(), 2);
    assert_eq!(entry["before"]["device_limit"], 3);
    assert!(entry["before"]["traffic_limit_bytes"].is_u64());

    // Absent fields stay; a limit can be set again; the plan goes back on sale.
    let updated = json_ok(
        send(
            &app,
            Method::PATCH,
            &format!("/api/v1/plans/{basic_id}"),
            &admin,
            Some(json!({"is_active": true, "traffic_limit_bytes": 1_000_000_000})),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["traffic_limit_bytes"], 1_000_000_000);
    assert_eq!(updated["prices"], basic["prices"]);
    assert_eq!(updated["device_limit"], basic["device_limit"]);
    assert_eq!(public_count(&app).await, 16);

    // Create: the seeded catalogue holds every code, so free one first.
    let cyber = public_plan(&app, "cyber_365").await.unwrap();
    let cyber_id: uuid::Uuid = cyber["id"].as_str().unwrap().parse().unwrap();
    for currency in ["USD", "RUB", "XTR"] {
        entity::plan_price::Entity::delete_by_id((cyber_id, currency.to_owned()))
            .exec(app.db.conn())
            .await
            .unwrap();
    }
    entity::plan::Entity::delete_by_id(cyber_id)
        .exec(app.db.conn())
        .await
        .unwrap();
    app.get("/api/v1/plans").await; // the cache still holds the old catalogue
    let new_plan = json!({
        "tier": "cyber",
        "duration_days": 365,
        "prices": [{"currency": "USD", "amount_minor": 9999}],
        "traffic_limit_bytes": null,
        "device_limit": 12,
    });
    let created = json_ok(
        send(
            &app,
            Method::POST,
            "/api/v1/plans",
            &admin,
            Some(new_plan.clone()),
            Some("req-plan-new"),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["code"], "cyber_365");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["device_limit"], 12);
    let all = get(&app, "/api/v1/admin/plans", &admin).await;
    let others = all["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] != created["id"]);
    let last = others
        .map(|p| p["sort_order"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(
        created["sort_order"],
        last + 10,
        "listed after every other plan"
    );
    let listed = public_plan(&app, "cyber_365").await.unwrap();
    assert_eq!(listed["id"], created["id"]);
    assert_eq!(listed["prices"][0]["amount_minor"], 9999);
    let entry = last_entry(&app, &admin, "plan.create").await;
    assert_eq!(entry["request_id"], "req-plan-new");
    assert_eq!(entry["before"], Value::Null);
    assert_eq!(entry["after"]["code"], "cyber_365");

    assert_problem(
        send(
            &app,
            Method::POST,
            "/api/v1/plans",
            &admin,
            Some(new_plan),
            None,
        )
        .await,
        409,
        "conflict",
    )
    .await;
    assert_problem(
        send(
            &app,
            Method::PATCH,
            &format!("/api/v1/plans/{}", uuid::Uuid::now_v7()),
            &admin,
            Some(json!({"device_limit": 2})),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let (support, ..) = staff_session(&app, StaffRole::Support).await;
    assert_eq!(
        get(&app, "/api/v1/admin/plans", &support).await["plans"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert_problem(
        send(
            &app,
            Method::DELETE,
            &format!("/api/v1/plans/{pro_id}"),
            &support,
            None,
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

async fn bad_plan_input_is_rejected_by_field(backend: Backend) {
    let app = spawn(backend).await;
    let (admin, ..) = staff_session(&app, StaffRole::Admin).await;
    let valid = json!({
        "tier": "pro",
        "duration_days": 30,
        "prices": [{"currency": "USD", "amount_minor": 100}],
        "traffic_limit_bytes": null,
        "device_limit": 1,
    });
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("tier", json!("gold")), Some("tier")),
        (with("duration_days", json!(60)), Some("duration_days")),
        (with("duration_days", json!(-30)), Some("duration_days")),
        (
            with(
                "prices",
                json!([{"currency": "USD", "amount_minor": 1}, {"currency": "usd", "amount_minor": 2}]),
            ),
            Some("prices"),
        ),
        (
            with("prices", json!([{"currency": "USD", "amount_minor": -1}])),
            Some("prices"),
        ),
        (
            with("prices", json!([{"currency": "EUR", "amount_minor": 1}])),
            Some("prices"),
        ),
        (with("prices", json!([])), Some("prices")),
        (with("device_limit", json!(0)), Some("device_limit")),
        (with("device_limit", json!(40_000)), Some("device_limit")),
        (
            with("traffic_limit_bytes", json!(-1)),
            Some("traffic_limit_bytes"),
        ),
        (with("code", json!("pro_30")), None),
        (with("prices", json!([{"currency": "USD"}])), None),
    ] {
        let problem = assert_problem(
            send(
                &app,
                Method::POST,
                "/api/v1/plans",
                &admin,
                Some(body.clone()),
                None,
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }

    let plan = public_plan(&app, "basic_90").await.unwrap();
    let path = format!("/api/v1/plans/{}", plan["id"].as_str().unwrap());
    for (body, field) in [
        (
            json!({"prices": [{"currency": "RUB", "amount_minor": -5}]}),
            Some("prices"),
        ),
        (
            json!({"prices": [{"currency": "RUB", "amount_minor": 5}, {"currency": "RUB", "amount_minor": 6}]}),
            Some("prices"),
        ),
        (json!({"device_limit": -1}), Some("device_limit")),
        (
            json!({"traffic_limit_bytes": 0}),
            Some("traffic_limit_bytes"),
        ),
        (json!({"tier": "cyber"}), None),
    ] {
        let problem = assert_problem(
            send(&app, Method::PATCH, &path, &admin, Some(body.clone()), None).await,
            422,
            "validation_failed",
        )
        .await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
    assert_eq!(
        public_plan(&app, "basic_90").await.unwrap(),
        plan,
        "nothing changed"
    );
    assert_problem(
        send(
            &app,
            Method::DELETE,
            "/api/v1/plans/basic_90",
            &admin,
            None,
            None,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

/// The OpenAPI document names, for each admin route, the permission this table expects; the route × role
/// matrix test (`rbac.rs`) is what proves the extractors enforce those permissions.
#[test]
fn admin_routes_document_the_expected_permission() {
    let doc = serde_json::to_value(cybervpn_api::openapi()).unwrap();
    for (method, path, permission) in [
        ("get", "/api/v1/users", "view_customers"),
        ("get", "/api/v1/users/{id}", "view_customers"),
        ("patch", "/api/v1/users/{id}", "manage_customers"),
        ("delete", "/api/v1/users/{id}", "delete_customers"),
        ("post", "/api/v1/users/{id}/ban", "ban_customers"),
        ("post", "/api/v1/users/{id}/unban", "ban_customers"),
        ("get", "/api/v1/admin/staff", "view_staff"),
        ("post", "/api/v1/admin/staff", "manage_staff"),
        ("patch", "/api/v1/admin/staff/{id}", "manage_staff"),
        ("post", "/api/v1/admin/staff/{id}/reset-2fa", "manage_staff"),
        ("get", "/api/v1/admin/audit-log", "view_audit_log"),
        ("get", "/api/v1/admin/plans", "view_plans"),
        ("post", "/api/v1/plans", "manage_plans"),
        ("patch", "/api/v1/plans/{id}", "manage_plans"),
        ("delete", "/api/v1/plans/{id}", "manage_plans"),
    ] {
        let operation = &doc["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{"staff": [permission]}]),
            "{method} {path}"
        );
        assert_eq!(operation["tags"], json!(["admin"]), "{method} {path}");
    }
    // The public reads of the catalogue stay public.
    assert!(
        doc["paths"]["/api/v1/plans"]["get"]
            .get("security")
            .is_none()
    );
    assert!(
        doc["paths"]["/api/v1/plans/{id}"]["get"]
            .get("security")
            .is_none()
    );
}
