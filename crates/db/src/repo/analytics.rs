//! Business analytics for staff: revenue, payment outcomes, growth, trial conversions and subscription churn,
//! each aggregated by the database over a [`ReportPeriod`] cut into buckets.
//!
//! The buckets are computed once, in Rust ([`ReportPeriod::buckets`]), and handed to the query as a JSON list
//! of `[index, start, end]`; each query joins that list to the range of rows it counts and groups by the
//! bucket index. So UTC days, Monday weeks and months mean the same on PostgreSQL and SQLite, no row goes
//! through a date function, and every bucket is one range scan of an index of migration 013. The only
//! difference between the engines is how the JSON list becomes rows ([`buckets_table`]).
//!
//! A report's queries run in one read-only transaction, so they see one snapshot of the data.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use cybervpn_domain::{
    Bucket, Currency, PaymentProvider, PaymentStatus, PlanTier, ReportPeriod, SubscriptionStatus,
};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    IsolationLevel, QueryResult, Statement, TransactionTrait, Value,
};

use crate::DbError;

/// Completed payments and refunds of one currency through one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueLine {
    /// The currency.
    pub currency: Currency,
    /// The gateway.
    pub provider: PaymentProvider,
    /// Payments credited (completed, including those refunded later).
    pub payments: u64,
    /// Their sum, in minor units.
    pub amount_minor: i64,
    /// Payments refunded.
    pub refunds: u64,
    /// The refunded sum, in minor units.
    pub refunded_minor: i64,
}

/// Revenue of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// One line per currency and gateway with any payment or refund, ordered by currency then gateway.
    pub lines: Vec<RevenueLine>,
}

/// Revenue over a period: payments by when they were credited, refunds by when the money went back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueReport {
    /// Every bucket of the period, in order.
    pub buckets: Vec<RevenueBucket>,
    /// The whole period, per currency and gateway.
    pub totals: Vec<RevenueLine>,
}

/// How many payments stand in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Waiting for the gateway.
    pub pending: u64,
    /// Paid.
    pub completed: u64,
    /// Declined.
    pub failed: u64,
    /// Not paid in time.
    pub expired: u64,
    /// Paid, then refunded.
    pub refunded: u64,
}

impl StatusCounts {
    fn add(&mut self, status: PaymentStatus, n: u64) {
        let slot = match status {
            PaymentStatus::Pending => &mut self.pending,
            PaymentStatus::Completed => &mut self.completed,
            PaymentStatus::Failed => &mut self.failed,
            PaymentStatus::Expired => &mut self.expired,
            PaymentStatus::Refunded => &mut self.refunded,
        };
        *slot += n;
    }

    fn merge(&mut self, other: &Self) {
        self.pending += other.pending;
        self.completed += other.completed;
        self.failed += other.failed;
        self.expired += other.expired;
        self.refunded += other.refunded;
    }

    /// Every payment counted.
    pub const fn total(&self) -> u64 {
        self.pending + self.completed + self.failed + self.expired + self.refunded
    }

    /// Payments that were paid: completed, or refunded after completion.
    pub const fn succeeded(&self) -> u64 {
        self.completed + self.refunded
    }

    /// Payments with an outcome: paid, declined or expired (still pending ones are not decided yet).
    pub const fn decided(&self) -> u64 {
        self.succeeded() + self.failed + self.expired
    }
}

/// Payment outcomes of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOutcomes {
    /// The gateway.
    pub provider: PaymentProvider,
    /// Its payments by status.
    pub counts: StatusCounts,
}

/// Payment outcomes of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomesBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// Per gateway with any payment, in the gateways' declaration order.
    pub by_provider: Vec<ProviderOutcomes>,
    /// Every gateway together.
    pub all: StatusCounts,
}

/// Payments opened over a period, by where they stand now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomesReport {
    /// Every bucket of the period, in order.
    pub buckets: Vec<OutcomesBucket>,
    /// The whole period, per gateway.
    pub by_provider: Vec<ProviderOutcomes>,
    /// The whole period, every gateway together.
    pub all: StatusCounts,
}

/// Customers gained and lost in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// Customers who signed up in it.
    pub new_customers: u64,
    /// Customers whose accounts were deleted in it.
    pub deleted_customers: u64,
    /// Customers with an account (signed up, not deleted) at its end.
    pub total_customers: u64,
}

