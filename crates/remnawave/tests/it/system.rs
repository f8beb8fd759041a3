//! System statistics, version check, health and public subscription info.

use cybervpn_remnawave::UserStatus;

use crate::helpers::TestPanel;

#[tokio::test]
async fn stats_and_bandwidth_parse_their_counters() {
    let t = TestPanel::start().await;
    let user = t.create("cust_stats").await;
    t.fake.set_user_traffic(user.id, 5_000);
    let stats = t.panel.system_stats().await.unwrap();
    assert_eq!(stats.users.total_users, 1);
    assert_eq!(stats.users.status_counts.get("ACTIVE"), Some(&1));
    assert_eq!(stats.nodes.total_online, 3);
    assert_eq!(stats.nodes.total_bytes_lifetime, 5_000);
    assert!(stats.memory.total > 0);

    let bandwidth = t.panel.bandwidth().await.unwrap();
    assert_eq!(bandwidth.last_two_days.current, 5_000);
    assert_eq!(bandwidth.current_year.difference, 5_000);
}

#[tokio::test]
async fn version_health_and_metadata() {
    let t = TestPanel::start().await;
    let metadata = t.panel.check_version().await.unwrap();
    assert!(metadata.major().unwrap() >= 3);
    t.panel.health().await.unwrap();
}

#[tokio::test]
async fn subscription_info_lists_links() {
    let t = TestPanel::start().await;
    let user = t.create("cust_sub").await;
    t.fake.set_user_traffic(user.id, 2_048);
    let info = t
        .panel
        .subscription_info(&user.short_uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.subscription_url, user.subscription_url);
    assert!(!info.links.is_empty());
    assert!(info.links.iter().all(|link| link.starts_with("vless://")));
    assert!(!info.ss_conf_links.is_empty());
    let sub_user = info.user.unwrap();
    assert_eq!(sub_user.username, "cust_sub");
    assert_eq!(sub_user.user_status, UserStatus::Active);
    assert_eq!(sub_user.traffic_used_bytes, 2_048);
    assert!(sub_user.days_left >= 29);

    assert_eq!(
        t.panel.subscription_info("unknownshort").await.unwrap(),
        None
    );
}
