//! The Twilio REST surface (`/2010-04-01/Accounts/{AccountSid}/…`) and the sim's own control
//! API (`/sim/…`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{CallEntry, Callee, Cmd, Inner, NewCall, RestRequest, Script, Source, call, is_terminal, push_capped, util};

pub(crate) fn router(sim: Arc<Inner>) -> Router {
    Router::new()
        .route("/sim/numbers", post(sim_number))
        .route("/sim/callees", post(sim_callee))
        .route("/sim/calls", post(sim_call_in).get(sim_calls))
        .route("/sim/calls/{sid}", get(sim_call))
        .fallback(rest)
        .with_state(sim)
}

fn json_response(status: u16, v: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(v)).into_response()
}

fn twilio_error(status: u16, code: u32, message: &str) -> (u16, Value) {
    (status, json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}))
}

fn basic_ok(headers: &HeaderMap, account_sid: &str, token: &str) -> bool {
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
    let Ok(raw) = String::from_utf8(raw) else { return false };
    raw.split_once(':').is_some_and(|(u, p)| u == account_sid && p == token)
}

async fn rest(State(sim): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut params = uri.query().map(|q| util::form_decode(q.as_bytes())).unwrap_or_default();
    if method != Method::GET {
        params.extend(util::form_decode(&body));
    }
    let auth_ok = basic_ok(&headers, &sim.cfg.account_sid, &sim.cfg.auth_token);
    let idem = headers.get("i-twilio-idempotency-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = uri.path().to_owned();
    let (status, v) = if !auth_ok { twilio_error(401, 20003, "Authenticate") } else { route(&sim, &method, &path, &params, idem.as_deref()).await };
    let full = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or(path);
    push_capped(&mut sim.lock().rest, RestRequest { method: method.to_string(), path: full, params, auth_ok, status, idempotency_token: idem });
    if status == 204 {
        return StatusCode::NO_CONTENT.into_response();
    }
    json_response(status, v)
}

fn not_found(path: &str) -> (u16, Value) {
    twilio_error(404, 20404, &format!("The requested resource {path} was not found"))
}

async fn route(sim: &Arc<Inner>, method: &Method, path: &str, params: &[(String, String)], idem: Option<&str>) -> (u16, Value) {
    let Some(rest) = path.strip_prefix("/2010-04-01/Accounts/") else { return not_found(path) };
    let (account, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if account != sim.cfg.account_sid {
        return not_found(path);
    }
    let segs: Vec<&str> = tail.split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["Calls.json"]) => create_call(sim, params, idem),
        ("GET", ["Calls.json"]) => list_calls(sim, params),
        ("GET", ["Calls", file]) => match file.strip_suffix(".json").and_then(|s| call_json(sim, s)) {
            Some(v) => (200, v),
            None => not_found(path),
        },
        ("POST", ["Calls", file]) => match file.strip_suffix(".json") {
            Some(s) => update_call(sim, s, params, path),
            None => not_found(path),
        },
        ("GET", ["Conferences.json"]) => list_conferences(sim, params),
        ("GET", ["Conferences", file]) => match file.strip_suffix(".json").and_then(|s| conference_json(sim, s)) {
            Some(v) => (200, v),
            None => not_found(path),
        },
        ("POST", ["Conferences", conf, "Participants.json"]) => add_participant(sim, conf, params, path),
        ("GET", ["Conferences", conf, "Participants.json"]) => list_participants(sim, conf, path),
        _ => not_found(path),
    }
}

fn uri_of(sim: &Inner, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{}/Calls/{sid}.json", sim.cfg.account_sid)
}

fn resource(sim: &Inner, c: &CallEntry) -> Value {
    let r = &c.rec;
    let fmt = |t: Option<SystemTime>| t.map(util::rfc2822);
    let ended = is_terminal(&r.status);
    json!({
        "sid": r.sid,
        "account_sid": sim.cfg.account_sid,
        "parent_call_sid": r.parent_call_sid,
        "to": r.to,
        "to_formatted": r.to,
        "from": r.from,
        "from_formatted": r.from,
        "status": r.status,
        "direction": r.direction,
        "start_time": fmt(c.answered.map(|a| a.0)),
        "end_time": if ended { fmt(c.ended) } else { None },
        "duration": if ended { Some(r.duration_secs.to_string()) } else { None },
        "answered_by": r.answered_by,
        "date_created": util::rfc2822(c.created),
        "date_updated": util::rfc2822(c.updated),
        "api_version": "2010-04-01",
        "price": null,
        "price_unit": "USD",
        "caller_name": null,
        "forwarded_from": null,
        "group_sid": null,
        "phone_number_sid": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": uri_of(sim, &r.sid),
        "subresource_uris": {
            "notifications": format!("/2010-04-01/Accounts/{}/Calls/{}/Notifications.json", sim.cfg.account_sid, r.sid),
            "recordings": format!("/2010-04-01/Accounts/{}/Calls/{}/Recordings.json", sim.cfg.account_sid, r.sid),
        },
    })
}

