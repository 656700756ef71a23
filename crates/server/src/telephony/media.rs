//! The carrier's media stream (Twilio Media Streams): a WebSocket of JSON text frames.
//!
//! The stream is opened with the call's single-use stream token (`?token=`, or the `token`
//! parameter of the `start` frame: Twilio may drop a query string); a call id alone opens
//! nothing. Caller audio (8 kHz μ-law) is decoded and resampled to the turn loop's 16 kHz;
//! the agent's audio goes back as 20 ms μ-law frames, up to `playout_lead_ms` ahead of real
//! time, with marks that the carrier echoes as it plays them (so an interrupted turn is
//! stored as far as the caller heard it) and `clear` on barge-in. DTMF reaches the agent.
//! `stop` is the caller hanging up; a socket that drops without one ends the call
//! `error_media_dropped`. When the agent ends the call, it is hung up (or transferred)
//! through the carrier's REST API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dialnexa_core::agent::AgentConfig;
use dialnexa_core::{CallId, CallStatus, DisconnectionReason, TimelineEvent};
use dialnexa_store::TokenRefusal;
use dialnexa_voice::carrier::{Carrier, DialTarget, MediaDialect, MediaIn};
use dialnexa_voice::live::{AgentEvent, Inbound, LiveAgent, LiveConfig, Outbound, run_call};
use dialnexa_voice::speech::{CALL_RATE, Resampler};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::state::AppState;
use crate::webcall::LiveSlot;

/// The largest media frame accepted (a 20 ms frame is about 300 bytes of JSON).
pub const MAX_MEDIA_FRAME_BYTES: usize = 16 * 1024;
/// Malformed frames tolerated before the stream counts as broken (`error_protocol`).
pub const MAX_BAD_FRAMES: usize = 50;
/// How often a live phone call's session says it is alive (reconciliation trusts it for 3 beats).
pub const SESSION_HEARTBEAT: Duration = Duration::from_secs(20);
/// How long the carrier may take to send `start` after connecting.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The media WebSocket.
#[utoipa::path(get, path = "/telephony/twilio/media", tag = "telephony", params(("token" = Option<String>, Query, description = "the call's stream token (else the start frame's `token` parameter)")),
    responses((status = 101, description = "Twilio Media Streams"), (status = 401, description = "unknown or expired stream token"), (status = 409, description = "the token was already used"),
        (status = 503, description = "too_many_live_calls")))]
pub async fn stream(
    State(state): State<AppState>,
    q: QueryPairs,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::new(StatusCode::BAD_REQUEST, "websocket_required", "connect with a WebSocket upgrade").into_response();
    };
    let Some(carrier) = state.carrier.clone() else {
        return super::carrier(&state).err().map(IntoResponse::into_response).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response());
    };
    let Some(slot) = state.live.try_reserve(state.config.max_live_calls) else {
        return crate::webcall::error_response(crate::webcall::too_many_live_calls(&state));
    };
    // With the token in the URL, a bad one is refused before the upgrade.
    let opened = match q.get("token") {
        Some(token) => match open(&state, token).await {
            Ok(id) => Some(id),
            Err(r) => return r,
        },
        None => None,
    };
    ws.max_frame_size(MAX_MEDIA_FRAME_BYTES).max_message_size(MAX_MEDIA_FRAME_BYTES).on_upgrade(move |socket| async move {
        if let Err(e) = session(state, carrier, socket, slot, opened).await {
            tracing::error!(error = %e, "phone media session failed");
        }
    })
}

/// Spend a stream token: the call it opens, or the refusal.
async fn open(state: &AppState, token: &str) -> Result<CallId, Response> {
    match state.store.use_web_token(&crate::auth::hash_key(token), jiff::Timestamp::now()).await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(TokenRefusal::Unknown)) => Err(ApiError::unauthorized("the stream token is not valid").into_response()),
        Ok(Err(TokenRefusal::Expired)) => Err(ApiError::unauthorized("the stream token has expired, or its call has ended").into_response()),
        Ok(Err(TokenRefusal::AlreadyUsed)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "token_already_used", "this stream token was already used").into_response())
        }
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// Says the voicemail message, then ends the call (`voicemail_reached`).
struct VoicemailAgent {
    message: String,
}

