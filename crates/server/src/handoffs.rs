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
use dialnexa_core::retry::{RetryDelay, RetrySchedule};
use dialnexa_handoff::connector::{ExistingRecord, HandoffRequest, Outcome};
use dialnexa_handoff::delivery::{self, AfterFailure, DeliveryPolicy, Enrichment, Gate};
use dialnexa_handoff::payload::{HandoffPayload, Links};
use dialnexa_handoff::policy::{CallContext, IntegrationView};
use dialnexa_handoff::repeat::{Earlier, Repeat, repeat_of};
use dialnexa_handoff::rules::{Rule, parse_rules, recommended};
use dialnexa_handoff::{IntegrationKind, connectors};
use dialnexa_store::{
    CallDetail, Claimed, Completion, HandoffAttemptRecord, HandoffFilter, HandoffRecord, HandoffResult, NewFollowUp, NewHandoff, NewReview, NewWork, Plan,
    PlannedHandoff, QueueStep, StoreError,
};
use serde_json::{Value, json};

use crate::config::Config;
use crate::state::AppState;

pub const HANDOFF: &str = "handoff";

pub fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The delivery decisions of `crates/handoff`, with this node's settings.
pub fn delivery_policy(config: &Config) -> DeliveryPolicy {
    DeliveryPolicy {
        schedule: RetrySchedule {
            retry_after_max: Duration::from_secs(config.handoff_retry_after_max_secs),
            ..RetrySchedule::from_secs(&config.handoff_retry_secs)
        },
        max_attempts: config.handoff_max_attempts,
        rate_limit_attempts: config.handoff_rate_limit_attempts,
        enrichment_wait: Duration::from_millis(config.handoff_enrichment_wait_ms),
        min_match_confidence: config.handoff_min_match_confidence,
        ..DeliveryPolicy::default()
    }
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
    let window = state.config.handoff_dedup_window_days;
    let since = now.checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(window))).unwrap_or(now);
    let mut plan = Plan { reason_key: Some(dialnexa_handoff::policy::reason_key(analysis)), ..Plan::default() };
    for d in decisions {
        let key = format!("{}:{}:{}", ctx.call_id, d.integration_id, d.action);
        let mut status = d.status.to_owned();
        let mut reason = d.reason.clone();
        let mut payload = d.payload.clone();
        // A repeat of an issue already handed off for the same caller adds to that record.
        if status == "planned" && d.phase == 1 && d.kind != IntegrationKind::Webhook {
            let keys = dialnexa_store::handoffs::match_keys(&serde_json::to_value(&d.payload).unwrap_or_default());
            let earlier: Vec<Earlier> = state
                .store
                .recent_match(&d.integration_id, &d.action, analysis.category.as_str(), &keys, &call.row.call_id, since)
                .await?
                .into_iter()
                .filter_map(|h| {
                    Some(Earlier {
                        call_id: h.call_id.to_string(),
                        payload: serde_json::from_value(h.payload).ok()?,
                        external_id: h.external_id,
                        external_url: h.external_url,
                        evidence: h.evidence,
                    })
                })
                .collect();
            // Only a call with earlier records needs to know whether its connector can add to one.
            let updates = !earlier.is_empty()
                && integrations
                    .iter()
                    .find(|i| i.integration_id == d.integration_id)
                    .and_then(|i| connectors::build(d.kind, &i.config, state.http.clone()).ok())
                    .is_some_and(|c| c.updates(&d.action));
            match repeat_of(&d.payload, analysis.repeat_contact.detected, &earlier, updates, window) {
                Some(Repeat::Update { of, reason: why }) => {
                    reason = format!("{reason}. {why}");
                    payload.options.insert("update_of".into(), serde_json::to_value(&of).unwrap_or_default());
                }
                Some(Repeat::Deduplicated { reason: why }) => {
                    status = "deduplicated".into();
                    reason = why;
                }
                None => {}
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
                payload: serde_json::to_value(&payload).unwrap_or_default(),
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

/// Claim due handoffs and deliver them, each in a task of its own under a renewed lease.
pub async fn deliver_batch(state: &AppState) -> Result<usize, StoreError> {
    let lease = crate::worker::handoff_lease(&state.config);
    let items = state.store.claim(&[HANDOFF], &state.worker_id, 8, lease, state.clock.now()).await?;
    let n = items.len();
    // Concurrently: every claimed item starts within its lease.
    futures_util::future::join_all(items.into_iter().map(|item| crate::worker::run_item(state, item, lease))).await;
    Ok(n)
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

/// Deliver one claimed handoff. Every step reads the clock when it happens; every write
/// is fenced by the item's lease.
pub async fn deliver(state: &AppState, item: &Claimed) -> Result<(), StoreError> {
    let store = state.store.as_ref();
    let clock = state.clock.as_ref();
    let policy = delivery_policy(&state.config);
    let Some(handoff_id) = item.payload.get("handoff_id").and_then(Value::as_str) else {
        store.complete(item, clock.now()).await?;
        return Ok(());
    };
    let h = match store.get_handoff(handoff_id).await {
        Ok(h) => h,
        Err(StoreError::NotFound) => {
            store.complete(item, clock.now()).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !matches!(h.status.as_str(), "planned" | "sending" | "retrying") {
        // Already settled (a duplicate work item, or a manual decision): nothing to send.
        store.complete(item, clock.now()).await?;
        return Ok(());
    }
    let siblings = store.list_handoffs(&HandoffFilter { call_id: Some(h.call_id.clone()), ..Default::default() }, None, 1000).await?;
    let mut without = None;
    if h.phase == 1 {
        let enrichment: Vec<Enrichment> = siblings
            .iter()
            .filter(|s| s.phase == 0)
            .map(|s| Enrichment { kind: s.integration_kind.clone(), action: s.action.clone(), status: s.status.clone() })
            .collect();
        let waited = Duration::try_from(clock.now().duration_since(h.created_at)).unwrap_or_default();
        match policy.enrichment_gate(&enrichment, waited) {
            Gate::Wait(d) => {
                // Evidence first: look again shortly, without spending an attempt.
                let until = clock.now() + jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::from_secs(2));
                store.defer(item, until, "waiting for the call's enrichment", clock.now()).await?;
                return Ok(());
            }
            Gate::Go(note) => without = note,
        }
    }
    let integration = match store.get_integration(&h.integration_id).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => {
            store.settle_handoff(item, &h.handoff_id, "failed", "the integration no longer exists", None, &h.call_id, clock.now()).await?;
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
        let weak = siblings
            .iter()
            .find(|s| s.integration_id == h.integration_id && s.action == "retrieve_user" && s.status == "sent")
            .and_then(|s| policy.weak_match(&s.evidence));
        if let Some(conf) = weak {
            let detail = format!(
                "the caller matched Heartbeat user with confidence {conf:.2} (below {}); confirm who called before notifying",
                policy.min_match_confidence
            );
            let review = NewReview { review_id: id("rev"), reason: "low_confidence_match".into(), detail: detail.clone() };
            store.settle_handoff(item, &h.handoff_id, "held_for_review", &format!("held for review: {detail}"), Some(&review), &h.call_id, clock.now()).await?;
            return Ok(());
        }
    }
    let connector = match connectors::build(kind, &integration.config, state.http.clone()) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("the integration's config is invalid: {e}");
            store.settle_handoff(item, &h.handoff_id, "failed", &reason, None, &h.call_id, clock.now()).await?;
            return Ok(());
        }
    };
    if !store.handoff_sending(item, &h.handoff_id, clock.now()).await? {
        tracing::warn!(handoff = %h.handoff_id, "the lease was lost or the handoff settled before sending; nothing sent");
        return Ok(());
    }
    // Why it was planned stays in every later reason: the outcome is added to it.
    let why = match &without {
        Some(note) => format!("{}; {note}", payload.reason),
        None => payload.reason.clone(),
    };
    let update =
        payload.options.get("update_of").and_then(|v| serde_json::from_value::<ExistingRecord>(v.clone()).ok()).filter(|_| connector.updates(&h.action));
    // Attempts count per handoff, across work items (a manual retry continues the count).
    let attempt_no = h.attempts + 1;
    let req = HandoffRequest {
        handoff_id: h.handoff_id.clone(),
        idempotency_key: h.idempotency_key.clone(),
        action: h.action.clone(),
        payload,
        attempt: attempt_no,
        update: update.clone(),
    };
    let started = std::time::Instant::now();
    let Outcome { result, log } = connector.deliver(&req).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let now = clock.now();
    let status_code = log.iter().rev().find_map(|l| l.status);
    let mut rate_limited = false;
    let mut retry_after_ms = None;
    let mut note = None;
    let retry_result = |status: &str, reason: String, at: Option<jiff::Timestamp>| HandoffResult {
        status: status.into(),
        reason: Some(reason),
        external_id: None,
        external_url: None,
        evidence: None,
        next_attempt_at: at,
    };
    let (result, step) = match result {
        Ok(d) => {
            let status = if d.deduplicated && update.is_none() { "deduplicated" } else { "sent" };
            let reason = match (&update, d.deduplicated) {
                (Some(of), false) => format!("{why}. Added to {kind} record {} (repeat of call {})", of.external_id, of.call_id),
                (Some(of), true) => format!("{why}. Already added to {kind} record {} (found on the record): nothing new sent", of.external_id),
                (None, true) => format!(
                    "{why}. Already in {kind} as {} (found by searching for the call before creating): nothing new created",
                    d.external_id.as_deref().unwrap_or("an existing record")
                ),
                (None, false) => format!("{why}. Sent to {kind}{}", d.external_id.as_deref().map(|e| format!(" as {e}")).unwrap_or_default()),
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
        Err(e) => {
            retry_after_ms = e.retry_after.map(|d| d.as_millis() as u64);
            let rate_limited_before = store.handoff_attempts(&h.handoff_id).await?.iter().filter(|a| a.rate_limited).count() as u32;
            let unit = rand::Rng::random_range(&mut rand::rng(), -1.0..=1.0);
            let at_of = |d: &RetryDelay| now + jiff::SignedDuration::try_from(d.after).unwrap_or(jiff::SignedDuration::from_secs(60));
            let cap_note = |d: &RetryDelay| {
                d.capped_from.map(|asked| format!("Retry-After {} s capped at {} s", asked.as_secs(), policy.schedule.retry_after_max.as_secs()))
            };
            match policy.after_failure(&e, item.attempt, rate_limited_before, unit) {
                AfterFailure::RateLimited { delay } => {
                    rate_limited = true;
                    note = cap_note(&delay);
                    let at = at_of(&delay);
                    let reason = format!(
                        "{why}. Rate limited by {kind} ({}{}); trying again at {at} (rate limit {} of {}, not counted against the {} attempts)",
                        e.message,
                        note.as_deref().map(|n| format!("; {n}")).unwrap_or_default(),
                        rate_limited_before + 1,
                        policy.rate_limit_attempts,
                        policy.max_attempts
                    );
                    (retry_result("retrying", reason, Some(at)), QueueStep::Defer { at, outcome: "rate_limited", note: e.message })
                }
                AfterFailure::Retry { delay } => {
                    rate_limited = delivery::is_rate_limit(&e);
                    note = cap_note(&delay);
                    let at = at_of(&delay);
                    let reason = format!("{why}. Attempt {} of {} failed: {}; retrying at {at}", item.attempt, item.max_attempts, e.message);
                    (retry_result("retrying", reason, Some(at)), QueueStep::RetryAt { at, error: e.message })
                }
                AfterFailure::Dead => {
                    let reason = format!("{why}. Dead after {} attempts: {}", item.attempt, e.message);
                    (retry_result("dead", reason, None), QueueStep::Finish { state: "dead", error: e.message })
                }
                AfterFailure::Failed => {
                    let reason = format!("{why}. Failed, not retried: {}", e.message);
                    (retry_result("failed", reason, None), QueueStep::Finish { state: "failed", error: e.message })
                }
            }
        }
    };
    let attempt = HandoffAttemptRecord {
        attempt: attempt_no,
        at: now,
        status_code,
        error: match &step {
            QueueStep::Complete => None,
            QueueStep::RetryAt { error, .. } | QueueStep::Finish { error, .. } => Some(error.clone()),
            QueueStep::Defer { note, .. } => Some(note.clone()),
        },
        latency_ms,
        exchanges: serde_json::to_value(&log).unwrap_or_default(),
        rate_limited,
        retry_after_ms,
        note,
    };
    metrics::counter!("dialnexa_handoff_attempts_total", "kind" => kind.as_str(), "status" => result.status.clone()).increment(1);
    if store.finish_delivery(item, &h.handoff_id, &attempt, &result, &step, clock.now()).await? == Completion::Stale {
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
/// system hears of it (webhook), once each, keyed by the follow-up. The plan commits with
/// the completion of the follow-up (`Store::complete_follow_up`).
pub async fn close_promise_plan(state: &AppState, f: &dialnexa_store::FollowUpRecord, completion_note: Option<&str>) -> Result<Plan, StoreError> {
    let call = state.store.get_call(&f.call_id).await?;
    let what = f.detail.get("what").and_then(Value::as_str).unwrap_or("the promise").to_owned();
    let to = f.detail.get("to_whom").and_then(Value::as_str).map(|t| format!(" to {t}")).unwrap_or_default();
    let note = completion_note.map(|n| format!(" ({n})")).unwrap_or_default();
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
    Ok(plan)
}