/// Sign-ups and the customer base over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowthReport {
    /// Customers with an account at the start of the period.
    pub total_at_start: u64,
    /// Every bucket of the period, in order.
    pub buckets: Vec<GrowthBucket>,
}

/// Free trials started in one bucket and how many of them led to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversionBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// Trials activated in it.
    pub trials: u64,
    /// Of those, trials whose customer paid afterwards (at any time up to now).
    pub converted: u64,
}

/// Trial conversions over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionReport {
    /// Every bucket of the period, in order.
    pub buckets: Vec<ConversionBucket>,
    /// Trials activated in the whole period.
    pub trials: u64,
    /// Of those, converted.
    pub converted: u64,
}

/// Live subscriptions of one plan tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierCount {
    /// The tier; `None` for subscriptions without a plan (free trials, staff grants).
    pub tier: Option<PlanTier>,
    /// Subscriptions active now.
    pub active: u64,
}

/// Starts and ends of one kind of subscription in one bucket, by their dates as they stand now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Churn {
    /// Live at the bucket's start: created before it and ending at or after it.
    pub active_at_start: u64,
    /// Created in the bucket.
    pub started: u64,
    /// Ending in the bucket and already ended (not renewed: a renewal moves the end date).
    pub churned: u64,
    /// Ending in the bucket, ended or still to end (for the live count of the next bucket).
    ends: u64,
}

/// Subscription starts and churn of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// Subscriptions on a plan (bought).
    pub paid: Churn,
    /// Subscriptions without a plan (free trials not converted, staff grants).
    pub free: Churn,
}

/// Subscriptions live now and churn over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionReport {
    /// Subscriptions active now, per tier (no-plan last), tiers without any left out.
    pub active_now: Vec<TierCount>,
    /// Every bucket of the period, in order.
    pub buckets: Vec<ChurnBucket>,
}

/// Business analytics for staff dashboards; every report reads one consistent snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Analytics<'a> {
    conn: &'a DatabaseConnection,
}

impl<'a> Analytics<'a> {
    /// The reports on the pool `conn`.
    pub const fn on(conn: &'a DatabaseConnection) -> Self {
        Self { conn }
    }

    /// Revenue per bucket, currency and gateway: credited payments by when they were credited (refunded ones
    /// included), and refunds by when they were refunded; net is the difference.
    pub async fn revenue(&self, period: &ReportPeriod) -> Result<RevenueReport, DbError> {
        let report = Report::begin(self.conn, period).await?;
        let mut lines: Vec<Vec<RevenueLine>> = vec![Vec::new(); report.buckets.len()];
        for (column, refunds) in [("completed_at", false), ("refunded_at", true)] {
            let rows = report
                .query(&format!(
                    "WITH b AS ({buckets}) \
                     SELECT b.i AS i, p.currency AS currency, p.provider AS provider, COUNT(*) AS n, \
                            CAST(SUM(p.amount_minor) AS BIGINT) AS amount \
                     FROM b JOIN payments p ON p.{column} >= b.s AND p.{column} < b.e \
                     GROUP BY b.i, p.currency, p.provider",
                    buckets = report.buckets_table()
                ))
                .await?;
            for row in rows {
                let bucket = bucket_index(&row, report.buckets.len())?;
                let currency: Currency = parse(&row, "currency")?;
                let provider: PaymentProvider = parse(&row, "provider")?;
                let (n, amount) = (count(&row, "n")?, row_i64(&row, "amount")?);
                let line = line_for(&mut lines[bucket], currency, provider);
                if refunds {
                    line.refunds += n;
                    line.refunded_minor = add_minor(line.refunded_minor, amount)?;
                } else {
                    line.payments += n;
                    line.amount_minor = add_minor(line.amount_minor, amount)?;
                }
            }
        }
        let bucket_list = report.end().await?;

        let mut totals = Vec::new();
        for line in lines.iter().flatten() {
            let total = line_for(&mut totals, line.currency, line.provider);
            total.payments += line.payments;
            total.amount_minor = add_minor(total.amount_minor, line.amount_minor)?;
            total.refunds += line.refunds;
            total.refunded_minor = add_minor(total.refunded_minor, line.refunded_minor)?;
        }
        sort_lines(&mut totals);
        let buckets = bucket_list
            .into_iter()
            .zip(lines)
            .map(|(bucket, mut lines)| {
                sort_lines(&mut lines);
                RevenueBucket { bucket, lines }
            })
            .collect();
        Ok(RevenueReport { buckets, totals })
    }

