//! Decisions made while delivering a handoff: whether to wait for the call's enrichment,
//! whether a weak caller match goes to a person first, and what a failed attempt leads to.
//! Pure: the server reads the database and the clock, and carries the decision out.

use std::time::Duration;

use dialnexa_core::retry::{RetryDelay, RetryHint, RetrySchedule};
use serde_json::Value;

use crate::connector::DeliveryError;

/// A caller matched to a Heartbeat user with less confidence than this is confirmed by a
/// person before anything goes to that user's owner.
pub const DEFAULT_MIN_MATCH_CONFIDENCE: f64 = 0.8;

#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub schedule: RetrySchedule,
    /// Attempts meant for errors; rate limits have their own budget.
    pub max_attempts: u32,
    /// Rate-limited attempts (429, or 503 with `Retry-After`) that do not spend `max_attempts`.
    pub rate_limit_attempts: u32,
    /// How long a ticket or alert waits for its call's enrichment.
    pub enrichment_wait: Duration,
    pub min_match_confidence: f64,
    /// How often a waiting handoff looks again.
    pub enrichment_poll: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            schedule: RetrySchedule::default(),
            max_attempts: 8,
            rate_limit_attempts: 20,
            enrichment_wait: Duration::from_secs(60),
            min_match_confidence: DEFAULT_MIN_MATCH_CONFIDENCE,
            enrichment_poll: Duration::from_secs(2),
        }
    }
}

/// An enrichment handoff of the same call, as far as the gate needs to know it.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub kind: String,
    pub action: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Enrichment is still running: look again after this long.
    Wait(Duration),
    /// Go now; `Some(note)` says what the handoff goes without, and why.
    Go(Option<String>),
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFailure {
    /// A rate limit within its budget: again after `delay`, without spending an attempt.
    RateLimited { delay: RetryDelay },
    /// Again after `delay`, spending an attempt.
    Retry { delay: RetryDelay },
    /// Retryable, but the attempts ran out.
    Dead,
    /// Not worth retrying.
    Failed,
}

impl DeliveryPolicy {
    /// `waited`: how long the handoff has existed. Enrichment that ended without evidence,
    /// or that is still running after `enrichment_wait`, does not hold the handoff back.
    pub fn enrichment_gate(&self, enrichment: &[Enrichment], waited: Duration) -> Gate {
        let running: Vec<&Enrichment> = enrichment.iter().filter(|e| matches!(e.status.as_str(), "planned" | "sending" | "retrying")).collect();
        let failed: Vec<&Enrichment> = enrichment.iter().filter(|e| matches!(e.status.as_str(), "failed" | "dead")).collect();
        if !running.is_empty() && waited < self.enrichment_wait {
            return Gate::Wait(self.enrichment_poll.min(self.enrichment_wait - waited).max(Duration::from_millis(100)));
        }
        let mut notes = vec![];
        if !running.is_empty() {
            notes.push(format!("sent without {} (still {} after {} s)", names(&running), running[0].status, self.enrichment_wait.as_secs()));
        }
        if !failed.is_empty() {
            notes.push(format!("sent without {} (it {})", names(&failed), if failed.len() == 1 { failed[0].status.as_str() } else { "failed" }));
        }
        Gate::Go((!notes.is_empty()).then(|| notes.join("; ")))
    }

    /// The confidence of a weak match from a Heartbeat `retrieve_user` evidence, if weak.
    pub fn weak_match(&self, evidence: &Value) -> Option<f64> {
        let matched = evidence.get("matched").and_then(Value::as_bool).unwrap_or(false);
        let conf = evidence.get("match_confidence").and_then(Value::as_f64).unwrap_or(0.0);
        let found = evidence.get("user_id").is_some_and(|u| !u.is_null());
        (found && (!matched || conf < self.min_match_confidence)).then_some(conf)
    }

