//! The FCM client against the loopback fake: the service-account sign-in, the cached access token, and how
//! FCM's answers are mapped.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use cybervpn_push::{Fcm, FcmConfig, PushError, PushMessage, fake::FcmFake};

async fn client(fake: &FcmFake) -> Fcm {
    Fcm::new(&FcmConfig {
        project_id: "cybervpn-test".to_owned(),
        service_account_json: fake.service_account_json().to_owned(),
        api_url: fake.api_url(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn message(token: &str) -> PushMessage<'_> {
    PushMessage {
        token,
        body: "Your subscription is active",
        kind: "payment_credited",
    }
}

#[tokio::test]
async fn one_token_exchange_serves_several_sends() {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let fcm = client(&fake).await;
    fcm.send(&message("device-a")).await.unwrap();
    fcm.send(&message("device-b")).await.unwrap();
    fcm.clone().send(&message("device-c")).await.unwrap();
    assert_eq!(fake.refused(), Vec::<String>::new());
    assert_eq!(fake.exchanges(), 1);
    let delivered = fake.delivered();
    assert_eq!(
        delivered
            .iter()
            .map(|d| d.token.as_str())
            .collect::<Vec<_>>(),
        ["device-a", "device-b", "device-c"]
    );
    assert_eq!(delivered[0].title, "CyberVPN");
    assert_eq!(delivered[0].body, "Your subscription is active");
    assert_eq!(delivered[0].kind, "payment_credited");
}

#[tokio::test]
async fn a_revoked_access_token_is_refreshed_once() {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let fcm = client(&fake).await;
    fcm.send(&message("device-a")).await.unwrap();
    fake.revoke_access_tokens();
    fcm.send(&message("device-a")).await.unwrap();
    assert_eq!(fake.exchanges(), 2);
    assert_eq!(fake.delivered().len(), 2);
}

#[tokio::test]
async fn fcm_answers_become_what_to_do_next() {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let fcm = client(&fake).await;
    fake.unregister("gone");
    assert!(matches!(
        fcm.send(&message("gone")).await,
        Err(PushError::InvalidToken(_))
    ));
    assert!(matches!(
        fcm.send(&message("")).await,
        Err(PushError::InvalidToken(_))
    ));
    fake.fail_sends(503, 1);
    assert!(matches!(
        fcm.send(&message("device-a")).await,
        Err(PushError::Transient(_))
    ));
    fake.fail_sends(429, 1);
    assert!(matches!(
        fcm.send(&message("device-a")).await,
        Err(PushError::Transient(_))
    ));
    fcm.send(&message("device-a")).await.unwrap();
    assert_eq!(fake.delivered().len(), 1);
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_know_is_refused() {
    let fake = FcmFake::start("cybervpn-test").await.unwrap();
    let other = FcmFake::start("cybervpn-test").await.unwrap();
    // The other fake's key, but this fake's token endpoint: the signature does not verify.
    let mut account: serde_json::Value =
        serde_json::from_str(other.service_account_json()).unwrap();
    let mine: serde_json::Value = serde_json::from_str(fake.service_account_json()).unwrap();
    account["token_uri"] = mine["token_uri"].clone();
    let fcm = Fcm::new(&FcmConfig {
        project_id: "cybervpn-test".to_owned(),
        service_account_json: account.to_string(),
        api_url: fake.api_url(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    assert!(matches!(
        fcm.send(&message("device-a")).await,
        Err(PushError::Permanent(_))
    ));
    assert_eq!(fake.refused(), ["bad RS256 signature"]);
    assert!(fake.delivered().is_empty());
}
