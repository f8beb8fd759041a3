//! Invites over HTTP: staff set rules and promotions and issue codes by hand; customers list theirs and redeem a
//! friend's once, with a problem document for every refusal.

use cybervpn_domain::StaffRole;
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    staff_issue_codes_that_friends_redeem_once,
    staff_manage_rules_and_promotions,
);

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn redeem(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.post_authed("/api/v1/invites/redeem", token, &json!({ "code": code }))
        .await
}

async fn staff_issue_codes_that_friends_redeem_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let operator = app.staff_token(StaffRole::Operator).await;
    let owner_token = app.customer_token("owner@example.com").await;
    let owner = app
        .db
        .customers()
        .find_by_email(&cybervpn_domain::Email::parse("owner@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let friend_token = app.customer_token("friend@example.com").await;
    let other_token = app.customer_token("other@example.com").await;

    let issue = json!({
        "count": 3, "owner_id": owner.as_uuid(), "free_days": 10, "bonus_days": 5,
        "valid_days": 30, "note": "launch partners"
    });
    let response = app
        .post_authed("/api/v1/admin/invites", &operator, &issue)
        .await;
    assert_problem(response, 403, "forbidden").await;
    let bad = json!({"count": 0, "free_days": 10, "valid_days": 30});
    let response = app.post_authed("/api/v1/admin/invites", &admin, &bad).await;
    assert_problem(response, 422, "validation_failed").await;
    let bad = json!({"count": 1, "free_days": 31, "valid_days": 30});
    let response = app.post_authed("/api/v1/admin/invites", &admin, &bad).await;
    assert_problem(response, 422, "validation_failed").await;
    let issued = json_body(
        app.post_authed("/api/v1/admin/invites", &admin, &issue)
            .await,
        201,
    )
    .await;
    let items = issued["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{issued}");
    assert_eq!(items[0]["source"], "staff");
    assert_eq!(items[0]["note"], "launch partners");
    assert_eq!(app.audit_entries("invite.issue").await.len(), 1);

    // The owner sees them, with the bot's deep link.
    let mine = json_body(app.get_authed("/api/v1/invites", &owner_token).await, 200).await;
    assert_eq!(mine["available"], 3, "{mine}");
    assert_eq!(mine["received_at"], Value::Null);
    let code = mine["items"][0]["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 12);
    assert_eq!(
        mine["items"][0]["bot_start_parameter"],
        format!("inv_{code}")
    );
    assert_eq!(mine["items"][0]["status"], "available");

    // Refusals: no token, a forged code, the owner's own code.
    let response = app
        .post_json("/api/v1/invites/redeem", &json!({"code": code}))
        .await;
    assert_problem(response, 401, "unauthorized").await;
    assert_problem(
        redeem(&app, &friend_token, "QQQQQQQQQQQQ").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        redeem(&app, &owner_token, &code).await,
        422,
        "validation_failed",
    )
    .await;

    // The friend redeems it: 10 free days.
    let redeemed = json_body(redeem(&app, &friend_token, &code.to_lowercase()).await, 200).await;
    assert_eq!(redeemed["free_days"], 10, "{redeemed}");
    assert_eq!(redeemed["subscription"]["status"], "active");
    let jobs: Vec<String> = app.outbox().await.into_iter().map(|m| m.job).collect();
    assert!(
        jobs.contains(&"provision_subscription".to_owned()),
        "{jobs:?}"
    );

    // Used, and once per friend.
    let body = assert_problem(redeem(&app, &other_token, &code).await, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    let second = mine["items"][1]["code"].as_str().unwrap();
    let body = assert_problem(redeem(&app, &friend_token, second).await, 409, "conflict").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{body}"
    );
    let friend = json_body(app.get_authed("/api/v1/invites", &friend_token).await, 200).await;
    assert!(friend["received_at"].is_string(), "{friend}");

    // Staff list the used one and withdraw another, which then cannot be redeemed.
    let used = json_body(
        app.get_authed(
            &format!(
                "/api/v1/admin/invites?status=used&owner_id={}",
                owner.as_uuid()
            ),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(used["items"].as_array().unwrap().len(), 1, "{used}");
    assert_eq!(used["items"][0]["code"], code);
    let id = mine["items"][1]["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/invites/{id}");
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &path, &admin, None)
            .await
            .status(),
        204
    );
    let response = send(&app, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_problem(response, 409, "conflict").await;
    let body = assert_problem(redeem(&app, &other_token, second).await, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let mine = json_body(app.get_authed("/api/v1/invites", &owner_token).await, 200).await;
    assert_eq!(mine["available"], 1, "{mine}");
    let response = app
        .get_authed("/api/v1/admin/invites?status=lost", &admin)
        .await;
    assert_problem(response, 422, "validation_failed").await;
}

async fn staff_manage_rules_and_promotions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let viewer = app.staff_token(StaffRole::Viewer).await;

    let rules = json_body(
        app.get_authed("/api/v1/admin/invite-rules", &admin).await,
        200,
    )
    .await;
    let tiers: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tier"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["basic", "pro", "ultra", "cyber"]);
    let response = app.get_authed("/api/v1/admin/invite-rules", &viewer).await;
    assert_problem(response, 403, "forbidden").await;

    let rule =
        json!({"codes_per_purchase": 4, "free_days": 21, "bonus_days": 10, "valid_days": 90});
    let response = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/invite-rules/pro",
        &admin,
        Some(rule.clone()),
    )
    .await;
    let saved = json_body(response, 200).await;
    assert_eq!(saved["tier"], "pro");
    assert_eq!(saved["codes_per_purchase"], 4);
    assert_eq!(app.audit_entries("invite_rule.update").await.len(), 1);
    let rules = json_body(
        app.get_authed("/api/v1/admin/invite-rules", &admin).await,
        200,
    )
    .await;
    assert_eq!(rules[1]["free_days"], 21, "{rules}");
    let response = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/invite-rules/gold",
        &admin,
        Some(rule),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;
    let too_long =
        json!({"codes_per_purchase": 1, "free_days": 45, "bonus_days": 7, "valid_days": 30});
    let response = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/admin/invite-rules/pro",
        &admin,
        Some(too_long),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;

    let now = chrono::Utc::now();
    let promotion = json!({
        "name": "Black Friday", "tier": "pro", "multiplier": 2,
        "starts_at": now, "ends_at": now + chrono::TimeDelta::days(3)
    });
    let created = json_body(
        app.post_authed("/api/v1/admin/invite-promotions", &admin, &promotion)
            .await,
        201,
    )
    .await;
    assert_eq!(created["multiplier"], 2);
    let backwards = json!({
        "name": "Oops", "multiplier": 2, "starts_at": now, "ends_at": now - chrono::TimeDelta::days(1)
    });
    let response = app
        .post_authed("/api/v1/admin/invite-promotions", &admin, &backwards)
        .await;
    assert_problem(response, 422, "validation_failed").await;
    let list = json_body(
        app.get_authed("/api/v1/admin/invite-promotions", &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let path = format!(
        "/api/v1/admin/invite-promotions/{}",
        created["id"].as_str().unwrap()
    );
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &path, &admin, None)
            .await
            .status(),
        204
    );
    let response = send(&app, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_problem(response, 404, "not_found").await;
    let list = json_body(
        app.get_authed("/api/v1/admin/invite-promotions", &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
}
