//! The sim against a tiny in-test "server": signed webhooks, Media Streams, REST, callbacks,
//! machine detection, redirects into `<Dial>`, socket drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use dialnexa_carrier_sim::{Callee, CarrierSim, Script, SimConfig, Step, mulaw, signature};
use serde_json::{Value, json};

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "secret-token";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

type Hook = (String, Vec<(String, String)>, bool);

#[derive(Default)]
struct Log {
    /// (path, params, signature valid)
    hooks: Vec<Hook>,
    /// Messages the sim sent on the socket, with when they arrived.
    ws_in: Vec<(Instant, Value)>,
    /// What the server sent that matters for timing (mark names, "clear").
    ws_out: Vec<(Instant, String)>,
    ws_end: Option<String>,
}

#[derive(Clone)]
struct Srv {
    base: String,
    log: Arc<Mutex<Log>>,
}

impl Srv {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
    fn hooks(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.log().hooks.iter().filter(|h| h.0 == path).map(|h| h.1.clone()).collect()
    }
    fn ws_url(&self, mode: &str) -> String {
        format!("{}/ws?mode={mode}", self.base.replace("http://", "ws://"))
    }
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

async fn start_server() -> Srv {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let srv = Srv { base, log: Arc::default() };
    let app = Router::new().route("/ws", any(ws)).fallback(hook).with_state(srv.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    srv
}

/// Every form POST: verify the signature the way the real server must, record, answer TwiML.
async fn hook(State(srv): State<Srv>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let url = format!("{}{}", srv.base, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = sig == signature(TOKEN, &url, &params);
    srv.log().hooks.push((uri.path().to_owned(), params, ok));
    if !ok {
        return StatusCode::FORBIDDEN.into_response();
    }
    let twiml = match uri.path() {
        "/voice" => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{}"><Parameter name="call_id" value="c1"/></Stream></Connect><Say>bye</Say></Response>"#,
            srv.ws_url("greet").replace('&', "&amp;")
        ),
        "/quiet" => format!(r#"<Response><Connect><Stream url="{}"/></Connect><Say>after stream</Say></Response>"#, srv.ws_url("quiet")),
        "/conf" => "<Response><Dial><Conference>room1</Conference></Dial></Response>".to_owned(),
        "/action" => "<Response><Say>after dial</Say><Hangup/></Response>".to_owned(),
        "/broken" => return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        _ => String::new(),
    };
    ([("content-type", "text/xml")], twiml).into_response()
}

async fn ws(State(srv): State<Srv>, Query(q): Query<HashMap<String, String>>, upgrade: WebSocketUpgrade) -> Response {
    let mode = q.get("mode").cloned().unwrap_or_default();
    upgrade.on_upgrade(move |socket| ws_session(srv, mode, socket))
}

fn tone_frames(ms: u64) -> Vec<String> {
    let pcm: Vec<i16> = (0..ms * 8).map(|i| ((i as f64 * 0.3).sin() * 6000.0) as i16).collect();
    mulaw::encode(&pcm).chunks(160).map(|c| B64.encode(c)).collect()
}

async fn ws_session(srv: Srv, mode: String, mut socket: WebSocket) {
    let mut stream_sid = String::new();
    let mut clear_at: Option<tokio::time::Instant> = None;
    let end = loop {
        let sleep = async {
            match clear_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            m = socket.recv() => m,
            _ = sleep => {
                clear_at = None;
                srv.log().ws_out.push((Instant::now(), "clear".into()));
                let _ = socket.send(Message::Text(json!({"event": "clear", "streamSid": stream_sid}).to_string().into())).await;
                continue;
            }
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Close(_))) => break "close",
            Some(Ok(_)) => continue,
            Some(Err(_)) => break "error",
            None => break "eof",
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        srv.log().ws_in.push((Instant::now(), v.clone()));
        if mode != "greet" {
            continue;
        }
        let mut out: Vec<String> = Vec::new();
        match v["event"].as_str() {
            Some("start") => {
                stream_sid = v["streamSid"].as_str().unwrap().to_owned();
                // Three invalid messages first: the sim must record them and carry on.
                out.push("this is not json".into());
                out.push(json!({"event": "media", "streamSid": "MZwrong", "media": {"payload": ""}}).to_string());
                out.push(json!({"event": "media", "streamSid": stream_sid, "media": {"payload": "%%%"}}).to_string());
                for p in tone_frames(1000) {
                    out.push(json!({"event": "media", "streamSid": stream_sid, "media": {"payload": p}}).to_string());
                }
                out.push(json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": "greeting"}}).to_string());
                srv.log().ws_out.push((Instant::now(), "greeting".into()));
            }
            Some("mark") if v["mark"]["name"] == "greeting" => {
                for p in tone_frames(2000) {
                    out.push(json!({"event": "media", "streamSid": stream_sid, "media": {"payload": p}}).to_string());
                }
                out.push(json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": "long"}}).to_string());
                srv.log().ws_out.push((Instant::now(), "long".into()));
                clear_at = Some(tokio::time::Instant::now() + Duration::from_millis(200));
            }
            _ => {}
        }
        for m in out {
            if socket.send(Message::Text(m.into())).await.is_err() {
                break;
            }
        }
    };
    srv.log().ws_end = Some(end.to_owned());
}

async fn sim() -> CarrierSim {
    CarrierSim::start(SimConfig::new(ACCOUNT, TOKEN)).await
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn rest_post(sim: &CarrierSim, path: &str, pairs: &[(&str, &str)], auth: (&str, &str)) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/2010-04-01/Accounts/{ACCOUNT}/{path}", sim.api_base()))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn rest_get(sim: &CarrierSim, path: &str) -> (u16, Value) {
    let resp =
        reqwest::Client::new().get(format!("{}/2010-04-01/Accounts/{ACCOUNT}/{path}", sim.api_base())).basic_auth(ACCOUNT, Some(TOKEN)).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn statuses(cbs: &[dialnexa_carrier_sim::Callback]) -> Vec<String> {
    cbs.iter().map(|c| c.call_status.clone()).collect()
}

#[tokio::test]
async fn inbound_stream_marks_clear_dtmf_and_stop() {
    let srv = start_server().await;
    let sim = sim().await;
    let status_url = format!("{}/status", srv.base);
    sim.set_number("+15550001000", &format!("{}/voice", srv.base), Some(&status_url));
    let script = Script::new(vec![Step::WaitForAgent { quiet_ms: 200 }, Step::Dtmf { digits: "12".into() }, Step::Hangup]);
    let sid = sim.call_in("+15557654321", "+15550001000", script).await.unwrap();
    assert!(sid.starts_with("CA") && sid.len() == 34);
    let call = sim.wait_ended(&sid, Duration::from_secs(15)).await.unwrap();

    assert_eq!(call.status, "completed");
    assert_eq!(call.statuses, ["queued", "initiated", "ringing", "in-progress", "completed"]);
    assert!(call.said.is_empty(), "the caller hung up: the verbs after <Connect> never ran");
    let hook = srv.log().hooks[0].clone();
    assert_eq!(hook.0, "/voice");
    assert!(hook.2, "webhook signature");
    assert_eq!(param(&hook.1, "CallStatus"), Some("ringing"));
    assert_eq!(param(&hook.1, "Direction"), Some("inbound"));
    assert_eq!(param(&hook.1, "ApiVersion"), Some("2010-04-01"));

    // Status callbacks: four events, in order, numbered, signed.
    let cbs = srv.hooks("/status");
    assert_eq!(cbs.iter().map(|p| param(p, "CallStatus").unwrap().to_owned()).collect::<Vec<_>>(), ["initiated", "ringing", "in-progress", "completed"]);
    assert_eq!(cbs.iter().map(|p| param(p, "SequenceNumber").unwrap().to_owned()).collect::<Vec<_>>(), ["0", "1", "2", "3"]);
    assert!(param(&cbs[3], "CallDuration").is_some());
    assert!(srv.log().hooks.iter().all(|h| h.2));
    assert_eq!(statuses(&call.callbacks), ["initiated", "ringing", "in-progress", "completed"]);
    assert!(call.callbacks.iter().all(|c| c.status == Some(200)));

    let log = srv.log();
    let msgs: Vec<&Value> = log.ws_in.iter().map(|(_, v)| v).collect();
    assert_eq!(msgs[0]["event"], "connected");
    assert_eq!(msgs[1]["event"], "start");
    assert_eq!(msgs[1]["sequenceNumber"], "1");
    assert_eq!(msgs[1]["start"]["customParameters"]["call_id"], "c1");
    assert_eq!(msgs[1]["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
    assert_eq!(msgs[2]["event"], "media");
    assert_eq!(msgs[2]["media"]["chunk"], "1");
    assert_eq!(msgs[2]["media"]["timestamp"], "0");
    assert_eq!(B64.decode(msgs[2]["media"]["payload"].as_str().unwrap()).unwrap().len(), 160);
    for (i, m) in msgs.iter().enumerate().skip(1) {
        assert_eq!(m["sequenceNumber"], (i).to_string(), "sequence numbers are consecutive strings");
    }
    let last = msgs.last().unwrap();
    assert_eq!(last["event"], "stop");
    assert_eq!(last["stop"]["callSid"], sid.as_str());
    let digits: Vec<&str> = msgs.iter().filter(|m| m["event"] == "dtmf").map(|m| m["dtmf"]["digit"].as_str().unwrap()).collect();
    assert_eq!(digits, ["1", "2"]);
    assert_eq!(msgs.iter().find(|m| m["event"] == "dtmf").unwrap()["dtmf"]["track"], "inbound_track");

    // The greeting mark comes back once its 1 s of audio has played; the long one at the clear.
    let when = |name: &str| log.ws_in.iter().find(|(_, m)| m["event"] == "mark" && m["mark"]["name"] == name).map(|(t, _)| *t).unwrap();
    let sent = |name: &str| log.ws_out.iter().find(|(_, n)| n == name).map(|(t, _)| *t).unwrap();
    let greet_delay = when("greeting") - sent("greeting");
    assert!(greet_delay >= Duration::from_millis(900) && greet_delay < Duration::from_millis(1500), "{greet_delay:?}");
    let clear_echo = when("long") - sent("clear");
    assert!(clear_echo < Duration::from_millis(100), "{clear_echo:?}");
    assert_eq!(log.ws_end.as_deref(), Some("close"));

    let s = call.stream.unwrap();
    assert_eq!(s.handshake_status, Some(101));
    assert_eq!(s.closed_by, "caller_stop");
    assert_eq!(s.custom_parameters.get("call_id").map(String::as_str), Some("c1"));
    assert_eq!(s.marks_received, ["greeting", "long"]);
    assert_eq!(s.marks_echoed, ["greeting", "long"]);
    assert_eq!(s.clears, 1);
    // The long reply followed the greeting without a gap: one burst of 1 s + ~200 ms.
    assert!((1100..=1450).contains(&s.played_ms_at_clear[0]), "{:?}", s.played_ms_at_clear);
    assert_eq!(s.agent_audio.len(), 3 * 8000);
    assert!(s.heard_audio.len() > 8000 && s.heard_audio.len() < 8000 + 8000 / 2, "{}", s.heard_audio.len());
    assert_eq!(s.bad_messages.len(), 3, "{:?}", s.bad_messages);
    assert_eq!(s.server_events.iter().filter(|e| e["event"] == "clear").count(), 1);
}

#[tokio::test]
async fn rest_create_fetch_update_and_errors() {
    let srv = start_server().await;
    let sim = sim().await;
    sim.on_dial("+15550002000", Callee::Answer { script: Script::new(vec![Step::Silence { ms: 5000 }]) });
    let url = format!("{}/quiet", srv.base);
    let (st, v) = rest_post(&sim, "Calls.json", &[("To", "+15550002000"), ("From", "+15550001000"), ("Url", &url)], (ACCOUNT, "wrong")).await;
    assert_eq!((st, v["code"].as_u64()), (401, Some(20003)));
    assert_eq!(v["message"], "Authenticate");
    let (st, v) = rest_post(&sim, "Calls.json", &[("To", "12345"), ("From", "+15550001000"), ("Url", &url)], (ACCOUNT, TOKEN)).await;
    assert_eq!((st, v["code"].as_u64()), (400, Some(21211)));
    let (st, v) = rest_post(&sim, "Calls.json", &[("To", "+15550002000"), ("From", "+15550001000")], (ACCOUNT, TOKEN)).await;
    assert_eq!((st, v["code"].as_u64()), (400, Some(21205)));
    let resp =
        reqwest::Client::new().get(format!("{}/2010-04-01/Accounts/ACother/Calls.json", sim.api_base())).basic_auth(ACCOUNT, Some(TOKEN)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // Idempotent create: the same token answers the same call.
    let idem = |token: &'static str| {
        let sim = sim.clone();
        let url = url.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", sim.api_base()))
                .basic_auth(ACCOUNT, Some(TOKEN))
                .header("I-Twilio-Idempotency-Token", token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("To", "+15550002000"), ("From", "+15550001000"), ("Url", &url)]))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201);
            resp.json::<Value>().await.unwrap()
        }
    };
    let a = idem("tok-1").await;
    let b = idem("tok-1").await;
    assert_eq!(a["sid"], b["sid"]);
    assert_eq!(a["status"], "queued");
    assert_eq!(a["direction"], "outbound-api");
    assert!(a["start_time"].is_null());
    assert_eq!(sim.calls().len(), 1);
    let sid = a["sid"].as_str().unwrap().to_owned();

    // Wait until it streams, then fetch and hang up.
    let t0 = Instant::now();
    while sim.call(&sid).unwrap().stream.is_none_or(|s| s.handshake_status.is_none()) && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, v) = rest_get(&sim, &format!("Calls/{sid}.json")).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("in-progress")));
    assert!(v["start_time"].as_str().unwrap().ends_with("+0000"));
    let hook = &srv.hooks("/quiet")[0];
    assert_eq!(param(hook, "CallStatus"), Some("in-progress"));
    assert_eq!(param(hook, "AnsweredBy"), None);
    let (st, v) = rest_post(&sim, &format!("Calls/{sid}.json"), &[("Status", "completed")], (ACCOUNT, TOKEN)).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("completed")));
    let call = sim.wait_ended(&sid, Duration::from_secs(5)).await.unwrap();
    let s = call.stream.unwrap();
    assert_eq!(s.closed_by, "server");
    assert!(s.rest_hangup);
    assert_eq!(srv.log().ws_in.last().unwrap().1["event"], "stop");
    assert!(call.said.is_empty());
    let (st, v) = rest_get(&sim, &format!("Calls/{sid}.json")).await;
    assert_eq!((st, v["status"].as_str(), v["duration"].is_string()), (200, Some("completed"), true));
    let (st, v) = rest_post(&sim, &format!("Calls/{sid}.json"), &[("Twiml", "<Response/>")], (ACCOUNT, TOKEN)).await;
    assert_eq!((st, v["code"].as_u64()), (400, Some(21220)));
    let (st, v) = rest_get(&sim, "Calls/CA00000000000000000000000000000000.json").await;
    assert_eq!((st, v["code"].as_u64()), (404, Some(20404)));

    let reqs = sim.rest_requests();
    assert!(!reqs[0].auth_ok && reqs[0].status == 401);
    assert!(reqs.iter().skip(1).all(|r| r.auth_ok));
    assert_eq!(reqs.iter().filter(|r| r.idempotency_token.as_deref() == Some("tok-1")).count(), 2);
}

