//! Payments: customers open an invoice at a gateway; the gateways' webhooks complete it through
//! [`cybervpn_commerce::complete_payment`], the one completion path.
//!
//! Webhook bodies are verified on their raw bytes before any parsing; YooKassa has no signature, so its
//! notifications are authenticated by source network and acted on only after re-fetching the payment.

use std::{net::IpAddr, time::Duration};

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_commerce::{Completion, PaidNotice, checkout};
use cybervpn_domain::{
    Currency, DomainError, ErrorCode, Payment, PaymentId, PaymentProvider, Permission, PlanId,
    Principal,
};
use cybervpn_payments::{
    cryptobot::{self, CryptoBot},
    stripe::{self, Stripe},
    telegram::StarsRefunds,
    yookassa::{self, TrustedNetworks, YooKassa, YooPaymentStatus},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{AnyPrincipal, CustomerAuth},
    error::{ApiError, Problem},
    state::AppState,
};

/// The gateway clients whose credentials are configured.
pub(crate) struct Gateways {
    pub(crate) cryptobot: Option<CryptoBot>,
    pub(crate) stripe: Option<Stripe>,
    pub(crate) yookassa: Option<YooKassa>,
    pub(crate) yookassa_networks: TrustedNetworks,
    /// Telegram Stars refunds, when a bot token is configured.
    pub(crate) stars: Option<StarsRefunds>,
    /// Whether RevenueCat's webhook has its secret (app-store purchases are reported, not opened, here).
    pub(crate) revenuecat: bool,
}

impl Gateways {
    /// Builds the clients of every gateway with credentials; a bad setting is a startup error.
    pub(crate) fn from_config(
        config: &cybervpn_config::PaymentsConfig,
        telegram: &cybervpn_config::TelegramConfig,
        metrics: &cybervpn_telemetry::Metrics,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let stars = match &telegram.bot_token {
            Some(token) => Some(
                StarsRefunds::new(&telegram.api_url, token.expose(), metrics.external.clone())
                    .context("telegram client")?,
            ),
            None => None,
        };
        let cryptobot = match &config.cryptobot_token {
            Some(token) => {
                let mut settings = cryptobot::CryptoBotConfig::new(token.expose().clone());
                settings.api_url.clone_from(&config.cryptobot_api_url);
                Some(
                    CryptoBot::new(settings, metrics.external.clone())
                        .context("cryptobot client")?,
                )
            }
            None => None,
        };
        let stripe = match (&config.stripe_secret_key, &config.stripe_webhook_secret) {
            (Some(key), Some(_)) => {
                let mut settings = stripe::StripeConfig::new(key.expose().clone());
                settings.api_url.clone_from(&config.stripe_api_url);
                Some(Stripe::new(settings, metrics.external.clone()).context("stripe client")?)
            }
            _ => None,
        };
        let yookassa = match (&config.yookassa_shop_id, &config.yookassa_secret_key) {
            (Some(shop), Some(key)) => {
                let mut settings =
                    yookassa::YooKassaConfig::new(shop.clone(), key.expose().clone());
                settings.api_url.clone_from(&config.yookassa_api_url);
                Some(YooKassa::new(settings, metrics.external.clone()).context("yookassa client")?)
            }
            _ => None,
        };
        let yookassa_networks = TrustedNetworks::parse(&config.yookassa_trusted_networks)
            .map_err(|err| anyhow::anyhow!("payments.yookassa_trusted_networks: {}", err.reason))?;
        Ok(Self {
            cryptobot,
            stripe,
            yookassa,
            yookassa_networks,
            stars,
            revenuecat: config.revenuecat_webhook_secret.is_some(),
        })
    }

