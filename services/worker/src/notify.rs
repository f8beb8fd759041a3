//! Notifications: recorded once (with their delivery job, in one transaction) and delivered over Telegram.

use std::time::Duration;

use chrono::Utc;
use cybervpn_config::TelegramConfig;
use cybervpn_db::{Audience, Db, DbError, TransactionTrait};
use cybervpn_jobs::{JobError, JobResultExt, catalog::DeliverNotification};
use serde::Deserialize;

use crate::Services;

/// Records a notification unless `dedup_key` was used before, and schedules its delivery; true if new.
pub async fn notify(
    db: &Db,
    dedup_key: &str,
    audience: Audience,
    kind: &str,
    body: &str,
) -> Result<bool, DbError> {
    let txn = db.conn().begin().await?;
    let new =
        cybervpn_jobs::outbox::notify_in(&txn, dedup_key, audience, kind, body, Utc::now()).await?;
    txn.commit().await?;
    Ok(new)
}

/// A minimal Bot API client for `sendMessage`.
#[derive(Clone)]
pub struct Telegram {
    http: reqwest::Client,
    /// `<api_url>/bot<token>`: secret, never logged.
    base: String,
    admin_chats: Vec<i64>,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("admin_chats", &self.admin_chats)
            .finish_non_exhaustive()
    }
}

/// The Bot API's answer envelope.
#[derive(Deserialize)]
struct BotReply {
    ok: bool,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<BotParameters>,
}

#[derive(Deserialize)]
struct BotParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Why a message was not delivered.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Try again later (network, 5xx, 429).
    Transient(String),
    /// The chat will never accept it (blocked the bot, chat not found).
    Rejected(String),
}

impl Telegram {
    /// A client for the configured bot, or `None` when no token is set.
    pub fn from_config(config: &TelegramConfig) -> Result<Option<Self>, reqwest::Error> {
        let Some(token) = &config.bot_token else {
            return Ok(None);
        };
        Ok(Some(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            base: format!(
                "{}/bot{}",
                config.api_url.trim_end_matches('/'),
                token.expose()
            ),
            admin_chats: config.admin_chat_ids.clone(),
        }))
    }

    /// Chats that receive staff notifications.
    pub fn admin_chats(&self) -> &[i64] {
        &self.admin_chats
    }

    /// Sends a plain-text message.
    pub(crate) async fn send_message(&self, chat_id: i64, text: &str) -> Result<(), SendError> {
        let response = self
            .http
            .post(format!("{}/sendMessage", self.base))
            .json(&serde_json::json!({
                "chat_id": chat_id,
                "text": text,
                "disable_web_page_preview": true,
            }))
            .send()
            .await
            // Without the URL: it holds the bot token.
            .map_err(|err| {
                SendError::Transient(format!("telegram unreachable: {}", err.without_url()))
            })?;
        let status = response.status();
        let reply: BotReply = response.json().await.map_err(|_| {
            SendError::Transient(format!("telegram answered {status} without JSON"))
        })?;
        if reply.ok {
            return Ok(());
        }
        let description = reply.description.unwrap_or_default();
        match reply.error_code.unwrap_or(status.as_u16()) {
            429 => Err(SendError::Transient(format!(
                "telegram rate limit, retry after {} s",
                reply.parameters.and_then(|p| p.retry_after).unwrap_or(1)
            ))),
            code if code >= 500 => Err(SendError::Transient(format!(
                "telegram {code}: {description}"
            ))),
            code => Err(SendError::Rejected(format!(
                "telegram {code}: {description}"
            ))),
        }
    }
}

/// Delivers a recorded notification: to the customer's Telegram chat or every admin chat.
pub(crate) async fn deliver(
    services: &Services,
    job: &DeliverNotification,
) -> Result<(), JobError> {
    let repo = services.db.notifications();
    let Some(notification) = repo
        .get(job.notification_id)
        .await
        .or_retry("load notification")?
    else {
        return Ok(());
    };
    if notification.sent_at.is_some() {
        return Ok(());
    }
    let Some(telegram) = &services.telegram else {
        // No channel configured: the notification stays recorded (and listed) for when one is.
        tracing::debug!(id = %notification.id, "telegram is not configured; notification kept pending");
        return Ok(());
    };
    let chats = match notification.audience {
        Audience::Staff => telegram.admin_chats().to_vec(),
        Audience::Customer(customer) => match services.db.customers().get(customer).await {
            Ok(customer) => customer.telegram_id.map(|t| t.get()).into_iter().collect(),
            Err(DbError::Domain(_)) => Vec::new(),
            Err(err) => return Err(JobError::retry("load customer", err)),
        },
    };
    if chats.is_empty() {
        repo.mark_failed(notification.id, "no Telegram chat to deliver to")
            .await
            .or_retry("record delivery failure")?;
        return Ok(());
    }
    for chat in chats {
        match telegram.send_message(chat, &notification.body).await {
            Ok(()) => {}
            Err(SendError::Transient(reason)) => {
                repo.mark_failed(notification.id, &reason)
                    .await
                    .or_retry("record delivery failure")?;
                return Err(JobError::retry("telegram sendMessage", reason));
            }
            Err(SendError::Rejected(reason)) => {
                tracing::info!(chat, reason = %reason, "telegram refused a notification");
                repo.mark_failed(notification.id, &reason)
                    .await
                    .or_retry("record delivery failure")?;
            }
        }
    }
    repo.mark_sent(notification.id, Utc::now())
        .await
        .or_retry("mark notification sent")?;
    Ok(())
}
