//! The CyberVPN Telegram bot: customers register, take the trial, buy plans (Telegram Stars invoices or the
//! gateways' pages), get their config with a QR code, invite friends and reach support.
//!
//! It owns no data: every read and change goes through the api's gRPC `BotService`. Updates arrive by long
//! polling; dialogue state lives in the shared store (Redis, or this process in standalone) so it survives a
//! restart. All texts come from the Fluent files in `locales/`.

mod admin;
mod delivery;
mod i18n;
mod metrics;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use cybervpn_config::Config;
use cybervpn_jobs::{JobMetrics, Queue};
use cybervpn_kv::{RateDecision, Store};
use cybervpn_rpc::bot::v1::{
    self as pb, admin_service_client::AdminServiceClient, bot_service_client::BotServiceClient,
    delivery_service_client::DeliveryServiceClient,
};
pub use delivery::{MESSAGES_PER_SECOND, consume};
use frankenstein::{
    AsyncTelegramApi, ParseMode,
    client_reqwest::Bot as Telegram,
    methods::{
        AnswerCallbackQueryParams, AnswerPreCheckoutQueryParams, DeleteWebhookParams,
        GetUpdatesParams, SendInvoiceParams, SendMessageParams, SendPhotoParams,
        SetMyCommandsParams, SetWebhookParams,
    },
    payments::{LabeledPrice, PreCheckoutQuery, RefundedPayment, SuccessfulPayment},
    types::{
        AllowedUpdate, BotCommand, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup,
        MaybeInaccessibleMessage, Message, ReplyMarkup, User,
    },
    updates::{Update, UpdateContent},
};
pub use i18n::{Lang, text, text_with};
pub use metrics::BotMetrics;
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};

/// The api's `BotService`, with the bot's service token on every call.
type Rpc = BotServiceClient<InterceptedService<Channel, cybervpn_rpc::BearerToken>>;
/// The api's `AdminService`, likewise.
type AdminRpc = AdminServiceClient<InterceptedService<Channel, cybervpn_rpc::BearerToken>>;
/// The api's `DeliveryService`, likewise.
type DeliveryRpc = DeliveryServiceClient<InterceptedService<Channel, cybervpn_rpc::BearerToken>>;

/// Dialogue states kept per Telegram user.
const DIALOG_SUPPORT: i64 = 1;
/// Dialogue state: the next text is a friend's invite code.
const DIALOG_INVITE: i64 = 9;
/// Dialogue states from this one on: the next text is a promo code for the plan at `state - DIALOG_PROMO`.
const DIALOG_PROMO: i64 = 1000;
/// How long a customer's language is remembered by the bot (a change made elsewhere shows after this).
const LANG_TTL: Duration = Duration::from_secs(10 * 60);
/// How long an unfinished dialogue is remembered.
const DIALOG_TTL: Duration = Duration::from_secs(15 * 60);
/// Gateways offered in the plan menu, with their short callback codes (callback data is ≤ 64 bytes).
const GATEWAYS: [(&str, &str); 4] = [
    ("xtr", "telegram_stars"),
    ("cb", "cryptobot"),
    ("st", "stripe"),
    ("yk", "yookassa"),
];
const TIERS: [&str; 4] = ["basic", "pro", "ultra", "cyber"];
/// Commands the bot answers (others count as `unknown` in `bot_commands_total`).
const COMMANDS: [&str; 12] = [
    "start", "menu", "plans", "trial", "config", "referral", "invites", "loyalty", "support",
    "language", "link", "admin",
];

/// The running bot: Telegram client, gRPC client, dialogue store and metrics.
pub struct App {
    telegram: Telegram,
    rpc: Rpc,
    admin: AdminRpc,
    delivery: DeliveryRpc,
    pacer: delivery::Pacer,
    store: Store,
    metrics: BotMetrics,
    config: Arc<Config>,
    username: String,
}

impl App {
    /// Connects the clients (the gRPC channel connects lazily, so the bot starts before the api) and reads the
    /// bot's username from `getMe` unless configured.
    pub async fn new(
        config: Arc<Config>,
        store: Store,
        metrics: BotMetrics,
    ) -> anyhow::Result<Self> {
        let token = config
            .telegram
            .bot_token
            .as_ref()
            .context("telegram.bot_token (TELEGRAM_BOT_TOKEN) is required")?;
        let service_token = config
            .grpc
            .bot_token
            .as_ref()
            .context("grpc.bot_token (CYBERVPN_GRPC_BOT_TOKEN) is required")?;
        let telegram = Telegram::new_url(format!(
            "{}/bot{}",
            config.telegram.api_url.trim_end_matches('/'),
            token.expose()
        ));
        let channel = Channel::from_shared(config.grpc.url.clone())
            .context("grpc.url")?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect_lazy();
        let bearer = cybervpn_rpc::BearerToken::new(service_token.expose())
            .map_err(|status| anyhow::anyhow!(status.message().to_owned()))?;
        let mut app = Self {
            telegram,
            rpc: BotServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            admin: AdminServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            delivery: DeliveryServiceClient::with_interceptor(channel, bearer),
            pacer: delivery::Pacer::new(MESSAGES_PER_SECOND),
            store,
            metrics,
            username: config.bot.username.clone().unwrap_or_default(),
            config,
        };
        if app.username.is_empty() {
            let me = app
                .call("getMe", app.telegram.get_me())
                .await
                .map_err(|err| anyhow::anyhow!("telegram getMe failed: {}", describe(&err)))?;
            app.username = me.result.username.unwrap_or_default();
        }
        Ok(app)
    }

    /// Registers the command menu in both languages.
    pub async fn set_commands(&self) {
        for lang in [Lang::En, Lang::Ru] {
            let commands = [
                "start", "plans", "trial", "config", "referral", "invites", "loyalty", "support",
                "language",
            ]
            .iter()
            .map(|command| {
                BotCommand::builder()
                    .command(*command)
                    .description(text(lang, &format!("command-{command}")))
                    .build()
            })
            .collect();
            let mut params = SetMyCommandsParams::builder().commands(commands).build();
            if lang == Lang::Ru {
                params.language_code = Some("ru".to_owned());
            }
            let _ = self
                .call("setMyCommands", self.telegram.set_my_commands(&params))
                .await;
        }
    }