fn call_json(sim: &Inner, sid: &str) -> Option<Value> {
    let st = sim.lock();
    st.call_ref(sid).map(|c| resource(sim, c))
}

fn all<'a>(params: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> {
    params.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn create_call(sim: &Arc<Inner>, params: &[(String, String)], idem: Option<&str>) -> (u16, Value) {
    if let Some(token) = idem {
        let st = sim.lock();
        if let Some(c) = st.idem.get(token).and_then(|sid| st.call_ref(sid)) {
            return (201, resource(sim, c));
        }
    }
    let get = |k| util::get(params, k).map(str::trim).filter(|v| !v.is_empty());
    let Some(to) = get("To") else { return twilio_error(400, 21201, "No 'To' number is specified") };
    let valid = |n: &str| util::is_e164(n) || n.starts_with("client:") || n.starts_with("sip:");
    if !valid(to) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    let Some(from) = get("From") else { return twilio_error(400, 21213, "No 'From' number is specified") };
    if !valid(from) {
        return twilio_error(400, 21212, &format!("Invalid 'From' Phone Number: {from}"));
    }
    let source = match (get("Url"), get("Twiml")) {
        (_, Some(t)) => Source::Inline(t.to_owned()),
        (Some(u), None) if u.starts_with("http://") || u.starts_with("https://") => {
            Source::Fetch { url: u.to_owned(), method: get("Method").unwrap_or("POST").to_owned(), extra: Vec::new() }
        }
        (Some(u), None) => return twilio_error(400, 21205, &format!("Url is not a valid URL: {u}")),
        (None, None) => return twilio_error(400, 21205, "Url parameter is required."),
    };
    let machine_detection = match get("MachineDetection") {
        None => None,
        Some(m @ ("Enable" | "DetectMessageEnd")) => Some(m.to_owned()),
        Some(m) => return twilio_error(400, 21626, &format!("Invalid MachineDetection value: {m}")),
    };
    let timeout = match get("Timeout").map(str::parse::<u64>) {
        None => 60,
        Some(Ok(t)) => t.clamp(1, 600),
        Some(Err(_)) => return twilio_error(400, 21216, "Invalid Timeout value"),
    };
    let events = callback_events(params);
    let (sid, rx) = sim.new_call(NewCall {
        from: from.to_owned(),
        to: to.to_owned(),
        direction: "outbound-api",
        status: "queued",
        parent: None,
        cb_url: get("StatusCallback").map(str::to_owned),
        cb_method: get("StatusCallbackMethod").unwrap_or("POST").to_owned(),
        cb_events: events,
        source: Some(source),
        machine_detection,
        ring_timeout_s: timeout,
    });
    if let Some(token) = idem {
        sim.lock().idem.insert(token.to_owned(), sid.clone());
    }
    let v = call_json(sim, &sid).unwrap_or(Value::Null);
    tokio::spawn(call::drive_outbound(sim.clone(), sid, rx));
    (201, v)
}

fn list_calls(sim: &Inner, params: &[(String, String)]) -> (u16, Value) {
    let st = sim.lock();
    let f = |k| util::get(params, k);
    let calls: Vec<Value> = st
        .calls
        .iter()
        .rev()
        .filter(|c| f("To").is_none_or(|v| v == c.rec.to) && f("From").is_none_or(|v| v == c.rec.from) && f("Status").is_none_or(|v| v == c.rec.status))
        .map(|c| resource(sim, c))
        .collect();
    let uri = format!("/2010-04-01/Accounts/{}/Calls.json", sim.cfg.account_sid);
    (
        200,
        json!({"calls": calls, "page": 0, "page_size": 50, "start": 0, "end": calls.len().saturating_sub(1), "first_page_uri": uri, "next_page_uri": null, "previous_page_uri": null, "uri": uri}),
    )
}

