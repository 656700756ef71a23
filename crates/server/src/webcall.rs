//! Web calls: a browser talks to an agent over a WebSocket.
//!
//! `POST /v1/calls/web` registers the call and answers a single-use access token that
//! expires; `GET /v1/calls/{call_id}/stream?token=` upgrades to the WebSocket. Binary frames
//! carry 16-bit little-endian PCM, 16 kHz mono, both ways; text frames carry JSON events
//! (transcript updates, agent speaking, barge-in, call ended). Closing the socket is a caller
//! hangup; `POST /v1/calls/{call_id}/end` ends the call from the API.
//!
//! Bounds: at most `max_live_calls` calls are live on this node (more are refused with `503
//! too_many_live_calls`, before the token is spent); WebSocket frames and messages are at most
//! [`MAX_FRAME_BYTES`] (a larger one is refused from its header and ends the call
//! `error_protocol`); caller audio may run at most `audio_ahead_ms` ahead of the wall clock and
//! one utterance is at most `max_utterance_ms` (see the turn loop). The recording's tracks are
//! written to `<data_dir>/blobs/staging/<call_id>` as the call goes and streamed into the mixed
//! and two-channel blobs when it ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dialnexa_core::agent::AgentConfig;
use dialnexa_core::route::RouteRequest;
use dialnexa_core::{CallId, CallStatus, DisconnectionReason, EntryPoint, TimelineEvent};
use dialnexa_store::{CallRow, FinishedCall, NewCall, RecordingInfo, TokenRefusal};
use dialnexa_voice::live::{AudioCache, FlowAgent, Inbound, LiveAgent, LiveConfig, LiveOutcome, Outbound, run_call, write_mixes};
use dialnexa_voice::speech::{Asr, Tts};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs};
use crate::state::AppState;

/// The largest audio frame accepted: one second of 16 kHz 16-bit audio. It is also the
/// WebSocket's frame and message limit (text frames are small JSON control messages).
pub const MAX_FRAME_BYTES: usize = 32_000;

/// How long a client refused for `too_many_live_calls` is told to wait (`Retry-After`).
pub const LIVE_CALLS_RETRY_AFTER_SECS: u64 = 5;

/// The speech providers, when configured.
pub struct Speech {
    pub asr: Arc<dyn Asr>,
    pub tts: Arc<dyn Tts>,
    pub cache: AudioCache,
}

/// Calls in progress on this node: how many hold a slot (connecting, live or storing their
/// evidence), and how to reach each live one.
#[derive(Default)]
pub struct LiveCalls {
    inner: Mutex<LiveInner>,
}

#[derive(Default)]
struct LiveInner {
    slots: usize,
    calls: HashMap<String, mpsc::Sender<Inbound>>,
}

impl LiveCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Calls holding a slot on this node.
    pub fn count(&self) -> usize {
        self.lock().slots
    }
    /// Take a slot if fewer than `max` are held.
    pub fn try_reserve(self: &Arc<Self>, max: usize) -> Option<LiveSlot> {
        let mut g = self.lock();
        if g.slots >= max {
            return None;
        }
        g.slots += 1;
        Some(LiveSlot { live: self.clone(), call_id: None })
    }
    pub(crate) fn sender(&self, call_id: &str) -> Option<mpsc::Sender<Inbound>> {
        self.lock().calls.get(call_id).cloned()
    }
}

/// One call's place on this node; dropping it frees the place.
pub struct LiveSlot {
    live: Arc<LiveCalls>,
    call_id: Option<String>,
}

impl LiveSlot {
    /// The call is reachable (`POST /v1/calls/{id}/end`) through `tx`.
    pub(crate) fn attach(&mut self, call_id: &str, tx: mpsc::Sender<Inbound>) {
        self.live.lock().calls.insert(call_id.to_owned(), tx);
        self.call_id = Some(call_id.to_owned());
    }
    /// The call is no longer reachable (its evidence is being stored); the slot stays held.
    pub(crate) fn detach(&mut self) {
        if let Some(id) = self.call_id.take() {
            self.live.lock().calls.remove(&id);
        }
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.detach();
        let mut g = self.live.lock();
        g.slots = g.slots.saturating_sub(1);
    }
}

