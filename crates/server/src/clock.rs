//! The time every piece of background work reads when something happens: a claim, an
//! attempt, a completion. Tests step it forward to reach scheduled retries; it never runs
//! backwards, and between steps it moves with the wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the wall clock (tests only move it forward).
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> jiff::Timestamp {
        let now = jiff::Timestamp::now();
        let offset = self.offset_ms.load(Ordering::Relaxed);
        if offset == 0 { now } else { now.checked_add(jiff::SignedDuration::from_millis(offset)).unwrap_or(now) }
    }

    /// Move the clock forward so that it reads at least `at` now.
    pub fn advance_to(&self, at: jiff::Timestamp) {
        let wanted = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
        self.offset_ms.fetch_max(wanted, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let c = Clock::default();
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        c.advance_to(later);
        assert!(c.now() >= later);
        c.advance_to(jiff::Timestamp::now());
        assert!(c.now() >= later, "never backwards");
    }
}
