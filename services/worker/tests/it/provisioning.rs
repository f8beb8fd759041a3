use chrono::{TimeDelta, Utc};
use cybervpn_domain::{CustomerStatus, SubscriptionStatus, TrafficBytes, TrafficLimit};
use cybervpn_jobs::catalog::ProvisionSubscription;
use cybervpn_testkit::{Backend, on_both_backends};
use cybervpn_worker::{ProvisionOutcome, provision};

use crate::rig::Rig;

on_both_backends!(a_live_subscription_gets_exactly_one_panel_user_with_its_terms);
async fn a_live_subscription_gets_exactly_one_panel_user_with_its_terms(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("neo").await;
    let subscription = rig
        .subscription(
            customer,
            Utc::now() + TimeDelta::days(30),
            TrafficLimit::Limited(TrafficBytes::from_bytes(50 << 30)),
        )
        .await;

    let outcome = provision(&rig.services, subscription.id).await.unwrap();
    assert_eq!(outcome, ProvisionOutcome::Created);
    let user = rig.panel_user(customer).expect("panel user created");
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["trafficLimitBytes"], 50_i64 << 30);
    assert_eq!(user["trafficLimitStrategy"], "NO_RESET");
    assert_eq!(
        user["hwidDeviceLimit"], 2,
        "default device limit without a plan"
    );
    assert_eq!(user["tag"], "CYBERVPN");
    assert_eq!(user["activeInternalSquads"][0]["name"], "Default-Squad");
    let expire: chrono::DateTime<Utc> = user["expireAt"].as_str().unwrap().parse().unwrap();
    assert!((expire - subscription.expires_at).num_milliseconds().abs() < 1000);

    let stored = rig.db.subscriptions().get(subscription.id).await.unwrap();
    let panel = stored.panel.expect("panel identity stored");
    assert_eq!(panel.user_id, user["id"].as_i64().unwrap());
    assert_eq!(panel.short_uuid, user["shortUuid"].as_str().unwrap());
    assert_eq!(
        panel.subscription_url,
        user["subscriptionUrl"].as_str().unwrap()
    );

    // Again: nothing to change, no second user, no PATCH.
    let again = provision(&rig.services, subscription.id).await.unwrap();
    assert_eq!(again, ProvisionOutcome::Unchanged);
    assert_eq!(rig.calls("POST", "/api/users"), 1);
    assert_eq!(rig.calls("PATCH", "/api/users"), 0);
    assert_eq!(rig.fake.users().len(), 1);
}

on_both_backends!(an_interrupted_create_is_adopted_by_username_not_duplicated);
async fn an_interrupted_create_is_adopted_by_username_not_duplicated(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("trinity").await;
    let subscription = rig.live_subscription(customer).await;
    // The first attempt created the user, then the worker died before storing its id.
    provision(&rig.services, subscription.id).await.unwrap();
    rig.db
        .subscriptions()
        .set_panel(subscription.id, None, Utc::now())
        .await
        .unwrap();

    let outcome = provision(&rig.services, subscription.id).await.unwrap();
    assert_eq!(outcome, ProvisionOutcome::Unchanged);
    assert_eq!(rig.fake.users().len(), 1, "no duplicate panel user");
    let stored = rig.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(
        stored.panel.unwrap().user_id,
        rig.panel_user(customer).unwrap()["id"].as_i64().unwrap()
    );
}

on_both_backends!(a_user_deleted_in_the_panel_is_repaired_only_while_live);
async fn a_user_deleted_in_the_panel_is_repaired_only_while_live(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("morpheus").await;
    let subscription = rig.live_subscription(customer).await;
    provision(&rig.services, subscription.id).await.unwrap();
    let first = rig.panel_user(customer).unwrap()["id"].as_i64().unwrap();
    assert!(rig.fake.delete_user_out_of_band(first));

    assert_eq!(
        provision(&rig.services, subscription.id).await.unwrap(),
        ProvisionOutcome::Created
    );
    let second = rig.panel_user(customer).unwrap()["id"].as_i64().unwrap();
    assert_ne!(first, second);
    assert_eq!(
        rig.db
            .subscriptions()
            .get(subscription.id)
            .await
            .unwrap()
            .panel
            .unwrap()
            .user_id,
        second
    );

    // Once the subscription has ended, a deleted user stays deleted and our link to it is dropped.
    let mut ended = rig.db.subscriptions().get(subscription.id).await.unwrap();
    ended.status = SubscriptionStatus::Expired;
    ended.expires_at = Utc::now() - TimeDelta::hours(1);
    rig.db.subscriptions().save(&ended).await.unwrap();
    assert!(rig.fake.delete_user_out_of_band(second));
    assert_eq!(
        provision(&rig.services, subscription.id).await.unwrap(),
        ProvisionOutcome::Skipped
    );
    assert!(rig.panel_user(customer).is_none());
    assert!(
        rig.db
            .subscriptions()
            .get(subscription.id)
            .await
            .unwrap()
            .panel
            .is_none()
    );
}

