//! A live call over audio: the turn loop.
//!
//! Caller audio (16 kHz mono PCM) comes in as frames; voice activity detection finds where
//! the caller's turns begin and end; each finished turn is transcribed and given to the
//! agent; the agent's sentences are synthesized (through the audio cache) and played out at
//! real-time pace, so a caller who starts talking over the agent (barge-in) stops it: queued
//! audio is dropped and the agent's turn is stored as far as it was spoken. A silence timeout
//! reprompts once, then hangs up; the maximum duration ends the call. Every turn's latency
//! (the caller's end of speech to the agent's first audio) goes on the timeline.

pub mod agent;
pub mod cache;
pub mod recording;
pub mod vad;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialnexa_core::DisconnectionReason;
use dialnexa_core::evidence::{ExtractedField, Role, Span, TranscriptTurn};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use agent::{AgentEvent, FlowAgent, LiveAgent, LlmAgent, TRANSFER_FAILED_LINE};
pub use cache::AudioCache;
pub use recording::{RecordedTracks, write_mixes};
pub use vad::{Vad, VadConfig, VadEvent, VadKind};

use crate::speech::{Asr, CALL_RATE, SpeechError, Tts};
use crate::{FlowTimelineEvent, TransferInfo};

/// What the caller's side sends into a call.
#[derive(Debug)]
pub enum Inbound {
    Audio(Vec<i16>),
    /// The caller hung up (closed the socket).
    Hangup,
    /// The API ended the call.
    Terminate,
    /// The caller's side broke the media protocol (what it did): the call ends `error_protocol`.
    ProtocolError(String),
    /// The caller pressed a keypad key (DTMF).
    Dtmf(char),
    /// A mark sent with [`Outbound::Mark`] came back: the audio before it has played.
    Mark(String),
    /// The media path broke off (the carrier's socket dropped without a stop): `error_media_dropped`.
    MediaLost(String),
    /// How a warm transfer went: the target joined (the call ends `transfer`), or not (why).
    TransferResult {
        connected: bool,
        detail: String,
    },
}

/// What the call sends to the caller's side.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Audio(Vec<i16>),
    Event(Value),
    /// With `LiveConfig::marks`: echo this name once the audio sent before it has played.
    Mark(String),
    /// With `LiveConfig::marks`: drop the audio sent but not played yet (barge-in).
    Clear,
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub vad: VadConfig,
    /// Quiet this long after the agent finishes: reprompt once, then hang up.
    pub silence_timeout_ms: u64,
    pub max_duration_ms: u64,
    pub reprompt: String,
    pub language: Option<String>,
    pub voice: Option<String>,
    /// Caller speech this long over the agent stops the agent.
    pub barge_in_ms: u64,
    /// Caller audio more than this far ahead of the wall clock (counted from the start of the
    /// call) ends the call (`error_protocol`). 0: no bound.
    pub audio_ahead_ms: u64,
    /// The longest caller utterance: past it the turn is ended there (a forced end of turn)
    /// and transcribed; the caller's further speech is the next utterance. 0: no bound.
    pub max_utterance_ms: u64,
    /// Write the recording's two tracks to files in this directory as the call goes
    /// (`LiveOutcome::recording`); without it they are kept in memory
    /// (`LiveOutcome::caller_audio`, `agent_audio`).
    pub record_to: Option<PathBuf>,
    /// Agent audio is sent up to this far ahead of real time (the far side buffers it and
    /// plays it smoothly). 0: one frame per 20 ms, as it plays.
    pub playout_lead_ms: u64,
    /// The far side echoes marks ([`Outbound::Mark`]) as the audio before them plays: the
    /// agent's stored turn then ends where the caller heard it, and a barge-in sends
    /// [`Outbound::Clear`].
    pub marks: bool,
    /// Keypad keys pressed within this long of each other are one answer (`#` ends it at once).
    pub dtmf_interdigit_ms: u64,
    /// The transport can carry out warm transfers (phone calls); without it a warm transfer
    /// ends the call like a cold one.
    pub warm_transfers: bool,
    /// A warm transfer with no outcome after this long has failed.
    pub warm_transfer_timeout_ms: u64,
    /// Which voice activity detector listens to the caller (the cascade by default).
    pub vad_kind: VadKind,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            vad: VadConfig::default(),
            silence_timeout_ms: 10_000,
            max_duration_ms: 30 * 60 * 1000,
            reprompt: "Are you still there?".into(),
            language: Some("en".into()),
            voice: None,
            barge_in_ms: 200,
            audio_ahead_ms: 2_000,
            max_utterance_ms: 30_000,
            record_to: None,
            playout_lead_ms: 0,
            marks: false,
            dtmf_interdigit_ms: 1_500,
            warm_transfers: false,
            warm_transfer_timeout_ms: 90_000,
            vad_kind: VadKind::Cascade,
        }
    }
}

