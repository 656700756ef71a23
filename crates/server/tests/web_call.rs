//! Web calls end to end over the WebSocket, against the real offline speech servers
//! (`scripts/speech-servers`: wyoming-faster-whisper on :10300, wyoming-piper on :10200).
//! The caller's audio is synthesized from a script and streamed in real time.

mod common;

use std::time::{Duration, Instant};

use dialnexa_testkit::TestApp;
use dialnexa_voice::speech;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const ASR: &str = "wyoming://127.0.0.1:10300";
const TTS: &str = "wyoming://127.0.0.1:10200";

async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| {
            c.asr = Some(ASR.into());
            c.tts = Some(TTS.into());
            c.silence_timeout_ms = 8_000;
        })
        .start()
        .await
}

fn agent() -> Value {
    json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "collect", "field": "caller_name", "field_type": "string", "prompt": "Hi, this is Acme support. Who am I speaking with?", "next": "issue" },
        { "id": "issue", "type": "ask", "text": "Thanks. What seems to be the problem today?", "next": "region" },
        { "id": "region", "type": "collect", "field": "region", "field_type": "string", "prompt": "Which region are you running in?", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Thank you, we will look into it right away. Goodbye." }
    ]}})
}

async fn synthesize(text: &str) -> Vec<i16> {
    let tts = speech::tts_from_url(TTS, None, None).unwrap();
    let mut stream = tts.synthesize(text, None).await.expect("piper answers (is scripts/speech-servers running?)");
    let mut out = vec![];
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        out.extend(if c.rate == 16_000 { c.samples } else { speech::resample(&c.samples, c.rate, 16_000) });
    }
    out
}

fn frame_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

struct Session {
    events: Vec<Value>,
    agent_audio_samples: usize,
}

/// Join a web call and speak `lines`, each after the agent's turn ends (or, with
/// `barge_after_ms`, that long into the agent's second turn); then wait for the end.
async fn talk(app: &TestApp, lines: &[&str], barge_after_ms: Option<u64>) -> (String, Session) {
    talk_to(app, &agent(), lines, barge_after_ms).await
}

