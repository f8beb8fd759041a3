//! Retry policy: exponential backoff with equal jitter.

use std::time::Duration;

/// How many times a job is attempted and how long it waits between attempts.
///
/// After failed attempt `n` the job waits a random time between half and all of `base_delay · 2^(n−1)`
/// (capped at `max_delay`): "equal jitter", which spreads a burst of failures while keeping the backoff growing.
/// On the Redis backend waits are rounded to whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; a retryable failure of the last one dead-letters the job.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failure.
    pub base_delay: Duration,
    /// Upper bound of the backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 8 attempts, 5 s doubling up to 10 min: gives up after about 10 minutes of failures.
    pub const DEFAULT: Self = Self {
        max_attempts: 8,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(600),
    };

    /// One attempt: any failure dead-letters the job.
    pub const NEVER: Self = Self {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The backoff ceiling after failed attempt `attempt` (1-based): `base_delay · 2^(attempt−1)`, at most `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1_u32 << doublings)
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }

    /// A jittered wait after failed attempt `attempt`, uniformly within `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        // Without OS randomness the full ceiling is still a valid (if unjittered) backoff.
        self.delay_with(attempt, getrandom::u64().unwrap_or(u64::MAX))
    }

    /// The wait for a given random draw (`0` → half the ceiling, `u64::MAX` → the ceiling).
    pub(crate) fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos();
        let half = ceiling / 2;
        let extra = (ceiling - half) * u128::from(random) / u128::from(u64::MAX);
        Duration::from_nanos(u64::try_from(half + extra).unwrap_or(u64::MAX))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RetryPolicy;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(60),
    };

    #[test]
    fn ceilings_double_from_the_base_and_stop_at_the_cap() {
        let ceilings: Vec<u64> = (1..=7).map(|n| POLICY.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(POLICY.ceiling(u32::MAX), Duration::from_secs(60));
        assert_eq!(POLICY.ceiling(0), Duration::from_secs(2));
    }

    #[test]
    fn equal_jitter_stays_between_half_and_the_whole_ceiling() {
        assert_eq!(POLICY.delay_with(3, 0), Duration::from_secs(4));
        assert_eq!(POLICY.delay_with(3, u64::MAX), Duration::from_secs(8));
        assert_eq!(POLICY.delay_with(3, 1 << 63), Duration::from_secs(6));
        for attempt in 1..12 {
            let delay = POLICY.delay(attempt);
            let ceiling = POLICY.ceiling(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn jittered_delays_never_shrink_from_one_attempt_to_the_next() {
        // Until the cap, the smallest wait after attempt n+1 is the largest after attempt n.
        for attempt in 1..=4 {
            assert!(POLICY.delay_with(attempt + 1, 0) >= POLICY.delay_with(attempt, u64::MAX));
        }
    }
}
