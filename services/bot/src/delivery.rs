//! Delivery from the queue: the notifications the platform records and the broadcasts staff confirm, sent
//! through one pacer under Telegram's limits (429 answers are honoured with their `retry_after`).

use std::{path::Path, time::Duration};

use cybervpn_jobs::{
    JobError, Queue, QueueError, Worker,
    catalog::{DeliverBackup, DeliverNotification, SendBroadcast},
};
use cybervpn_rpc::bot::v1 as pb;
use frankenstein::{
    AsyncTelegramApi,
    methods::{SendDocumentParams, SendMessageParams, SendPhotoParams},
};
use tokio::{sync::Mutex, time::Instant};

use crate::{App, Lang, describe, text_with};

/// Messages per second to different chats: Telegram allows about 30; we keep a margin.
pub const MESSAGES_PER_SECOND: u32 = 25;
/// How many times one message is tried again after a 429 or a network failure.
const SEND_ATTEMPTS: u32 = 5;
/// How long the bot remembers that a chat got a notification (longer than any job's retries).
const SENT_MARK_TTL: Duration = Duration::from_secs(2 * 24 * 3600);
/// Largest file a bot may upload (Telegram's limit for `sendDocument`).
const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
/// How long a broadcast run waits for another run's claimed recipients.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(2);

/// Spaces sends evenly: at most [`MESSAGES_PER_SECOND`], shared by every delivery of this process.
#[derive(Debug)]
pub(crate) struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            next: Mutex::new(Instant::now()),
            interval: Duration::from_secs(1) / per_second.max(1),
        }
    }

    /// Waits for this send's slot.
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Holds every send back for `delay` (Telegram answered 429).
    async fn back_off(&self, delay: Duration) {
        let mut next = self.next.lock().await;
        *next = (*next).max(Instant::now() + delay);
    }
}

/// What Telegram did with one message.
#[derive(Debug)]
pub(crate) enum Sent {
    Accepted,
    /// 403: the user blocked the bot or deleted the account.
    Blocked(String),
    /// Refused for good (400: chat not found, bad file id…).
    Refused(String),
    /// Still failing after retries (network, 5xx, repeated 429).
    Transient(String),
}

/// A message to send: text, or a photo (Telegram `file_id`) or a local file with the text as its caption.
pub(crate) struct Content<'a> {
    pub(crate) text: &'a str,
    pub(crate) photo: Option<&'a str>,
    pub(crate) document: Option<&'a Path>,
}

