//! Business analytics for staff: revenue, payment outcomes, growth, trial conversions and subscription churn,
//! each aggregated by the database over a [`ReportPeriod`] cut into buckets.
//!
//! The buckets are computed once, in Rust ([`ReportPeriod::buckets`]), and handed to each query as a JSON list;
//! so are the keys a report is split by (currency × gateway, gateway × status), from the domain's enums. Every
//! query then aggregates, for each bucket (and key), one range of an index of migration 013 that holds all it
//! reads (index-only scans): a date function is never applied to a row, UTC days, Monday weeks and months mean
//! the same on PostgreSQL and SQLite, and no row is hashed into a group — what keeps two years of a million
//! customers fast. The engines differ in two small places: how a JSON list becomes rows ([`buckets_rows`],
//! [`keys_rows`]) and how several aggregates of one range are written ([`per_bucket`]: a `LATERAL` subquery
//! on PostgreSQL, one scalar subquery per aggregate on SQLite, which has no `LATERAL`).
//!
//! A report's queries run in one read-only transaction, so they see one snapshot of the data.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
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
        let keys: Vec<(Currency, PaymentProvider)> = Currency::ALL
            .iter()
            .flat_map(|c| PaymentProvider::ALL.iter().map(|p| (*c, *p)))
            .collect();
        let key_names: Vec<(&str, &str)> =
            keys.iter().map(|(c, p)| (c.as_str(), p.as_str())).collect();
        let report = Report::begin(self.conn, period, Utc::now()).await?;
        let keys_json = keys_json(&key_names);
        let queries: Vec<Query> = ["completed_at", "refunded_at"]
            .iter()
            .map(|column| Query::PerBucket {
                sql: per_bucket(
                    report.backend,
                    true,
                    &[
                        ("n", "COUNT(*)"),
                        ("amount", "CAST(SUM(p.amount_minor) AS BIGINT)"),
                    ],
                    &format!(
                        "FROM payments p WHERE p.currency = k.k1 AND p.provider = k.k2 \
                         AND p.{column} >= b.s AND p.{column} < b.e"
                    ),
                ),
                keys: Some(keys_json.clone()),
            })
            .collect();
        let results = report.run(&queries).await?;
        let mut lines: Vec<Vec<RevenueLine>> = vec![Vec::new(); report.buckets.len()];
        for (rows, refunds) in results.into_iter().zip([false, true]) {
            for row in rows {
                let (n, amount) = (count(&row, "n")?, row_i64(&row, "amount")?);
                if n == 0 {
                    continue;
                }
                let (currency, provider) = keys[key_index(&row, keys.len())?];
                let line = line_for(
                    &mut lines[bucket_index(&row, report.buckets.len())?],
                    currency,
                    provider,
                );
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
        let keys: Vec<(PaymentProvider, PaymentStatus)> = PaymentProvider::ALL
            .iter()
            .flat_map(|p| PaymentStatus::ALL.iter().map(|s| (*p, *s)))
            .collect();
        let key_names: Vec<(&str, &str)> =
            keys.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
        let report = Report::begin(self.conn, period, Utc::now()).await?;
        let query = Query::PerBucket {
            sql: per_bucket(
                report.backend,
                true,
                &[("n", "COUNT(*)")],
                "FROM payments p WHERE p.provider = k.k1 AND p.status = k.k2 \
                 AND p.created_at >= b.s AND p.created_at < b.e",
            ),
            keys: Some(keys_json(&key_names)),
        };
        let rows = report.run(&[query]).await?.into_iter().flatten();
        let bucket_list = report.end().await?;

        let providers = PaymentProvider::ALL.len();
        let mut counts = vec![vec![StatusCounts::default(); providers]; bucket_list.len()];
        for row in rows {
            let (provider, status) = keys[key_index(&row, keys.len())?];
            counts[bucket_index(&row, bucket_list.len())?][provider_index(provider)]
                .add(status, count(&row, "n")?);
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
        let report = Report::begin(self.conn, period, Utc::now()).await?;
        let sql = per_bucket(
            report.backend,
            false,
            &[
                (
                    "created",
                    "(SELECT COUNT(*) FROM customers c WHERE c.created_at >= b.s AND c.created_at < b.e)",
                ),
                (
                    "deleted",
                    "(SELECT COUNT(*) FROM customers c WHERE c.deleted_at >= b.s AND c.deleted_at < b.e)",
                ),
            ],
            "",
        );
        let mut results = report
            .run(&[
                Query::PerBucket { sql, keys: None },
                Query::Plain {
                    sql:
                        "SELECT (SELECT COUNT(*) FROM customers WHERE created_at < ?) AS created, \
                          (SELECT COUNT(*) FROM customers WHERE deleted_at < ?) AS deleted"
                            .to_owned(),
                    values: vec![time(period.from()), time(period.from())],
                },
            ])
            .await?
            .into_iter();
        let (rows, start) = (
            results.next().unwrap_or_default(),
            results.next().unwrap_or_default(),
        );
        let bucket_list = report.end().await?;

        let mut per_bucket = vec![(0, 0); bucket_list.len()];
        for row in rows {
            per_bucket[bucket_index(&row, bucket_list.len())?] =
                (count(&row, "created")?, count(&row, "deleted")?);
        }
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
        let report = Report::begin(self.conn, period, Utc::now()).await?;
        let sql = per_bucket(
            report.backend,
            false,
            &[("n", "COUNT(*)"), ("converted", "COUNT(t.converted_at)")],
            "FROM trials t WHERE t.activated_at >= b.s AND t.activated_at < b.e",
        );
        let rows = report
            .run(&[Query::PerBucket { sql, keys: None }])
            .await?
            .into_iter()
            .flatten();
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
            bucket.trials = count(&row, "n")?;
            bucket.converted = count(&row, "converted")?;
        }
        Ok(ConversionReport {
            trials: buckets.iter().map(|b| b.trials).sum(),
            converted: buckets.iter().map(|b| b.converted).sum(),
            buckets,
        })
    }

    /// Subscriptions active at `now` per plan tier, in tier order (without a plan last).
    pub async fn active_by_tier(&self, now: DateTime<Utc>) -> Result<Vec<TierCount>, DbError> {
        let (sql, values) = active_by_tier_query(now);
        let backend = self.conn.get_database_backend();
        let rows = self
            .conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                placeholders(backend, &sql),
                values,
            ))
            .await?;
        tier_counts(rows)
    }

    /// Subscriptions active at `now` per plan tier, and per bucket the subscriptions live at its start,
    /// started in it and churned in it (ended by `now`, not renewed), with and without a plan. Starts and ends
    /// are read from the subscriptions' dates as they stand now: a renewal moves the end date, so a
    /// subscription that lapsed and was renewed later counts as live through the gap.
    pub async fn subscriptions(
        &self,
        period: &ReportPeriod,
        now: DateTime<Utc>,
    ) -> Result<SubscriptionReport, DbError> {
        let now = crate::stored_time(now);
        let report = Report::begin(self.conn, period, now).await?;
        let queries = [
            {
                let (sql, values) = active_by_tier_query(now);
                Query::Plain { sql, values }
            },
            Query::Plain {
                sql: "SELECT COUNT(*) AS n, COUNT(plan_id) AS paid \
                      FROM subscriptions WHERE expires_at >= ? AND created_at < ?"
                    .to_owned(),
                values: vec![time(period.from()), time(period.from())],
            },
            Query::PerBucket {
                sql: per_bucket(
                    report.backend,
                    false,
                    &[("n", "COUNT(*)"), ("paid", "COUNT(s.plan_id)")],
                    "FROM subscriptions s WHERE s.created_at >= b.s AND s.created_at < b.e",
                ),
                keys: None,
            },
            // `b.c` is where the bucket's part up to `now` ends: what ends before it has ended.
            Query::PerBucket {
                sql: per_bucket(
                    report.backend,
                    false,
                    &[
                        ("n", "COUNT(*)"),
                        ("paid", "COUNT(s.plan_id)"),
                        (
                            "churned",
                            "SUM(CASE WHEN s.expires_at < b.c THEN 1 ELSE 0 END)",
                        ),
                        (
                            "churned_paid",
                            "SUM(CASE WHEN s.expires_at < b.c AND s.plan_id IS NOT NULL THEN 1 ELSE 0 END)",
                        ),
                    ],
                    "FROM subscriptions s WHERE s.expires_at >= b.s AND s.expires_at < b.e",
                ),
                keys: None,
            },
        ];
        let mut results = report.run(&queries).await?.into_iter();
        let mut next = || results.next().unwrap_or_default();
        let (tiers, live, started, ended) = (next(), next(), next(), next());
        let bucket_list = report.end().await?;

        let active_now = tier_counts(tiers)?;

        // Per bucket: [free, paid].
        let mut churn = vec![[Churn::default(); 2]; bucket_list.len()];
        let split = |row: &QueryResult, all: &str, paid: &str| -> Result<[u64; 2], DbError> {
            let (all, paid) = (count(row, all)?, count(row, paid)?);
            Ok([all.saturating_sub(paid), paid])
        };
        let mut live_at_start = match live.first() {
            Some(row) => split(row, "n", "paid")?,
            None => [0; 2],
        };
        for row in started {
            let i = bucket_index(&row, bucket_list.len())?;
            for (kind, n) in churn[i].iter_mut().zip(split(&row, "n", "paid")?) {
                kind.started = n;
            }
        }
        for row in ended {
            let i = bucket_index(&row, bucket_list.len())?;
            let ends = split(&row, "n", "paid")?;
            let churned = split(&row, "churned", "churned_paid")?;
            for ((kind, ends), churned) in churn[i].iter_mut().zip(ends).zip(churned) {
                kind.ends = ends;
                kind.churned = churned;
            }
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

/// A query of a report, written with `?` placeholders.
enum Query {
    /// Aggregates per bucket (see [`per_bucket`]): parameters are the bucket list, then `keys` if keyed.
    PerBucket {
        /// The SQL.
        sql: String,
        /// The key list, as JSON.
        keys: Option<String>,
    },
    /// Any other query, with its parameters.
    Plain {
        /// The SQL.
        sql: String,
        /// Its parameters.
        values: Vec<Value>,
    },
}

/// One report's read-only snapshot and its buckets.
///
/// On PostgreSQL a report runs in two lanes at once, each on its own connection: the even buckets of each
/// per-bucket query and the other queries in the first, the odd buckets in the second, which reads the
/// first's snapshot (`pg_export_snapshot`). Both cores work on one report, and its figures stay consistent.
/// SQLite runs everything in one lane.
struct Report {
    conn: DatabaseConnection,
    txn: DatabaseTransaction,
    backend: DbBackend,
    buckets: Vec<Bucket>,
    /// The first transaction's snapshot, for the second lane (PostgreSQL).
    snapshot: Option<String>,
    /// Every bucket, `[[i, start, end, cut], …]`: `cut` is the end of the bucket's part up to `now` (the start
    /// if all of it lies after `now`).
    all_buckets: String,
    /// The even buckets and the odd buckets, in the same form.
    halves: [String; 2],
}

impl Report {
    /// Opens the snapshot every query of the report reads. On PostgreSQL: repeatable read, read only, and no
    /// JIT compilation (it costs more than it saves on these short scans).
    async fn begin(
        conn: &DatabaseConnection,
        period: &ReportPeriod,
        now: DateTime<Utc>,
    ) -> Result<Self, DbError> {
        let backend = conn.get_database_backend();
        let (txn, snapshot) = match backend {
            DbBackend::Postgres => {
                let txn = read_only(conn).await?;
                let snapshot = txn
                    .query_one_raw(Statement::from_string(
                        backend,
                        "SELECT pg_export_snapshot() AS id",
                    ))
                    .await?
                    .map(|row| row.try_get::<String>("", "id"))
                    .transpose()?;
                (txn, snapshot)
            }
            _ => (conn.begin().await?, None),
        };
        // Stored times have microseconds: "ended by now" is "ends before the next microsecond".
        let after_now = crate::stored_time(now) + TimeDelta::microseconds(1);
        let buckets = period.buckets();
        let rows: Vec<serde_json::Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let cut = after_now.clamp(b.start, b.end);
                serde_json::json!([
                    i,
                    stored_text(b.start),
                    stored_text(b.end),
                    stored_text(cut)
                ])
            })
            .collect();
        let half = |parity: usize| {
            let rows: Vec<&serde_json::Value> = rows.iter().skip(parity).step_by(2).collect();
            serde_json::json!(rows).to_string()
        };
        Ok(Self {
            conn: conn.clone(),
            txn,
            backend,
            buckets,
            snapshot,
            halves: [half(0), half(1)],
            all_buckets: serde_json::Value::Array(rows).to_string(),
        })
    }

    /// Runs `queries`; the rows of each, in order.
    async fn run(&self, queries: &[Query]) -> Result<Vec<Vec<QueryResult>>, DbError> {
        let second = match &self.snapshot {
            Some(snapshot) if self.buckets.len() > 1 => Some(self.second_lane(snapshot).await?),
            _ => None,
        };
        let Some(second) = second else {
            return self.lane(&self.txn, queries, &self.all_buckets, true).await;
        };
        let (mut first, rest) = futures_util::future::try_join(
            self.lane(&self.txn, queries, &self.halves[0], true),
            self.lane(&second, queries, &self.halves[1], false),
        )
        .await?;
        second.commit().await?;
        for (rows, more) in first.iter_mut().zip(rest) {
            rows.extend(more);
        }
        Ok(first)
    }

    /// A read-only transaction on another connection that reads the same snapshot as the first.
    async fn second_lane(&self, snapshot: &str) -> Result<DatabaseTransaction, DbError> {
        if !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(DbError::corrupt("analytics", "unexpected snapshot id"));
        }
        let txn = read_only(&self.conn).await?;
        txn.execute_unprepared(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
            .await?;
        Ok(txn)
    }

    /// Runs `queries` one after another in `txn`, the per-bucket ones over `buckets`; the plain ones only if
    /// `plain` (an empty result otherwise).
    async fn lane(
        &self,
        txn: &DatabaseTransaction,
        queries: &[Query],
        buckets: &str,
        plain: bool,
    ) -> Result<Vec<Vec<QueryResult>>, DbError> {
        let mut results = Vec::with_capacity(queries.len());
        for query in queries {
            let (sql, values) = match query {
                Query::PerBucket { sql, keys } => {
                    let mut values: Vec<Value> = vec![buckets.to_owned().into()];
                    values.extend(keys.iter().map(|k| Value::from(k.clone())));
                    (sql, values)
                }
                Query::Plain { sql, values } if plain => (sql, values.clone()),
                Query::Plain { .. } => {
                    results.push(Vec::new());
                    continue;
                }
            };
            let sql = placeholders(self.backend, sql);
            results.push(
                txn.query_all_raw(Statement::from_sql_and_values(self.backend, sql, values))
                    .await?,
            );
        }
        Ok(results)
    }

    /// Ends the read-only transaction; gives back the buckets.
    async fn end(self) -> Result<Vec<Bucket>, DbError> {
        self.txn.commit().await?;
        Ok(self.buckets)
    }
}