    /// Whether `provider` has its credentials configured (Telegram Stars needs none here).
    pub(crate) fn configured(&self, provider: PaymentProvider) -> bool {
        match provider {
            PaymentProvider::CryptoBot => self.cryptobot.is_some(),
            PaymentProvider::Stripe => self.stripe.is_some(),
            PaymentProvider::YooKassa => self.yookassa.is_some(),
            PaymentProvider::TelegramStars => true,
            PaymentProvider::RevenueCat => self.revenuecat,
        }
    }
}

/// Whether customers can open a payment through `provider` now: a checkout gateway, configured, and not
/// switched off by staff.
pub(crate) async fn usable(state: &AppState, provider: PaymentProvider) -> Result<bool, ApiError> {
    Ok(provider.takes_checkout()
        && state.gateways.configured(provider)
        && cybervpn_db::GatewaySwitches::on(state.db.conn())
            .is_enabled(provider)
            .await?)
}

/// One payment provider and whether customers can pay through it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderView {
    /// `cryptobot`, `stripe`, `yookassa` or `telegram_stars`.
    provider: &'static str,
    /// False when the gateway has no credentials configured or staff switched it off.
    enabled: bool,
    /// The currency used when the customer names none.
    default_currency: &'static str,
}

/// Every payment provider, enabled or not.
#[utoipa::path(
    tag = "payments",
    responses((status = 200, description = "Providers", body = [ProviderView]))
)]
#[get("/payments/providers")]
pub(crate) async fn list_providers(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ProviderView>>, ApiError> {
    let mut providers = Vec::new();
    for provider in [
        PaymentProvider::CryptoBot,
        PaymentProvider::Stripe,
        PaymentProvider::YooKassa,
        PaymentProvider::TelegramStars,
    ] {
        providers.push(ProviderView {
            provider: provider.as_str(),
            enabled: usable(&state, provider).await?,
            default_currency: checkout::default_currency(provider).as_str(),
        });
    }
    Ok(web::Json(providers))
}

/// What a customer wants to buy, and how they pay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePaymentRequest {
    /// Plan to buy.
    pub(crate) plan_id: uuid::Uuid,
    /// `cryptobot`, `stripe`, `yookassa` or `telegram_stars`.
    #[schema(value_type = String, example = "cryptobot")]
    pub(crate) provider: PaymentProvider,
    /// `USD`, `RUB` or `XTR`; defaults to USD (CryptoBot, Stripe), RUB (YooKassa), XTR (Telegram Stars).
    #[schema(value_type = Option<String>, example = "USD")]
    #[serde(default)]
    pub(crate) currency: Option<Currency>,
    /// A promo code to apply.
    #[serde(default)]
    pub(crate) promo_code: Option<String>,
}

/// One price of a Telegram invoice.
#[derive(Serialize, ToSchema)]
pub(crate) struct StarsPrice {
    label: String,
    /// Whole Stars.
    amount: i64,
}

/// The parameters of a Telegram Stars invoice (`sendInvoice`/`createInvoiceLink`).
#[derive(Serialize, ToSchema)]
pub(crate) struct StarsInvoice {
    title: String,
    description: String,
    /// Our payment id.
    payload: String,
    /// Always `XTR`.
    currency: &'static str,
    /// Exactly one price.
    prices: Vec<StarsPrice>,
}

