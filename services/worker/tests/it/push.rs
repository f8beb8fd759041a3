//! Push delivery of customer notices through FCM (the loopback fake): every device of the customer gets the
//! notice once, gone tokens are forgotten, failures are retried, and nothing happens without push configured.

use chrono::{TimeDelta, Utc};
use cybervpn_config::Secret;
use cybervpn_db::{DevicePlatform, Registration};
use cybervpn_domain::{CustomerId, TrafficLimit};
use cybervpn_jobs::catalog::{ExpiryReminders, PushNotification};
use cybervpn_push::fake::FcmFake;
use cybervpn_testkit::{Backend, on_both_backends};

use crate::rig::Rig;

async fn rig_with_push(backend: Backend, fake: &FcmFake) -> Rig {
    Rig::with(backend, |config| {
        config.push.fcm_project_id = Some("cybervpn-test".to_owned());
        config.push.fcm_service_account_json =
            Some(Secret::new(fake.service_account_json().to_owned()));
        config.push.fcm_api_url = fake.api_url();
    })
    .await
}

/// A customer whose subscription ends in 10 hours (so the reminder job notifies them), with these devices.
async fn customer_with_devices(rig: &Rig, name: &str, tokens: &[&str]) -> CustomerId {
    let customer = rig.customer(name).await;
    rig.subscription(
        customer,
        Utc::now() + TimeDelta::hours(10),
        TrafficLimit::Unlimited,
    )
    .await;
    for token in tokens {
        let txn = cybervpn_db::TransactionTrait::begin(rig.db.conn())
            .await
            .unwrap();
        cybervpn_db::Devices::on(&txn)
            .register(customer, DevicePlatform::Android, token, Utc::now())
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    customer
}

async fn reminder_body(rig: &Rig) -> String {
    let notices = rig
        .db
        .notifications()
        .of_kind("expiry_soon", 10)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    notices[0].body.clone()
}

on_both_backends!(a_customer_notice_reaches_every_device_of_the_customer_once);
async fn a_customer_notice_reaches_every_device_of_the_customer_once(backend: Backend) {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let rig = rig_with_push(backend, &fake).await;
    customer_with_devices(&rig, "trinity", &["phone-1", "tablet-1"]).await;
    // Another customer's device gets nothing: their subscription is far from ending.
    let other = rig.customer("smith").await;
    rig.live_subscription(other).await;
    rig.db
        .devices()
        .register(other, DevicePlatform::Ios, "smith-phone", Utc::now())
        .await
        .unwrap();

    rig.run_job(&ExpiryReminders { slot: 1 }, || async {
        fake.delivered().len() >= 2
    })
    .await;
    let body = reminder_body(&rig).await;
    assert!(body.contains("ends in 10 hours"), "{body}");
    let mut delivered = fake.delivered();
    delivered.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(delivered[0].token, "phone-1");
    assert_eq!(delivered[1].token, "tablet-1");
    for message in &delivered {
        assert_eq!(message.title, "CyberVPN");
        assert_eq!(message.body, body);
        assert_eq!(message.kind, "expiry_soon");
    }
    // One token exchange served both sends.
    assert_eq!(fake.exchanges(), 1);
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());

    // The same push job again (a redelivery): nobody is pushed twice.
    let id = rig
        .db
        .notifications()
        .of_kind("expiry_soon", 10)
        .await
        .unwrap()[0]
        .id;
    rig.run_job(
        &PushNotification {
            notification_id: id,
        },
        || async { rig.queue.depth("push_notification").await.unwrap() == 0 },
    )
    .await;
    assert_eq!(fake.delivered().len(), 2);
    assert!(rig.queue.dead(10).await.unwrap().is_empty());
}

on_both_backends!(an_unregistered_token_removes_the_device);
async fn an_unregistered_token_removes_the_device(backend: Backend) {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let rig = rig_with_push(backend, &fake).await;
    let customer = customer_with_devices(&rig, "neo", &["old-phone", "new-phone"]).await;
    fake.unregister("old-phone");

    rig.run_job(&ExpiryReminders { slot: 1 }, || async {
        rig.db.devices().for_customer(customer).await.unwrap().len() == 1
            && !fake.delivered().is_empty()
    })
    .await;
    let devices = rig.db.devices().for_customer(customer).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].token, "new-phone");
    let delivered = fake.delivered();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].token, "new-phone");
    assert!(rig.queue.dead(10).await.unwrap().is_empty());
}

on_both_backends!(a_failing_fcm_is_retried_until_the_notice_is_delivered);
async fn a_failing_fcm_is_retried_until_the_notice_is_delivered(backend: Backend) {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let rig = rig_with_push(backend, &fake).await;
    customer_with_devices(&rig, "morpheus", &["phone-1", "tablet-1"]).await;
    // The first two sends fail with 503: both devices miss the first attempt (or one does).
    fake.fail_sends(503, 2);

    rig.run_job(&ExpiryReminders { slot: 1 }, || async {
        fake.delivered().len() >= 2
    })
    .await;
    let mut tokens: Vec<String> = fake.delivered().into_iter().map(|d| d.token).collect();
    tokens.sort();
    assert_eq!(tokens, ["phone-1", "tablet-1"], "each device once");
    assert_eq!(
        fake.sends(),
        4,
        "two failures, then one delivery per device"
    );
    assert_eq!(
        fake.exchanges(),
        1,
        "the access token is reused across attempts"
    );
    assert!(rig.queue.dead(10).await.unwrap().is_empty());
}

on_both_backends!(without_push_configured_the_job_succeeds_without_calls);
async fn without_push_configured_the_job_succeeds_without_calls(backend: Backend) {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let rig = Rig::new(backend).await;
    customer_with_devices(&rig, "tank", &["phone-1"]).await;

    rig.run_job(&ExpiryReminders { slot: 1 }, || async {
        !rig.db
            .notifications()
            .of_kind("expiry_soon", 10)
            .await
            .unwrap()
            .is_empty()
            && rig.db.outbox().pending_count().await.unwrap() == 0
            && rig.queue.depth("push_notification").await.unwrap() == 0
    })
    .await;
    assert!(rig.queue.dead(10).await.unwrap().is_empty());
    assert_eq!(fake.sends() + fake.exchanges(), 0);
}

on_both_backends!(a_token_moves_to_its_new_owner_and_old_devices_are_dropped);
async fn a_token_moves_to_its_new_owner_and_old_devices_are_dropped(backend: Backend) {
    let rig = Rig::new(backend).await;
    let first = rig.customer("oracle").await;
    let second = rig.customer("seraph").await;
    let devices = rig.db.devices();
    let (device, registration) = devices
        .register(first, DevicePlatform::Android, "shared", Utc::now())
        .await
        .unwrap();
    assert_eq!(registration, Registration::Created);
    let (moved, registration) = devices
        .register(second, DevicePlatform::Ios, "shared", Utc::now())
        .await
        .unwrap();
    assert_eq!(registration, Registration::Updated);
    assert_eq!(moved.id, device.id);
    assert_eq!(moved.customer_id, second);
    assert_eq!(moved.platform, DevicePlatform::Ios);
    assert!(devices.for_customer(first).await.unwrap().is_empty());

    for n in 0..11 {
        devices
            .register(
                first,
                DevicePlatform::Web,
                &format!("browser-{n}"),
                Utc::now() + TimeDelta::seconds(n),
            )
            .await
            .unwrap();
    }
    let kept = devices.for_customer(first).await.unwrap();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].token, "browser-1", "the oldest was dropped");
    assert_eq!(devices.for_customer(second).await.unwrap().len(), 1);
}