fn update_call(sim: &Arc<Inner>, sid: &str, params: &[(String, String)], path: &str) -> (u16, Value) {
    let get = |k| util::get(params, k).map(str::trim).filter(|v| !v.is_empty());
    let Some((status, tx)) = sim.with_call(sid, |c| (c.rec.status.clone(), c.cmd.clone())) else { return not_found(path) };
    let ringing = matches!(status.as_str(), "queued" | "initiated" | "ringing");
    if let Some(s) = get("Status") {
        match s {
            "completed" | "canceled" if is_terminal(&status) => {}
            "completed" => {
                sim.set_status(sid, if ringing { "canceled" } else { "completed" });
                let _ = tx.send(Cmd::Hangup);
            }
            "canceled" => {
                if ringing {
                    sim.set_status(sid, "canceled");
                    let _ = tx.send(Cmd::Hangup);
                }
            }
            other => return twilio_error(400, 21218, &format!("Invalid Status: {other}")),
        }
    } else {
        let source = match (get("Twiml"), get("Url")) {
            (Some(t), _) => Source::Inline(t.to_owned()),
            (None, Some(u)) => Source::Fetch { url: u.to_owned(), method: get("Method").unwrap_or("POST").to_owned(), extra: Vec::new() },
            (None, None) => return call_json(sim, sid).map(|v| (200, v)).unwrap_or_else(|| not_found(path)),
        };
        if is_terminal(&status) {
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.");
        }
        if ringing {
            // Not answered yet: the new TwiML is what runs on answer.
            sim.with_call(sid, |c| c.source = Some(source));
        } else {
            let _ = tx.send(Cmd::Redirect(source));
        }
    }
    sim.with_call(sid, |c| c.updated = SystemTime::now());
    call_json(sim, sid).map(|v| (200, v)).unwrap_or_else(|| not_found(path))
}

fn conference_value(sim: &Inner, c: &crate::Conference) -> Value {
    json!({
        "sid": c.sid,
        "account_sid": sim.cfg.account_sid,
        "friendly_name": c.name,
        "status": c.status,
        "date_created": util::rfc2822(c.created),
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{}/Conferences/{}.json", sim.cfg.account_sid, c.sid),
    })
}

fn list_conferences(sim: &Inner, params: &[(String, String)]) -> (u16, Value) {
    let st = sim.lock();
    let f = |k| util::get(params, k);
    let list: Vec<Value> = st
        .conferences
        .iter()
        .filter(|c| f("FriendlyName").is_none_or(|v| v == c.name) && f("Status").is_none_or(|v| v == c.status))
        .map(|c| conference_value(sim, c))
        .collect();
    (200, json!({"conferences": list, "page": 0, "page_size": 50, "next_page_uri": null}))
}

fn conference_json(sim: &Inner, sid: &str) -> Option<Value> {
    let st = sim.lock();
    st.conferences.iter().find(|c| c.sid == sid).map(|c| conference_value(sim, c))
}

fn participant_value(sim: &Inner, conf_sid: &str, call_sid: &str, label: Option<&str>, status: &str) -> Value {
    json!({
        "account_sid": sim.cfg.account_sid,
        "call_sid": call_sid,
        "conference_sid": conf_sid,
        "label": label,
        "status": status,
        "muted": false,
        "hold": false,
        "uri": format!("/2010-04-01/Accounts/{}/Conferences/{conf_sid}/Participants/{call_sid}.json", sim.cfg.account_sid),
    })
}

fn add_participant(sim: &Arc<Inner>, conf_sid: &str, params: &[(String, String)], path: &str) -> (u16, Value) {
    let get = |k| util::get(params, k).map(str::trim).filter(|v| !v.is_empty());
    let Some(name) = sim.lock().conferences.iter().find(|c| c.sid == conf_sid && c.status != "completed").map(|c| c.name.clone()) else {
        return not_found(path);
    };
    let Some(to) = get("To") else { return twilio_error(400, 21201, "No 'To' number is specified") };
    if !util::is_e164(to) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    let Some(from) = get("From") else { return twilio_error(400, 21213, "No 'From' number is specified") };
    let label = get("Label").map(str::to_owned);
    let timeout = get("Timeout").and_then(|t| t.parse::<u64>().ok()).unwrap_or(60);
    let events = callback_events(params);
    let (sid, rx) = sim.new_call(NewCall {
        from: from.to_owned(),
        to: to.to_owned(),
        direction: "outbound-api",
        status: "queued",
        parent: None,
        cb_url: get("StatusCallback").map(str::to_owned),
        cb_method: get("StatusCallbackMethod").unwrap_or("POST").to_owned(),
        cb_events: events,
        source: None,
        machine_detection: None,
        ring_timeout_s: timeout,
    });
    let v = participant_value(sim, conf_sid, &sid, label.as_deref(), "queued");
    tokio::spawn(call::drive_participant(sim.clone(), sid, name, label, rx));
    (201, v)
}

