//! Warm transfers: the caller holds on its live stream while the target is dialed; once the
//! target answers, it hears a briefing (the call's summary so far) and only then joins the
//! caller in a conference, and the agent leaves. A target that does not answer is reported
//! back to the live call, whose agent takes the caller back and says so.
//!
//! The target's leg is placed with `?transfer_of=<call_id>` on its webhook and status URLs
//! (inside the signed URL, so it cannot be forged); its state is kept in the caller's carrier
//! leg details under `warm_transfer`.

use axum::response::Response;
use dialnexa_core::CallId;
use dialnexa_core::analysis::AnalysisInput;
use dialnexa_core::evidence::{Role, TranscriptTurn};
use dialnexa_voice::carrier::{CallEvent, Carrier, CarrierStatus, OutboundCall};
use dialnexa_voice::live::Inbound;
use serde_json::{Value, json};

use crate::state::AppState;

/// The conference a warm transfer meets in.
fn room(call_id: &CallId) -> String {
    format!("dnx-{call_id}")
}

async fn notify(state: &AppState, call_id: &CallId, connected: bool, detail: String) {
    match state.live.sender(call_id.as_str()) {
        Some(tx) => {
            // A session too busy to take it within a second is not waited for.
            let _ = tx.send_timeout(Inbound::TransferResult { connected, detail }, std::time::Duration::from_secs(1)).await;
        }
        None => tracing::warn!(call_id = %call_id, "a warm transfer's outcome arrived for a call that is no longer live here"),
    }
}

async fn merge(state: &AppState, call_id: &CallId, patch: Value) -> Option<Value> {
    let details = state.store.merge_carrier_details(call_id, &json!({ "warm_transfer": patch }), jiff::Timestamp::now()).await.ok()?;
    details.get("warm_transfer").cloned()
}

/// What the target is told: the call's summary so far, from the analysis engine.
async fn briefing(state: &AppState, config: Option<&dialnexa_core::agent::AgentConfig>, from: &str, transcript: &[Value]) -> String {
    let turns: Vec<TranscriptTurn> = transcript
        .iter()
        .enumerate()
        .map(|(i, t)| TranscriptTurn {
            index: i as u32,
            role: if t["role"] == "agent" { Role::Agent } else { Role::Caller },
            text: t["text"].as_str().unwrap_or_default().chars().take(2000).collect(),
            start_ms: 0,
            end_ms: 0,
        })
        .collect();
    let schema = match config.and_then(|c| c.analysis_schema().ok()).or_else(|| dialnexa_core::analysis::AnalysisConfig::default().resolve("analysis").ok()) {
        Some(s) => s,
        None => return format!("Hello, this is the virtual agent with a caller from {from}. I am connecting you now."),
    };
    let input = AnalysisInput { call_time: jiff::Timestamp::now(), timezone: state.config.default_timezone.clone(), transcript: turns.clone(), schema };
    let summary = match tokio::time::timeout(std::time::Duration::from_secs(5), state.engine.analyze(&input)).await {
        Ok(Ok(a)) if !a.summary.text.trim().is_empty() => a.summary.text,
        _ => turns
            .iter()
            .rev()
            .find(|t| t.role == Role::Caller)
            .map(|t| format!("The caller said: {}", t.text))
            .unwrap_or_else(|| "The caller asked to talk to a person.".into()),
    };
    let summary: String = summary.chars().take(600).collect();
    format!("Hello, this is the virtual agent with a caller from {from}. {summary} I am connecting you now.")
}

/// Start a warm transfer from a live call (its session asked for it).
pub(crate) async fn start(state: &AppState, carrier: &dyn Carrier, call_id: &CallId, our_number: &str, caller: &str, to: &str, transcript: &[Value]) {
    let config = match state.store.get_call(call_id).await.ok().and_then(|d| d.row.agent_id.zip(d.row.agent_version)) {
        Some((a, v)) => state.store.get_version(&a, v).await.ok().and_then(|v| dialnexa_core::agent::AgentConfig::parse(&v.config).ok()),
        None => None,
    };
    let brief = briefing(state, config.as_ref(), caller, transcript).await;
    let now = jiff::Timestamp::now();
    merge(state, call_id, json!({ "to": to, "briefing": brief, "status": "dialing", "started_at": now.to_string() })).await;
    let request = OutboundCall {
        to: to.into(),
        from: our_number.into(),
        url: super::public(state, &format!("/telephony/{}/voice?transfer_of={call_id}", carrier.name())),
        status_callback: super::public(state, &format!("/telephony/{}/status?transfer_of={call_id}", carrier.name())),
        machine_detection: None,
        ring_timeout_secs: state.config.ring_timeout_secs,
        idempotency_token: format!("{call_id}-warm"),
    };
    match carrier.create_call(&request).await {
        Ok(c) => {
            merge(state, call_id, json!({ "target_call_sid": c.sid })).await;
        }
        Err(e) => {
            merge(state, call_id, json!({ "status": "failed", "error": e.to_string() })).await;
            notify(state, call_id, false, format!("the carrier did not place the call to {to}: {e}")).await;
        }
    }
}

