//! Phone calls end to end: the carrier simulator (signed webhooks, Media Streams, the Calls
//! REST API, status callbacks) against the real router and the real offline speech servers
//! (`scripts/speech-servers`: wyoming-faster-whisper on :10300, wyoming-piper on :10200).

mod common;

use std::time::Duration;

use dialnexa_testkit::TestApp;
use dialnexa_testkit::fakes::carrier::{Callee, CarrierSim, Script, SimCall, SimConfig, Step, signature};
use dialnexa_testkit::fakes::webhook_receiver::FakeWebhookReceiver;
use dialnexa_voice::speech;
use serde_json::{Value, json};

const ASR: &str = "wyoming://127.0.0.1:10300";
const TTS: &str = "wyoming://127.0.0.1:10200";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "sim-auth-token-5f1c";
const OUR_NUMBER: &str = "+15550100001";
const CALLER: &str = "+14155550123";

struct Phone {
    app: TestApp,
    sim: CarrierSim,
}

async fn phone() -> Phone {
    phone_with(|_| {}).await
}

/// The simulator and a server that uses it, with more settings.
async fn phone_with(tweak: impl FnOnce(&mut dialnexa_server::Config) + Send + 'static) -> Phone {
    let tts = speech::tts_from_url(TTS, None, None).unwrap();
    let sim = CarrierSim::start(SimConfig::new(ACCOUNT, TOKEN).with_tts(tts)).await;
    let api = sim.api_base();
    let app = TestApp::builder()
        .config(move |c| {
            c.asr = Some(ASR.into());
            c.tts = Some(TTS.into());
            c.silence_timeout_ms = 8_000;
            c.twilio_account_sid = Some(ACCOUNT.into());
            c.twilio_auth_token = Some(TOKEN.into());
            c.twilio_api_base = api;
            c.ring_timeout_secs = 5;
            tweak(c);
        })
        .start()
        .await;
    sim.set_number(OUR_NUMBER, &app.url("/telephony/twilio/voice"), Some(&app.url("/telephony/twilio/status")));
    Phone { app, sim }
}

fn support_flow() -> Value {
    json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "collect", "field": "caller_name", "field_type": "string", "prompt": "Hi, this is Acme support. Who am I speaking with?", "next": "issue" },
        { "id": "issue", "type": "ask", "text": "Thanks. What seems to be the problem today?", "next": "region" },
        { "id": "region", "type": "collect", "field": "region", "field_type": "string", "prompt": "Which region are you running in?", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Thank you, we will look into it right away. Goodbye." }
    ]}})
}

