//! The live turn loop with instant fake speech providers: turn-taking, barge-in, silence,
//! failures and limits. Caller audio is paced in real time, as a browser sends it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dialnexa_core::DisconnectionReason;
use dialnexa_core::agent::AgentConfig;
use dialnexa_core::evidence::Role;
use dialnexa_voice::live::{AudioCache, FlowAgent, Inbound, LiveConfig, LiveOutcome, Outbound, VadConfig, run_call};
use dialnexa_voice::speech::{Asr, AudioChunk, AudioStream, SpeechError, Tts};
use tokio::sync::mpsc;

/// Hears each utterance as the next line of its script (or fails).
struct ScriptAsr {
    lines: Mutex<VecDeque<Result<String, SpeechError>>>,
}

#[async_trait]
impl Asr for ScriptAsr {
    fn id(&self) -> String {
        "fake-asr".into()
    }
    async fn transcribe(&self, samples: &[i16], _rate: u32, _lang: Option<&str>) -> Result<String, SpeechError> {
        assert!(!samples.is_empty());
        self.lines.lock().unwrap().pop_front().unwrap_or(Ok(String::new()))
    }
}

/// Speaks 12 ms of tone per character, at once.
struct ToneTts {
    fail: bool,
}

#[async_trait]
impl Tts for ToneTts {
    fn id(&self) -> String {
        "fake-tts".into()
    }
    fn default_voice(&self) -> Option<String> {
        None
    }
    async fn synthesize(&self, text: &str, _voice: Option<&str>) -> Result<AudioStream, SpeechError> {
        if self.fail {
            return Err(SpeechError::Unavailable("connection refused".into()));
        }
        let n = text.len() * 12 * 16;
        let samples: Vec<i16> = (0..n).map(|i| ((i as f64 * 0.05).sin() * 2000.0) as i16).collect();
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(AudioChunk { samples, rate: 16_000 })])))
    }
}

fn flow() -> FlowAgent {
    let cfg = serde_json::json!({ "kind": "flow", "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "collect", "field": "caller_name", "field_type": "string", "prompt": "Hi, who is calling?", "next": "issue" },
        { "id": "issue", "type": "ask", "text": "Thanks {{caller_name}}. What is going on today, in as much detail as you can?", "next": "bye" },
        { "id": "bye", "type": "end", "text": "Got it, goodbye." }
    ]}});
    let AgentConfig::Flow(f) = AgentConfig::parse(&cfg).unwrap() else { unreachable!() };
    FlowAgent::new(Arc::new(f), BTreeMap::new()).unwrap()
}

fn cfg() -> LiveConfig {
    LiveConfig {
        vad: VadConfig { min_rms: 300.0, onset_ms: 60, end_of_turn_ms: 300 },
        silence_timeout_ms: 3000,
        max_duration_ms: 60_000,
        ..LiveConfig::default()
    }
}

/// The caller's side: speak (loud tone) or stay quiet, in 20 ms frames at real-time pace.
struct Caller {
    tx: mpsc::Sender<Inbound>,
}

