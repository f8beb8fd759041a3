//! User operations: happy paths and the idempotency rules.

use chrono::{TimeDelta, Utc};
use cybervpn_panel_fake::Fault;
use cybervpn_remnawave::{
    PanelError, StreamQuery, TrafficLimitStrategy, UpdateUser, UserKey, UserRef, UserStatus,
};

use crate::helpers::TestPanel;

#[tokio::test]
async fn created_user_is_found_by_every_key() {
    let t = TestPanel::start().await;
    let request = cybervpn_remnawave::CreateUser {
        traffic_limit_bytes: Some(50 * 1024 * 1024 * 1024),
        traffic_limit_strategy: Some(TrafficLimitStrategy::MonthRolling),
        telegram_id: Some(42),
        email: Some("ann@example.com".to_owned()),
        tag: Some("PROMO_1".to_owned()),
        description: Some("customer 1".to_owned()),
        hwid_device_limit: Some(3),
        ..t.new_user("cust_1")
    };
    let user = t.panel.create_user(&request).await.unwrap();
    assert_eq!(user.username, "cust_1");
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.traffic_limit_bytes, 50 * 1024 * 1024 * 1024);
    assert_eq!(
        user.traffic_limit_strategy,
        TrafficLimitStrategy::MonthRolling
    );
    assert_eq!(user.telegram_id, Some(42));
    assert_eq!(user.tag.as_deref(), Some("PROMO_1"));
    assert_eq!(user.hwid_device_limit, Some(3));
    assert_eq!(user.active_internal_squads.len(), 1);
    assert_eq!(user.active_internal_squads[0].name, t.fake.squads()[0].1);
    assert!(user.subscription_url.ends_with(&user.short_uuid));
    assert_eq!(user.user_traffic.used_traffic_bytes, 0);

    let by_id = t.panel.user(user.id).await.unwrap().unwrap();
    assert_eq!(by_id, user);
    let by_name = t.panel.user_by_username("cust_1").await.unwrap().unwrap();
    assert_eq!(by_name.id, user.id);
    let by_short = t
        .panel
        .user_by_short_uuid(&user.short_uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_short.id, user.id);
    for key in [
        UserRef::Id(user.id),
        UserRef::Username("cust_1".to_owned()),
        UserRef::ShortUuid(user.short_uuid.clone()),
    ] {
        let resolved = t.panel.resolve(&key).await.unwrap().unwrap();
        assert_eq!(
            (resolved.id, resolved.username.as_str()),
            (user.id, "cust_1")
        );
        assert_eq!(resolved.short_uuid, user.short_uuid);
    }
}

#[tokio::test]
async fn plain_create_of_an_existing_username_is_a019() {
    let t = TestPanel::start().await;
    t.create("cust_dup").await;
    let err = t
        .panel
        .create_user(&t.new_user("cust_dup"))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(400), Some("A019")));
    assert!(!err.is_retryable());
    assert_eq!(err.operation(), Some("users.create"));
}

#[tokio::test]
async fn ensure_user_twice_makes_one_panel_user() {
    let t = TestPanel::start().await;
    let first = t.panel.ensure_user(&t.new_user("cust_2")).await.unwrap();
    let second = t.panel.ensure_user(&t.new_user("cust_2")).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(t.fake.users().len(), 1);
    let creates = t.exchanges_of("POST", "/api/users");
    assert_eq!(
        creates.iter().map(|e| e.status).collect::<Vec<_>>(),
        [201, 400]
    );
    assert_eq!(
        creates[1].response_body.as_ref().unwrap()["errorCode"],
        "A019"
    );
    assert_eq!(
        t.exchanges_of("GET", "/api/users/by-username/{username}")
            .len(),
        1
    );
}

#[tokio::test]
async fn missing_users_are_none() {
    let t = TestPanel::start().await;
    assert_eq!(t.panel.user(987_654).await.unwrap(), None);
    assert_eq!(t.panel.user_by_username("nobody").await.unwrap(), None);
    assert_eq!(t.panel.user_by_short_uuid("nope").await.unwrap(), None);
    let resolved = t
        .panel
        .resolve(&UserRef::Username("nobody".to_owned()))
        .await;
    assert_eq!(resolved.unwrap(), None);
}