    /// `attempt`: this attempt's number against `max_attempts`; `rate_limited_before`: how
    /// many of the handoff's earlier attempts were rate limited; `unit`: a sample in [-1, 1].
    pub fn after_failure(&self, e: &DeliveryError, attempt: u32, rate_limited_before: u32, unit: f64) -> AfterFailure {
        if !e.retryable {
            return AfterFailure::Failed;
        }
        let throttled = is_rate_limit(e) || e.message.contains("timed out");
        let delay = self.schedule.delay(attempt, RetryHint { retry_after: e.retry_after, throttled }, unit);
        if is_rate_limit(e) && rate_limited_before < self.rate_limit_attempts {
            return AfterFailure::RateLimited { delay };
        }
        if attempt >= self.max_attempts {
            return AfterFailure::Dead;
        }
        AfterFailure::Retry { delay }
    }
}

/// A 429, or a 503 that says when to come back: the destination is busy, not broken.
pub fn is_rate_limit(e: &DeliveryError) -> bool {
    e.status == Some(429) || (e.status == Some(503) && e.retry_after.is_some())
}

fn names(list: &[&Enrichment]) -> String {
    let mut out: Vec<String> = list.iter().map(|e| format!("the {} {}", e.kind, e.action.replace('_', " "))).collect();
    out.dedup();
    out.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enr(status: &str) -> Enrichment {
        Enrichment { kind: "opengraph_io".into(), action: "site_unfurl".into(), status: status.into() }
    }

    fn err(status: u16, retry_after: Option<u64>) -> DeliveryError {
        DeliveryError { retryable: true, retry_after: retry_after.map(Duration::from_secs), status: Some(status), message: format!("HTTP {status}") }
    }

    #[test]
    fn waits_for_enrichment_up_to_the_bound_then_goes_without_it() {
        let p = DeliveryPolicy::default();
        assert_eq!(p.enrichment_gate(&[enr("retrying")], Duration::from_secs(10)), Gate::Wait(Duration::from_secs(2)));
        match p.enrichment_gate(&[enr("sending")], Duration::from_secs(61)) {
            Gate::Go(Some(note)) => assert!(note.contains("still sending after 60 s"), "{note}"),
            other => panic!("{other:?}"),
        }
        match p.enrichment_gate(&[enr("dead")], Duration::ZERO) {
            Gate::Go(Some(note)) => assert!(note.contains("opengraph_io site unfurl") && note.contains("dead"), "{note}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.enrichment_gate(&[enr("sent")], Duration::ZERO), Gate::Go(None));
    }

    #[test]
    fn a_rate_limit_obeys_retry_after_and_spends_its_own_budget() {
        let p = DeliveryPolicy { rate_limit_attempts: 2, max_attempts: 3, ..Default::default() };
        let one_second = err(429, Some(1));
        match p.after_failure(&one_second, 2, 0, 0.5) {
            AfterFailure::RateLimited { delay } => assert_eq!(delay.after, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // Budget spent: it counts as an ordinary failed attempt, and attempts run out.
        assert!(matches!(p.after_failure(&one_second, 2, 2, 0.0), AfterFailure::Retry { .. }));
        assert_eq!(p.after_failure(&one_second, 3, 2, 0.0), AfterFailure::Dead);
        // A 503 without Retry-After is an error, not a rate limit.
        assert!(matches!(p.after_failure(&err(503, None), 1, 0, 0.0), AfterFailure::Retry { .. }));
        assert!(matches!(p.after_failure(&err(503, Some(5)), 1, 0, 0.0), AfterFailure::RateLimited { .. }));
        assert_eq!(p.after_failure(&DeliveryError::fatal("400"), 1, 0, 0.0), AfterFailure::Failed);
    }

    #[test]
    fn a_long_retry_after_is_capped() {
        let p = DeliveryPolicy::default();
        match p.after_failure(&err(429, Some(86_400)), 1, 0, 0.0) {
            AfterFailure::RateLimited { delay } => {
                assert_eq!((delay.after, delay.capped_from), (Duration::from_secs(3600), Some(Duration::from_secs(86_400))))
            }
            other => panic!("{other:?}"),
        }
    }
}