#[async_trait::async_trait]
impl LiveAgent for VoicemailAgent {
    async fn start(&mut self) -> mpsc::Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.try_send(AgentEvent::Timeline { kind: "voicemail_message".into(), detail: "the agent leaves its voicemail message".into() });
        let _ = tx.try_send(AgentEvent::Say(self.message.clone()));
        let _ = tx.try_send(AgentEvent::End(DisconnectionReason::VoicemailReached));
        rx
    }
    async fn reply(&mut self, _caller: &str) -> mpsc::Receiver<AgentEvent> {
        mpsc::channel(1).1
    }
    async fn pressed(&mut self, _digits: &str) -> mpsc::Receiver<AgentEvent> {
        mpsc::channel(1).1
    }
    fn interrupted(&mut self, _spoken: &str) {}
}

async fn close(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() }))).await;
}

/// Read up to the `start` frame: its parameters, or why the stream is refused.
async fn await_start(
    source: &mut futures_util::stream::SplitStream<WebSocket>,
    dialect: &mut dyn MediaDialect,
) -> Result<(String, String, BTreeMap<String, String>), String> {
    let read = async {
        while let Some(msg) = source.next().await {
            match msg {
                Ok(Message::Text(t)) => match dialect.parse(t.as_str()) {
                    Ok(MediaIn::Connected) => continue,
                    Ok(MediaIn::Start { stream_sid, call_sid, parameters }) => return Ok((stream_sid, call_sid, parameters)),
                    Ok(_) => return Err("media before the start message".to_owned()),
                    Err(e) => return Err(e),
                },
                Ok(Message::Close(_)) | Err(_) => return Err("the socket closed before the start message".to_owned()),
                Ok(_) => continue,
            }
        }
        Err("the socket closed before the start message".to_owned())
    };
    tokio::time::timeout(START_TIMEOUT, read).await.unwrap_or_else(|_| Err(format!("no start message within {} s", START_TIMEOUT.as_secs())))
}