/// A repeatable-read, read-only PostgreSQL transaction without JIT compilation.
async fn read_only(conn: &DatabaseConnection) -> Result<DatabaseTransaction, DbError> {
    let txn = conn
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    txn.execute_unprepared("SET LOCAL jit = off").await?;
    Ok(txn)
}

/// The key list `[[j, k1, k2], …]` of a keyed report, numbered in order.
fn keys_json(keys: &[(&str, &str)]) -> String {
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(j, (k1, k2))| serde_json::json!([j, k1, k2]))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// A query with one row per bucket (`i`), or per bucket and key (`i`, `j`) when `keyed`, holding the
/// `aggregates` (alias, expression) of the rows `source` (`FROM … WHERE …`, reading the bucket as `b`: `b.s`,
/// `b.e`, `b.c`, and the key as `k`: `k.k1`, `k.k2`) selects. With an empty `source`, each expression is a
/// whole scalar subquery of its own. Parameters: the bucket list, then the key list.
///
/// Each bucket's rows are aggregated on their own, by a subquery over one index range: nothing is grouped by
/// hashing, and the planner cannot turn the per-bucket range scans into a join over the whole table.
fn per_bucket(
    backend: DbBackend,
    keyed: bool,
    aggregates: &[(&str, &str)],
    source: &str,
) -> String {
    let mut sql = format!("WITH b AS MATERIALIZED ({})", buckets_rows(backend));
    if keyed {
        sql.push_str(&format!(", k AS MATERIALIZED ({})", keys_rows(backend)));
    }
    sql.push_str(" SELECT b.i AS i");
    if keyed {
        sql.push_str(", k.j AS j");
    }
    let from = if keyed { "b CROSS JOIN k" } else { "b" };
    let scalar = |expr: &str| {
        if source.is_empty() {
            expr.to_owned()
        } else {
            format!("(SELECT {expr} {source})")
        }
    };
    match backend {
        DbBackend::Postgres if !source.is_empty() => {
            let inner: Vec<String> = aggregates
                .iter()
                .map(|(alias, expr)| format!("{expr} AS {alias}"))
                .collect();
            for (alias, _) in aggregates {
                sql.push_str(&format!(", a.{alias} AS {alias}"));
            }
            sql.push_str(&format!(
                " FROM {from} CROSS JOIN LATERAL (SELECT {} {source}) AS a",
                inner.join(", ")
            ));
        }
        _ => {
            for (alias, expr) in aggregates {
                sql.push_str(&format!(", {} AS {alias}", scalar(expr)));
            }
            sql.push_str(&format!(" FROM {from}"));
        }
    }
    sql
}