/// A payment as its customer sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentView {
    id: uuid::Uuid,
    /// `pending`, `completed`, `failed`, `expired` or `refunded`.
    status: &'static str,
    /// Amount in minor units (cents, kopecks; whole Stars for XTR).
    amount_minor: i64,
    currency: &'static str,
    provider: &'static str,
    /// Days the payment adds to the subscription.
    days: u32,
    /// The gateway page where the customer pays, when there is one.
    invoice_url: Option<String>,
    /// Invoice parameters for Telegram Stars payments.
    stars_invoice: Option<StarsInvoice>,
    /// When the invoice stops being payable.
    expires_at: Option<DateTime<Utc>>,
    /// The promo code that priced it, if any.
    promo_code_id: Option<uuid::Uuid>,
    /// When it was credited.
    completed_at: Option<DateTime<Utc>>,
    /// When the money went back.
    refunded_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl PaymentView {
    /// The payment as the bot's gRPC service returns it.
    pub(crate) fn to_proto(&self) -> cybervpn_rpc::bot::v1::Payment {
        use cybervpn_rpc::bot::v1 as pb;
        pb::Payment {
            id: self.id.to_string(),
            status: self.status.to_owned(),
            amount_minor: self.amount_minor,
            currency: self.currency.to_owned(),
            provider: self.provider.to_owned(),
            days: self.days,
            invoice_url: self.invoice_url.clone().unwrap_or_default(),
            stars_invoice: self.stars_invoice.as_ref().map(|invoice| pb::StarsInvoice {
                title: invoice.title.clone(),
                description: invoice.description.clone(),
                payload: invoice.payload.clone(),
                currency: invoice.currency.to_owned(),
                prices: invoice
                    .prices
                    .iter()
                    .map(|price| pb::StarsPrice {
                        label: price.label.clone(),
                        amount: price.amount,
                    })
                    .collect(),
            }),
        }
    }

    /// The gateway page where the customer pays, if there is one.
    pub(crate) fn invoice_url(&self) -> Option<&str> {
        self.invoice_url.as_deref()
    }

    pub(crate) fn of(payment: &Payment, plan_code: Option<&str>) -> Self {
        let stars_invoice = (payment.provider == PaymentProvider::TelegramStars).then(|| {
            let title = format!("CyberVPN {}", plan_code.unwrap_or("plan"));
            StarsInvoice {
                description: format!("{title}: {} days", payment.days),
                payload: payment.id.as_uuid().to_string(),
                currency: Currency::Xtr.as_str(),
                prices: vec![StarsPrice {
                    label: title.clone(),
                    amount: payment.amount.amount_minor(),
                }],
                title,
            }
        });
        Self {
            id: payment.id.as_uuid(),
            status: payment.status.as_str(),
            amount_minor: payment.amount.amount_minor(),
            currency: payment.amount.currency().as_str(),
            provider: payment.provider.as_str(),
            days: payment.days,
            invoice_url: payment.invoice_url.clone(),
            stars_invoice,
            expires_at: payment.expires_at,
            promo_code_id: payment.promo_code_id.map(|id| id.as_uuid()),
            completed_at: payment.completed_at,
            refunded_at: payment.refunded_at,
            created_at: payment.created_at,
        }
    }
}

/// Opens a payment for a plan at a gateway.
#[utoipa::path(
    tag = "payments",
    security(("customer" = [])),
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, description = "Payment created; pay at `invoice_url` (or with `stars_invoice`)", body = PaymentView),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Provider or currency not usable", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/payments")]
pub(crate) async fn create_payment(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    request: web::Json<CreatePaymentRequest>,
) -> Result<HttpResponse, ApiError> {
    let payment = start_payment(&state, auth.id, request.into_inner()).await?;
    Ok(HttpResponse::Created().json(payment))
}

