//! The internal gRPC server: `cybervpn.bot.v1.BotService`, `AdminService` and `DeliveryService` for the
//! Telegram bot, `grpc.health.v1` and server reflection (`v1` and `v1alpha`), behind the per-service token
//! check.
//!
//! Every method calls the same application functions as the HTTP routes; domain errors map to `Status` by
//! their catalogue code.

use std::net::SocketAddr;

use chrono::{SubsecRound, Utc};
use cybervpn_commerce::{Completion, checkout, stars};
use cybervpn_db::{Audience, Customers, DbError, TransactionTrait};
use cybervpn_domain::{
    Customer, CustomerId, ErrorCode, Language, PaymentProvider, PromoBenefit, Subscription,
    TelegramId,
};
use cybervpn_rpc::{
    ServiceAuth,
    bot::v1::{self as pb, bot_service_server::BotService},
};
use tonic::{Request, Response, Status};

mod admin;
mod catalog;
mod delivery;
mod notices;
mod promo;

pub(crate) use admin::{LINK_CODE_TTL, link_code_hash};

use crate::{
    error::ApiError,
    routes::{customer_subscriptions, invites, payments, referral, telegram_auth, trial},
    state::AppState,
};

/// The catalogue code's gRPC status; exhaustive, so a new code must choose one.
pub(crate) const fn grpc_code(code: ErrorCode) -> tonic::Code {
    use tonic::Code;
    match code {
        ErrorCode::ValidationFailed
        | ErrorCode::MalformedJson
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType => Code::InvalidArgument,
        ErrorCode::RouteNotFound | ErrorCode::MethodNotAllowed => Code::Unimplemented,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Conflict => Code::AlreadyExists,
        ErrorCode::InvalidStateTransition => Code::FailedPrecondition,
        ErrorCode::Unauthorized
        | ErrorCode::InvalidCredentials
        | ErrorCode::TokenExpired
        | ErrorCode::TokenInvalid
        | ErrorCode::RefreshTokenReused
        | ErrorCode::InvalidTwoFactorCode => Code::Unauthenticated,
        ErrorCode::Forbidden | ErrorCode::AccountDisabled | ErrorCode::TwoFactorSetupRequired => {
            Code::PermissionDenied
        }
        ErrorCode::RateLimited | ErrorCode::AccountLocked => Code::ResourceExhausted,
        ErrorCode::ServiceUnavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        if err.code() == ErrorCode::Internal {
            tracing::error!(error = ?err, "gRPC call failed");
        }
        Self::new(grpc_code(err.code()), err.detail())
    }
}

pub(crate) fn status(err: impl Into<ApiError>) -> Status {
    err.into().into()
}

/// Serves gRPC on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    state: actix_web::web::Data<AppState>,
    listener: tokio::net::TcpListener,
    token: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = ServiceAuth::new([("bot".to_owned(), token)]);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::bot_service_server::BotServiceServer<Bot>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cybervpn_rpc::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cybervpn_rpc::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    health
        .set_serving::<pb::admin_service_server::AdminServiceServer<admin::Admin>>()
        .await;
    let admin = pb::admin_service_server::AdminServiceServer::with_interceptor(
        admin::Admin {
            state: state.clone(),
        },
        auth.clone(),
    );
    health
        .set_serving::<pb::delivery_service_server::DeliveryServiceServer<delivery::Delivery>>()
        .await;
    let delivery = pb::delivery_service_server::DeliveryServiceServer::with_interceptor(
        delivery::Delivery {
            state: state.clone(),
        },
        auth.clone(),
    );
    let bot = pb::bot_service_server::BotServiceServer::with_interceptor(Bot { state }, auth);
    tonic::transport::Server::builder()
        .trace_fn(cybervpn_rpc::server_span)
        .add_service(health_service)
        .add_service(reflection_v1?)
        .add_service(reflection_v1alpha?)
        .add_service(bot)
        .add_service(admin)
        .add_service(delivery)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

