//! Servers, monitoring, subscription quick actions and dead jobs over HTTP, on both backends (dead jobs need
//! the Redis queue, so only PostgreSQL lists them; SQLite answers 503).

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_db::NodeReport;
use cybervpn_domain::{CustomerId, StaffRole, SubscriptionStatus};
use cybervpn_jobs::{
    JobContext, JobError, JobMetrics, Queue, Worker, catalog::ProvisionSubscription,
};
use cybervpn_testkit::{Backend, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    operations_routes_require_their_permission,
    extending_starts_or_lengthens_a_subscription_through_the_outbox,
    refused_extensions_change_nothing,
    panel_actions_are_queued_through_the_outbox,
    bans_and_deletions_reprovision_the_subscription,
    servers_are_listed_read_and_measured,
    monitoring_reports_health_and_collected_figures,
);

/// An app whose sign-in rate limits leave room for the many sign-ins a test makes.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await
}

/// Sends `method path` as `token` (if any) with `body` (if any).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    json_body(app.get_authed(path, token).await, 200).await
}

async fn extend(app: &TestApp, token: &str, customer: CustomerId, days: i64) -> reqwest::Response {
    call(
        app,
        Method::POST,
        &format!("/api/v1/users/{}/extend", customer.as_uuid()),
        Some(token),
        Some(json!({ "days": days })),
    )
    .await
}

async fn panel_action(
    app: &TestApp,
    token: &str,
    customer: CustomerId,
    action: &str,
) -> reqwest::Response {
    call(
        app,
        Method::POST,
        &format!("/api/v1/users/{}/{action}", customer.as_uuid()),
        Some(token),
        None,
    )
    .await
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("{value} is no time")),
    )
    .unwrap()
    .with_timezone(&Utc)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

async fn operations_routes_require_their_permission(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rbac-ops@example.com").await;
    let customer_token = app.customer_token("rbac-ops-2@example.com").await;
    let viewer = app.staff_token(StaffRole::Viewer).await;
    let support = app.staff_token(StaffRole::Support).await;
    let operator = app.staff_token(StaffRole::Operator).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let unknown = uuid::Uuid::now_v7();
    let reads = [
        "/api/v1/servers".to_owned(),
        "/api/v1/monitoring/health".to_owned(),
        "/api/v1/monitoring/bandwidth".to_owned(),
        "/api/v1/monitoring/stats".to_owned(),
    ];
    let subscription_actions = ["extend", "reset-traffic", "revoke-subscription"];

    // Without a staff token nothing answers, whatever the route.
    let mut every_route: Vec<(Method, String)> = reads
        .iter()
        .map(|path| (Method::GET, path.clone()))
        .collect();
    every_route.push((Method::GET, format!("/api/v1/servers/{unknown}")));
    every_route.push((Method::GET, format!("/api/v1/servers/{unknown}/stats")));
    every_route.extend(subscription_actions.iter().map(|action| {
        (
            Method::POST,
            format!("/api/v1/users/{}/{action}", customer.as_uuid()),
        )
    }));
    every_route.push((Method::GET, "/api/v1/admin/jobs/dead".to_owned()));
    every_route.push((Method::POST, "/api/v1/admin/jobs/dead/x/redrive".to_owned()));
    for (method, path) in &every_route {
        let body = (*method == Method::POST).then(|| json!({ "days": 1 }));
        assert_problem(
            call(&app, method.clone(), path, None, body.clone()).await,
            401,
            "unauthorized",
        )
        .await;
        assert_problem(
            call(&app, method.clone(), path, Some(&customer_token), body).await,
            401,
            "token_invalid",
        )
        .await;
    }

    // view_servers: every staff role reads servers and monitoring.
    for token in [&viewer, &support, &operator, &admin] {
        for path in &reads {
            json_body(app.get_authed(path, token).await, 200).await;
        }
        assert_problem(
            app.get_authed(&format!("/api/v1/servers/{unknown}"), token)
                .await,
            404,
            "not_found",
        )
        .await;
    }

    // manage_subscriptions: operator and up; viewer and support are refused before anything changes.
    for token in [&viewer, &support] {
        assert_problem(extend(&app, token, customer, 30).await, 403, "forbidden").await;
        for action in &subscription_actions[1..] {
            assert_problem(
                panel_action(&app, token, customer, action).await,
                403,
                "forbidden",
            )
            .await;
        }
    }
    assert!(app.outbox().await.is_empty());
    assert!(
        app.db
            .subscriptions()
            .current_for(customer)
            .await
            .unwrap()
            .is_none()
    );
    json_body(extend(&app, &operator, customer, 30).await, 200).await;
    for action in &subscription_actions[1..] {
        json_body(panel_action(&app, &operator, customer, action).await, 202).await;
    }
    json_body(extend(&app, &admin, customer, 1).await, 200).await;

    // manage_jobs: admin and up.
    for token in [&viewer, &support, &operator] {
        assert_problem(
            app.get_authed("/api/v1/admin/jobs/dead", token).await,
            403,
            "forbidden",
        )
        .await;
        assert_problem(
            call(
                &app,
                Method::POST,
                "/api/v1/admin/jobs/dead/x/redrive",
                Some(token),
                None,
            )
            .await,
            403,
            "forbidden",
        )
        .await;
    }
    let dead = app.get_authed("/api/v1/admin/jobs/dead", &admin).await;
    match backend {
        Backend::Postgres => assert_eq!(json_body(dead, 200).await, json!([])),
        Backend::Sqlite => {
            assert_problem(dead, 503, "service_unavailable").await;
        }
    }
    app.stop().await;
}