    /// Long-polls `getUpdates` and handles each update until `shutdown` turns true.
    pub async fn poll(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut offset: i64 = 0;
        let timeout = u32::try_from(self.config.bot.poll_timeout_secs).unwrap_or(30);
        while !*shutdown.borrow() {
            let params = GetUpdatesParams::builder()
                .offset(offset)
                .timeout(timeout)
                .allowed_updates(vec![
                    AllowedUpdate::Message,
                    AllowedUpdate::CallbackQuery,
                    AllowedUpdate::PreCheckoutQuery,
                ])
                .build();
            let updates = tokio::select! {
                _ = shutdown.changed() => return,
                updates = self.call("getUpdates", self.telegram.get_updates(&params)) => updates,
            };
            match updates {
                Ok(response) => {
                    for update in response.result {
                        offset = i64::from(update.update_id) + 1;
                        self.handle(update).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %describe(&err), "getUpdates failed; retrying");
                    self.metrics.errors.with_label_values(&["telegram"]).inc();
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }

    /// Registers `url` with Telegram (`setWebhook` with the secret token) and returns the route that receives
    /// the updates: requests without the secret in `X-Telegram-Bot-Api-Secret-Token` get 401.
    pub async fn webhook(
        self: &Arc<Self>,
        url: &str,
    ) -> anyhow::Result<cybervpn_telemetry::Webhook> {
        let secret = self
            .config
            .bot
            .webhook_secret
            .as_ref()
            .context("bot.webhook_secret is required in webhook mode")?
            .expose()
            .clone();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|slash| rest[slash..].to_owned()))
            .filter(|path| path.len() > 1)
            .context("bot.webhook_url must have a path, like https://bot.example.com/telegram")?;
        let params = SetWebhookParams::builder()
            .url(url)
            .secret_token(secret.clone())
            .allowed_updates(vec![
                AllowedUpdate::Message,
                AllowedUpdate::CallbackQuery,
                AllowedUpdate::PreCheckoutQuery,
            ])
            .build();
        self.call("setWebhook", self.telegram.set_webhook(&params))
            .await
            .map_err(|err| anyhow::anyhow!("telegram setWebhook failed: {}", describe(&err)))?;
        let app = Arc::clone(self);
        let handler: cybervpn_telemetry::WebhookHandler = Arc::new(move |headers, body| {
            let app = Arc::clone(&app);
            let secret = secret.clone();
            Box::pin(async move {
                use subtle::ConstantTimeEq as _;
                let presented = headers
                    .get("x-telegram-bot-api-secret-token")
                    .map(|value| value.as_bytes().to_vec())
                    .unwrap_or_default();
                if !bool::from(presented.ct_eq(secret.as_bytes())) {
                    app.metrics
                        .errors
                        .with_label_values(&["webhook_secret"])
                        .inc();
                    return tonic::codegen::http::StatusCode::UNAUTHORIZED;
                }
                match serde_json::from_slice::<Update>(&body) {
                    Ok(update) => {
                        // Handled before answering: Telegram redelivers what we did not take.
                        app.handle(update).await;
                        tonic::codegen::http::StatusCode::OK
                    }
                    Err(_) => {
                        app.metrics
                            .errors
                            .with_label_values(&["malformed_update"])
                            .inc();
                        tonic::codegen::http::StatusCode::BAD_REQUEST
                    }
                }
            })
        });
        Ok(cybervpn_telemetry::Webhook { path, handler })
    }

    /// Handles one update; failures are logged, counted and answered with a friendly message.
    #[tracing::instrument(name = "update", skip_all, fields(update_id = update.update_id))]
    pub async fn handle(&self, update: Update) {
        self.metrics.updates.inc();
        match update.content {
            UpdateContent::Message(message) => self.on_message(&message).await,
            UpdateContent::CallbackQuery(query) => self.on_callback(&query).await,
            UpdateContent::PreCheckoutQuery(query) => self.on_pre_checkout(&query).await,
            _ => {}
        }
    }

    async fn call<T>(
        &self,
        method: &'static str,
        request: impl Future<Output = Result<T, frankenstein::Error>>,
    ) -> Result<T, frankenstein::Error> {
        let result = request.await;
        let status = match &result {
            Ok(_) => "200".to_owned(),
            Err(frankenstein::Error::Api(error)) => error.error_code.to_string(),
            Err(_) => "transport".to_owned(),
        };
        self.metrics
            .api_requests
            .with_label_values(&[method, &status])
            .inc();
        result
    }

    /// The language to answer `user` in: their customer language, else their Telegram one.
    ///
    /// Remembered in the store for [`LANG_TTL`], so most updates do not ask the api.
    async fn lang(&self, user: &User) -> Lang {
        if let Some(lang) = self.remembered_lang(user_id(user)).await {
            return lang;
        }
        let fallback = Lang::from_tag(user.language_code.as_deref().unwrap_or_default());
        let lang = match self
            .rpc
            .clone()
            .get_customer(pb::GetCustomerRequest {
                telegram_user_id: user_id(user),
            })
            .await
        {
            Ok(state) => state
                .into_inner()
                .customer
                .map_or(fallback, |customer| Lang::from_tag(&customer.language)),
            // Not registered yet: not remembered, /start decides.
            Err(_) => return fallback,
        };
        self.remember_lang(user, lang).await;
        lang
    }

    /// The language remembered for Telegram user `telegram_id`, if any.
    async fn remembered_lang(&self, telegram_id: i64) -> Option<Lang> {
        let values = self.store.numbers(&[lang_key(telegram_id)]).await.ok()?;
        values.first().copied().flatten().map(Lang::from_number)
    }

    /// The language of the customer with Telegram id `telegram_id` (English when unknown).
    async fn lang_of(&self, telegram_id: i64) -> Lang {
        if let Some(lang) = self.remembered_lang(telegram_id).await {
            return lang;
        }
        self.rpc
            .clone()
            .get_customer(pb::GetCustomerRequest {
                telegram_user_id: telegram_id,
            })
            .await
            .ok()
            .and_then(|state| state.into_inner().customer)
            .map_or(Lang::En, |customer| Lang::from_tag(&customer.language))
    }

    async fn remember_lang(&self, user: &User, lang: Lang) {
        let _ = self
            .store
            .set_number(&lang_key(user_id(user)), lang.number(), LANG_TTL)
            .await;
    }

    /// Whether the user may be answered now (per-user throttling and maintenance mode).
    async fn admit(&self, user: &User, chat: i64, linking: bool) -> bool {
        let limit = self.config.bot.user_updates_per_minute;
        let key = format!("bot:rate:{}", user.id);
        if let Ok(RateDecision::Limited { .. }) = self.store.take_token(&key, limit, limit).await {
            self.metrics.errors.with_label_values(&["throttled"]).inc();
            return false;
        }
        // `/link` gets through too, or staff could not link during maintenance; it needs a valid code.
        if self.config.bot.maintenance && !linking && !self.is_staff(user).await {
            let lang = Lang::from_tag(user.language_code.as_deref().unwrap_or_default());
            self.send(chat, &text(lang, "maintenance"), None).await;
            return false;
        }
        true
    }

    /// Whether the user is linked to an active staff account (staff get through maintenance mode).
    async fn is_staff(&self, user: &User) -> bool {
        self.admin
            .clone()
            .get_staff(pb::GetStaffRequest {
                telegram_user_id: user_id(user),
            })
            .await
            .is_ok()
    }

    async fn on_message(&self, message: &Message) {
        let Some(user) = message.from.as_deref() else {
            return;
        };
        let chat = message.chat.id;
        if let Some(paid) = &message.successful_payment {
            return self.on_successful_payment(user, chat, paid).await;
        }
        if let Some(refunded) = &message.refunded_payment {
            return self.on_refunded_payment(user, chat, refunded).await;
        }
        // A photo only matters as a broadcast; its caption is the text.
        let photo = message
            .photo
            .as_ref()
            .and_then(|sizes| sizes.last())
            .map(|size| size.file_id.as_str());
        let Some(body) = message
            .text
            .as_deref()
            .or_else(|| photo.map(|_| message.caption.as_deref().unwrap_or_default()))
        else {
            return;
        };
        if !self.admit(user, chat, body.starts_with("/link ")).await {
            return;
        }
        let lang = self.lang(user).await;
        if let Some(command) = body.strip_prefix('/') {
            let (command, argument) = command.split_once(' ').unwrap_or((command, ""));
            let command = command.split('@').next().unwrap_or_default();
            let known = COMMANDS.contains(&command);
            self.metrics
                .commands
                .with_label_values(&[if known { command } else { "unknown" }])
                .inc();
            let _ = self.store.delete(&dialog_key(user)).await;
            return match command {
                "start" => self.start(user, chat, argument.trim()).await,
                "menu" => self.menu(user, chat, lang).await,
                "plans" => self.plans(chat, lang).await,
                "trial" => self.trial(user, chat, lang).await,
                "config" => self.config_of(user, chat, lang).await,
                "referral" => self.referral(user, chat, lang).await,
                "invites" => self.invites(user, chat, lang).await,
                "loyalty" => self.loyalty(user, chat, lang).await,
                "support" => self.support(user, chat, lang).await,
                "language" => self.language_menu(chat, lang).await,
                "link" => self.link(user, chat, lang, argument.trim()).await,
                "admin" => self.admin_menu(user, chat, lang).await,
                _ => {
                    self.send(chat, &text(lang, "unknown-command"), None).await;
                    self.menu(user, chat, lang).await;
                }
            };
        }
        let dialog = self
            .store
            .numbers(&[dialog_key(user)])
            .await
            .ok()
            .and_then(|values| values.first().copied().flatten());
        if let Some(state) = dialog.filter(|state| *state >= DIALOG_PROMO) {
            return self
                .promo_entered(user, chat, lang, state - DIALOG_PROMO, body)
                .await;
        }
        if let Some(audience) = dialog.and_then(App::broadcast_audience) {
            return self
                .broadcast_draft(user, chat, lang, audience, body, photo)
                .await;
        }
        if photo.is_some() {
            return;
        }
        match dialog {
            Some(DIALOG_SUPPORT) => return self.support_text(user, chat, lang, body).await,
            Some(DIALOG_INVITE) => return self.redeem_invite(user, chat, lang, body).await,
            Some(admin::DIALOG_ADMIN_SEARCH) => {
                return self.admin_search(user, chat, lang, body).await;
            }
            Some(admin::DIALOG_NEW_PROMO) => {
                return self.admin_new_promo(user, chat, lang, body).await;
            }
            Some(state @ (admin::DIALOG_PLAN_PRICES | admin::DIALOG_NEW_PLAN)) => {
                return self.admin_plan_text(user, chat, lang, state, body).await;
            }
            Some(state) if (admin::DIALOG_NOTICE..DIALOG_PROMO).contains(&state) => {
                return self
                    .admin_notice_text(user, chat, lang, state - admin::DIALOG_NOTICE, body)
                    .await;
            }
            _ => {}
        }
        self.send(chat, &text(lang, "unknown-command"), None).await;
        self.menu(user, chat, lang).await;
    }

    async fn on_callback(&self, query: &CallbackQuery) {
        let _ = self
            .call(
                "answerCallbackQuery",
                self.telegram.answer_callback_query(
                    &AnswerCallbackQueryParams::builder()
                        .callback_query_id(query.id.clone())
                        .build(),
                ),
            )
            .await;
        let user = &query.from;
        let chat = match &query.message {
            Some(MaybeInaccessibleMessage::Message(message)) => message.chat.id,
            Some(MaybeInaccessibleMessage::InaccessibleMessage(message)) => message.chat.id,
            None => user_id(user),
        };
        if !self.admit(user, chat, false).await {
            return;
        }
        let lang = self.lang(user).await;
        let data = query.data.as_deref().unwrap_or_default();
        // `payp:<plan index>:<gateway>:<promo code>`: a purchase with a promo code (callback data is ≤ 64 bytes).
        if let Some(rest) = data.strip_prefix("payp:") {
            let mut parts = rest.splitn(3, ':');
            if let (Some(index), Some(gateway), Some(code)) =
                (parts.next(), parts.next(), parts.next())
                && let Some(plan) = self.plan_at(chat, lang, index).await
            {
                return self.pay(user, chat, lang, &plan.id, gateway, code).await;
            }
            return self.plans(chat, lang).await;
        }
        let mut parts = data.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("menu"), None, None) => self.menu(user, chat, lang).await,
            (Some("plans"), None, None) => self.plans(chat, lang).await,
            (Some("tier"), Some(tier), None) => self.tier(chat, lang, tier).await,
            (Some("plan"), Some(plan), None) => self.gateways(chat, lang, plan).await,
            (Some("pay"), Some(plan), Some(gateway)) => {
                self.pay(user, chat, lang, plan, gateway, "").await
            }
            (Some("promo"), Some(plan), None) => self.promo_prompt(user, chat, lang, plan).await,
            (Some("trial"), None, None) => self.trial(user, chat, lang).await,
            (Some("config"), None, None) => self.config_of(user, chat, lang).await,
            (Some("referral"), None, None) => self.referral(user, chat, lang).await,
            (Some("invites"), None, None) => self.invites(user, chat, lang).await,
            (Some("invite"), None, None) => self.invite_prompt(user, chat, lang).await,
            (Some("loyalty"), None, None) => self.loyalty(user, chat, lang).await,
            (Some("support"), None, None) => self.support(user, chat, lang).await,
            (Some("lang"), None, None) => self.language_menu(chat, lang).await,
            (Some("lang"), Some(code), None) => self.set_language(user, chat, code).await,
            (Some("adm"), Some(action), target) => {
                self.admin_action(user, chat, lang, action, target).await;
            }
            _ => self.menu(user, chat, lang).await,
        }
    }

    async fn start(&self, user: &User, chat: i64, argument: &str) {
        let referral = argument.strip_prefix("ref_").unwrap_or_default();
        let registered = self
            .rpc
            .clone()
            .register_customer(pb::RegisterCustomerRequest {
                user: Some(pb::TelegramUser {
                    id: user_id(user),
                    username: user.username.clone().unwrap_or_default(),
                    first_name: user.first_name.clone(),
                    language_code: user.language_code.clone().unwrap_or_default(),
                }),
                referral_code: referral.to_owned(),
            })
            .await;
        let fallback = Lang::from_tag(user.language_code.as_deref().unwrap_or_default());
        let registered = match registered {
            Ok(registered) => registered.into_inner(),
            Err(status) => return self.fail(chat, fallback, &status).await,
        };
        let lang = registered
            .customer
            .as_ref()
            .map_or(fallback, |customer| Lang::from_tag(&customer.language));
        self.remember_lang(user, lang).await;
        let name = user.first_name.clone();
        let key = if registered.created {
            "welcome"
        } else {
            "welcome-back"
        };
        let mut lines = vec![text_with(lang, key, &[("name", name)])];
        if registered.created && !referral.is_empty() {
            lines.push(if registered.referral_refused.is_empty() {
                text(lang, "referral-linked")
            } else {
                text_with(
                    lang,
                    "referral-refused",
                    &[("reason", registered.referral_refused.clone())],
                )
            });
        }
        if registered.trial_available {
            lines.push(text_with(
                lang,
                "trial-offer",
                &[("days", self.config.trial.days.to_string())],
            ));
        }
        self.send(chat, &lines.join("\n\n"), None).await;
        if let Some(code) = argument.strip_prefix("inv_") {
            return self.redeem_invite(user, chat, lang, code).await;
        }
        self.menu(user, chat, lang).await;
    }

    async fn menu(&self, user: &User, chat: i64, lang: Lang) {
        let state = self
            .rpc
            .clone()
            .get_customer(pb::GetCustomerRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let state = match state {
            Ok(state) => state.into_inner(),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let status = match &state.subscription {
            Some(subscription) if subscription.status == "active" => text_with(
                lang,
                "status-active",
                &[("until", short_date(&subscription.expires_at))],
            ),
            _ => text(lang, "status-none"),
        };
        let mut rows = vec![vec![button(text(lang, "button-plans"), "plans")]];
        if state.trial_available {
            rows.push(vec![button(text(lang, "button-trial"), "trial")]);
        }
        rows.push(vec![button(text(lang, "button-config"), "config")]);
        rows.push(vec![
            button(text(lang, "button-referral"), "referral"),
            button(text(lang, "button-invites"), "invites"),
        ]);
        rows.push(vec![
            button(text(lang, "button-loyalty"), "loyalty"),
            button(text(lang, "button-support"), "support"),
        ]);
        rows.push(vec![button(text(lang, "button-language"), "lang")]);
        if let Some(url) = &self.config.telegram.mini_app_url {
            // The Mini App signs in with this Telegram account (POST /api/v1/auth/telegram): the same customer.
            rows.push(vec![
                InlineKeyboardButton::builder()
                    .text(text(lang, "button-mini-app"))
                    .web_app(frankenstein::types::WebAppInfo { url: url.clone() })
                    .build(),
            ]);
        }
        let body = format!("{status}\n\n{}", text(lang, "menu-title"));
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    async fn plans(&self, chat: i64, lang: Lang) {
        let rows = TIERS
            .iter()
            .map(|tier| {
                vec![button(
                    text(lang, &format!("tier-{tier}")),
                    &format!("tier:{tier}"),
                )]
            })
            .chain([vec![button(text(lang, "button-back"), "menu")]])
            .collect();
        self.send(chat, &text(lang, "plans-choose-tier"), Some(keyboard(rows)))
            .await;
    }

    async fn tier(&self, chat: i64, lang: Lang, tier: &str) {
        let plans = match self.rpc.clone().list_plans(pb::ListPlansRequest {}).await {
            Ok(plans) => plans.into_inner().plans,
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let mut rows: Vec<Vec<InlineKeyboardButton>> = plans
            .iter()
            .filter(|plan| plan.tier == tier)
            .map(|plan| {
                let prices = plan
                    .prices
                    .iter()
                    .map(price_label)
                    .collect::<Vec<_>>()
                    .join(" / ");
                let label = text_with(
                    lang,
                    "plan-button",
                    &[("days", plan.duration_days.to_string()), ("prices", prices)],
                );
                vec![button(label, &format!("plan:{}", plan.id))]
            })
            .collect();
        rows.push(vec![button(text(lang, "button-back"), "plans")]);
        let title = text(lang, &format!("tier-{tier}"));
        let body = text_with(lang, "plans-choose-duration", &[("tier", title)]);
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    async fn gateways(&self, chat: i64, lang: Lang, plan_id: &str) {
        let Some(plan) = self.plan(chat, lang, plan_id).await else {
            return;
        };
        let Some(rows) = self
            .gateway_buttons(chat, lang, |code| format!("pay:{}:{code}", plan.id))
            .await
        else {
            return;
        };
        let rows = rows
            .into_iter()
            .chain([
                vec![button(
                    text(lang, "button-promo-enter"),
                    &format!("promo:{}", plan.id),
                )],
                vec![button(
                    text(lang, "button-back"),
                    &format!("tier:{}", plan.tier),
                )],
            ])
            .collect();
        let body = text_with(
            lang,
            "plans-choose-gateway",
            &[
                ("plan", text(lang, &format!("tier-{}", plan.tier))),
                ("days", plan.duration_days.to_string()),
            ],
        );
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    async fn plan(&self, chat: i64, lang: Lang, plan_id: &str) -> Option<pb::Plan> {
        match self.rpc.clone().list_plans(pb::ListPlansRequest {}).await {
            Ok(plans) => {
                let plan = plans
                    .into_inner()
                    .plans
                    .into_iter()
                    .find(|plan| plan.id == plan_id);
                if plan.is_none() {
                    self.plans(chat, lang).await;
                }
                plan
            }
            Err(status) => {
                self.fail(chat, lang, &status).await;
                None
            }
        }
    }

    /// One button per gateway customers can pay through now (configured, not switched off by staff), each
    /// carrying `callback(short gateway code)`; `None` after telling the user the api failed.
    async fn gateway_buttons(
        &self,
        chat: i64,
        lang: Lang,
        callback: impl Fn(&str) -> String,
    ) -> Option<Vec<Vec<InlineKeyboardButton>>> {
        let usable = match self
            .rpc
            .clone()
            .list_payment_methods(pb::ListPaymentMethodsRequest {})
            .await
        {
            Ok(methods) => methods.into_inner().providers,
            Err(status) => {
                self.fail(chat, lang, &status).await;
                return None;
            }
        };
        Some(
            GATEWAYS
                .iter()
                .filter(|(_, name)| usable.iter().any(|p| p == name))
                .map(|(short, name)| {
                    vec![button(
                        text(lang, &format!("gateway-{name}")),
                        &callback(short),
                    )]
                })
                .collect(),
        )
    }

    /// The plan at `index` of the catalogue (promo purchases carry the index, not the id).
    async fn plan_at(&self, chat: i64, lang: Lang, index: &str) -> Option<pb::Plan> {
        let index: usize = index.parse().ok()?;
        match self.rpc.clone().list_plans(pb::ListPlansRequest {}).await {
            Ok(plans) => plans.into_inner().plans.into_iter().nth(index),
            Err(status) => {
                self.fail(chat, lang, &status).await;
                None
            }
        }
    }

    /// "I have a promo code" under a plan: the next text is the code.
    async fn promo_prompt(&self, user: &User, chat: i64, lang: Lang, plan_id: &str) {
        let index = match self.rpc.clone().list_plans(pb::ListPlansRequest {}).await {
            Ok(plans) => plans
                .into_inner()
                .plans
                .iter()
                .position(|p| p.id == plan_id),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let Some(index) = index.and_then(|i| i64::try_from(i).ok()) else {
            return self.plans(chat, lang).await;
        };
        let _ = self
            .store
            .set_number(&dialog_key(user), DIALOG_PROMO + index, DIALOG_TTL)
            .await;
        self.send(chat, &text(lang, "plans-promo-prompt"), None)
            .await;
    }

    /// A promo code typed for the plan at `index`: checked, priced, and offered with the usable gateways.
    async fn promo_entered(&self, user: &User, chat: i64, lang: Lang, index: i64, code: &str) {
        let _ = self.store.delete(&dialog_key(user)).await;
        let Some(plan) = self.plan_at(chat, lang, &index.to_string()).await else {
            return self.plans(chat, lang).await;
        };
        let code = code.trim().to_ascii_uppercase();
        let checked = self
            .rpc
            .clone()
            .validate_promo(pb::ValidatePromoRequest {
                telegram_user_id: user_id(user),
                code: code.clone(),
                // The code alone: the price is on the invoice of the gateway chosen next.
                plan_id: String::new(),
                provider: String::new(),
            })
            .await;
        let quote = match checked {
            Ok(quote) => quote.into_inner(),
            Err(status)
                if status.code() != Code::Unavailable && status.code() != Code::Internal =>
            {
                let body = text_with(
                    lang,
                    "plans-promo-refused",
                    &[("reason", status.message().to_owned())],
                );
                return self.send(chat, &body, None).await;
            }
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let Some(rows) = self
            .gateway_buttons(chat, lang, |short| format!("payp:{index}:{short}:{code}"))
            .await
        else {
            return;
        };
        let body = text_with(
            lang,
            "plans-promo-applied",
            &[
                ("code", quote.code.clone()),
                ("benefit", benefit_label(&quote.benefit)),
                ("plan", plan.code.clone()),
            ],
        );
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    async fn pay(
        &self,
        user: &User,
        chat: i64,
        lang: Lang,
        plan_id: &str,
        gateway: &str,
        promo_code: &str,
    ) {
        let Some((_, provider)) = GATEWAYS.iter().find(|(code, _)| *code == gateway) else {
            return self.plans(chat, lang).await;
        };
        let Some(plan) = self.plan(chat, lang, plan_id).await else {
            return;
        };
        let created = self
            .rpc
            .clone()
            .create_payment(pb::CreatePaymentRequest {
                telegram_user_id: user_id(user),
                plan_id: plan.id.clone(),
                provider: (*provider).to_owned(),
                currency: String::new(),
                promo_code: promo_code.to_owned(),
            })
            .await;
        let payment = match created.map(|r| r.into_inner().payment) {
            Ok(Some(payment)) => payment,
            Ok(None) => return self.fail(chat, lang, &Status::internal("no payment")).await,
            Err(status) => {
                self.metrics
                    .payments
                    .with_label_values(&[provider, "failed"])
                    .inc();
                return self.fail(chat, lang, &status).await;
            }
        };
        self.metrics
            .payments
            .with_label_values(&[provider, "created"])
            .inc();
        let title = text_with(
            lang,
            "invoice-title",
            &[("plan", text(lang, &format!("tier-{}", plan.tier)))],
        );
        if let Some(invoice) = payment.stars_invoice {
            let amount = invoice.prices.first().map_or(0, |price| price.amount);
            let params = SendInvoiceParams::builder()
                .chat_id(chat)
                .title(title.clone())
                .description(text_with(
                    lang,
                    "invoice-description",
                    &[("days", payment.days.to_string())],
                ))
                .payload(invoice.payload)
                .currency("XTR")
                .prices(vec![
                    LabeledPrice::builder()
                        .label(title)
                        .amount(u32::try_from(amount).unwrap_or(u32::MAX))
                        .build(),
                ])
                .build();
            if let Err(err) = self
                .call("sendInvoice", self.telegram.send_invoice(&params))
                .await
            {
                tracing::warn!(error = %describe(&err), "sendInvoice failed");
                self.metrics.errors.with_label_values(&["telegram"]).inc();
            }
            return;
        }
        let amount = price_label(&pb::Price {
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
        });
        let body = text_with(
            lang,
            "pay-by-link",
            &[("amount", amount), ("days", payment.days.to_string())],
        );
        let pay = InlineKeyboardButton::builder()
            .text(text(lang, "button-pay"))
            .url(payment.invoice_url)
            .build();
        self.send(chat, &body, Some(keyboard(vec![vec![pay]])))
            .await;
    }

    async fn on_pre_checkout(&self, query: &PreCheckoutQuery) {
        let answer = self
            .rpc
            .clone()
            .pre_checkout(pb::PreCheckoutRequest {
                telegram_user_id: user_id(&query.from),
                invoice_payload: query.invoice_payload.clone(),
                currency: query.currency.clone(),
                total_amount: i64::from(query.total_amount),
            })
            .await;
        let (ok, message) = match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                (answer.ok, answer.error_message)
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "pre-checkout check failed");
                self.metrics.errors.with_label_values(&["rpc"]).inc();
                let lang = Lang::from_tag(query.from.language_code.as_deref().unwrap_or_default());
                (false, text(lang, "error-generic"))
            }
        };
        let mut params = AnswerPreCheckoutQueryParams::builder()
            .pre_checkout_query_id(query.id.clone())
            .ok(ok)
            .build();
        if !ok {
            params.error_message = Some(message);
        }
        self.metrics
            .payments
            .with_label_values(&[
                "telegram_stars",
                if ok {
                    "pre_checkout_ok"
                } else {
                    "pre_checkout_rejected"
                },
            ])
            .inc();
        let _ = self
            .call(
                "answerPreCheckoutQuery",
                self.telegram.answer_pre_checkout_query(&params),
            )
            .await;
    }

    async fn on_successful_payment(&self, user: &User, chat: i64, paid: &SuccessfulPayment) {
        let lang = self.lang(user).await;
        let confirmed = self
            .rpc
            .clone()
            .confirm_stars_payment(pb::ConfirmStarsPaymentRequest {
                telegram_user_id: user_id(user),
                invoice_payload: paid.invoice_payload.clone(),
                currency: paid.currency.clone(),
                total_amount: i64::from(paid.total_amount),
                telegram_payment_charge_id: paid.telegram_payment_charge_id.clone(),
                provider_payment_charge_id: paid.provider_payment_charge_id.clone(),
            })
            .await;
        let confirmed = match confirmed {
            Ok(confirmed) => confirmed.into_inner(),
            Err(status) => {
                // Telegram does not redeliver this message: the payments sweep and staff see the payment.
                tracing::error!(code = ?status.code(), charge = %paid.telegram_payment_charge_id, "Stars payment not confirmed");
                self.metrics
                    .payments
                    .with_label_values(&["telegram_stars", "error"])
                    .inc();
                return self.fail(chat, lang, &status).await;
            }
        };
        let outcome = confirmed.outcome();
        let label = match outcome {
            pb::PaymentOutcome::Credited => "credited",
            pb::PaymentOutcome::AlreadyCredited => "duplicate",
            pb::PaymentOutcome::NeedsReview => "review",
            pb::PaymentOutcome::Unknown | pb::PaymentOutcome::Unspecified => "unknown",
        };
        self.metrics
            .payments
            .with_label_values(&["telegram_stars", label])
            .inc();
        let body = match (outcome, &confirmed.subscription) {
            (
                pb::PaymentOutcome::Credited | pb::PaymentOutcome::AlreadyCredited,
                Some(subscription),
            ) => text_with(
                lang,
                "payment-received",
                &[("until", short_date(&subscription.expires_at))],
            ),
            _ => text(lang, "payment-review"),
        };
        self.send(chat, &body, None).await;
    }

    async fn on_refunded_payment(&self, user: &User, chat: i64, refunded: &RefundedPayment) {
        let lang = self.lang(user).await;
        let recorded = self
            .rpc
            .clone()
            .record_stars_refund(pb::RecordStarsRefundRequest {
                telegram_user_id: user_id(user),
                invoice_payload: refunded.invoice_payload.clone(),
                telegram_payment_charge_id: refunded.telegram_payment_charge_id.clone(),
            })
            .await;
        match recorded {
            Ok(_) => {
                self.metrics
                    .payments
                    .with_label_values(&["telegram_stars", "refunded"])
                    .inc();
                self.send(chat, &text(lang, "payment-refunded"), None).await;
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "Stars refund not recorded");
                self.metrics.errors.with_label_values(&["rpc"]).inc();
            }
        }
    }

    async fn trial(&self, user: &User, chat: i64, lang: Lang) {
        let activated = self
            .rpc
            .clone()
            .activate_trial(pb::ActivateTrialRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        match activated {
            Ok(activated) => {
                let until = activated
                    .into_inner()
                    .subscription
                    .map(|s| short_date(&s.expires_at))
                    .unwrap_or_default();
                self.send(
                    chat,
                    &text_with(lang, "trial-started", &[("until", until)]),
                    None,
                )
                .await;
            }
            Err(status) if status.code() == Code::AlreadyExists => {
                self.send(chat, &text(lang, "trial-used"), None).await;
            }
            Err(status) => self.fail(chat, lang, &status).await,
        }
    }

    async fn config_of(&self, user: &User, chat: i64, lang: Lang) {
        let config = self
            .rpc
            .clone()
            .get_config(pb::GetConfigRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let config = match config {
            Ok(config) => config.into_inner(),
            Err(status) if status.code() == Code::FailedPrecondition => {
                return self.send(chat, &text(lang, "config-pending"), None).await;
            }
            Err(status)
                if status.code() == Code::NotFound && status.message().contains("subscription") =>
            {
                return self.send(chat, &text(lang, "config-none"), None).await;
            }
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        // frankenstein uploads files from a path: the QR code goes through a private temporary file.
        let path =
            std::env::temp_dir().join(format!("cybervpn-qr-{}.png", uuid::Uuid::new_v4().simple()));
        let caption = text_with(
            lang,
            "config-caption",
            &[("url", config.subscription_url.clone())],
        );
        let sent = match std::fs::write(&path, &config.qr_png) {
            Ok(()) => {
                let params = SendPhotoParams::builder()
                    .chat_id(chat)
                    .photo(path.clone())
                    .caption(caption.clone())
                    .build();
                let sent = self
                    .call("sendPhoto", self.telegram.send_photo(&params))
                    .await;
                let _ = std::fs::remove_file(&path);
                sent.is_ok()
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot write the QR code file");
                false
            }
        };
        if !sent {
            self.send(chat, &caption, None).await;
        }
        let mut body = text(lang, "config-instructions");
        if !config.links.is_empty() {
            body.push_str("\n\n");
            body.push_str(&config.links.join("\n"));
        }
        self.send(chat, &body, None).await;
    }

    async fn referral(&self, user: &User, chat: i64, lang: Lang) {
        let stats = self
            .rpc
            .clone()
            .get_referral_stats(pb::GetReferralStatsRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let stats = match stats {
            Ok(stats) => stats.into_inner(),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let link = format!(
            "https://t.me/{}?start={}",
            self.username, stats.start_parameter
        );
        let body = text_with(
            lang,
            "referral-stats",
            &[
                ("bonus", self.config.referral.bonus_days.to_string()),
                ("max", stats.max_referrals.to_string()),
                ("link", link),
                ("count", stats.referred_count.to_string()),
                ("days", stats.days_earned.to_string()),
            ],
        );
        self.send(chat, &body, None).await;
    }

    async fn invites(&self, user: &User, chat: i64, lang: Lang) {
        let list = self
            .rpc
            .clone()
            .list_invites(pb::ListInvitesRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let list = match list {
            Ok(list) => list.into_inner(),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let mut lines = vec![if list.invites.is_empty() {
            text(lang, "invites-none")
        } else {
            text_with(
                lang,
                "invites-title",
                &[("count", list.available.to_string())],
            )
        }];
        for invite in list.invites.iter().filter(|i| i.status == "available") {
            lines.push(text_with(
                lang,
                "invites-code",
                &[
                    ("code", invite.code.clone()),
                    ("days", invite.free_days.to_string()),
                    ("until", short_date(&invite.expires_at)),
                    (
                        "link",
                        format!(
                            "https://t.me/{}?start={}",
                            self.username, invite.start_parameter
                        ),
                    ),
                ],
            ));
        }
        let mut rows = Vec::new();
        if !list.received {
            rows.push(vec![button(text(lang, "button-redeem-invite"), "invite")]);
        }
        rows.push(vec![button(text(lang, "button-back"), "menu")]);
        self.send(chat, &lines.join("\n\n"), Some(keyboard(rows)))
            .await;
    }

    async fn invite_prompt(&self, user: &User, chat: i64, lang: Lang) {
        let _ = self
            .store
            .set_number(&dialog_key(user), DIALOG_INVITE, DIALOG_TTL)
            .await;
        self.send(chat, &text(lang, "invite-prompt"), None).await;
    }

    async fn redeem_invite(&self, user: &User, chat: i64, lang: Lang, code: &str) {
        let _ = self.store.delete(&dialog_key(user)).await;
        let redeemed = self
            .rpc
            .clone()
            .redeem_invite(pb::RedeemInviteRequest {
                telegram_user_id: user_id(user),
                code: code.to_owned(),
            })
            .await;
        let redeemed = match redeemed {
            Ok(redeemed) => redeemed.into_inner(),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let until = redeemed
            .subscription
            .as_ref()
            .map(|s| short_date(&s.expires_at))
            .unwrap_or_default();
        let body = text_with(
            lang,
            "invite-redeemed",
            &[("days", redeemed.free_days.to_string()), ("until", until)],
        );
        let rows = vec![vec![button(text(lang, "button-config"), "config")]];
        self.send(chat, &body, Some(keyboard(rows))).await;
    }

    async fn loyalty(&self, user: &User, chat: i64, lang: Lang) {
        let loyalty = self
            .rpc
            .clone()
            .get_loyalty(pb::GetLoyaltyRequest {
                telegram_user_id: user_id(user),
            })
            .await;
        let loyalty = match loyalty {
            Ok(loyalty) => loyalty.into_inner(),
            Err(status) => return self.fail(chat, lang, &status).await,
        };
        let level = |name: &str| text(lang, &format!("loyalty-level-{name}"));
        let mut lines = vec![text_with(
            lang,
            "loyalty-status",
            &[
                ("level", level(&loyalty.level)),
                ("days", loyalty.tenure_days.to_string()),
            ],
        )];
        lines.push(if loyalty.next_level.is_empty() {
            text(lang, "loyalty-top")
        } else {
            text_with(
                lang,
                "loyalty-next",
                &[
                    ("level", level(&loyalty.next_level)),
                    ("days", loyalty.days_to_next_level.to_string()),
                ],
            )
        });
        for (on, perk) in [
            (loyalty.priority_support, "loyalty-perk-priority-support"),
            (loyalty.early_access, "loyalty-perk-early-access"),
            (loyalty.premium_squad, "loyalty-perk-premium-squad"),
        ] {
            if on {
                lines.push(text(lang, perk));
            }
        }
        if loyalty.in_grace {
            lines.push(text_with(
                lang,
                "loyalty-grace",
                &[("until", short_date(&loyalty.grace_until))],
            ));
        }
        if loyalty.bonus_days_earned > 0 {
            lines.push(text_with(
                lang,
                "loyalty-bonus",
                &[("days", loyalty.bonus_days_earned.to_string())],
            ));
        }
        self.send(chat, &lines.join("\n"), None).await;
    }

    async fn support(&self, user: &User, chat: i64, lang: Lang) {
        let _ = self
            .store
            .set_number(&dialog_key(user), DIALOG_SUPPORT, DIALOG_TTL)
            .await;
        self.send(chat, &text(lang, "support-prompt"), None).await;
    }

    async fn support_text(&self, user: &User, chat: i64, lang: Lang, body: &str) {
        if body.trim().is_empty() {
            return self.send(chat, &text(lang, "support-empty"), None).await;
        }
        let created = self
            .rpc
            .clone()
            .create_support_request(pb::CreateSupportRequestRequest {
                telegram_user_id: user_id(user),
                text: body.chars().take(2000).collect(),
            })
            .await;
        let _ = self.store.delete(&dialog_key(user)).await;
        match created {
            Ok(ticket) => {
                let id = ticket.into_inner().id;
                let short = id.rsplit('-').next().unwrap_or(&id).to_owned();
                self.send(
                    chat,
                    &text_with(lang, "support-sent", &[("id", short)]),
                    None,
                )
                .await;
            }
            Err(status) => self.fail(chat, lang, &status).await,
        }
    }

    async fn language_menu(&self, chat: i64, lang: Lang) {
        let rows = vec![vec![
            button("English".to_owned(), "lang:en"),
            button("Русский".to_owned(), "lang:ru"),
        ]];
        self.send(chat, &text(lang, "language-choose"), Some(keyboard(rows)))
            .await;
    }

    async fn set_language(&self, user: &User, chat: i64, code: &str) {
        let lang = Lang::from_tag(code);
        let changed = self
            .rpc
            .clone()
            .set_language(pb::SetLanguageRequest {
                telegram_user_id: user_id(user),
                language: lang.code().to_owned(),
            })
            .await;
        match changed {
            Ok(_) => {
                self.remember_lang(user, lang).await;
                self.send(chat, &text(lang, "language-set"), None).await;
                self.menu(user, chat, lang).await;
            }
            Err(status) => self.fail(chat, lang, &status).await,
        }
    }

    /// Tells the user, in their language, that something failed; the cause goes to the logs and metrics.
    async fn fail(&self, chat: i64, lang: Lang, status: &Status) {
        let (kind, body) = match status.code() {
            Code::NotFound if status.message().contains("/start") => {
                ("rpc", text(lang, "error-not-registered"))
            }
            Code::PermissionDenied => ("rpc", text(lang, "error-blocked")),
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists => (
                "rpc",
                text_with(
                    lang,
                    "error-invalid",
                    &[("reason", status.message().to_owned())],
                ),
            ),
            Code::Unavailable if status.message().contains("unavailable") => {
                ("gateway", text(lang, "error-gateway"))
            }
            _ => {
                tracing::warn!(code = ?status.code(), message = status.message(), "gRPC call failed");
                ("rpc", text(lang, "error-generic"))
            }
        };
        self.metrics.errors.with_label_values(&[kind]).inc();
        self.send(chat, &body, None).await;
    }

    async fn send(&self, chat: i64, body: &str, markup: Option<InlineKeyboardMarkup>) {
        let mut params = SendMessageParams::builder()
            .chat_id(chat)
            .text(body)
            .build();
        params.reply_markup = markup.map(ReplyMarkup::InlineKeyboardMarkup);
        params.parse_mode = None::<ParseMode>;
        if let Err(err) = self
            .call("sendMessage", self.telegram.send_message(&params))
            .await
        {
            tracing::warn!(error = %describe(&err), "sendMessage failed");
            self.metrics.errors.with_label_values(&["telegram"]).inc();
        }
    }
}

fn user_id(user: &User) -> i64 {
    i64::try_from(user.id).unwrap_or(i64::MAX)
}

fn lang_key(telegram_id: i64) -> String {
    format!("bot:lang:{telegram_id}")
}

fn dialog_key(user: &User) -> String {
    format!("bot:dialog:{}", user.id)
}

fn button(label: String, data: &str) -> InlineKeyboardButton {
    InlineKeyboardButton::builder()
        .text(label)
        .callback_data(data)
        .build()
}

fn keyboard(rows: Vec<Vec<InlineKeyboardButton>>) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::builder()
        .inline_keyboard(rows)
        .build()
}

/// `4.99 USD`, `450 RUB`, `150 ⭐`.
pub(crate) fn price_label(price: &pb::Price) -> String {
    match price.currency.as_str() {
        "XTR" => format!("{} ⭐", price.amount_minor),
        currency => format!(
            "{}.{:02} {currency}",
            price.amount_minor / 100,
            price.amount_minor % 100
        ),
    }
}

/// A promo benefit as `−20%`, `+7d` or `−5.00 USD` (from `percent_off:20`, `bonus_days:7`, `amount_off:500 USD`).
pub(crate) fn benefit_label(benefit: &str) -> String {
    match benefit.split_once(':') {
        Some(("percent_off", n)) => format!("−{n}%"),
        Some(("bonus_days", n)) => format!("+{n}d"),
        Some(("amount_off", amount)) => match amount.split_once(' ') {
            Some((minor, currency)) => format!(
                "−{}",
                price_label(&pb::Price {
                    amount_minor: minor.parse().unwrap_or(0),
                    currency: currency.to_owned(),
                })
            ),
            None => amount.to_owned(),
        },
        _ => benefit.to_owned(),
    }
}

/// `2026-11-28` from an RFC 3339 time (the text as is if it does not parse).
fn short_date(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// An error without the request URL (it holds the bot token).
fn describe(err: &frankenstein::Error) -> String {
    match err {
        frankenstein::Error::Api(response) => {
            format!("{} {}", response.error_code, response.description)
        }
        frankenstein::Error::HttpReqwest(err) => {
            let text = err.to_string();
            match err.url() {
                Some(url) => text.replace(url.as_str(), "<telegram>"),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

/// Runs the bot until SIGINT/SIGTERM: `/health` and `/metrics` on `bot.listen`, updates by long polling (or a
/// webhook), and the notification and broadcast jobs from the Redis queue.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics = cybervpn_telemetry::Metrics::new()?;
    let queue = match &config.redis.url {
        Some(url) => Some(
            Queue::redis(
                url.expose(),
                &config.redis.key_prefix,
                JobMetrics::register(metrics.registry())?,
            )
            .await
            .context("job queue (redis.url)")?,
        ),
        None => {
            tracing::warn!("redis.url is not set: notifications and broadcasts are not delivered");
            None
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        cybervpn_telemetry::shutdown_signal().await;
        let _ = stop.send(true);
    });
    run_with(config, metrics, queue, stopped).await
}

/// Runs the bot until `shutdown` turns true, consuming deliveries from `queue` when given (the standalone
/// process passes its in-process queue).
pub async fn run_with(
    config: Arc<Config>,
    metrics: cybervpn_telemetry::Metrics,
    queue: Option<Queue>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let bot_metrics = BotMetrics::register(metrics.registry())?;
    let store = match &config.redis.url {
        Some(url) => Store::Redis(
            cybervpn_kv::Kv::new(
                url.expose(),
                &config.redis.key_prefix,
                config.redis.pool_size,
            )
            .context("redis")?,
        ),
        None => Store::memory(),
    };
    let listener = tokio::net::TcpListener::bind(&config.bot.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.bot.listen))?;
    let health: cybervpn_telemetry::HealthCheck =
        Arc::new(|| Box::pin(async { Ok(serde_json::json!({ "status": "ok" })) }));
    let app = Arc::new(App::new(Arc::clone(&config), store, bot_metrics).await?);
    app.set_commands().await;
    let consumer = queue.map(|queue| {
        let app = Arc::clone(&app);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = consume(app, queue, shutdown).await {
                tracing::error!(error = %err, "delivery consumer failed");
            }
        })
    });
    let ops = match &config.bot.webhook_url {
        Some(url) => {
            let webhook = app.webhook(url).await?;
            let ops =
                cybervpn_telemetry::OpsServer::spawn_with(listener, metrics, health, Some(webhook));
            tracing::info!(username = %app.username, "bot receiving updates by webhook");
            let mut stopped = shutdown;
            let _ = stopped.wait_for(|stop| *stop).await;
            ops
        }
        None => {
            let ops = cybervpn_telemetry::OpsServer::spawn(listener, metrics, health);
            // getUpdates answers 409 while a webhook is set: polling takes over from a previous webhook run.
            let _ = app
                .call(
                    "deleteWebhook",
                    app.telegram
                        .delete_webhook(&DeleteWebhookParams::builder().build()),
                )
                .await;
            tracing::info!(username = %app.username, "bot polling for updates");
            app.poll(shutdown).await;
            ops
        }
    };
    if let Some(consumer) = consumer {
        let _ = consumer.await;
    }
    ops.stop().await;
    Ok(())
}