on_both_backends!(bans_expiry_and_extensions_reach_the_panel_user);
async fn bans_expiry_and_extensions_reach_the_panel_user(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("tank").await;
    let subscription = rig.live_subscription(customer).await;
    provision(&rig.services, subscription.id).await.unwrap();

    let mut account = rig.db.customers().get(customer).await.unwrap();
    account.status = CustomerStatus::Disabled;
    rig.db.customers().update(&account).await.unwrap();
    assert_eq!(
        provision(&rig.services, subscription.id).await.unwrap(),
        ProvisionOutcome::Updated
    );
    assert_eq!(rig.panel_user(customer).unwrap()["status"], "DISABLED");

    account.status = CustomerStatus::Active;
    rig.db.customers().update(&account).await.unwrap();
    let mut extended = rig.db.subscriptions().get(subscription.id).await.unwrap();
    extended.extend_by(10, Utc::now()).unwrap();
    rig.db.subscriptions().save(&extended).await.unwrap();
    provision(&rig.services, subscription.id).await.unwrap();
    let user = rig.panel_user(customer).unwrap();
    assert_eq!(user["status"], "ACTIVE");
    let expire: chrono::DateTime<Utc> = user["expireAt"].as_str().unwrap().parse().unwrap();
    assert!((expire - extended.expires_at).num_milliseconds().abs() < 1000);

    // An ended subscription is disabled on the panel, not deleted.
    let mut ended = extended;
    ended.status = SubscriptionStatus::Expired;
    ended.expires_at = Utc::now() - TimeDelta::minutes(1);
    rig.db.subscriptions().save(&ended).await.unwrap();
    provision(&rig.services, subscription.id).await.unwrap();
    assert_eq!(rig.panel_user(customer).unwrap()["status"], "DISABLED");
}

on_both_backends!(an_outbox_row_reaches_the_panel_through_relay_queue_and_worker);
async fn an_outbox_row_reaches_the_panel_through_relay_queue_and_worker(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("switch").await;
    let subscription = rig.live_subscription(customer).await;
    let job = ProvisionSubscription {
        subscription_id: subscription.id.as_uuid(),
    };
    // Written twice, as a relay that died before marking the first sent would: one effect.
    for _ in 0..2 {
        rig.db
            .outbox()
            .push("provision_subscription", &job, None, Utc::now())
            .await
            .unwrap();
    }
    rig.run_until(
        "the panel user exists and the outbox is drained",
        || async {
            rig.panel_user(customer).is_some()
                && rig.db.outbox().pending_count().await.unwrap() == 0
        },
    )
    .await;
    // The two jobs may race to create; the loser meets A019 and adopts the winner's user.
    assert_eq!(rig.fake.users().len(), 1);
    let stored = rig.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(
        stored.panel.unwrap().user_id,
        rig.panel_user(customer).unwrap()["id"].as_i64().unwrap()
    );
}

on_both_backends!(a_panel_outage_is_retried_with_an_error_naming_the_operation);
async fn a_panel_outage_is_retried_with_an_error_naming_the_operation(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("apoc").await;
    let subscription = rig.live_subscription(customer).await;
    rig.fake.inject(cybervpn_panel_fake::Fault::Status {
        status: 503,
        times: 3,
        path_prefix: Some("/api/users".to_owned()),
    });
    let err = provision(&rig.services, subscription.id).await.unwrap_err();
    assert!(matches!(err, cybervpn_jobs::JobError::Retry(_)), "{err:?}");
    assert!(err.message().contains("remnawave"), "{}", err.message());
    // The fault is spent: the retry succeeds.
    assert_eq!(
        provision(&rig.services, subscription.id).await.unwrap(),
        ProvisionOutcome::Created
    );
}

on_both_backends!(a_newer_subscription_takes_over_the_customers_panel_user);
async fn a_newer_subscription_takes_over_the_customers_panel_user(backend: Backend) {
    let rig = Rig::new(backend).await;
    let customer = rig.customer("niobe").await;
    let old = rig.live_subscription(customer).await;
    provision(&rig.services, old.id).await.unwrap();
    // Staff disabled the old one; a new purchase started another that ends later.
    let mut disabled = rig.db.subscriptions().get(old.id).await.unwrap();
    disabled.status = SubscriptionStatus::Disabled;
    rig.db.subscriptions().save(&disabled).await.unwrap();
    let new = rig
        .subscription(
            customer,
            Utc::now() + TimeDelta::days(60),
            TrafficLimit::Unlimited,
        )
        .await;

    // The old one no longer drives the panel user: it is not the current subscription.
    assert_eq!(
        provision(&rig.services, old.id).await.unwrap(),
        ProvisionOutcome::Skipped
    );
    provision(&rig.services, new.id).await.unwrap();
    let user = rig.panel_user(customer).unwrap();
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(rig.fake.users().len(), 1);
    let moved = rig.db.subscriptions().get(new.id).await.unwrap();
    assert_eq!(moved.panel.unwrap().user_id, user["id"].as_i64().unwrap());
    assert!(
        rig.db
            .subscriptions()
            .get(old.id)
            .await
            .unwrap()
            .panel
            .is_none()
    );
}