/// Opens a payment at the frozen price (the promo use held with it) and the gateway's invoice for it; a
/// gateway that fails closes the payment and gives the promo use back.
pub(crate) async fn start_payment(
    state: &AppState,
    customer: cybervpn_domain::CustomerId,
    request: CreatePaymentRequest,
) -> Result<PaymentView, ApiError> {
    let CreatePaymentRequest {
        plan_id,
        provider,
        currency,
        promo_code,
    } = request;
    if !usable(state, provider).await? {
        return Err(DomainError::invalid(
            "provider",
            format!("{} is not enabled", provider.as_str()),
        )
        .into());
    }
    let order = checkout::Order {
        customer_id: customer,
        plan_id: PlanId::from_uuid(plan_id),
        provider,
        currency,
        promo_code,
    };
    let now = Utc::now().trunc_subsecs(6);
    let ttl = Duration::from_secs(state.config.payments.invoice_ttl_secs);
    let (mut payment, quote) = checkout::open_payment(&state.db, &order, ttl, now).await?;
    let description = format!("CyberVPN {} ({} days)", quote.plan.code, payment.days);
    match open_invoice(state, &payment, &description, ttl).await {
        Ok(Some((reference, url))) => {
            state
                .db
                .payments()
                .set_invoice(payment.id, &reference, url.as_deref(), now)
                .await?;
            payment.provider_payment_id = Some(reference);
            payment.invoice_url = url;
        }
        Ok(None) => {}
        Err(cause) => {
            tracing::warn!(payment = %payment.id.as_uuid(), provider = provider.as_str(), error = %cause, "invoice not created");
            checkout::fail_payment(&state.db, payment.id, Utc::now()).await?;
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "{} is unavailable; try again later or pay another way",
                    provider.as_str()
                ),
            ));
        }
    }
    Ok(PaymentView::of(&payment, Some(&quote.plan.code)))
}

/// Creates the gateway's invoice: its reference and payment page, or `None` for Telegram Stars (the bot
/// sends the invoice). The error text comes from our clients, which scrub credentials.
async fn open_invoice(
    state: &AppState,
    payment: &Payment,
    description: &str,
    ttl: Duration,
) -> Result<Option<(String, Option<String>)>, String> {
    let payment_id = payment.id.as_uuid().to_string();
    let disabled = || "gateway not configured".to_owned();
    match payment.provider {
        PaymentProvider::CryptoBot => {
            let client = state.gateways.cryptobot.as_ref().ok_or_else(disabled)?;
            let mut request = cryptobot::CreateInvoice::new(payment.amount, payment_id);
            request.description = Some(description.to_owned());
            request.expires_in = Some(ttl.min(cryptobot::MAX_EXPIRES_IN));
            let invoice = client
                .create_invoice(&request)
                .await
                .map_err(|err| err.to_string())?;
            Ok(Some((
                invoice.invoice_id.to_string(),
                Some(invoice.bot_invoice_url),
            )))
        }
        PaymentProvider::Stripe => {
            let client = state.gateways.stripe.as_ref().ok_or_else(disabled)?;
            let return_url = &state.config.payments.return_url;
            let request = stripe::CheckoutRequest {
                payment_id: payment.id.as_uuid(),
                amount: payment.amount,
                product_name: description.to_owned(),
                success_url: return_url.clone(),
                cancel_url: return_url.clone(),
            };
            let session = client
                .create_checkout_session(&request, &payment_id)
                .await
                .map_err(|err| err.to_string())?;
            Ok(Some((session.id, session.url)))
        }
        PaymentProvider::YooKassa => {
            let client = state.gateways.yookassa.as_ref().ok_or_else(disabled)?;
            let request = yookassa::CreatePayment {
                amount: payment.amount,
                description: description.to_owned(),
                return_url: state.config.payments.return_url.clone(),
                payment_id: payment.id.as_uuid(),
            };
            let created = client
                .create_payment(&request, &payment_id)
                .await
                .map_err(|err| err.to_string())?;
            Ok(Some((created.id, created.confirmation_url)))
        }
        PaymentProvider::TelegramStars => Ok(None),
        // Refused before a payment is opened ([`usable`]); app-store purchases arrive by webhook.
        PaymentProvider::RevenueCat => Err(disabled()),
    }
}