/// The bucket list (the first parameter, a JSON array of `[i, start, end, cut]`) as rows `(i, s, e, c)`.
/// SQLite keeps the times as the RFC 3339 texts it stores, which sort as the instants do.
const fn buckets_rows(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "SELECT CAST(x->>0 AS INTEGER) AS i, CAST(x->>1 AS TIMESTAMPTZ) AS s, \
                    CAST(x->>2 AS TIMESTAMPTZ) AS e, CAST(x->>3 AS TIMESTAMPTZ) AS c \
             FROM json_array_elements(CAST(? AS JSON)) AS x"
        }
        _ => {
            "SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS i, json_extract(value, '$[1]') AS s, \
                    json_extract(value, '$[2]') AS e, json_extract(value, '$[3]') AS c \
             FROM json_each(?)"
        }
    }
}

/// The key list (the second parameter, a JSON array of `[j, k1, k2]`) as rows `(j, k1, k2)`.
const fn keys_rows(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "SELECT CAST(y->>0 AS INTEGER) AS j, y->>1 AS k1, y->>2 AS k2 \
             FROM json_array_elements(CAST(? AS JSON)) AS y"
        }
        _ => {
            "SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS j, json_extract(value, '$[1]') AS k1, \
                    json_extract(value, '$[2]') AS k2 \
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
/// Counts the subscriptions active at `now` per plan tier (a `NULL` tier: without a plan).
fn active_by_tier_query(now: DateTime<Utc>) -> (String, Vec<Value>) {
    (
        "SELECT pl.tier AS tier, CAST(SUM(s.n) AS BIGINT) AS n \
         FROM (SELECT plan_id, COUNT(*) AS n FROM subscriptions \
               WHERE expires_at > ? AND status = ? GROUP BY plan_id) s \
         LEFT JOIN plans pl ON pl.id = s.plan_id \
         GROUP BY pl.tier"
            .to_owned(),
        vec![time(now), SubscriptionStatus::Active.as_str().into()],
    )
}

/// The rows of [`active_by_tier_query`] in tier order, without a plan last.
fn tier_counts(rows: Vec<QueryResult>) -> Result<Vec<TierCount>, DbError> {
    let mut counts = Vec::new();
    for row in rows {
        let tier = row
            .try_get::<Option<String>>("", "tier")?
            .map(|t| PlanTier::from_str(&t))
            .transpose()
            .map_err(|err| DbError::corrupt("plans", err))?;
        counts.push(TierCount {
            tier,
            active: count(&row, "n")?,
        });
    }
    counts.sort_by_key(|t| {
        t.tier.map_or(PlanTier::ALL.len(), |tier| {
            PlanTier::ALL.iter().position(|x| *x == tier).unwrap_or(0)
        })
    });
    Ok(counts)
}

fn time(at: DateTime<Utc>) -> Value {
    crate::stored_time(at).into()
}

/// The bucket index of a row, below `buckets`.
fn bucket_index(row: &QueryResult, buckets: usize) -> Result<usize, DbError> {
    index(row, "i", buckets)
}

/// The key index of a row, below `keys`.
fn key_index(row: &QueryResult, keys: usize) -> Result<usize, DbError> {
    index(row, "j", keys)
}

fn index(row: &QueryResult, column: &str, len: usize) -> Result<usize, DbError> {
    usize::try_from(row.try_get::<i32>("", column)?)
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| DbError::corrupt("analytics", format!("{column} out of range")))
}