/// Everything a live call produced, for its evidence.
#[derive(Debug, Clone, Default)]
pub struct LiveOutcome {
    pub transcript: Vec<TranscriptTurn>,
    pub fields: BTreeMap<String, ExtractedField>,
    pub timeline: Vec<FlowTimelineEvent>,
    pub disconnection_reason: Option<DisconnectionReason>,
    pub transfer: Option<TransferInfo>,
    pub duration_ms: u64,
    /// Both parties on one clock, 16 kHz (in memory: without `LiveConfig::record_to`).
    pub caller_audio: Vec<i16>,
    pub agent_audio: Vec<i16>,
    /// With `LiveConfig::record_to`: the two track files, or why they could not be written.
    pub recording: Option<Result<RecordedTracks, String>>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Caller's end of speech → first agent audio, per agent turn that answered the caller.
    pub turn_latencies_ms: Vec<u64>,
    /// Per answered turn: from detecting the end of the caller's turn to sending the agent's
    /// first audio, in µs (with instant speech providers, the platform's own overhead).
    pub overhead_us: Vec<u64>,
    pub error: Option<String>,
}

const FRAME: usize = vad::FRAME;
const PRE_ROLL: usize = 16 * 300;

/// A sentence being synthesized: its audio arrives over `rx`.
struct Speech {
    rx: mpsc::Receiver<Result<Vec<i16>, SpeechError>>,
    done: bool,
    samples: usize,
}

struct AgentTurn {
    text: String,
    /// Marks name their turn, so that a late echo of an earlier turn counts for nothing.
    seq: u64,
    /// Played at the far side, as its echoed marks say (with `LiveConfig::marks`).
    heard_samples: usize,
    spoken_samples: usize,
    total_samples: usize,
    started_ms: Option<u64>,
    ended_ms: u64,
    answering: Option<u64>,
}

struct Engine {
    /// Synthesis tasks ping this when audio arrives, so the first frame goes out at once.
    ready: mpsc::Sender<()>,
    /// When the end of the caller's last turn was detected (for the platform overhead).
    answer_detected: Option<Instant>,
    cfg: LiveConfig,
    asr: Arc<dyn Asr>,
    tts: Arc<dyn Tts>,
    cache: AudioCache,
    out: mpsc::Sender<Outbound>,
    start: Instant,
    o: LiveOutcome,
    rec: recording::Recorder,
    queue: VecDeque<i16>,
    speeches: VecDeque<Speech>,
    turn: Option<AgentTurn>,
    ending: Option<DisconnectionReason>,
    /// When the agent audio sent so far will have played out (ms from the start).
    play_clock: u64,
    turn_seq: u64,
    /// The last mark sent and not echoed yet.
    mark_pending: Option<String>,
    frames_since_mark: u32,
    /// A warm transfer in progress: since when the caller is held.
    holding_since: Option<u64>,
}

/// Agent audio between two marks (with `LiveConfig::marks`): the precision of "what was heard".
const MARK_EVERY_FRAMES: u32 = 5;

fn new_turn(seq: u64, answering: Option<u64>) -> AgentTurn {
    AgentTurn { text: String::new(), seq, heard_samples: 0, spoken_samples: 0, total_samples: 0, started_ms: None, ended_ms: 0, answering }
}

fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Cut `text` to about the share of it that was spoken, on a word boundary.
pub fn spoken_part(text: &str, spoken: usize, total: usize) -> String {
    if total == 0 || spoken >= total {
        return text.to_owned();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = ((words.len() as f64) * (spoken as f64 / total as f64)).floor() as usize;
    words[..n.min(words.len())].join(" ")
}

impl Engine {
    fn now(&self) -> u64 {
        ms_since(self.start)
    }

    fn event(&mut self, kind: &str, detail: String) {
        let at = self.now();
        self.o.timeline.push(FlowTimelineEvent { offset_ms: at, kind: kind.into(), detail });
    }

    async fn send(&self, v: Value) {
        let _ = self.out.send(Outbound::Event(v)).await;
    }

    /// Start synthesizing a sentence (from the cache when it was said before).
    fn say(&mut self, text: String) {
        let (tx, rx) = mpsc::channel(64);
        let key = AudioCache::key(&self.tts.id(), self.cfg.voice.as_deref(), &text);
        if let Some(hit) = self.cache.get(&key) {
            self.o.cache_hits += 1;
            let _ = tx.try_send(Ok(hit.as_ref().clone()));
            let _ = self.ready.try_send(());
        } else {
            self.o.cache_misses += 1;
            let tts = self.tts.clone();
            let cache = self.cache.clone();
            let voice = self.cfg.voice.clone();
            let sentence = text.clone();
            let ready = self.ready.clone();
            tokio::spawn(async move {
                let mut all = vec![];
                match tts.synthesize(&sentence, voice.as_deref()).await {
                    Ok(mut stream) => {
                        while let Some(item) = stream.next().await {
                            match item {
                                Ok(chunk) => {
                                    let samples =
                                        if chunk.rate == CALL_RATE { chunk.samples } else { crate::speech::resample(&chunk.samples, chunk.rate, CALL_RATE) };
                                    all.extend_from_slice(&samples);
                                    if tx.send(Ok(samples)).await.is_err() {
                                        return; // barge-in: nobody listens any more
                                    }
                                    let _ = ready.try_send(());
                                }
                                Err(e) => {
                                    let _ = tx.send(Err(e)).await;
                                    return;
                                }
                            }
                        }
                        cache.put(key, all);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            });
        }
        if self.turn.is_none() {
            self.turn_seq += 1;
        }
        let seq = self.turn_seq;
        let turn = self.turn.get_or_insert_with(|| new_turn(seq, None));
        if !turn.text.is_empty() {
            turn.text.push(' ');
        }
        turn.text.push_str(&text);
        self.speeches.push_back(Speech { rx, done: false, samples: 0 });
    }

    /// The caller's utterance reached its bound: it is ended there.
    fn forced_end_of_turn(&mut self, max_ms: u64) {
        self.event(
            "forced_end_of_turn",
            format!(
                "the caller spoke {:.1} s without a pause: the turn was ended there and transcribed; what follows is the next turn",
                max_ms as f64 / 1000.0
            ),
        );
    }

    fn agent_busy(&self) -> bool {
        !self.queue.is_empty() || !self.speeches.is_empty()
    }

    /// Move synthesized audio into the play queue; false on a TTS failure.
    fn pull_speech(&mut self) -> Result<(), SpeechError> {
        while let Some(front) = self.speeches.front_mut() {
            loop {
                match front.rx.try_recv() {
                    Ok(Ok(samples)) => {
                        front.samples += samples.len();
                        if let Some(t) = self.turn.as_mut() {
                            t.total_samples += samples.len();
                        }
                        self.queue.extend(samples);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        front.done = true;
                        break;
                    }
                }
            }
            if front.done {
                self.speeches.pop_front();
            }
        }
        Ok(())
    }

    /// Send agent audio: one frame per 20 ms as it plays, or up to `playout_lead_ms` ahead.
    async fn play(&mut self) {
        loop {
            let now = self.now();
            // 10 ms of slack: a tick that fires a little early still sends its frame.
            if self.queue.is_empty() || self.play_clock.max(now) > now + self.cfg.playout_lead_ms.max(10) {
                return;
            }
            self.play_frame(now).await;
        }
    }

    async fn play_frame(&mut self, now: u64) {
        let n = self.queue.len().min(FRAME);
        let frame: Vec<i16> = self.queue.drain(..n).collect();
        // The frame plays after what was sent before it (or now, after a pause).
        let plays_at = self.play_clock.max(now);
        self.play_clock = plays_at + (n as u64) / 16;
        let mut mark = None;
        if let Some(t) = self.turn.as_mut() {
            if t.started_ms.is_none() {
                t.started_ms = Some(plays_at);
                if let Some(detected) = self.answer_detected.take() {
                    self.o.overhead_us.push(detected.elapsed().as_micros() as u64);
                }
                if let Some(end_of_speech) = t.answering.take() {
                    let latency = now.saturating_sub(end_of_speech);
                    self.o.turn_latencies_ms.push(latency);
                    self.o.timeline.push(FlowTimelineEvent {
                        offset_ms: now,
                        kind: "turn_latency".into(),
                        detail: format!("{latency} ms from the caller's end of speech to the agent's first audio"),
                    });
                }
                let text = t.text.clone();
                let _ = self.out.send(Outbound::Event(json!({ "type": "agent_speaking", "text": text }))).await;
            }
            t.spoken_samples += n;
            t.ended_ms = self.play_clock;
            if self.cfg.marks {
                self.frames_since_mark += 1;
                if self.frames_since_mark >= MARK_EVERY_FRAMES || self.queue.is_empty() {
                    self.frames_since_mark = 0;
                    mark = Some(format!("t{}:{}", t.seq, t.spoken_samples));
                }
            }
        }
        self.rec.agent.place(plays_at * 16, &frame);
        let _ = self.out.send(Outbound::Audio(frame)).await;
        if let Some(m) = mark {
            self.mark_pending = Some(m.clone());
            let _ = self.out.send(Outbound::Mark(m)).await;
        }
    }

    /// A mark came back: the caller has heard the turn up to it.
    fn mark_echoed(&mut self, name: &str) {
        if self.mark_pending.as_deref() == Some(name) {
            self.mark_pending = None;
        }
        let Some((seq, samples)) = name.strip_prefix('t').and_then(|r| r.split_once(':')) else { return };
        let (Ok(seq), Ok(samples)) = (seq.parse::<u64>(), samples.parse::<usize>()) else { return };
        if let Some(t) = self.turn.as_mut()
            && t.seq == seq
        {
            t.heard_samples = t.heard_samples.max(samples.min(t.spoken_samples));
        }
    }

    /// Audio sent that the far side has not played yet (its last mark is not back), within
    /// the time it would take to play.
    fn playout_pending(&self, now: u64) -> bool {
        self.cfg.marks && self.mark_pending.is_some() && now < self.play_clock + 1_000
    }

    /// The agent's turn ends (finished or cut off): store it.
    async fn close_turn(&mut self, interrupted: bool) -> Option<String> {
        let t = self.turn.take()?;
        let start = t.started_ms?;
        // With marks, what was heard; else what was sent (it plays as it is sent).
        let said = if self.cfg.marks { t.heard_samples } else { t.spoken_samples };
        let text = if interrupted { spoken_part(&t.text, said, t.total_samples.max(t.spoken_samples + self.queue.len())) } else { t.text.clone() };
        let end_ms = if interrupted && self.cfg.marks { start + (said as u64) / 16 } else { t.ended_ms.max(start) };
        let stored = if interrupted { format!("{text} —") } else { text.clone() };
        let index = self.o.transcript.len() as u32;
        self.o.transcript.push(TranscriptTurn { index, role: Role::Agent, text: stored.clone(), start_ms: start, end_ms: end_ms.max(start) });
        self.send(json!({ "type": "transcript", "role": "agent", "text": stored, "final": true, "interrupted": interrupted })).await;
        Some(text)
    }

    /// Barge-in: stop talking, drop what was queued, keep what was said.
    async fn barge_in(&mut self, agent: &mut dyn LiveAgent) {
        self.speeches.clear();
        let mut dropped = self.queue.len();
        self.queue.clear();
        if self.cfg.marks {
            // What the far side holds and has not played is dropped there too.
            let now = self.now();
            dropped += (self.play_clock.saturating_sub(now) as usize) * 16;
            self.play_clock = now;
            self.mark_pending = None;
            let _ = self.out.send(Outbound::Clear).await;
        }
        if let Some(spoken) = self.close_turn(true).await {
            agent.interrupted(&spoken);
            self.event(
                "barge_in",
                format!("the caller spoke over the agent; {} ms of queued audio dropped; the agent's turn was cut after \"{spoken}\"", dropped / 16),
            );
            self.send(json!({ "type": "barge_in" })).await;
        }
    }

    /// One event of the agent's reply, as it arrives (a streamed answer starts speaking on
    /// its first sentence).
    fn handle(&mut self, ev: AgentEvent, caller_turn: Option<(u32, u32)>) {
        match ev {
            AgentEvent::Say(text) => self.say(text),
            AgentEvent::Timeline { kind, detail } => self.event(&kind, detail),
            AgentEvent::Field { name, value, confidence, start, end } => {
                // The span is in the text the agent was given; the stored turn may carry a prefix.
                if let Some((turn, shift)) = caller_turn {
                    self.o.fields.insert(name, ExtractedField { value, confidence, span: Span { turn, start: start + shift, end: end + shift } });
                }
            }
            AgentEvent::Transfer { to } => {
                let at = self.now();
                self.o.transfer = Some(TransferInfo { to: to.clone(), at_ms: at });
                self.ending = Some(DisconnectionReason::Transfer);
            }
            AgentEvent::WarmTransfer { to } if !self.cfg.warm_transfers => self.handle(AgentEvent::Transfer { to }, caller_turn),
            AgentEvent::WarmTransfer { to } => {
                let at = self.now();
                self.o.transfer = Some(TransferInfo { to: to.clone(), at_ms: at });
                self.holding_since = Some(at);
                self.event("transfer_started", format!("warm transfer to {to}: the caller holds while the target is dialed and briefed"));
                let turns: Vec<Value> = self.o.transcript.iter().map(|t| json!({ "role": t.role.as_str(), "text": t.text })).collect();
                let _ = self.out.try_send(Outbound::Event(json!({ "type": "warm_transfer", "to": to, "transcript": turns })));
            }
            AgentEvent::End(reason) => {
                if self.ending.is_none() {
                    self.ending = Some(reason);
                }
            }
        }
    }
}

/// A caller utterance's text: (its start, its end of speech, the result).
type Transcribed = (u64, u64, Result<String, SpeechError>);

/// Send one caller utterance to ASR; the result comes back over `tx`.
fn transcribe(asr: &Arc<dyn Asr>, language: &Option<String>, tx: &mpsc::Sender<Transcribed>, audio: Vec<i16>, started: u64, end_of_speech: u64) {
    let asr = asr.clone();
    let lang = language.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let r = asr.transcribe(&audio, CALL_RATE, lang.as_deref()).await;
        let _ = tx.send((started, end_of_speech, r)).await;
    });
}

/// The next event of the agent's reply in progress (never, when there is none).
async fn next_event(rx: &mut Option<mpsc::Receiver<AgentEvent>>) -> Option<AgentEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Keys a call takes in all; more are dropped.
pub const MAX_DTMF_KEYS: u32 = 500;
/// Keys closer than this to the one before are dropped (no person presses faster).
pub const MIN_DTMF_GAP_MS: u64 = 50;

/// The stored form of a keypad answer: `[keypad] 1234`.
pub const KEYPAD_PREFIX: &str = "[keypad] ";

/// The caller answered on the keypad: their turn in the transcript (its index, and where the
/// keys start in its text).
async fn keypad_turn(e: &mut Engine, keys: &str, at: u64) -> (u32, u32) {
    if e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
        e.close_turn(true).await;
    }
    let index = e.o.transcript.len() as u32;
    let text = format!("{KEYPAD_PREFIX}{keys}");
    e.o.transcript.push(TranscriptTurn { index, role: Role::Caller, text: text.clone(), start_ms: at, end_ms: at });
    e.send(json!({ "type": "transcript", "role": "caller", "text": text, "final": true, "keypad": true })).await;
    e.event("keypad_answer", format!("the caller answered on the keypad: {keys}"));
    (index, KEYPAD_PREFIX.chars().count() as u32)
}