pub(crate) fn too_many_live_calls(state: &AppState) -> ApiError {
    let max = state.config.max_live_calls;
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_live_calls",
        format!("this node holds its maximum of {max} live calls (DIALNEXA_MAX_LIVE_CALLS); try again shortly"),
    )
    .with_details(json!({ "max_live_calls": max, "retry_after_secs": LIVE_CALLS_RETRY_AFTER_SECS }))
}

/// An error answer; `too_many_live_calls` carries `Retry-After`.
pub(crate) fn error_response(e: ApiError) -> Response {
    let retry = e.code == "too_many_live_calls";
    let mut resp = e.into_response();
    if retry {
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(LIVE_CALLS_RETRY_AFTER_SECS));
    }
    resp
}

pub fn speech_from(config: &crate::config::Config) -> Result<Option<Arc<Speech>>, String> {
    match (&config.asr, &config.tts) {
        (Some(a), Some(t)) => {
            let asr = dialnexa_voice::speech::asr_from_url(a, config.speech_api_key.clone()).map_err(|e| e.to_string())?;
            let tts = dialnexa_voice::speech::tts_from_url(t, config.speech_api_key.clone(), config.tts_voice.clone()).map_err(|e| e.to_string())?;
            Ok(Some(Arc::new(Speech { asr, tts, cache: AudioCache::new(config.audio_cache_bytes) })))
        }
        (None, None) => Ok(None),
        _ => Err("voice needs both --asr and --tts (DIALNEXA_ASR, DIALNEXA_TTS)".into()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebCallIn {
    pub agent_id: String,
    pub agent_version: Option<u32>,
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
    pub variables: Option<BTreeMap<String, String>>,
    pub timezone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebCallOut {
    pub call_id: String,
    /// Single use; expires at `expires_at`.
    pub access_token: String,
    /// The WebSocket to open (16-bit PCM, 16 kHz mono, both ways; JSON text events).
    pub stream_url: String,
    pub expires_at: String,
}

pub(crate) fn ws_base(state: &AppState) -> String {
    let base = state.config.public_base();
    if let Some(rest) = base.strip_prefix("https://") { format!("wss://{rest}") } else { format!("ws://{}", base.trim_start_matches("http://")) }
}

/// Register a web call and answer how to join it.
pub async fn create(state: &AppState, body: WebCallIn) -> ApiResult<WebCallOut> {
    if state.speech.is_none() {
        return Err(ApiError::unprocessable("speech_not_configured", "web calls need speech: start DialNexa with --asr and --tts (see docs/voice.md)"));
    }
    // A node at its bound refuses new calls up front (the WebSocket connect checks again).
    if state.live.count() >= state.config.max_live_calls {
        return Err(too_many_live_calls(state));
    }
    let agent_id = crate::api::routes::request_agent_id(Some(&body.agent_id))?;
    if let Some(tz) = &body.timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(ApiError::field("timezone", "not an IANA timezone"));
    }
    let metadata = body.metadata.unwrap_or_else(|| json!({}));
    if !metadata.is_object() || metadata.to_string().len() > crate::testcall::MAX_METADATA_BYTES {
        return Err(ApiError::field("metadata", "a JSON object of at most 16 KiB"));
    }
    let req = RouteRequest { entry_point: Some(EntryPoint::Web), agent_id, agent_version: body.agent_version, ..Default::default() };
    let route = crate::api::routes::resolve_with(state.store.as_ref(), &req).await?;
    let version = state.store.get_version(&route.agent_id, route.agent_version).await?;
    if let Ok(AgentConfig::Llm(_)) = AgentConfig::parse(&version.config)
        && state.config.llm_url.is_none()
    {
        return Err(ApiError::unprocessable("llm_not_configured", "this is an llm agent: start DialNexa with --llm URL (DIALNEXA_LLM_URL)"));
    }
    let now = jiff::Timestamp::now();
    let call_id = CallId::generate();
    let mut metadata = metadata;
    if let (Some(vars), Value::Object(m)) = (&body.variables, &mut metadata) {
        m.insert("variables".into(), json!(vars));
    }
    let row = CallRow {
        call_id: call_id.clone(),
        entry_point: "web".into(),
        direction: "web".into(),
        from_number: None,
        to_number: None,
        agent_id: Some(route.agent_id.clone()),
        agent_version: Some(route.agent_version),
        config_hash: Some(route.config_hash.clone()),
        route: json!({ "entry_point": "web", "agent_name": route.agent_name, "explanation": route.explanation }),
        batch_id: None,
        workflow_id: None,
        status: CallStatus::Registered.as_str().into(),
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
            reason: Some("the browser has not connected yet".into()),
            blob: None,
            blob_channels: None,
        },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        metadata,
        timezone: body.timezone,
    };
    let timeline = vec![
        TimelineEvent { at: now, offset_ms: 0, kind: "call_registered".into(), detail: "Web call registered; waiting for the browser to connect".into() },
        TimelineEvent { at: now, offset_ms: 0, kind: "route_resolved".into(), detail: route.explanation.clone() },
    ];
    state.store.insert_call(&NewCall { row, timeline, transcript: vec![] }, &[], now).await?;
    let (token, _) = crate::auth::generate_key("web call", now);
    let token = token.replacen("dnx_", "wct_", 1);
    let expires = now + jiff::SignedDuration::from_secs(state.config.web_token_ttl_secs as i64);
    state.store.add_web_token(&call_id, &crate::auth::hash_key(&token), expires).await?;
    Ok(WebCallOut {
        stream_url: format!("{}/v1/calls/{call_id}/stream?token={token}", ws_base(state)),
        call_id: call_id.to_string(),
        access_token: token,
        expires_at: expires.to_string(),
    })
}

/// Start a web call: its access token and WebSocket URL.
#[utoipa::path(post, path = "/v1/calls/web", tag = "calls", request_body = WebCallIn,
    responses((status = 201, body = WebCallOut), (status = 422, description = "speech_not_configured, llm_not_configured, agent_not_found, agent_version_not_published"),
        (status = 503, description = "too_many_live_calls: this node holds max_live_calls live calls; retry after Retry-After seconds")))]