/// A non-negative count column (a sum of nothing is `NULL`, read as 0).
fn count(row: &QueryResult, column: &str) -> Result<u64, DbError> {
    let n = row_i64(row, column)?;
    u64::try_from(n).map_err(|err| DbError::corrupt("analytics", err))
}

/// A 64-bit integer column (a sum of nothing is `NULL`, read as 0).
fn row_i64(row: &QueryResult, column: &str) -> Result<i64, DbError> {
    Ok(row.try_get::<Option<i64>>("", column)?.unwrap_or(0))
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

    #[test]
    fn aggregates_of_a_range_are_one_lateral_scan_on_postgres_and_subqueries_on_sqlite() {
        let source = "FROM trials t WHERE t.activated_at >= b.s AND t.activated_at < b.e";
        let aggregates = [("n", "COUNT(*)"), ("converted", "COUNT(t.converted_at)")];
        let pg = per_bucket(DbBackend::Postgres, false, &aggregates, source);
        assert!(pg.ends_with(
            "SELECT b.i AS i, a.n AS n, a.converted AS converted FROM b CROSS JOIN LATERAL \
             (SELECT COUNT(*) AS n, COUNT(t.converted_at) AS converted FROM trials t \
             WHERE t.activated_at >= b.s AND t.activated_at < b.e) AS a"
        ));
        let sqlite = per_bucket(DbBackend::Sqlite, true, &aggregates, source);
        assert!(sqlite.contains(", k AS MATERIALIZED (SELECT CAST(json_extract"));
        assert!(sqlite.ends_with(
            "SELECT b.i AS i, k.j AS j, (SELECT COUNT(*) FROM trials t WHERE t.activated_at >= b.s AND \
             t.activated_at < b.e) AS n, (SELECT COUNT(t.converted_at) FROM trials t WHERE \
             t.activated_at >= b.s AND t.activated_at < b.e) AS converted FROM b CROSS JOIN k"
        ));
    }
}
