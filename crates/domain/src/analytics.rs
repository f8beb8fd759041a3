//! Business analytics: the period a report covers, cut into UTC days, weeks (from Monday) or months.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc};

use crate::{DomainError, macros::string_enum};

string_enum! {
    /// How finely a report cuts its period; every boundary is midnight UTC.
    pub enum Granularity (field = "granularity") {
        /// Calendar days.
        Day => "day",
        /// Weeks from Monday to Sunday.
        Week => "week",
        /// Calendar months.
        Month => "month",
    }
}

impl Granularity {
    /// The first day of the bucket holding `day`.
    fn first_day(self, day: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => day,
            Self::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Self::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the bucket after the one starting on `first`; `None` past the calendar's end.
    fn next_first_day(self, first: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Day => first.checked_add_days(Days::new(1)),
            Self::Week => first.checked_add_days(Days::new(7)),
            Self::Month => first.checked_add_months(Months::new(1)),
        }
    }

    /// The start of the bucket holding `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        midnight(self.first_day(at.date_naive()))
    }
}

/// One bucket of a report: the instants from `start` (inclusive) to `end` (exclusive), clipped to the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Where it starts: a bucket boundary, or the period's start for the first bucket.
    pub start: DateTime<Utc>,
    /// Where it ends: the next bucket boundary, or the period's end for the last bucket.
    pub end: DateTime<Utc>,
}

/// The period a report covers, `[from, to)`, and how it is cut into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
}

impl ReportPeriod {
    /// Longest period, in days: two years, one of them a leap year.
    pub const MAX_DAYS: i64 = 731;
    /// Length of the period when the caller gives no start, in days.
    pub const DEFAULT_DAYS: i64 = 30;
    /// Earliest year a period may touch.
    const FIRST_YEAR: i32 = 1970;
    /// Latest year a period may touch.
    const LAST_YEAR: i32 = 9999;

    /// A period from `from` (inclusive) to `to` (exclusive): `from` must come first, both must lie in the
    /// years 1970 to 9999, and the period may not exceed [`Self::MAX_DAYS`].
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> Result<Self, DomainError> {
        for (field, at) in [("from", from), ("to", to)] {
            if !(Self::FIRST_YEAR..=Self::LAST_YEAR).contains(&at.year()) {
                return Err(DomainError::invalid(
                    field,
                    format!(
                        "must lie between the years {} and {}",
                        Self::FIRST_YEAR,
                        Self::LAST_YEAR
                    ),
                ));
            }
        }
        if from >= to {
            return Err(DomainError::invalid("to", "must be later than `from`"));
        }
        if to - from > TimeDelta::days(Self::MAX_DAYS) {
            return Err(DomainError::invalid(
                "to",
                format!(
                    "the period from `from` to `to` may span at most {} days",
                    Self::MAX_DAYS
                ),
            ));
        }
        Ok(Self {
            from,
            to,
            granularity,
        })
    }

    /// The period a caller asked for, with defaults for what they left out: `to` is the end of today (UTC),
    /// `from` is [`Self::DEFAULT_DAYS`] days before `to`, and buckets are days.
    pub fn requested(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        granularity: Option<Granularity>,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        let to = match to {
            Some(to) => to,
            None => Granularity::Day
                .next_first_day(now.date_naive())
                .map(midnight)
                .ok_or_else(|| DomainError::invalid("to", "the clock is out of range"))?,
        };
        let from = match from {
            Some(from) => from,
            None => to
                .checked_sub_signed(TimeDelta::days(Self::DEFAULT_DAYS))
                .ok_or_else(|| DomainError::invalid("to", "is out of range"))?,
        };
        Self::new(from, to, granularity.unwrap_or(Granularity::Day))
    }

    /// Where the period starts (inclusive).
    pub const fn from(&self) -> DateTime<Utc> {
        self.from
    }

    /// Where the period ends (exclusive).
    pub const fn to(&self) -> DateTime<Utc> {
        self.to
    }

    /// How the period is cut.
    pub const fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// The buckets, in order, covering the period without gaps or overlaps (at most 732).
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        let mut start = self.from;
        while start < self.to {
            let first = self.granularity.first_day(start.date_naive());
            let end = self
                .granularity
                .next_first_day(first)
                .map_or(self.to, |next| midnight(next).min(self.to));
            buckets.push(Bucket { start, end });
            start = end;
        }
        buckets
    }
}

/// `part` as a share of `whole` in basis points (hundredths of a percent), rounded down; `None` when `whole`
/// is zero. Exact integer arithmetic: 1 of 3 is 3333.
pub fn basis_points(part: u64, whole: u64) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    let bps = u128::from(part) * 10_000 / u128::from(whole);
    Some(u64::try_from(bps).unwrap_or(u64::MAX))
}

