//! `POST /v1/calls/outbound`: place a phone call from one of our numbers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dialnexa_core::agent::{AgentConfig, VoicemailAction};
use dialnexa_core::route::RouteRequest;
use dialnexa_core::{CallId, CallStatus, DisconnectionReason, EntryPoint, TimelineEvent};
use dialnexa_store::NewCall;
use dialnexa_voice::carrier::{CarrierStatus, MachineDetection, OutboundCall};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::api::calls::{CallOut, call_out};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Held from a number's count of open calls to the insert of the new one.
static OUTBOUND_COUNT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundIn {
    /// One of our numbers, with an outbound agent (or name one here).
    pub from_number: String,
    pub to_number: String,
    pub agent_id: Option<String>,
    pub agent_version: Option<u32>,
    /// The agent's `{{variables}}` for this call.
    pub variables: Option<BTreeMap<String, String>>,
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
}

/// Place an outbound phone call: created at the carrier, answered by the route's agent version.
#[utoipa::path(post, path = "/v1/calls/outbound", tag = "calls", request_body = OutboundIn,
    responses((status = 201, body = CallOut, description = "the call, registered at the carrier (its status follows the carrier's callbacks)"),
        (status = 422, description = "invalid_phone_number, no_outbound_agent, phone_number_inactive, phone_number_not_found, agent_not_found, agent_version_not_published, telephony_not_configured, speech_not_configured"),
        (status = 429, description = "number_busy: the number has max_calls_per_number calls in progress"),
        (status = 502, description = "carrier_refused or carrier_unreachable: the call is recorded as not_connected (dial_failed) with the carrier's answer")))]
pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<OutboundIn>) -> ApiResult<(StatusCode, Json<CallOut>)> {
    let carrier = super::carrier(&state)?;
    let from = crate::api::numbers::parse_number(&body.from_number, "from_number")?;
    let to = crate::api::numbers::parse_number(&body.to_number, "to_number")?;
    if from == to {
        return Err(ApiError::field("to_number", "a number cannot call itself"));
    }
    let agent_id = crate::api::routes::request_agent_id(body.agent_id.as_deref())?;
    let metadata = body.metadata.unwrap_or_else(|| json!({}));
    if !metadata.is_object() || metadata.to_string().len() > crate::testcall::MAX_METADATA_BYTES {
        return Err(ApiError::field("metadata", "a JSON object of at most 16 KiB"));
    }
    let variables = body.variables.unwrap_or_default();
    if variables.len() > 64 || variables.iter().any(|(k, v)| k.len() > 64 || v.len() > 2000) {
        return Err(ApiError::field("variables", "at most 64 variables, names of at most 64 and values of at most 2000 characters"));
    }
    let req = RouteRequest {
        entry_point: Some(EntryPoint::Outbound),
        phone_number: Some(from.clone()),
        agent_id,
        agent_version: body.agent_version,
        ..Default::default()
    };
    let route = crate::api::routes::resolve_with(state.store.as_ref(), &req).await?;
    if state.speech.is_none() {
        return Err(ApiError::unprocessable("speech_not_configured", "phone calls need speech: start DialNexa with --asr and --tts (see docs/voice.md)"));
    }
    let version = state.store.get_version(&route.agent_id, route.agent_version).await?;
    let config = AgentConfig::parse(&version.config).ok();
    if matches!(config, Some(AgentConfig::Llm(_))) && state.config.llm_url.is_none() {
        return Err(ApiError::unprocessable("llm_not_configured", "this is an llm agent: start DialNexa with --llm URL (DIALNEXA_LLM_URL)"));
    }
    // One create at a time on this node between the count and the insert.
    let counted = OUTBOUND_COUNT.lock().await;
    let open = state.store.count_open_calls_from(from.as_str()).await?;
    if open >= i64::from(state.config.max_calls_per_number) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "number_busy",
            format!("{from} already has {open} calls in progress (DIALNEXA_MAX_CALLS_PER_NUMBER is {})", state.config.max_calls_per_number),
        )
        .with_details(json!({ "phone_number": from.as_str(), "open_calls": open, "max_calls_per_number": state.config.max_calls_per_number })));
    }
    let policy = config.as_ref().and_then(|c| c.voicemail().cloned());
    // A message waits for the beep; otherwise the answer comes as early as possible.
    let detection = match policy.as_ref().map(|p| p.action) {
        Some(VoicemailAction::LeaveMessage) => MachineDetection::DetectMessageEnd,
        _ => MachineDetection::Enable,
    };
    let now = jiff::Timestamp::now();
    let call_id = CallId::generate();
    let mut metadata = metadata;
    if !variables.is_empty() {
        metadata["variables"] = json!(variables);
    }
    let route_json = json!({ "entry_point": "outbound", "phone_number": from.as_str(), "agent_name": route.agent_name, "explanation": route.explanation });
    let row = super::phone_row(
        &call_id,
        EntryPoint::Outbound,
        "outbound",
        from.as_str(),
        to.as_str(),
        Some(&route),
        route_json,
        CallStatus::Registered,
        now,
        carrier.name(),
        "",
        metadata,
    );
    let timeline = vec![
        TimelineEvent { at: now, offset_ms: 0, kind: "call_registered".into(), detail: format!("outbound call from {from} to {to} requested through the API") },
        TimelineEvent { at: now, offset_ms: 0, kind: "route_resolved".into(), detail: route.explanation.clone() },
    ];
    let mut leg = super::leg(&call_id, carrier.name(), None, &CarrierStatus::Other("requested".into()), now);
    leg.details = json!({ "voicemail_policy": policy.as_ref().map(|p| p.action.as_str()).unwrap_or("hang_up"), "machine_detection": format!("{detection:?}") });
    state.store.insert_phone_call(&NewCall { row, timeline, transcript: vec![] }, &leg, now).await?;
    drop(counted);
    let request = OutboundCall {
        to: to.as_str().into(),
        from: from.as_str().into(),
        // The call id rides along (inside the signed URL): callbacks can beat the create's answer.
        url: super::public(&state, &format!("/telephony/{}/voice?call_id={call_id}", carrier.name())),
        status_callback: super::public(&state, &format!("/telephony/{}/status?call_id={call_id}", carrier.name())),
        machine_detection: Some(detection),
        ring_timeout_secs: state.config.ring_timeout_secs,
        // The call id: a retried create is one call at the carrier.
        idempotency_token: call_id.to_string(),
    };
    match carrier.create_call(&request).await {
        Ok(c) => {
            state.store.set_carrier_sid(&call_id, &c.sid, c.status.as_str(), c.status.rank(), jiff::Timestamp::now()).await?;
            let ev = TimelineEvent {
                at: jiff::Timestamp::now(),
                offset_ms: 0,
                kind: "carrier_call_created".into(),
                detail: format!("the carrier placed the call ({}, {}); machine detection {detection:?}", c.sid, c.status.as_str()),
            };
            state.store.add_call_events(&call_id, &[ev]).await?;
            tracing::info!(call_id = %call_id, carrier_call_sid = %c.sid, "outbound call placed");
        }
        Err(e) => {
            tracing::warn!(call_id = %call_id, error = %e, "the carrier refused an outbound call");
            super::end_unconnected(
                &state,
                &call_id,
                DisconnectionReason::DialFailed,
                CallStatus::NotConnected,
                &format!("the carrier did not place the call: {e}"),
            )
            .await;
            let (code, status) = match &e {
                dialnexa_voice::carrier::CarrierError::Refused { .. } => ("carrier_refused", StatusCode::BAD_GATEWAY),
                _ => ("carrier_unreachable", StatusCode::BAD_GATEWAY),
            };
            let carrier_code = if let dialnexa_voice::carrier::CarrierError::Refused { code, status, .. } = &e {
                json!({ "status": status, "code": code })
            } else {
                Value::Null
            };
            return Err(ApiError::new(status, code, format!("the carrier did not place the call: {e}"))
                .with_details(json!({ "call_id": call_id.as_str(), "carrier": carrier_code })));
        }
    }
    let detail = state.store.get_call(&call_id).await?;
    Ok((StatusCode::CREATED, Json(call_out(&state, detail).await?)))
}
