//! Transport failures, retries only where safe, error shapes, secrets and metrics.

use std::time::Duration;

use cybervpn_panel_fake::Fault;
use cybervpn_remnawave::{Panel, PanelConfig, PanelError};

use crate::helpers::{TOKEN, TestPanel};

fn users_prefix() -> Option<String> {
    Some("/api/users/".to_owned())
}

#[tokio::test]
async fn a_slow_panel_times_out_naming_the_operation() {
    let t = TestPanel::start_with(|config| config.timeout = Duration::from_millis(500)).await;
    let user = t.create("cust_slow").await;
    t.fake.inject(Fault::Delay {
        delay: Duration::from_secs(2),
        times: 3,
        path_prefix: users_prefix(),
    });
    let err = t.panel.user(user.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Timeout {
                operation: "users.get"
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.to_string(), "remnawave users.get: timed out");

    t.fake.inject(Fault::Delay {
        delay: Duration::from_secs(2),
        times: 1,
        path_prefix: users_prefix(),
    });
    let err = t.panel.extend(user.id, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Timeout {
                operation: "users.extend"
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_retried_for_a_read() {
    let t = TestPanel::start().await;
    let user = t.create("cust_drop").await;
    t.fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: users_prefix(),
    });
    let found = t.panel.user(user.id).await.unwrap().unwrap();
    assert_eq!(found.id, user.id);
    let statuses: Vec<u16> = t
        .exchanges_of("GET", "/api/users/{id}")
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn a_dropped_connection_is_not_retried_for_extend() {
    let t = TestPanel::start().await;
    let user = t.create("cust_drop_ext").await;
    t.fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: users_prefix(),
    });
    let err = t.panel.extend(user.id, 30).await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Connection {
                operation: "users.extend",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable(), "the job layer decides");
    assert_eq!(
        t.exchanges_of("POST", "/api/users/{id}/actions/extend")
            .len(),
        1
    );
    let after = t.panel.user(user.id).await.unwrap().unwrap();
    assert_eq!(after.expire_at, user.expire_at);
}

#[tokio::test]
async fn non_idempotent_actions_are_never_retried() {
    let t = TestPanel::start().await;
    let user = t.create("cust_once").await;
    t.fake.inject(Fault::Status {
        status: 503,
        times: 3,
        path_prefix: users_prefix(),
    });
    assert_eq!(
        t.panel.reset_traffic(user.id).await.unwrap_err().status(),
        Some(503)
    );
    assert_eq!(
        t.panel.revoke(user.id).await.unwrap_err().status(),
        Some(503)
    );
    assert_eq!(
        t.panel.extend(user.id, 1).await.unwrap_err().status(),
        Some(503)
    );
    let node = t.panel.nodes().await.unwrap().remove(0);
    t.fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: Some("/api/nodes/".to_owned()),
    });
    let err = t.panel.restart_node(node.uuid, false).await.unwrap_err();
    assert!(matches!(
        err,
        PanelError::Connection {
            operation: "nodes.restart",
            ..
        }
    ));
    let actions = t
        .fake
        .exchanges()
        .into_iter()
        .filter(|e| e.route.contains("/actions/"))
        .count();
    assert_eq!(actions, 4, "one attempt each");
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_then_succeed() {
    let t = TestPanel::start().await;
    t.fake.inject(Fault::Status {
        status: 503,
        times: 2,
        path_prefix: Some("/api/nodes".to_owned()),
    });
    assert_eq!(t.panel.nodes().await.unwrap().len(), 3);
    let statuses: Vec<u16> = t
        .exchanges_of("GET", "/api/nodes")
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn retries_stop_after_two() {
    let t = TestPanel::start().await;
    t.fake.inject(Fault::Status {
        status: 500,
        times: 10,
        path_prefix: Some("/api/system/stats".to_owned()),
    });
    let err = t.panel.system_stats().await.unwrap_err();
    assert!(
        matches!(&err, PanelError::Api { operation: "system.stats", status: 500, code: Some(code), .. } if code == "A001"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(t.exchanges_of("GET", "/api/system/stats").len(), 3);
}

#[tokio::test]
async fn ensure_user_retries_a_failed_create() {
    let t = TestPanel::start().await;
    t.fake.inject(Fault::Status {
        status: 500,
        times: 1,
        path_prefix: Some("/api/users".to_owned()),
    });
    let user = t
        .panel
        .ensure_user(&t.new_user("cust_retry"))
        .await
        .unwrap();
    assert_eq!(user.username, "cust_retry");
    let creates = t.exchanges_of("POST", "/api/users");
    assert_eq!(
        creates.iter().map(|e| e.status).collect::<Vec<_>>(),
        [500, 201]
    );
    assert_eq!(
        creates[0].response_body.as_ref().unwrap()["errorCode"],
        "A018"
    );

    // A plain create is not retried.
    t.fake.inject(Fault::Status {
        status: 500,
        times: 1,
        path_prefix: Some("/api/users".to_owned()),
    });
    let err = t
        .panel
        .create_user(&t.new_user("cust_plain"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("A018"));
    assert_eq!(t.exchanges_of("POST", "/api/users").len(), 3);
}

#[tokio::test]
async fn a_lost_create_response_still_yields_one_user() {
    let t = TestPanel::start().await;
    // The repeated ensure loses its first attempt, retries, meets A019 and returns the existing user.
    let first = t.panel.ensure_user(&t.new_user("cust_lost")).await.unwrap();
    t.fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: Some("/api/users".to_owned()),
    });
    let again = t.panel.ensure_user(&t.new_user("cust_lost")).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(t.fake.users().len(), 1);
}

#[tokio::test]
async fn garbage_is_a_decode_error() {
    let t = TestPanel::start().await;
    t.fake.inject(Fault::Garbage {
        times: 1,
        path_prefix: Some("/api/nodes".to_owned()),
    });
    let err = t.panel.nodes().await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Decode {
                operation: "nodes.list",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(t.exchanges_of("GET", "/api/nodes").len(), 1);
}

#[tokio::test]
async fn a_gateway_page_is_an_api_error_with_its_text() {
    let t = TestPanel::start().await;
    t.fake.inject(Fault::Status {
        status: 502,
        times: 3,
        path_prefix: Some("/api/system/metadata".to_owned()),
    });
    let err = t.panel.metadata().await.unwrap_err();
    assert!(
        matches!(&err, PanelError::Api { status: 502, code: None, message, .. } if message.contains("Bad Gateway")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_401_that_is_not_retried() {
    let t = TestPanel::start().await;
    let panel = Panel::new(
        PanelConfig::new(t.fake.url(), "not-the-token-77aa"),
        t.metrics.external.clone(),
    )
    .unwrap();
    let err = panel.nodes().await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Api {
                operation: "nodes.list",
                status: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(t.exchanges_of("GET", "/api/nodes").len(), 1);
    assert!(!err.to_string().contains("not-the-token-77aa"));

    let empty = Panel::new(
        PanelConfig::new(t.fake.url(), ""),
        t.metrics.external.clone(),
    );
    assert!(matches!(empty, Err(PanelError::Config(_))));
}

#[tokio::test]
async fn errors_never_show_the_token_or_header_values() {
    let t = TestPanel::start_with(|config| {
        config.timeout = Duration::from_millis(500);
        config
            .extra_headers
            .push(("X-Api-Key".to_owned(), "api-key-SECRET-5511".to_owned()));
    })
    .await;
    let user = t.create("cust_secret").await;
    let mut errors = Vec::new();
    for fault in [
        Fault::Status {
            status: 400,
            times: 1,
            path_prefix: users_prefix(),
        },
        Fault::Delay {
            delay: Duration::from_secs(2),
            times: 1,
            path_prefix: users_prefix(),
        },
        Fault::DropConnection {
            times: 1,
            path_prefix: users_prefix(),
        },
        Fault::Garbage {
            times: 1,
            path_prefix: users_prefix(),
        },
    ] {
        t.fake.inject(fault);
        errors.push(t.panel.extend(user.id, 1).await.unwrap_err());
    }
    let closed = Panel::new(
        PanelConfig::new("http://127.0.0.1:1", TOKEN),
        t.metrics.external.clone(),
    )
    .unwrap();
    errors.push(closed.nodes().await.unwrap_err());
    for err in &errors {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
    assert!(
        matches!(errors[4], PanelError::Connection { .. }),
        "{:?}",
        errors[4]
    );
}

#[tokio::test]
async fn metrics_count_attempts_by_operation_and_outcome() {
    let t = TestPanel::start_with(|config| config.timeout = Duration::from_millis(500)).await;
    let user = t.create("cust_metrics").await;
    t.panel.user(user.id).await.unwrap();
    t.panel.user(987_654).await.unwrap();
    t.fake.inject(Fault::DropConnection {
        times: 1,
        path_prefix: users_prefix(),
    });
    t.panel.user(user.id).await.unwrap();
    t.fake.inject(Fault::Delay {
        delay: Duration::from_secs(2),
        times: 1,
        path_prefix: users_prefix(),
    });
    t.panel.extend(user.id, 1).await.unwrap_err();
    t.fake.inject(Fault::Garbage {
        times: 1,
        path_prefix: Some("/api/nodes".to_owned()),
    });
    t.panel.nodes().await.unwrap_err();

    let text = t.metrics_text();
    for line in [
        r#"external_requests_total{operation="users.create",service="remnawave",status="201"} 1"#,
        r#"external_requests_total{operation="users.get",service="remnawave",status="200"} 2"#,
        r#"external_requests_total{operation="users.get",service="remnawave",status="404"} 1"#,
        r#"external_requests_total{operation="users.get",service="remnawave",status="connection"} 1"#,
        r#"external_requests_total{operation="users.extend",service="remnawave",status="timeout"} 1"#,
        r#"external_requests_total{operation="nodes.list",service="remnawave",status="decode"} 1"#,
        r#"external_request_duration_seconds_count{operation="users.get",service="remnawave"} 4"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
