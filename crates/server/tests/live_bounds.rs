//! The bounds of live web calls, end to end over the WebSocket: caller audio ahead of the wall
//! clock, the longest utterance, the node's limit on live calls, the WebSocket frame limit,
//! ending a call before the browser connects, and recordings that are written to disk as the
//! call goes and read back only as far as asked.
//!
//! Speech is a small OpenAI-compatible fake served by this file (instant, offline): its TTS
//! answers a tone as long as the text, its ASR answers script lines and keeps how long each
//! utterance it was sent was.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::post;
use dialnexa_testkit::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Default)]
struct Speech {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Samples of each utterance sent to ASR.
    heard: Arc<Mutex<Vec<usize>>>,
}

/// The samples in the WAV file inside a multipart upload.
fn wav_samples(body: &[u8]) -> usize {
    let at = body.windows(4).position(|w| w == b"RIFF").expect("a WAV in the upload");
    let h = &body[at..];
    (u32::from_le_bytes([h[40], h[41], h[42], h[43]]) / 2) as usize
}

async fn transcriptions(State(s): State<Speech>, body: axum::body::Bytes) -> impl IntoResponse {
    s.heard.lock().unwrap().push(wav_samples(&body));
    let text = s.lines.lock().unwrap().pop_front().unwrap_or_default();
    axum::Json(json!({ "text": text }))
}

/// 30 ms of tone per character, as a 16 kHz WAV.
async fn speech(body: axum::body::Bytes) -> impl IntoResponse {
    let v: Value = serde_json::from_slice(&body).unwrap();
    let n = v["input"].as_str().unwrap_or("").len() * 30 * 16;
    let samples: Vec<i16> = (0..n).map(|i| ((i as f64 * 0.05).sin() * 3000.0) as i16).collect();
    ([("content-type", "audio/wav")], dialnexa_voice::speech::wav_bytes(&samples, 16_000, 1))
}

async fn fake_speech(lines: &[&str]) -> (String, Speech) {
    let s = Speech { lines: Arc::new(Mutex::new(lines.iter().map(|l| l.to_string()).collect())), ..Default::default() };
    let app = Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/speech", post(speech))
        .layer(DefaultBodyLimit::disable())
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, s)
}

async fn app_with(lines: &[&str], tweak: impl FnOnce(&mut dialnexa_server::Config) + Send + 'static) -> (TestApp, Speech) {
    let (url, s) = fake_speech(lines).await;
    let app = TestApp::builder()
        .config(move |c| {
            c.asr = Some(url.clone());
            c.tts = Some(url);
            c.silence_timeout_ms = 30_000;
            // The callers here are tones, which the speech detectors rightly do not take for speech.
            c.vad = "energy".into();
            tweak(c);
        })
        .start()
        .await;
    (app, s)
}

fn agent() -> Value {
    json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "collect", "field": "caller_name", "field_type": "string", "prompt": "Hi, who is calling?", "next": "issue" },
        { "id": "issue", "type": "ask", "text": "Thanks. What is the problem?", "next": "region" },
        { "id": "region", "type": "collect", "field": "region", "field_type": "string", "prompt": "Which region?", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Thank you. Goodbye." }
    ]}})
}

/// A registered web call: (call_id, stream_url).
async fn web_call(app: &TestApp) -> (String, String) {
    let agent = app.published_agent("Voice desk", &agent()).await;
    let r = app.post("/v1/calls/web", &json!({ "agent_id": agent })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let w = r.json();
    (w["call_id"].as_str().unwrap().to_owned(), w["stream_url"].as_str().unwrap().to_owned())
}

fn pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn tone(n: usize, from: usize) -> Vec<i16> {
    (from..from + n).map(|i| ((i as f64 * 0.09).sin() * 6000.0) as i16).collect()
}

/// Read events until `call_ended`, or give up after `within`: its reason.
async fn call_ended<S>(ws: &mut S, within: Duration) -> Option<String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "call_ended" {
                    return v["reason"].as_str().map(str::to_owned);
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(_))) | Ok(None) => return None,
        }
    }
    None
}