/// A payment: its customer sees their own; staff with `view_payments` see any.
#[utoipa::path(
    tag = "payments",
    security(("customer" = []), ("staff" = ["view_payments"])),
    params(("id" = uuid::Uuid, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Staff without `view_payments`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/payments/{id}")]
pub(crate) async fn get_payment(
    state: web::Data<AppState>,
    auth: AnyPrincipal,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<PaymentView>, ApiError> {
    if let Principal::Staff(staff) = auth.principal {
        crate::auth::authorize_staff(&state, staff, Some(Permission::ViewPayments)).await?;
    }
    let payment = state
        .db
        .payments()
        .get(PaymentId::from_uuid(id.into_inner()))
        .await?;
    if let Principal::Customer(customer) = auth.principal
        && payment.customer_id != customer
    {
        return Err(DomainError::NotFound { entity: "payment" }.into());
    }
    Ok(web::Json(PaymentView::of(&payment, None)))
}

/// A CryptoBot invoice for a plan (the same as `POST /payments` with `provider: cryptobot`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CryptoInvoiceRequest {
    /// Plan to buy.
    plan_id: uuid::Uuid,
    /// `USD` or `RUB`; USD when absent.
    #[schema(value_type = Option<String>, example = "USD")]
    #[serde(default)]
    currency: Option<Currency>,
    /// A promo code to apply.
    #[serde(default)]
    promo_code: Option<String>,
}

/// Opens a CryptoBot invoice for a plan.
#[utoipa::path(
    tag = "payments",
    security(("customer" = [])),
    request_body = CryptoInvoiceRequest,
    responses(
        (status = 201, description = "Payment created; pay at `invoice_url`", body = PaymentView),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan or promo code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "CryptoBot not enabled, currency or promo code not usable", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "CryptoBot is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/payments/crypto/invoice")]
pub(crate) async fn create_crypto_invoice(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    request: web::Json<CryptoInvoiceRequest>,
) -> Result<HttpResponse, ApiError> {
    let CryptoInvoiceRequest {
        plan_id,
        currency,
        promo_code,
    } = request.into_inner();
    let request = CreatePaymentRequest {
        plan_id,
        provider: PaymentProvider::CryptoBot,
        currency,
        promo_code,
    };
    let payment = start_payment(&state, auth.id, request).await?;
    Ok(HttpResponse::Created().json(payment))
}

/// Counts a webhook delivery of `source` by `outcome` (`webhooks_received_total`).
pub(crate) fn count(state: &AppState, source: &str, outcome: &str) {
    state
        .metrics
        .webhooks
        .with_label_values(&[source, outcome])
        .inc();
}

/// The body a gateway's webhook gets when we are done with it.
pub(crate) fn ok() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

/// A refused webhook credential, counted as `bad_signature`.
pub(crate) fn unauthorized(state: &AppState, source: &str, detail: &'static str) -> ApiError {
    count(state, source, "bad_signature");
    ApiError::new(ErrorCode::Unauthorized, detail)
}

/// The answer of a webhook whose gateway has no credentials configured.
pub(crate) fn not_configured(source: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        format!("{source} webhooks are not configured"),
    )
}

/// Applies a verified payment notice; answers 200 whatever the outcome, so the gateway stops retrying.
async fn apply(
    state: &AppState,
    source: &str,
    notice: Option<PaidNotice>,
) -> Result<HttpResponse, ApiError> {
    let Some(notice) = notice else {
        tracing::warn!(source, "signed payment webhook names no payment of ours");
        count(state, source, "unknown");
        return Ok(ok());
    };
    let completion =
        cybervpn_commerce::complete_payment(&state.db, &notice, Utc::now().trunc_subsecs(6))
            .await?;
    if matches!(completion, Completion::Credited(_)) {
        state
            .publish_live(
                cybervpn_domain::LiveTopic::Payments,
                "payment_completed",
                serde_json::json!({
                    "payment_id": notice.payment_id.as_uuid(),
                    "provider": source,
                    "amount_minor": notice.paid.amount_minor(),
                    "currency": notice.paid.currency().as_str(),
                }),
            )
            .await;
    }
    let outcome = match &completion {
        Completion::Credited(_) => "applied",
        Completion::AlreadyCompleted => "duplicate",
        Completion::NeedsReview(_) => "review",
        Completion::Unknown => {
            tracing::warn!(source, payment = %notice.payment_id.as_uuid(), "signed payment webhook for an unknown payment");
            "unknown"
        }
    };
    count(state, source, outcome);
    Ok(ok())
}