pub async fn create_web(State(state): State<AppState>, ApiJson(body): ApiJson<WebCallIn>) -> Result<(StatusCode, Json<WebCallOut>), Response> {
    match create(&state, body).await {
        Ok(out) => Ok((StatusCode::CREATED, Json(out))),
        Err(e) => Err(error_response(e)),
    }
}

/// The web call's audio and events (WebSocket; the access token authenticates).
#[utoipa::path(get, path = "/v1/calls/{call_id}/stream", tag = "calls", params(("token" = String, Query, description = "the single-use access token")),
    responses((status = 101, description = "WebSocket: binary 16-bit PCM 16 kHz mono both ways, JSON text events; frames and messages of at most 32,000 bytes"),
        (status = 401, description = "unknown or expired token, or the call has ended (its token is revoked)"), (status = 409, description = "the token was already used"),
        (status = 503, description = "too_many_live_calls: the token is not spent; retry after Retry-After seconds")))]
pub async fn stream(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    q: QueryPairs,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // Checked first so that a plain request does not burn the single-use token.
    let Ok(ws) = ws else {
        return ApiError::new(StatusCode::BAD_REQUEST, "websocket_required", "connect with a WebSocket upgrade").into_response();
    };
    let Some(token) = q.get("token").map(str::to_owned) else {
        return ApiError::unauthorized("the stream needs ?token= (the access token of POST /v1/calls/web)").into_response();
    };
    // A place on this node first, so that a refused connection does not spend the token.
    let Some(slot) = state.live.try_reserve(state.config.max_live_calls) else {
        return error_response(too_many_live_calls(&state));
    };
    let now = jiff::Timestamp::now();
    let opened = match state.store.use_web_token(&crate::auth::hash_key(&token), now).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let id = match opened {
        Ok(id) if id.as_str() == call_id => id,
        Ok(_) | Err(TokenRefusal::Unknown) => return ApiError::unauthorized("the access token is not valid for this call").into_response(),
        Err(TokenRefusal::Expired) => {
            // Revoked with its call (ended before the browser connected), or simply expired.
            let ended = match CallId::parse(&call_id) {
                Ok(id) => state.store.get_call(&id).await.ok().filter(|d| d.row.status.parse::<CallStatus>().is_ok_and(CallStatus::is_terminal)),
                Err(_) => None,
            };
            return match ended {
                Some(d) => ApiError::unauthorized(format!(
                    "the call has ended ({}{}): its access token was revoked",
                    d.row.status,
                    d.row.disconnection_reason.map(|r| format!(", {r}")).unwrap_or_default()
                ))
                .into_response(),
                None => ApiError::unauthorized("the access token has expired").into_response(),
            };
        }
        Err(TokenRefusal::AlreadyUsed) => {
            return ApiError::new(StatusCode::CONFLICT, "token_already_used", "this access token was already used: a web call has one connection")
                .into_response();
        }
    };
    // The protocol's frames are at most MAX_FRAME_BYTES: a larger one is refused from its
    // header, before its payload is read (the library default is 16 MiB frames, 64 MiB messages).
    ws.max_frame_size(MAX_FRAME_BYTES).max_message_size(MAX_FRAME_BYTES).on_upgrade(move |socket| async move {
        if let Err(e) = session(state, id, socket, slot).await {
            tracing::error!(error = %e, "web call session failed");
        }
    })
}

