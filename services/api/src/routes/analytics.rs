//! Business analytics for staff: revenue, payment outcomes, growth, trial conversions and subscription churn
//! over a period cut into UTC days, weeks (Monday to Sunday) or months.
//!
//! Money is in minor units (integers, never floats); shares are integer basis points (1/100 of a percent,
//! rounded down) next to the counts they are computed from, so clients can recompute them exactly.

use actix_web::{get, web};
use chrono::{DateTime, NaiveDate, Utc};
use cybervpn_db::{
    Churn, ConversionReport, GrowthReport, OutcomesReport, RevenueLine, RevenueReport,
    StatusCounts, SubscriptionReport,
};
use cybervpn_domain::{Granularity, ReportPeriod, basis_points};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, perm},
    error::{ApiError, Problem},
    state::AppState,
};

/// The period of a report and how it is cut.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeriodQuery {
    /// Start, inclusive: an RFC 3339 date (`2026-01-31`, midnight UTC) or instant (`2026-01-31T12:00:00Z`).
    /// Default: 30 days before `to`.
    #[param(value_type = Option<String>, example = "2026-01-01")]
    from: Option<String>,
    /// End, exclusive, in the same forms; at most 731 days after `from`. Default: the end of today (UTC).
    #[param(value_type = Option<String>, example = "2026-02-01")]
    to: Option<String>,
    /// `day` (default), `week` (Monday to Sunday) or `month`; bucket boundaries are midnight UTC, and the first
    /// and last buckets are clipped to the period.
    #[param(value_type = Option<String>, example = "week")]
    granularity: Option<String>,
}

impl PeriodQuery {
    fn period(&self) -> Result<ReportPeriod, ApiError> {
        let from = self
            .from
            .as_deref()
            .map(|text| instant("from", text))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|text| instant("to", text))
            .transpose()?;
        let granularity = self
            .granularity
            .as_deref()
            .map(str::parse::<Granularity>)
            .transpose()?;
        Ok(ReportPeriod::requested(from, to, granularity, Utc::now())?)
    }
}

/// An RFC 3339 date (midnight UTC) or instant.
fn instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    let parsed = if text.len() == 10 {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    };
    parsed.ok_or_else(|| {
        ApiError::invalid_field(
            field,
            "must be an RFC 3339 date such as 2026-01-31 or an instant such as 2026-01-31T00:00:00Z",
        )
    })
}

/// The period a report covers.
#[derive(Serialize, ToSchema)]
pub(crate) struct PeriodView {
    /// Start, inclusive.
    from: DateTime<Utc>,
    /// End, exclusive.
    to: DateTime<Utc>,
    /// `day`, `week` or `month`.
    granularity: &'static str,
}

impl From<&ReportPeriod> for PeriodView {
    fn from(period: &ReportPeriod) -> Self {
        Self {
            from: period.from(),
            to: period.to(),
            granularity: period.granularity().as_str(),
        }
    }
}

/// Money taken and given back in one currency through one gateway.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevenueLineView {
    /// `USD`, `RUB` or `XTR`.
    currency: &'static str,
    /// `cryptobot`, `yookassa`, `stripe` or `telegram_stars`.
    provider: &'static str,
    /// Payments credited in the bucket (including those refunded later).
    payments: u64,
    /// Their sum, in minor units.
    amount_minor: i64,
    /// Payments refunded in the bucket (whenever they were paid).
    refunds: u64,
    /// The refunded sum, in minor units.
    refunded_minor: i64,
    /// `amount_minor - refunded_minor`.
    net_minor: i64,
}

impl TryFrom<&RevenueLine> for RevenueLineView {
    type Error = ApiError;

    fn try_from(line: &RevenueLine) -> Result<Self, ApiError> {
        Ok(Self {
            currency: line.currency.as_str(),
            provider: line.provider.as_str(),
            payments: line.payments,
            amount_minor: line.amount_minor,
            refunds: line.refunds,
            refunded_minor: line.refunded_minor,
            net_minor: line
                .amount_minor
                .checked_sub(line.refunded_minor)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("net revenue out of range")))?,
        })
    }
}

/// Revenue of one bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevenueBucketView {
    /// Start, inclusive.
    start: DateTime<Utc>,
    /// End, exclusive.
    end: DateTime<Utc>,
    /// Per currency and gateway with any payment or refund in the bucket, by currency then gateway.
    lines: Vec<RevenueLineView>,
}