/// Run a call to its end. `inbound` closing counts as a hangup.
pub async fn run_call(
    mut agent: Box<dyn LiveAgent>,
    asr: Arc<dyn Asr>,
    tts: Arc<dyn Tts>,
    cache: AudioCache,
    mut inbound: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<Outbound>,
    cfg: LiveConfig,
) -> LiveOutcome {
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(16);
    let mut e = Engine {
        ready: ready_tx,
        answer_detected: None,
        cfg: cfg.clone(),
        asr,
        tts,
        cache,
        out,
        start: Instant::now(),
        o: LiveOutcome::default(),
        rec: recording::Recorder::new(cfg.record_to.as_deref()),
        queue: VecDeque::new(),
        speeches: VecDeque::new(),
        turn: None,
        ending: None,
        play_clock: 0,
        turn_seq: 0,
        mark_pending: None,
        frames_since_mark: 0,
        holding_since: None,
    };
    let mut vad = match cfg.vad_kind {
        VadKind::Energy => Vad::energy(cfg.vad.clone()),
        VadKind::WebRtc => Vad::webrtc(cfg.vad.clone()),
        VadKind::Cascade => Vad::new(cfg.vad.clone()),
    };
    let mut utterance: Vec<i16> = vec![];
    let mut pre_roll: VecDeque<i16> = VecDeque::with_capacity(PRE_ROLL);
    let mut speech_started_ms = 0u64;
    let mut barge_voiced_ms = 0u64;
    let mut last_activity = 0u64;
    let mut reprompted = false;
    let (asr_tx, mut asr_rx) = mpsc::channel::<Transcribed>(4);
    let mut asr_pending = 0usize;
    // Caller audio received so far, and the bound of one utterance, in samples.
    let mut caller_samples = 0u64;
    let cap = usize::try_from(cfg.max_utterance_ms.saturating_mul(16)).unwrap_or(usize::MAX);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    e.event("media_connected", "the caller's audio is connected".into());
    e.send(json!({ "type": "call_started" })).await;
    // The agent's reply in progress and the caller turn it answers.
    let mut reply: Option<mpsc::Receiver<AgentEvent>> = Some(agent.start().await);
    let mut reply_turn: Option<(u32, u32)> = None;
    // Keypad keys pressed so far, and when the last one came.
    let mut digits = String::new();
    let mut last_digit_ms = 0u64;
    let mut dtmf_keys = 0u32;

    let reason = 'call: loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(err) = e.pull_speech() {
                    e.o.error = Some(err.to_string());
                    e.event("error", format!("text-to-speech failed: {err}"));
                    break 'call DisconnectionReason::ErrorTts;
                }
                e.play().await;
                let now = e.now();
                if !e.agent_busy() && reply.is_none() {
                    if e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
                        e.close_turn(false).await;
                        last_activity = now;
                    }
                    // The last words are heard before the line goes down.
                    if e.ending.is_some() && !e.playout_pending(now) && let Some(r) = e.ending.take() {
                        break 'call r;
                    }
                }
                if !digits.is_empty() && now.saturating_sub(last_digit_ms) >= cfg.dtmf_interdigit_ms {
                    let keys = std::mem::take(&mut digits);
                    let (index, shift) = keypad_turn(&mut e, &keys, last_digit_ms).await;
                    reprompted = false;
                    last_activity = now;
                    if e.holding_since.is_none() {
                        reply = Some(agent.pressed(&keys).await);
                        reply_turn = Some((index, shift));
                        e.turn_seq += 1;
                        e.turn = Some(new_turn(e.turn_seq, Some(last_digit_ms)));
                    }
                }
                if now >= cfg.max_duration_ms {
                    e.event("max_duration", format!("the call reached its maximum duration of {} s", cfg.max_duration_ms / 1000));
                    break 'call DisconnectionReason::MaxDuration;
                }
                if let Some(since) = e.holding_since
                    && now.saturating_sub(since) >= cfg.warm_transfer_timeout_ms
                {
                    e.holding_since = None;
                    let why = format!("no answer from the transfer within {} s", cfg.warm_transfer_timeout_ms / 1000);
                    let _ = e.out.try_send(Outbound::Event(json!({ "type": "warm_transfer_abandoned", "why": why })));
                    e.event("transfer_failed", format!("the warm transfer failed: {why}; the agent takes the caller back"));
                    reply = Some(agent.transfer_failed(&why).await);
                    reply_turn = None;
                }
                let idle = !e.agent_busy() && !vad.speaking() && asr_pending == 0 && e.turn.is_none() && reply.is_none() && e.holding_since.is_none();
                if idle && now.saturating_sub(last_activity) >= cfg.silence_timeout_ms {
                    if reprompted {
                        e.event("silence_timeout", format!("no answer after a reprompt; {} s of silence", cfg.silence_timeout_ms / 1000));
                        break 'call DisconnectionReason::SilenceTimeout;
                    }
                    reprompted = true;
                    e.event("reprompt", format!("{} s of silence: the agent reprompts", cfg.silence_timeout_ms / 1000));
                    let text = cfg.reprompt.clone();
                    e.say(text);
                    last_activity = now;
                }
            }
            msg = inbound.recv() => {
                let frame = match msg {
                    Some(Inbound::Audio(f)) => f,
                    Some(Inbound::Terminate) => break 'call DisconnectionReason::TerminatedByApi,
                    Some(Inbound::ProtocolError(what)) => {
                        e.o.error = Some(what.clone());
                        e.event("protocol_error", format!("the caller's side broke the media protocol: {what}; the call was ended"));
                        break 'call DisconnectionReason::ErrorProtocol;
                    }
                    Some(Inbound::MediaLost(what)) => {
                        e.o.error = Some(what.clone());
                        e.event("media_lost", format!("the media stream broke off: {what}"));
                        break 'call DisconnectionReason::ErrorMediaDropped;
                    }
                    Some(Inbound::Mark(name)) => {
                        e.mark_echoed(&name);
                        continue;
                    }
                    Some(Inbound::TransferResult { connected, detail }) => {
                        if e.holding_since.take().is_none() {
                            continue;
                        }
                        if connected {
                            e.event("transfer_connected", format!("the warm transfer's target joined: {detail}; the agent leaves the call"));
                            break 'call DisconnectionReason::Transfer;
                        }
                        e.event("transfer_failed", format!("the warm transfer failed: {detail}; the agent takes the caller back"));
                        reply = Some(agent.transfer_failed(&detail).await);
                        reply_turn = None;
                        continue;
                    }
                    Some(Inbound::Dtmf(key)) => {
                        let now = e.now();
                        // A person presses a few keys a second; a flood is dropped, not answered.
                        dtmf_keys += 1;
                        if dtmf_keys > MAX_DTMF_KEYS || now.saturating_sub(last_digit_ms) < MIN_DTMF_GAP_MS && !digits.is_empty() {
                            continue;
                        }
                        e.event("dtmf", format!("the caller pressed {key}"));
                        // A key pressed over the agent stops it, as speech does.
                        if e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
                            e.barge_in(agent.as_mut()).await;
                            reply = None;
                        }
                        if digits.len() < 32 {
                            digits.push(key);
                        }
                        last_digit_ms = now;
                        last_activity = now;
                        if key == '#' || digits.len() >= 32 {
                            // Ends the answer now: the next tick hands it over.
                            last_digit_ms = now.saturating_sub(cfg.dtmf_interdigit_ms);
                        }
                        continue;
                    }
                    Some(Inbound::Hangup) | None => break 'call DisconnectionReason::UserHangup,
                };
                let now = e.now();
                // Audio is captured in real time: a caller far ahead of the clock is not a person talking.
                caller_samples += frame.len() as u64;
                let audio_ms = caller_samples / 16;
                if cfg.audio_ahead_ms > 0 && audio_ms > now + cfg.audio_ahead_ms {
                    let what = format!("{audio_ms} ms of caller audio arrived in the first {now} ms of the call, more than {} ms ahead of real time", cfg.audio_ahead_ms);
                    e.o.error = Some(what.clone());
                    e.event("protocol_error", format!("the caller's side broke the media protocol: {what}; the call was ended"));
                    break 'call DisconnectionReason::ErrorProtocol;
                }
                let pos = (now * 16).saturating_sub(frame.len() as u64).max(e.rec.caller.len());
                e.rec.caller.place(pos, &frame);
                for s in &frame {
                    if pre_roll.len() == PRE_ROLL {
                        pre_roll.pop_front();
                    }
                    pre_roll.push_back(*s);
                }
                let was_speaking = vad.speaking();
                let events = vad.feed(&frame);
                if vad.speaking() || was_speaking {
                    utterance.extend_from_slice(&frame);
                }
                // Barge-in: the caller talks over the agent for long enough.
                if vad.speaking() && e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
                    barge_voiced_ms += (frame.len() as u64) / 16;
                    if barge_voiced_ms >= cfg.barge_in_ms {
                        e.barge_in(agent.as_mut()).await;
                        // What the agent had not said yet is not said.
                        reply = None;
                        barge_voiced_ms = 0;
                    }
                } else if !vad.speaking() {
                    barge_voiced_ms = 0;
                }
                for ev in events {
                    match ev {
                        VadEvent::SpeechStarted => {
                            speech_started_ms = now.saturating_sub(cfg.vad.onset_ms);
                            utterance = pre_roll.iter().copied().collect();
                            last_activity = now;
                            e.send(json!({ "type": "caller_speaking" })).await;
                        }
                        VadEvent::TurnEnded => {
                            let end_of_speech = now.saturating_sub(cfg.vad.end_of_turn_ms);
                            let mut audio = std::mem::take(&mut utterance);
                            // One big frame may carry an utterance past its bound: the bound still holds.
                            while cap > 0 && audio.len() > cap {
                                let rest = audio.split_off(cap);
                                let cut = speech_started_ms + cfg.max_utterance_ms;
                                e.forced_end_of_turn(cfg.max_utterance_ms);
                                transcribe(&e.asr, &cfg.language, &asr_tx, std::mem::replace(&mut audio, rest), speech_started_ms, cut.min(end_of_speech));
                                asr_pending += 1;
                                speech_started_ms = cut.min(end_of_speech);
                            }
                            e.answer_detected = Some(Instant::now());
                            asr_pending += 1;
                            transcribe(&e.asr, &cfg.language, &asr_tx, audio, speech_started_ms, end_of_speech);
                            last_activity = now;
                        }
                    }
                }
                // A forced end of turn: the caller is still talking, but one utterance is at
                // most `max_utterance_ms`; it goes to ASR now and what follows is the next one.
                while cap > 0 && vad.speaking() && utterance.len() >= cap {
                    let rest = utterance.split_off(cap);
                    let audio = std::mem::replace(&mut utterance, rest);
                    let end_of_speech = now.saturating_sub(utterance.len() as u64 / 16);
                    e.forced_end_of_turn(cfg.max_utterance_ms);
                    e.answer_detected = Some(Instant::now());
                    asr_pending += 1;
                    transcribe(&e.asr, &cfg.language, &asr_tx, audio, speech_started_ms, end_of_speech);
                    speech_started_ms = end_of_speech;
                    last_activity = now;
                }
            }
            Some((started, end_of_speech, result)) = asr_rx.recv() => {
                asr_pending -= 1;
                let text = match result {
                    Ok(t) => t.trim().to_owned(),
                    Err(err) => {
                        e.o.error = Some(err.to_string());
                        e.event("error", format!("speech recognition failed: {err}"));
                        break 'call DisconnectionReason::ErrorAsr;
                    }
                };
                last_activity = e.now();
                if text.is_empty() {
                    continue;
                }
                reprompted = false;
                // The caller's turn; if the agent was still talking, its turn is cut first.
                if e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
                    e.barge_in(agent.as_mut()).await;
                }
                let index = e.o.transcript.len() as u32;
                e.o.transcript.push(TranscriptTurn { index, role: Role::Caller, text: text.clone(), start_ms: started, end_ms: end_of_speech.max(started) });
                e.send(json!({ "type": "transcript", "role": "caller", "text": text, "final": true })).await;
                if e.holding_since.is_some() {
                    // On hold: what the caller says is kept; the agent answers after the transfer.
                    continue;
                }
                reply = Some(agent.reply(&text).await);
                reply_turn = Some((index, 0));
                e.turn_seq += 1;
                e.turn = Some(new_turn(e.turn_seq, Some(end_of_speech)));
            }
            Some(()) = ready_rx.recv() => {
                // Audio is ready: if the agent has not started talking yet, start now.
                if e.turn.as_ref().is_some_and(|t| t.started_ms.is_none()) && e.queue.is_empty() {
                    if let Err(err) = e.pull_speech() {
                        e.o.error = Some(err.to_string());
                        e.event("error", format!("text-to-speech failed: {err}"));
                        break 'call DisconnectionReason::ErrorTts;
                    }
                    e.play().await;
                }
            }
            ev = next_event(&mut reply) => {
                match ev {
                    Some(ev) => e.handle(ev, reply_turn),
                    None => {
                        reply = None;
                        // A reply that said nothing leaves no agent turn behind.
                        if e.turn.as_ref().is_some_and(|t| t.text.is_empty()) {
                            e.turn = None;
                        }
                    }
                }
            }
        }
    };
    // A turn the agent was in the middle of is kept as far as it was spoken.
    if e.turn.as_ref().is_some_and(|t| t.started_ms.is_some()) {
        let interrupted = !e.queue.is_empty() || !e.speeches.is_empty();
        e.close_turn(interrupted).await;
    }
    e.o.duration_ms = e.now();
    e.o.disconnection_reason = Some(reason);
    e.event("call_ended", format!("the call ended: {reason}"));
    e.send(json!({ "type": "call_ended", "reason": reason.as_str() })).await;
    let rec = std::mem::replace(&mut e.rec, recording::Recorder::new(None));
    match rec.finish() {
        recording::Recorded::Memory { caller, agent } => {
            e.o.caller_audio = caller;
            e.o.agent_audio = agent;
        }
        recording::Recorded::Files(r) => e.o.recording = Some(r),
    }
    e.o
}
