//! Handoffs on the server: planning them with the analysis (one transaction), and
//! delivering them from the work queue.
//!
//! Exactly once in effect: each (call, integration, action) is one row with a unique
//! idempotency key; delivery runs under a lease; each attempt is stored with its queue step
//! in one fenced transaction; connectors send the key where the destination takes one and
//! search for the call before creating where it does not. Enrichment (OpenGraph.io,
//! Heartbeat lookups, Datadog monitors) runs first and its evidence flows into the others.

use std::time::Duration;

use dialnexa_core::analysis::Analysis;
use dialnexa_handoff::connector::{HandoffRequest, Outcome};
use dialnexa_handoff::payload::{HandoffPayload, Links};
use dialnexa_handoff::policy::{CallContext, IntegrationView};
use dialnexa_handoff::rules::{Rule, parse_rules, recommended};
use dialnexa_handoff::{IntegrationKind, connectors};
use dialnexa_store::{
    CallDetail, Claimed, Completion, HandoffAttemptRecord, HandoffFilter, HandoffRecord, HandoffResult, NewFollowUp, NewHandoff, NewReview, NewWork, Plan,
    PlannedHandoff, QueueStep, StoreError,
};
use serde_json::{Value, json};

use crate::state::AppState;

pub const HANDOFF: &str = "handoff";
/// A match this weak sends Heartbeat actions to a person first.
pub const MIN_MATCH_CONFIDENCE: f64 = 0.8;
/// How far back the same issue from the same customer counts as a duplicate.
const DEDUP_WINDOW_DAYS: i64 = 7;

