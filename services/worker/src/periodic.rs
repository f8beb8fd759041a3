//! The periodic jobs: node sync and health, geolocation, statistics, traffic resets, reminders, expiry and
//! full reconciliation. Each is safe to run twice for the same slot.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_db::{Audience, DatabaseTransaction, NodeReport, Subscriptions, TransactionTrait};
use cybervpn_domain::{
    Language, LiveEvent, LiveTopic, NoticeKind, ServerStatus, SubscriptionId, SubscriptionStatus,
    TrafficBytes,
};
use cybervpn_jobs::{
    JobError, JobResultExt,
    catalog::{MonthlyTrafficReset, ProvisionSubscription},
};
use cybervpn_kv::Store;
use cybervpn_remnawave::{Node, StreamQuery, User};

use crate::{
    Services, geo, live, notify,
    provision::{PANEL_TAG, drifted, expire_if_due, panel_username, serves},
};

/// Users asked for per stream page.
const PAGE: u32 = 1000;

/// Copies every node's state into `servers`; status changes notify the admins.
pub(crate) async fn sync_nodes(services: &Services) -> Result<usize, JobError> {
    let nodes = services
        .panel()?
        .nodes()
        .await
        .or_retry("remnawave list nodes")?;
    let now = Utc::now();
    for node in &nodes {
        let seen = format!("sync:{}", now.timestamp() / 60);
        record_node(&services.db, &services.store, node, &seen, now)
            .await
            .or_retry("store server")?;
    }
    let reports: Vec<NodeReport> = nodes.iter().map(node_report).collect();
    let online: i64 = reports.iter().map(|r| i64::from(r.users_online)).sum();
    let servers: Vec<_> = reports
        .iter()
        .map(|report| {
            serde_json::json!({
                "panel_uuid": report.panel_uuid,
                "name": report.name,
                "country_code": report.country_code,
                "status": report.status().as_str(),
                "users_online": report.users_online,
            })
        })
        .collect();
    let snapshot = serde_json::json!({ "servers": servers, "users_online": online });
    live::publish(
        &services.store,
        &LiveEvent::new(LiveTopic::Monitoring, "nodes", now, snapshot),
    )
    .await;
    Ok(nodes.len())
}

/// Stores a node's state and, when its status changed, records one staff notification and tells the live
/// views; `seen` names the observation (a sync minute, a webhook timestamp) so a repeated observation notifies
/// once.
pub async fn record_node(
    db: &cybervpn_db::Db,
    store: &Store,
    node: &Node,
    seen: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), cybervpn_db::DbError> {
    let change = db.servers().upsert(&node_report(node), now).await?;
    if let Some(before) = change.before
        && before != change.after
    {
        let data = serde_json::json!({
            "panel_uuid": node.uuid.to_string(),
            "name": node.name,
            "country_code": node.country_code,
            "from": before.as_str(),
            "to": change.after.as_str(),
        });
        live::publish(
            store,
            &LiveEvent::new(LiveTopic::Monitoring, "node_status", now, data.clone()),
        )
        .await;
        if [before, change.after].contains(&ServerStatus::Offline) {
            live::publish(
                store,
                &LiveEvent::new(LiveTopic::Incidents, "node_status", now, data),
            )
            .await;
        }
        let body = format!(
            "Server {} ({}): {} → {}",
            node.name,
            node.country_code.as_deref().unwrap_or("??"),
            before.as_str(),
            change.after.as_str()
        );
        let key = format!("node-status:{}:{}:{seen}", node.uuid, change.after.as_str());
        notify(db, &key, Audience::Staff, "node_status", &body).await?;
    }
    Ok(())
}

/// Our record of a node as the panel reports it.
pub(crate) fn node_report(node: &Node) -> NodeReport {
    NodeReport {
        panel_uuid: node.uuid.to_string(),
        name: node.name.clone(),
        address: node.address.clone(),
        port: node.port.and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
        country_code: node
            .country_code
            .as_deref()
            .filter(|c| c.len() == 2)
            .unwrap_or("XX")
            .to_ascii_uppercase(),
        is_connected: node.is_connected,
        is_disabled: node.is_disabled,
        users_online: node
            .users_online
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
        traffic_used_bytes: node.traffic_used_bytes.unwrap_or(0),
        status_message: node.last_status_message.clone(),
    }
}