    /// Payments opened per bucket, by gateway and by the status they stand in now.
    pub async fn payment_outcomes(&self, period: &ReportPeriod) -> Result<OutcomesReport, DbError> {
        let report = Report::begin(self.conn, period).await?;
        let rows = report
            .query(&format!(
                "WITH b AS ({buckets}) \
                 SELECT b.i AS i, p.provider AS provider, p.status AS status, COUNT(*) AS n \
                 FROM b JOIN payments p ON p.created_at >= b.s AND p.created_at < b.e \
                 GROUP BY b.i, p.provider, p.status",
                buckets = report.buckets_table()
            ))
            .await?;
        let bucket_list = report.end().await?;

        let providers = PaymentProvider::ALL.len();
        let mut counts = vec![vec![StatusCounts::default(); providers]; bucket_list.len()];
        for row in rows {
            let bucket = &mut counts[bucket_index(&row, bucket_list.len())?];
            let provider: PaymentProvider = parse(&row, "provider")?;
            let status: PaymentStatus = parse(&row, "status")?;
            if let Some(slot) = bucket.get_mut(provider_index(provider)) {
                slot.add(status, count(&row, "n")?);
            }
        }

        let mut total_by_provider = vec![StatusCounts::default(); providers];
        let buckets = bucket_list
            .into_iter()
            .zip(counts)
            .map(|(bucket, per_provider)| {
                let mut all = StatusCounts::default();
                for (total, counts) in total_by_provider.iter_mut().zip(&per_provider) {
                    total.merge(counts);
                    all.merge(counts);
                }
                OutcomesBucket {
                    bucket,
                    by_provider: outcomes(per_provider),
                    all,
                }
            })
            .collect();
        let mut all = StatusCounts::default();
        for counts in &total_by_provider {
            all.merge(counts);
        }
        Ok(OutcomesReport {
            buckets,
            by_provider: outcomes(total_by_provider),
            all,
        })
    }

    /// Sign-ups and deletions per bucket, with the number of customers at each bucket's end.
    pub async fn growth(&self, period: &ReportPeriod) -> Result<GrowthReport, DbError> {
        let report = Report::begin(self.conn, period).await?;
        let mut per_bucket = vec![(0u64, 0u64); report.buckets.len()];
        for (column, deleted) in [("created_at", false), ("deleted_at", true)] {
            let rows = report
                .query(&format!(
                    "WITH b AS ({buckets}) \
                     SELECT b.i AS i, COUNT(*) AS n \
                     FROM b JOIN customers c ON c.{column} >= b.s AND c.{column} < b.e \
                     GROUP BY b.i",
                    buckets = report.buckets_table()
                ))
                .await?;
            for row in rows {
                let (created, removed) = &mut per_bucket[bucket_index(&row, report.buckets.len())?];
                *(if deleted { removed } else { created }) += count(&row, "n")?;
            }
        }
        let start = report
            .query_with(
                "SELECT (SELECT COUNT(*) FROM customers WHERE created_at < ?) AS created, \
                        (SELECT COUNT(*) FROM customers WHERE deleted_at < ?) AS deleted",
                vec![time(period.from()), time(period.from())],
            )
            .await?;
        let bucket_list = report.end().await?;

        let row = start
            .first()
            .ok_or_else(|| DbError::corrupt("customers", "no count"))?;
        let total_at_start = count(row, "created")?.saturating_sub(count(row, "deleted")?);
        let mut total = total_at_start;
        let buckets = bucket_list
            .into_iter()
            .zip(per_bucket)
            .map(|(bucket, (new_customers, deleted_customers))| {
                total = (total + new_customers).saturating_sub(deleted_customers);
                GrowthBucket {
                    bucket,
                    new_customers,
                    deleted_customers,
                    total_customers: total,
                }
            })
            .collect();
        Ok(GrowthReport {
            total_at_start,
            buckets,
        })
    }

