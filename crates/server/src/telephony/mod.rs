//! Phone calls through a carrier (Twilio first; the seam is `dialnexa_voice::carrier`).
//!
//! - `POST /telephony/twilio/voice`: the voice webhook. An inbound call is routed by its `To`
//!   number like every call and answered with `<Connect><Stream>` to our media WebSocket (a
//!   per-call, single-use, expiring stream token rides along); a refused one is recorded with
//!   its reason and rejected. An answered outbound call is answered the same way, after its
//!   agent's voicemail policy has looked at the carrier's machine detection.
//! - `GET /telephony/twilio/media`: Media Streams ([`media`]).
//! - `POST /telephony/twilio/status`: status callbacks; a status never moves back.
//! - `POST /telephony/twilio/dial-action`: how a transfer's dialed leg went.
//! - `POST /v1/calls/outbound` ([`outbound`]), and [`reconcile`] for calls whose callbacks
//!   never came.
//!
//! Every webhook is checked against `X-Twilio-Signature` over `DIALNEXA_PUBLIC_URL` + the
//! path and query it was sent to (403 otherwise).

pub mod hook;
pub mod media;
pub mod outbound;
pub mod reconcile;
pub mod warm;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dialnexa_core::agent::{AgentConfig, VoicemailAction};
use dialnexa_core::route::RouteRequest;
use dialnexa_core::{CallId, CallStatus, DisconnectionReason, EntryPoint, PhoneNumber, TimelineEvent};
use dialnexa_store::{CallRow, CarrierLeg, FinishedCall, NewCall, RecordingInfo};
use dialnexa_voice::carrier::{AnsweredBy, CallEvent, Carrier, CarrierStatus, Twilio};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Webhook bodies are small forms; anything larger is not the carrier.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// The carrier from the configuration: both Twilio credentials, or neither.
pub fn carrier_from(config: &crate::config::Config) -> Result<Option<Arc<dyn Carrier>>, String> {
    match (&config.twilio_account_sid, &config.twilio_auth_token) {
        (Some(sid), Some(token)) => {
            if !sid.starts_with("AC") || sid.len() > 64 || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err("DIALNEXA_TWILIO_ACCOUNT_SID must be an account sid (AC followed by letters and digits)".into());
            }
            if !(config.twilio_api_base.starts_with("https://") || config.twilio_api_base.starts_with("http://")) {
                return Err("DIALNEXA_TWILIO_API_BASE must be an http(s) URL".into());
            }
            Ok(Some(Arc::new(Twilio::new(sid, token, Some(&config.twilio_api_base)))))
        }
        (None, None) => Ok(None),
        _ => Err("phone calls need both DIALNEXA_TWILIO_ACCOUNT_SID and DIALNEXA_TWILIO_AUTH_TOKEN".into()),
    }
}

pub(crate) fn carrier(state: &AppState) -> Result<Arc<dyn Carrier>, ApiError> {
    state.carrier.clone().ok_or_else(|| {
        ApiError::unprocessable(
            "telephony_not_configured",
            "phone calls need a carrier: set DIALNEXA_TWILIO_ACCOUNT_SID, DIALNEXA_TWILIO_AUTH_TOKEN and DIALNEXA_PUBLIC_URL (see docs/telephony.md)",
        )
    })
}

/// A URL the carrier reaches this server at.
pub(crate) fn public(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.public_base())
}

fn ts_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn event(at: jiff::Timestamp, kind: &str, detail: impl Into<String>) -> TimelineEvent {
    TimelineEvent { at, offset_ms: 0, kind: kind.into(), detail: detail.into() }
}

/// A verified webhook: its parameters and the call event they describe.
pub(crate) struct Webhook {
    pub params: Vec<(String, String)>,
    pub event: CallEvent,
    pub carrier: Arc<dyn Carrier>,
}