async fn session(
    state: AppState,
    carrier: Arc<dyn Carrier>,
    socket: WebSocket,
    mut slot: LiveSlot,
    opened: Option<CallId>,
) -> Result<(), dialnexa_store::StoreError> {
    let Some(speech) = state.speech.clone() else { return Ok(()) };
    let (mut sink, mut source) = socket.split();
    let mut dialect = carrier.media();
    let (stream_sid, carrier_sid, parameters) = match await_start(&mut source, dialect.as_mut()).await {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(call_id = ?opened.as_ref().map(CallId::as_str), "media stream refused: {why}");
            close(&mut sink, 1008, "bad start").await;
            return Ok(());
        }
    };
    let call_id = match opened {
        Some(id) => id,
        None => match parameters.get("token") {
            Some(t) => match open(&state, t).await {
                Ok(id) => id,
                Err(_) => {
                    tracing::warn!(carrier_call_sid = %carrier_sid, "media stream refused: its token is unknown, used or expired");
                    close(&mut sink, 1008, "invalid stream token").await;
                    return Ok(());
                }
            },
            None => {
                tracing::warn!(carrier_call_sid = %carrier_sid, "media stream refused: no stream token");
                close(&mut sink, 1008, "no stream token").await;
                return Ok(());
            }
        },
    };
    let detail = state.store.get_call(&call_id).await?;
    let leg = state.store.get_carrier_leg(&call_id).await?;
    if let Some(sid) = leg.as_ref().and_then(|l| l.carrier_sid.as_deref())
        && !carrier_sid.is_empty()
        && sid != carrier_sid
    {
        tracing::warn!(call_id = %call_id, carrier_call_sid = %carrier_sid, "media stream refused: its token belongs to another call");
        close(&mut sink, 1008, "token of another call").await;
        return Ok(());
    }
    let (agent_id, version) = match (&detail.row.agent_id, detail.row.agent_version) {
        (Some(a), Some(v)) => (a.clone(), v),
        _ => return Ok(()),
    };
    let config = state.store.get_version(&agent_id, version).await?.config;
    let agent_cfg = AgentConfig::parse(&config).ok();
    let started_at = jiff::Timestamp::now();
    let mode = parameters.get("mode").map(String::as_str).unwrap_or("agent");
    let mut variables: BTreeMap<String, String> = detail.row.metadata.get("variables").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    variables.insert("call_id".into(), call_id.to_string());
    variables.insert("agent_name".into(), detail.row.route.get("agent_name").and_then(Value::as_str).unwrap_or_default().to_owned());
    variables.insert("agent_version".into(), version.to_string());
    variables.insert("from_number".into(), detail.row.from_number.clone().unwrap_or_default());
    variables.insert("to_number".into(), detail.row.to_number.clone().unwrap_or_default());
    let agent: Box<dyn LiveAgent> = if mode == "voicemail" {
        let message = agent_cfg.as_ref().and_then(|c| c.voicemail()).and_then(|p| p.message.clone()).unwrap_or_default();
        let rendered = dialnexa_core::flow::render(&message, &|name: &str| variables.get(name).cloned());
        Box::new(VoicemailAgent { message: rendered })
    } else {
        match crate::webcall::build_agent(&state, &config, variables).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(call_id = %call_id, error = %e, "the agent could not start");
                close(&mut sink, 1011, "agent failed").await;
                super::end_unconnected(&state, &call_id, DisconnectionReason::ErrorInternal, CallStatus::Error, &format!("the agent could not start: {e}"))
                    .await;
                if let Some(sid) = leg.as_ref().and_then(|l| l.carrier_sid.clone()) {
                    let _ = carrier.hangup(&sid).await;
                }
                return Ok(());
            }
        }
    };
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(512);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
    let from = detail.row.status.parse::<CallStatus>().unwrap_or(CallStatus::Registered);
    let went_live = state
        .store
        .set_call_status(
            &call_id,
            CallStatus::Ongoing.as_str(),
            Some(started_at),
            &TimelineEvent {
                at: started_at,
                offset_ms: 0,
                kind: "status_changed".into(),
                detail: format!("{from} → ongoing: the carrier's media stream connected ({stream_sid})"),
            },
        )
        .await;
    match went_live {
        Ok(()) => {}
        Err(dialnexa_store::StoreError::Conflict(_)) => {
            // Ended, or live already on another stream: this one takes nothing over.
            close(&mut sink, 1000, "call ended").await;
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    // Reachable (end API, carrier callbacks, transfers) once it is live, and until its evidence is stored.
    slot.attach(call_id.as_str(), in_tx.clone());
    // A heartbeat on the leg says the session is alive (reconciliation on any node leaves it alone).
    let heartbeat = {
        let state = state.clone();
        let call = call_id.clone();
        let node = state.worker_id.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SESSION_HEARTBEAT);
            loop {
                every.tick().await;
                let now = jiff::Timestamp::now();
                let _ = state.store.merge_carrier_details(&call, &json!({ "session": { "node": node, "heartbeat_ms": now.as_millisecond() } }), now).await;
            }
        })
    };
    let bad = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));

    // Carrier → call.
    let reader = {
        let in_tx = in_tx.clone();
        let bad = bad.clone();
        let rate = dialect.rate();
        let call = call_id.clone();
        let mut parser = dialect;
        tokio::spawn(async move {
            let mut up = Resampler::phone(rate, CALL_RATE);
            let mut bad_count = 0usize;
            let ending = loop {
                let Some(msg) = source.next().await else { break Inbound::MediaLost("the carrier's socket closed without a stop message".into()) };
                if in_tx.is_closed() {
                    match msg {
                        Ok(Message::Close(_)) | Err(_) => return,
                        Ok(_) => continue,
                    }
                }
                match msg {
                    Ok(Message::Text(t)) => match parser.parse(t.as_str()) {
                        Ok(MediaIn::Audio(pcm)) => {
                            let samples = if rate == CALL_RATE { pcm } else { up.process(&pcm) };
                            let _ = in_tx.send(Inbound::Audio(samples)).await;
                        }
                        Ok(MediaIn::Dtmf(d)) => {
                            let _ = in_tx.send(Inbound::Dtmf(d)).await;
                        }
                        Ok(MediaIn::Mark(m)) => {
                            let _ = in_tx.send(Inbound::Mark(m)).await;
                        }
                        Ok(MediaIn::Stop) => break Inbound::Hangup,
                        Ok(MediaIn::Connected | MediaIn::Start { .. }) => {}
                        Err(e) => {
                            bad_count += 1;
                            tracing::debug!(call_id = %call, "a bad media frame: {e}");
                            let mut b = bad.lock().unwrap_or_else(|e| e.into_inner());
                            if b.len() < 10 {
                                b.push(e.clone());
                            }
                            if bad_count >= MAX_BAD_FRAMES {
                                break Inbound::ProtocolError(format!("{bad_count} malformed media frames (the last: {e})"));
                            }
                        }
                    },
                    Ok(Message::Binary(_)) => {
                        bad_count += 1;
                        if bad_count >= MAX_BAD_FRAMES {
                            break Inbound::ProtocolError(format!("{bad_count} malformed media frames (binary frames; Media Streams are JSON text)"));
                        }
                    }
                    Err(e) if crate::webcall::is_over_limit(&e) => break Inbound::ProtocolError(format!("a media frame over {MAX_MEDIA_FRAME_BYTES} bytes")),
                    Ok(Message::Close(_)) => break Inbound::MediaLost("the carrier closed the socket without a stop message".into()),
                    Err(e) => break Inbound::MediaLost(format!("the carrier's socket broke without a stop message ({e})")),
                    Ok(_) => {}
                }
            };
            let _ = in_tx.send(ending).await;
        })
    };
    // Requests of the call to its transport (a warm transfer).
    let (control_tx, mut control_rx) = mpsc::channel::<Value>(4);
    let control = {
        let state = state.clone();
        let carrier = carrier.clone();
        let call = call_id.clone();
        // Our number: the one dialled (inbound) or dialled from (outbound).
        let ours = if detail.row.direction == "inbound" { detail.row.to_number.clone() } else { detail.row.from_number.clone() }.unwrap_or_default();
        let theirs = if detail.row.direction == "inbound" { detail.row.from_number.clone() } else { detail.row.to_number.clone() }.unwrap_or_default();
        tokio::spawn(async move {
            while let Some(v) = control_rx.recv().await {
                if v["type"] == "warm_transfer" {
                    let to = v["to"].as_str().unwrap_or_default().to_owned();
                    let transcript = v["transcript"].as_array().cloned().unwrap_or_default();
                    super::warm::start(&state, carrier.as_ref(), &call, &ours, &theirs, &to, &transcript).await;
                } else if v["type"] == "warm_transfer_abandoned"
                    && let Some(w) = state.store.get_carrier_leg(&call).await.ok().flatten().and_then(|l| l.details.get("warm_transfer").cloned())
                {
                    super::warm::abandon(&state, carrier.as_ref(), &call, &w, v["why"].as_str().unwrap_or("abandoned")).await;
                }
            }
        })
    };
    // Call → carrier.
    let writer = {
        // The writer's own copy of the dialect, on the same stream.
        let mut dialect = carrier.media();
        let _ = dialect.parse(&json!({ "event": "start", "start": { "streamSid": stream_sid.clone(), "callSid": carrier_sid.clone() } }).to_string());
        let rate = dialect.rate();
        tokio::spawn(async move {
            let mut down = Resampler::phone(CALL_RATE, rate);
            let mut pending: Vec<i16> = vec![];
            while let Some(o) = out_rx.recv().await {
                let frames = match o {
                    Outbound::Audio(a) => {
                        pending.extend(if rate == CALL_RATE { a } else { down.process(&a) });
                        // Whole 20 ms frames; the rest waits for the next audio.
                        let whole = pending.len() - pending.len() % (rate as usize / 50);
                        let chunk: Vec<i16> = pending.drain(..whole).collect();
                        dialect.audio(&chunk)
                    }
                    Outbound::Mark(name) => {
                        let mut f = dialect.audio(&std::mem::take(&mut pending));
                        f.push(dialect.mark(&name));
                        f
                    }
                    Outbound::Clear => {
                        pending.clear();
                        vec![dialect.clear()]
                    }
                    Outbound::Event(v) => {
                        if v["type"] == "call_ended" {
                            return (sink, true);
                        }
                        if v["type"] == "warm_transfer" || v["type"] == "warm_transfer_abandoned" {
                            let _ = control_tx.try_send(v);
                        }
                        continue;
                    }
                };
                for f in frames {
                    if sink.send(Message::Text(f.into())).await.is_err() {
                        return (sink, false);
                    }
                }
            }
            (sink, false)
        })
    };
    let staging = crate::blobs::BlobStore::new(&state.config.data_dir).staging(call_id.as_str());
    let cfg = LiveConfig {
        max_duration_ms: agent_cfg.as_ref().map(AgentConfig::max_duration_ms).unwrap_or(30 * 60 * 1000),
        silence_timeout_ms: state.config.silence_timeout_ms,
        voice: state.config.tts_voice.clone(),
        audio_ahead_ms: state.config.audio_ahead_ms,
        max_utterance_ms: state.config.max_utterance_ms,
        record_to: Some(staging.clone()),
        playout_lead_ms: state.config.playout_lead_ms,
        marks: true,
        warm_transfers: true,
        vad_kind: state.config.vad_kind().unwrap_or(dialnexa_voice::live::VadKind::Cascade),
        ..LiveConfig::default()
    };
    drop(in_tx);
    tracing::info!(call_id = %call_id, carrier_call_sid = %carrier_sid, "phone call connected");
    let mut outcome = run_call(agent, speech.asr.clone(), speech.tts.clone(), speech.cache.clone(), in_rx, out_tx, cfg).await;
    heartbeat.abort();
    control.abort();
    // A warm transfer that joined is the ending, whichever the stream reported first; one that
    // did not is stopped at the target.
    let mut warm = state.store.get_carrier_leg(&call_id).await.ok().flatten().and_then(|l| l.details.get("warm_transfer").cloned());
    let warm_joined = warm.as_ref().is_some_and(|w| w["status"] == "joined");
    if warm_joined {
        outcome.disconnection_reason = Some(DisconnectionReason::Transfer);
    } else if let Some(w) = &warm {
        warm = Some(super::warm::abandon(&state, carrier.as_ref(), &call_id, w, "the call ended before the target joined").await);
    }
    let reason = outcome.disconnection_reason.unwrap_or(DisconnectionReason::UserHangup);
    // The carrier's side of the ending: hang up, or transfer, through its REST API.
    let sid = leg.as_ref().and_then(|l| l.carrier_sid.clone()).or_else(|| (!carrier_sid.is_empty()).then(|| carrier_sid.clone()));
    let mut transfer = None;
    let mut extra = vec![];
    let ended = jiff::Timestamp::now();
    let at = |detail: String, kind: &str| TimelineEvent { at: ended, offset_ms: outcome.duration_ms, kind: kind.into(), detail };
    // The caller's stream may end (moved to the conference) before the joined notice reaches the loop.
    if warm_joined && !outcome.timeline.iter().any(|e| e.kind == "transfer_connected") {
        extra.push(at("the warm transfer's target was briefed and joined the caller; the agent left the call".into(), "transfer_connected"));
    }
    if let Some(w) = &warm {
        let mut t = json!({ "to": w["to"], "kind": "warm", "at_ms": outcome.transfer.as_ref().map(|t| t.at_ms), "status": if w["status"] == "joined" { "connected" } else { "failed" } });
        for k in ["briefing", "target_call_sid", "started_at", "answered_at", "joined_at", "dial_status", "error"] {
            if !w[k].is_null() {
                t[k] = w[k].clone();
            }
        }
        transfer = Some(t);
    }
    if let Some(sid) = &sid {
        match reason {
            DisconnectionReason::UserHangup => {}
            // A warm transfer moved the caller into the target's conference already.
            DisconnectionReason::Transfer if warm_joined => {}
            DisconnectionReason::Transfer => {
                let to = outcome.transfer.as_ref().map(|t| t.to.clone()).unwrap_or_default();
                let target = DialTarget {
                    to: to.clone(),
                    caller_id: detail.row.to_number.clone().filter(|_| detail.row.direction == "inbound").or_else(|| detail.row.from_number.clone()),
                    action: Some(super::public(&state, &format!("/telephony/{}/dial-action?call_id={call_id}", carrier.name()))),
                    timeout_secs: state.config.ring_timeout_secs,
                };
                let requested = jiff::Timestamp::now();
                match carrier.redirect(sid, &carrier.dial(&target)).await {
                    Ok(()) => {
                        extra.push(at(format!("cold transfer: the call was handed to {to}; the agent left the call"), "transfer_started"));
                        transfer = Some(
                            json!({ "to": to, "kind": "cold", "at_ms": outcome.transfer.as_ref().map(|t| t.at_ms), "requested_at": requested.to_string(), "status": "dialing" }),
                        );
                    }
                    Err(e) => {
                        tracing::error!(call_id = %call_id, error = %e, "the transfer could not be started");
                        extra.push(at(format!("the transfer to {to} could not be started: {e}; the call was hung up"), "transfer_failed"));
                        transfer = Some(json!({ "to": to, "kind": "cold", "status": "failed", "error": e.to_string() }));
                        let _ = carrier.hangup(sid).await;
                    }
                }
            }
            _ => match carrier.hangup(sid).await {
                Ok(()) => extra.push(at(format!("hung up through the carrier ({reason})"), "carrier_hangup")),
                Err(e) => {
                    tracing::warn!(call_id = %call_id, error = %e, "hang-up through the carrier failed");
                    extra.push(at(format!("hang-up through the carrier failed: {e}; reconciliation checks the call"), "carrier_hangup_failed"));
                }
            },
        }
    }
    if let Ok((mut sink, _)) = writer.await {
        close(&mut sink, 1000, "call ended").await;
    }
    let mut o = outcome;
    o.timeline.extend(extra.into_iter().map(|e| dialnexa_voice::FlowTimelineEvent { offset_ms: e.offset_ms, kind: e.kind, detail: e.detail }));
    let bad = bad.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let entry: &'static str = if detail.row.entry_point == "inbound" { "inbound" } else { "outbound" };
    let done = crate::webcall::finish(&state, &call_id, started_at, o, bad, entry, transfer).await;
    // A cold transfer's outcome that arrived while the call was being stored.
    if let Some(result) = state.store.get_carrier_leg(&call_id).await.ok().flatten().and_then(|l| l.details.get("cold_transfer_result").cloned())
        && state.store.get_call(&call_id).await.ok().and_then(|d| d.row.transfer).is_some_and(|t| t["status"] == "dialing")
    {
        let ev = TimelineEvent {
            at: jiff::Timestamp::now(),
            offset_ms: 0,
            kind: "transfer_result".into(),
            detail: "the transfer's outcome, recorded with the call".into(),
        };
        let _ = state.store.set_call_transfer(&call_id, &result, &ev).await;
    }
    if let Err(e) = tokio::fs::remove_dir_all(&staging).await {
        tracing::warn!(call_id = %call_id, error = %e, "recording tracks not removed");
    }
    drop(slot);
    let mut reader = reader;
    if tokio::time::timeout(Duration::from_secs(2), &mut reader).await.is_err() {
        reader.abort();
    }
    done
}