/// The call once it is stored in a final state.
async fn stored(app: &TestApp, call_id: &str) -> Value {
    for _ in 0..200 {
        let c = app.get(&format!("/v1/calls/{call_id}")).await.json();
        if !matches!(c["status"].as_str(), Some("registered" | "ringing" | "ongoing")) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("call {call_id} did not end");
}

fn timeline_has(call: &Value, kind: &str, words: &str) -> bool {
    call["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == kind && e["detail"].as_str().unwrap_or("").contains(words))
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_audio_far_ahead_of_real_time_ends_the_call_as_a_protocol_error() {
    let (app, _) = app_with(&[], |_| {}).await;
    let (call_id, url) = web_call(&app).await;
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // A minute of audio as fast as the socket takes it, one second per frame.
    let (mut tx, mut rx) = ws.split();
    let frame = pcm(&vec![0i16; 16_000]);
    let sender = tokio::spawn(async move {
        for _ in 0..60 {
            if tx.send(Message::Binary(frame.clone().into())).await.is_err() {
                break;
            }
        }
    });
    assert_eq!(call_ended(&mut rx, Duration::from_secs(10)).await.as_deref(), Some("error_protocol"));
    sender.abort();
    let call = stored(&app, &call_id).await;
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("error"), Some("error_protocol")), "{call}");
    assert_eq!(call["disconnection_owner"], "caller");
    assert!(timeline_has(&call, "protocol_error", "ahead of real time"), "{}", call["timeline"]);
    // Cut off at the bound: the evidence holds about two seconds, not a minute.
    let ms = call["recording"]["duration_ms"].as_u64().unwrap();
    assert!(ms <= 4_000, "{ms} ms recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_utterance_goes_to_asr_at_most_max_utterance_ms_long() {
    let (app, speech) = app_with(&["Ada Lovelace", "the checkout is down", "Europe", "thanks"], |c| c.max_utterance_ms = 2_000).await;
    let (call_id, url) = web_call(&app).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Quiet for a second, then 5 s of speech without a pause, then quiet: at real-time pace.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..450usize {
        tick.tick().await;
        let frame = if (50..300).contains(&i) { tone(320, i * 320) } else { vec![0i16; 320] };
        if ws.send(Message::Binary(pcm(&frame).into())).await.is_err() {
            break;
        }
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(0), ws.next()).await {}
    }
    let _ = ws.send(Message::Text(json!({ "type": "hangup" }).to_string().into())).await;
    let call = stored(&app, &call_id).await;
    let heard = speech.heard.lock().unwrap().clone();
    assert!(heard.len() >= 3, "{heard:?}");
    assert!(heard.iter().all(|n| *n <= 2 * 16_000), "an utterance longer than 2 s went to ASR: {heard:?}");
    assert!(timeline_has(&call, "forced_end_of_turn", "2.0 s"), "{}", call["timeline"]);
    // The turn loop went on: the cut turns were heard and answered.
    let callers: Vec<&str> = call["transcript"].as_array().unwrap().iter().filter(|t| t["role"] == "caller").map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(&callers[..2], &["Ada Lovelace", "the checkout is down"], "{}", call["transcript"]);
    assert_eq!(call["extracted_fields"]["caller_name"]["value"], "Ada Lovelace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_live_calls_beyond_its_bound_and_says_when_to_retry() {
    let (app, _) = app_with(&[], |c| c.max_live_calls = 1).await;
    let (a, a_url) = web_call(&app).await;
    let (_b, b_url) = web_call(&app).await;
    let (mut ws_a, _) = tokio_tungstenite::connect_async(&a_url).await.unwrap();
    assert_eq!(app.state.live.count(), 1);
    // A new call is refused up front, with a code and a delay a client can act on.
    let agent = app.published_agent("Voice desk 2", &agent()).await;
    let r = app.post("/v1/calls/web", &json!({ "agent_id": agent })).await;
    assert_eq!((r.status, r.code().as_str()), (503, "too_many_live_calls"), "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["error"]["details"]["max_live_calls"], 1);
    // A registered call's browser is refused at the connect, and its token is not spent.
    match tokio_tungstenite::connect_async(&b_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 503);
            assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap_or(b"{}")).unwrap();
            assert_eq!(body["error"]["code"], "too_many_live_calls");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    // The first call ends; its place frees once its evidence is stored; the second joins.
    assert_eq!(app.post(&format!("/v1/calls/{a}/end"), &json!({})).await.status, 200);
    assert_eq!(call_ended(&mut ws_a, Duration::from_secs(5)).await.as_deref(), Some("terminated_by_api"));
    stored(&app, &a).await;
    for _ in 0..100 {
        if app.state.live.count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.state.live.count(), 0);
    let (mut ws_b, _) = tokio_tungstenite::connect_async(&b_url).await.expect("the same token joins now");
    let _ = ws_b.send(Message::Text(json!({ "type": "hangup" }).to_string().into())).await;
    assert_eq!(call_ended(&mut ws_b, Duration::from_secs(5)).await.as_deref(), Some("user_hangup"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_over_the_protocol_limit_are_refused_from_their_header() {
    let (app, _) = app_with(&[], |_| {}).await;
    let (call_id, url) = web_call(&app).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // A frame of exactly the limit is audio like any other.
    ws.send(Message::Binary(pcm(&vec![0i16; 16_000]).into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get(&format!("/v1/calls/{call_id}")).await.json()["status"], "ongoing");
    // The header of a 1 MiB binary frame and a little of its payload, then nothing: the server
    // refuses it from the header (it does not wait for, or buffer, the megabyte).
    let mut raw = vec![0x82u8, 0xFF];
    raw.extend_from_slice(&(1u64 << 20).to_be_bytes());
    raw.extend_from_slice(&[1, 2, 3, 4]);
    raw.extend_from_slice(&[0u8; 1000]);
    match ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(&raw).await.unwrap(),
        _ => unreachable!("plain ws://"),
    }
    let call = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = app.get(&format!("/v1/calls/{call_id}")).await.json();
            if c["status"] != "ongoing" || Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("error"), Some("error_protocol")), "{call}");
    assert!(timeline_has(&call, "protocol_error", "over 32000 bytes"), "{}", call["timeline"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_web_call_before_it_connects_revokes_its_token() {
    let (app, _) = app_with(&[], |_| {}).await;
    let (call_id, url) = web_call(&app).await;
    let r = app.post(&format!("/v1/calls/{call_id}/end"), &json!({})).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("not_connected")), "{}", r.text);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 401);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap_or(b"{}")).unwrap();
            assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
        }
        other => panic!("the revoked token still connects: {:?}", other.map(|_| ())),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("not_connected"), Some("terminated_by_api")), "{call}");
    assert!(timeline_has(&call, "call_ended", "token was revoked"), "{}", call["timeline"]);
    assert!(!call["timeline"].as_array().unwrap().iter().any(|e| e["detail"].as_str().unwrap_or("").contains("→ ongoing")));
    assert_eq!(app.post(&format!("/v1/calls/{call_id}/end"), &json!({})).await.code(), "call_not_ongoing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_written_as_the_call_goes_and_ranges_read_only_what_is_asked() {
    let (app, _) = app_with(&["Ada Lovelace"], |_| {}).await;
    let (call_id, url) = web_call(&app).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let staging = app.data_dir().join("blobs/staging").join(&call_id);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut mid_call = 0;
    for i in 0..200usize {
        tick.tick().await;
        let frame = if (60..110).contains(&i) { tone(320, i * 320) } else { vec![0i16; 320] };
        ws.send(Message::Binary(pcm(&frame).into())).await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(0), ws.next()).await {}
        if i == 180 {
            // The tracks are on disk while the call is live, not held until its end.
            mid_call = std::fs::metadata(staging.join("caller.wav")).map(|m| m.len()).unwrap_or(0);
        }
    }
    assert!(mid_call >= 44 + 2 * 16 * 2_000, "{mid_call} bytes of caller track on disk after 3.6 s");
    ws.send(Message::Text(json!({ "type": "hangup" }).to_string().into())).await.unwrap();
    let call = stored(&app, &call_id).await;
    assert_eq!(call["recording"]["status"], "available", "{}", call["recording"]);
    assert!(!staging.exists(), "the tracks are removed once the recording is stored");
    let get = |q: &str, range: Option<&str>| {
        let mut r = app.client.get(app.url(&format!("/v1/calls/{call_id}/recording{q}"))).bearer_auth(&app.key);
        if let Some(range) = range {
            r = r.header("range", range);
        }
        r.send()
    };
    let mixed = get("", None).await.unwrap().bytes().await.unwrap();
    let stereo = get("?channels=2", None).await.unwrap().bytes().await.unwrap();
    let mixed = dialnexa_voice::speech::parse_wav(&mixed).unwrap();
    let stereo = dialnexa_voice::speech::parse_wav(&stereo).unwrap();
    assert_eq!((mixed.channels, stereo.channels, stereo.samples.len()), (1, 2, 2 * mixed.samples.len()));
    let secs = mixed.samples.len() as f64 / 16_000.0;
    let call_secs = call["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!((secs - call_secs).abs() <= 0.5, "recording {secs:.2} s, call {call_secs:.2} s");
    assert_eq!(call["recording"]["duration_ms"].as_u64().unwrap(), mixed.samples.len() as u64 / 16);
    for i in 0..mixed.samples.len() {
        assert_eq!(mixed.samples[i], stereo.samples[2 * i].saturating_add(stereo.samples[2 * i + 1]), "sample {i}");
    }
    assert!(stereo.samples.iter().step_by(2).any(|s| *s != 0) && stereo.samples.iter().skip(1).step_by(2).any(|s| *s != 0), "both parties are heard");

    // Ranges: the mixed blob is made a sparse 512 MiB file; a range far into it answers at
    // once, reading only those bytes; the whole file streams through a small buffer.
    let d = app.store.get_call(&call_id.parse().unwrap()).await.unwrap();
    let blob = d.row.recording.blob.unwrap();
    let path = app.data_dir().join("blobs").join(&blob[..2]).join(format!("{blob}.wav"));
    let len: u64 = 512 << 20;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len).unwrap();
    let before = peak_rss_kib();
    let r = get("", Some(&format!("bytes={}-{}", len - 1000, len - 901))).await.unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes {}-{}/{len}", len - 1000, len - 901));
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    let r = get("", Some("bytes=0-43")).await.unwrap();
    assert_eq!(r.bytes().await.unwrap()[..4], *b"RIFF");
    let r = get("", Some(&format!("bytes={len}-"))).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-range"].to_str().unwrap().to_owned()), (416, format!("bytes */{len}")));
    let mut whole = get("", None).await.unwrap();
    assert_eq!(whole.headers()["content-length"].to_str().unwrap(), len.to_string());
    let mut got = 0u64;
    while let Some(chunk) = whole.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, len);
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(grew < 64 * 1024, "serving a 512 MiB recording raised peak memory by {} MiB", grew / 1024);
}