/// A request header as text; empty when absent or not text.
pub(crate) fn header<'r>(request: &'r HttpRequest, name: &str) -> &'r str {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

fn parse_payment_id(text: Option<&str>) -> Option<PaymentId> {
    text.and_then(|text| uuid::Uuid::try_parse(text.trim()).ok())
        .map(PaymentId::from_uuid)
}

/// CryptoBot's `invoice_paid` updates, signed with the app token.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "`{update_id, update_type, request_date, payload}` as Crypto Pay sends it"),
    responses(
        (status = 200, description = "Accepted (also duplicates, unknown payments and updates we do not act on)"),
        (status = 400, description = "Not an update body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong crypto-pay-api-signature", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "CryptoBot is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/cryptobot")]
pub(crate) async fn cryptobot_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    const SOURCE: &str = "cryptobot";
    let Some(token) = &state.config.payments.cryptobot_token else {
        return Err(not_configured(SOURCE));
    };
    let signature = header(&request, cryptobot::SIGNATURE_HEADER);
    if !cryptobot::verify_webhook(token.expose(), &body, signature) {
        return Err(unauthorized(
            &state,
            SOURCE,
            "missing or invalid crypto-pay-api-signature",
        ));
    }
    let update = cryptobot::parse_webhook(&body).map_err(|err| {
        count(&state, SOURCE, "malformed");
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("not a Crypto Pay update: {err}"),
        )
    })?;
    // Only a paid invoice credits, even in a correctly signed `invoice_paid` update.
    if update.update_type != cryptobot::UpdateType::InvoicePaid
        || update.payload.status != cryptobot::InvoiceStatus::Paid
    {
        count(&state, SOURCE, "ignored");
        return Ok(ok());
    }
    let invoice = &update.payload;
    let Some(payment_id) = parse_payment_id(invoice.payload.as_deref()) else {
        return apply(&state, SOURCE, None).await;
    };
    let paid = invoice.amount_money();
    let notice = paid.map(|paid| PaidNotice {
        payment_id,
        provider: PaymentProvider::CryptoBot,
        provider_payment_id: invoice.invoice_id.to_string(),
        paid,
    });
    credit(
        &state,
        SOURCE,
        payment_id,
        notice,
        "paid invoice has no USD or RUB amount",
    )
    .await
}

/// Credits a paid notice; a notice whose amount could not be read sets the payment aside for staff instead.
async fn credit(
    state: &AppState,
    source: &'static str,
    payment_id: PaymentId,
    notice: Option<PaidNotice>,
    unreadable: &str,
) -> Result<HttpResponse, ApiError> {
    if notice.is_none() {
        let flagged = state
            .db
            .payments()
            .flag(payment_id, unreadable, Utc::now())
            .await;
        tracing::warn!(payment = %payment_id.as_uuid(), flagged = flagged.is_ok(), reason = unreadable);
        count(state, source, "review");
        return Ok(ok());
    }
    apply(state, source, notice).await
}

