//! What the fake Telegram remembers: the update queue, messages, queries, Stars charges, chat members and the
//! injected faults; and how pushed updates are built.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::text::utf16_length;
use crate::{MemberStatus, PreCheckoutAnswer, User};

/// Update kinds sent when the bot never chose (`allowed_updates` empty or absent), as on Telegram.
const NOT_BY_DEFAULT: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// A message in a chat, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredMessage {
    pub(crate) chat_id: i64,
    pub(crate) from_bot: bool,
    pub(crate) deleted: bool,
    /// The text (or caption) as the bot sent it, markup included, to tell whether an edit changes anything.
    pub(crate) source: Option<String>,
    pub(crate) json: Value,
}

/// The webhook set by `setWebhook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret_token: Option<String>,
    pub(crate) last_error: Option<(i64, String)>,
}

/// A pre-checkout query waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingCheckout {
    pub(crate) pushed: Instant,
    pub(crate) answered: bool,
}

/// A file the fake stores under a `file_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFile {
    pub(crate) bytes: Vec<u8>,
    pub(crate) unique_id: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) name: String,
    pub(crate) mime_type: Option<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) bot_id: i64,
    pub(crate) bot_username: String,
    next_update_id: i64,
    next_message_id: i64,
    next_query_id: u64,
    next_file: u64,
    pub(crate) updates: VecDeque<Value>,
    /// The bot's last `allowed_updates` choice; `None` is Telegram's default set.
    pub(crate) allowed_updates: Option<Vec<String>>,
    /// Bumped by every `getUpdates`, so that an older long poll sees it was replaced.
    pub(crate) poll_generation: u64,
    pub(crate) webhook: Option<Webhook>,
    pub(crate) messages: HashMap<i64, StoredMessage>,
    pub(crate) users: HashMap<i64, User>,
    /// Callback query id → answered.
    pub(crate) callbacks: HashMap<String, bool>,
    pub(crate) pre_checkouts: HashMap<String, PendingCheckout>,
    pub(crate) precheckout_answers: Vec<PreCheckoutAnswer>,
    /// Charge id → the user who paid.
    pub(crate) charges: HashMap<String, i64>,
    pub(crate) refunded: HashSet<String>,
    pub(crate) members: HashMap<(i64, i64), MemberStatus>,
    /// (scope, language code) → commands.
    pub(crate) commands: HashMap<(String, String), Value>,
    pub(crate) files: HashMap<String, StoredFile>,
    pub(crate) blocked: HashSet<i64>,
    /// Sends to these chats fail with 502 this many more times.
    pub(crate) failing: HashMap<i64, usize>,
    /// `retry_after` of each coming forced 429.
    pub(crate) rate_limits: VecDeque<u64>,
    pub(crate) global_rate: Option<u32>,
    pub(crate) recent_sends: VecDeque<Instant>,
}

fn now() -> i64 {
    Utc::now().timestamp()
}

impl State {
    pub(crate) fn new(bot_id: i64) -> State {
        State {
            bot_id,
            bot_username: "cybervpn_test_bot".to_owned(),
            next_update_id: 100_000_001,
            next_message_id: 1,
            next_query_id: 1,
            next_file: 1,
            updates: VecDeque::new(),
            allowed_updates: None,
            poll_generation: 0,
            webhook: None,
            messages: HashMap::new(),
            users: HashMap::new(),
            callbacks: HashMap::new(),
            pre_checkouts: HashMap::new(),
            precheckout_answers: Vec::new(),
            charges: HashMap::new(),
            refunded: HashSet::new(),
            members: HashMap::new(),
            commands: HashMap::new(),
            files: HashMap::new(),
            blocked: HashSet::new(),
            failing: HashMap::new(),
            rate_limits: VecDeque::new(),
            global_rate: None,
            recent_sends: VecDeque::new(),
        }
    }