/// Revenue over a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevenueView {
    period: PeriodView,
    /// Every bucket, in order (empty ones too).
    buckets: Vec<RevenueBucketView>,
    /// The whole period, per currency and gateway.
    totals: Vec<RevenueLineView>,
}

fn lines(lines: &[RevenueLine]) -> Result<Vec<RevenueLineView>, ApiError> {
    lines.iter().map(RevenueLineView::try_from).collect()
}

impl TryFrom<(&ReportPeriod, RevenueReport)> for RevenueView {
    type Error = ApiError;

    fn try_from((period, report): (&ReportPeriod, RevenueReport)) -> Result<Self, ApiError> {
        Ok(Self {
            period: period.into(),
            buckets: report
                .buckets
                .iter()
                .map(|b| {
                    Ok(RevenueBucketView {
                        start: b.bucket.start,
                        end: b.bucket.end,
                        lines: lines(&b.lines)?,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
            totals: lines(&report.totals)?,
        })
    }
}

/// Revenue per bucket, currency and gateway: payments by when they were credited (refunded ones included) and
/// refunds by when the money went back, so `net_minor` is what the bucket kept.
#[utoipa::path(
    tag = "analytics",
    params(PeriodQuery),
    security(("staff" = ["view_analytics"])),
    responses(
        (status = 200, description = "Revenue per bucket", body = RevenueView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_analytics`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/analytics/revenue")]
pub(crate) async fn revenue(
    Authorized(_staff, query): Authorized<perm::ViewAnalytics, web::Query<PeriodQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<RevenueView>, ApiError> {
    let period = query.period()?;
    let report = state.db.analytics().revenue(&period).await?;
    Ok(web::Json(RevenueView::try_from((&period, report))?))
}

/// Payments by the status they stand in now, with the success rate.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeCountsView {
    pending: u64,
    completed: u64,
    failed: u64,
    expired: u64,
    refunded: u64,
    /// Every payment counted.
    total: u64,
    /// Paid: completed, or refunded after completion.
    succeeded: u64,
    /// With an outcome: succeeded, failed or expired (pending ones are not decided yet).
    decided: u64,
    /// `succeeded / decided` in basis points, rounded down; `null` when nothing is decided.
    success_rate_bps: Option<u64>,
}

impl From<&StatusCounts> for OutcomeCountsView {
    fn from(c: &StatusCounts) -> Self {
        Self {
            pending: c.pending,
            completed: c.completed,
            failed: c.failed,
            expired: c.expired,
            refunded: c.refunded,
            total: c.total(),
            succeeded: c.succeeded(),
            decided: c.decided(),
            success_rate_bps: basis_points(c.succeeded(), c.decided()),
        }
    }
}

/// Outcomes of one gateway.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderOutcomesView {
    /// `cryptobot`, `yookassa`, `stripe` or `telegram_stars`.
    provider: &'static str,
    counts: OutcomeCountsView,
}

fn by_provider(outcomes: &[cybervpn_db::ProviderOutcomes]) -> Vec<ProviderOutcomesView> {
    outcomes
        .iter()
        .map(|o| ProviderOutcomesView {
            provider: o.provider.as_str(),
            counts: (&o.counts).into(),
        })
        .collect()
}

/// Payment outcomes of one bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomesBucketView {
    /// Start, inclusive.
    start: DateTime<Utc>,
    /// End, exclusive.
    end: DateTime<Utc>,
    /// Every gateway together.
    all: OutcomeCountsView,
    /// Per gateway with any payment in the bucket.
    by_provider: Vec<ProviderOutcomesView>,
}

/// Payment outcomes over a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomesView {
    period: PeriodView,
    /// Every bucket, in order (empty ones too).
    buckets: Vec<OutcomesBucketView>,
    /// The whole period, every gateway together.
    all: OutcomeCountsView,
    /// The whole period, per gateway.
    by_provider: Vec<ProviderOutcomesView>,
}

impl From<(&ReportPeriod, OutcomesReport)> for OutcomesView {
    fn from((period, report): (&ReportPeriod, OutcomesReport)) -> Self {
        Self {
            period: period.into(),
            buckets: report
                .buckets
                .iter()
                .map(|b| OutcomesBucketView {
                    start: b.bucket.start,
                    end: b.bucket.end,
                    all: (&b.all).into(),
                    by_provider: by_provider(&b.by_provider),
                })
                .collect(),
            all: (&report.all).into(),
            by_provider: by_provider(&report.by_provider),
        }
    }
}

/// Payments opened per bucket (by creation time), per gateway, counted by the status they stand in now
/// (`pending`, `completed`, `failed`, `expired`, `refunded`), with the success rate.
#[utoipa::path(
    tag = "analytics",
    params(PeriodQuery),
    security(("staff" = ["view_analytics"])),
    responses(
        (status = 200, description = "Payment outcomes per bucket", body = OutcomesView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_analytics`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/analytics/payments")]
pub(crate) async fn payments(
    Authorized(_staff, query): Authorized<perm::ViewAnalytics, web::Query<PeriodQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<OutcomesView>, ApiError> {
    let period = query.period()?;
    let report = state.db.analytics().payment_outcomes(&period).await?;
    Ok(web::Json((&period, report).into()))
}

/// Customers gained and lost in one bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct GrowthBucketView {
    /// Start, inclusive.
    start: DateTime<Utc>,
    /// End, exclusive.
    end: DateTime<Utc>,
    /// Sign-ups in the bucket.
    new_customers: u64,
    /// Accounts deleted in the bucket.
    deleted_customers: u64,
    /// Customers with an account (signed up, not deleted) at the bucket's end.
    total_customers: u64,
}

/// Growth over a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct GrowthView {
    period: PeriodView,
    /// Customers with an account at the start of the period.
    total_at_start: u64,
    /// Every bucket, in order (empty ones too).
    buckets: Vec<GrowthBucketView>,
}

impl From<(&ReportPeriod, GrowthReport)> for GrowthView {
    fn from((period, report): (&ReportPeriod, GrowthReport)) -> Self {
        Self {
            period: period.into(),
            total_at_start: report.total_at_start,
            buckets: report
                .buckets
                .iter()
                .map(|b| GrowthBucketView {
                    start: b.bucket.start,
                    end: b.bucket.end,
                    new_customers: b.new_customers,
                    deleted_customers: b.deleted_customers,
                    total_customers: b.total_customers,
                })
                .collect(),
        }
    }
}

/// New customers per bucket and the running total of customers at each bucket's end.
#[utoipa::path(
    tag = "analytics",
    params(PeriodQuery),
    security(("staff" = ["view_analytics"])),
    responses(
        (status = 200, description = "Growth per bucket", body = GrowthView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_analytics`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/analytics/growth")]
pub(crate) async fn growth(
    Authorized(_staff, query): Authorized<perm::ViewAnalytics, web::Query<PeriodQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<GrowthView>, ApiError> {
    let period = query.period()?;
    let report = state.db.analytics().growth(&period).await?;
    Ok(web::Json((&period, report).into()))
}

/// Trials started in one bucket and how many converted.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConversionBucketView {
    /// Start, inclusive.
    start: DateTime<Utc>,
    /// End, exclusive.
    end: DateTime<Utc>,
    /// Free trials activated in the bucket.
    trials: u64,
    /// Of those, trials whose customer then paid (a payment credited after the trial started, up to now).
    converted: u64,
    /// `converted / trials` in basis points, rounded down; `null` without trials.
    conversion_bps: Option<u64>,
}

/// Trial conversions over a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConversionView {
    period: PeriodView,
    /// Trials activated in the period.
    trials: u64,
    /// Of those, converted.
    converted: u64,
    /// `converted / trials` in basis points, rounded down; `null` without trials.
    conversion_bps: Option<u64>,
    /// Every bucket, in order (empty ones too).
    buckets: Vec<ConversionBucketView>,
}

impl From<(&ReportPeriod, ConversionReport)> for ConversionView {
    fn from((period, report): (&ReportPeriod, ConversionReport)) -> Self {
        Self {
            period: period.into(),
            trials: report.trials,
            converted: report.converted,
            conversion_bps: basis_points(report.converted, report.trials),
            buckets: report
                .buckets
                .iter()
                .map(|b| ConversionBucketView {
                    start: b.bucket.start,
                    end: b.bucket.end,
                    trials: b.trials,
                    converted: b.converted,
                    conversion_bps: basis_points(b.converted, b.trials),
                })
                .collect(),
        }
    }
}

/// Free trials activated per bucket and how many of them converted to a paying customer (their first payment
/// credited after the trial started, at any time up to now).
#[utoipa::path(
    tag = "analytics",
    params(PeriodQuery),
    security(("staff" = ["view_analytics"])),
    responses(
        (status = 200, description = "Trial conversions per bucket", body = ConversionView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_analytics`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/analytics/conversions")]
pub(crate) async fn conversions(
    Authorized(_staff, query): Authorized<perm::ViewAnalytics, web::Query<PeriodQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<ConversionView>, ApiError> {
    let period = query.period()?;
    let report = state.db.analytics().conversions(&period).await?;
    Ok(web::Json((&period, report).into()))
}

/// Subscriptions active now in one tier.
#[derive(Serialize, ToSchema)]
pub(crate) struct TierView {
    /// `basic`, `pro`, `ultra`, `cyber`; `null` for subscriptions without a plan (free trials, staff grants).
    tier: Option<&'static str>,
    /// Subscriptions active now.
    active: u64,
}

/// Starts and churn of one kind of subscription in one bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChurnView {
    /// Live at the bucket's start (created before it, ending at or after it).
    active_at_start: u64,
    /// Created in the bucket.
    started: u64,
    /// Ended in the bucket and not renewed (a renewal moves the end date).
    churned: u64,
    /// `churned / active_at_start` in basis points, rounded down; `null` when none was live at the start.
    churn_bps: Option<u64>,
}

impl From<&Churn> for ChurnView {
    fn from(c: &Churn) -> Self {
        Self {
            active_at_start: c.active_at_start,
            started: c.started,
            churned: c.churned,
            churn_bps: basis_points(c.churned, c.active_at_start),
        }
    }
}

/// Subscription starts and churn of one bucket.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChurnBucketView {
    /// Start, inclusive.
    start: DateTime<Utc>,
    /// End, exclusive.
    end: DateTime<Utc>,
    /// Subscriptions on a plan (bought).
    paid: ChurnView,
    /// Subscriptions without a plan (free trials not converted, staff grants).
    free: ChurnView,
}

/// Subscriptions now and churn over a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionsView {
    period: PeriodView,
    /// Subscriptions active now, per tier with any (in tier order, no plan last).
    active_now: Vec<TierView>,
    /// Every subscription active now.
    active_now_total: u64,
    /// Every bucket, in order (empty ones too).
    buckets: Vec<ChurnBucketView>,
}

impl From<(&ReportPeriod, SubscriptionReport)> for SubscriptionsView {
    fn from((period, report): (&ReportPeriod, SubscriptionReport)) -> Self {
        Self {
            period: period.into(),
            active_now_total: report.active_now.iter().map(|t| t.active).sum(),
            active_now: report
                .active_now
                .iter()
                .map(|t| TierView {
                    tier: t.tier.map(|tier| tier.as_str()),
                    active: t.active,
                })
                .collect(),
            buckets: report
                .buckets
                .iter()
                .map(|b| ChurnBucketView {
                    start: b.bucket.start,
                    end: b.bucket.end,
                    paid: (&b.paid).into(),
                    free: (&b.free).into(),
                })
                .collect(),
        }
    }
}

/// Subscriptions active now by plan tier, and per bucket: subscriptions live at its start, started and
/// churned (ended and not renewed), with the churn rate — paid and free apart. Read from the subscriptions'
/// dates as they stand now: one that lapsed and was renewed later counts as live through the gap.
#[utoipa::path(
    tag = "analytics",
    params(PeriodQuery),
    security(("staff" = ["view_analytics"])),
    responses(
        (status = 200, description = "Active subscriptions and churn per bucket", body = SubscriptionsView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_analytics`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/analytics/subscriptions")]
pub(crate) async fn subscriptions(
    Authorized(_staff, query): Authorized<perm::ViewAnalytics, web::Query<PeriodQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<SubscriptionsView>, ApiError> {
    let period = query.period()?;
    let report = state
        .db
        .analytics()
        .subscriptions(&period, Utc::now())
        .await?;
    Ok(web::Json((&period, report).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_are_accepted_anything_else_names_the_parameter() {
        let day = instant("from", "2026-01-31").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-01-31T00:00:00+00:00");
        let at = instant("to", "2026-01-31T12:30:00+03:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-31T09:30:00+00:00");
        for bad in [
            "2026-13-01",
            "31.01.2026",
            "yesterday",
            "",
            "2026-01-31T25:00:00Z",
        ] {
            let err = instant("from", bad).unwrap_err();
            assert_eq!(
                err.code(),
                cybervpn_domain::ErrorCode::ValidationFailed,
                "{bad}"
            );
        }
    }

    #[test]
    fn buckets_show_their_clipped_bounds() {
        let from = instant("from", "2026-01-15T06:00:00Z").unwrap();
        let to = instant("to", "2026-02-02").unwrap();
        let period = ReportPeriod::new(from, to, Granularity::Month).unwrap();
        let buckets = period.buckets();
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0].start, from);
        assert_eq!(buckets[1].end, to);
    }
}