/// Midnight UTC at the start of `day`.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Weekday};
    use proptest::prelude::*;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn period(from: DateTime<Utc>, to: DateTime<Utc>, g: Granularity) -> ReportPeriod {
        ReportPeriod::new(from, to, g).unwrap()
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-11-29 is a Sunday.
        assert_eq!(
            Granularity::Week.floor(at(2026, 11, 29, 23)),
            at(2026, 11, 23, 0)
        );
        assert_eq!(
            Granularity::Week.floor(at(2026, 11, 30, 0)),
            at(2026, 11, 30, 0)
        );
        assert_eq!(
            Granularity::Month.floor(at(2024, 2, 29, 12)),
            at(2024, 2, 1, 0)
        );
        assert_eq!(
            Granularity::Day.floor(at(2024, 2, 29, 12)),
            at(2024, 2, 29, 0)
        );
    }

    #[test]
    fn buckets_are_clipped_to_the_period() {
        let p = period(at(2026, 1, 15, 6), at(2026, 3, 2, 0), Granularity::Month);
        assert_eq!(
            p.buckets(),
            [
                Bucket {
                    start: at(2026, 1, 15, 6),
                    end: at(2026, 2, 1, 0)
                },
                Bucket {
                    start: at(2026, 2, 1, 0),
                    end: at(2026, 3, 1, 0)
                },
                Bucket {
                    start: at(2026, 3, 1, 0),
                    end: at(2026, 3, 2, 0)
                },
            ]
        );
        let weeks = period(at(2026, 11, 25, 0), at(2026, 12, 8, 0), Granularity::Week).buckets();
        let starts: Vec<_> = weeks.iter().map(|b| b.start).collect();
        assert_eq!(
            starts,
            [at(2026, 11, 25, 0), at(2026, 11, 30, 0), at(2026, 12, 7, 0)]
        );
    }

    #[test]
    fn periods_must_be_ordered_bounded_and_in_range() {
        let err = |from, to| ReportPeriod::new(from, to, Granularity::Day).unwrap_err();
        assert!(matches!(
            err(at(2026, 1, 2, 0), at(2026, 1, 2, 0)),
            DomainError::Invalid { field: "to", .. }
        ));
        assert!(matches!(
            err(at(2024, 1, 1, 0), at(2026, 1, 2, 0)),
            DomainError::Invalid { field: "to", .. }
        ));
        assert!(matches!(
            err(at(1969, 12, 31, 0), at(1970, 1, 2, 0)),
            DomainError::Invalid { field: "from", .. }
        ));
        // Exactly the longest period is fine, and gives at most 732 daily buckets.
        let longest = period(at(2024, 1, 1, 12), at(2026, 1, 1, 12), Granularity::Day);
        assert_eq!(longest.buckets().len(), 732);
    }

    #[test]
    fn defaults_are_the_thirty_days_up_to_the_end_of_today() {
        let now = at(2026, 11, 26, 23);
        let p = ReportPeriod::requested(None, None, None, now).unwrap();
        assert_eq!(
            (p.from(), p.to()),
            (at(2026, 10, 28, 0), at(2026, 11, 27, 0))
        );
        assert_eq!(p.granularity(), Granularity::Day);
        assert_eq!(p.buckets().len(), 30);
        let p = ReportPeriod::requested(None, Some(at(2026, 6, 1, 0)), None, now).unwrap();
        assert_eq!(p.from(), at(2026, 5, 2, 0));
    }

    #[test]
    fn basis_points_round_down_and_refuse_an_empty_whole() {
        assert_eq!(basis_points(1, 3), Some(3333));
        assert_eq!(basis_points(2, 3), Some(6666));
        assert_eq!(basis_points(3, 3), Some(10_000));
        assert_eq!(basis_points(5, 4), Some(12_500));
        assert_eq!(basis_points(0, 7), Some(0));
        assert_eq!(basis_points(1, 0), None);
        assert_eq!(basis_points(u64::MAX, 1), Some(u64::MAX));
    }

    proptest! {
        #[test]
        fn buckets_tile_the_period(
            from_secs in 0i64..(60 * 365 * 86_400),
            len_secs in 1i64..(ReportPeriod::MAX_DAYS * 86_400),
            g in prop::sample::select(Granularity::ALL),
        ) {
            let from = DateTime::from_timestamp(from_secs, 0).unwrap();
            let to = from + TimeDelta::seconds(len_secs);
            let buckets = period(from, to, g).buckets();
            prop_assert_eq!(buckets.first().unwrap().start, from);
            prop_assert_eq!(buckets.last().unwrap().end, to);
            for pair in buckets.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                // Every boundary inside the period is a bucket start of this granularity.
                prop_assert_eq!(g.floor(pair[1].start), pair[1].start);
                if g == Granularity::Week {
                    prop_assert_eq!(pair[1].start.weekday(), Weekday::Mon);
                }
            }
            for bucket in &buckets {
                prop_assert!(bucket.start < bucket.end);
                // A bucket never crosses a boundary.
                prop_assert_eq!(g.floor(bucket.start), g.floor(bucket.end - TimeDelta::microseconds(1)));
            }
        }
    }
}