async fn extending_starts_or_lengthens_a_subscription_through_the_outbox(backend: Backend) {
    let app = spawn(backend).await;
    let operator = app.staff_token(StaffRole::Operator).await;
    let customer = app.customer_id("extend@example.com").await;

    // No subscription yet: one of 30 days starts now.
    let before = Utc::now().trunc_subsecs(6);
    let started = json_body(extend(&app, &operator, customer, 30).await, 200).await;
    let after = Utc::now();
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["customer_id"], customer.as_uuid().to_string());
    assert_eq!(started["status"], "active");
    assert_eq!(started["plan_id"], Value::Null);
    assert_eq!(started["traffic_used_bytes"], 0);
    assert_eq!(started["traffic_limit_bytes"], Value::Null);
    assert_eq!(started["panel_user_id"], Value::Null);
    let first_end = time(&started["expires_at"]);
    assert!(
        before + days(30) <= first_end && first_end <= after + days(30),
        "{first_end} is not 30 days after the call"
    );
    let stored = app
        .db
        .subscriptions()
        .current_for(customer)
        .await
        .unwrap()
        .expect("a subscription was started");
    assert_eq!(stored.id.as_uuid().to_string(), id);
    assert_eq!(stored.status, SubscriptionStatus::Active);
    assert_eq!(stored.expires_at, first_end);

    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].job, "provision_subscription");
    assert_eq!(outbox[0].payload, json!({ "subscription_id": id }));
    let audit = app.audit_entries("subscription.extend").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target_kind, "customer");
    assert_eq!(audit[0].target_id, customer.as_uuid().to_string());
    assert_eq!(audit[0].before, None);
    let after_entry = audit[0].after.as_ref().unwrap();
    assert_eq!(after_entry["days"], 30);
    assert_eq!(after_entry["subscription"]["id"], id.as_str());

    // Extending again keeps the time left: exactly seven more days on the same subscription.
    let extended = json_body(extend(&app, &operator, customer, 7).await, 200).await;
    assert_eq!(extended["id"], id.as_str());
    assert_eq!(extended["status"], "active");
    assert_eq!(time(&extended["expires_at"]), first_end + days(7));
    let stored = app.db.subscriptions().get(stored.id).await.unwrap();
    assert_eq!(stored.expires_at, first_end + days(7));
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 2, "one outbox row per extension");
    assert!(
        outbox
            .iter()
            .all(|m| m.job == "provision_subscription"
                && m.payload == json!({ "subscription_id": id })),
        "{outbox:?}"
    );
    let audit = app.audit_entries("subscription.extend").await;
    assert_eq!(audit.len(), 2);
    let before_entry = audit[0].before.as_ref().expect("the state before");
    assert_eq!(time(&before_entry["expires_at"]), first_end);
    assert_eq!(audit[0].after.as_ref().unwrap()["days"], 7);

    // An ended subscription starts again from now, not from its old end.
    let lapsed = app.customer_id("lapsed@example.com").await;
    let mut old = app.subscribe(lapsed, 10).await;
    old.status = SubscriptionStatus::Expired;
    old.expires_at = Utc::now().trunc_subsecs(6) - days(20);
    app.db.subscriptions().save(&old).await.unwrap();
    let before = Utc::now().trunc_subsecs(6);
    let renewed = json_body(extend(&app, &operator, lapsed, 5).await, 200).await;
    let after = Utc::now();
    assert_eq!(renewed["id"], old.id.as_uuid().to_string());
    assert_eq!(renewed["status"], "active");
    let end = time(&renewed["expires_at"]);
    assert!(before + days(5) <= end && end <= after + days(5), "{end}");
    assert_eq!(app.outbox().await.len(), 3);
    app.stop().await;
}

