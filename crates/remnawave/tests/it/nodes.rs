//! Nodes and internal squads.

use cybervpn_remnawave::PanelError;
use uuid::Uuid;

use crate::helpers::TestPanel;

#[tokio::test]
async fn nodes_are_listed_and_fetched() {
    let t = TestPanel::start().await;
    let nodes = t.panel.nodes().await.unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(cybervpn_remnawave::Node::is_online));
    let first = &nodes[0];
    assert_eq!(first.country_code.as_deref(), Some("NL"));
    assert!(first.versions.as_ref().unwrap().xray.is_some());
    assert_eq!(first.system.as_ref().unwrap().stats.load_avg.len(), 3);

    let fetched = t.panel.node(first.uuid).await.unwrap().unwrap();
    assert_eq!(fetched.name, first.name);
    assert_eq!(t.panel.node(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn nodes_are_disabled_enabled_and_restarted() {
    let t = TestPanel::start().await;
    let node = t.panel.nodes().await.unwrap().remove(0);
    let disabled = t.panel.disable_node(node.uuid).await.unwrap();
    assert!(disabled.is_disabled && !disabled.is_online());
    let enabled = t.panel.enable_node(node.uuid).await.unwrap();
    assert!(enabled.is_online());
    t.panel.restart_node(node.uuid, true).await.unwrap();
    let restart = t
        .exchanges_of("POST", "/api/nodes/{uuid}/actions/restart")
        .remove(0);
    assert_eq!(restart.status, 202);
    assert_eq!(restart.request_body.unwrap()["forceRestart"], true);
    let err = t
        .panel
        .restart_node(Uuid::new_v4(), false)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn squads_resolve_by_name_or_uuid() {
    let t = TestPanel::start().await;
    let squads = t.panel.internal_squads().await.unwrap();
    let expected = t.fake.squads();
    assert_eq!(squads.len(), expected.len());
    let (premium_uuid, premium_name) = expected[1].clone();
    let resolved = t
        .panel
        .resolve_squads(&[premium_name.clone(), expected[0].0.clone()])
        .await
        .unwrap();
    assert_eq!(
        resolved,
        [
            premium_uuid.parse::<Uuid>().unwrap(),
            expected[0].0.parse().unwrap()
        ]
    );
    let err = t
        .panel
        .resolve_squads(&["Default-Squad", "Platinum"])
        .await
        .unwrap_err();
    assert!(matches!(err, PanelError::Invalid { .. }));
    assert!(err.to_string().contains("`Platinum`"), "{err}");
}
