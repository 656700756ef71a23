//! The console pages served by the binary. A session is the API key in an HttpOnly,
//! SameSite=Strict cookie; any console page without one redirects to `/console/login`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::extract::{QueryPairs, parse_json};
use crate::state::AppState;

const COOKIE: &str = "dnx_console";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/login", get(login_page).post(login))
        .route("/console/web-call", get(web_call_page))
        .route("/console/api/web-calls", post(start_web_call))
        .route("/console", get(other_page))
        .route("/console/{*page}", get(other_page))
}

/// Every other console page: without a session, to the login page; with one, what exists.
async fn other_page(State(state): State<AppState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if !signed_in(&state, &headers).await {
        let next = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/console/web-call".into());
        return Redirect::to(&format!("/console/login?next={}", next.replace('&', "%26").replace('?', "%3F"))).into_response();
    }
    let mut resp = page(
        "Not here yet",
        &format!(
            "<p>{} is not part of this console yet. Call History, Call Detail and the other pages come with the console; \
             meanwhile everything is in the API (<code>/v1/openapi.json</code>).</p><p><a href=\"/console/web-call\">Start a web call</a></p>",
            escape(uri.path())
        ),
    )
    .into_response();
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

fn session_key(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == COOKIE).map(|(_, v)| v.to_owned())
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    match session_key(headers) {
        Some(k) => matches!(state.store.find_api_key(&crate::auth::hash_key(&k)).await, Ok(Some(r)) if r.revoked_at.is_none()),
        None => false,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{} · DialNexa</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}}ol li{{margin:.3rem 0}}.agent{{color:#034}}.caller{{color:#630}}\
         button{{font-size:1rem;padding:.4rem 1rem}}#status{{font-weight:bold}}</style></head><body><h1>{}</h1>{}</body></html>",
        escape(title),
        escape(title),
        body
    ))
}

async fn login_page(q: QueryPairs) -> Html<String> {
    let next = q.get("next").filter(|n| n.starts_with("/console/")).unwrap_or("/console/web-call");
    let error = if q.get("error").is_some() { "<p role=\"alert\">That API key is not valid.</p>" } else { "" };
    page(
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"/console/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
             <label>API key <input name=\"api_key\" type=\"password\" autocomplete=\"off\" required></label> <button>Sign in</button></form>",
            escape(next)
        ),
    )
}

fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| {
        let v = v.replace('+', " ");
        let bytes = v.as_bytes();
        let mut out = vec![];
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

async fn login(State(state): State<AppState>, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let key = form_value(&body, "api_key").unwrap_or_default();
    let next = form_value(&body, "next").filter(|n| n.starts_with("/console/")).unwrap_or_else(|| "/console/web-call".into());
    match state.store.find_api_key(&crate::auth::hash_key(key.trim())).await {
        Ok(Some(r)) if r.revoked_at.is_none() => {
            let mut resp = Redirect::to(&next).into_response();
            let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/console", key.trim());
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        _ => Redirect::to("/console/login?error=1").into_response(),
    }
}

/// Start a web call for the signed-in console user.
async fn start_web_call(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed_in(&state, &headers).await {
        return ApiError::unauthorized("sign in to the console first").into_response();
    }
    let body: crate::webcall::WebCallIn = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match crate::webcall::create(&state, body).await {
        Ok(out) => (StatusCode::CREATED, Json(out)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The browser's side of a web call: the microphone in, the agent out, the transcript live.
/// With `?agent_id=` it starts a call (console session needed); with `?call_id=&token=` it
/// joins a call started through the API (the token is the authorization).
async fn web_call_page(State(state): State<AppState>, headers: HeaderMap, q: QueryPairs) -> Response {
    let joining = q.get("call_id").is_some() && q.get("token").is_some();
    if !joining && !signed_in(&state, &headers).await {
        let next = format!("/console/web-call?agent_id={}", q.get("agent_id").unwrap_or(""));
        return Redirect::to(&format!("/console/login?next={}", next.replace('&', "%26"))).into_response();
    }
    let config = serde_json::json!({
        "agent_id": q.get("agent_id"),
        "call_id": q.get("call_id"),
        "token": q.get("token"),
        "autostart": q.get("autostart") == Some("1"),
    });
    let config = config.to_string().replace('<', "\\u003c");
    page(
        "Web call",
        &format!(
            "<p id=\"status\">Ready</p><button id=\"start\">Start the call</button> <button id=\"hangup\" disabled>Hang up</button>\
        <ol id=\"transcript\" aria-live=\"polite\"></ol><script>const CONFIG = {config};\n{SCRIPT}</script>"
        ),
    )
    .into_response()
}

const SCRIPT: &str = r#"
const statusEl = document.getElementById('status');
const list = document.getElementById('transcript');
const startBtn = document.getElementById('start');
const hangupBtn = document.getElementById('hangup');
let ws, ctx, mic, proc, playAt = 0;
function say(text) { statusEl.textContent = text; }
function line(role, text) {
  const li = document.createElement('li'); li.className = role; li.textContent = role + ': ' + text; list.appendChild(li);
}
async function streamUrl() {
  if (CONFIG.call_id && CONFIG.token) {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    return proto + '://' + location.host + '/v1/calls/' + CONFIG.call_id + '/stream?token=' + encodeURIComponent(CONFIG.token);
  }
  const r = await fetch('/console/api/web-calls', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent_id: CONFIG.agent_id }) });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : 'the call could not start');
  return body.stream_url;
}
function play(buf) {
  const pcm = new Int16Array(buf);
  const audio = ctx.createBuffer(1, pcm.length, 16000);
  const ch = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource(); src.buffer = audio; src.connect(ctx.destination);
  playAt = Math.max(playAt, ctx.currentTime); src.start(playAt); playAt += audio.duration;
}
async function start() {
  startBtn.disabled = true;
  try {
    ctx = new AudioContext({ sampleRate: 16000 });
    await ctx.resume();
    const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    const url = await streamUrl();
    ws = new WebSocket(url); ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      say('Connected');
      hangupBtn.disabled = false;
      mic = ctx.createMediaStreamSource(media);
      proc = ctx.createScriptProcessor(1024, 1, 1);
      proc.onaudioprocess = (e) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        const f = e.inputBuffer.getChannelData(0); const out = new Int16Array(f.length);
        for (let i = 0; i < f.length; i++) { const s = Math.max(-1, Math.min(1, f[i])); out[i] = s < 0 ? s * 32768 : s * 32767; }
        ws.send(out.buffer);
      };
      mic.connect(proc); proc.connect(ctx.destination);
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') { play(m.data); return; }
      const ev = JSON.parse(m.data);
      if (ev.type === 'transcript') line(ev.role, ev.text);
      else if (ev.type === 'barge_in') { playAt = ctx.currentTime; }
      else if (ev.type === 'agent_speaking') say('Agent speaking');
      else if (ev.type === 'caller_speaking') say('Listening');
      else if (ev.type === 'call_ended') { say('Call ended: ' + ev.reason); document.body.dataset.ended = ev.reason; }
      else if (ev.type === 'error') say('Error: ' + ev.message);
    };
    ws.onclose = () => { hangupBtn.disabled = true; if (proc) proc.disconnect(); if (!document.body.dataset.ended) say('Disconnected'); };
  } catch (e) { say('Error: ' + e.message); startBtn.disabled = false; }
}
startBtn.onclick = start;
hangupBtn.onclick = () => { if (ws) ws.close(); };
if (CONFIG.autostart) start();
"#;