async fn talk_to(app: &TestApp, config: &Value, lines: &[&str], barge_after_ms: Option<u64>) -> (String, Session) {
    let agent = app.published_agent("Voice desk", config).await;
    let r = app.post("/v1/calls/web", &json!({ "agent_id": agent })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let w = r.json();
    let call_id = w["call_id"].as_str().unwrap().to_owned();
    assert!(w["stream_url"].as_str().unwrap().starts_with("ws://"));
    let mut audio = vec![];
    for l in lines {
        audio.push(synthesize(l).await);
    }
    let (ws, _) = tokio_tungstenite::connect_async(w["stream_url"].as_str().unwrap()).await.expect("the stream opens");
    let (mut tx, mut rx) = ws.split();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        let mut samples = 0usize;
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Binary(b) => samples += b.len() / 2,
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let _ = ev_tx.send(v);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        samples
    });
    let silence = vec![0i16; 320];
    let mut events = vec![];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut next_line = 0usize;
    let mut agent_turns = 0usize;
    let mut agent_speaking_since: Option<Instant> = None;
    let mut agent_starts = 0usize;
    let mut pending: Vec<i16> = vec![];
    let mut wait_until = Instant::now();
    let mut ended = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < deadline && !ended {
        tick.tick().await;
        while let Ok(ev) = ev_rx.try_recv() {
            if ev["type"] == "agent_speaking" {
                agent_speaking_since = Some(Instant::now());
                agent_starts += 1;
            }
            if ev["type"] == "transcript" && ev["role"] == "agent" {
                agent_turns += 1;
                if barge_after_ms.is_none() && next_line < audio.len() && pending.is_empty() {
                    pending = audio[next_line].clone();
                    next_line += 1;
                    wait_until = Instant::now() + Duration::from_millis(400);
                }
            }
            if ev["type"] == "call_ended" {
                ended = true;
            }
            events.push(ev);
        }
        // Barge-in: the second line is spoken into the agent's second turn.
        if let (Some(after), Some(since)) = (barge_after_ms, agent_speaking_since) {
            if next_line == 0 && agent_turns >= 1 && pending.is_empty() {
                pending = audio[0].clone();
                next_line = 1;
                wait_until = Instant::now() + Duration::from_millis(400);
            } else if next_line == 1 && agent_starts >= 2 && pending.is_empty() && since.elapsed() >= Duration::from_millis(after) {
                pending = audio[1].clone();
                next_line = 2;
                wait_until = Instant::now();
            }
        }
        let frame: Vec<i16> =
            if Instant::now() >= wait_until && !pending.is_empty() { pending.drain(..pending.len().min(320)).collect() } else { silence.clone() };
        if tx.send(Message::Binary(frame_bytes(&frame).into())).await.is_err() {
            break;
        }
        if next_line >= audio.len() && pending.is_empty() && barge_after_ms.is_some() && agent_turns >= 4 {
            break;
        }
    }
    if !ended {
        let _ = tx.send(Message::Close(None)).await;
    }
    let samples = tokio::time::timeout(Duration::from_secs(10), reader).await.ok().and_then(|r| r.ok()).unwrap_or(0);
    // The call is stored and analysed.
    for _ in 0..100 {
        if app.get(&format!("/v1/calls/{call_id}")).await.json()["status"] != "ongoing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Ok(ev) = ev_rx.try_recv() {
        events.push(ev);
    }
    (call_id, Session { events, agent_audio_samples: samples })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_call_is_heard_answered_recorded_and_stored() {
    let app = app().await;
    let script = ["My name is Grace Hopper.", "Our payment page is showing errors for every customer.", "We run everything in Europe."];
    let (call_id, s) = talk(&app, &script, None).await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    assert_eq!((call["entry_point"].as_str(), call["status"].as_str()), (Some("web"), Some("ended")), "{call}");
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{}", call["timeline"]);
    // The caller's turns match the script (word error rate at most 20 %).
    let heard: Vec<&str> = call["transcript"].as_array().unwrap().iter().filter(|t| t["role"] == "caller").map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(heard.len(), script.len(), "{heard:?}");
    for (said, got) in script.iter().zip(&heard) {
        let wer = speech::wer::word_error_rate(said, got);
        assert!(wer <= 0.2, "WER {wer:.2}: said {said:?}, heard {got:?}");
    }
    // The agent reached the end of its flow.
    let timeline = call["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|e| e["kind"] == "node_entered" && e["detail"].as_str().unwrap().contains("'bye'")), "{timeline:?}");
    assert!(timeline.iter().filter(|e| e["kind"] == "turn_latency").count() >= 3, "{timeline:?}");
    assert!(call["extracted_fields"]["caller_name"]["value"].as_str().unwrap().contains("Grace"), "{}", call["extracted_fields"]);
    assert!(s.agent_audio_samples > 16_000, "the browser heard the agent");
    assert!(s.events.iter().any(|e| e["type"] == "transcript" && e["role"] == "caller"));
    // The recording is as long as the call.
    let rec = &call["recording"];
    assert_eq!(rec["status"], "available", "{rec}");
    let wav = app.send(app.client.get(app.url(&format!("/v1/calls/{call_id}/recording"))).bearer_auth(&app.key)).await;
    assert_eq!((wav.status, wav.header("content-type")), (200, Some("audio/wav")));
    let bytes = app.client.get(app.url(&format!("/v1/calls/{call_id}/recording"))).bearer_auth(&app.key).send().await.unwrap().bytes().await.unwrap();
    let parsed = speech::wav::parse_wav(&bytes).unwrap();
    let secs = parsed.samples.len() as f64 / 16_000.0;
    let call_secs = call["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!((secs - call_secs).abs() <= 0.5 + call_secs * 0.05, "recording {secs:.2} s, call {call_secs:.2} s");
    let part = app.client.get(app.url(&format!("/v1/calls/{call_id}/recording"))).bearer_auth(&app.key).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.headers()["content-range"].to_str().unwrap(), format!("bytes 0-99/{}", bytes.len()));
    let stereo =
        app.client.get(app.url(&format!("/v1/calls/{call_id}/recording?channels=2"))).bearer_auth(&app.key).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(speech::wav::parse_wav(&stereo).unwrap().channels, 2);
    // The audio cache says what it did; analysis runs on the call.
    assert!(call["audio_cache"]["misses"].as_u64().unwrap() >= 4);
    app.run_pending_work().await;
    assert_eq!(app.get(&format!("/v1/calls/{call_id}")).await.json()["analysis"]["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_cuts_the_agent_and_the_stored_text_shows_it() {
    let app = app().await;
    let (call_id, s) = talk(&app, &["I am Ada.", "Sorry to interrupt, the checkout is down."], Some(700)).await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    let cut = call["transcript"].as_array().unwrap().iter().find(|t| t["role"] == "agent" && t["text"].as_str().unwrap().ends_with('—'));
    let cut = cut.unwrap_or_else(|| panic!("no interrupted agent turn: {}", call["transcript"]));
    assert!(cut["text"].as_str().unwrap().len() < "Thanks. What seems to be the problem today? —".len(), "{cut}");
    assert!(call["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "barge_in"));
    assert!(s.events.iter().any(|e| e["type"] == "barge_in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_frames_and_ending_from_the_api() {
    let app = app().await;
    let agent = app.published_agent("Voice desk", &agent()).await;
    let w = app.post("/v1/calls/web", &json!({ "agent_id": agent })).await.json();
    let url = w["stream_url"].as_str().unwrap().to_owned();
    // An unknown token is 401.
    let bad = url.replace(w["access_token"].as_str().unwrap(), "wct_nope");
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // First connection works; a second with the same token is 409.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 409),
        other => panic!("expected 409, got {:?}", other.map(|_| ())),
    }
    // A frame that is not 16-bit PCM is refused with an error event; the call goes on.
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    let mut saw_error = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !saw_error {
        if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            saw_error = t.as_str().contains("\"error\"") && t.as_str().contains("even number of bytes");
        }
    }
    assert!(saw_error);
    // The API ends it.
    let call_id = w["call_id"].as_str().unwrap();
    let r = app.post(&format!("/v1/calls/{call_id}/end"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut reason = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "call_ended" {
                reason = v["reason"].as_str().map(str::to_owned);
            }
        }
    }
    assert_eq!(reason.as_deref(), Some("terminated_by_api"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    assert_eq!(call["disconnection_reason"], "terminated_by_api");
    assert_eq!(app.post(&format!("/v1/calls/{call_id}/end"), &json!({})).await.code(), "call_not_ongoing");
    // An expired token is 401.
    let quick = TestApp::builder()
        .config(|c| {
            c.asr = Some(ASR.into());
            c.tts = Some(TTS.into());
            c.web_token_ttl_secs = 0;
        })
        .start()
        .await;
    let agent = quick.published_agent("Voice desk", &self::agent()).await;
    let w = quick.post("/v1/calls/web", &json!({ "agent_id": agent })).await.json();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    match tokio_tungstenite::connect_async(w["stream_url"].as_str().unwrap()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // Without speech configured, web calls say so.
    let plain = TestApp::start(dialnexa_testkit::DbBackend::Sqlite).await;
    let agent = plain.published_agent("Voice desk", &self::agent()).await;
    let r = plain.post("/v1/calls/web", &json!({ "agent_id": agent })).await;
    assert_eq!((r.status, r.code()), (422, "speech_not_configured".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_agent_speaks_its_streamed_answer_and_ends_the_call_with_a_tool() {
    use dialnexa_testkit::fake_llm::{FakeLlm, Reply};
    let llm = FakeLlm::start().await;
    let url = llm.url.clone();
    let app = TestApp::builder()
        .config(move |c| {
            c.asr = Some(ASR.into());
            c.tts = Some(TTS.into());
            c.llm_url = Some(url);
            c.llm_model = "fake-model".into();
        })
        .start()
        .await;
    llm.push(Reply::chunked(&["I am sorry ", "to hear that. ", "Let me check ", "the status page for you."], std::time::Duration::from_millis(150)));
    llm.push(Reply::tool_call("end_call", json!({ "reason": "resolved" })));
    let config = json!({ "kind": "llm", "prompt": "You are Acme's support agent. Be brief.", "begin_message": "Hi, this is Acme support. How can I help?" });
    let (call_id, s) = talk_to(&app, &config, &["Our checkout page is showing errors for every customer.", "Thank you, that is all."], None).await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    let agent_lines: Vec<&str> = call["transcript"].as_array().unwrap().iter().filter(|t| t["role"] == "agent").map(|t| t["text"].as_str().unwrap()).collect();
    assert!(agent_lines.iter().any(|t| t.contains("sorry to hear that") && t.contains("status page")), "{agent_lines:?}");
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{}", call["timeline"]);
    let reqs = llm.requests();
    assert!(reqs[0]["stream"].as_bool().unwrap_or(false));
    assert!(reqs[0]["messages"].to_string().contains("page is showing errors"), "{}", reqs[0]["messages"]);
    assert!(s.agent_audio_samples > 0);
}
