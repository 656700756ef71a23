//! The live turn loop with instant fake speech providers: turn-taking, barge-in, silence,
//! failures and limits. Caller audio is paced in real time, as a browser sends it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dialnexa_core::DisconnectionReason;
use dialnexa_core::agent::AgentConfig;
use dialnexa_core::evidence::Role;
use dialnexa_voice::live::{AudioCache, FlowAgent, Inbound, LiveConfig, LiveOutcome, Outbound, VadConfig, VadKind, run_call};
use dialnexa_voice::speech::{Asr, AudioChunk, AudioStream, SpeechError, Tts};
use tokio::sync::mpsc;

/// Hears each utterance as the next line of its script (or fails), and keeps how long each was.
struct ScriptAsr {
    lines: Mutex<VecDeque<Result<String, SpeechError>>>,
    heard: Mutex<Vec<usize>>,
}

#[async_trait]
impl Asr for ScriptAsr {
    fn id(&self) -> String {
        "fake-asr".into()
    }
    async fn transcribe(&self, samples: &[i16], _rate: u32, _lang: Option<&str>) -> Result<String, SpeechError> {
        assert!(!samples.is_empty());
        self.heard.lock().unwrap().push(samples.len());
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
        // The caller here is a tone, which the speech detectors rightly do not take for speech.
        vad_kind: VadKind::Energy,
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
    let asr = Arc::new(ScriptAsr { lines: Mutex::new(asr.into()), heard: Mutex::new(vec![]) });
    run_with(asr, tts_fails, cfg, caller).await
}

async fn run_with(
    asr: Arc<ScriptAsr>,
    tts_fails: bool,
    cfg: LiveConfig,
    caller: impl FnOnce(Caller) -> tokio::task::JoinHandle<()>,
) -> (LiveOutcome, Vec<Outbound>) {
    let (in_tx, in_rx) = mpsc::channel(256);
    let (out_tx, mut out_rx) = mpsc::channel(8192);
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

#[tokio::test]
async fn caller_audio_far_ahead_of_the_clock_ends_the_call_as_a_protocol_error() {
    // 10 s of audio as fast as the channel takes it (a client that does not pace its audio).
    let (o, out) = run(vec![], false, cfg(), |c| {
        tokio::spawn(async move {
            for _ in 0..500 {
                if c.tx.send(Inbound::Audio(vec![0i16; 320])).await.is_err() {
                    return;
                }
            }
            c.quiet(5000).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::ErrorProtocol), "{:?}", o.timeline);
    assert_eq!(DisconnectionReason::ErrorProtocol.as_str(), "error_protocol");
    let why = o.timeline.iter().find(|e| e.kind == "protocol_error").unwrap_or_else(|| panic!("no protocol_error: {:?}", o.timeline));
    assert!(why.detail.contains("ahead of real time") && why.detail.contains("2000 ms"), "{}", why.detail);
    // Stopped at the bound: about 2 s of audio was taken, not 10.
    assert!(o.caller_audio.len() <= 16 * 2_500, "{} samples recorded", o.caller_audio.len());
    assert!(o.duration_ms < 2_000, "{} ms", o.duration_ms);
    let ended = out.iter().find_map(|x| if let Outbound::Event(v) = x { (v["type"] == "call_ended").then(|| v["reason"].clone()) } else { None });
    assert_eq!(ended, Some(serde_json::json!("error_protocol")));

    // Audio at real-time pace, however long, stays within the bound; a burst that catches up
    // after a gap does too (the bound counts from the start of the call).
    let (o, _) = run(vec![], false, LiveConfig { silence_timeout_ms: 60_000, max_duration_ms: 3_000, ..cfg() }, |c| {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            for _ in 0..75 {
                let _ = c.tx.send(Inbound::Audio(vec![0i16; 320])).await;
            }
            c.quiet(5000).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::MaxDuration), "{:?}", o.timeline);

    // The transport reports a protocol violation: same ending, its words on the timeline.
    let (o, _) = run(vec![], false, cfg(), |c| {
        tokio::spawn(async move {
            c.quiet(200).await;
            let _ = c.tx.send(Inbound::ProtocolError("a 40000-byte audio frame (at most 32000)".into())).await;
        })
    })
    .await;
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::ErrorProtocol));
    assert!(o.timeline.iter().any(|e| e.kind == "protocol_error" && e.detail.contains("40000-byte")), "{:?}", o.timeline);
}

#[tokio::test]
async fn one_utterance_is_capped_and_the_turn_loop_goes_on() {
    let asr = Arc::new(ScriptAsr { lines: Mutex::new(vec![Ok("Ada".into()), Ok("part one".into()), Ok("part two".into())].into()), heard: Mutex::new(vec![]) });
    let cfg = LiveConfig { max_utterance_ms: 1_500, silence_timeout_ms: 60_000, ..cfg() };
    let (o, _) = run_with(asr.clone(), false, cfg, |c| {
        tokio::spawn(async move {
            c.quiet(1600).await;
            c.say(500).await;
            c.quiet(2500).await;
            // 2.2 s without a pause: the turn is ended at 1.5 s (pre-roll included).
            c.say(2200).await;
            c.quiet(5000).await;
        })
    })
    .await;
    let heard = asr.heard.lock().unwrap().clone();
    assert!(heard.iter().all(|n| *n <= 16 * 1_500), "an utterance over the bound went to ASR: {heard:?}");
    assert_eq!(heard[1], 16 * 1_500, "{heard:?}");
    assert!(o.timeline.iter().any(|e| e.kind == "forced_end_of_turn" && e.detail.contains("1.5 s")), "{:?}", o.timeline);
    // The loop went on: the cut turn was heard and answered, and the flow ran to its end.
    let callers: Vec<&str> = o.transcript.iter().filter(|t| t.role == Role::Caller).map(|t| t.text.as_str()).collect();
    assert_eq!(&callers[..2], &["Ada", "part one"], "{:?}", o.transcript);
    assert!(o.transcript.iter().any(|t| t.role == Role::Agent && t.text.starts_with("Got it")), "{:?}", o.transcript);
    assert_eq!(o.disconnection_reason, Some(DisconnectionReason::AgentHangup), "{:?}", o.timeline);
}

#[tokio::test]
async fn the_recording_is_written_to_files_as_the_call_goes() {
    let dir = std::env::temp_dir().join(format!("dialnexa-live-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = LiveConfig { record_to: Some(dir.clone()), ..cfg() };
    let probe = dir.join("caller.wav");
    let (sizes_tx, mut sizes_rx) = mpsc::unbounded_channel();
    let (o, _) = run(vec![Ok("This is Ada Lovelace".into()), Ok("Our checkout is down".into())], false, cfg, move |c| {
        tokio::spawn(async move {
            c.quiet(1600).await;
            c.say(600).await;
            c.quiet(2500).await;
            // Mid-call: most of what was said is on disk already.
            let _ = sizes_tx.send(std::fs::metadata(&probe).map(|m| m.len()).unwrap_or(0));
            c.say(500).await;
            c.quiet(4000).await;
        })
    })
    .await;
    let mid_call = sizes_rx.recv().await.unwrap();
    assert!(mid_call >= 44 + 2 * 16 * 3_000, "{mid_call} bytes on disk after ~4.7 s of audio");
    assert!(o.caller_audio.is_empty() && o.agent_audio.is_empty(), "the tracks are not held in memory");
    let tracks = o.recording.clone().expect("recorded to files").expect("the files were written");
    assert!((tracks.duration_ms() as f64 - o.duration_ms as f64).abs() < 500.0, "{} ms of tracks for {} ms", tracks.duration_ms(), o.duration_ms);
    let caller = dialnexa_voice::speech::parse_wav(&std::fs::read(&tracks.caller).unwrap()).unwrap();
    let agent = dialnexa_voice::speech::parse_wav(&std::fs::read(&tracks.agent).unwrap()).unwrap();
    assert_eq!((caller.samples.len() as u64, agent.samples.len() as u64), (tracks.samples, tracks.samples));
    assert!(caller.samples.iter().any(|s| *s != 0) && agent.samples.iter().any(|s| *s != 0));
    let (mut mixed, mut stereo) = (vec![], vec![]);
    dialnexa_voice::live::write_mixes(&tracks, &mut mixed, &mut stereo).unwrap();
    let mixed = dialnexa_voice::speech::parse_wav(&mixed).unwrap();
    let stereo = dialnexa_voice::speech::parse_wav(&stereo).unwrap();
    assert_eq!((mixed.channels, stereo.channels), (1, 2));
    assert_eq!(stereo.samples.len(), 2 * mixed.samples.len());
    for i in (0..mixed.samples.len()).step_by(97) {
        assert_eq!(mixed.samples[i], caller.samples[i].saturating_add(agent.samples[i]));
        assert_eq!((stereo.samples[2 * i], stereo.samples[2 * i + 1]), (caller.samples[i], agent.samples[i]));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