impl App {
    /// Sends `content` to `chat` in its pacing slot, retrying 429s (after `retry_after`) and network failures.
    pub(crate) async fn deliver(&self, chat: i64, content: &Content<'_>) -> Sent {
        let mut last = String::new();
        for attempt in 1..=SEND_ATTEMPTS {
            self.pacer.wait().await;
            let result = match (content.photo, content.document) {
                (_, Some(document)) => {
                    let mut params = SendDocumentParams::builder()
                        .chat_id(chat)
                        .document(document.to_owned())
                        .build();
                    params.caption = Some(content.text.to_owned()).filter(|t| !t.is_empty());
                    self.call("sendDocument", self.telegram.send_document(&params))
                        .await
                        .map(drop)
                }
                (Some(photo), None) => {
                    let mut params = SendPhotoParams::builder()
                        .chat_id(chat)
                        .photo(photo.to_owned())
                        .build();
                    params.caption = Some(content.text.to_owned()).filter(|t| !t.is_empty());
                    self.call("sendPhoto", self.telegram.send_photo(&params))
                        .await
                        .map(drop)
                }
                (None, None) => {
                    let mut params = SendMessageParams::builder()
                        .chat_id(chat)
                        .text(content.text)
                        .build();
                    params.link_preview_options = None;
                    self.call("sendMessage", self.telegram.send_message(&params))
                        .await
                        .map(drop)
                }
            };
            let err = match result {
                Ok(()) => return Sent::Accepted,
                Err(err) => err,
            };
            last = describe(&err);
            match &err {
                frankenstein::Error::Api(response) if response.error_code == 429 => {
                    let after = response
                        .parameters
                        .as_ref()
                        .and_then(|p| p.retry_after)
                        .unwrap_or(1);
                    tracing::info!(retry_after = after, "telegram rate limit; backing off");
                    self.pacer
                        .back_off(Duration::from_secs(u64::from(after)))
                        .await;
                }
                frankenstein::Error::Api(response) if response.error_code == 403 => {
                    return Sent::Blocked(last);
                }
                frankenstein::Error::Api(response) if response.error_code < 500 => {
                    return Sent::Refused(last);
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        Sent::Transient(last)
    }

    /// Delivers a recorded notification to its chats, once.
    pub(crate) async fn deliver_notification(&self, id: &str) -> Result<(), JobError> {
        self.deliver_recorded(id, None, "").await
    }

    /// Sends a database backup to the admin chats with its notification as the caption, once; a file the bot
    /// cannot read or Telegram would refuse (over 50 MB) is announced without it, saying why.
    pub(crate) async fn deliver_backup(&self, job: &DeliverBackup) -> Result<(), JobError> {
        let path = Path::new(&job.path);
        let unattached = match std::fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_UPLOAD_BYTES => Some(format!(
                "over Telegram's 50 MB limit ({} MB)",
                meta.len() / (1024 * 1024)
            )),
            Ok(_) => None,
            Err(err) => Some(format!("the bot cannot read it: {err}")),
        };
        match unattached {
            None => {
                self.deliver_recorded(&job.notification_id.to_string(), Some(path), "")
                    .await
            }
            Some(reason) => {
                tracing::warn!(file = %job.path, reason = %reason, "backup sent without its file");
                let note = format!(
                    "\n\nFile not attached ({reason}); it is kept at {}",
                    job.path
                );
                self.deliver_recorded(&job.notification_id.to_string(), None, &note)
                    .await
            }
        }
    }

    /// Delivers a recorded notification, with `document` attached or `note` appended to its text.
    async fn deliver_recorded(
        &self,
        id: &str,
        document: Option<&Path>,
        note: &str,
    ) -> Result<(), JobError> {
        let mut delivery = self.delivery.clone();
        let notification = delivery
            .get_notification(pb::GetNotificationRequest {
                notification_id: id.to_owned(),
            })
            .await
            .map_err(|status| JobError::retry("load notification", status.message()))?
            .into_inner();
        if !notification.found || notification.delivered {
            return Ok(());
        }
        let text = format!("{}{note}", notification.body);
        let content = Content {
            text: &text,
            photo: None,
            document,
        };
        let mut accepted = false;
        let mut error = if notification.chat_ids.is_empty() {
            "no Telegram chat to deliver to".to_owned()
        } else {
            String::new()
        };
        for chat in &notification.chat_ids {
            // A retry after a partial delivery skips the chats that already have it.
            let sent = format!("notice-sent:{id}:{chat}");
            if self
                .store
                .numbers(std::slice::from_ref(&sent))
                .await
                .is_ok_and(|marks| marks.first().copied().flatten().is_some())
            {
                accepted = true;
                continue;
            }
            match self.deliver(*chat, &content).await {
                Sent::Accepted => {
                    accepted = true;
                    let _ = self.store.set_number(&sent, 1, SENT_MARK_TTL).await;
                }
                Sent::Blocked(reason) | Sent::Refused(reason) => {
                    tracing::info!(chat, reason = %reason, kind = %notification.kind, "telegram refused a notification");
                    error = reason;
                }
                Sent::Transient(reason) => {
                    self.record_notification(id, false, &reason).await?;
                    return Err(JobError::retry("telegram send", reason));
                }
            }
        }
        self.record_notification(id, accepted, &error).await
    }

    async fn record_notification(
        &self,
        id: &str,
        delivered: bool,
        error: &str,
    ) -> Result<(), JobError> {
        self.delivery
            .clone()
            .record_notification_delivery(pb::RecordNotificationDeliveryRequest {
                notification_id: id.to_owned(),
                delivered,
                error: error.to_owned(),
            })
            .await
            .map_err(|status| JobError::retry("record notification delivery", status.message()))?;
        Ok(())
    }

    /// Delivers a confirmed broadcast: one recipient at a time, each claimed before it is sent and reported
    /// after, so a restart resumes where it stopped and nobody gets the message twice.
    pub(crate) async fn deliver_broadcast(
        &self,
        broadcast_id: &str,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), JobError> {
        let run = uuid::Uuid::now_v7().to_string();
        let mut delivery = self.delivery.clone();
        let message = self.broadcast_content(broadcast_id).await?;
        let content = Content {
            text: &message.text,
            photo: Some(message.photo_file_id.as_str()).filter(|p| !p.is_empty()),
            document: None,
        };
        let mut report: Option<pb::RecipientReport> = None;
        loop {
            let stop = *shutdown.borrow();
            let step = delivery
                .advance_broadcast(pb::AdvanceBroadcastRequest {
                    broadcast_id: broadcast_id.to_owned(),
                    run_id: run.clone(),
                    report: report.take(),
                    stop,
                })
                .await
                .map_err(|status| JobError::retry("advance broadcast", status.message()))?
                .into_inner();
            if stop {
                return Err(JobError::retry("broadcast", "interrupted by shutdown"));
            }
            match step.step() {
                pb::BroadcastStep::Send => {
                    let sent = self.deliver(step.telegram_id, &content).await;
                    let (outcome, error) = match sent {
                        Sent::Accepted => (pb::DeliveryOutcome::Sent, String::new()),
                        Sent::Blocked(reason) => (pb::DeliveryOutcome::Blocked, reason),
                        Sent::Refused(reason) | Sent::Transient(reason) => {
                            (pb::DeliveryOutcome::Failed, reason)
                        }
                    };
                    self.metrics
                        .broadcast_messages
                        .with_label_values(&[outcome.as_str_name()])
                        .inc();
                    report = Some(pb::RecipientReport {
                        customer_id: step.customer_id,
                        outcome: outcome.into(),
                        error,
                    });
                }
                pb::BroadcastStep::Wait => {
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        () = tokio::time::sleep(WAIT_FOR_OTHERS) => {}
                    }
                }
                pb::BroadcastStep::Finished => {
                    if step.report_to_chat_id != 0
                        && let Some(done) = &step.broadcast
                    {
                        self.report_broadcast(step.report_to_chat_id, done).await;
                    }
                    return Ok(());
                }
                pb::BroadcastStep::Stopped | pb::BroadcastStep::Unspecified => return Ok(()),
            }
        }
    }

    /// The broadcast's text and photo (the delivery service hands out recipients only).
    async fn broadcast_content(&self, broadcast_id: &str) -> Result<pb::Broadcast, JobError> {
        self.delivery
            .clone()
            .get_broadcast_content(pb::GetBroadcastContentRequest {
                broadcast_id: broadcast_id.to_owned(),
            })
            .await
            .map_err(|status| JobError::retry("load broadcast", status.message()))?
            .into_inner()
            .broadcast
            .ok_or_else(|| JobError::permanent("load broadcast", "no such broadcast"))
    }

    /// Tells the staff member who confirmed the broadcast how it went.
    async fn report_broadcast(&self, chat: i64, done: &pb::Broadcast) {
        let lang = self.lang_of(chat).await;
        let body = broadcast_summary(lang, "admin-broadcast-report", done);
        self.send(chat, &body, None).await;
    }
}

/// A broadcast's counts in words.
pub(crate) fn broadcast_summary(lang: Lang, key: &str, broadcast: &pb::Broadcast) -> String {
    text_with(
        lang,
        key,
        &[
            ("total", broadcast.total.to_string()),
            ("sent", broadcast.sent.to_string()),
            ("blocked", broadcast.blocked.to_string()),
            ("failed", broadcast.failed.to_string()),
            ("unconfirmed", broadcast.unconfirmed.to_string()),
        ],
    )
}

/// Consumes the notification, backup and broadcast jobs until `shutdown` turns true.
pub async fn consume(
    app: std::sync::Arc<App>,
    queue: Queue,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), QueueError> {
    // After a restart of a process with an in-process queue, the jobs of broadcasts still sending are gone.
    if let Err(status) = app
        .delivery
        .clone()
        .resume_broadcasts(pb::ResumeBroadcastsRequest {})
        .await
    {
        tracing::warn!(error = %status.message(), "could not resume broadcasts yet");
    }
    let notifications = std::sync::Arc::clone(&app);
    let backups = std::sync::Arc::clone(&app);
    let broadcasts = std::sync::Arc::clone(&app);
    let job_shutdown = shutdown.clone();
    let mut stopped = shutdown;
    Worker::new(queue)
        .handle(4, move |job: DeliverNotification, _| {
            let app = std::sync::Arc::clone(&notifications);
            async move {
                app.deliver_notification(&job.notification_id.to_string())
                    .await
            }
        })
        .handle(1, move |job: DeliverBackup, _| {
            let app = std::sync::Arc::clone(&backups);
            async move { app.deliver_backup(&job).await }
        })
        .handle(2, move |job: SendBroadcast, _| {
            let app = std::sync::Arc::clone(&broadcasts);
            let shutdown = job_shutdown.clone();
            async move {
                app.deliver_broadcast(&job.broadcast_id.to_string(), shutdown)
                    .await
            }
        })
        .run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
}