/// Node sync plus the panel's own health, recorded for `/monitoring/health`.
pub(crate) async fn health_check(services: &Services) -> Result<(), JobError> {
    let panel = services.panel()?;
    let healthy = panel.health().await;
    let now = Utc::now();
    services
        .db
        .snapshots()
        .put(
            "panel_health",
            &serde_json::json!({
                "healthy": healthy.is_ok(),
                "error": healthy.as_ref().err().map(ToString::to_string),
            }),
            now,
        )
        .await
        .or_retry("store panel health")?;
    healthy.or_retry("remnawave health")?;
    sync_nodes(services).await.map(|_| ())
}

/// Places each server at its country's centre.
pub(crate) async fn geolocate(services: &Services) -> Result<(), JobError> {
    let servers = services
        .db
        .servers()
        .list()
        .await
        .or_retry("list servers")?;
    for server in servers {
        let location = geo::centre(&server.country_code);
        if location != server.latitude.zip(server.longitude) {
            services
                .db
                .servers()
                .set_location(server.id, location)
                .await
                .or_retry("store server location")?;
        }
    }
    Ok(())
}

/// Snapshots the panel's bandwidth and system statistics.
pub(crate) async fn bandwidth(services: &Services) -> Result<(), JobError> {
    let panel = services.panel()?;
    let bandwidth = panel.bandwidth().await.or_retry("remnawave bandwidth")?;
    let stats = panel
        .system_stats()
        .await
        .or_retry("remnawave system stats")?;
    let period = |p: cybervpn_remnawave::BandwidthPeriod| serde_json::json!({"current": p.current, "previous": p.previous, "difference": p.difference});
    let now = Utc::now();
    let snapshots = services.db.snapshots();
    snapshots
        .put(
            "bandwidth",
            &serde_json::json!({
                "last_two_days": period(bandwidth.last_two_days),
                "last_seven_days": period(bandwidth.last_seven_days),
                "last_30_days": period(bandwidth.last_30_days),
                "calendar_month": period(bandwidth.calendar_month),
                "current_year": period(bandwidth.current_year),
            }),
            now,
        )
        .await
        .or_retry("store bandwidth")?;
    snapshots
        .put(
            "panel_stats",
            &serde_json::json!({
                "users_total": stats.users.total_users,
                "online_now": stats.online_stats.online_now,
                "nodes_online": stats.nodes.total_online,
                "bytes_lifetime": stats.nodes.total_bytes_lifetime,
                "cpu_cores": stats.cpu.cores,
                "memory_used": stats.memory.used,
                "memory_total": stats.memory.total,
                "uptime_secs": stats.uptime,
            }),
            now,
        )
        .await
        .or_retry("store panel stats")?;
    Ok(())
}

/// Every panel user we created, one stream page at a time.
struct PanelPages<'a> {
    panel: &'a cybervpn_remnawave::Panel,
    query: StreamQuery,
    done: bool,
}

impl<'a> PanelPages<'a> {
    fn new(services: &'a Services) -> Result<Self, JobError> {
        Ok(Self {
            panel: services.panel()?,
            query: StreamQuery {
                size: PAGE,
                tag: Some(PANEL_TAG.to_owned()),
                ..StreamQuery::default()
            },
            done: false,
        })
    }

    async fn next(&mut self) -> Result<Option<Vec<User>>, JobError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .panel
            .users_stream(&self.query)
            .await
            .or_retry("remnawave users stream")?;
        self.done = !(page.has_more && page.next_cursor.is_some());
        self.query.cursor = page.next_cursor;
        Ok(Some(page.users))
    }
}

/// Copies per-user traffic from the panel into our subscriptions.
pub(crate) async fn traffic_stats(services: &Services) -> Result<(), JobError> {
    let mut pages = PanelPages::new(services)?;
    while let Some(users) = pages.next().await? {
        for user in users {
            let used = u64::try_from(user.user_traffic.used_traffic_bytes).unwrap_or(0);
            services
                .db
                .subscriptions()
                .set_traffic_used(user.id, TrafficBytes::from_bytes(used))
                .await
                .or_retry("store traffic")?;
        }
    }
    Ok(())
}