/// The target's leg asks for TwiML: first the briefing, then (`step=join`) the conference.
pub(crate) async fn target_webhook(state: &AppState, carrier: &dyn Carrier, call_id: &CallId, step: Option<&str>, ev: &CallEvent) -> Response {
    let Some(leg) = state.store.get_carrier_leg(call_id).await.ok().flatten() else {
        tracing::warn!(call_id = %call_id, "a transfer webhook for a call DialNexa does not know");
        return super::twiml(carrier, carrier.reject());
    };
    let w = leg.details.get("warm_transfer").cloned().unwrap_or(Value::Null);
    // Only the leg this transfer placed (its sid, once known) is let in.
    if w["target_call_sid"].as_str().is_some_and(|s| s != ev.call_sid) || w.is_null() || w["status"] == "failed" {
        tracing::warn!(call_id = %call_id, carrier_call_sid = %ev.call_sid, "a transfer webhook for a leg this call did not place");
        return super::twiml(carrier, carrier.reject());
    }
    if step != Some("join") {
        let next = super::public(state, &format!("/telephony/{}/voice?transfer_of={call_id}&step=join", carrier.name()));
        merge(state, call_id, json!({ "status": "briefing", "target_call_sid": ev.call_sid, "answered_at": jiff::Timestamp::now().to_string() })).await;
        return super::twiml(carrier, carrier.say_then(w["briefing"].as_str().unwrap_or("You have a caller."), &next));
    }
    // Briefed: the caller is moved to the target first (marked joined before, so that the end
    // of the caller's stream reads as the transfer), then the agent leaves.
    let caller_ended =
        state.store.get_call(call_id).await.ok().is_none_or(|d| d.row.status.parse::<dialnexa_core::CallStatus>().is_ok_and(|s| s.is_terminal()));
    let to = w["to"].as_str().unwrap_or("the target").to_owned();
    if caller_ended {
        merge(state, call_id, json!({ "status": "failed", "error": "the caller had left before the target joined" })).await;
        return super::twiml(carrier, carrier.say_hangup("Sorry, the caller has already hung up. Goodbye."));
    }
    merge(state, call_id, json!({ "status": "joined", "joined_at": jiff::Timestamp::now().to_string() })).await;
    let moved = match &leg.carrier_sid {
        Some(sid) => carrier.redirect(sid, &carrier.conference(&room(call_id))).await.map_err(|e| e.to_string()),
        None => Err("the caller's carrier call is not known".to_owned()),
    };
    match moved {
        Ok(()) => {
            notify(state, call_id, true, format!("{to} was briefed and joined")).await;
            super::twiml(carrier, carrier.conference(&room(call_id)))
        }
        Err(e) => {
            tracing::error!(call_id = %call_id, error = %e, "the caller could not be moved into the transfer's conference");
            merge(state, call_id, json!({ "status": "failed", "error": format!("the caller could not be moved to the target: {e}") })).await;
            notify(state, call_id, false, format!("the caller could not be moved to {to}")).await;
            super::twiml(carrier, carrier.say_hangup("Sorry, the caller could not be connected. Goodbye."))
        }
    }
}

/// The target's leg status: a leg that ends before it joined is a failed transfer.
pub(crate) async fn target_status(state: &AppState, call_id: &CallId, status: &CarrierStatus) {
    if !status.is_terminal() {
        return;
    }
    let Some(leg) = state.store.get_carrier_leg(call_id).await.ok().flatten() else { return };
    let w = leg.details.get("warm_transfer").cloned().unwrap_or(Value::Null);
    if w.is_null() || matches!(w["status"].as_str(), Some("joined" | "failed")) {
        return;
    }
    merge(state, call_id, json!({ "status": "failed", "dial_status": status.as_str() })).await;
    let to = w["to"].as_str().unwrap_or("the target").to_owned();
    let why = match status {
        CarrierStatus::Busy => format!("{to} was busy"),
        CarrierStatus::NoAnswer => format!("{to} did not answer"),
        CarrierStatus::Completed => format!("{to} hung up before joining"),
        other => format!("the call to {to} ended {}", other.as_str()),
    };
    notify(state, call_id, false, why).await;
}

/// The call left the warm transfer `w` without it joining (it timed out, or the caller hung
/// up): the target's leg is stopped, so that it is never briefed into an empty room later.
/// The transfer's state afterwards.
pub(crate) async fn abandon(state: &AppState, carrier: &dyn Carrier, call_id: &CallId, w: &Value, why: &str) -> Value {
    if matches!(w["status"].as_str(), Some("joined" | "failed")) {
        return w.clone();
    }
    let after = merge(state, call_id, json!({ "status": "failed", "error": why })).await.unwrap_or_else(|| w.clone());
    if let Some(sid) = w["target_call_sid"].as_str()
        && let Err(e) = carrier.hangup(sid).await
    {
        tracing::warn!(call_id = %call_id, error = %e, "the abandoned transfer's target leg could not be hung up");
    }
    after
}