impl Phone {
    /// An agent on our number, inbound and outbound.
    async fn number_with(&self, config: &Value) -> String {
        let agent = self.app.published_agent("Phone desk", config).await;
        let r = self.app.post("/v1/phone-numbers", &json!({ "phone_number": OUR_NUMBER, "inbound_agent_id": agent, "outbound_agent_id": agent })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        agent
    }

    /// The call DialNexa stored for a carrier call, once it has ended.
    async fn stored(&self, carrier_sid: &str) -> Value {
        for _ in 0..300 {
            let list = self.app.get("/v1/calls?limit=100").await.json();
            for c in list["calls"].as_array().unwrap() {
                let id = c["call_id"].as_str().unwrap();
                let d = self.app.get(&format!("/v1/calls/{id}")).await.json();
                if d["telephony"]["carrier_call_sid"] == carrier_sid && !matches!(d["status"].as_str(), Some("registered" | "ringing" | "ongoing")) {
                    return d;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no ended call for {carrier_sid}");
    }

    async fn wait(&self, sid: &str) -> SimCall {
        self.sim.wait_ended(sid, Duration::from_secs(90)).await.expect("the simulator knows the call")
    }

    async fn call_in(&self, script: Vec<Step>) -> (SimCall, Value) {
        let sid = self.sim.call_in(CALLER, OUR_NUMBER, Script::new(script)).await.expect("the call is placed");
        let sim_call = self.wait(&sid).await;
        (sim_call, self.stored(&sid).await)
    }

    /// Place an outbound call; wait for both sides to end.
    async fn call_out(&self, to: &str, body: Value) -> (SimCall, Value) {
        let mut body = body;
        body["from_number"] = json!(OUR_NUMBER);
        body["to_number"] = json!(to);
        let r = self.app.post("/v1/calls/outbound", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let out = r.json();
        assert_eq!(out["entry_point"], "outbound");
        let sid = out["telephony"]["carrier_call_sid"].as_str().expect("the carrier's call id").to_owned();
        let sim_call = self.wait(&sid).await;
        (sim_call, self.stored(&sid).await)
    }
}

/// What the carrier saw, for failure messages.
fn brief(c: &SimCall) -> String {
    let stream = c.stream.as_ref().map(|s| {
        format!(
            "stream {} handshake {:?} closed_by {} clears {} marks {}/{} bad {:?}",
            s.url,
            s.handshake_status,
            s.closed_by,
            s.clears,
            s.marks_echoed.len(),
            s.marks_received.len(),
            s.bad_messages
        )
    });
    format!("status {} {:?} error {:?} twiml {:?} {stream:?}", c.status, c.statuses, c.error, c.twiml)
}

fn say(text: &str) -> Step {
    Step::Say { text: text.into() }
}
fn wait_agent() -> Step {
    Step::WaitForAgent { quiet_ms: 900 }
}
fn kinds(call: &Value) -> Vec<String> {
    call["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}
fn timeline(call: &Value, kind: &str) -> Vec<String> {
    call["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).map(|e| e["detail"].as_str().unwrap().to_owned()).collect()
}
fn turns(call: &Value, role: &str) -> Vec<String> {
    call["transcript"].as_array().unwrap().iter().filter(|t| t["role"] == role).map(|t| t["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_is_answered_by_the_numbers_agent_with_its_whole_evidence() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    let hook = FakeWebhookReceiver::start().await;
    let r = p.app.post("/v1/integrations", &json!({ "kind": "webhook", "name": "ops", "config": { "url": hook.url(), "secret": hook.secret } })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let script = ["My name is Grace Hopper.", "Our payment page is showing errors for every customer.", "We run everything in Europe."];
    let (sim_call, call) = p.call_in(vec![wait_agent(), say(script[0]), wait_agent(), say(script[1]), wait_agent(), say(script[2]), wait_agent()]).await;
    assert_eq!(
        (call["entry_point"].as_str(), call["direction"].as_str(), call["status"].as_str()),
        (Some("inbound"), Some("inbound"), Some("ended")),
        "{call}"
    );
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{:?}", kinds(&call));
    assert_eq!((call["from_number"].as_str(), call["to_number"].as_str()), (Some(CALLER), Some(OUR_NUMBER)));
    assert!(call["route"]["explanation"].as_str().unwrap().contains("inbound agent"), "{}", call["route"]);
    assert_eq!(call["telephony"]["carrier_call_sid"], sim_call.sid.as_str());
    // The caller's words, through μ-law at 8 kHz, match the script.
    let heard = turns(&call, "caller");
    assert_eq!(heard.len(), script.len(), "{heard:?}");
    for (said, got) in script.iter().zip(&heard) {
        let wer = speech::wer::word_error_rate(said, got);
        assert!(wer <= 0.2, "WER {wer:.2}: said {said:?}, heard {got:?}");
    }
    assert!(call["extracted_fields"]["caller_name"]["value"].as_str().unwrap().contains("Grace"), "{}", call["extracted_fields"]);
    // The carrier heard the agent, paced with marks that it echoed.
    let stream = sim_call.stream.as_ref().expect("a media stream");
    assert!(stream.heard_audio.len() > 8_000 * 4, "the caller heard {} samples", stream.heard_audio.len());
    assert!(
        !stream.marks_received.is_empty() && stream.marks_echoed.len() >= stream.marks_received.len() - 1,
        "{} marks sent, {} echoed",
        stream.marks_received.len(),
        stream.marks_echoed.len()
    );
    assert!(stream.bad_messages.is_empty(), "{:?}", stream.bad_messages);
    // The agent hung up through the REST API, and the carrier's call completed.
    assert!(p.sim.rest_requests().iter().any(|r| r.method == "POST"
        && r.path.ends_with(&format!("/Calls/{}.json", sim_call.sid))
        && r.params.iter().any(|(k, v)| k == "Status" && v == "completed")));
    assert_eq!(sim_call.status, "completed");
    // Recording, analysis and handoffs as for any call.
    assert_eq!(call["recording"]["status"], "available", "{}", call["recording"]);
    let id = call["call_id"].as_str().unwrap();
    p.app.run_pending_work().await;
    let done = p.app.get(&format!("/v1/calls/{id}")).await.json();
    assert_eq!(done["analysis"]["status"], "done", "{}", done["analysis"]);
    assert!(done["summary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(done["handoffs"].as_array().unwrap().iter().any(|h| h["integration_kind"] == "webhook" && h["status"] == "sent"), "{}", done["handoffs"]);
    assert_eq!(hook.deliveries().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_inbound_calls_are_recorded_with_their_reason() {
    let p = phone().await;
    // A number DialNexa does not hold, and one with no inbound agent.
    p.sim.set_number("+15550100999", &p.app.url("/telephony/twilio/voice"), None);
    let sid = p.sim.call_in(CALLER, "+15550100999", Script::new(vec![wait_agent()])).await.unwrap();
    let sim_call = p.wait(&sid).await;
    assert!(sim_call.twiml.iter().any(|t| t.contains("<Reject")), "{:?}", sim_call.twiml);
    assert!(sim_call.stream.is_none());
    let call = p.stored(&sid).await;
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("not_connected"), Some("no_route")), "{call}");
    assert!(call["route"]["explanation"].as_str().unwrap().contains("not a DialNexa phone number"), "{}", call["route"]);
    assert_eq!(call["route"]["refused"], "phone_number_not_found");

    let agent = p.app.published_agent("Outbound only", &support_flow()).await;
    assert_eq!(p.app.post("/v1/phone-numbers", &json!({ "phone_number": OUR_NUMBER, "outbound_agent_id": agent })).await.status, 201);
    let sid = p.sim.call_in(CALLER, OUR_NUMBER, Script::new(vec![wait_agent()])).await.unwrap();
    p.wait(&sid).await;
    let call = p.stored(&sid).await;
    assert_eq!(call["disconnection_reason"], "no_route");
    assert!(call["route"]["explanation"].as_str().unwrap().contains("no inbound agent"), "{}", call["route"]);
    assert_eq!(call["route"]["refused"], "no_inbound_agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_streams_refuse_what_the_carrier_did_not_sign_or_grant() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    let url = p.app.url("/telephony/twilio/voice");
    let params: Vec<(String, String)> = [
        ("CallSid", "CA00000000000000000000000000000001"),
        ("AccountSid", ACCOUNT),
        ("From", CALLER),
        ("To", OUR_NUMBER),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let form = |p: &[(String, String)]| p.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B"))).collect::<Vec<_>>().join("&");
    let post = |sig: Option<String>, body: String, url: String| {
        let mut r = p.app.client.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
        if let Some(s) = sig {
            r = r.header("X-Twilio-Signature", s);
        }
        r
    };
    // Unsigned, signed with another token, or signed over other parameters: 403, nothing stored.
    assert_eq!(p.app.send(post(None, form(&params), url.clone())).await.status, 403);
    assert_eq!(p.app.send(post(Some(signature("other-token", &url, &params)), form(&params), url.clone())).await.status, 403);
    let mut changed = params.clone();
    changed[3].1 = "+15550100002".into();
    assert_eq!(p.app.send(post(Some(signature(TOKEN, &url, &params)), form(&changed), url.clone())).await.status, 403);
    assert!(p.app.get("/v1/calls").await.json()["calls"].as_array().unwrap().is_empty());
    // Signed: answered with a stream whose URL carries a single-use token.
    let r = p.app.send(post(Some(signature(TOKEN, &url, &params)), form(&params), url.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<Connect><Stream url=\"ws://"), "{}", r.text);
    let stream_url = r.text.split("url=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    assert!(stream_url.contains("token=stk_"), "{stream_url}");
    let bad = format!("{}?token=stk_unknown", stream_url.split('?').next().unwrap());
    let refused = tokio_tungstenite::connect_async(bad.as_str()).await;
    assert!(matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref resp)) if resp.status() == 401), "{refused:?}");
    // The call id alone opens nothing.
    let bare = stream_url.split('?').next().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(bare.as_str()).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    let call_id = p.app.get("/v1/calls").await.json()["calls"][0]["call_id"].as_str().unwrap().to_owned();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(json!({ "event": "connected" }).to_string().into())).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({ "event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": { "streamSid": "MZ1", "callSid": "CA00000000000000000000000000000001", "customParameters": { "call_id": call_id } } }).to_string().into(),
    ))
    .await
    .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("the server answers");
    assert!(matches!(closed, Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(ref f)))) if u16::from(f.code) == 1008), "{closed:?}");
    // The real token opens the stream once.
    let (ws, _) = tokio_tungstenite::connect_async(stream_url.as_str()).await.expect("the token opens the stream");
    drop(ws);
    let again = tokio_tungstenite::connect_async(stream_url.as_str()).await;
    assert!(matches!(again, Err(tokio_tungstenite::tungstenite::Error::Http(ref resp)) if resp.status() == 409), "{again:?}");
    // A status callback for a call DialNexa does not know.
    let status_url = p.app.url("/telephony/twilio/status");
    let mut unknown = params.clone();
    unknown[0].1 = "CA99999999999999999999999999999999".into();
    unknown[4].1 = "completed".into();
    let r = p.app.send(post(Some(signature(TOKEN, &status_url, &unknown)), form(&unknown), status_url.clone())).await;
    assert_eq!((r.status, r.code()), (404, "not_found".to_owned()), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_follow_the_carrier_busy_voicemail_and_answered() {
    let p = phone().await;
    let mut flow = support_flow();
    flow["flow"]["nodes"][0]["prompt"] = json!("Hi {{customer_name}}, this is Acme support calling back. Who am I speaking with?");
    flow["variables"] = json!({ "customer_name": "there" });
    flow["voicemail"] = json!({ "action": "leave_message", "message": "Hi, this is Acme support about your ticket. Please call us back. Goodbye." });
    p.number_with(&flow).await;
    // Busy.
    p.sim.on_dial("+14155550101", Callee::Busy);
    let (sim_call, call) = p.call_out("+14155550101", json!({})).await;
    assert_eq!(sim_call.status, "busy");
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("not_connected"), Some("busy")), "{:?}", kinds(&call));
    assert!(kinds(&call).contains(&"carrier_call_created".to_owned()));
    // No answer.
    p.sim.on_dial("+14155550102", Callee::NoAnswer);
    let (_, call) = p.call_out("+14155550102", json!({})).await;
    assert_eq!(call["disconnection_reason"], "no_answer", "{:?}", kinds(&call));
    // Voicemail: the policy leaves its message after the beep.
    p.sim.on_dial("+14155550103", Callee::Voicemail { greeting: "You have reached Sam. Please leave a message after the tone.".into() });
    let (sim_call, call) = p.call_out("+14155550103", json!({})).await;
    assert_eq!(sim_call.answered_by.as_deref(), Some("machine_end_beep"));
    assert_eq!(call["disconnection_reason"], "voicemail_reached", "{:?}", kinds(&call));
    assert_eq!(call["telephony"]["answered_by"], "machine", "{}", call["telephony"]);
    let said = turns(&call, "agent");
    assert!(said.iter().any(|t| t.contains("Please call us back")), "{said:?}");
    let left = sim_call.stream.as_ref().unwrap();
    assert!(left.heard_audio.len() > 8_000, "the machine recorded {} samples", left.heard_audio.len());
    // Answered by a person: the agent talks, with the request's variables.
    let person = Script::new(vec![
        wait_agent(),
        say("This is Alan Turing."),
        wait_agent(),
        say("The export button does nothing."),
        wait_agent(),
        say("In Asia."),
        wait_agent(),
    ]);
    p.sim.on_dial("+14155550104", Callee::Answer { script: person });
    let (sim_call, call) = p.call_out("+14155550104", json!({ "variables": { "customer_name": "Alan" } })).await;
    assert_eq!(sim_call.answered_by.as_deref(), Some("human"));
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("ended"), Some("agent_hangup")), "{:?}", kinds(&call));
    assert_eq!(call["telephony"]["answered_by"], "human");
    assert!(call["telephony"]["answered_at"].is_string() && call["telephony"]["ringing_at"].is_string(), "{}", call["telephony"]);
    assert!(turns(&call, "agent")[0].starts_with("Hi Alan,"), "{:?}", turns(&call, "agent"));
    assert_eq!(turns(&call, "caller").len(), 3, "{:?}", turns(&call, "caller"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_policy_of_hang_up_ends_the_call_without_a_word() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    p.sim.on_dial("+14155550105", Callee::Voicemail { greeting: "Leave a message.".into() });
    let (sim_call, call) = p.call_out("+14155550105", json!({})).await;
    assert_eq!(call["disconnection_reason"], "voicemail_reached", "{:?}", kinds(&call));
    assert!(sim_call.stream.is_none(), "no audio was connected");
    assert!(timeline(&call, "voicemail")[0].contains("hang_up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_digits_branch_the_flow_and_are_evidence() {
    let p = phone().await;
    p.number_with(&json!({ "kind": "flow", "flow": { "start": "menu", "nodes": [
        { "id": "menu", "type": "ask", "text": "Press 1 for sales, or 2 for support.", "next": "route" },
        { "id": "route", "type": "branch", "on": "digits", "cases": [ { "digits": "1", "next": "sales" }, { "digits": "2", "next": "support" } ], "default": "sales" },
        { "id": "sales", "type": "end", "text": "Sales it is. Goodbye." },
        { "id": "support", "type": "end", "text": "Support it is. Goodbye." }
    ]}}))
    .await;
    let (_, call) = p.call_in(vec![wait_agent(), Step::Dtmf { digits: "2".into() }, wait_agent()]).await;
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{:?}", kinds(&call));
    assert_eq!(turns(&call, "caller"), vec!["[keypad] 2".to_owned()]);
    assert!(turns(&call, "agent").last().unwrap().starts_with("Support it is"), "{:?}", turns(&call, "agent"));
    assert!(timeline(&call, "dtmf").iter().any(|d| d.contains("pressed 2")));
    assert!(timeline(&call, "branch_taken").iter().any(|d| d.contains("pressed 2")), "{:?}", timeline(&call, "branch_taken"));
}

fn transfer_flow(to: &str) -> Value {
    json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "ask", "text": "Hi, what can I do for you?", "next": "xfer" },
        { "id": "xfer", "type": "transfer", "text": "Let me put you through to a specialist.", "to": to }
    ]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_transfer_hands_the_call_over_and_records_how_it_went() {
    let p = phone().await;
    p.number_with(&transfer_flow("+14155550188")).await;
    p.sim.on_dial("+14155550188", Callee::Answer { script: Script::new(vec![Step::Silence { ms: 1500 }, Step::Hangup]) });
    let (sim_call, call) = p.call_in(vec![wait_agent(), say("I need to talk to a person."), wait_agent(), Step::Silence { ms: 4000 }]).await;
    assert_eq!(call["disconnection_reason"], "transfer", "{:?}", kinds(&call));
    assert!(sim_call.dials.iter().any(|d| d.numbers == vec!["+14155550188".to_owned()]), "{:?}", sim_call.dials);
    // The dial's outcome arrives after the agent left: it is written onto the call.
    let id = call["call_id"].as_str().unwrap();
    let mut transfer = Value::Null;
    for _ in 0..100 {
        transfer = p.app.get(&format!("/v1/calls/{id}")).await.json()["transfer"].clone();
        if transfer["status"] != "dialing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (transfer["to"].as_str(), transfer["kind"].as_str(), transfer["status"].as_str()),
        (Some("+14155550188"), Some("cold"), Some("connected")),
        "{transfer}"
    );

    // Nobody answers: recorded as failed, the caller hears why.
    let q = phone().await;
    q.number_with(&transfer_flow("+14155550189")).await;
    q.sim.on_dial("+14155550189", Callee::NoAnswer);
    let (sim_call, call) = q.call_in(vec![wait_agent(), say("I need to talk to a person."), wait_agent(), Step::Silence { ms: 6000 }]).await;
    let id = call["call_id"].as_str().unwrap();
    let mut transfer = Value::Null;
    for _ in 0..150 {
        transfer = q.app.get(&format!("/v1/calls/{id}")).await.json()["transfer"].clone();
        if transfer["status"] != "dialing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((transfer["status"].as_str(), transfer["dial_status"].as_str()), (Some("failed"), Some("no-answer")), "{transfer}");
    let sim_call = q.sim.call(&sim_call.sid).unwrap();
    assert!(sim_call.twiml.iter().any(|t| t.contains("nobody could take your call")), "{:?}", sim_call.twiml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barge_in_stores_the_agent_turn_as_far_as_the_caller_heard_it() {
    let p = phone().await;
    p.number_with(&json!({ "kind": "flow", "flow": { "start": "long", "nodes": [
        { "id": "long", "type": "ask", "text": "Thank you for calling Acme support. Before we start, please note that our offices are closed on public holidays, that calls are recorded for quality, and that you can find most answers in our help center at any time of day.", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Understood. Goodbye." }
    ]}}))
    .await;
    let (sim_call, call) = p.call_in(vec![Step::WaitAgentSpeaking { ms: 2500 }, say("Sorry, I just need my invoice."), wait_agent()]).await;
    let stream = sim_call.stream.as_ref().unwrap();
    assert!(stream.clears >= 1, "the agent's queued audio was cleared at the carrier: {} {:?}", brief(&sim_call), kinds(&call));
    let first = &call["transcript"][0];
    assert_eq!(first["role"], "agent");
    let text = first["text"].as_str().unwrap();
    assert!(text.ends_with('—'), "the stored turn is marked cut off: {text}");
    assert!(text.len() < 120, "the stored turn is what was heard, not what was generated: {text}");
    // It ends where the caller heard it stop, by the carrier's own count (everything it played,
    // less the goodbye after), within a mark's precision.
    let last = call["transcript"].as_array().unwrap().iter().rev().find(|t| t["role"] == "agent").unwrap().clone();
    let goodbye_ms = (last["end_ms"].as_u64().unwrap() - last["start_ms"].as_u64().unwrap()) as i64;
    let heard_ms = (stream.heard_audio.len() / 8) as i64 - goodbye_ms;
    let stored_ms = (first["end_ms"].as_u64().unwrap() - first["start_ms"].as_u64().unwrap()) as i64;
    assert!((stored_ms - heard_ms).abs() <= 400, "stored {stored_ms} ms, heard {heard_ms} ms (played at the clear: {:?})", stream.played_ms_at_clear);
    assert!(kinds(&call).contains(&"barge_in".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_drops_ends_the_call_with_its_reason() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    let (_, call) = p.call_in(vec![wait_agent(), say("My name is Ada."), Step::Silence { ms: 300 }, Step::DropSocket]).await;
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("error"), Some("error_media_dropped")), "{:?}", kinds(&call));
    assert!(timeline(&call, "media_lost")[0].contains("without a stop"), "{:?}", timeline(&call, "media_lost"));
    assert_eq!(call["recording"]["status"], "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_faster_than_real_time_is_a_protocol_error() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    let (_, call) = p.call_in(vec![Step::Burst { ms: 6000 }, wait_agent()]).await;
    assert_eq!(call["disconnection_reason"], "error_protocol", "{:?}", kinds(&call));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_status_callback_never_came_is_reconciled_with_the_carrier() {
    let p = phone().await;
    p.number_with(&support_flow()).await;
    p.sim.set_callbacks_lost(true);
    p.sim.on_dial("+14155550106", Callee::Busy);
    let r = p.app.post("/v1/calls/outbound", &json!({ "from_number": OUR_NUMBER, "to_number": "+14155550106" })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["call_id"].as_str().unwrap().to_owned();
    let sid = r.json()["telephony"]["carrier_call_sid"].as_str().unwrap().to_owned();
    assert_eq!(p.wait(&sid).await.status, "busy");
    let before = p.app.get(&format!("/v1/calls/{id}")).await.json();
    assert_eq!(before["status"], "registered", "no callback came: {:?}", kinds(&before));
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let done = dialnexa_server::telephony::reconcile::run(&p.app.state, later).await.unwrap();
    assert_eq!((done.checked, done.closed), (1, 1), "{done:?}");
    let call = p.app.get(&format!("/v1/calls/{id}")).await.json();
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("not_connected"), Some("busy")), "{:?}", kinds(&call));
    assert!(call["timeline"].as_array().unwrap().iter().any(|e| e["detail"].as_str().unwrap().contains("reconciliation")), "{:?}", call["timeline"]);
    // A second pass finds nothing left open.
    assert_eq!(dialnexa_server::telephony::reconcile::run(&p.app.state, later).await.unwrap().checked, 0);
}

fn warm_flow(to: &str) -> Value {
    json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "ask", "text": "Hi, what can I do for you?", "next": "xfer" },
        { "id": "xfer", "type": "transfer", "text": "Please hold while I get a specialist on the line.", "to": to, "warm": true, "on_fail": "sorry" },
        { "id": "sorry", "type": "end", "text": "Nobody is free right now, so we will call you back within the hour. Goodbye." }
    ]}})
}

async fn settled_transfer(app: &TestApp, id: &str) -> Value {
    for _ in 0..150 {
        let t = app.get(&format!("/v1/calls/{id}")).await.json()["transfer"].clone();
        if !t.is_null() && t["status"] != "dialing" {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_transfer_briefs_the_target_before_the_agent_leaves() {
    let p = phone().await;
    p.number_with(&warm_flow("+14155550177")).await;
    p.sim.on_dial("+14155550177", Callee::Answer { script: Script::new(vec![Step::Silence { ms: 4000 }, Step::Hangup]) });
    let script = Script::new(vec![wait_agent(), say("The checkout page has been down since this morning."), wait_agent(), Step::Silence { ms: 5000 }]);
    let sid = p.sim.call_in(CALLER, OUR_NUMBER, script).await.unwrap();
    // The caller stays in the conference with the target; DialNexa's call ends when the agent leaves.
    let call = p.stored(&sid).await;
    let sim_call = p.sim.call(&sid).unwrap();
    assert_eq!(call["disconnection_reason"], "transfer", "{:?}", kinds(&call));
    let t = settled_transfer(&p.app, call["call_id"].as_str().unwrap()).await;
    assert_eq!((t["kind"].as_str(), t["status"].as_str(), t["to"].as_str()), (Some("warm"), Some("connected"), Some("+14155550177")), "{t}");
    let briefing = t["briefing"].as_str().unwrap();
    assert!(briefing.to_lowercase().contains("checkout"), "the target is told what the call is about: {briefing}");
    // The target heard the briefing first, then met the caller in the conference.
    let target = p.sim.calls().into_iter().find(|c| c.to == "+14155550177").expect("the target was dialed");
    assert!(target.twiml[0].contains("<Say>") && target.twiml[0].contains("checkout"), "{:?}", target.twiml);
    assert!(target.twiml.iter().any(|d| d.contains("<Conference")), "{:?}", target.twiml);
    assert!(sim_call.twiml.iter().any(|d| d.contains("<Conference")), "the caller was moved into the conference: {}", brief(&sim_call));
    let order = kinds(&call);
    let started = order.iter().position(|k| k == "transfer_started").unwrap();
    let joined = order.iter().position(|k| k == "transfer_connected").unwrap();
    assert!(started < joined, "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_transfer_nobody_answers_gives_the_caller_back_to_the_agent() {
    let p = phone().await;
    p.number_with(&warm_flow("+14155550178")).await;
    p.sim.on_dial("+14155550178", Callee::NoAnswer);
    let (sim_call, call) = p.call_in(vec![wait_agent(), say("I would like to speak to someone."), wait_agent(), wait_agent()]).await;
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{:?}", kinds(&call));
    let t = &call["transfer"];
    assert_eq!((t["kind"].as_str(), t["status"].as_str(), t["dial_status"].as_str()), (Some("warm"), Some("failed"), Some("no-answer")), "{t}");
    assert!(timeline(&call, "transfer_failed")[0].contains("did not answer"), "{:?}", timeline(&call, "transfer_failed"));
    // The agent said so, and the caller heard it on the same stream.
    assert!(turns(&call, "agent").last().unwrap().contains("Nobody is free right now"), "{:?}", turns(&call, "agent"));
    assert!(!sim_call.twiml.iter().any(|d| d.contains("<Conference")), "{}", brief(&sim_call));
}

/// A number's inbound hook: answers from `answer` after `delay_ms`, and keeps what it was sent.
async fn hook_server(answer: Value, delay_ms: u64) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let answer = answer.clone();
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_hook_may_choose_the_agent_and_variables_within_its_timeout() {
    let app = phone_with(|c| c.inbound_hook_timeout_ms = 500).await.app;
    let own = app.published_agent("Front desk", &support_flow()).await;
    let vip = app.published_agent("VIP desk", &support_flow()).await;
    let (fast, seen) = hook_server(json!({ "agent_id": vip, "agent_version": 1, "variables": { "customer_name": "Ada", "tier": "gold" } }), 0).await;
    let r = app.post("/v1/phone-numbers", &json!({ "phone_number": OUR_NUMBER, "inbound_agent_id": own, "inbound_hook_url": fast })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["inbound_hook_url"], fast.as_str());
    let url = app.url("/telephony/twilio/voice");
    let ring = |sid: &str| -> Vec<(String, String)> {
        [("CallSid", sid), ("AccountSid", ACCOUNT), ("From", CALLER), ("To", OUR_NUMBER), ("CallStatus", "ringing"), ("Direction", "inbound")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let send = |params: Vec<(String, String)>| {
        let body = params.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B"))).collect::<Vec<_>>().join("&");
        app.client
            .post(url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature(TOKEN, &url, &params))
            .body(body)
    };
    let stored = |sid: &'static str| {
        let app = &app;
        async move {
            let calls = app.get("/v1/calls").await.json();
            // Newest first: the call just placed.
            let id = calls["calls"][0]["call_id"].as_str().unwrap().to_owned();
            let d = app.get(&format!("/v1/calls/{id}")).await.json();
            assert_eq!(d["telephony"]["carrier_call_sid"], sid);
            d
        }
    };
    // The hook picks the VIP desk and gives variables; the explanation says so.
    assert_eq!(app.send(send(ring("CA00000000000000000000000000000011"))).await.status, 200);
    let call = stored("CA00000000000000000000000000000011").await;
    assert_eq!(call["agent_id"], vip.as_str(), "{}", call["route"]);
    let why = call["route"]["explanation"].as_str().unwrap();
    assert!(why.contains("inbound hook chose agent 'VIP desk' version 1") && why.contains("customer_name, tier"), "{why}");
    assert_eq!(call["metadata"]["variables"]["customer_name"], "Ada");
    assert_eq!(seen.lock().unwrap()[0]["from_number"], CALLER);
    // A hook slower than its timeout: the number's own agent, and the reason.
    let (slow, _) = hook_server(json!({ "agent_id": vip }), 2_000).await;
    assert_eq!(
        app.send(
            app.client
                .patch(app.url(&format!("/v1/phone-numbers/{}", OUR_NUMBER.replace('+', "%2B"))))
                .bearer_auth(&app.key)
                .json(&json!({ "inbound_hook_url": slow }))
        )
        .await
        .status,
        200
    );
    let started = std::time::Instant::now();
    assert_eq!(app.send(send(ring("CA00000000000000000000000000000012"))).await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(1_500), "the webhook waited {:?}", started.elapsed());
    let call = stored("CA00000000000000000000000000000012").await;
    assert_eq!(call["agent_id"], own.as_str());
    assert!(call["route"]["explanation"].as_str().unwrap().contains("did not answer within 500 ms, so the number's own agent answered"), "{}", call["route"]);
    // An answer naming a version that is not published is not used.
    let (bad, _) = hook_server(json!({ "agent_id": vip, "agent_version": 7 }), 0).await;
    assert_eq!(
        app.send(
            app.client
                .patch(app.url(&format!("/v1/phone-numbers/{}", OUR_NUMBER.replace('+', "%2B"))))
                .bearer_auth(&app.key)
                .json(&json!({ "inbound_hook_url": bad }))
        )
        .await
        .status,
        200
    );
    assert_eq!(app.send(send(ring("CA00000000000000000000000000000013"))).await.status, 200);
    let call = stored("CA00000000000000000000000000000013").await;
    assert_eq!(call["agent_id"], own.as_str());
    assert!(call["route"]["explanation"].as_str().unwrap().contains("version 7 of agent 'VIP desk', which is not published"), "{}", call["route"]);
    // A hook URL that is not http(s) is refused at save.
    let r = app
        .send(
            app.client
                .patch(app.url(&format!("/v1/phone-numbers/{}", OUR_NUMBER.replace('+', "%2B"))))
                .bearer_auth(&app.key)
                .json(&json!({ "inbound_hook_url": "ftp://x" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed".to_owned()), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_agent_warm_transfer_that_nobody_answers_is_handed_back_to_the_model() {
    use dialnexa_testkit::fake_llm::{FakeLlm, Reply};
    let llm = FakeLlm::start().await;
    let url = llm.url.clone();
    let p = phone_with(move |c| {
        c.llm_url = Some(url);
        c.llm_model = "fake-model".into();
    })
    .await;
    p.number_with(&json!({ "kind": "llm", "prompt": "You are Acme's support agent.", "begin_message": "Hi, this is Acme support. How can I help?",
        "transfer_numbers": ["+14155550179"] }))
        .await;
    p.sim.on_dial("+14155550179", Callee::NoAnswer);
    llm.push(Reply::tool_call("transfer_call", json!({ "to": "+14155550179", "warm": true, "reason": "asked for a person" })));
    llm.push(Reply::chunked(&["Please hold while I get someone."], Duration::from_millis(10)));
    llm.push(Reply::chunked(&["I could not reach anyone, so a specialist will call you back today."], Duration::from_millis(10)));
    llm.push(Reply::tool_call("end_call", json!({ "reason": "callback promised" })));
    let (_, call) = p.call_in(vec![wait_agent(), say("I want to talk to a person."), wait_agent(), wait_agent(), say("Okay, thanks."), wait_agent()]).await;
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{:?}", kinds(&call));
    let t = &call["transfer"];
    assert_eq!((t["kind"].as_str(), t["status"].as_str(), t["dial_status"].as_str()), (Some("warm"), Some("failed"), Some("no-answer")), "{t}");
    // The model was told, and said so to the caller.
    assert!(llm.requests().iter().any(|r| r["messages"].to_string().contains("The warm transfer did not go through")), "the model was told");
    assert!(turns(&call, "agent").iter().any(|t| t.contains("could not reach anyone")), "{:?}", turns(&call, "agent"));
}