/// Resets traffic of every live subscription whose plan renews monthly, once per subscription and month.
pub(crate) async fn monthly_reset(
    services: &Services,
    job: &MonthlyTrafficReset,
) -> Result<(), JobError> {
    let now = Utc::now();
    let due = services
        .db
        .subscriptions()
        .monthly_reset_due(now)
        .await
        .or_retry("list subscriptions to reset")?;
    let panel = services.panel()?;
    for id in due {
        let done = format!("traffic-reset:{}:{}", job.slot, id.as_uuid());
        if services
            .store
            .time_to_live(&done)
            .await
            .or_retry("check reset")?
            .is_some()
        {
            continue;
        }
        let txn = services.db.conn().begin().await.or_retry("begin")?;
        let repo = Subscriptions::on(&txn);
        let mut subscription = repo.lock(id).await.or_retry("lock subscription")?;
        if let Some(identity) = &subscription.panel {
            panel
                .reset_traffic(identity.user_id)
                .await
                .or_retry("remnawave reset traffic")?;
        }
        subscription.traffic_used = TrafficBytes::ZERO;
        if subscription.status == SubscriptionStatus::Limited {
            subscription.status = SubscriptionStatus::Active;
        }
        subscription.updated_at = now;
        repo.save(&subscription).await.or_retry("store reset")?;
        push_provision(&txn, id, now).await?;
        txn.commit().await.or_retry("commit reset")?;
        services
            .store
            .claim(&done, Duration::from_secs(40 * 24 * 3600))
            .await
            .or_retry("record reset")?;
    }
    Ok(())
}

/// Records a provisioning job in the outbox of `txn`.
pub(crate) async fn push_provision(
    txn: &DatabaseTransaction,
    id: SubscriptionId,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let job = ProvisionSubscription {
        subscription_id: id.as_uuid(),
    };
    cybervpn_jobs::outbox::enqueue(txn, &job, now)
        .await
        .or_retry("record provisioning")?;
    Ok(())
}

/// Refreshes the squads new users get (the panel's server configuration).
pub(crate) async fn server_configs(services: &Services) -> Result<(), JobError> {
    let squads = services
        .panel()?
        .internal_squads()
        .await
        .or_retry("remnawave internal squads")?;
    services.refresh_squads().await?;
    let listed: Vec<_> = squads
        .iter()
        .map(|s| serde_json::json!({"uuid": s.uuid, "name": s.name}))
        .collect();
    services
        .db
        .snapshots()
        .put("squads", &listed, Utc::now())
        .await
        .or_retry("store squads")
}

/// Reminds customers before and when their subscription ends, once per offset and end date.
pub(crate) async fn expiry_reminders(services: &Services) -> Result<(), JobError> {
    let now = Utc::now();
    let mut offsets: Vec<u32> = services.config.scheduler.reminder_offsets_hours.clone();
    offsets.sort_unstable();
    offsets.dedup();
    let ahead: Vec<u32> = offsets.iter().copied().filter(|h| *h > 0).collect();
    let subscriptions = services.db.subscriptions();
    if let Some(&furthest) = ahead.last() {
        let ending = subscriptions
            .active_ending_between(now, now + TimeDelta::hours(i64::from(furthest)))
            .await
            .or_retry("list ending subscriptions")?;
        for subscription in ending {
            let hours_left = (subscription.expires_at - now).num_minutes() as f64 / 60.0;
            // Only the nearest offset applies, so a late joiner is not sent every reminder at once.
            let Some(&offset) = ahead.iter().find(|h| f64::from(**h) >= hours_left) else {
                continue;
            };
            let key = format!(
                "expiry:{offset}h:{}:{}",
                subscription.id.as_uuid(),
                subscription.expires_at.timestamp()
            );
            remind(
                services,
                &key,
                subscription.customer_id,
                Reminder::EndsIn(hours_left.ceil() as i64),
            )
            .await?;
        }
    }
    if offsets.first() == Some(&0) {
        let ended = subscriptions
            .ended_between(now - TimeDelta::days(2), now)
            .await
            .or_retry("list ended subscriptions")?;
        for subscription in ended {
            // Skip customers who already have a newer subscription running.
            let current = subscriptions
                .current_for(subscription.customer_id)
                .await
                .or_retry("load current subscription")?;
            if current.is_some_and(|c| c.id != subscription.id && c.is_active_at(now)) {
                continue;
            }
            let key = format!(
                "expired:{}:{}",
                subscription.id.as_uuid(),
                subscription.expires_at.timestamp()
            );
            remind(services, &key, subscription.customer_id, Reminder::Ended).await?;
        }
    }
    Ok(())
}

enum Reminder {
    EndsIn(i64),
    Ended,
}

async fn remind(
    services: &Services,
    key: &str,
    customer: cybervpn_domain::CustomerId,
    reminder: Reminder,
) -> Result<(), JobError> {
    let language = match services.db.customers().get(customer).await {
        Ok(customer) => customer.language,
        // Deleted customers get no reminders.
        Err(cybervpn_db::DbError::Domain(_)) => return Ok(()),
        Err(err) => return Err(JobError::retry("load customer", err)),
    };
    let (kind, values) = match reminder {
        Reminder::EndsIn(hours) => {
            let left = match language {
                Language::Ru => duration_ru(hours),
                Language::En => duration_en(hours),
            };
            (NoticeKind::ExpirySoon, vec![("left", left)])
        }
        Reminder::Ended => (NoticeKind::ExpiryEnded, Vec::new()),
    };
    let txn = services
        .db
        .conn()
        .begin()
        .await
        .map_err(|err| JobError::retry("begin", err))?;
    cybervpn_jobs::outbox::notify_customer_in(&txn, key, customer, kind, &values, Utc::now())
        .await
        .or_retry("record reminder")?;
    txn.commit()
        .await
        .map_err(|err| JobError::retry("commit reminder", err))?;
    Ok(())
}