async fn refused_extensions_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let operator = app.staff_token(StaffRole::Operator).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let fresh = app.customer_id("fresh@example.com").await;
    let subscribed = app.customer_id("subscribed@example.com").await;
    let subscription = app.subscribe(subscribed, 30).await;

    for (customer, days) in [
        (fresh, 0),
        (fresh, 3651),
        (subscribed, 0),
        (subscribed, 3651),
    ] {
        let problem = assert_problem(
            extend(&app, &operator, customer, days).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], "days", "{problem}");
    }
    for body in [
        json!({ "days": -1 }),
        json!({}),
        json!({ "days": 1, "hours": 2 }),
    ] {
        let response = call(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/extend", subscribed.as_uuid()),
            Some(&operator),
            Some(body),
        )
        .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    assert_problem(
        extend(
            &app,
            &operator,
            CustomerId::from_uuid(uuid::Uuid::now_v7()),
            5,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        call(
            &app,
            Method::POST,
            "/api/v1/users/not-a-uuid/extend",
            Some(&operator),
            Some(json!({ "days": 5 })),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    // A disabled subscription is not brought back by an extension.
    let banned = app.customer_id("disabled-sub@example.com").await;
    let mut disabled = app.subscribe(banned, 30).await;
    disabled.status = SubscriptionStatus::Disabled;
    app.db.subscriptions().save(&disabled).await.unwrap();
    assert_problem(
        extend(&app, &operator, banned, 5).await,
        409,
        "invalid_state_transition",
    )
    .await;

    // A deleted customer is gone for staff too.
    let deleted = app.customer_id("deleted-ext@example.com").await;
    let response = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{}", deleted.as_uuid()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_problem(extend(&app, &operator, deleted, 5).await, 404, "not_found").await;

    // Nothing was written: no subscription, no change, no outbox row, no audit entry.
    let subscriptions = app.db.subscriptions();
    assert!(subscriptions.current_for(fresh).await.unwrap().is_none());
    assert!(subscriptions.current_for(deleted).await.unwrap().is_none());
    assert_eq!(
        subscriptions.get(subscription.id).await.unwrap(),
        subscription
    );
    assert_eq!(subscriptions.get(disabled.id).await.unwrap(), disabled);
    assert!(app.outbox().await.is_empty(), "{:?}", app.outbox().await);
    assert!(app.audit_entries("subscription.extend").await.is_empty());
    app.stop().await;
}

async fn panel_actions_are_queued_through_the_outbox(backend: Backend) {
    let app = spawn(backend).await;
    let operator = app.staff_token(StaffRole::Operator).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let customer = app.customer_id("actions@example.com").await;
    let subscription = app.subscribe(customer, 30).await;
    let subscription_id = subscription.id.as_uuid().to_string();

    let reset = json_body(
        panel_action(&app, &operator, customer, "reset-traffic").await,
        202,
    )
    .await;
    let revoke = json_body(
        panel_action(&app, &operator, customer, "revoke-subscription").await,
        202,
    )
    .await;
    for accepted in [&reset, &revoke] {
        assert_eq!(accepted["subscription_id"], subscription_id.as_str());
        uuid::Uuid::try_parse(accepted["request_id"].as_str().unwrap()).unwrap();
    }
    assert_ne!(reset["request_id"], revoke["request_id"]);
    let outbox = app.outbox().await;
    let jobs: Vec<(&str, &Value)> = outbox
        .iter()
        .map(|m| (m.job.as_str(), &m.payload))
        .collect();
    assert_eq!(
        jobs,
        [
            (
                "panel_user_action",
                &json!({
                    "subscription_id": subscription_id,
                    "action": "reset_traffic",
                    "request_id": reset["request_id"],
                })
            ),
            (
                "panel_user_action",
                &json!({
                    "subscription_id": subscription_id,
                    "action": "revoke_subscription",
                    "request_id": revoke["request_id"],
                })
            ),
        ]
    );
    for (action, accepted) in [
        ("subscription.reset_traffic", &reset),
        ("subscription.revoke", &revoke),
    ] {
        let audit = app.audit_entries(action).await;
        assert_eq!(audit.len(), 1, "{action}");
        assert_eq!(audit[0].target_id, customer.as_uuid().to_string());
        assert_eq!(
            audit[0].after.as_ref().unwrap()["request_id"],
            accepted["request_id"]
        );
    }
    // The subscription itself only changes once the panel has acted (the worker's part).
    assert_eq!(
        app.db.subscriptions().get(subscription.id).await.unwrap(),
        subscription
    );

    // Nothing to act on: no subscription, an unknown or a deleted customer, a disabled subscription.
    let without = app.customer_id("no-sub@example.com").await;
    let deleted = app.customer_id("deleted-act@example.com").await;
    app.subscribe(deleted, 30).await;
    let response = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{}", deleted.as_uuid()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    let disabled_owner = app.customer_id("disabled-act@example.com").await;
    let mut disabled = app.subscribe(disabled_owner, 30).await;
    disabled.status = SubscriptionStatus::Disabled;
    app.db.subscriptions().save(&disabled).await.unwrap();
    let pending = app.outbox().await.len();
    for customer in [
        without,
        deleted,
        disabled_owner,
        CustomerId::from_uuid(uuid::Uuid::now_v7()),
    ] {
        for action in ["reset-traffic", "revoke-subscription"] {
            assert_problem(
                panel_action(&app, &operator, customer, action).await,
                404,
                "not_found",
            )
            .await;
        }
    }
    assert_eq!(app.outbox().await.len(), pending);
    assert_eq!(app.audit_entries("subscription.revoke").await.len(), 1);
    app.stop().await;
}

async fn bans_and_deletions_reprovision_the_subscription(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let customer = app.customer_id("banned-sub@example.com").await;
    let subscription = app.subscribe(customer, 30).await;
    let provision = json!({ "subscription_id": subscription.id.as_uuid() });

    let base = format!("/api/v1/users/{}", customer.as_uuid());
    let ban = call(
        &app,
        Method::POST,
        &format!("{base}/ban"),
        Some(&admin),
        None,
    )
    .await;
    json_body(ban, 200).await;
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(
        (outbox[0].job.as_str(), &outbox[0].payload),
        ("provision_subscription", &provision)
    );
    let unban = call(
        &app,
        Method::POST,
        &format!("{base}/unban"),
        Some(&admin),
        None,
    )
    .await;
    json_body(unban, 200).await;
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert_eq!(
        (outbox[1].job.as_str(), &outbox[1].payload),
        ("provision_subscription", &provision)
    );

    // A refused ban (not banned → unban) writes nothing; a customer without a subscription has no panel user.
    let refused = call(
        &app,
        Method::POST,
        &format!("{base}/unban"),
        Some(&admin),
        None,
    )
    .await;
    assert_problem(refused, 409, "invalid_state_transition").await;
    let plain = app.customer_id("plain-ban@example.com").await;
    let ban = call(
        &app,
        Method::POST,
        &format!("/api/v1/users/{}/ban", plain.as_uuid()),
        Some(&admin),
        None,
    )
    .await;
    json_body(ban, 200).await;
    assert_eq!(app.outbox().await.len(), 2);

    // A deleted customer's panel user must be switched off too, not left serving until reconciliation.
    let deleted = call(&app, Method::DELETE, &base, Some(&admin), None).await;
    assert_eq!(deleted.status(), 204);
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 3, "{outbox:?}");
    assert_eq!(
        (outbox[2].job.as_str(), &outbox[2].payload),
        ("provision_subscription", &provision)
    );
    app.stop().await;
}

fn node(panel_uuid: &str, name: &str, connected: bool, disabled: bool, online: i32) -> NodeReport {
    NodeReport {
        panel_uuid: panel_uuid.to_owned(),
        name: name.to_owned(),
        address: format!("{}.vpn.example.com", name.to_lowercase()),
        port: 2222,
        country_code: "DE".to_owned(),
        is_connected: connected,
        is_disabled: disabled,
        users_online: online,
        traffic_used_bytes: 1_000 * i64::from(online),
        status_message: (!connected).then(|| "connection lost".to_owned()),
    }
}

async fn servers_are_listed_read_and_measured(backend: Backend) {
    let app = spawn(backend).await;
    let viewer = app.staff_token(StaffRole::Viewer).await;
    assert_eq!(get(&app, "/api/v1/servers", &viewer).await, json!([]));

    let synced = Utc::now().trunc_subsecs(6);
    let servers = app.db.servers();
    let frankfurt = servers
        .upsert(&node("n-fra", "Frankfurt", true, false, 30), synced)
        .await
        .unwrap()
        .id
        .as_uuid();
    let berlin = servers
        .upsert(&node("n-ber", "Berlin", false, false, 10), synced)
        .await
        .unwrap()
        .id
        .as_uuid();
    servers
        .upsert(&node("n-cgn", "Cologne", true, true, 0), synced)
        .await
        .unwrap();

    let list = get(&app, "/api/v1/servers", &viewer).await;
    let rows: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("Berlin", "offline"),
            ("Cologne", "maintenance"),
            ("Frankfurt", "online")
        ]
    );

    let server = get(&app, &format!("/api/v1/servers/{frankfurt}"), &viewer).await;
    assert_eq!(
        server,
        json!({
            "id": frankfurt,
            "panel_uuid": "n-fra",
            "name": "Frankfurt",
            "address": "frankfurt.vpn.example.com",
            "port": 2222,
            "country_code": "DE",
            "status": "online",
            "is_connected": true,
            "is_disabled": false,
            "users_online": 30,
            "traffic_used_bytes": 30_000,
            "latitude": null,
            "longitude": null,
            "status_message": null,
            "last_status_change": server["last_status_change"],
            "synced_at": server["synced_at"],
        })
    );
    assert_eq!(time(&server["synced_at"]), synced);
    assert_eq!(time(&server["last_status_change"]), synced);
    assert_eq!(list[2], server, "the list shows the same view");

    let stats = get(&app, &format!("/api/v1/servers/{frankfurt}/stats"), &viewer).await;
    assert_eq!(
        stats,
        json!({
            "id": frankfurt,
            "status": "online",
            "users_online": 30,
            "traffic_used_bytes": 30_000,
            "online_share": 0.75,
            "synced_at": server["synced_at"],
        })
    );
    let stats = get(&app, &format!("/api/v1/servers/{berlin}/stats"), &viewer).await;
    assert_eq!(stats["online_share"], 0.25);
    assert_eq!(stats["status"], "offline");

    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/servers/{unknown}"),
        format!("/api/v1/servers/{unknown}/stats"),
    ] {
        assert_problem(app.get_authed(&path, &viewer).await, 404, "not_found").await;
    }
    for path in ["/api/v1/servers/fra-1", "/api/v1/servers/fra-1/stats"] {
        assert_problem(
            app.get_authed(path, &viewer).await,
            422,
            "validation_failed",
        )
        .await;
    }
    app.stop().await;
}

