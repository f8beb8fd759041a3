//! Contract test: every client operation runs against the fake panel, then every recorded exchange is
//! validated against the official `@remnawave/backend-contract` schemas, proving our requests (and the
//! answers we rely on) match the panel's published contract.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::BTreeSet;

use chrono::{TimeDelta, Utc};
use cybervpn_panel_fake::{FakeOptions, PanelFake, contract::Contract};
use cybervpn_remnawave::{
    CreateUser, Panel, PanelConfig, StreamQuery, TrafficLimitStrategy, UpdateUser, UserKey,
    UserRef, UserStatus,
};
use cybervpn_telemetry::Metrics;

/// A fake panel, a client for it, and the loaded contract.
async fn setup() -> (PanelFake, Panel, Contract) {
    let contract = Contract::load().expect("contract schemas load (needs Node.js and npm)");
    let fake = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
        .await
        .expect("fake panel starts");
    let metrics = Metrics::new().expect("metrics");
    let panel =
        Panel::new(PanelConfig::new(fake.url(), fake.token()), metrics.external).expect("client");
    (fake, panel, contract)
}

#[tokio::test]
async fn every_request_matches_the_official_contract() {
    let (fake, panel, contract) = setup().await;

    // Squads and nodes.
    let squads = panel.internal_squads().await.unwrap();
    let squad_names: Vec<String> = squads.iter().map(|s| s.name.clone()).collect();
    let squad_uuids = panel.resolve_squads(&squad_names).await.unwrap();
    let nodes = panel.nodes().await.unwrap();
    let node = nodes[0].uuid;
    panel.node(node).await.unwrap().unwrap();
    panel.disable_node(node).await.unwrap();
    panel.enable_node(node).await.unwrap();
    panel.restart_node(node, false).await.unwrap();
    panel.restart_node(node, true).await.unwrap();

    // Users: every field we can send, then every read and action, including their error paths.
    let full = CreateUser {
        status: Some(UserStatus::Active),
        traffic_limit_bytes: Some(100 * 1024 * 1024 * 1024),
        traffic_limit_strategy: Some(TrafficLimitStrategy::Month),
        active_internal_squads: squad_uuids.clone(),
        telegram_id: Some(777_000_111),
        email: Some("contract@example.com".to_owned()),
        hwid_device_limit: Some(2),
        tag: Some("CONTRACT".to_owned()),
        description: Some("contract test".to_owned()),
        ..CreateUser::new("contract_full", Utc::now() + TimeDelta::days(30))
    };
    let user = panel.create_user(&full).await.unwrap();
    panel.create_user(&full).await.unwrap_err(); // A019
    panel.ensure_user(&full).await.unwrap(); // A019, then by username
    let minimal = CreateUser::new("contract_min", Utc::now() + TimeDelta::days(1));
    let other = panel.ensure_user(&minimal).await.unwrap();

    panel.user(user.id).await.unwrap().unwrap();
    assert_eq!(panel.user(987_654).await.unwrap(), None);
    panel.user(0).await.unwrap_err();
    panel
        .user_by_username("contract_full")
        .await
        .unwrap()
        .unwrap();
    panel.user_by_username("nobody").await.unwrap();
    panel
        .user_by_short_uuid(&user.short_uuid)
        .await
        .unwrap()
        .unwrap();
    for key in [
        UserRef::Id(user.id),
        UserRef::Username(user.username.clone()),
        UserRef::ShortUuid(user.short_uuid.clone()),
        UserRef::Username("nobody".to_owned()),
    ] {
        panel.resolve(&key).await.unwrap();
    }
    panel
        .all_users(&StreamQuery {
            size: 1,
            ..StreamQuery::default()
        })
        .await
        .unwrap();
    panel
        .users_stream(&StreamQuery {
            telegram_id: Some(777_000_111),
            status: Some(UserStatus::Active),
            tag: Some("CONTRACT".to_owned()),
            ..StreamQuery::default()
        })
        .await
        .unwrap();
    panel.users_by_telegram_id(777_000_111).await.unwrap();
    panel.users_page(0, 25).await.unwrap();

    panel
        .update_user(&UpdateUser {
            status: Some(UserStatus::Disabled),
            traffic_limit_bytes: Some(0),
            traffic_limit_strategy: Some(TrafficLimitStrategy::NoReset),
            expire_at: Some(Utc::now() + TimeDelta::days(60)),
            active_internal_squads: Some(squad_uuids[..1].to_vec()),
            telegram_id: Some(777_000_222),
            email: Some("changed@example.com".to_owned()),
            hwid_device_limit: Some(5),
            tag: Some("CHANGED".to_owned()),
            description: Some("changed".to_owned()),
            ..UpdateUser::new(UserKey::Id(user.id))
        })
        .await
        .unwrap();
    panel
        .update_user(&UpdateUser {
            status: Some(UserStatus::Active),
            ..UpdateUser::new(UserKey::Username(other.username.clone()))
        })
        .await
        .unwrap();

    panel.extend(user.id, 30).await.unwrap();
    panel.disable(user.id).await.unwrap();
    panel.disable(user.id).await.unwrap(); // A029
    panel.enable(user.id).await.unwrap();
    panel.enable(user.id).await.unwrap(); // A030
    panel.reset_traffic(user.id).await.unwrap();
    let revoked = panel.revoke(user.id).await.unwrap();

    // Public subscription info, system routes.
    panel
        .subscription_info(&revoked.short_uuid)
        .await
        .unwrap()
        .unwrap();
    panel.subscription_info("unknownshort").await.unwrap();
    panel.system_stats().await.unwrap();
    panel.bandwidth().await.unwrap();
    panel.check_version().await.unwrap();
    panel.health().await.unwrap();

    panel.delete_user(other.id).await.unwrap();
    panel.delete_user(other.id).await.unwrap(); // 404

    let exchanges = fake.exchanges();
    let problems: Vec<String> = exchanges
        .iter()
        .filter_map(|e| contract.check(e).err())
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} exchanges violate the contract:\n{}",
        problems.len(),
        exchanges.len(),
        problems.join("\n")
    );

    // The check is not vacuous: a create without `expireAt` is refused.
    let mut broken = exchanges
        .iter()
        .find(|e| e.method == "POST" && e.route == "/api/users")
        .cloned()
        .unwrap();
    broken
        .request_body
        .as_mut()
        .and_then(|body| body.as_object_mut())
        .unwrap()
        .remove("expireAt");
    assert!(contract.check(&broken).is_err());

    // Every route of the contract document was exercised.
    let routes: BTreeSet<String> = exchanges
        .iter()
        .map(|e| format!("{} {}", e.method, e.route))
        .collect();
    for route in [
        "POST /api/users",
        "GET /api/users",
        "PATCH /api/users",
        "GET /api/users/stream",
        "POST /api/users/resolve",
        "GET /api/users/{id}",
        "GET /api/users/by-username/{username}",
        "GET /api/users/by-short-uuid/{shortUuid}",
        "POST /api/users/{id}/actions/extend",
        "POST /api/users/{id}/actions/enable",
        "POST /api/users/{id}/actions/disable",
        "POST /api/users/{id}/actions/reset-traffic",
        "POST /api/users/{id}/actions/revoke",
        "DELETE /api/users/{id}",
        "GET /api/sub/{shortUuid}/info",
        "GET /api/nodes",
        "GET /api/nodes/{uuid}",
        "POST /api/nodes/{uuid}/actions/restart",
        "POST /api/nodes/{uuid}/actions/enable",
        "POST /api/nodes/{uuid}/actions/disable",
        "GET /api/internal-squads",
        "GET /api/system/stats",
        "GET /api/system/stats/bandwidth",
        "GET /api/system/metadata",
        "GET /api/system/health",
    ] {
        assert!(routes.contains(route), "{route} was not exercised");
    }
    assert!(
        !routes.iter().any(|r| r.ends_with("unmatched")),
        "{routes:?}"
    );
}