/// Stripe events: `checkout.session.completed` (paid), `checkout.session.async_payment_succeeded|failed` and
/// `charge.refunded`.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "A Stripe event"),
    responses(
        (status = 200, description = "Accepted (also duplicates, unknown payments and events we do not act on)"),
        (status = 400, description = "Not an event body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, wrong or stale Stripe-Signature", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/stripe")]
pub(crate) async fn stripe_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    const SOURCE: &str = "stripe";
    let Some(secret) = &state.config.payments.stripe_webhook_secret else {
        return Err(not_configured(SOURCE));
    };
    let signature = header(&request, "stripe-signature");
    if stripe::verify_webhook(
        secret.expose(),
        &body,
        signature,
        Utc::now(),
        stripe::DEFAULT_TOLERANCE,
    )
    .is_err()
    {
        return Err(unauthorized(
            &state,
            SOURCE,
            "missing, invalid or stale Stripe-Signature",
        ));
    }
    let event = stripe::parse_event(&body).map_err(|err| {
        count(&state, SOURCE, "malformed");
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("not a Stripe event: {err}"),
        )
    })?;
    match &event.payload {
        stripe::EventPayload::ChargeRefunded(charge) => return stripe_refund(&state, charge).await,
        stripe::EventPayload::CheckoutSessionAsyncPaymentFailed(session) => {
            // The delayed payment (bank debit) failed: close it, giving its promo use back.
            let failed = match session.payment_id() {
                Some(id) => {
                    checkout::fail_payment(&state.db, PaymentId::from_uuid(id), Utc::now()).await?
                }
                None => false,
            };
            count(&state, SOURCE, if failed { "failed" } else { "ignored" });
            return Ok(ok());
        }
        _ => {}
    }
    let Some(session) = event.paid_session() else {
        count(&state, SOURCE, "ignored");
        return Ok(ok());
    };
    let Some(payment_id) = session.payment_id().map(PaymentId::from_uuid) else {
        return apply(&state, SOURCE, None).await;
    };
    let paid = session.amount();
    let notice = paid.map(|paid| PaidNotice {
        payment_id,
        provider: PaymentProvider::Stripe,
        // The PaymentIntent, which `charge.refunded` names; the session id when Stripe sent none.
        provider_payment_id: session
            .payment_intent
            .clone()
            .unwrap_or_else(|| session.id.clone()),
        paid,
    });
    credit(
        &state,
        SOURCE,
        payment_id,
        notice,
        "paid session has no USD or RUB amount",
    )
    .await
}

/// `charge.refunded`: a full refund takes the days back (once); a partial one is set aside for staff.
async fn stripe_refund(
    state: &AppState,
    charge: &stripe::Charge,
) -> Result<HttpResponse, ApiError> {
    const SOURCE: &str = "stripe";
    let payment = match &charge.payment_intent {
        Some(intent) => {
            state
                .db
                .payments()
                .find_by_provider_id(PaymentProvider::Stripe, intent)
                .await?
        }
        None => None,
    };
    let Some(payment) = payment else {
        tracing::warn!(charge = %charge.id, "refund of a Stripe charge we do not know");
        count(state, SOURCE, "unknown");
        return Ok(ok());
    };
    let now = Utc::now().trunc_subsecs(6);
    let full = charge.refunded
        && charge.refunded_amount() == Some(payment.amount)
        && charge.amount == payment.amount.amount_minor();
    if !full {
        let reason = format!(
            "partially refunded at Stripe: {} of {} {}",
            charge.amount_refunded,
            charge.amount,
            charge.currency.to_ascii_uppercase()
        );
        state.db.payments().flag(payment.id, &reason, now).await?;
        count(state, SOURCE, "review");
        return Ok(ok());
    }
    let outcome = match cybervpn_commerce::refund_payment(
        &state.db,
        payment.id,
        "refunded at Stripe",
        &cybervpn_commerce::RefundSource::Gateway,
        now,
    )
    .await
    {
        Ok(cybervpn_commerce::Refunded::Reversed(_)) => "refunded",
        Ok(cybervpn_commerce::Refunded::AlreadyRefunded) => "duplicate",
        // Refunded before it was credited (or after it failed): nothing to take back, staff should know.
        Err(cybervpn_db::DbError::Domain(DomainError::InvalidTransition { from, .. })) => {
            let reason = format!("refunded at Stripe while {from}");
            state.db.payments().flag(payment.id, &reason, now).await?;
            "review"
        }
        Err(err) => return Err(err.into()),
    };
    count(state, SOURCE, outcome);
    Ok(ok())
}

