//! Access control derived from the route table: every staff route × every role, a customer token, an expired
//! token and no token; and `docs/rbac.md`, rendered from the one permission table.

use std::{collections::BTreeMap, path::PathBuf};

use chrono::Utc;
use cybervpn_auth::Audience;
use cybervpn_domain::{Permission, StaffRole};
use cybervpn_testkit::Backend;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// A route guarded by the staff scheme, with the permission its security scope names.
struct StaffRoute {
    method: String,
    path: String,
    permission: Option<Permission>,
}

/// Every operation whose only security scheme is `staff`, read from the generated OpenAPI document.
fn staff_routes() -> Vec<StaffRoute> {
    let doc = serde_json::to_value(cybervpn_api::openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(security) = operation["security"].as_array() else {
                continue;
            };
            let schemes: Vec<&serde_json::Map<String, Value>> =
                security.iter().map(|s| s.as_object().unwrap()).collect();
            if schemes.len() != 1 || !schemes[0].contains_key("staff") {
                continue;
            }
            let scopes = schemes[0]["staff"].as_array().unwrap();
            assert!(
                scopes.len() <= 1,
                "{method} {path}: one permission per route"
            );
            let permission = scopes.first().map(|s| {
                s.as_str()
                    .unwrap()
                    .parse::<Permission>()
                    .unwrap_or_else(|_| panic!("{method} {path}: unknown permission {s}"))
            });
            routes.push(StaffRoute {
                method: method.to_uppercase(),
                path: path.clone(),
                permission,
            });
        }
    }
    routes
}

#[test]
fn every_admin_path_is_guarded_by_a_staff_permission() {
    let doc = serde_json::to_value(cybervpn_api::openapi()).unwrap();
    let staff: Vec<(String, String)> = staff_routes()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let public_sign_in = ["/api/v1/admin/auth/login", "/api/v1/admin/auth/login/2fa"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        let admin = (path.starts_with("/api/v1/admin/")
            && !public_sign_in.contains(&path.as_str()))
            || path.starts_with("/api/v1/users");
        if !admin {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            assert!(
                staff.contains(&(method.to_uppercase(), path.clone())),
                "{method} {path} is an admin route without a staff permission"
            );
        }
    }
}

/// Routes anyone may call; every other state-changing route must declare a security scheme.
const PUBLIC_WRITES: &[&str] = &[
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/login/2fa",
    "POST /api/v1/auth/refresh",
    // Authenticated by Telegram's signature of the Mini App or Login Widget data, made with our bot token.
    "POST /api/v1/auth/telegram",
    "POST /api/v1/admin/auth/login",
    "POST /api/v1/admin/auth/login/2fa",
    "POST /api/v1/plans/quote",
    // Authenticated by the panel's HMAC signature of the body, not by a bearer token.
    "POST /api/v1/webhooks/remnawave",
    // Signed by the gateway (CryptoBot, Stripe) or from its networks and re-fetched (YooKassa).
    "POST /api/v1/webhooks/cryptobot",
    "POST /api/v1/webhooks/stripe",
    "POST /api/v1/webhooks/yookassa",
    // Authenticated by the exact Authorization value configured at RevenueCat.
    "POST /api/v1/webhooks/revenuecat",
];

#[test]
fn every_state_changing_route_is_authenticated_unless_listed_public() {
    let doc = serde_json::to_value(cybervpn_api::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = format!("{} {path}", method.to_uppercase());
            if method == "get" || PUBLIC_WRITES.contains(&route.as_str()) {
                continue;
            }
            assert!(
                operation["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
                "{route} changes state without declaring who may call it"
            );
        }
    }
}

#[tokio::test]
async fn route_role_matrix() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let routes = staff_routes();
    assert!(!routes.is_empty());

    let mut tokens = Vec::new();
    for role in StaffRole::ALL {
        tokens.push((*role, app.staff_token(*role).await));
    }
    let customer = app.customer_token("matrix@example.com").await;
    let expired = app.forge_token(
        uuid::Uuid::now_v7(),
        "super_admin",
        Audience::Staff,
        Utc::now() - chrono::Duration::hours(2),
        chrono::Duration::minutes(15),
    );

    let call = |route: &StaffRoute, token: Option<&str>| {
        let path = route
            .path
            .replace("{id}", &uuid::Uuid::now_v7().to_string());
        let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
        let mut request = app.client.request(method, app.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if ["POST", "PUT", "PATCH"].contains(&route.method.as_str()) {
            request = request.json(&json!({}));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };

    for route in &routes {
        let name = format!("{} {}", route.method, route.path);
        assert_eq!(
            call(route, None).await,
            (401, "unauthorized".into()),
            "{name}: no token"
        );
        assert_eq!(
            call(route, Some(&customer)).await,
            (401, "token_invalid".into()),
            "{name}: customer token"
        );
        assert_eq!(
            call(route, Some(&expired)).await,
            (401, "token_expired".into()),
            "{name}: expired token"
        );
        for (role, token) in &tokens {
            let allowed = route.permission.is_none_or(|p| role.can(p));
            let (status, code) = call(route, Some(token)).await;
            if allowed {
                // Past authorization the route answers on the (random) input: never 401/403, never a 5xx.
                assert!(
                    [200, 201, 204, 404, 409, 422].contains(&status),
                    "{name}: {role} holds the permission but got {status} {code}"
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (403, "forbidden"),
                    "{name}: {role}"
                );
            }
        }
    }
    app.stop().await;
}

/// `docs/rbac.md` is rendered from `StaffRole::permissions` and the route table; `make docs` refreshes it.
#[test]
fn rbac_document_matches_the_code() {
    let mut out = String::from(
        "# Roles and permissions\n\n\
         Generated from `StaffRole::permissions` (crates/domain/src/staff.rs) and the api's route table by the \
         test `rbac_document_matches_the_code`; run `make docs` after changing either.\n\n\
         Roles, highest first: super_admin > admin > operator > support > viewer. Staff may create, change or \
         disable only accounts of roles below their own; a super_admin may manage anyone.\n\n## Permissions by role\n\n",
    );
    out.push_str("| permission |");
    for role in StaffRole::ALL.iter().rev() {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(StaffRole::ALL.len()));
    out.push('\n');
    for permission in Permission::ALL {
        out.push_str(&format!("| `{permission}` |"));
        for role in StaffRole::ALL.iter().rev() {
            out.push_str(if role.can(*permission) {
                " yes |"
            } else {
                " — |"
            });
        }
        out.push('\n');
    }
    out.push_str("\n## Routes by permission\n\n");
    let mut by_permission: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in staff_routes() {
        let key = route
            .permission
            .map_or_else(|| "any staff role".to_owned(), |p| format!("`{p}`"));
        by_permission
            .entry(key)
            .or_default()
            .push(format!("`{} {}`", route.method, route.path));
    }
    for (permission, mut routes) in by_permission {
        routes.sort();
        out.push_str(&format!("- {permission}: {}\n", routes.join(", ")));
    }

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rbac.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == out,
        "docs/rbac.md is out of date: run `make docs` and commit the result"
    );
}