    /// Free trials activated per bucket, and how many of them converted: their customer's payment was
    /// credited after the trial started (kept on the trial by the payment completion path).
    pub async fn conversions(&self, period: &ReportPeriod) -> Result<ConversionReport, DbError> {
        let report = Report::begin(self.conn, period).await?;
        let rows = report
            .query(&format!(
                "WITH b AS ({buckets}) \
                 SELECT b.i AS i, COUNT(*) AS n, COUNT(t.converted_at) AS converted \
                 FROM b JOIN trials t ON t.activated_at >= b.s AND t.activated_at < b.e \
                 GROUP BY b.i",
                buckets = report.buckets_table()
            ))
            .await?;
        let bucket_list = report.end().await?;

        let n = bucket_list.len();
        let mut buckets: Vec<ConversionBucket> = bucket_list
            .into_iter()
            .map(|bucket| ConversionBucket {
                bucket,
                trials: 0,
                converted: 0,
            })
            .collect();
        for row in rows {
            let bucket = &mut buckets[bucket_index(&row, n)?];
            bucket.trials += count(&row, "n")?;
            bucket.converted += count(&row, "converted")?;
        }
        Ok(ConversionReport {
            trials: buckets.iter().map(|b| b.trials).sum(),
            converted: buckets.iter().map(|b| b.converted).sum(),
            buckets,
        })
    }

    /// Subscriptions active at `now` per plan tier, and per bucket the subscriptions live at its start,
    /// started in it and churned in it (ended, not renewed), with and without a plan. Starts and ends are
    /// read from the subscriptions' dates as they stand now: a renewal moves the end date, so a subscription
    /// that lapsed and was renewed later counts as live through the gap.
    pub async fn subscriptions(
        &self,
        period: &ReportPeriod,
        now: DateTime<Utc>,
    ) -> Result<SubscriptionReport, DbError> {
        let now = crate::stored_time(now);
        let report = Report::begin(self.conn, period).await?;
        let tiers = report
            .query_with(
                "SELECT pl.tier AS tier, CAST(SUM(s.n) AS BIGINT) AS n \
                 FROM (SELECT plan_id, COUNT(*) AS n FROM subscriptions \
                       WHERE expires_at > ? AND status = ? GROUP BY plan_id) s \
                 LEFT JOIN plans pl ON pl.id = s.plan_id \
                 GROUP BY pl.tier",
                vec![time(now), SubscriptionStatus::Active.as_str().into()],
            )
            .await?;
        let live = report
            .query_with(
                "SELECT CASE WHEN plan_id IS NULL THEN 0 ELSE 1 END AS paid, COUNT(*) AS n \
                 FROM subscriptions WHERE expires_at >= ? AND created_at < ? \
                 GROUP BY CASE WHEN plan_id IS NULL THEN 0 ELSE 1 END",
                vec![time(period.from()), time(period.from())],
            )
            .await?;
        let started = report
            .query(&format!(
                "WITH b AS ({buckets}) \
                 SELECT b.i AS i, CASE WHEN s.plan_id IS NULL THEN 0 ELSE 1 END AS paid, COUNT(*) AS n \
                 FROM b JOIN subscriptions s ON s.created_at >= b.s AND s.created_at < b.e \
                 GROUP BY b.i, CASE WHEN s.plan_id IS NULL THEN 0 ELSE 1 END",
                buckets = report.buckets_table()
            ))
            .await?;
        let ended = report
            .query_with(
                &format!(
                    "WITH b AS ({buckets}) \
                     SELECT b.i AS i, CASE WHEN s.plan_id IS NULL THEN 0 ELSE 1 END AS paid, \
                            COUNT(*) AS n, SUM(CASE WHEN s.expires_at <= ? THEN 1 ELSE 0 END) AS churned \
                     FROM b JOIN subscriptions s ON s.expires_at >= b.s AND s.expires_at < b.e \
                     GROUP BY b.i, CASE WHEN s.plan_id IS NULL THEN 0 ELSE 1 END",
                    buckets = report.buckets_table()
                ),
                vec![report.buckets_json.clone().into(), time(now)],
            )
            .await?;
        let bucket_list = report.end().await?;

        let mut active_now = Vec::new();
        for row in tiers {
            let tier = row
                .try_get::<Option<String>>("", "tier")?
                .map(|t| PlanTier::from_str(&t))
                .transpose()
                .map_err(|err| DbError::corrupt("plans", err))?;
            active_now.push(TierCount {
                tier,
                active: count(&row, "n")?,
            });
        }
        active_now.sort_by_key(|t| {
            t.tier.map_or(PlanTier::ALL.len(), |tier| {
                PlanTier::ALL.iter().position(|x| *x == tier).unwrap_or(0)
            })
        });

        // [free, paid] per bucket.
        let mut churn = vec![[Churn::default(); 2]; bucket_list.len()];
        let mut live_at_start = [0u64; 2];
        for row in live {
            live_at_start[paid_index(&row)?] += count(&row, "n")?;
        }
        for row in started {
            let slot = churn_slot(&mut churn, &row)?;
            slot.started += count(&row, "n")?;
        }
        for row in ended {
            let slot = churn_slot(&mut churn, &row)?;
            slot.ends += count(&row, "n")?;
            slot.churned += count(&row, "churned")?;
        }
        let buckets = bucket_list
            .into_iter()
            .zip(churn)
            .map(|(bucket, mut kinds)| {
                for (kind, live) in kinds.iter_mut().zip(live_at_start.iter_mut()) {
                    kind.active_at_start = *live;
                    *live = (*live + kind.started).saturating_sub(kind.ends);
                }
                let [free, paid] = kinds;
                ChurnBucket { bucket, paid, free }
            })
            .collect();
        Ok(SubscriptionReport {
            active_now,
            buckets,
        })
    }
}

