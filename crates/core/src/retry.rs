//! When to try again: one delay function for every kind of background work (analysis,
//! handoff delivery, and whatever comes later), so that a schedule is data and not code.

use std::time::Duration;

/// Retry delays as data: the delay before attempt n+1 is `delays[n-1]` (the last entry
/// repeats), spread by ±`jitter`. A service's `Retry-After` is obeyed as it is, up to
/// `retry_after_max`; a throttled answer without one waits at least `throttle_floor`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    pub delays: Vec<Duration>,
    pub jitter: f64,
    pub retry_after_max: Duration,
    pub throttle_floor: Duration,
}

impl Default for RetrySchedule {
    /// Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; `Retry-After` up to 1 h.
    fn default() -> Self {
        RetrySchedule::from_secs(&[5, 300, 1800, 7200, 18000, 36000, 36000])
    }
}

/// What the failed attempt told us about when to come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryHint {
    /// The service's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// A rate limit or an overload (429, 503 with `Retry-After`, a timeout).
    pub throttled: bool,
}

/// The delay chosen, and whether a `Retry-After` was cut to the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryDelay {
    pub after: Duration,
    /// `Some(asked)` when the service asked for longer than `retry_after_max`.
    pub capped_from: Option<Duration>,
}

impl RetrySchedule {
    pub fn from_secs(secs: &[u64]) -> Self {
        RetrySchedule {
            delays: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
            jitter: 0.2,
            retry_after_max: Duration::from_secs(3600),
            throttle_floor: Duration::from_secs(60),
        }
    }

    /// The delay before the next attempt, after `attempt` attempts (from 1) have failed.
    /// `unit` is a random sample in [-1, 1] that spreads the delay by the jitter (the
    /// caller draws it: this crate has no randomness of its own).
    pub fn delay(&self, attempt: u32, hint: RetryHint, unit: f64) -> RetryDelay {
        if let Some(asked) = hint.retry_after {
            // The service knows when it will take us again: no jitter, no schedule.
            return if asked > self.retry_after_max {
                RetryDelay { after: self.retry_after_max, capped_from: Some(asked) }
            } else {
                RetryDelay { after: asked, capped_from: None }
            };
        }
        let idx = (attempt.max(1) as usize - 1).min(self.delays.len().saturating_sub(1));
        let mut base = self.delays.get(idx).copied().unwrap_or(Duration::from_secs(5));
        if hint.throttled {
            base = base.max(self.throttle_floor);
        }
        let spread = if self.jitter.is_finite() && self.jitter > 0.0 { unit.clamp(-1.0, 1.0) * self.jitter } else { 0.0 };
        RetryDelay { after: base.mul_f64((1.0 + spread).max(0.0)), capped_from: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_obeyed_not_stretched_to_the_schedule() {
        let s = RetrySchedule::default();
        // Attempt 2's schedule delay is 5 min; a one-second rate limit waits one second.
        let d = s.delay(2, RetryHint { retry_after: Some(Duration::from_secs(1)), throttled: true }, 0.9);
        assert_eq!(d, RetryDelay { after: Duration::from_secs(1), capped_from: None });
    }

    #[test]
    fn retry_after_beyond_the_maximum_is_capped_and_says_so() {
        let s = RetrySchedule { retry_after_max: Duration::from_secs(600), ..RetrySchedule::default() };
        let d = s.delay(1, RetryHint { retry_after: Some(Duration::from_secs(86_400)), throttled: true }, 0.0);
        assert_eq!(d, RetryDelay { after: Duration::from_secs(600), capped_from: Some(Duration::from_secs(86_400)) });
    }

    #[test]
    fn schedule_with_jitter_and_the_last_delay_repeating() {
        let s = RetrySchedule::from_secs(&[10, 100]);
        assert_eq!(s.delay(1, RetryHint::default(), 0.0).after, Duration::from_secs(10));
        assert_eq!(s.delay(9, RetryHint::default(), 0.0).after, Duration::from_secs(100));
        assert_eq!(s.delay(1, RetryHint::default(), 1.0).after, Duration::from_secs(12));
        assert_eq!(s.delay(1, RetryHint::default(), -1.0).after, Duration::from_secs(8));
    }

    #[test]
    fn throttled_without_retry_after_waits_at_least_the_floor() {
        let s = RetrySchedule::from_secs(&[5]);
        assert_eq!(s.delay(1, RetryHint { retry_after: None, throttled: true }, 0.0).after, Duration::from_secs(60));
    }
}
