//! A real browser: Debian's Chromium, headless, with a fake microphone playing the caller's
//! script, opens the web-call page and completes a call that lands in the call history with
//! its transcript. Needs `chromium` (the test command installs it) and the speech servers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dialnexa_testkit::TestApp;
use dialnexa_voice::speech;
use futures_util::StreamExt;
use serde_json::json;

const ASR: &str = "wyoming://127.0.0.1:10300";
const TTS: &str = "wyoming://127.0.0.1:10200";

async fn speak(text: &str) -> Vec<i16> {
    let tts = speech::tts_from_url(TTS, None, None).unwrap();
    let mut s = tts.synthesize(text, None).await.expect("piper answers (is scripts/speech-servers running?)");
    let mut out = vec![];
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        out.extend(if c.rate == 16_000 { c.samples } else { speech::resample(&c.samples, c.rate, 16_000) });
    }
    out
}

fn chromium() -> String {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(c).exists() {
            return c.to_owned();
        }
    }
    panic!("Debian's chromium is not installed: scripts/test installs it (apt-get install chromium)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_a_web_call_from_the_console_page() {
    let app = TestApp::builder()
        .config(|c| {
            c.asr = Some(ASR.into());
            c.tts = Some(TTS.into());
            c.silence_timeout_ms = 15_000;
        })
        .start()
        .await;
    let agent = json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "collect", "field": "caller_name", "field_type": "string", "prompt": "Hi, this is Acme support. Who am I speaking with?", "next": "issue" },
        { "id": "issue", "type": "ask", "text": "Thanks. What seems to be the problem today?", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Thank you, we will look into it. Goodbye." }
    ]}});
    let agent_id = app.published_agent("Browser desk", &agent).await;
    let w = app.post("/v1/calls/web", &json!({ "agent_id": agent_id })).await.json();
    let call_id = w["call_id"].as_str().unwrap().to_owned();

    // The caller's side as a WAV for the fake microphone: pauses leave room for the agent.
    let silence = |s: f64| vec![0i16; (s * 16_000.0) as usize];
    let mut audio = silence(5.0);
    audio.extend(speak("My name is Grace Hopper.").await);
    audio.extend(silence(6.0));
    audio.extend(speak("Our checkout page is showing errors for every customer.").await);
    audio.extend(silence(40.0));
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("caller.wav");
    std::fs::write(&wav, speech::wav::wav_bytes(&audio, 16_000, 1)).unwrap();

    let page = app.url(&format!("/console/web-call?call_id={call_id}&token={}&autostart=1", w["access_token"].as_str().unwrap()));
    let mut browser = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--use-file-for-fake-audio-capture={}", wav.display()))
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(&page)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut call = json!({});
    while Instant::now() < deadline {
        call = app.get(&format!("/v1/calls/{call_id}")).await.json();
        if !["registered", "ongoing"].contains(&call["status"].as_str().unwrap_or("")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = browser.kill();
    let _ = browser.wait();
    assert_eq!(call["status"], "ended", "the call did not end: {}", call["timeline"]);
    assert_eq!(call["disconnection_reason"], "agent_hangup", "{}", call["timeline"]);
    let caller: Vec<String> =
        call["transcript"].as_array().unwrap().iter().filter(|t| t["role"] == "caller").map(|t| t["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(caller.len(), 2, "{}", call["transcript"]);
    assert!(speech::wer::word_error_rate("My name is Grace Hopper.", &caller[0]) <= 0.34, "{caller:?}");
    assert!(caller[1].to_lowercase().contains("checkout") || caller[1].to_lowercase().contains("check out"), "{caller:?}");
    // It is in the call history like any other call.
    let history = app.get("/v1/calls?entry_point=web").await.json();
    assert!(history["calls"].as_array().unwrap().iter().any(|c| c["call_id"] == call_id.as_str()), "{history}");
    assert_eq!(call["recording"]["status"], "available");
}