/// One report's read-only transaction and its buckets.
struct Report {
    txn: DatabaseTransaction,
    backend: DbBackend,
    buckets: Vec<Bucket>,
    buckets_json: String,
}

impl Report {
    /// Opens the snapshot every query of the report reads. On PostgreSQL: repeatable read, read only, and no
    /// JIT compilation (it costs more than it saves on these short scans).
    async fn begin(conn: &DatabaseConnection, period: &ReportPeriod) -> Result<Self, DbError> {
        let backend = conn.get_database_backend();
        let txn = match backend {
            DbBackend::Postgres => {
                let txn = conn
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?;
                txn.execute_unprepared("SET LOCAL jit = off").await?;
                txn
            }
            _ => conn.begin().await?,
        };
        let buckets = period.buckets();
        let list: Vec<serde_json::Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| serde_json::json!([i, stored_text(b.start), stored_text(b.end)]))
            .collect();
        Ok(Self {
            txn,
            backend,
            buckets,
            buckets_json: serde_json::Value::Array(list).to_string(),
        })
    }

    /// The rows `(i, s, e)` of the buckets, from the query's first parameter.
    fn buckets_table(&self) -> &'static str {
        buckets_table(self.backend)
    }

    /// Runs `sql` whose only parameter is the bucket list.
    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, DbError> {
        self.query_with(sql, vec![self.buckets_json.clone().into()])
            .await
    }

    /// Runs `sql`, written with `?` placeholders, with `values`.
    async fn query_with(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, DbError> {
        let sql = placeholders(self.backend, sql);
        Ok(self
            .txn
            .query_all_raw(Statement::from_sql_and_values(self.backend, sql, values))
            .await?)
    }

    /// Ends the read-only transaction; gives back the buckets.
    async fn end(self) -> Result<Vec<Bucket>, DbError> {
        self.txn.commit().await?;
        Ok(self.buckets)
    }
}

/// The bucket list of the first parameter (a JSON array of `[index, start, end]`) as rows `(i, s, e)`: the
/// one place the engines differ. SQLite compares the stored RFC 3339 texts, which sort as the instants do.
const fn buckets_table(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "SELECT CAST(x->>0 AS INTEGER) AS i, CAST(x->>1 AS TIMESTAMPTZ) AS s, \
                    CAST(x->>2 AS TIMESTAMPTZ) AS e \
             FROM json_array_elements(CAST(? AS JSON)) AS x"
        }
        _ => {
            "SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS i, json_extract(value, '$[1]') AS s, \
                    json_extract(value, '$[2]') AS e \
             FROM json_each(?)"
        }
    }
}