fn list_participants(sim: &Inner, conf_sid: &str, path: &str) -> (u16, Value) {
    let st = sim.lock();
    let Some(c) = st.conferences.iter().find(|c| c.sid == conf_sid) else { return not_found(path) };
    let list: Vec<Value> =
        c.participants.iter().filter(|p| p.present).map(|p| participant_value(sim, conf_sid, &p.call_sid, p.label.as_deref(), "connected")).collect();
    (200, json!({"participants": list, "page": 0, "page_size": 50, "next_page_uri": null}))
}

// ---------------------------------------------------------------------------------------------
// Control API.

#[derive(Deserialize)]
struct NumberBody {
    number: String,
    voice_url: String,
    status_callback: Option<String>,
}

#[derive(Deserialize)]
struct CalleeBody {
    number: String,
    callee: Callee,
}

#[derive(Deserialize)]
struct CallBody {
    from: String,
    to: String,
    #[serde(default)]
    script: Script,
}

fn sim_handle(sim: Arc<Inner>) -> crate::CarrierSim {
    crate::CarrierSim { inner: sim }
}

async fn sim_number(State(sim): State<Arc<Inner>>, axum::Json(b): axum::Json<NumberBody>) -> Response {
    sim_handle(sim).set_number(&b.number, &b.voice_url, b.status_callback.as_deref());
    json_response(200, json!({"ok": true}))
}

async fn sim_callee(State(sim): State<Arc<Inner>>, axum::Json(b): axum::Json<CalleeBody>) -> Response {
    sim_handle(sim).on_dial(&b.number, b.callee);
    json_response(200, json!({"ok": true}))
}

async fn sim_call_in(State(sim): State<Arc<Inner>>, axum::Json(b): axum::Json<CallBody>) -> Response {
    match sim_handle(sim).call_in(&b.from, &b.to, b.script).await {
        Ok(sid) => json_response(201, json!({"sid": sid})),
        Err(e) => json_response(400, json!({"error": e.to_string()})),
    }
}

/// A call as JSON with sample counts in place of the audio arrays.
pub(crate) fn summary(call: &crate::SimCall) -> Value {
    let mut v = serde_json::to_value(call).unwrap_or(Value::Null);
    let strip = |s: &mut Value| {
        if let Some(o) = s.as_object_mut() {
            for key in ["agent_audio", "heard_audio"] {
                let n = o.remove(key).and_then(|a| a.as_array().map(Vec::len)).unwrap_or(0);
                o.insert(format!("{key}_samples"), json!(n));
            }
        }
    };
    if let Some(s) = v.get_mut("stream") {
        strip(s);
    }
    if let Some(list) = v.get_mut("streams").and_then(Value::as_array_mut) {
        list.iter_mut().for_each(strip);
    }
    v
}

async fn sim_calls(State(sim): State<Arc<Inner>>) -> Response {
    let calls: Vec<Value> = sim_handle(sim).calls().iter().map(summary).collect();
    json_response(200, Value::Array(calls))
}

async fn sim_call(State(sim): State<Arc<Inner>>, Path(sid): Path<String>) -> Response {
    match sim_handle(sim).call(&sid) {
        Some(c) => json_response(200, summary(&c)),
        None => json_response(404, json!({"error": format!("no call {sid}")})),
    }
}

/// The subscribed status-callback events (repeated or space-separated); only `completed` when none.
fn callback_events(params: &[(String, String)]) -> Vec<String> {
    let mut events: Vec<String> =
        all(params, "StatusCallbackEvent").flat_map(|v| v.split([' ', ','])).filter(|e| !e.is_empty()).map(str::to_ascii_lowercase).collect();
    if events.is_empty() {
        events.push("completed".into());
    }
    events
}
