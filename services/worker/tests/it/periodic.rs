use chrono::{TimeDelta, Utc};
use cybervpn_domain::{ServerStatus, Subscription, SubscriptionStatus, TrafficBytes, TrafficLimit};
use cybervpn_jobs::catalog::{
    BandwidthStats, DisableExpired, ExpiryReminders, FullReconcile, MonthlyTrafficReset,
    NodeHealthCheck, NodeSync, ServerConfigs, ServerGeolocation, UserTrafficStats,
};
use cybervpn_remnawave::{UpdateUser, UserKey};
use cybervpn_testkit::{Backend, on_both_backends};
use cybervpn_worker::provision;

use crate::rig::Rig;

on_both_backends!(nodes_are_synced_located_and_status_changes_notify_the_admins_once);
async fn nodes_are_synced_located_and_status_changes_notify_the_admins_once(backend: Backend) {
    let rig = Rig::new(backend).await;
    let nodes = rig.fake.nodes();
    rig.run_job(&NodeSync { slot: 1 }, || async {
        rig.db.servers().list().await.unwrap().len() == nodes.len()
    })
    .await;
    let servers = rig.db.servers().list().await.unwrap();
    assert!(servers.iter().all(|s| s.status == ServerStatus::Online));

    let lost = nodes[0]["uuid"].as_str().unwrap().to_owned();
    rig.fake.set_node_connected(&lost, false);
    let offline =
        || async {
            rig.db.servers().list().await.unwrap().iter().any(|s| {
                s.panel_uuid.as_deref() == Some(&lost) && s.status == ServerStatus::Offline
            })
        };
    rig.run_job(&NodeHealthCheck { slot: 1 }, offline).await;
    // A second check sees no change: still one notification.
    rig.run_job(&NodeHealthCheck { slot: 2 }, || async { true })
        .await;
    let notices = rig
        .db
        .notifications()
        .of_kind("node_status", 10)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].body.contains("online → offline"),
        "{}",
        notices[0].body
    );

    rig.run_job(&ServerGeolocation { slot: 1 }, || async {
        rig.db
            .servers()
            .list()
            .await
            .unwrap()
            .iter()
            .all(|s| s.latitude.is_some() && s.longitude.is_some())
    })
    .await;
}

on_both_backends!(ended_subscriptions_are_expired_and_their_panel_users_disabled);
async fn ended_subscriptions_are_expired_and_their_panel_users_disabled(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("dozer").await;
    let subscription = rig.live_subscription(customer).await;
    provision(&rig.services, subscription.id).await.unwrap();
    let mut ended = rig.db.subscriptions().get(subscription.id).await.unwrap();
    ended.expires_at = Utc::now() - TimeDelta::minutes(5);
    rig.db.subscriptions().save(&ended).await.unwrap();

    rig.run_job(&DisableExpired { slot: 1 }, || async {
        rig.panel_user(customer).unwrap()["status"] == "DISABLED"
    })
    .await;
    let stored = rig.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(stored.status, SubscriptionStatus::Expired);
}

on_both_backends!(each_expiry_reminder_is_recorded_once);
async fn each_expiry_reminder_is_recorded_once(backend: Backend) {
    let rig = Rig::new(backend).await;
    let soon = rig.customer("mouse").await;
    rig.subscription(
        soon,
        Utc::now() + TimeDelta::hours(10),
        TrafficLimit::Unlimited,
    )
    .await;
    let ended = rig.customer("cypher").await;
    let mut gone = rig.live_subscription(ended).await;
    gone.expires_at = Utc::now() - TimeDelta::hours(2);
    gone.status = SubscriptionStatus::Expired;
    rig.db.subscriptions().save(&gone).await.unwrap();
    let far = rig.customer("niobe").await;
    rig.subscription(
        far,
        Utc::now() + TimeDelta::days(20),
        TrafficLimit::Unlimited,
    )
    .await;

    for slot in 1..=2 {
        rig.run_job(&ExpiryReminders { slot }, || async {
            reminders(&rig).await.len() >= 2
        })
        .await;
    }
    let reminders = reminders(&rig).await;
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    let bodies: Vec<&str> = reminders.iter().map(|n| n.body.as_str()).collect();
    assert!(
        bodies.iter().any(|b| b.contains("ends in 10 hours")),
        "{bodies:?}"
    );
    assert!(bodies.iter().any(|b| b.contains("has ended")), "{bodies:?}");
}

/// The reminders recorded so far: ends-soon and ended.
async fn reminders(rig: &Rig) -> Vec<cybervpn_db::Notification> {
    let mut all = Vec::new();
    for kind in ["expiry_soon", "expiry_ended"] {
        all.extend(rig.db.notifications().of_kind(kind, 10).await.unwrap());
    }
    all
}