impl Caller {
    async fn frames(&self, ms: u64, amp: f64) {
        for i in 0..ms / 20 {
            let f: Vec<i16> = (0..320).map(|j| (((i * 320 + j) as f64 * 0.09).sin() * amp) as i16).collect();
            if self.tx.send(Inbound::Audio(f)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn say(&self, ms: u64) {
        self.frames(ms, 6000.0).await;
    }
    async fn quiet(&self, ms: u64) {
        self.frames(ms, 0.0).await;
    }
}

async fn run(
    asr: Vec<Result<String, SpeechError>>,
    tts_fails: bool,
    cfg: LiveConfig,
    caller: impl FnOnce(Caller) -> tokio::task::JoinHandle<()>,
) -> (LiveOutcome, Vec<Outbound>) {
    let (in_tx, in_rx) = mpsc::channel(256);
    let (out_tx, mut out_rx) = mpsc::channel(8192);
    let asr = Arc::new(ScriptAsr { lines: Mutex::new(asr.into()) });
    let tts = Arc::new(ToneTts { fail: tts_fails });
    let call = tokio::spawn(run_call(Box::new(flow()), asr, tts, AudioCache::new(1 << 20), in_rx, out_tx, cfg));
    let driver = caller(Caller { tx: in_tx });
    let outcome = tokio::time::timeout(Duration::from_secs(30), call).await.expect("the call ends").unwrap();
    driver.abort();
    let mut out = vec![];
    while let Ok(o) = out_rx.try_recv() {
        out.push(o);
    }
    (outcome, out)
}

#[tokio::test]
async fn a_conversation_takes_turns_and_records_everything() {
    let (o, out) = run(vec![Ok("This is Ada Lovelace".into()), Ok("Our checkout is down".into())], false, cfg(), |c| {
        tokio::spawn(async move {
            c.quiet(1600).await;
            c.say(600).await;
            c.quiet(2500).await;
            c.say(500).await;
            c.quiet(4000).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::AgentHangup), "{o:?}");
    let roles: Vec<Role> = o.transcript.iter().map(|t| t.role).collect();
    assert_eq!(roles, vec![Role::Agent, Role::Caller, Role::Agent, Role::Caller, Role::Agent], "{:?}", o.transcript);
    assert_eq!(o.transcript[2].text, "Thanks Ada Lovelace. What is going on today, in as much detail as you can?");
    assert_eq!(o.fields["caller_name"].value, "Ada Lovelace");
    assert_eq!(o.fields["caller_name"].span.turn, 1);
    for w in o.transcript.windows(2) {
        assert!(w[1].start_ms >= w[0].start_ms, "{:?}", o.transcript);
    }
    assert_eq!(o.turn_latencies_ms.len(), 2);
    assert!(o.turn_latencies_ms.iter().all(|l| *l < 1000), "{:?}", o.turn_latencies_ms);
    assert_eq!(o.timeline.iter().filter(|e| e.kind == "turn_latency").count(), 2);
    let secs = o.caller_audio.len() as f64 / 16_000.0;
    assert!((secs * 1000.0 - o.duration_ms as f64).abs() < 500.0, "{secs} s of audio for {} ms", o.duration_ms);
    assert!(o.agent_audio.iter().any(|s| *s != 0) && o.caller_audio.iter().any(|s| *s != 0));
    assert_eq!(o.cache_misses, 3);
    let events: Vec<String> = out.iter().filter_map(|x| if let Outbound::Event(v) = x { v["type"].as_str().map(str::to_owned) } else { None }).collect();
    for k in ["call_started", "agent_speaking", "transcript", "caller_speaking", "call_ended"] {
        assert!(events.iter().any(|e| e == k), "{k} missing from {events:?}");
    }
    assert!(out.iter().any(|x| matches!(x, Outbound::Audio(f) if f.len() == 320)));
}

#[tokio::test]
async fn barge_in_cuts_the_agent_and_keeps_what_was_said() {
    let (o, _) = run(vec![Ok("Ada".into()), Ok("wait stop".into()), Ok("the checkout".into())], false, cfg(), |c| {
        tokio::spawn(async move {
            c.quiet(1600).await;
            c.say(500).await;
            // The agent answers ~0.35 s after the end of turn and talks for ~0.8 s:
            // interrupt it early.
            c.quiet(450).await;
            c.say(700).await;
            c.quiet(6000).await;
        })
    })
    .await;
    let cut = o.transcript.iter().find(|t| t.role == Role::Agent && t.text.ends_with('—')).unwrap_or_else(|| panic!("no interrupted turn: {:?}", o.transcript));
    assert!(cut.text.starts_with("Thanks Ada."), "{}", cut.text);
    assert!(cut.text.len() < "Thanks Ada. What is going on today, in as much detail as you can? —".len(), "{}", cut.text);
    assert!(o.timeline.iter().any(|e| e.kind == "barge_in"), "{:?}", o.timeline);
}

#[tokio::test]
async fn a_caller_who_never_speaks_is_reprompted_once_then_hung_up_on() {
    let (o, _) = run(vec![], false, cfg(), |c| tokio::spawn(async move { c.quiet(10_000).await })).await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::SilenceTimeout));
    assert_eq!(o.timeline.iter().filter(|e| e.kind == "reprompt").count(), 1);
    assert!(o.transcript.iter().any(|t| t.text == "Are you still there?"));
}

#[tokio::test]
async fn a_speech_server_that_fails_ends_the_call_and_keeps_the_evidence() {
    let (o, _) = run(vec![Err(SpeechError::Unavailable("connection refused".into()))], false, cfg(), |c| {
        tokio::spawn(async move {
            c.quiet(1600).await;
            c.say(500).await;
            c.quiet(3000).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::ErrorAsr));
    assert!(o.error.as_deref().unwrap().contains("connection refused"));
    assert_eq!(o.transcript.len(), 1, "the greeting is kept");
    let (o, _) = run(vec![], true, cfg(), |c| tokio::spawn(async move { c.quiet(2000).await })).await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::ErrorTts));
}

#[tokio::test]
async fn hangup_and_maximum_duration() {
    let (o, _) = run(vec![], false, cfg(), |c| {
        tokio::spawn(async move {
            c.quiet(400).await;
            let _ = c.tx.send(Inbound::Hangup).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::UserHangup));
    let short = LiveConfig { max_duration_ms: 700, silence_timeout_ms: 60_000, ..cfg() };
    let (o, _) = run(vec![], false, short, |c| tokio::spawn(async move { c.quiet(3000).await })).await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::MaxDuration));
}
