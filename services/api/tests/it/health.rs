use cybervpn_testkit::Backend;
use serde_json::{Value, json};

use cybervpn_testkit::on_both_backends;

use crate::helpers::{TestApp, assert_problem};

on_both_backends!(health_ready_and_metrics);

async fn health_ready_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let ready: Value = app.get("/ready").await.json().await.unwrap();
    let redis = match backend {
        Backend::Postgres => "ok",
        Backend::Sqlite => "not_configured",
    };
    assert_eq!(
        ready,
        json!({"status": "ready", "database": "ok", "redis": redis})
    );

    app.get("/api/v1/plans").await;
    app.get("/api/v1/plans/01234567-0000-7000-8000-000000000000")
        .await;
    app.get("/no/such/path/42").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/api/v1/plans",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/plans/{id}",status="404"} 1"#
        ),
        "route label is the template: {text}"
    );
    assert!(
        text.contains(r#"route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(
        !text.contains("01234567-0000"),
        "raw paths never become labels"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(
        text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/plans\""
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn ready_reports_redis_down_as_503() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        // A port nothing listens on.
        config.redis.url = Some(cybervpn_config::Secret::new(
            "redis://127.0.0.1:1".to_owned(),
        ));
    })
    .await;
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "liveness does not depend on Redis"
    );
    let body = assert_problem(app.get("/ready").await, 503, "service_unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("redis"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_honoured_or_generated() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc.123");

    let rejected = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "has spaces and \"quotes\"")
        .send()
        .await
        .unwrap();
    let generated = rejected.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 32, "a fresh simple UUID: {generated}");

    let other = app.get("/health").await;
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), generated);
    app.stop().await;
}

#[tokio::test]
async fn security_headers_and_hsts_only_when_configured() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/health", "/api/v1/plans", "/nope"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'"),
            "{path}"
        );
        assert!(headers.get("strict-transport-security").is_none(), "{path}");
    }
    app.stop().await;

    let behind_tls = TestApp::spawn_with(Backend::Sqlite, |c| c.api.hsts = true).await;
    let response = behind_tls.get("/health").await;
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    behind_tls.stop().await;
}

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.api.cors_allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/plans/quote"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    let allowed = app
        .client
        .get(app.url("/api/v1/plans"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    let foreign = app
        .client
        .get(app.url("/api/v1/plans"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}