#[tokio::test]
async fn a_400_is_an_error_not_none() {
    let t = TestPanel::start().await;
    // A non-positive id is the panel's 400 validation error, without an error code.
    let err = t.panel.user(0).await.unwrap_err();
    assert!(
        matches!(
            err,
            PanelError::Api {
                status: 400,
                code: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_not_found());

    let user = t.create("cust_400").await;
    t.fake.inject(Fault::Status {
        status: 400,
        times: 1,
        path_prefix: Some("/api/users/".to_owned()),
    });
    let err = t.panel.user(user.id).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("users.get"), "{err}");
}

#[tokio::test]
async fn stream_pages_through_every_user() {
    let t = TestPanel::start().await;
    t.fake.seed_users(7);
    let mut query = StreamQuery {
        size: 3,
        ..StreamQuery::default()
    };
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    loop {
        let page = t.panel.users_stream(&query).await.unwrap();
        sizes.push(page.users.len());
        ids.extend(page.users.iter().map(|u| u.id));
        if !page.has_more {
            assert_eq!(page.next_cursor, None);
            break;
        }
        query.cursor = page.next_cursor;
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(ids, (1..=7).collect::<Vec<i64>>());

    let all = t
        .panel
        .all_users(&StreamQuery {
            size: 2,
            ..StreamQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(t.exchanges_of("GET", "/api/users/stream").len(), 3 + 4);

    // Seeded users have telegram id 100_000_000 + id.
    let by_telegram = t.panel.users_by_telegram_id(100_000_005).await.unwrap();
    assert_eq!(by_telegram.iter().map(|u| u.id).collect::<Vec<_>>(), [5]);
    let active = t
        .panel
        .all_users(&StreamQuery {
            status: Some(UserStatus::Disabled),
            ..StreamQuery::default()
        })
        .await
        .unwrap();
    assert!(active.is_empty());

    let err = t
        .panel
        .users_stream(&StreamQuery {
            size: 0,
            ..StreamQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PanelError::Invalid { .. }));
}

#[tokio::test]
async fn offset_list_returns_a_window_and_the_total() {
    let t = TestPanel::start().await;
    t.fake.seed_users(5);
    let page = t.panel.users_page(3, 10).await.unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(page.users.iter().map(|u| u.id).collect::<Vec<_>>(), [4, 5]);
}

#[tokio::test]
async fn update_sets_only_the_given_fields() {
    let t = TestPanel::start().await;
    let user = t.create("cust_upd").await;
    let expire_at = Utc::now() + TimeDelta::days(90);
    let updated = t
        .panel
        .update_user(&UpdateUser {
            expire_at: Some(expire_at),
            traffic_limit_bytes: Some(1_000),
            ..UpdateUser::new(UserKey::Id(user.id))
        })
        .await
        .unwrap();
    assert_eq!(updated.traffic_limit_bytes, 1_000);
    assert_eq!(updated.expire_at.timestamp(), expire_at.timestamp());
    assert_eq!(updated.active_internal_squads, user.active_internal_squads);
    let patch = t.exchanges_of("PATCH", "/api/users").remove(0);
    let body = patch.request_body.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["expireAt", "id", "trafficLimitBytes"]);

    let by_name = t
        .panel
        .update_user(&UpdateUser {
            status: Some(UserStatus::Disabled),
            description: Some("paused".to_owned()),
            ..UpdateUser::new(UserKey::Username("cust_upd".to_owned()))
        })
        .await
        .unwrap();
    assert_eq!(by_name.status, UserStatus::Disabled);
    assert_eq!(by_name.description.as_deref(), Some("paused"));

    let err = t
        .panel
        .update_user(&UpdateUser {
            status: Some(UserStatus::Limited),
            ..UpdateUser::new(UserKey::Id(user.id))
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PanelError::Invalid {
            operation: "users.update",
            ..
        }
    ));
}

#[tokio::test]
async fn extend_adds_days_once() {
    let t = TestPanel::start().await;
    let user = t.create("cust_ext").await;
    let extended = t.panel.extend(user.id, 10).await.unwrap();
    assert_eq!(extended.expire_at - user.expire_at, TimeDelta::days(10));
    assert_eq!(
        t.exchanges_of("POST", "/api/users/{id}/actions/extend")
            .len(),
        1
    );

    let err = t.panel.extend(user.id, 0).await.unwrap_err();
    assert!(matches!(
        err,
        PanelError::Invalid {
            operation: "users.extend",
            ..
        }
    ));
    let missing = t.panel.extend(987_654, 1).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}

#[tokio::test]
async fn enable_and_disable_are_idempotent() {
    let t = TestPanel::start().await;
    let user = t.create("cust_toggle").await;
    t.panel.disable(user.id).await.unwrap();
    t.panel.disable(user.id).await.unwrap();
    let status = |t: &TestPanel| {
        t.fake.user_by_username("cust_toggle").unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(&t), "DISABLED");
    t.panel.enable(user.id).await.unwrap();
    t.panel.enable(user.id).await.unwrap();
    assert_eq!(status(&t), "ACTIVE");
    let codes: Vec<Option<String>> = t
        .fake
        .exchanges()
        .iter()
        .filter(|e| e.route.starts_with("/api/users/{id}/actions/"))
        .map(|e| {
            e.response_body
                .as_ref()
                .and_then(|b| b["errorCode"].as_str().map(str::to_owned))
        })
        .collect();
    assert_eq!(
        codes,
        [None, Some("A029".to_owned()), None, Some("A030".to_owned())]
    );
    // Another error is still an error.
    assert!(t.panel.enable(987_654).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn reset_traffic_zeroes_used_traffic() {
    let t = TestPanel::start().await;
    let user = t.create("cust_traffic").await;
    t.fake.set_user_traffic(user.id, 123_456);
    let before = t.panel.user(user.id).await.unwrap().unwrap();
    assert_eq!(before.user_traffic.used_traffic_bytes, 123_456);
    let after = t.panel.reset_traffic(user.id).await.unwrap();
    assert_eq!(after.user_traffic.used_traffic_bytes, 0);
}

#[tokio::test]
async fn revoke_issues_a_new_subscription_url() {
    let t = TestPanel::start().await;
    let user = t.create("cust_revoke").await;
    let revoked = t.panel.revoke(user.id).await.unwrap();
    assert_eq!(revoked.id, user.id);
    assert_ne!(revoked.short_uuid, user.short_uuid);
    assert_ne!(revoked.subscription_url, user.subscription_url);
    assert_eq!(
        t.panel.user_by_short_uuid(&user.short_uuid).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn delete_is_idempotent() {
    let t = TestPanel::start().await;
    let user = t.create("cust_del").await;
    t.panel.delete_user(user.id).await.unwrap();
    t.panel.delete_user(user.id).await.unwrap();
    assert_eq!(t.panel.user(user.id).await.unwrap(), None);
    let statuses: Vec<u16> = t
        .exchanges_of("DELETE", "/api/users/{id}")
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [204, 404]);

    let other = t.create("cust_gone").await;
    assert!(t.fake.delete_user_out_of_band(other.id));
    t.panel.delete_user(other.id).await.unwrap();
}
