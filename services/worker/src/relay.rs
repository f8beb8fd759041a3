//! The outbox relay: moves jobs committed with their state change onto the queue.

use std::time::Duration;

use chrono::Utc;
use cybervpn_db::{Db, DbError, Outbox, TransactionTrait};
use cybervpn_jobs::{Queue, catalog};
use tracing::Instrument as _;

/// Rows moved per pass.
const BATCH: u64 = 100;

/// Relays one batch of pending outbox rows; returns how many reached the queue.
///
/// Rows are claimed in a transaction (locked and skipped by other relays on PostgreSQL) and marked sent in
/// it, so a crash before commit leaves them pending: relayed again, which idempotent jobs tolerate.
pub async fn relay_once(db: &Db, queue: &Queue) -> Result<usize, DbError> {
    let txn = db.conn().begin().await?;
    let outbox = Outbox::on(&txn);
    let messages = outbox.claim(BATCH).await?;
    let mut relayed = 0;
    for message in messages {
        // The relay continues the trace of the transaction that wrote the row; the job carries it on.
        let span = tracing::info_span!("outbox_relay", job = %message.job, outbox_id = %message.id);
        cybervpn_telemetry::continue_from(&span, message.trace_context.as_deref());
        let pushed = catalog::push_named(queue, &message.job, message.payload.clone())
            .instrument(span)
            .await;
        match pushed {
            Ok(Some(_)) => {
                outbox.mark_sent(message.id, Utc::now()).await?;
                relayed += 1;
            }
            Ok(None) => {
                tracing::error!(job = %message.job, id = %message.id, "outbox row names an unknown job");
                // Set aside, or it would head every batch forever.
                outbox.mark_failed(message.id, "unknown job").await?;
                outbox.mark_sent(message.id, Utc::now()).await?;
            }
            Err(err) => {
                // The queue is down: keep the row pending and stop this pass.
                tracing::warn!(job = %message.job, error = %err, "outbox relay could not enqueue");
                outbox.mark_failed(message.id, &err.to_string()).await?;
                break;
            }
        }
    }
    txn.commit().await?;
    Ok(relayed)
}

/// Relays until `shutdown` resolves, every `interval` (immediately again while batches are full).
pub(crate) async fn run(
    db: Db,
    queue: Queue,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let pause = match relay_once(&db, &queue).await {
            Ok(n) if n as u64 == BATCH => Duration::ZERO,
            Ok(_) => interval,
            Err(err) => {
                tracing::warn!(error = %err, "outbox relay pass failed");
                interval
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
