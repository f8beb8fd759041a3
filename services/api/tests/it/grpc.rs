//! The internal gRPC server: service-token authentication, health, reflection (v1 and v1alpha), and the bot's
//! methods against the real application code, on both backends.

use cybervpn_rpc::bot::v1::{self as pb, bot_service_client::BotServiceClient};
use cybervpn_testkit::{Backend, on_both_backends};
use tonic::{Code, Request, service::interceptor::InterceptedService, transport::Channel};

use crate::helpers::TestApp;

on_both_backends!(
    calls_without_the_service_token_are_unauthenticated,
    health_and_reflection_are_served,
    a_telegram_user_registers_takes_the_trial_and_is_referred_once,
    stars_are_paid_credited_once_and_refunded_once,
    config_support_and_refusals,
);

const TOKEN: &str = "bot-service-token-0123456789abcdef";

type Client = BotServiceClient<InterceptedService<Channel, cybervpn_rpc::BearerToken>>;

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.grpc.bot_token = Some(cybervpn_config::Secret::new(TOKEN.to_owned()));
        config.grpc.listen = "127.0.0.1:0".to_owned();
    })
    .await
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(app.grpc.clone().expect("the app serves gRPC"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn client(app: &TestApp) -> Client {
    BotServiceClient::with_interceptor(
        channel(app).await,
        cybervpn_rpc::BearerToken::new(TOKEN).unwrap(),
    )
}

fn user(id: i64, username: &str, language: &str) -> pb::TelegramUser {
    pb::TelegramUser {
        id,
        username: username.to_owned(),
        first_name: "Test".to_owned(),
        language_code: language.to_owned(),
    }
}

async fn register(
    client: &mut Client,
    user: pb::TelegramUser,
    referral: &str,
) -> pb::RegisterCustomerResponse {
    client
        .register_customer(pb::RegisterCustomerRequest {
            user: Some(user),
            referral_code: referral.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn calls_without_the_service_token_are_unauthenticated(backend: Backend) {
    let app = spawn(backend).await;
    let mut anonymous = BotServiceClient::new(channel(&app).await);
    let err = anonymous
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = BotServiceClient::with_interceptor(
        channel(&app).await,
        cybervpn_rpc::BearerToken::new("bot-service-token-0123456789abcdeX").unwrap(),
    );
    let err = wrong.list_plans(pb::ListPlansRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let plans = client(&app)
        .await
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plans.plans.len(), 16);
    assert!(
        plans
            .plans
            .iter()
            .all(|plan| plan.prices.iter().any(|p| p.currency == "XTR"))
    );
    app.stop().await;
}

async fn health_and_reflection_are_served(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let app = spawn(backend).await;
    let mut health = HealthClient::new(channel(&app).await);
    for service in ["", "cybervpn.bot.v1.BotService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }

    use tonic_reflection::pb::{v1, v1alpha};
    let mut reflection =
        v1::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"cybervpn.bot.v1.BotService".to_owned()),
        "{names:?}"
    );

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "cybervpn.bot.v1.BotService".to_owned(),
            ),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    assert!(
        matches!(
            answer.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
                if !files.file_descriptor_proto.is_empty()
        ),
        "{answer:?}"
    );
    app.stop().await;
}

async fn a_telegram_user_registers_takes_the_trial_and_is_referred_once(backend: Backend) {
    let app = spawn(backend).await;
    let mut client = client(&app).await;
    let inviter = register(&mut client, user(1001, "inviter", "ru-RU"), "").await;
    assert!(inviter.created);
    assert!(inviter.trial_available);
    let inviter_customer = inviter.customer.unwrap();
    assert_eq!(inviter_customer.language, "ru");
    assert_eq!(inviter_customer.username, "inviter");

    let friend = register(
        &mut client,
        user(1002, "", "en"),
        &inviter_customer.referral_code,
    )
    .await;
    assert!(friend.created);
    assert_eq!(friend.referral_refused, "");
    assert_eq!(friend.customer.unwrap().username, "tg_1002");
    let again = register(
        &mut client,
        user(1002, "", "en"),
        &inviter_customer.referral_code,
    )
    .await;
    assert!(!again.created, "a second /start finds the same customer");
    let stats = client
        .get_referral_stats(pb::GetReferralStatsRequest {
            telegram_user_id: 1001,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.referred_count, 1);
    assert_eq!(stats.days_earned, app.config.referral.bonus_days);
    assert_eq!(
        stats.start_parameter,
        format!("ref_{}", inviter_customer.referral_code)
    );
    // A self-referral is refused but the registration stands.
    let own = register(&mut client, user(1003, "self", ""), "NOSUCHCODE").await;
    assert!(own.created);
    assert!(!own.referral_refused.is_empty());

    let trial = client
        .activate_trial(pb::ActivateTrialRequest {
            telegram_user_id: 1002,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trial.subscription.unwrap().status, "active");
    let err = client
        .activate_trial(pb::ActivateTrialRequest {
            telegram_user_id: 1002,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let state = client
        .get_customer(pb::GetCustomerRequest {
            telegram_user_id: 1002,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!state.trial_available);
    assert!(state.subscription.is_some());
    let changed = client
        .set_language(pb::SetLanguageRequest {
            telegram_user_id: 1002,
            language: "ru".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.customer.unwrap().language, "ru");
    app.stop().await;
}

async fn stars_are_paid_credited_once_and_refunded_once(backend: Backend) {
    let app = spawn(backend).await;
    let mut client = client(&app).await;
    register(&mut client, user(2001, "payer", "en"), "").await;
    let plans = client
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap()
        .into_inner()
        .plans;
    let plan = plans.iter().find(|plan| plan.code == "pro_30").unwrap();
    let payment = client
        .create_payment(pb::CreatePaymentRequest {
            telegram_user_id: 2001,
            plan_id: plan.id.clone(),
            provider: "telegram_stars".to_owned(),
            currency: String::new(),
            promo_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    let invoice = payment.stars_invoice.unwrap();
    assert_eq!(invoice.currency, "XTR");
    assert_eq!(invoice.prices.len(), 1);
    let total = invoice.prices[0].amount;

    let checkout = |payer: i64, amount: i64| pb::PreCheckoutRequest {
        telegram_user_id: payer,
        invoice_payload: invoice.payload.clone(),
        currency: "XTR".to_owned(),
        total_amount: amount,
    };
    let ok = client
        .pre_checkout(checkout(2001, total))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.ok, "{ok:?}");
    let wrong_price = client
        .pre_checkout(checkout(2001, total - 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!wrong_price.ok && !wrong_price.error_message.is_empty());
    let other_payer = client
        .pre_checkout(checkout(9999, total))
        .await
        .unwrap()
        .into_inner();
    assert!(!other_payer.ok);

    let paid = pb::ConfirmStarsPaymentRequest {
        telegram_user_id: 2001,
        invoice_payload: invoice.payload.clone(),
        currency: "XTR".to_owned(),
        total_amount: total,
        telegram_payment_charge_id: "stxGRPC1".to_owned(),
        provider_payment_charge_id: String::new(),
    };
    let first = client
        .confirm_stars_payment(paid.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.outcome(), pb::PaymentOutcome::Credited);
    let expires = first.subscription.unwrap().expires_at;
    let second = client
        .confirm_stars_payment(paid)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.outcome(), pb::PaymentOutcome::AlreadyCredited);
    assert_eq!(
        second.subscription.unwrap().expires_at,
        expires,
        "credited once"
    );

    let refund = pb::RecordStarsRefundRequest {
        telegram_user_id: 2001,
        invoice_payload: invoice.payload.clone(),
        telegram_payment_charge_id: "stxGRPC1".to_owned(),
    };
    assert!(
        client
            .record_stars_refund(refund.clone())
            .await
            .unwrap()
            .into_inner()
            .reversed
    );
    assert!(
        !client
            .record_stars_refund(refund)
            .await
            .unwrap()
            .into_inner()
            .reversed
    );
    app.stop().await;
}

async fn config_support_and_refusals(backend: Backend) {
    let app = spawn(backend).await;
    let mut client = client(&app).await;
    let err = client
        .get_customer(pb::GetCustomerRequest {
            telegram_user_id: 3999,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let registered = register(&mut client, user(3001, "configured", "en"), "").await;
    let customer =
        cybervpn_domain::CustomerId::from_uuid(registered.customer.unwrap().id.parse().unwrap());

    let err = client
        .get_config(pb::GetConfigRequest {
            telegram_user_id: 3001,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "no subscription yet");
    let subscription = app.subscribe(customer, 30).await;
    let err = client
        .get_config(pb::GetConfigRequest {
            telegram_user_id: 3001,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not provisioned yet");
    app.db
        .subscriptions()
        .set_panel(
            subscription.id,
            Some(&cybervpn_domain::PanelIdentity {
                user_id: 77,
                short_uuid: "abc123".to_owned(),
                subscription_url: "https://sub.example.com/abc123".to_owned(),
            }),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let config = client
        .get_config(pb::GetConfigRequest {
            telegram_user_id: 3001,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.subscription_url, "https://sub.example.com/abc123");
    assert!(config.qr_png.starts_with(b"\x89PNG"), "a PNG");

    let ticket = client
        .create_support_request(pb::CreateSupportRequestRequest {
            telegram_user_id: 3001,
            text: "I cannot connect".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ticket.id.is_empty());
    let kinds: Vec<String> = app.outbox().await.into_iter().map(|m| m.job).collect();
    assert!(
        kinds.contains(&"deliver_notification".to_owned()),
        "{kinds:?}"
    );
    let err = client
        .create_support_request(pb::CreateSupportRequestRequest {
            telegram_user_id: 3001,
            text: " ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // At Gold (180 paid days in a row) a request is flagged for priority support.
    let now = chrono::Utc::now();
    let mut account = app.db.loyalty().account(customer).await.unwrap();
    account.tenure.credit(180, now);
    app.db.loyalty().save(&account, now).await.unwrap();
    client
        .create_support_request(pb::CreateSupportRequestRequest {
            telegram_user_id: 3001,
            text: "Still cannot connect".to_owned(),
        })
        .await
        .unwrap();
    let requests = app
        .db
        .notifications()
        .of_kind("support_request", 10)
        .await
        .unwrap();
    let body = |needle: &str| {
        requests
            .iter()
            .find(|n| n.body.contains(needle))
            .map(|n| n.body.clone())
            .unwrap()
    };
    assert!(body("I cannot connect").starts_with("Support request from"));
    assert!(
        body("Still cannot connect").starts_with("⭐ PRIORITY (gold loyalty)"),
        "{requests:?}"
    );

    // A banned customer is refused.
    let mut record = app.db.customers().get(customer).await.unwrap();
    record.status = cybervpn_domain::CustomerStatus::Disabled;
    app.db.customers().update(&record).await.unwrap();
    let err = client
        .get_customer(Request::new(pb::GetCustomerRequest {
            telegram_user_id: 3001,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    app.stop().await;
}
