//! A loopback Telegram Bot API for tests, driven by the bot's real client.
//!
//! It owns the Bot API wire format as CyberVPN uses it: `/bot<token>/<method>` over JSON, form and multipart
//! bodies, updates served by long polling or pushed to a webhook, messages and uploads, callback and pre-checkout
//! queries, Telegram Stars invoices and refunds, and Telegram's error answers (400, 401, 403, 404, 409, 429).
//! Tests push realistic updates ([`TelegramFake::send_text`], [`TelegramFake::press_button`], …), read back every
//! call ([`TelegramFake::calls`]) and inject faults ([`TelegramFake::block_user`],
//! [`TelegramFake::rate_limit_next`], [`TelegramFake::enforce_global_rate`]).

#![forbid(unsafe_code)]

mod input;
mod methods;
mod server;
mod state;
mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::server::{Shared, lock};
use crate::state::State;

/// How long a webhook delivery may take before it counts as failed.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A Telegram user who talks to the bot in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id, also the id of their private chat with the bot.
    pub id: i64,
    /// The first name.
    pub first_name: String,
    /// The `@username`, without the `@`.
    pub username: Option<String>,
    /// The IETF language tag of the user's client, such as `ru`.
    pub language_code: Option<String>,
}

impl User {
    /// A user with only an id and a first name.
    pub fn new(id: i64, first_name: impl Into<String>) -> User {
        User {
            id,
            first_name: first_name.into(),
            username: None,
            language_code: None,
        }
    }

    /// The same user with a `@username`.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> User {
        self.username = Some(username.into());
        self
    }

    /// The same user with a client language.
    #[must_use]
    pub fn with_language(mut self, language_code: impl Into<String>) -> User {
        self.language_code = Some(language_code.into());
        self
    }

    /// The Bot API `User` object.
    pub fn to_json(&self) -> Value {
        let mut user = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        if let Some(language_code) = &self.language_code {
            user["language_code"] = json!(language_code);
        }
        user
    }
}

/// A file part of a `multipart/form-data` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The form field name (`photo`, or the name an `attach://<name>` value points at).
    pub field: String,
    /// The file name the client sent.
    pub filename: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The file contents.
    pub bytes: Vec<u8>,
}

/// One Bot API call the fake received with the right token, and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method, spelled as in the Bot API docs (`sendMessage`), or as sent when unknown.
    pub method: String,
    /// The parameters as one JSON object, whatever the encoding; form fields holding JSON (`reply_markup`,
    /// `prices`, …), integers (`chat_id`, …) and booleans are decoded as JSON values.
    pub params: Value,
    /// The uploaded files, in request order.
    pub files: Vec<UploadedFile>,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered (`{"ok":…}`).
    pub response: Value,
}

impl Call {
    /// Whether the call succeeded (`"ok": true`).
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// A string parameter.
    pub fn str_param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// The `chat_id` parameter, when it is numeric.
    pub fn chat_id(&self) -> Option<i64> {
        match self.params.get("chat_id")? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// The uploaded file of a form field.
    pub fn file(&self, field: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|file| file.field == field)
    }

    /// The `result` of a successful call.
    pub fn result(&self) -> Option<&Value> {
        self.response.get("result")
    }
}

/// An `answerPreCheckoutQuery` call about a query the fake knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreCheckoutAnswer {
    /// The pre-checkout query id.
    pub query_id: String,
    /// Whether the bot accepted the order.
    pub ok: bool,
    /// The reason shown to the buyer when it did not.
    pub error_message: Option<String>,
    /// How long after the query was pushed the answer came (Telegram allows 10 seconds).
    pub elapsed: Duration,
}

