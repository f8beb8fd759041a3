//! The payments sweep: unpaid payments expire, and a CryptoBot invoice paid without a webhook is credited.

use chrono::{SubsecRound, TimeDelta, Utc};
use cybervpn_config::Secret;
use cybervpn_domain::{Currency, Payment, PaymentId, PaymentProvider, PaymentStatus};
use cybervpn_jobs::catalog::PaymentsSweep;
use cybervpn_payments::{
    cryptobot::{CreateInvoice, CryptoBot, CryptoBotConfig},
    fake::cryptobot::CryptoBotFake,
};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::rig::Rig;

on_both_backends!(the_sweep_expires_unpaid_payments_and_credits_missed_webhooks);
async fn the_sweep_expires_unpaid_payments_and_credits_missed_webhooks(backend: Backend) {
    let gateway = CryptoBotFake::start("1234:cryptobot-token").await.unwrap();
    let rig = Rig::with(backend, |config| {
        config.payments.cryptobot_token = Some(Secret::new(gateway.token().to_owned()));
        config.payments.cryptobot_api_url = gateway.url();
    })
    .await;
    let plan = rig.db.plans().list_active().await.unwrap().remove(0);
    let price = *plan
        .prices()
        .iter()
        .find(|p| p.currency() == Currency::Usd)
        .unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let payment = |customer, expires_at| Payment {
        id: PaymentId::new(),
        customer_id: customer,
        plan_id: Some(plan.id),
        amount: price,
        status: PaymentStatus::Pending,
        provider: PaymentProvider::CryptoBot,
        provider_payment_id: None,
        days: u32::from(plan.duration.days()),
        invoice_url: None,
        expires_at: Some(expires_at),
        completed_at: None,
        review_reason: None,
        promo_code_id: None,
        refunded_at: None,
        refund_reason: None,
        created_at: now,
        updated_at: now,
    };
    let paying = rig.customer("buyer").await;
    let paid = rig
        .db
        .payments()
        .create(payment(paying, now + TimeDelta::hours(1)))
        .await
        .unwrap();
    let client = CryptoBot::new(
        CryptoBotConfig {
            api_url: gateway.url(),
            ..CryptoBotConfig::new(gateway.token())
        },
        cybervpn_telemetry::Metrics::new().unwrap().external,
    )
    .unwrap();
    let invoice = client
        .create_invoice(&CreateInvoice::new(price, paid.id.as_uuid().to_string()))
        .await
        .unwrap();
    rig.db
        .payments()
        .set_invoice(
            paid.id,
            &invoice.invoice_id.to_string(),
            Some(&invoice.bot_invoice_url),
            now,
        )
        .await
        .unwrap();
    assert!(
        gateway.mark_paid(invoice.invoice_id),
        "paid, but no webhook was delivered"
    );
    let forgetting = rig.customer("forgetful").await;
    let stale = rig
        .db
        .payments()
        .create(payment(forgetting, now - TimeDelta::minutes(1)))
        .await
        .unwrap();

    rig.run_job(&PaymentsSweep { slot: 1 }, || async {
        let payments = rig.db.payments();
        payments.get(paid.id).await.unwrap().status == PaymentStatus::Completed
            && payments.get(stale.id).await.unwrap().status == PaymentStatus::Expired
    })
    .await;
    let subscription = rig
        .db
        .subscriptions()
        .current_for(paying)
        .await
        .unwrap()
        .unwrap();
    assert!(subscription.expires_at > now + TimeDelta::days(i64::from(plan.duration.days()) - 1));
    assert!(
        rig.db
            .subscriptions()
            .current_for(forgetting)
            .await
            .unwrap()
            .is_none()
    );

    // Swept again: nothing more is credited.
    rig.run_job(&PaymentsSweep { slot: 2 }, || async { true })
        .await;
    let again = rig
        .db
        .subscriptions()
        .current_for(paying)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.expires_at, subscription.expires_at);
}