async fn monitoring_reports_health_and_collected_figures(backend: Backend) {
    let app = spawn(backend).await;
    let viewer = app.staff_token(StaffRole::Viewer).await;
    let operator = app.staff_token(StaffRole::Operator).await;

    let health = get(&app, "/api/v1/monitoring/health", &viewer).await;
    assert_eq!(health["database"], true);
    assert_eq!(health["outbox_pending"], 0);
    assert_eq!(
        health["panel"],
        json!({ "data": null, "collected_at": null })
    );
    // Nothing says the panel is healthy yet.
    assert_eq!(health["status"], "degraded");
    match backend {
        Backend::Postgres => {
            assert_eq!(health["redis"], true);
            assert_eq!(health["dead_jobs"], 0);
            let depth = health["queue_depth"].as_object().unwrap();
            assert_eq!(depth.len(), cybervpn_jobs::catalog::NAMES.len());
            assert!(depth.values().all(|d| d == 0), "{depth:?}");
        }
        Backend::Sqlite => {
            assert_eq!(health["redis"], Value::Null);
            assert_eq!(health["dead_jobs"], Value::Null);
            assert_eq!(health["queue_depth"], json!({}));
        }
    }

    let customer = app.customer_id("monitor@example.com").await;
    json_body(extend(&app, &operator, customer, 3).await, 200).await;
    json_body(extend(&app, &operator, customer, 3).await, 200).await;
    let checked = Utc::now().trunc_subsecs(6);
    let panel_health = json!({ "healthy": true, "error": null });
    app.db
        .snapshots()
        .put("panel_health", &panel_health, checked)
        .await
        .unwrap();
    let health = get(&app, "/api/v1/monitoring/health", &viewer).await;
    assert_eq!(health["outbox_pending"], 2);
    assert_eq!(health["panel"]["data"], panel_health);
    assert_eq!(time(&health["panel"]["collected_at"]), checked);
    assert_eq!(health["status"], "ok");

    // Bandwidth and statistics are null until first collected, then what was stored.
    let empty = json!({ "data": null, "collected_at": null });
    assert_eq!(
        get(&app, "/api/v1/monitoring/bandwidth", &viewer).await,
        empty
    );
    let stats = get(&app, "/api/v1/monitoring/stats", &viewer).await;
    assert_eq!(
        stats,
        json!({
            "servers_total": 0,
            "servers_online": 0,
            "users_online": 0,
            "panel": empty,
            "reconcile": empty,
        })
    );

    let collected = Utc::now().trunc_subsecs(6) - TimeDelta::minutes(3);
    let bandwidth = json!({
        "last_two_days": { "current": "10", "previous": "8", "difference": "2" },
        "current_year": { "current": "1000", "previous": "0", "difference": "1000" },
    });
    let panel_stats = json!({ "users": { "total": 12 }, "online_now": 4 });
    let reconcile = json!({ "checked": 12, "repaired": 1 });
    let snapshots = app.db.snapshots();
    snapshots
        .put("bandwidth", &bandwidth, collected)
        .await
        .unwrap();
    snapshots
        .put("panel_stats", &panel_stats, collected)
        .await
        .unwrap();
    snapshots
        .put("reconcile", &reconcile, collected)
        .await
        .unwrap();
    let servers = app.db.servers();
    let now = Utc::now();
    servers
        .upsert(&node("n-1", "Amsterdam", true, false, 7), now)
        .await
        .unwrap();
    servers
        .upsert(&node("n-2", "Paris", false, false, 2), now)
        .await
        .unwrap();
    servers
        .upsert(&node("n-3", "Rome", true, true, 1), now)
        .await
        .unwrap();

    let got = get(&app, "/api/v1/monitoring/bandwidth", &viewer).await;
    assert_eq!(got["data"], bandwidth);
    assert_eq!(time(&got["collected_at"]), collected);
    let stats = get(&app, "/api/v1/monitoring/stats", &viewer).await;
    assert_eq!(stats["servers_total"], 3);
    assert_eq!(stats["servers_online"], 1);
    assert_eq!(stats["users_online"], 10);
    assert_eq!(stats["panel"]["data"], panel_stats);
    assert_eq!(stats["reconcile"]["data"], reconcile);
    assert_eq!(time(&stats["reconcile"]["collected_at"]), collected);
    app.stop().await;
}