/// Check the signature over the public URL the carrier requested, then parse.
fn verify(state: &AppState, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Result<Webhook, ApiError> {
    let carrier = carrier(state)?;
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("a webhook body is at most {MAX_WEBHOOK_BYTES} bytes")));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let url = match uri.query() {
        Some(q) => public(state, &format!("{}?{q}", uri.path())),
        None => public(state, uri.path()),
    };
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    if !carrier.verify(&url, &params, signature) {
        let sid = params.iter().find(|(k, _)| k == "CallSid").map(|(_, v)| v.chars().take(40).collect::<String>()).unwrap_or_default();
        tracing::warn!(carrier_call_sid = %sid, path = uri.path(), signed = signature.is_some(), "webhook refused: its signature does not match (is DIALNEXA_PUBLIC_URL the URL the carrier calls?)");
        metrics::counter!("dialnexa_telephony_webhooks_refused_total", "reason" => "signature").increment(1);
        return Err(ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", "the X-Twilio-Signature header does not match this request"));
    }
    match carrier.parse_event(&params) {
        Ok(event) => Ok(Webhook { params, event, carrier }),
        Err(e) => {
            tracing::warn!(error = %e, path = uri.path(), "webhook refused: malformed");
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_webhook", e.to_string()))
        }
    }
}

/// The leg a webhook is about: by the `call_id` our own URLs carry (an outbound call's
/// callbacks can come before the create has answered with the carrier's sid), else by the
/// carrier's call sid.
async fn leg_for(state: &AppState, carrier: &dyn Carrier, uri: &Uri, ev: &CallEvent) -> Result<Option<CarrierLeg>, dialnexa_store::StoreError> {
    let Some(id) = query(uri, "call_id").and_then(|c| CallId::parse(&c).ok()) else {
        return state.store.find_carrier_leg(carrier.name(), &ev.call_sid).await;
    };
    let Some(mut leg) = state.store.get_carrier_leg(&id).await? else { return Ok(None) };
    match leg.carrier_sid.as_deref() {
        Some(sid) if sid == ev.call_sid => Ok(Some(leg)),
        Some(_) => Ok(None),
        None => {
            state.store.set_carrier_sid(&id, &ev.call_sid, CarrierStatus::Queued.as_str(), CarrierStatus::Queued.rank(), ts_now()).await?;
            leg.carrier_sid = Some(ev.call_sid.clone());
            Ok(Some(leg))
        }
    }
}

/// A query parameter of a (signed) webhook URL.
fn query(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.chars().take(128).collect())
}

fn twiml(carrier: &dyn Carrier, doc: String) -> Response {
    ([(header::CONTENT_TYPE, carrier.content_type())], doc).into_response()
}

/// A single-use stream token for the call, valid `stream_token_ttl_secs`.
async fn stream_token(state: &AppState, call_id: &CallId, now: jiff::Timestamp) -> Result<String, dialnexa_store::StoreError> {
    let (token, _) = crate::auth::generate_key("stream", now);
    let token = token.replacen("dnx_", "stk_", 1);
    let expires = now + jiff::SignedDuration::from_secs(state.config.stream_token_ttl_secs.clamp(5, 3600) as i64);
    state.store.add_web_token(call_id, &crate::auth::hash_key(&token), expires).await?;
    Ok(token)
}

/// `<Connect><Stream>` to our media WebSocket, with the call's stream token.
async fn connect_stream(state: &AppState, carrier: &dyn Carrier, call_id: &CallId, mode: &str) -> Response {
    let now = ts_now();
    let token = match stream_token(state, call_id, now).await {
        Ok(t) => t,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let url = format!("{}/telephony/{}/media?token={token}", crate::webcall::ws_base(state), carrier.name());
    twiml(carrier, carrier.stream(&url, &[("call_id", call_id.as_str()), ("token", &token), ("mode", mode)]))
}

/// The voice webhook (TwiML answer).
#[utoipa::path(post, path = "/telephony/twilio/voice", tag = "telephony",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "the carrier's signed form"),
    responses((status = 200, description = "TwiML: <Connect><Stream> to the media WebSocket, or <Reject/> for a number with no route"),
        (status = 403, description = "invalid_signature"), (status = 400, description = "invalid_webhook")))]