/// YooKassa notifications (`payment.succeeded`, `payment.canceled`): from YooKassa's networks only, and acted
/// on after re-fetching the payment.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "`{type, event, object}` as YooKassa sends it"),
    responses(
        (status = 200, description = "Accepted (also duplicates, unknown payments and events we do not act on)"),
        (status = 400, description = "Not a notification body", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not from YooKassa's networks", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "YooKassa is not configured or did not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/yookassa")]
pub(crate) async fn yookassa_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    const SOURCE: &str = "yookassa";
    let Some(client) = &state.gateways.yookassa else {
        return Err(not_configured(SOURCE));
    };
    let Some(peer) = request.peer_addr().map(|addr| addr.ip()) else {
        count(&state, SOURCE, "forbidden");
        return Err(ApiError::new(ErrorCode::Forbidden, "unknown source"));
    };
    let source_ip = source_ip(&state, &request, peer);
    if !state.gateways.yookassa_networks.contains(source_ip) {
        count(&state, SOURCE, "forbidden");
        tracing::warn!(%source_ip, "yookassa notification from outside its networks");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "notifications are accepted from YooKassa's networks only",
        ));
    }
    let notification = yookassa::parse_notification(&body).map_err(|err| {
        count(&state, SOURCE, "malformed");
        ApiError::new(ErrorCode::MalformedJson, err.to_string())
    })?;
    if notification.event != yookassa::NotificationEvent::parse("payment.succeeded")
        && notification.event != yookassa::NotificationEvent::parse("payment.canceled")
    {
        count(&state, SOURCE, "ignored");
        return Ok(ok());
    }
    let Some(yookassa_id) = notification.yookassa_payment_id.as_deref() else {
        return apply(&state, SOURCE, None).await;
    };
    let fetched = match client.get_payment(yookassa_id).await {
        Ok(fetched) => fetched,
        Err(err) if err.status() == Some(404) => return apply(&state, SOURCE, None).await,
        Err(err) => {
            count(&state, SOURCE, "refetch_failed");
            tracing::warn!(error = %err, "yookassa payment could not be re-fetched");
            // Not 200: YooKassa retries, and the retry re-fetches.
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "YooKassa did not answer; retry later",
            ));
        }
    };
    let Some(payment_id) = fetched.payment_id.map(PaymentId::from_uuid) else {
        return apply(&state, SOURCE, None).await;
    };
    match fetched.status {
        YooPaymentStatus::Succeeded => {}
        YooPaymentStatus::Canceled => {
            // Cancelled or timed out at YooKassa: close ours, giving its promo use back.
            let failed = checkout::fail_payment(&state.db, payment_id, Utc::now()).await?;
            count(&state, SOURCE, if failed { "failed" } else { "ignored" });
            return Ok(ok());
        }
        YooPaymentStatus::Pending | YooPaymentStatus::WaitingForCapture => {
            count(&state, SOURCE, "ignored");
            return Ok(ok());
        }
    }
    let notice = fetched.amount_money().ok().map(|paid| PaidNotice {
        payment_id,
        provider: PaymentProvider::YooKassa,
        provider_payment_id: fetched.id.clone(),
        paid,
    });
    credit(
        &state,
        SOURCE,
        payment_id,
        notice,
        "succeeded payment has an unreadable amount",
    )
    .await
}

/// The notification's source: the peer, or behind a trusted proxy (`api.trust_forwarded_headers`) the
/// address that proxy appended last to `X-Forwarded-For`.
fn source_ip(state: &AppState, request: &HttpRequest, peer: IpAddr) -> IpAddr {
    let proxies = if state.config.api.trust_forwarded_headers {
        TrustedNetworks::parse([peer.to_canonical().to_string()])
            .unwrap_or_else(|_| TrustedNetworks::none())
    } else {
        TrustedNetworks::none()
    };
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect();
    let forwarded = forwarded.join(",");
    yookassa::client_ip(
        peer,
        (!forwarded.is_empty()).then_some(forwarded.as_str()),
        &proxies,
    )
}