/// Binds the gRPC listener.
pub(crate) async fn bind(listen: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The bot's service: every call acts for one Telegram user.
pub(crate) struct Bot {
    state: actix_web::web::Data<AppState>,
}

impl Bot {
    /// The registered, live customer of a Telegram user.
    async fn customer(&self, telegram_user_id: i64) -> Result<Customer, Status> {
        let id = TelegramId::new(telegram_user_id).map_err(status)?;
        let customer = self
            .state
            .db
            .customers()
            .find_by_telegram_id(id)
            .await
            .map_err(status)?
            .ok_or_else(|| {
                Status::not_found("this Telegram user is not registered; send /start")
            })?;
        if customer.status == cybervpn_domain::CustomerStatus::Disabled {
            return Err(Status::permission_denied("this account is blocked"));
        }
        Ok(customer)
    }

    async fn customer_view(&self, customer: &Customer) -> Result<pb::Customer, Status> {
        let code = referral::ensure_code(self.state.db.conn(), customer.id)
            .await
            .map_err(Status::from)?;
        Ok(pb::Customer {
            id: customer.id.as_uuid().to_string(),
            username: customer.username.as_str().to_owned(),
            language: customer.language.as_str().to_owned(),
            status: customer.status.as_str().to_owned(),
            referral_code: code,
        })
    }

    async fn current(&self, customer: CustomerId) -> Result<Option<Subscription>, Status> {
        self.state
            .db
            .subscriptions()
            .current_for(customer)
            .await
            .map_err(status)
    }
}

fn subscription_view(subscription: &Subscription) -> pb::Subscription {
    pb::Subscription {
        id: subscription.id.as_uuid().to_string(),
        status: subscription.status.as_str().to_owned(),
        expires_at: subscription.expires_at.to_rfc3339(),
        traffic_used_bytes: subscription.traffic_used.bytes(),
        traffic_limit_bytes: subscription.traffic_limit.as_optional_bytes().unwrap_or(0),
        plan_id: subscription
            .plan_id
            .map(|id| id.as_uuid().to_string())
            .unwrap_or_default(),
    }
}

pub(crate) fn parse_uuid(field: &'static str, text: &str) -> Result<uuid::Uuid, Status> {
    uuid::Uuid::try_parse(text.trim())
        .map_err(|_| Status::invalid_argument(format!("{field} must be a UUID")))
}

#[tonic::async_trait]
impl BotService for Bot {
    async fn register_customer(
        &self,
        request: Request<pb::RegisterCustomerRequest>,
    ) -> Result<Response<pb::RegisterCustomerResponse>, Status> {
        let request = request.into_inner();
        let user = request
            .user
            .ok_or_else(|| Status::invalid_argument("user is required"))?;
        let now = Utc::now().trunc_subsecs(6);
        let (customer, created) = telegram_auth::telegram_customer(
            &self.state,
            &telegram_auth::TelegramProfile {
                id: user.id,
                username: &user.username,
                language_code: &user.language_code,
            },
        )
        .await?;
        let mut referral_refused = String::new();
        let code = request.referral_code.trim();
        if created && !code.is_empty() {
            let linked = async {
                let txn = self.state.db.conn().begin().await.map_err(DbError::from)?;
                referral::link(&self.state, &txn, &customer, code, now).await?;
                txn.commit().await.map_err(DbError::from)?;
                Ok::<(), ApiError>(())
            }
            .await;
            if let Err(err) = linked {
                if err.code() != ErrorCode::ValidationFailed {
                    return Err(err.into());
                }
                referral_refused = err.detail().to_owned();
            }
        }
        Ok(Response::new(pb::RegisterCustomerResponse {
            customer: Some(self.customer_view(&customer).await?),
            created,
            trial_available: trial::available(&self.state, customer.id).await?,
            referral_refused,
        }))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let subscription = self.current(customer.id).await?;
        Ok(Response::new(pb::GetCustomerResponse {
            customer: Some(self.customer_view(&customer).await?),
            subscription: subscription.as_ref().map(subscription_view),
            trial_available: trial::available(&self.state, customer.id).await?,
        }))
    }

    async fn set_language(
        &self,
        request: Request<pb::SetLanguageRequest>,
    ) -> Result<Response<pb::SetLanguageResponse>, Status> {
        let request = request.into_inner();
        let mut customer = self.customer(request.telegram_user_id).await?;
        customer.language = Language::parse_tag(&request.language).map_err(status)?;
        customer.updated_at = Utc::now();
        Customers::on(self.state.db.conn())
            .update(&customer)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SetLanguageResponse {
            customer: Some(self.customer_view(&customer).await?),
        }))
    }

    async fn list_plans(
        &self,
        _request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        let plans = self.state.db.plans().list_active().await.map_err(status)?;
        Ok(Response::new(pb::ListPlansResponse {
            plans: plans.iter().map(plan_proto).collect(),
        }))
    }

    async fn activate_trial(
        &self,
        request: Request<pb::ActivateTrialRequest>,
    ) -> Result<Response<pb::ActivateTrialResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let subscription = trial::activate(&self.state, customer.id).await?;
        Ok(Response::new(pb::ActivateTrialResponse {
            subscription: Some(subscription_view(&subscription)),
        }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let subscription = self.current(customer.id).await?.ok_or_else(|| {
            Status::not_found("no subscription yet: take the trial or buy a plan")
        })?;
        let connection = customer_subscriptions::connection(&self.state, &subscription).await?;
        Ok(Response::new(pb::GetConfigResponse {
            subscription_url: connection.url,
            links: connection.links,
            qr_png: connection.qr_png,
            subscription: Some(subscription_view(&subscription)),
        }))
    }

    async fn get_referral_stats(
        &self,
        request: Request<pb::GetReferralStatsRequest>,
    ) -> Result<Response<pb::GetReferralStatsResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let code = referral::ensure_code(self.state.db.conn(), customer.id).await?;
        let stats = self
            .state
            .db
            .referrals()
            .stats(customer.id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetReferralStatsResponse {
            start_parameter: format!("ref_{code}"),
            code,
            referred_count: u32::try_from(stats.referrals).unwrap_or(u32::MAX),
            days_earned: u32::try_from(stats.days_earned).unwrap_or(u32::MAX),
            max_referrals: self.state.config.referral.max_referrals,
        }))
    }

    async fn list_invites(
        &self,
        request: Request<pb::ListInvitesRequest>,
    ) -> Result<Response<pb::ListInvitesResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let mine = invites::mine(&self.state, customer.id).await?;
        Ok(Response::new(pb::ListInvitesResponse {
            invites: mine
                .items
                .iter()
                .map(|invite| pb::Invite {
                    code: invite.code.clone(),
                    status: invite.status.as_str().to_owned(),
                    start_parameter: invite.bot_start_parameter.clone(),
                    free_days: invite.free_days,
                    expires_at: invite.expires_at.to_rfc3339(),
                })
                .collect(),
            available: u32::try_from(mine.available).unwrap_or(u32::MAX),
            received: mine.received_at.is_some(),
        }))
    }

    async fn redeem_invite(
        &self,
        request: Request<pb::RedeemInviteRequest>,
    ) -> Result<Response<pb::RedeemInviteResponse>, Status> {
        let request = request.into_inner();
        let customer = self.customer(request.telegram_user_id).await?;
        let redeemed = invites::redeem(&self.state, customer.id, &request.code).await?;
        Ok(Response::new(pb::RedeemInviteResponse {
            free_days: redeemed.invite.free_days,
            subscription: Some(subscription_view(&redeemed.subscription)),
        }))
    }

    async fn validate_promo(
        &self,
        request: Request<pb::ValidatePromoRequest>,
    ) -> Result<Response<pb::ValidatePromoResponse>, Status> {
        let request = request.into_inner();
        let customer = self.customer(request.telegram_user_id).await?;
        let now = Utc::now();
        let conn = self.state.db.conn();
        let price = |money: cybervpn_domain::Money| pb::Price {
            amount_minor: money.amount_minor(),
            currency: money.currency().as_str().to_owned(),
        };
        if request.plan_id.is_empty() {
            let promo = checkout::usable_promo(conn, customer.id, &request.code, now)
                .await
                .map_err(status)?;
            return Ok(Response::new(pb::ValidatePromoResponse {
                code: promo.code.clone(),
                benefit: benefit_text(promo.benefit),
                list_price: None,
                price: None,
                days: 0,
            }));
        }
        let provider = parse_provider(&request.provider)?;
        let currency = checkout::currency_for(provider, None).map_err(status)?;
        let plan = cybervpn_domain::PlanId::from_uuid(parse_uuid("plan_id", &request.plan_id)?);
        let quote = checkout::quote(conn, customer.id, plan, currency, Some(&request.code), now)
            .await
            .map_err(status)?;
        let promo = quote
            .promo
            .ok_or_else(|| Status::internal("quote lost its promo code"))?;
        Ok(Response::new(pb::ValidatePromoResponse {
            code: promo.code,
            benefit: benefit_text(promo.benefit),
            list_price: Some(price(quote.list_price)),
            price: Some(price(quote.price)),
            days: quote.days,
        }))
    }

    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::CreatePaymentResponse>, Status> {
        let request = request.into_inner();
        let customer = self.customer(request.telegram_user_id).await?;
        let provider = parse_provider(&request.provider)?;
        let currency = match request.currency.trim() {
            "" => None,
            text => Some(text.parse().map_err(status)?),
        };
        let promo_code = Some(request.promo_code.trim())
            .filter(|code| !code.is_empty())
            .map(str::to_owned);
        let payment = payments::start_payment(
            &self.state,
            customer.id,
            payments::CreatePaymentRequest {
                plan_id: parse_uuid("plan_id", &request.plan_id)?,
                provider,
                currency,
                promo_code,
            },
        )
        .await?;
        Ok(Response::new(pb::CreatePaymentResponse {
            payment: Some(payment.to_proto()),
        }))
    }

    async fn list_payment_methods(
        &self,
        _request: Request<pb::ListPaymentMethodsRequest>,
    ) -> Result<Response<pb::ListPaymentMethodsResponse>, Status> {
        let mut providers = Vec::new();
        for provider in PaymentProvider::ALL.iter().copied() {
            if payments::usable(&self.state, provider).await? {
                providers.push(provider.as_str().to_owned());
            }
        }
        Ok(Response::new(pb::ListPaymentMethodsResponse { providers }))
    }

    async fn pre_checkout(
        &self,
        request: Request<pb::PreCheckoutRequest>,
    ) -> Result<Response<pb::PreCheckoutResponse>, Status> {
        let request = request.into_inner();
        let query = stars::PreCheckout {
            invoice_payload: request.invoice_payload,
            currency: request.currency,
            total_amount: request.total_amount,
            telegram_user_id: request.telegram_user_id,
        };
        let answer = stars::pre_checkout(&self.state.db, &query, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(match answer {
            stars::PreCheckoutAnswer::Ok => pb::PreCheckoutResponse {
                ok: true,
                error_message: String::new(),
            },
            stars::PreCheckoutAnswer::Reject(message) => pb::PreCheckoutResponse {
                ok: false,
                error_message: message,
            },
        }))
    }

    async fn confirm_stars_payment(
        &self,
        request: Request<pb::ConfirmStarsPaymentRequest>,
    ) -> Result<Response<pb::ConfirmStarsPaymentResponse>, Status> {
        let request = request.into_inner();
        let paid = stars::SuccessfulPayment {
            invoice_payload: request.invoice_payload,
            currency: request.currency,
            total_amount: request.total_amount,
            telegram_payment_charge_id: request.telegram_payment_charge_id,
            provider_payment_charge_id: Some(request.provider_payment_charge_id)
                .filter(|id| !id.is_empty()),
        };
        let completion =
            stars::successful_payment(&self.state.db, &paid, Utc::now().trunc_subsecs(6))
                .await
                .map_err(status)?;
        if matches!(completion, Completion::Credited(_)) {
            self.state
                .publish_live(
                    cybervpn_domain::LiveTopic::Payments,
                    "payment_completed",
                    serde_json::json!({
                        "provider": "telegram_stars",
                        "amount_minor": request.total_amount,
                        "currency": paid.currency,
                    }),
                )
                .await;
        }
        let outcome = match &completion {
            Completion::Credited(_) => pb::PaymentOutcome::Credited,
            Completion::AlreadyCompleted => pb::PaymentOutcome::AlreadyCredited,
            Completion::NeedsReview(_) => pb::PaymentOutcome::NeedsReview,
            Completion::Unknown => pb::PaymentOutcome::Unknown,
        };
        let subscription = match completion {
            Completion::Credited(subscription) => Some(subscription_view(&subscription)),
            Completion::AlreadyCompleted => {
                let customer = self.customer(request.telegram_user_id).await?;
                self.current(customer.id)
                    .await?
                    .as_ref()
                    .map(subscription_view)
            }
            Completion::NeedsReview(_) | Completion::Unknown => None,
        };
        self.state
            .metrics
            .webhooks
            .with_label_values(&["telegram_stars", outcome_label(outcome)])
            .inc();
        Ok(Response::new(pb::ConfirmStarsPaymentResponse {
            outcome: outcome.into(),
            subscription,
        }))
    }

    async fn record_stars_refund(
        &self,
        request: Request<pb::RecordStarsRefundRequest>,
    ) -> Result<Response<pb::RecordStarsRefundResponse>, Status> {
        let request = request.into_inner();
        let payment = self
            .state
            .db
            .payments()
            .find_by_provider_id(
                PaymentProvider::TelegramStars,
                &request.telegram_payment_charge_id,
            )
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found("no Stars payment with this charge id"))?;
        let refunded = cybervpn_commerce::refund_payment(
            &self.state.db,
            payment.id,
            "refunded by Telegram",
            &cybervpn_commerce::RefundSource::Gateway,
            Utc::now().trunc_subsecs(6),
        )
        .await
        .map_err(status)?;
        Ok(Response::new(pb::RecordStarsRefundResponse {
            reversed: matches!(refunded, cybervpn_commerce::Refunded::Reversed(_)),
        }))
    }

    async fn get_loyalty(
        &self,
        request: Request<pb::GetLoyaltyRequest>,
    ) -> Result<Response<pb::GetLoyaltyResponse>, Status> {
        let customer = self.customer(request.into_inner().telegram_user_id).await?;
        let loyalty = cybervpn_commerce::loyalty_status(&self.state.db, customer.id, Utc::now())
            .await
            .map_err(status)?;
        let time =
            |at: Option<chrono::DateTime<Utc>>| at.map(|at| at.to_rfc3339()).unwrap_or_default();
        Ok(Response::new(pb::GetLoyaltyResponse {
            level: loyalty.level.as_str().to_owned(),
            tenure_days: loyalty.tenure_days,
            next_level: loyalty
                .next
                .map(|(next, _)| next.as_str().to_owned())
                .unwrap_or_default(),
            days_to_next_level: loyalty.next.map_or(0, |(_, days)| days),
            paid_until: time(loyalty.paid_until),
            grace_until: time(loyalty.grace_until),
            in_grace: loyalty.in_grace,
            priority_support: loyalty.level.priority_support(),
            early_access: loyalty.level.early_access(),
            premium_squad: loyalty.level.premium_squad(),
            bonus_days_earned: loyalty.rewards.iter().map(|reward| reward.days).sum(),
        }))
    }

    async fn create_support_request(
        &self,
        request: Request<pb::CreateSupportRequestRequest>,
    ) -> Result<Response<pb::CreateSupportRequestResponse>, Status> {
        let request = request.into_inner();
        let customer = self.customer(request.telegram_user_id).await?;
        let text = request.text.trim();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(Status::invalid_argument(
                "text must be 1 to 2000 characters",
            ));
        }
        let id = uuid::Uuid::now_v7();
        let now = Utc::now();
        // Gold and Platinum customers' requests are flagged for priority handling.
        let level = self
            .state
            .db
            .loyalty()
            .account(customer.id)
            .await
            .map_err(status)?
            .tenure
            .level_at(now);
        let priority = if level.priority_support() {
            format!("⭐ PRIORITY ({} loyalty) — ", level.as_str())
        } else {
            String::new()
        };
        let body = format!(
            "{priority}Support request from {} (Telegram {}, customer {}):\n{text}",
            customer.username.as_str(),
            request.telegram_user_id,
            customer.id.as_uuid()
        );
        let txn = self
            .state
            .db
            .conn()
            .begin()
            .await
            .map_err(|e| status(DbError::from(e)))?;
        cybervpn_jobs::outbox::notify_in(
            &txn,
            &format!("support:{id}"),
            Audience::Staff,
            "support_request",
            &body,
            now,
        )
        .await
        .map_err(status)?;
        txn.commit().await.map_err(|e| status(DbError::from(e)))?;
        Ok(Response::new(pb::CreateSupportRequestResponse {
            id: id.to_string(),
        }))
    }
}