/// A member's status in a chat, as `getChatMember` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// The owner.
    Creator,
    /// An administrator.
    Administrator,
    /// An ordinary member.
    Member,
    /// Not a member (never joined, or left).
    Left,
    /// Banned.
    Kicked,
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A Bot API on `127.0.0.1:<port>` for one bot token; clones share it, and it stops when the last one drops.
#[derive(Clone)]
pub struct TelegramFake {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for TelegramFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramFake")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TelegramFake {
    /// Starts a fake answering the bot `token` only (others get 401 Unauthorized, as on Telegram).
    pub async fn start(token: impl Into<String>) -> std::io::Result<TelegramFake> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let token = token.into();
        let bot_id = token
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .unwrap_or(1);
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            token,
            state: Mutex::new(State::new(bot_id)),
            calls: Mutex::new(Vec::new()),
            updates_pushed: Notify::new(),
            client,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped));
        Ok(TelegramFake {
            handle: Arc::new(Handle { shared, addr, stop }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The origin to configure, `http://127.0.0.1:PORT`; the bot appends `/bot<token>/<method>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// The full API prefix `http://127.0.0.1:PORT/bot<token>` (frankenstein's `api_url`).
    pub fn api_url(&self) -> String {
        format!("{}/bot{}", self.url(), self.shared().token)
    }

    /// The bot token the fake accepts.
    pub fn token(&self) -> &str {
        &self.shared().token
    }

    /// The bot's user id (the number before `:` in the token, else 1).
    pub fn bot_id(&self) -> i64 {
        lock(&self.shared().state).bot_id
    }

    /// Sets the bot's `@username` returned by `getMe` (default `cybervpn_test_bot`).
    pub fn set_bot_username(&self, username: &str) {
        lock(&self.shared().state).bot_username = username.to_owned();
    }

    fn push<T>(&self, push: impl FnOnce(&mut State) -> T) -> T {
        let pushed = push(&mut lock(&self.shared().state));
        self.shared().updates_pushed.notify_waiters();
        pushed
    }

    /// Queues a text message from `user` in `chat_id` (a `bot_command` entity when it starts with `/`);
    /// returns the update id.
    pub fn send_text(&self, user: &User, chat_id: i64, text: &str) -> i64 {
        self.push(|state| state.push_text(user, chat_id, text))
    }

    /// Queues a callback query: `user` pressed the inline button carrying `data` under the bot's message
    /// `message_id`; returns the callback query id.
    pub fn press_button(&self, user: &User, message_id: i64, data: &str) -> String {
        self.push(|state| state.push_callback(user, message_id, data))
    }

    /// Queues a pre-checkout query (the buyer pressed Pay); returns the query id, to be answered within 10 s.
    pub fn pre_checkout(
        &self,
        user: &User,
        currency: &str,
        total_amount: i64,
        payload: &str,
    ) -> String {
        self.push(|state| state.push_pre_checkout(user, currency, total_amount, payload))
    }

    /// Queues a `successful_payment` message and registers the charge for refunds; returns the update id.
    pub fn successful_payment(
        &self,
        user: &User,
        currency: &str,
        total_amount: i64,
        payload: &str,
        telegram_payment_charge_id: &str,
    ) -> i64 {
        self.push(|state| {
            let id = state.push_payment(
                user,
                "successful_payment",
                currency,
                total_amount,
                payload,
                telegram_payment_charge_id,
            );
            state
                .charges
                .insert(telegram_payment_charge_id.to_owned(), user.id);
            id
        })
    }

    /// Queues a `refunded_payment` message; returns the update id.
    pub fn refunded_payment(
        &self,
        user: &User,
        currency: &str,
        total_amount: i64,
        payload: &str,
        telegram_payment_charge_id: &str,
    ) -> i64 {
        self.push(|state| {
            state.push_payment(
                user,
                "refunded_payment",
                currency,
                total_amount,
                payload,
                telegram_payment_charge_id,
            )
        })
    }

    /// Queues any update object (its `update_id` is replaced by the next one); returns the update id.
    pub fn push_update(&self, update: Value) -> i64 {
        self.push(|state| state.push_raw(update))
    }

    /// The updates not yet acknowledged, oldest first.
    pub fn pending_updates(&self) -> Vec<Value> {
        lock(&self.shared().state).updates.iter().cloned().collect()
    }

    /// The webhook URL set by `setWebhook`, if any.
    pub fn webhook_url(&self) -> Option<String> {
        lock(&self.shared().state)
            .webhook
            .as_ref()
            .map(|webhook| webhook.url.clone())
    }

    /// POSTs the pending updates, oldest first, to the webhook with its `X-Telegram-Bot-Api-Secret-Token`;
    /// a 2xx answer acknowledges an update, anything else stops delivery (Telegram retries later). Returns the
    /// statuses received; an error when no webhook is set or the receiver cannot be reached.
    pub async fn deliver_webhook(&self) -> Result<Vec<u16>, String> {
        let mut statuses = Vec::new();
        loop {
            let next = {
                let mut state = lock(&self.shared().state);
                let Some(webhook) = state.webhook.clone() else {
                    return Err("no webhook is set".to_owned());
                };
                state.drop_disallowed();
                state
                    .updates
                    .front()
                    .cloned()
                    .map(|update| (webhook, update))
            };
            let Some((webhook, update)) = next else {
                return Ok(statuses);
            };
            let status = self
                .post(&webhook.url, &update, webhook.secret_token.as_deref())
                .await;
            let mut state = lock(&self.shared().state);
            match status {
                Ok(status) if (200..300).contains(&status) => {
                    statuses.push(status);
                    let id = update.get("update_id").cloned();
                    state
                        .updates
                        .retain(|queued| queued.get("update_id") != id.as_ref());
                }
                Ok(status) => {
                    statuses.push(status);
                    state.webhook_failed(format!("Wrong response from the webhook: {status}"));
                    return Ok(statuses);
                }
                Err(error) => {
                    state.webhook_failed("Connection refused".to_owned());
                    return Err(error);
                }
            }
        }
    }

    /// POSTs one update to the webhook with the given secret header (`None` sends none), as a forger could;
    /// returns the receiver's status. The update is not queued.
    pub async fn post_webhook(
        &self,
        update: &Value,
        secret_token: Option<&str>,
    ) -> Result<u16, String> {
        let url = self
            .webhook_url()
            .ok_or_else(|| "no webhook is set".to_owned())?;
        self.post(&url, update, secret_token).await
    }

    async fn post(
        &self,
        url: &str,
        update: &Value,
        secret_token: Option<&str>,
    ) -> Result<u16, String> {
        let mut request = self
            .shared()
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = secret_token {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let body = serde_json::to_vec(update).map_err(|error| error.to_string())?;
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| format!("webhook delivery to {url} failed: {error}"))?;
        Ok(response.status().as_u16())
    }

    /// Every call received with the right token, in the order they were answered.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared().calls).clone()
    }

    /// The calls of one method (`sendMessage`), in order.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        lock(&self.shared().calls)
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// The successful sends (`sendMessage`, `sendPhoto`, `sendDocument`, `sendInvoice`) to a chat, in order.
    pub fn sent_to(&self, chat_id: i64) -> Vec<Call> {
        lock(&self.shared().calls)
            .iter()
            .filter(|call| {
                call.ok()
                    && methods::Method::parse(&call.method).is_some_and(methods::Method::is_post)
                    && call.chat_id() == Some(chat_id)
            })
            .cloned()
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        lock(&self.shared().calls).clear();
    }

    /// A message as it stands now (after edits); `None` when unknown or deleted.
    pub fn message(&self, message_id: i64) -> Option<Value> {
        lock(&self.shared().state)
            .messages
            .get(&message_id)
            .filter(|message| !message.deleted)
            .map(|message| message.json.clone())
    }

    /// The ids of callback queries pushed but not answered yet.
    pub fn unanswered_callbacks(&self) -> Vec<String> {
        let state = lock(&self.shared().state);
        let mut ids: Vec<String> = state
            .callbacks
            .iter()
            .filter(|(_, answered)| !**answered)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The `answerPreCheckoutQuery` calls about known queries, in order, with how long each took.
    pub fn precheckout_answers(&self) -> Vec<PreCheckoutAnswer> {
        lock(&self.shared().state).precheckout_answers.clone()
    }

    /// The commands set by `setMyCommands` for the default scope and a language (`None`: all languages).
    pub fn my_commands(&self, language_code: Option<&str>) -> Option<Value> {
        lock(&self.shared().state)
            .commands
            .get(&("default".to_owned(), language_code.unwrap_or("").to_owned()))
            .cloned()
    }

    /// Registers a Stars charge `user_id` paid, as Telegram would after `successful_payment`.
    pub fn add_charge(&self, user_id: i64, telegram_payment_charge_id: &str) {
        lock(&self.shared().state)
            .charges
            .insert(telegram_payment_charge_id.to_owned(), user_id);
    }

    /// Whether `refundStarPayment` refunded the charge.
    pub fn refunded(&self, telegram_payment_charge_id: &str) -> bool {
        lock(&self.shared().state)
            .refunded
            .contains(telegram_payment_charge_id)
    }

    /// Queues a photo message from `user` with `caption`, as Telegram delivers one: the photo is stored, and the
    /// update carries its sizes (largest last); returns the largest size's `file_id`.
    pub fn send_photo(&self, user: &User, caption: &str) -> String {
        let mut file_id = String::new();
        self.push(|state| {
            let (id, unique_id) = state.next_file_ids();
            state.files.insert(
                id.clone(),
                state::StoredFile {
                    bytes: vec![0; 64],
                    unique_id: unique_id.clone(),
                    width: 800,
                    height: 600,
                    name: "photo.jpg".to_owned(),
                    mime_type: Some("image/jpeg".to_owned()),
                },
            );
            file_id.clone_from(&id);
            let mut message = state.new_message(user.id, Some(user));
            message.insert(
                "photo".to_owned(),
                serde_json::json!([{"file_id": id, "file_unique_id": unique_id, "width": 800, "height": 600}]),
            );
            message.insert("caption".to_owned(), serde_json::json!(caption));
            state.push_message(message)
        });
        file_id
    }

    /// Sets what `getChatMember` reports for `user_id` in `chat_id` (default: member of their private chat,
    /// `left` elsewhere).
    pub fn set_chat_member(&self, chat_id: i64, user_id: i64, status: MemberStatus) {
        lock(&self.shared().state)
            .members
            .insert((chat_id, user_id), status);
    }

    /// Makes sends and edits to `chat_id` fail with 403 `Forbidden: bot was blocked by the user`.
    pub fn block_user(&self, chat_id: i64) {
        lock(&self.shared().state).blocked.insert(chat_id);
    }

    /// Makes the next `count` sends and edits to `chat_id` fail with 502 (Telegram having a bad moment).
    pub fn fail_sends_to(&self, chat_id: i64, count: usize) {
        lock(&self.shared().state).failing.insert(chat_id, count);
    }

    /// Undoes [`TelegramFake::block_user`].
    pub fn unblock_user(&self, chat_id: i64) {
        lock(&self.shared().state).blocked.remove(&chat_id);
    }

    /// Answers the next `count` send-type calls (sends and edits) with 429 and `parameters.retry_after`.
    pub fn rate_limit_next(&self, count: usize, retry_after: u64) {
        lock(&self.shared().state)
            .rate_limits
            .extend(std::iter::repeat_n(retry_after, count));
    }

    /// Answers 429 (`retry_after` 1) to any send-type call that would make more than `max_per_sec` accepted
    /// ones within one second (a sliding window); 0 turns the check off.
    pub fn enforce_global_rate(&self, max_per_sec: u32) {
        let mut state = lock(&self.shared().state);
        state.global_rate = (max_per_sec > 0).then_some(max_per_sec);
        state.recent_sends.clear();
    }
}