mod dead_jobs {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn are_listed_and_redriven_on_the_redis_queue() {
        dead_jobs_are_listed_and_redriven().await;
    }

    #[tokio::test]
    async fn answer_503_without_a_queue() {
        let app = spawn(Backend::Sqlite).await;
        let admin = app.staff_token(StaffRole::Admin).await;
        assert_problem(
            app.get_authed("/api/v1/admin/jobs/dead", &admin).await,
            503,
            "service_unavailable",
        )
        .await;
        let redrive = call(
            &app,
            Method::POST,
            "/api/v1/admin/jobs/dead/0190-x/redrive",
            Some(&admin),
            None,
        )
        .await;
        assert_problem(redrive, 503, "service_unavailable").await;
        assert!(app.audit_entries("job.redrive").await.is_empty());
        app.stop().await;
    }
}

/// Waits until `check` holds, for at most 30 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn dead_jobs_are_listed_and_redriven() {
    let app = spawn(Backend::Postgres).await;
    let admin = app.staff_token(StaffRole::Admin).await;

    // A worker of our own on the app's Redis prefix dead-letters a provisioning job at once.
    let metrics = cybervpn_telemetry::Metrics::new().unwrap();
    let queue = Queue::redis(
        app.config.redis.url.as_ref().unwrap().expose(),
        &app.config.redis.key_prefix,
        JobMetrics::register(metrics.registry()).unwrap(),
    )
    .await
    .unwrap();
    let worker = Worker::new(queue.clone())
        .poll_interval(Duration::from_millis(50))
        .lease_timeout(Duration::from_secs(3))
        .handle(1, |_: ProvisionSubscription, _: JobContext| async {
            Err(JobError::permanent(
                "remnawave create user",
                "A025 user already exists",
            ))
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let subscription_id = uuid::Uuid::now_v7();
    let id = queue
        .push(&ProvisionSubscription { subscription_id })
        .await
        .unwrap();
    eventually("the job is dead-lettered", async || {
        !queue.dead(10).await.unwrap().is_empty()
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();

    let dead = get(&app, "/api/v1/admin/jobs/dead", &admin).await;
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["name"], "provision_subscription");
    assert_eq!(
        dead[0]["payload"],
        json!({ "subscription_id": subscription_id })
    );
    assert_eq!(
        dead[0]["error"],
        "remnawave create user: A025 user already exists"
    );
    assert_eq!(dead[0]["attempts"], 1);
    assert!(time(&dead[0]["failed_at"]) <= Utc::now());
    let health = get(&app, "/api/v1/monitoring/health", &admin).await;
    assert_eq!(health["dead_jobs"], 1);
    assert_eq!(health["queue_depth"]["provision_subscription"], 0);

    for limit in ["0", "501", "ten"] {
        assert_problem(
            app.get_authed(&format!("/api/v1/admin/jobs/dead?limit={limit}"), &admin)
                .await,
            422,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(
        get(&app, "/api/v1/admin/jobs/dead?limit=1", &admin)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let redrive = async |job: String| {
        call(
            &app,
            Method::POST,
            &format!("/api/v1/admin/jobs/dead/{job}/redrive"),
            Some(&admin),
            None,
        )
        .await
    };
    let response = redrive(id.clone()).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        get(&app, "/api/v1/admin/jobs/dead", &admin).await,
        json!([])
    );
    let health = get(&app, "/api/v1/monitoring/health", &admin).await;
    assert_eq!(health["dead_jobs"], 0);
    assert_eq!(health["queue_depth"]["provision_subscription"], 1);
    let audit = app.audit_entries("job.redrive").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].after, Some(json!({ "job_id": id })));

    // Re-driven already, or never dead: nothing to re-drive.
    assert_problem(redrive(id.clone()).await, 404, "not_found").await;
    assert_problem(
        redrive(uuid::Uuid::now_v7().to_string()).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.audit_entries("job.redrive").await.len(), 1);
    app.stop().await;
}