pub(crate) fn parse_provider(text: &str) -> Result<PaymentProvider, Status> {
    text.parse().map_err(status)
}

/// A plan as the bot sees it.
pub(crate) fn plan_proto(plan: &cybervpn_domain::Plan) -> pb::Plan {
    pb::Plan {
        id: plan.id.as_uuid().to_string(),
        code: plan.code.clone(),
        tier: plan.tier.as_str().to_owned(),
        duration_days: u32::from(plan.duration.days()),
        traffic_limit_bytes: plan.traffic_limit.as_optional_bytes().unwrap_or(0),
        device_limit: u32::from(plan.device_limit),
        prices: plan
            .prices()
            .iter()
            .map(|price| pb::Price {
                amount_minor: price.amount_minor(),
                currency: price.currency().as_str().to_owned(),
            })
            .collect(),
    }
}

pub(crate) fn benefit_text(benefit: PromoBenefit) -> String {
    match benefit {
        PromoBenefit::PercentOff { percent } => format!("percent_off:{percent}"),
        PromoBenefit::AmountOff { amount } => {
            format!("amount_off:{} {}", amount.amount_minor(), amount.currency())
        }
        PromoBenefit::BonusDays { days } => format!("bonus_days:{days}"),
    }
}

const fn outcome_label(outcome: pb::PaymentOutcome) -> &'static str {
    match outcome {
        pb::PaymentOutcome::Credited => "applied",
        pb::PaymentOutcome::AlreadyCredited => "duplicate",
        pb::PaymentOutcome::NeedsReview => "review",
        pb::PaymentOutcome::Unknown | pb::PaymentOutcome::Unspecified => "unknown",
    }
}