on_both_backends!(traffic_is_copied_from_the_panel);
async fn traffic_is_copied_from_the_panel(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("ghost").await;
    let subscription = rig.live_subscription(customer).await;
    provision(&rig.services, subscription.id).await.unwrap();
    let id = rig.panel_user(customer).unwrap()["id"].as_i64().unwrap();
    rig.fake.set_user_traffic(id, 123_456_789);
    rig.run_job(&UserTrafficStats { slot: 1 }, || async {
        rig.db
            .subscriptions()
            .get(subscription.id)
            .await
            .unwrap()
            .traffic_used
            == TrafficBytes::from_bytes(123_456_789)
    })
    .await;
}

on_both_backends!(reconciliation_repairs_drift_and_missing_users);
async fn reconciliation_repairs_drift_and_missing_users(backend: Backend) {
    let rig = Rig::new(backend).await;
    let drifting = rig.customer("seraph").await;
    let subscription = rig.live_subscription(drifting).await;
    provision(&rig.services, subscription.id).await.unwrap();
    let panel = rig.services.panel.clone().unwrap();
    let id = rig.panel_user(drifting).unwrap()["id"].as_i64().unwrap();
    let mut edit = UpdateUser::new(UserKey::Id(id));
    edit.expire_at = Some(Utc::now() + TimeDelta::days(400));
    panel.update_user(&edit).await.unwrap();
    let missing = rig.customer("oracle").await;
    rig.live_subscription(missing).await;

    let expected = subscription.expires_at;
    rig.run_job(&FullReconcile { slot: 1 }, || async {
        let repaired = rig.panel_user(drifting).is_some_and(|u| {
            let at: chrono::DateTime<Utc> = u["expireAt"].as_str().unwrap().parse().unwrap();
            (at - expected).num_milliseconds().abs() < 1000
        });
        repaired && rig.panel_user(missing).is_some()
    })
    .await;
    let (report, _) = rig
        .db
        .snapshots()
        .get::<serde_json::Value>("reconcile")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report["repaired"], 2, "{report}");
    assert_eq!(report["panel_users"], 1, "{report}");
}

on_both_backends!(monthly_reset_zeroes_traffic_once_per_month);
async fn monthly_reset_zeroes_traffic_once_per_month(backend: Backend) {
    let rig = Rig::new(backend).await;
    let plan = rig
        .db
        .plans()
        .list_active()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.traffic_limit != TrafficLimit::Unlimited)
        .expect("a seeded plan with a traffic allowance");
    let customer = rig.customer("link").await;
    let now = Utc::now();
    let mut subscription =
        Subscription::start(customer, Some(plan.id), 30, plan.traffic_limit, None, now).unwrap();
    subscription.traffic_used = TrafficBytes::from_bytes(5 << 30);
    subscription.status = SubscriptionStatus::Limited;
    rig.db.subscriptions().create(&subscription).await.unwrap();
    provision(&rig.services, subscription.id).await.unwrap();

    rig.run_job(&MonthlyTrafficReset { slot: 42 }, || async {
        let s = rig.db.subscriptions().get(subscription.id).await.unwrap();
        s.traffic_used == TrafficBytes::ZERO && s.status == SubscriptionStatus::Active
    })
    .await;
    assert_eq!(
        rig.calls("POST", "/api/users/{id}/actions/reset-traffic"),
        1
    );
    // The same month again (a redelivered job): no second reset on the panel.
    rig.run_job(&MonthlyTrafficReset { slot: 42 }, || async { true })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        rig.calls("POST", "/api/users/{id}/actions/reset-traffic"),
        1
    );
}

on_both_backends!(panel_statistics_and_squads_are_snapshotted);
async fn panel_statistics_and_squads_are_snapshotted(backend: Backend) {
    let rig = Rig::new(backend).await;
    rig.run_job(&BandwidthStats { slot: 1 }, || async {
        let snapshots = rig.db.snapshots();
        snapshots
            .get::<serde_json::Value>("bandwidth")
            .await
            .unwrap()
            .is_some()
            && snapshots
                .get::<serde_json::Value>("panel_stats")
                .await
                .unwrap()
                .is_some()
    })
    .await;
    let (bandwidth, _) = rig
        .db
        .snapshots()
        .get::<serde_json::Value>("bandwidth")
        .await
        .unwrap()
        .unwrap();
    assert!(
        bandwidth["last_two_days"]["current"].is_i64(),
        "{bandwidth}"
    );
    let (stats, _) = rig
        .db
        .snapshots()
        .get::<serde_json::Value>("panel_stats")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats["nodes_online"], 3, "{stats}");

    rig.run_job(&ServerConfigs { slot: 1 }, || async {
        rig.db
            .snapshots()
            .get::<serde_json::Value>("squads")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let (squads, _) = rig
        .db
        .snapshots()
        .get::<serde_json::Value>("squads")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = squads
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default-Squad", "Premium"]);
}