async fn create(sim: &CarrierSim, to: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("To", to), ("From", "+15550001000")];
    pairs.extend_from_slice(extra);
    let (st, v) = rest_post(sim, "Calls.json", &pairs, (ACCOUNT, TOKEN)).await;
    assert_eq!(st, 201, "{v}");
    v["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn outbound_busy_no_answer_and_voicemail_with_message_end() {
    let srv = start_server().await;
    let sim = sim().await;
    sim.set_voicemail_max_record_ms(300);
    sim.on_dial("+15550003001", Callee::Busy);
    sim.on_dial("+15550003003", Callee::Voicemail { greeting: "Leave a message".into() });
    let cb = format!("{}/status", srv.base);
    let url = format!("{}/quiet", srv.base);
    let all = [("StatusCallbackEvent", "initiated ringing"), ("StatusCallbackEvent", "answered"), ("StatusCallbackEvent", "completed")];
    let mut common: Vec<(&str, &str)> = vec![("Url", &url), ("StatusCallback", &cb)];
    common.extend_from_slice(&all);

    let busy = create(&sim, "+15550003001", &common).await;
    let mut no_answer_params = common.clone();
    no_answer_params.push(("Timeout", "1"));
    let no_answer = create(&sim, "+15550003002", &no_answer_params).await;
    let mut vm_params = common.clone();
    vm_params.push(("MachineDetection", "DetectMessageEnd"));
    let vm = create(&sim, "+15550003003", &vm_params).await;

    let busy = sim.wait_ended(&busy, Duration::from_secs(5)).await.unwrap();
    assert_eq!(busy.statuses, ["queued", "initiated", "ringing", "busy"]);
    assert_eq!(statuses(&busy.callbacks), ["initiated", "ringing", "busy"]);
    assert!(busy.webhook_requests.is_empty());

    let t0 = Instant::now();
    let no_answer = sim.wait_ended(&no_answer, Duration::from_secs(5)).await.unwrap();
    assert_eq!(no_answer.statuses, ["queued", "initiated", "ringing", "no-answer"]);
    assert_eq!(statuses(&no_answer.callbacks), ["initiated", "ringing", "no-answer"]);
    assert!(t0.elapsed() < Duration::from_secs(2));

    let vm = sim.wait_ended(&vm, Duration::from_secs(10)).await.unwrap();
    assert_eq!(vm.answered_by.as_deref(), Some("machine_end_beep"));
    assert_eq!(vm.statuses, ["queued", "initiated", "ringing", "in-progress", "completed"]);
    let hook = &vm.webhook_requests[0];
    assert_eq!(param(&hook.1, "AnsweredBy"), Some("machine_end_beep"));
    let s = vm.stream.as_ref().unwrap();
    assert_eq!(s.closed_by, "caller_stop", "the machine stops recording after max_record_ms");
    assert_eq!(statuses(&vm.callbacks), ["initiated", "ringing", "in-progress", "completed"]);
    let seqs: Vec<&str> = vm.callbacks.iter().map(|c| param(&c.params, "SequenceNumber").unwrap()).collect();
    assert_eq!(seqs, ["0", "1", "2", "3"]);
    assert!(vm.said.is_empty(), "the machine hung up: the verbs after <Connect> never ran");
}