    /// The bot's own `User` object.
    pub(crate) fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": "CyberVPN Test Bot",
            "username": self.bot_username,
        })
    }

    /// The `Chat` object of a chat id: private for positive ids (named after the user when known), a
    /// supergroup for `-100…` ids, a group otherwise.
    pub(crate) fn chat(&self, chat_id: i64) -> Value {
        if chat_id > 0 {
            let mut chat = json!({"id": chat_id, "type": "private"});
            match self.users.get(&chat_id) {
                Some(user) => {
                    chat["first_name"] = json!(user.first_name);
                    if let Some(username) = &user.username {
                        chat["username"] = json!(username);
                    }
                }
                None => chat["first_name"] = json!(format!("User {chat_id}")),
            }
            chat
        } else if chat_id < -1_000_000_000_000 {
            json!({"id": chat_id, "type": "supergroup", "title": "Test supergroup"})
        } else {
            json!({"id": chat_id, "type": "group", "title": "Test group"})
        }
    }

    /// The `User` object of a user id, from what the fake saw of them.
    pub(crate) fn user(&self, user_id: i64) -> Value {
        self.users.get(&user_id).map_or_else(
            || json!({"id": user_id, "is_bot": false, "first_name": format!("User {user_id}")}),
            User::to_json,
        )
    }

    fn next_query_id(&mut self) -> String {
        let id = self.next_query_id;
        self.next_query_id += 1;
        // Telegram's query ids are long decimal strings.
        format!("{}", 4_270_000_000_000_000_000_u64 + id)
    }

    /// A fresh `(file_id, file_unique_id)` pair.
    pub(crate) fn next_file_ids(&mut self) -> (String, String) {
        let number = self.next_file;
        self.next_file += 1;
        (
            format!("AgACAgIAAxkBAAIB{number:08}FakeFileId"),
            format!("AQAD{number:06}"),
        )
    }

    /// A new message with the next id, a date and its chat; `from` is the bot when `from` is `None`.
    pub(crate) fn new_message(&mut self, chat_id: i64, from: Option<&User>) -> Map<String, Value> {
        let message_id = self.next_message_id;
        self.next_message_id += 1;
        let mut message = Map::new();
        message.insert("message_id".to_owned(), json!(message_id));
        let from = from.map_or_else(|| self.bot_user(), User::to_json);
        message.insert("from".to_owned(), from);
        message.insert("chat".to_owned(), self.chat(chat_id));
        message.insert("date".to_owned(), json!(now()));
        message
    }

    /// Keeps a message for later edits, deletes and button presses.
    pub(crate) fn store(
        &mut self,
        chat_id: i64,
        from_bot: bool,
        source: Option<String>,
        message: &Map<String, Value>,
    ) {
        let Some(message_id) = message.get("message_id").and_then(Value::as_i64) else {
            return;
        };
        self.messages.insert(
            message_id,
            StoredMessage {
                chat_id,
                from_bot,
                deleted: false,
                source,
                json: Value::Object(message.clone()),
            },
        );
    }

    fn push(&mut self, kind: &str, body: Value) -> i64 {
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let mut update = Map::new();
        update.insert("update_id".to_owned(), json!(update_id));
        update.insert(kind.to_owned(), body);
        self.updates.push_back(Value::Object(update));
        update_id
    }

    pub(crate) fn push_raw(&mut self, update: Value) -> i64 {
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let mut update = match update {
            Value::Object(update) => update,
            other => {
                let mut wrapped = Map::new();
                wrapped.insert("message".to_owned(), other);
                wrapped
            }
        };
        update.insert("update_id".to_owned(), json!(update_id));
        self.updates.push_back(Value::Object(update));
        update_id
    }

    fn remember(&mut self, user: &User) {
        self.users.insert(user.id, user.clone());
    }

    /// Queues `message` (built with [`State::new_message`]) from a user as a `message` update.
    pub(crate) fn push_message(&mut self, message: Map<String, Value>) -> i64 {
        self.push("message", Value::Object(message))
    }

    pub(crate) fn push_text(&mut self, user: &User, chat_id: i64, text: &str) -> i64 {
        self.remember(user);
        let mut message = self.new_message(chat_id, Some(user));
        message.insert("text".to_owned(), json!(text));
        if text.starts_with('/') {
            let command = text.split(char::is_whitespace).next().unwrap_or(text);
            message.insert(
                "entities".to_owned(),
                json!([{"type": "bot_command", "offset": 0, "length": utf16_length(command)}]),
            );
        }
        self.store(chat_id, false, Some(text.to_owned()), &message);
        self.push("message", Value::Object(message))
    }

    pub(crate) fn push_callback(&mut self, user: &User, message_id: i64, data: &str) -> String {
        self.remember(user);
        let message = match self
            .messages
            .get(&message_id)
            .filter(|message| !message.deleted)
        {
            Some(stored) => stored.json.clone(),
            // An inaccessible message: Telegram sends only its chat, id and a zero date.
            None => json!({"message_id": message_id, "date": 0, "chat": self.chat(user.id)}),
        };
        let chat_id = message
            .pointer("/chat/id")
            .and_then(Value::as_i64)
            .unwrap_or(user.id);
        let id = self.next_query_id();
        let query = json!({
            "id": id,
            "from": user.to_json(),
            "message": message,
            "chat_instance": format!("{}", chat_id.unsigned_abs().wrapping_mul(0x9E37_79B9) % 10_000_000_000_000),
            "data": data,
        });
        self.callbacks.insert(id.clone(), false);
        self.push("callback_query", query);
        id
    }

    pub(crate) fn push_pre_checkout(
        &mut self,
        user: &User,
        currency: &str,
        total_amount: i64,
        payload: &str,
    ) -> String {
        self.remember(user);
        let id = self.next_query_id();
        let query = json!({
            "id": id,
            "from": user.to_json(),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        });
        self.pre_checkouts.insert(
            id.clone(),
            PendingCheckout {
                pushed: Instant::now(),
                answered: false,
            },
        );
        self.push("pre_checkout_query", query);
        id
    }

    /// A `successful_payment` or `refunded_payment` service message in the user's private chat.
    pub(crate) fn push_payment(
        &mut self,
        user: &User,
        kind: &str,
        currency: &str,
        total_amount: i64,
        payload: &str,
        telegram_payment_charge_id: &str,
    ) -> i64 {
        self.remember(user);
        let mut message = self.new_message(user.id, Some(user));
        // Stars payments have no payment provider; its charge id comes back empty.
        let provider_charge = if currency == "XTR" {
            String::new()
        } else {
            format!("provider_{telegram_payment_charge_id}")
        };
        message.insert(
            kind.to_owned(),
            json!({
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": telegram_payment_charge_id,
                "provider_payment_charge_id": provider_charge,
            }),
        );
        self.store(user.id, false, None, &message);
        self.push("message", Value::Object(message))
    }

    /// Forgets updates below `offset` (a negative offset keeps only the last `-offset`), as `getUpdates` does.
    pub(crate) fn acknowledge(&mut self, offset: i64) {
        if offset > 0 {
            self.updates.retain(|update| {
                update
                    .get("update_id")
                    .and_then(Value::as_i64)
                    .is_some_and(|id| id >= offset)
            });
        } else if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            let drop = self.updates.len().saturating_sub(keep);
            self.updates.drain(..drop);
        }
    }

    fn allowed(&self, update: &Value) -> bool {
        let Some(kind) = update
            .as_object()
            .and_then(|update| update.keys().find(|key| *key != "update_id"))
        else {
            return false;
        };
        match &self.allowed_updates {
            Some(allowed) => allowed.iter().any(|allowed| allowed == kind),
            None => !NOT_BY_DEFAULT.contains(&kind.as_str()),
        }
    }

    /// Drops queued updates of kinds the bot did not ask for (Telegram never queues them).
    pub(crate) fn drop_disallowed(&mut self) {
        let queue = std::mem::take(&mut self.updates);
        self.updates = queue
            .into_iter()
            .filter(|update| self.allowed(update))
            .collect();
    }

    pub(crate) fn webhook_failed(&mut self, message: String) {
        if let Some(webhook) = &mut self.webhook {
            webhook.last_error = Some((now(), message));
        }
    }

    /// Takes a slot for a send-type call, or the 429 to answer instead.
    pub(crate) fn take_send_slot(&mut self) -> Result<(), u64> {
        if let Some(retry_after) = self.rate_limits.pop_front() {
            return Err(retry_after);
        }
        if let Some(max) = self.global_rate {
            let now = Instant::now();
            while self
                .recent_sends
                .front()
                .is_some_and(|sent| now.duration_since(*sent) >= Duration::from_secs(1))
            {
                self.recent_sends.pop_front();
            }
            if self.recent_sends.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
                return Err(1);
            }
            self.recent_sends.push_back(now);
        }
        Ok(())
    }
}