fn duration_en(hours: i64) -> String {
    match hours {
        h if h >= 48 => format!("{} days", h / 24),
        1 => "1 hour".to_owned(),
        h => format!("{h} hours"),
    }
}

fn duration_ru(hours: i64) -> String {
    if hours >= 48 {
        format!("{} дн.", hours / 24)
    } else {
        format!("{hours} ч.")
    }
}

/// Marks ended subscriptions expired and queues their panel users' disabling, one transaction each.
pub(crate) async fn disable_expired(services: &Services) -> Result<usize, JobError> {
    let now = Utc::now();
    let overdue = services
        .db
        .subscriptions()
        .overdue(now, 1000)
        .await
        .or_retry("list overdue subscriptions")?;
    let mut expired = 0;
    for id in overdue {
        let txn = services.db.conn().begin().await.or_retry("begin")?;
        let repo = Subscriptions::on(&txn);
        let mut subscription = repo.lock(id).await.or_retry("lock subscription")?;
        // Re-checked under the lock: it may have been extended meanwhile.
        if expire_if_due(&mut subscription, now) {
            repo.save(&subscription).await.or_retry("store expiry")?;
            push_provision(&txn, id, now).await?;
            expired += 1;
        }
        txn.commit().await.or_retry("commit expiry")?;
    }
    Ok(expired)
}

/// What reconciliation found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ReconcileReport {
    /// Panel users seen.
    pub panel_users: usize,
    /// Subscriptions compared.
    pub subscriptions: usize,
    /// Subscriptions queued for repair.
    pub repaired: usize,
    /// Panel users carrying our tag that no subscription claims.
    pub orphans: usize,
}

/// Compares every panel user with our subscriptions and queues provisioning where they differ.
pub(crate) async fn reconcile(services: &Services) -> Result<ReconcileReport, JobError> {
    let now = Utc::now();
    let mut by_username: HashMap<String, User> = HashMap::new();
    let mut pages = PanelPages::new(services)?;
    while let Some(users) = pages.next().await? {
        by_username.extend(users.into_iter().map(|u| (u.username.clone(), u)));
    }
    let mut report = ReconcileReport {
        panel_users: by_username.len(),
        ..ReconcileReport::default()
    };
    let mut claimed: HashSet<i64> = HashSet::new();
    let mut after = None;
    loop {
        let page = services
            .db
            .subscriptions()
            .page(after, 1000)
            .await
            .or_retry("list subscriptions")?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let customers: Vec<_> = page.iter().map(|s| s.customer_id).collect();
        let live = services
            .db
            .customers()
            .live_among(&customers)
            .await
            .or_retry("load customer states")?;
        // A customer's current subscription is the last-ending one; older ones do not own the panel user.
        for subscription in &page {
            report.subscriptions += 1;
            let user = by_username.get(&panel_username(subscription.customer_id));
            if let Some(user) = user {
                claimed.insert(user.id);
            }
            let customer_live = live.contains(&subscription.customer_id);
            let needs = match user {
                Some(user) => drifted(subscription, customer_live, user, now),
                None => customer_live && serves(subscription, now),
            };
            if needs && is_current(services, subscription).await? {
                services
                    .queue
                    .push(&ProvisionSubscription {
                        subscription_id: subscription.id.as_uuid(),
                    })
                    .await
                    .or_retry("enqueue repair")?;
                report.repaired += 1;
            }
        }
    }
    report.orphans = by_username
        .values()
        .filter(|u| !claimed.contains(&u.id))
        .count();
    services
        .db
        .snapshots()
        .put("reconcile", &report, now)
        .await
        .or_retry("store reconcile report")?;
    tracing::info!(?report, "reconciled with the panel");
    Ok(report)
}

async fn is_current(
    services: &Services,
    subscription: &cybervpn_domain::Subscription,
) -> Result<bool, JobError> {
    Ok(services
        .db
        .subscriptions()
        .current_for(subscription.customer_id)
        .await
        .or_retry("load current subscription")?
        .is_some_and(|c| c.id == subscription.id))
}