fn pcm_from_bytes(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

fn bytes_from_pcm(s: &[i16]) -> Vec<u8> {
    s.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) async fn build_agent(state: &AppState, config: &Value, variables: BTreeMap<String, String>) -> Result<Box<dyn LiveAgent>, String> {
    match AgentConfig::parse(config).map_err(|e| e.to_string())? {
        AgentConfig::Flow(f) => Ok(Box::new(FlowAgent::new(Arc::new(f), variables).map_err(|e| e.to_string())?)),
        AgentConfig::Llm(l) => crate::llmcall::agent(state, l, variables),
    }
}

async fn session(state: AppState, call_id: CallId, socket: WebSocket, mut slot: LiveSlot) -> Result<(), dialnexa_store::StoreError> {
    let Some(speech) = state.speech.clone() else { return Ok(()) };
    let detail = state.store.get_call(&call_id).await?;
    let (agent_id, version) = match (&detail.row.agent_id, detail.row.agent_version) {
        (Some(a), Some(v)) => (a.clone(), v),
        _ => return Ok(()),
    };
    let config = state.store.get_version(&agent_id, version).await?.config;
    let started_at = jiff::Timestamp::now();
    let mut variables: BTreeMap<String, String> = detail.row.metadata.get("variables").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    variables.insert("call_id".into(), call_id.to_string());
    variables.insert("agent_name".into(), detail.row.route.get("agent_name").and_then(Value::as_str).unwrap_or_default().to_owned());
    variables.insert("agent_version".into(), version.to_string());
    variables.entry("from_number".into()).or_default();
    variables.entry("to_number".into()).or_default();
    let (mut sink, mut source) = socket.split();
    let agent = match build_agent(&state, &config, variables).await {
        Ok(a) => a,
        Err(e) => {
            let _ = sink.send(Message::Text(json!({ "type": "error", "message": e }).to_string().into())).await;
            return Ok(());
        }
    };
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(512);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
    // Reachable from the API before its status changes, so that an end in between is not lost.
    slot.attach(call_id.as_str(), in_tx.clone());
    let status = CallStatus::Registered.transition(CallStatus::Ongoing).map_err(|e| dialnexa_store::StoreError::Conflict(e.to_string()))?;
    let went_live = state
        .store
        .set_call_status(
            &call_id,
            status.as_str(),
            Some(started_at),
            &TimelineEvent { at: started_at, offset_ms: 0, kind: "status_changed".into(), detail: "registered → ongoing: the browser connected".into() },
        )
        .await;
    match went_live {
        Ok(()) => {}
        Err(dialnexa_store::StoreError::Conflict(_)) => {
            // Ended (through the API) while the browser was connecting: it stays ended.
            let reason = state.store.get_call(&call_id).await.ok().and_then(|d| d.row.disconnection_reason).unwrap_or_else(|| "terminated_by_api".into());
            let _ = sink.send(Message::Text(json!({ "type": "call_ended", "reason": reason }).to_string().into())).await;
            let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "call ended".into() }))).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let bad_frames = Arc::new(Mutex::new(Vec::<String>::new()));
    let frame_limit_error = || Outbound::Event(json!({ "type": "error", "message": format!("audio frames are at most {MAX_FRAME_BYTES} bytes") }));

    // Browser → call.
    let reader = {
        let in_tx = in_tx.clone();
        let bad = bad_frames.clone();
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            while let Some(msg) = source.next().await {
                if in_tx.is_closed() {
                    // The call has ended: read what the browser still sends up to its Close, so
                    // that the socket closes cleanly (unread data would reset the connection
                    // and could lose the last events on their way to the browser).
                    match msg {
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
                match msg {
                    Ok(Message::Binary(b)) if b.len() > MAX_FRAME_BYTES => {
                        let _ = out_tx.send(frame_limit_error()).await;
                        let _ = in_tx.send(Inbound::ProtocolError(format!("a {}-byte audio frame (at most {MAX_FRAME_BYTES})", b.len()))).await;
                        return;
                    }
                    Ok(Message::Binary(b)) if b.len() % 2 == 1 => {
                        bad.lock().unwrap_or_else(|e| e.into_inner()).push("an odd-length frame (not 16-bit PCM)".into());
                        let _ = out_tx
                            .send(Outbound::Event(
                                json!({ "type": "error", "message": "audio frames are 16-bit little-endian PCM, 16 kHz mono: an even number of bytes" }),
                            ))
                            .await;
                    }
                    Ok(Message::Binary(b)) => {
                        // Refused only once the call has ended: then the loop drains (above).
                        let _ = in_tx.send(Inbound::Audio(pcm_from_bytes(&b))).await;
                    }
                    Ok(Message::Text(t)) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        if v["type"] == "hangup" {
                            break;
                        }
                        let _ = out_tx
                            .send(Outbound::Event(json!({ "type": "error", "message": "text frames are JSON control messages: {\"type\": \"hangup\"}" })))
                            .await;
                    }
                    Err(e) if is_over_limit(&e) => {
                        // Refused from its header by the WebSocket: nothing of it was read.
                        let _ = out_tx.send(frame_limit_error()).await;
                        let _ = in_tx.send(Inbound::ProtocolError(format!("a WebSocket frame or message over {MAX_FRAME_BYTES} bytes ({e})"))).await;
                        return;
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = in_tx.send(Inbound::Hangup).await;
        })
    };
    // Call → browser.
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            let msg = match o {
                Outbound::Audio(a) => Message::Binary(bytes_from_pcm(&a).into()),
                // The browser plays what it gets as it gets it: no marks, nothing to clear.
                Outbound::Mark(_) | Outbound::Clear => continue,
                Outbound::Event(v) => {
                    let last = v["type"] == "call_ended";
                    if sink.send(Message::Text(v.to_string().into())).await.is_err() {
                        return;
                    }
                    if last {
                        let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "call ended".into() }))).await;
                        return;
                    }
                    continue;
                }
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        }
    });
    let agent_cfg = AgentConfig::parse(&config).ok();
    let max_duration_ms = match &agent_cfg {
        Some(AgentConfig::Flow(f)) => f.max_duration_ms,
        Some(AgentConfig::Llm(l)) => l.max_duration_ms,
        None => 30 * 60 * 1000,
    };
    let staging = crate::blobs::BlobStore::new(&state.config.data_dir).staging(call_id.as_str());
    let cfg = LiveConfig {
        max_duration_ms,
        silence_timeout_ms: state.config.silence_timeout_ms,
        // Only the server's configured voice: a Wyoming TTS server downloads any other voice named.
        voice: state.config.tts_voice.clone(),
        audio_ahead_ms: state.config.audio_ahead_ms,
        max_utterance_ms: state.config.max_utterance_ms,
        // The tracks go to disk as the call goes: memory stays flat however long it lasts.
        record_to: Some(staging.clone()),
        vad_kind: state.config.vad_kind().unwrap_or(dialnexa_voice::live::VadKind::Cascade),
        ..LiveConfig::default()
    };
    drop(in_tx);
    let outcome = run_call(agent, speech.asr.clone(), speech.tts.clone(), speech.cache.clone(), in_rx, out_tx, cfg).await;
    slot.detach();
    let _ = writer.await;
    let bad = bad_frames.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let done = finish(&state, &call_id, started_at, outcome, bad, "web", None).await;
    if let Err(e) = tokio::fs::remove_dir_all(&staging).await {
        tracing::warn!(call_id = %call_id, error = %e, "recording tracks not removed");
    }
    drop(slot);
    // The browser answers the close; one that does not is cut off.
    let mut reader = reader;
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut reader).await.is_err() {
        reader.abort();
    }
    done
}