/// `sql` with its `?` placeholders numbered for PostgreSQL (`$1`, `$2`, …).
fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// `at` as both engines store it (SQLite keeps this RFC 3339 text; PostgreSQL parses it).
fn stored_text(at: DateTime<Utc>) -> String {
    crate::stored_time(at).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// `at` as a query parameter, at the stored precision.
fn time(at: DateTime<Utc>) -> Value {
    crate::stored_time(at).into()
}

/// The bucket index of a row, below `buckets`.
fn bucket_index(row: &QueryResult, buckets: usize) -> Result<usize, DbError> {
    usize::try_from(row.try_get::<i32>("", "i")?)
        .ok()
        .filter(|i| *i < buckets)
        .ok_or_else(|| DbError::corrupt("analytics", "bucket out of range"))
}

/// A non-negative count column.
fn count(row: &QueryResult, column: &str) -> Result<u64, DbError> {
    let n = row_i64(row, column)?;
    u64::try_from(n).map_err(|err| DbError::corrupt("analytics", err))
}

/// A 64-bit integer column (a sum of nothing is `NULL`, read as 0).
fn row_i64(row: &QueryResult, column: &str) -> Result<i64, DbError> {
    Ok(row.try_get::<Option<i64>>("", column)?.unwrap_or(0))
}

/// A text column parsed into a domain value.
fn parse<T: FromStr<Err = cybervpn_domain::DomainError>>(
    row: &QueryResult,
    column: &str,
) -> Result<T, DbError> {
    row.try_get::<String>("", column)?
        .parse()
        .map_err(|err| DbError::corrupt("payments", err))
}

/// Adds amounts in minor units; a sum beyond `i64` is a corrupt ledger, never a wrapped number.
fn add_minor(a: i64, b: i64) -> Result<i64, DbError> {
    a.checked_add(b)
        .ok_or_else(|| DbError::corrupt("payments", "sum of amounts out of range"))
}

/// The line of `currency` and `provider` in `lines`, added if missing.
fn line_for(
    lines: &mut Vec<RevenueLine>,
    currency: Currency,
    provider: PaymentProvider,
) -> &mut RevenueLine {
    let at = match lines
        .iter()
        .position(|l| l.currency == currency && l.provider == provider)
    {
        Some(at) => at,
        None => {
            lines.push(RevenueLine {
                currency,
                provider,
                payments: 0,
                amount_minor: 0,
                refunds: 0,
                refunded_minor: 0,
            });
            lines.len() - 1
        }
    };
    &mut lines[at]
}

/// Orders lines by currency, then gateway, in their declaration orders.
fn sort_lines(lines: &mut [RevenueLine]) {
    lines.sort_by_key(|l| (l.currency, provider_index(l.provider)));
}

/// Where `provider` stands in [`PaymentProvider::ALL`].
fn provider_index(provider: PaymentProvider) -> usize {
    PaymentProvider::ALL
        .iter()
        .position(|p| *p == provider)
        .unwrap_or(0)
}

/// The gateways with any payment, in declaration order.
fn outcomes(per_provider: Vec<StatusCounts>) -> Vec<ProviderOutcomes> {
    PaymentProvider::ALL
        .iter()
        .zip(per_provider)
        .filter(|(_, counts)| counts.total() > 0)
        .map(|(provider, counts)| ProviderOutcomes {
            provider: *provider,
            counts,
        })
        .collect()
}

/// 0 for a subscription without a plan, 1 with one.
fn paid_index(row: &QueryResult) -> Result<usize, DbError> {
    match row.try_get::<i32>("", "paid")? {
        0 => Ok(0),
        1 => Ok(1),
        other => Err(DbError::corrupt("subscriptions", format!("kind {other}"))),
    }
}

/// The churn figures of a row's bucket and kind.
fn churn_slot<'c>(
    churn: &'c mut [[Churn; 2]],
    row: &QueryResult,
) -> Result<&'c mut Churn, DbError> {
    let kind = paid_index(row)?;
    let bucket = bucket_index(row, churn.len())?;
    Ok(&mut churn[bucket][kind])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "SELECT ? WHERE a < ? AND b = ?";
        assert_eq!(
            placeholders(DbBackend::Postgres, sql),
            "SELECT $1 WHERE a < $2 AND b = $3"
        );
        assert_eq!(placeholders(DbBackend::Sqlite, sql), sql);
    }
}