pub async fn voice(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let hook = match verify(&state, &uri, &headers, &body) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let ev = &hook.event;
    let carrier = hook.carrier.clone();
    if let Some(of) = query(&uri, "transfer_of") {
        let Ok(call_id) = CallId::parse(&of) else { return twiml(carrier.as_ref(), carrier.reject()) };
        return warm::target_webhook(&state, carrier.as_ref(), &call_id, query(&uri, "step").as_deref(), ev).await;
    }
    match leg_for(&state, carrier.as_ref(), &uri, ev).await {
        Ok(Some(leg)) => answered(&state, carrier.as_ref(), &leg, ev).await,
        Ok(None) if ev.direction == "inbound" => inbound(&state, carrier.as_ref(), ev).await,
        Ok(None) => {
            tracing::warn!(carrier_call_sid = %ev.call_sid, direction = %ev.direction, "voice webhook for a call DialNexa did not place; refused");
            twiml(carrier.as_ref(), carrier.reject())
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Why an inbound call was refused before it was answered: recorded as a call.
async fn refuse(
    state: &AppState,
    carrier: &dyn Carrier,
    ev: &CallEvent,
    to: Option<PhoneNumber>,
    reason: DisconnectionReason,
    code: &str,
    why: String,
) -> Response {
    let now = ts_now();
    let call_id = CallId::generate();
    let mut route = json!({ "entry_point": "inbound", "explanation": why, "refused": code });
    if let Some(n) = &to {
        route["phone_number"] = json!(n.as_str());
    }
    let mut row = phone_row(
        &call_id,
        EntryPoint::Inbound,
        "inbound",
        &ev.from,
        &ev.to,
        None,
        route,
        CallStatus::NotConnected,
        now,
        carrier.name(),
        &ev.call_sid,
        json!({}),
    );
    row.disconnection_reason = Some(reason.as_str().into());
    row.ended_at = Some(now);
    row.duration_ms = Some(0);
    let timeline = vec![
        event(now, "carrier_webhook", format!("{} called {} (carrier call {})", ev.from, ev.to, ev.call_sid)),
        event(now, "call_refused", format!("refused before it was answered: {why}")),
    ];
    let leg = leg(&call_id, carrier.name(), Some(&ev.call_sid), &ev.status, now);
    if let Err(e) = state.store.insert_phone_call(&NewCall { row, timeline, transcript: vec![] }, &leg, now).await {
        tracing::error!(error = %e, carrier_call_sid = %ev.call_sid, "a refused call could not be recorded");
    }
    tracing::info!(call_id = %call_id, carrier_call_sid = %ev.call_sid, code, "inbound call refused");
    metrics::counter!("dialnexa_calls_total", "entry_point" => "inbound", "status" => "not_connected").increment(1);
    twiml(carrier, carrier.reject())
}

pub(crate) fn leg(call_id: &CallId, carrier: &str, sid: Option<&str>, status: &CarrierStatus, now: jiff::Timestamp) -> CarrierLeg {
    CarrierLeg {
        call_id: call_id.clone(),
        carrier: carrier.into(),
        carrier_sid: sid.map(str::to_owned),
        raw_status: status.as_str().into(),
        status_rank: status.rank(),
        answered_by: None,
        ringing_at: (status.rank() >= CarrierStatus::Ringing.rank()).then_some(now),
        answered_at: None,
        details: json!({}),
        created_at: now,
        updated_at: now,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn phone_row(
    call_id: &CallId,
    entry: EntryPoint,
    direction: &str,
    from: &str,
    to: &str,
    route: Option<&dialnexa_core::route::Route>,
    route_json: Value,
    status: CallStatus,
    now: jiff::Timestamp,
    carrier: &str,
    sid: &str,
    metadata: Value,
) -> CallRow {
    let mut metadata = if metadata.is_object() { metadata } else { json!({}) };
    metadata["carrier"] = json!(carrier);
    if !sid.is_empty() {
        metadata["carrier_call_sid"] = json!(sid);
    }
    CallRow {
        call_id: call_id.clone(),
        entry_point: entry.as_str().into(),
        direction: direction.into(),
        from_number: Some(from.chars().take(64).collect()),
        to_number: Some(to.chars().take(64).collect()),
        agent_id: route.map(|r| r.agent_id.clone()),
        agent_version: route.map(|r| r.agent_version),
        config_hash: route.map(|r| r.config_hash.clone()),
        route: route_json,
        batch_id: None,
        workflow_id: None,
        status: status.as_str().into(),
        disconnection_reason: None,
        created_at: now,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        category: None,
        summary: None,
        extracted_fields: BTreeMap::new(),
        analysis: None,
        transfer: None,
        recording: RecordingInfo {
            status: "none".into(),
            url: None,
            duration_ms: None,
            reason: Some("the call's audio has not connected yet".into()),
            blob: None,
            blob_channels: None,
        },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        metadata,
        timezone: None,
    }
}

/// A new inbound call: route it by the number dialled and connect its audio.
async fn inbound(state: &AppState, carrier: &dyn Carrier, ev: &CallEvent) -> Response {
    let to = match PhoneNumber::parse(&ev.to) {
        Ok(n) => n,
        Err(_) => {
            let why = format!("{} is not a phone number DialNexa holds", ev.to.chars().take(40).collect::<String>());
            return refuse(state, carrier, ev, None, DisconnectionReason::NoRoute, "phone_number_not_found", why).await;
        }
    };
    let req = RouteRequest { entry_point: Some(EntryPoint::Inbound), phone_number: Some(to.clone()), ..Default::default() };
    let route = match crate::api::routes::resolve_with(state.store.as_ref(), &req).await {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let (code, msg) = (e.code, e.message.clone());
            return refuse(state, carrier, ev, Some(to), DisconnectionReason::NoRoute, code, msg).await;
        }
        Err(e) => return e.into_response(),
    };
    if state.speech.is_none() {
        let why = "this server has no speech providers (DIALNEXA_ASR, DIALNEXA_TTS), so it cannot talk on the phone".to_owned();
        return refuse(state, carrier, ev, Some(to), DisconnectionReason::ErrorInternal, "speech_not_configured", why).await;
    }
    if state.live.count() >= state.config.max_live_calls {
        let why = format!("this node holds its maximum of {} live calls (DIALNEXA_MAX_LIVE_CALLS)", state.config.max_live_calls);
        return refuse(state, carrier, ev, Some(to), DisconnectionReason::ErrorInternal, "too_many_live_calls", why).await;
    }
    // Dynamic routing: the number's hook may pick another version and give variables.
    let (route, variables) = match state.store.get_number(&to).await {
        Ok(number) if number.inbound_hook_url.is_some() => {
            let d = hook::decide(state, &number, &ev.from, &ev.call_sid, route).await;
            (d.route, d.variables)
        }
        _ => (route, BTreeMap::new()),
    };
    let now = ts_now();
    let call_id = CallId::generate();
    let route_json = json!({ "entry_point": "inbound", "phone_number": to.as_str(), "agent_name": route.agent_name, "explanation": route.explanation });
    let metadata = if variables.is_empty() { json!({}) } else { json!({ "variables": variables }) };
    let row = phone_row(
        &call_id,
        EntryPoint::Inbound,
        "inbound",
        &ev.from,
        to.as_str(),
        Some(&route),
        route_json,
        CallStatus::Ringing,
        now,
        carrier.name(),
        &ev.call_sid,
        metadata,
    );
    let timeline = vec![
        event(now, "carrier_webhook", format!("{} called {} (carrier call {})", ev.from, to, ev.call_sid)),
        event(now, "route_resolved", route.explanation.clone()),
    ];
    let leg = leg(&call_id, carrier.name(), Some(&ev.call_sid), &ev.status, now);
    match state.store.insert_phone_call(&NewCall { row, timeline, transcript: vec![] }, &leg, now).await {
        Ok(()) => {}
        Err(dialnexa_store::StoreError::Conflict(_)) => {
            // The carrier retried the webhook: the call exists; answer it again.
            if let Ok(Some(leg)) = state.store.find_carrier_leg(carrier.name(), &ev.call_sid).await {
                return answered(state, carrier, &leg, ev).await;
            }
            return ApiError::new(StatusCode::CONFLICT, "conflict", "the call is already recorded").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(call_id = %call_id, carrier_call_sid = %ev.call_sid, agent = %route.agent_id, version = route.agent_version, "inbound call answered");
    warm_up(state, &route).await;
    connect_stream(state, carrier, &call_id, "agent").await
}

/// While the carrier connects the stream: synthesize the agent's opening into the audio
/// cache, so that its first words play at once (a flow's opening is known in advance).
async fn warm_up(state: &AppState, route: &dialnexa_core::route::Route) {
    let Some(speech) = state.speech.clone() else { return };
    let Ok(version) = state.store.get_version(&route.agent_id, route.agent_version).await else { return };
    let Ok(AgentConfig::Flow(flow)) = AgentConfig::parse(&version.config) else { return };
    let Ok(mut session) = dialnexa_voice::FlowSession::new(Arc::new(flow), BTreeMap::new()) else { return };
    let Some(text) = session.start().ok().and_then(|s| s.utterance) else { return };
    // `{{variables}}` of the call are not known here: only an opening without them is warmed.
    if text.contains("{{") {
        return;
    }
    let voice = state.config.tts_voice.clone();
    tokio::spawn(async move {
        let key = dialnexa_voice::live::AudioCache::key(&speech.tts.id(), voice.as_deref(), &text);
        if speech.cache.get(&key).is_some() {
            return;
        }
        if let Ok(mut stream) = speech.tts.synthesize(&text, voice.as_deref()).await {
            use futures_util::StreamExt;
            let mut all = vec![];
            while let Some(Ok(chunk)) = stream.next().await {
                let samples = if chunk.rate == dialnexa_voice::speech::CALL_RATE {
                    chunk.samples
                } else {
                    dialnexa_voice::speech::resample(&chunk.samples, chunk.rate, dialnexa_voice::speech::CALL_RATE)
                };
                all.extend(samples);
            }
            speech.cache.put(key, all);
        }
    });
}

/// A call DialNexa knows asks for its TwiML: an outbound call answered, or a retried webhook.
async fn answered(state: &AppState, carrier: &dyn Carrier, leg: &CarrierLeg, ev: &CallEvent) -> Response {
    let detail = match state.store.get_call(&leg.call_id).await {
        Ok(d) => d,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let status = detail.row.status.parse::<CallStatus>().unwrap_or(CallStatus::Error);
    if status.is_terminal() {
        return twiml(carrier, carrier.hangup_document());
    }
    if detail.row.direction != "outbound" {
        return connect_stream(state, carrier, &leg.call_id, "agent").await;
    }
    let now = ts_now();
    let _ = state.store.advance_carrier_leg(&leg.call_id, ev.status.as_str(), ev.status.rank(), ev.answered_by.as_deref(), now).await;
    let answered_by = ev.answered_by();
    let config = match (&detail.row.agent_id, detail.row.agent_version) {
        (Some(a), Some(v)) => state.store.get_version(a, v).await.ok().and_then(|v| AgentConfig::parse(&v.config).ok()),
        _ => None,
    };
    let policy = config.as_ref().and_then(|c| c.voicemail().cloned());
    let action = policy.as_ref().map(|p| p.action).unwrap_or(VoicemailAction::HangUp);
    let mut events = vec![event(
        now,
        "answered",
        match &ev.answered_by {
            Some(raw) => format!("the callee answered; machine detection says {} ({raw})", answered_by.map(AnsweredBy::as_str).unwrap_or("unknown")),
            None => "the callee answered".to_owned(),
        },
    )];
    let _ = state
        .store
        .merge_carrier_details(&leg.call_id, &json!({ "answered_by": answered_by.map(AnsweredBy::as_str), "answered_by_raw": ev.answered_by }), now)
        .await;
    if answered_by == Some(AnsweredBy::Machine) {
        match action {
            VoicemailAction::HangUp => {
                events.push(event(now, "voicemail", "an answering machine picked up; the agent's voicemail policy is hang_up, so the call was ended"));
                let _ = state.store.add_call_events(&leg.call_id, &events).await;
                end_unconnected(
                    state,
                    &leg.call_id,
                    DisconnectionReason::VoicemailReached,
                    CallStatus::Ended,
                    "voicemail reached; hung up by the voicemail policy",
                )
                .await;
                return twiml(carrier, carrier.hangup_document());
            }
            VoicemailAction::LeaveMessage => {
                events.push(event(
                    now,
                    "voicemail",
                    if ev.message_ended() {
                        "an answering machine picked up and its greeting has ended (the beep); the agent leaves its message".to_owned()
                    } else {
                        "an answering machine picked up; the agent leaves its message".to_owned()
                    },
                ));
                let _ = state.store.add_call_events(&leg.call_id, &events).await;
                return connect_stream(state, carrier, &leg.call_id, "voicemail").await;
            }
            VoicemailAction::Continue => {
                events.push(event(now, "voicemail", "an answering machine picked up; the agent's voicemail policy is continue, so it talks as to a person"));
            }
        }
    }
    let _ = state.store.add_call_events(&leg.call_id, &events).await;
    connect_stream(state, carrier, &leg.call_id, "agent").await
}

/// End a call that never had its audio connected.
pub(crate) async fn end_unconnected(state: &AppState, call_id: &CallId, reason: DisconnectionReason, status: CallStatus, why: &str) {
    let now = ts_now();
    let Ok(detail) = state.store.get_call(call_id).await else { return };
    let from = detail.row.status.parse::<CallStatus>().unwrap_or(CallStatus::Registered);
    if from.is_terminal() {
        return;
    }
    // A live call can only fail (its session is gone); one that never went live did not connect.
    let status = from.transition(status).unwrap_or(if from == CallStatus::Ongoing { CallStatus::Error } else { CallStatus::NotConnected });
    let f = FinishedCall {
        status: status.as_str().into(),
        disconnection_reason: reason.as_str().into(),
        started_at: None,
        ended_at: now,
        duration_ms: 0,
        extracted_fields: BTreeMap::new(),
        transfer: None,
        recording: RecordingInfo {
            status: "none".into(),
            url: None,
            duration_ms: None,
            reason: Some("the call's audio never connected".into()),
            blob: None,
            blob_channels: None,
        },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        analysis: None,
        timeline: vec![event(now, "status_changed", format!("{from} → {status} ({reason}): {why}"))],
        transcript: vec![],
    };
    match state.store.finish_live_call(call_id, &f, &[], now).await {
        Ok(()) => {
            let entry: &'static str = if detail.row.entry_point == "inbound" { "inbound" } else { "outbound" };
            metrics::counter!("dialnexa_calls_total", "entry_point" => entry, "status" => status.as_str()).increment(1);
        }
        Err(dialnexa_store::StoreError::Conflict(_)) => {}
        Err(e) => tracing::error!(call_id = %call_id, error = %e, "a phone call could not be closed"),
    }
}

/// Status callbacks: the carrier's view of the call, applied when it moves forward.
#[utoipa::path(post, path = "/telephony/twilio/status", tag = "telephony",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "the carrier's signed form"),
    responses((status = 204, description = "applied, or a repeat that changed nothing"), (status = 404, description = "a call DialNexa does not know"),
        (status = 403, description = "invalid_signature")))]
pub async fn status(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let hook = match verify(&state, &uri, &headers, &body) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let ev = hook.event;
    if let Some(of) = query(&uri, "transfer_of") {
        if let Ok(call_id) = CallId::parse(&of) {
            warm::target_status(&state, &call_id, &ev.status).await;
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    let leg = match leg_for(&state, hook.carrier.as_ref(), &uri, &ev).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            tracing::warn!(carrier_call_sid = %ev.call_sid, status = ev.status.as_str(), "status callback for a call DialNexa does not know");
            return ApiError::not_found("call").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    match apply_status(&state, &leg, &ev.status, ev.answered_by.as_deref(), ev.duration_secs, "status callback").await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Apply a carrier status to its call (from a callback or from reconciliation).
pub(crate) async fn apply_status(
    state: &AppState,
    leg: &CarrierLeg,
    status: &CarrierStatus,
    answered_by: Option<&str>,
    duration_secs: Option<u64>,
    source: &str,
) -> Result<(), dialnexa_store::StoreError> {
    let now = ts_now();
    let moved = state.store.advance_carrier_leg(&leg.call_id, status.as_str(), status.rank(), answered_by, now).await?;
    if !moved {
        tracing::debug!(call_id = %leg.call_id, status = status.as_str(), "carrier status repeated or out of order; nothing changes");
        return Ok(());
    }
    let detail = state.store.get_call(&leg.call_id).await?;
    let current = detail.row.status.parse::<CallStatus>().unwrap_or(CallStatus::Error);
    let text = format!("the carrier reports {} ({source})", status.as_str());
    match status {
        CarrierStatus::Ringing if current == CallStatus::Registered => {
            let _ = state
                .store
                .set_call_status(&leg.call_id, CallStatus::Ringing.as_str(), None, &event(now, "status_changed", format!("registered → ringing: {text}")))
                .await;
        }
        s if s.is_terminal() => {
            if current.is_terminal() {
                state.store.add_call_events(&leg.call_id, &[event(now, "carrier_status", text)]).await?;
                return Ok(());
            }
            if current == CallStatus::Ongoing {
                // The live session ends it (with its evidence); tell it, in case its stream has not.
                if let Some(tx) = state.live.sender(leg.call_id.as_str()) {
                    let _ = tx.send_timeout(dialnexa_voice::live::Inbound::Hangup, std::time::Duration::from_secs(1)).await;
                } else {
                    state
                        .store
                        .add_call_events(&leg.call_id, &[event(now, "carrier_status", format!("{text}; the call's media session is not on this node"))])
                        .await?;
                }
                return Ok(());
            }
            let answered = leg.answered_at.is_some() || status == &CarrierStatus::Completed && duration_secs.unwrap_or(0) > 0;
            let (reason, final_status, why) = match status {
                CarrierStatus::Busy => (DisconnectionReason::Busy, CallStatus::NotConnected, "the line was busy"),
                CarrierStatus::NoAnswer => (DisconnectionReason::NoAnswer, CallStatus::NotConnected, "nobody answered"),
                CarrierStatus::Failed => (DisconnectionReason::DialFailed, CallStatus::NotConnected, "the carrier could not place the call"),
                CarrierStatus::Canceled => (DisconnectionReason::TerminatedByApi, CallStatus::NotConnected, "the call was canceled before it was answered"),
                _ if answered => (DisconnectionReason::ErrorNoAudio, CallStatus::Error, "the call was answered but its audio never connected"),
                _ => (DisconnectionReason::UserHangup, CallStatus::NotConnected, "the caller hung up before the call was answered"),
            };
            end_unconnected(state, &leg.call_id, reason, final_status, &format!("{why} ({text})")).await;
        }
        _ => {
            let kind = if status == &CarrierStatus::InProgress { "answered" } else { "carrier_status" };
            state.store.add_call_events(&leg.call_id, &[event(now, kind, text)]).await?;
        }
    }
    Ok(())
}

/// How a transfer's dialed leg went (`<Dial action>`): recorded on the call; the caller hears
/// a goodbye when nobody took the call.
#[utoipa::path(post, path = "/telephony/twilio/dial-action", tag = "telephony",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "the carrier's signed form"),
    params(("call_id" = String, Query, description = "the transferred call")),
    responses((status = 200, description = "TwiML"), (status = 403, description = "invalid_signature"), (status = 404, description = "unknown call")))]
pub async fn dial_action(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let hook = match verify(&state, &uri, &headers, &body) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let carrier = hook.carrier.clone();
    let Some(leg) = state.store.find_carrier_leg(carrier.name(), &hook.event.call_sid).await.ok().flatten() else {
        return ApiError::not_found("call").into_response();
    };
    let now = ts_now();
    let dial = hook.event.dial_status.clone().unwrap_or(CarrierStatus::Other("unknown".into()));
    let connected = matches!(dial, CarrierStatus::Completed | CarrierStatus::InProgress);
    let duration = hook.params.iter().find(|(k, _)| k == "DialCallDuration").and_then(|(_, v)| v.parse::<u64>().ok());
    let mut transfer = state.store.get_call(&leg.call_id).await.ok().and_then(|d| d.row.transfer).unwrap_or_else(|| json!({}));
    transfer["status"] = json!(if connected { "connected" } else { "failed" });
    transfer["dial_status"] = json!(dial.as_str());
    transfer["ended_at"] = json!(now.to_string());
    if let Some(d) = duration {
        transfer["duration_secs"] = json!(d);
    }
    if let Some(sid) = &hook.event.dial_call_sid {
        transfer["target_call_sid"] = json!(sid);
    }
    let detail = if connected {
        format!("the transfer target answered; they talked {} s", duration.unwrap_or(0))
    } else {
        format!("the transfer target did not take the call ({}); the caller was told and the call ended", dial.as_str())
    };
    // Kept on the leg too: a quick answer can come before the live session has stored the
    // call, and the session then writes it over its own "dialing".
    let _ = state.store.merge_carrier_details(&leg.call_id, &json!({ "cold_transfer_result": transfer.clone() }), now).await;
    if let Err(e) = state.store.set_call_transfer(&leg.call_id, &transfer, &event(now, "transfer_result", detail)).await {
        tracing::error!(call_id = %leg.call_id, error = %e, "transfer result not stored");
    }
    if connected {
        twiml(carrier.as_ref(), carrier.hangup_document())
    } else {
        twiml(carrier.as_ref(), carrier.say_hangup("Sorry, nobody could take your call right now. We will call you back. Goodbye."))
    }
}

/// Webhook routes (signed by the carrier, no API key).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/telephony/twilio/voice", post(voice))
        .route("/telephony/twilio/status", post(status))
        .route("/telephony/twilio/dial-action", post(dial_action))
        .route("/telephony/twilio/media", get(media::stream))
}