pub fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Delay before the next delivery attempt: Svix's schedule, at least 60 s after a 429 or a
/// timeout, `Retry-After` honoured within [delay, 2 × delay], ±20 % jitter.
pub fn delivery_delay(schedule: &[Duration], attempt: u32, status: Option<u16>, timed_out: bool, retry_after: Option<Duration>) -> Duration {
    use rand::Rng;
    let idx = (attempt.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    let mut base = schedule.get(idx).copied().unwrap_or(Duration::from_secs(5));
    if status == Some(429) || timed_out {
        base = base.max(Duration::from_secs(60));
    }
    let wanted = retry_after.map(|ra| ra.clamp(base, base * 2)).unwrap_or(base);
    wanted.mul_f64(1.0 + rand::rng().random_range(-0.2..=0.2))
}

/// The rules an integration runs: its own, or the recommended ones.
pub fn rules_of(kind: IntegrationKind, rules: &Value) -> Vec<Rule> {
    match rules {
        Value::Array(a) if !a.is_empty() => parse_rules(kind, rules).unwrap_or_default(),
        _ => recommended(kind),
    }
}

fn links(state: &AppState, call: &CallDetail) -> Links {
    let base = state.config.public_base();
    let call_url = format!("{base}/v1/calls/{}", call.row.call_id);
    Links {
        transcript: format!("{call_url}#transcript"),
        recording: call.row.recording.url.as_ref().map(|u| if u.starts_with("http") { u.clone() } else { format!("{base}{u}") }),
        call: call_url,
        evidence: Default::default(),
    }
}

/// Decide the handoffs of an analysed call: the plan that commits with the analysis.
pub async fn plan_for(state: &AppState, call: &CallDetail, analysis: &Analysis, now: jiff::Timestamp) -> Result<Plan, StoreError> {
    let integrations = state.store.list_integrations().await?;
    let views: Vec<IntegrationView> = integrations
        .iter()
        .filter(|i| i.active)
        .filter_map(|i| {
            let kind: IntegrationKind = i.kind.parse().ok()?;
            Some(IntegrationView { integration_id: i.integration_id.clone(), kind, rules: rules_of(kind, &i.rules) })
        })
        .collect();
    let ctx = CallContext {
        call_id: call.row.call_id.to_string(),
        entry_point: call.row.entry_point.clone(),
        agent_id: call.row.agent_id.as_ref().map(|a| a.to_string()),
        links: links(state, call),
        vip_customers: state.config.vip_customers.clone(),
    };
    let decisions = dialnexa_handoff::policy::plan(analysis, &ctx, &views);
    let since = now.checked_sub(jiff::SignedDuration::from_hours(24 * DEDUP_WINDOW_DAYS)).unwrap_or(now);
    let mut plan = Plan { reason_key: Some(dialnexa_handoff::policy::reason_key(analysis)), ..Plan::default() };
    for d in decisions {
        let key = format!("{}:{}:{}", ctx.call_id, d.integration_id, d.action);
        let mut status = d.status.to_owned();
        let mut reason = d.reason.clone();
        // Search recent records of the same customer, email or phone and category first.
        if status == "planned" && d.phase == 1 && d.kind != IntegrationKind::Webhook {
            let keys = dialnexa_store::handoffs::match_keys(&serde_json::to_value(&d.payload).unwrap_or_default());
            if let Some(prev) = state.store.recent_match(&d.integration_id, &d.action, analysis.category.as_str(), &keys, &call.row.call_id, since).await? {
                status = "deduplicated".into();
                reason = format!(
                    "deduplicated: the same {} from the same caller was handed off with call {} ({}{}) in the last {DEDUP_WINDOW_DAYS} days",
                    analysis.category.as_str().replace('_', " "),
                    prev.call_id,
                    prev.external_id.as_deref().map(|e| format!("record {e}")).unwrap_or_else(|| "sent".into()),
                    prev.external_url.as_deref().map(|u| format!(", {u}")).unwrap_or_default()
                );
            }
        }
        let handoff_id = id("ho");
        let work = (status == "planned").then(|| NewWork {
            kind: HANDOFF.into(),
            payload: json!({ "handoff_id": handoff_id }),
            dedup_key: Some(format!("handoff:{key}:1")),
            max_attempts: state.config.handoff_max_attempts,
            run_at: None,
        });
        let review = d.review.as_ref().map(|(code, detail)| NewReview { review_id: id("rev"), reason: (*code).into(), detail: detail.clone() });
        plan.handoffs.push(PlannedHandoff {
            handoff: NewHandoff {
                handoff_id,
                call_id: call.row.call_id.clone(),
                integration_id: d.integration_id.clone(),
                integration_kind: d.kind.as_str().into(),
                action: d.action.clone(),
                idempotency_key: key,
                status,
                reason,
                payload: serde_json::to_value(&d.payload).unwrap_or_default(),
                phase: d.phase,
                rule_name: d.rule_name.clone(),
            },
            review,
            work,
        });
    }
    for (kind, suffix, detail, due) in dialnexa_handoff::policy::follow_ups(analysis, &state.config.follow_up_owner) {
        plan.follow_ups.push(NewFollowUp { follow_up_id: id("fu"), kind: kind.into(), detail, due_at: due, key: format!("{}:{suffix}", call.row.call_id) });
    }
    Ok(plan)
}

/// Deliver claimed handoffs.
pub async fn deliver_batch(state: &AppState, now: jiff::Timestamp) -> Result<usize, StoreError> {
    let lease = Duration::from_millis(state.config.handoff_lease_ms.max(state.config.handoff_timeout_ms * 2));
    let items = state.store.claim(&[HANDOFF], &state.worker_id, 8, lease, now).await?;
    // Concurrently: every claimed item starts within its lease.
    let results = futures_util::future::join_all(items.iter().map(|item| deliver(state, item, now))).await;
    for (item, r) in items.iter().zip(results) {
        if let Err(e) = r {
            tracing::error!(item = %item.id, error = %e, "handoff delivery failed; it will be retried after its lease");
        }
    }
    Ok(items.len())
}

/// Evidence gathered by the call's enrichment handoffs, for the others' links.
fn enrichment_evidence(siblings: &[HandoffRecord]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for h in siblings.iter().filter(|h| h.phase == 0 && h.status == "sent") {
        if let Value::Object(m) = &h.evidence {
            for (k, v) in m {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                out.insert(format!("{}.{k}", h.integration_kind), text.chars().take(500).collect());
            }
        }
        if let Some(u) = &h.external_url {
            out.insert(format!("{}.{}", h.integration_kind, h.action), u.clone());
        }
    }
    out
}

async fn deliver(state: &AppState, item: &Claimed, now: jiff::Timestamp) -> Result<(), StoreError> {
    let store = state.store.as_ref();
    let Some(handoff_id) = item.payload.get("handoff_id").and_then(Value::as_str) else {
        store.complete(item, now).await?;
        return Ok(());
    };
    let h = match store.get_handoff(handoff_id).await {
        Ok(h) => h,
        Err(StoreError::NotFound) => {
            store.complete(item, now).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if matches!(h.status.as_str(), "sent" | "deduplicated" | "skipped" | "failed" | "dead" | "held_for_review") {
        // Already settled (a duplicate work item, or a manual decision): nothing to send.
        store.complete(item, now).await?;
        return Ok(());
    }
    let siblings = store.list_handoffs(&HandoffFilter { call_id: Some(h.call_id.clone()), ..Default::default() }, None, 1000).await?;
    if h.phase == 1 && siblings.iter().any(|s| s.phase == 0 && matches!(s.status.as_str(), "planned" | "sending" | "retrying")) {
        // Evidence first: try again shortly, without spending an attempt.
        store.defer(item, now + jiff::SignedDuration::from_secs(2), now).await?;
        return Ok(());
    }
    let integration = match store.get_integration(&h.integration_id).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => {
            store.settle_handoff(item, &h.handoff_id, "failed", "the integration no longer exists", None, &h.call_id, now).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let kind: IntegrationKind = integration.kind.parse().map_err(StoreError::Corrupt)?;
    let mut payload: HandoffPayload = serde_json::from_value(h.payload.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    payload.links.evidence.extend(enrichment_evidence(&siblings));
    // A weak match of the caller to a Heartbeat user goes to a person before anything is
    // sent to that user's owner.
    let approved = item.payload.get("approved").and_then(Value::as_bool).unwrap_or(false);
    if kind == IntegrationKind::Heartbeat && h.phase == 1 && !approved {
        let weak = siblings.iter().find(|s| s.integration_id == h.integration_id && s.action == "retrieve_user" && s.status == "sent").and_then(|s| {
            let matched = s.evidence.get("matched").and_then(Value::as_bool).unwrap_or(false);
            let conf = s.evidence.get("match_confidence").and_then(Value::as_f64).unwrap_or(0.0);
            let found = s.evidence.get("user_id").is_some_and(|u| !u.is_null());
            (found && (!matched || conf < MIN_MATCH_CONFIDENCE)).then_some(conf)
        });
        if let Some(conf) = weak {
            let detail =
                format!("the caller matched Heartbeat user with confidence {conf:.2} (below {MIN_MATCH_CONFIDENCE}); confirm who called before notifying");
            let review = NewReview { review_id: id("rev"), reason: "low_confidence_match".into(), detail: detail.clone() };
            store.settle_handoff(item, &h.handoff_id, "held_for_review", &format!("held for review: {detail}"), Some(&review), &h.call_id, now).await?;
            return Ok(());
        }
    }
    let connector = match connectors::build(kind, &integration.config, state.http.clone()) {
        Ok(c) => c,
        Err(e) => {
            store.settle_handoff(item, &h.handoff_id, "failed", &format!("the integration's config is invalid: {e}"), None, &h.call_id, now).await?;
            return Ok(());
        }
    };
    store.handoff_sending(&h.handoff_id, now).await?;
    // Why it was planned stays in every later reason: the outcome is added to it.
    let why = payload.reason.clone();
    // Attempts count per handoff, across work items (a manual retry continues the count).
    let attempt_no = h.attempts + 1;
    let req =
        HandoffRequest { handoff_id: h.handoff_id.clone(), idempotency_key: h.idempotency_key.clone(), action: h.action.clone(), payload, attempt: attempt_no };
    let started = std::time::Instant::now();
    let Outcome { result, log } = connector.deliver(&req).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let status_code = log.iter().rev().find_map(|l| l.status);
    let (result, step) = match result {
        Ok(d) => {
            let status = if d.deduplicated { "deduplicated" } else { "sent" };
            let reason = if d.deduplicated {
                format!(
                    "{why}. Already in {kind} as {} (found by searching for the call before creating): nothing new created",
                    d.external_id.as_deref().unwrap_or("an existing record")
                )
            } else {
                format!("{why}. Sent to {kind}{}", d.external_id.as_deref().map(|e| format!(" as {e}")).unwrap_or_default())
            };
            (
                HandoffResult {
                    status: status.into(),
                    reason: Some(reason),
                    external_id: d.external_id,
                    external_url: d.external_url,
                    evidence: Some(d.evidence),
                    next_attempt_at: None,
                },
                QueueStep::Complete,
            )
        }
        Err(e) if e.retryable && item.attempt < item.max_attempts => {
            let timed_out = e.message.contains("timed out");
            let delay = delivery_delay(&state.config.handoff_retry_schedule(), item.attempt, e.status, timed_out, e.retry_after);
            let at = now + jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::from_secs(60));
            let reason = format!("{why}. Attempt {} of {} failed: {}; retrying at {at}", item.attempt, item.max_attempts, e.message);
            (
                HandoffResult {
                    status: "retrying".into(),
                    reason: Some(reason),
                    external_id: None,
                    external_url: None,
                    evidence: None,
                    next_attempt_at: Some(at),
                },
                QueueStep::RetryAt { at, error: e.message },
            )
        }
        Err(e) if e.retryable => {
            let reason = format!("{why}. Dead after {} attempts: {}", item.attempt, e.message);
            (
                HandoffResult { status: "dead".into(), reason: Some(reason), external_id: None, external_url: None, evidence: None, next_attempt_at: None },
                QueueStep::Finish { state: "dead", error: e.message },
            )
        }
        Err(e) => {
            let reason = format!("{why}. Failed, not retried: {}", e.message);
            (
                HandoffResult { status: "failed".into(), reason: Some(reason), external_id: None, external_url: None, evidence: None, next_attempt_at: None },
                QueueStep::Finish { state: "failed", error: e.message },
            )
        }
    };
    let attempt = HandoffAttemptRecord {
        attempt: attempt_no,
        at: now,
        status_code,
        error: match &step {
            QueueStep::Complete => None,
            QueueStep::RetryAt { error, .. } | QueueStep::Finish { error, .. } => Some(error.clone()),
        },
        latency_ms,
        exchanges: serde_json::to_value(&log).unwrap_or_default(),
    };
    metrics::counter!("dialnexa_handoff_attempts_total", "kind" => kind.as_str(), "status" => result.status.clone()).increment(1);
    if store.finish_delivery(item, &h.handoff_id, &attempt, &result, &step, now).await? == Completion::Stale {
        tracing::warn!(handoff = %h.handoff_id, "delivery finished after its lease was lost; the next holder decides");
    }
    Ok(())
}

/// Work for a handoff sent again (manual retry, or `approved` by a reviewer: no review check
/// holds it again).
pub fn resend_work(state: &AppState, h: &HandoffRecord, approved: bool) -> NewWork {
    NewWork {
        kind: HANDOFF.into(),
        payload: json!({ "handoff_id": h.handoff_id, "approved": approved }),
        dedup_key: Some(format!("handoff:{}:{}", h.idempotency_key, uuid::Uuid::now_v7().simple())),
        max_attempts: state.config.handoff_max_attempts,
        run_at: None,
    }
}

/// A kept promise closes the loop: the owner is told (Heartbeat) and the integrating
/// system hears of it (webhook), once each, keyed by the follow-up.
pub async fn close_promise(state: &AppState, f: &dialnexa_store::FollowUpRecord, now: jiff::Timestamp) -> Result<usize, StoreError> {
    let call = state.store.get_call(&f.call_id).await?;
    let what = f.detail.get("what").and_then(Value::as_str).unwrap_or("the promise").to_owned();
    let to = f.detail.get("to_whom").and_then(Value::as_str).map(|t| format!(" to {t}")).unwrap_or_default();
    let note = f.detail.get("completion_note").and_then(Value::as_str).map(|n| format!(" ({n})")).unwrap_or_default();
    let owner = f.detail.get("owner").and_then(Value::as_str).map(str::to_owned);
    let reason = format!("promise kept: {what}{to}{note}");
    let mut plan = Plan::default();
    for i in state.store.list_integrations().await?.into_iter().filter(|i| i.active) {
        let action = match i.kind.as_str() {
            "heartbeat" => "notify_owner",
            "webhook" => "deliver",
            _ => continue,
        };
        let payload = HandoffPayload {
            call_id: call.row.call_id.to_string(),
            title: format!("Promise kept: {what}"),
            summary: format!("The promise made on this call{to} is done{note}. Confirm with the customer through the channel they were promised."),
            reason: reason.clone(),
            urgency: "medium".into(),
            owner: owner.clone(),
            next_step: format!(
                "send the customer the promised update{}",
                f.detail.get("channel").and_then(Value::as_str).map(|c| format!(" by {c}")).unwrap_or_default()
            ),
            category: call.row.category.clone().unwrap_or_else(|| "other".into()),
            links: links(state, &call),
            tags: vec![format!("call-{}", call.row.call_id), "dialnexa".into(), "promise_kept".into()],
            options: [("follow_up_id".to_owned(), json!(f.follow_up_id))].into_iter().collect(),
            ..Default::default()
        };
        let key = format!("{}:{}:{action}:promise_kept:{}", call.row.call_id, i.integration_id, f.follow_up_id);
        let handoff_id = id("ho");
        plan.handoffs.push(PlannedHandoff {
            work: Some(NewWork {
                kind: HANDOFF.into(),
                payload: json!({ "handoff_id": handoff_id, "approved": true }),
                dedup_key: Some(format!("handoff:{key}")),
                max_attempts: state.config.handoff_max_attempts,
                run_at: None,
            }),
            handoff: NewHandoff {
                handoff_id,
                call_id: call.row.call_id.clone(),
                integration_id: i.integration_id.clone(),
                integration_kind: i.kind.clone(),
                action: action.into(),
                idempotency_key: key,
                status: "planned".into(),
                reason: reason.clone(),
                payload: serde_json::to_value(&payload).unwrap_or_default(),
                phase: 1,
                rule_name: Some("Close the loop on a kept promise".into()),
            },
            review: None,
        });
    }
    let n = plan.handoffs.len();
    state.store.plan_handoffs(&call.row.call_id, &plan, now).await?;
    Ok(n)
}