#[tokio::test]
async fn redirect_live_stream_into_dial_with_action() {
    let srv = start_server().await;
    let sim = sim().await;
    sim.set_number("+15550004000", &format!("{}/quiet", srv.base), None);
    sim.on_dial("+15550004001", Callee::Answer { script: Script::new(vec![Step::Say { text: "hello".into() }, Step::Hangup]) });
    sim.on_dial("+15550004002", Callee::Busy);
    let sid = sim.call_in("+15557654321", "+15550004000", Script::new(vec![Step::Silence { ms: 10_000 }])).await.unwrap();
    let t0 = Instant::now();
    while sim.call(&sid).unwrap().stream.is_none_or(|s| s.handshake_status.is_none()) && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let twiml = format!(r#"<Response><Dial action="{}/action" timeout="20"><Number>+15550004001</Number></Dial><Say>never</Say></Response>"#, srv.base);
    let (st, _) = rest_post(&sim, &format!("Calls/{sid}.json"), &[("Twiml", &twiml)], (ACCOUNT, TOKEN)).await;
    assert_eq!(st, 200);
    let call = sim.wait_ended(&sid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(call.status, "completed");
    let s = call.stream.as_ref().unwrap();
    assert_eq!(s.closed_by, "redirect");
    assert_eq!(srv.log().ws_in.last().unwrap().1["event"], "stop");
    assert_eq!(call.dials.len(), 1);
    assert_eq!(call.dials[0].numbers, ["+15550004001"]);
    assert_eq!(call.dials[0].dial_call_status, "completed");
    let leg_sid = call.dials[0].dial_call_sid.clone().unwrap();
    let leg = sim.call(&leg_sid).unwrap();
    assert_eq!(leg.direction, "outbound-dial");
    assert_eq!(leg.parent_call_sid.as_deref(), Some(sid.as_str()));
    assert_eq!(leg.status, "completed");
    let action = &srv.hooks("/action")[0];
    assert_eq!(param(action, "DialCallStatus"), Some("completed"));
    assert_eq!(param(action, "DialCallSid"), Some(leg_sid.as_str()));
    assert!(param(action, "DialCallDuration").is_some());
    assert_eq!(call.said, ["after dial"]);
    assert_eq!(call.twiml.len(), 3);

    // A busy transfer target: DialCallStatus busy, and the action's TwiML runs.
    let sid = sim.call_in("+15557654321", "+15550004000", Script::new(vec![Step::Silence { ms: 10_000 }])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let twiml = format!(r#"<Response><Dial action="{}/action"><Number>+15550004002</Number></Dial></Response>"#, srv.base);
    rest_post(&sim, &format!("Calls/{sid}.json"), &[("Twiml", &twiml)], (ACCOUNT, TOKEN)).await;
    let call = sim.wait_ended(&sid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(call.dials[0].dial_call_status, "busy");
    let action = srv.hooks("/action");
    assert_eq!(param(action.last().unwrap(), "DialCallStatus"), Some("busy"));
    assert_eq!(call.said, ["after dial"]);
}

#[tokio::test]
async fn drop_socket_runs_the_next_verbs_and_lost_callbacks() {
    let srv = start_server().await;
    let sim = sim().await;
    sim.set_number("+15550005000", &format!("{}/quiet", srv.base), Some(&format!("{}/status", srv.base)));
    let sid =
        sim.call_in("+15557654321", "+15550005000", Script::new(vec![Step::Burst { ms: 400 }, Step::Silence { ms: 200 }, Step::DropSocket])).await.unwrap();
    let call = sim.wait_ended(&sid, Duration::from_secs(10)).await.unwrap();
    assert_eq!(call.status, "completed");
    assert_eq!(call.stream.as_ref().unwrap().closed_by, "dropped");
    assert_eq!(call.said, ["after stream"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        let log = srv.log();
        assert!(log.ws_in.iter().all(|(_, m)| m["event"] != "stop"));
        assert_ne!(log.ws_end.as_deref(), Some("close"), "no close frame");
        assert!(log.ws_in.iter().filter(|(_, m)| m["event"] == "media").count() >= 20);
    }

    // The server looks down: the webhook is not delivered and the call fails.
    sim.set_callbacks_lost(true);
    let before = srv.log().hooks.len();
    let sid = sim.call_in("+15557654321", "+15550005000", Script::default()).await.unwrap();
    let call = sim.wait_ended(&sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(call.status, "failed");
    assert!(call.error.is_some());
    assert!(call.callbacks.iter().all(|c| !c.delivered));
    assert_eq!(srv.log().hooks.len(), before);
    sim.set_callbacks_lost(false);

    // An application error: the webhook answers 500.
    sim.set_number("+15550005001", &format!("{}/broken", srv.base), None);
    let sid = sim.call_in("+15557654321", "+15550005001", Script::default()).await.unwrap();
    let call = sim.wait_ended(&sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(call.status, "failed");
    assert!(call.error.unwrap().contains("application error"));
    assert_eq!(call.webhook_requests[0].2, 500);

    // The control API sees the same calls, without the audio arrays.
    let v: Value = reqwest::get(format!("{}/sim/calls/{sid}", sim.api_base())).await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "failed");
}

#[tokio::test]
async fn conference_with_a_rest_participant() {
    let srv = start_server().await;
    let sim = sim().await;
    sim.set_number("+15550006000", &format!("{}/conf", srv.base), None);
    sim.on_dial("+15550006001", Callee::Answer { script: Script::new(vec![Step::Say { text: "hi".into() }, Step::Hangup]) });
    let sid = sim.call_in("+15557654321", "+15550006000", Script::default()).await.unwrap();
    let t0 = Instant::now();
    let conf_sid = loop {
        let (_, v) = rest_get(&sim, "Conferences.json?FriendlyName=room1&Status=in-progress").await;
        if let Some(c) = v["conferences"].as_array().and_then(|a| a.first()) {
            break c["sid"].as_str().unwrap().to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(conf_sid.starts_with("CF"));
    let (st, v) = rest_post(
        &sim,
        &format!("Conferences/{conf_sid}/Participants.json"),
        &[("From", "+15550006000"), ("To", "+15550006001"), ("Label", "agent")],
        (ACCOUNT, TOKEN),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let leg = v["call_sid"].as_str().unwrap().to_owned();
    let leg_call = sim.wait_ended(&leg, Duration::from_secs(5)).await.unwrap();
    assert_eq!(leg_call.statuses, ["queued", "initiated", "ringing", "in-progress", "completed"]);
    assert_eq!(leg_call.conferences, ["room1"]);
    rest_post(&sim, &format!("Calls/{sid}.json"), &[("Status", "completed")], (ACCOUNT, TOKEN)).await;
    let call = sim.wait_ended(&sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(call.status, "completed");
    assert_eq!(call.dials[0].conference.as_deref(), Some("room1"));
}