/// The WebSocket refused a frame or message over its size limit.
pub(crate) fn is_over_limit(e: &axum::Error) -> bool {
    // axum does not expose tungstenite's error type; its capacity error reads so.
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("Message too long")
}

/// A live call ended: its final state and evidence, and its analysis queued. `bad` lists
/// what the other side sent that was not understood; `entry_point` labels the metric;
/// `transfer` is the transfer data when the transport carried one out (else the agent's request).
pub(crate) async fn finish(
    state: &AppState,
    call_id: &CallId,
    started_at: jiff::Timestamp,
    o: LiveOutcome,
    bad: Vec<String>,
    entry_point: &'static str,
    transfer: Option<Value>,
) -> Result<(), dialnexa_store::StoreError> {
    let reason = o.disconnection_reason.unwrap_or(DisconnectionReason::UserHangup);
    let ended_at = started_at + jiff::SignedDuration::from_millis(o.duration_ms as i64);
    let at = |ms: u64| started_at + jiff::SignedDuration::from_millis(ms as i64);
    let mut timeline: Vec<TimelineEvent> =
        o.timeline.iter().map(|e| TimelineEvent { at: at(e.offset_ms), offset_ms: e.offset_ms, kind: e.kind.clone(), detail: e.detail.clone() }).collect();
    for b in bad {
        timeline.push(TimelineEvent { at: ended_at, offset_ms: o.duration_ms, kind: "bad_audio".into(), detail: format!("the caller's side sent {b}") });
    }
    let status = CallStatus::Ongoing.transition(reason.final_status()).unwrap_or(CallStatus::Ended);
    timeline.push(TimelineEvent { at: ended_at, offset_ms: o.duration_ms, kind: "status_changed".into(), detail: format!("ongoing → {status} ({reason})") });
    if !o.turn_latencies_ms.is_empty() {
        let mut l = o.turn_latencies_ms.clone();
        l.sort_unstable();
        timeline.push(TimelineEvent {
            at: ended_at,
            offset_ms: o.duration_ms,
            kind: "latency_summary".into(),
            detail: format!(
                "{} agent turns answered the caller: median {} ms, worst {} ms from end of speech to first audio",
                l.len(),
                l[l.len() / 2],
                l[l.len() - 1]
            ),
        });
    }
    let recording = match store_recording(state, &o).await {
        Ok((mixed, channels, duration_ms)) => RecordingInfo {
            status: "available".into(),
            url: Some(format!("/v1/calls/{call_id}/recording")),
            duration_ms: Some(duration_ms),
            reason: None,
            blob: Some(mixed),
            blob_channels: Some(channels),
        },
        Err(e) => {
            tracing::error!(call_id = %call_id, error = %e, "recording not stored");
            RecordingInfo {
                status: "failed".into(),
                url: None,
                duration_ms: None,
                reason: Some("the recording could not be written to the blob store".into()),
                blob: None,
                blob_channels: None,
            }
        }
    };
    let now = jiff::Timestamp::now();
    let plan = crate::api::calls::analysis_plan(state);
    let f = FinishedCall {
        status: status.as_str().into(),
        disconnection_reason: reason.as_str().into(),
        started_at: Some(started_at),
        ended_at,
        duration_ms: o.duration_ms,
        extracted_fields: o.fields.clone(),
        transfer: transfer.or_else(|| o.transfer.as_ref().map(|t| json!({ "to": t.to, "at_ms": t.at_ms, "status": "requested" }))),
        recording,
        audio_cache_hits: o.cache_hits,
        audio_cache_misses: o.cache_misses,
        analysis: Some(crate::worker::pending(now, &plan.engine)),
        timeline,
        transcript: o.transcript.clone(),
    };
    let work = crate::worker::analysis_work(call_id, "1", plan.max_attempts);
    state.store.finish_live_call(call_id, &f, &[work], now).await?;
    metrics::counter!("dialnexa_calls_total", "entry_point" => entry_point, "status" => status.as_str()).increment(1);
    Ok(())
}

/// Stream the call's two track files into the mixed and the two-channel blobs (bounded
/// buffers, off the async threads): their ids and the duration.
async fn store_recording(state: &AppState, o: &LiveOutcome) -> Result<(String, String, u64), String> {
    let tracks = match &o.recording {
        Some(Ok(t)) => t.clone(),
        Some(Err(e)) => return Err(e.clone()),
        None => return Err("the call made no recording".into()),
    };
    let data_dir = state.config.data_dir.clone();
    let duration_ms = tracks.duration_ms();
    let (mixed, channels) = tokio::task::spawn_blocking(move || -> std::io::Result<(String, String)> {
        let blobs = crate::blobs::BlobStore::new(&data_dir);
        let mut mixed = blobs.writer()?;
        let mut stereo = blobs.writer()?;
        write_mixes(&tracks, &mut mixed, &mut stereo)?;
        Ok((mixed.commit()?, stereo.commit()?))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok((mixed, channels, duration_ms))
}

/// End an ongoing call from the API (`terminated_by_api`).
#[utoipa::path(post, path = "/v1/calls/{call_id}/end", tag = "calls", responses((status = 200, description = "{call_id, status: ending}"), (status = 404), (status = 409, description = "call_not_ongoing")))]
pub async fn end(State(state): State<AppState>, Path(call_id): Path<String>) -> ApiResult<Json<Value>> {
    let detail = crate::api::calls::load_detail(&state, &call_id).await?;
    let id = detail.row.call_id.clone();
    if let Some(tx) = state.live.sender(id.as_str()) {
        let _ = tx.send(Inbound::Terminate).await;
        return Ok(Json(json!({ "call_id": call_id, "status": "ending" })));
    }
    if matches!(detail.row.status.as_str(), "registered" | "ringing") {
        // Never connected: it ends here, with nothing to record, and its access token is
        // revoked in the same transaction (the browser can no longer join).
        let now = jiff::Timestamp::now();
        let from = detail.row.status.parse::<CallStatus>().unwrap_or(CallStatus::Registered);
        let status = from.transition(CallStatus::NotConnected).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| "not_connected".into());
        let f = FinishedCall {
            status: status.clone(),
            disconnection_reason: DisconnectionReason::TerminatedByApi.as_str().into(),
            started_at: None,
            ended_at: now,
            duration_ms: 0,
            extracted_fields: BTreeMap::new(),
            transfer: None,
            recording: detail.row.recording.clone(),
            audio_cache_hits: 0,
            audio_cache_misses: 0,
            analysis: None,
            timeline: vec![
                TimelineEvent { at: now, offset_ms: 0, kind: "status_changed".into(), detail: format!("{from} → {status} (terminated_by_api)") },
                TimelineEvent {
                    at: now,
                    offset_ms: 0,
                    kind: "call_ended".into(),
                    detail: "ended through the API before the browser connected; its access token was revoked".into(),
                },
            ],
            transcript: vec![],
        };
        match state.store.finish_live_call(&id, &f, &[], now).await {
            Ok(()) => return Ok(Json(json!({ "call_id": call_id, "status": status }))),
            Err(dialnexa_store::StoreError::Conflict(_)) => {
                // The browser connected in between: end the live call instead.
                if let Some(tx) = state.live.sender(id.as_str()) {
                    let _ = tx.send(Inbound::Terminate).await;
                    return Ok(Json(json!({ "call_id": call_id, "status": "ending" })));
                }
                let now_status = state.store.get_call(&id).await.map(|d| d.row.status).unwrap_or_default();
                return Err(ApiError::new(StatusCode::CONFLICT, "call_not_ongoing", format!("the call is {now_status}")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(StatusCode::CONFLICT, "call_not_ongoing", format!("the call is {}", detail.row.status)))
}
