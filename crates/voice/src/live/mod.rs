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
pub mod vad;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialnexa_core::DisconnectionReason;
use dialnexa_core::evidence::{ExtractedField, Role, Span, TranscriptTurn};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use agent::{AgentEvent, FlowAgent, LiveAgent, LlmAgent};
pub use cache::AudioCache;
pub use vad::{Vad, VadConfig, VadEvent};

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
}

/// What the call sends to the caller's side.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Audio(Vec<i16>),
    Event(Value),
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
    /// Both parties on one clock, 16 kHz.
    pub caller_audio: Vec<i16>,
    pub agent_audio: Vec<i16>,
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
    queue: VecDeque<i16>,
    speeches: VecDeque<Speech>,
    turn: Option<AgentTurn>,
    ending: Option<DisconnectionReason>,
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
        let turn = self.turn.get_or_insert_with(|| AgentTurn {
            text: String::new(),
            spoken_samples: 0,
            total_samples: 0,
            started_ms: None,
            ended_ms: 0,
            answering: None,
        });
        if !turn.text.is_empty() {
            turn.text.push(' ');
        }
        turn.text.push_str(&text);
        self.speeches.push_back(Speech { rx, done: false, samples: 0 });
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

    /// Play one frame of agent audio, if any.
    async fn play(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let n = self.queue.len().min(FRAME);
        let frame: Vec<i16> = self.queue.drain(..n).collect();
        let now = self.now();
        if let Some(t) = self.turn.as_mut() {
            if t.started_ms.is_none() {
                t.started_ms = Some(now);
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
            t.ended_ms = now;
        }
        let pos = (self.start.elapsed().as_millis() as usize) * 16;
        place(&mut self.o.agent_audio, pos, &frame);
        let _ = self.out.send(Outbound::Audio(frame)).await;
    }

    /// The agent's turn ends (finished or cut off): store it.
    async fn close_turn(&mut self, interrupted: bool) -> Option<String> {
        let t = self.turn.take()?;
        let start = t.started_ms?;
        let text = if interrupted { spoken_part(&t.text, t.spoken_samples, t.total_samples.max(t.spoken_samples + self.queue.len())) } else { t.text.clone() };
        let stored = if interrupted { format!("{text} —") } else { text.clone() };
        let index = self.o.transcript.len() as u32;
        self.o.transcript.push(TranscriptTurn { index, role: Role::Agent, text: stored.clone(), start_ms: start, end_ms: t.ended_ms.max(start) });
        self.send(json!({ "type": "transcript", "role": "agent", "text": stored, "final": true, "interrupted": interrupted })).await;
        Some(text)
    }

    /// Barge-in: stop talking, drop what was queued, keep what was said.
    async fn barge_in(&mut self, agent: &mut dyn LiveAgent) {
        self.speeches.clear();
        let dropped = self.queue.len();
        self.queue.clear();
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
    fn handle(&mut self, ev: AgentEvent, caller_turn: Option<u32>) {
        match ev {
            AgentEvent::Say(text) => self.say(text),
            AgentEvent::Timeline { kind, detail } => self.event(&kind, detail),
            AgentEvent::Field { name, value, confidence, start, end } => {
                if let Some(turn) = caller_turn {
                    self.o.fields.insert(name, ExtractedField { value, confidence, span: Span { turn, start, end } });
                }
            }
            AgentEvent::Transfer { to } => {
                let at = self.now();
                self.o.transfer = Some(TransferInfo { to: to.clone(), at_ms: at });
                self.ending = Some(DisconnectionReason::Transfer);
            }
            AgentEvent::End(reason) => {
                if self.ending.is_none() {
                    self.ending = Some(reason);
                }
            }
        }
    }
}

/// The next event of the agent's reply in progress (never, when there is none).
async fn next_event(rx: &mut Option<mpsc::Receiver<AgentEvent>>) -> Option<AgentEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Write `frame` into `track` at `pos`, mixing over what is there.
fn place(track: &mut Vec<i16>, pos: usize, frame: &[i16]) {
    if track.len() < pos + frame.len() {
        track.resize(pos + frame.len(), 0);
    }
    for (i, s) in frame.iter().enumerate() {
        track[pos + i] = track[pos + i].saturating_add(*s);
    }
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
        queue: VecDeque::new(),
        speeches: VecDeque::new(),
        turn: None,
        ending: None,
    };
    let mut vad = Vad::new(cfg.vad.clone());
    let mut utterance: Vec<i16> = vec![];
    let mut pre_roll: VecDeque<i16> = VecDeque::with_capacity(PRE_ROLL);
    let mut speech_started_ms = 0u64;
    let mut barge_voiced_ms = 0u64;
    let mut last_activity = 0u64;
    let mut reprompted = false;
    let (asr_tx, mut asr_rx) = mpsc::channel::<(u64, u64, Result<String, SpeechError>)>(4);
    let mut asr_pending = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    e.event("media_connected", "the caller's audio is connected".into());
    e.send(json!({ "type": "call_started" })).await;
    // The agent's reply in progress and the caller turn it answers.
    let mut reply: Option<mpsc::Receiver<AgentEvent>> = Some(agent.start().await);
    let mut reply_turn: Option<u32> = None;

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
                    if let Some(r) = e.ending.take() {
                        break 'call r;
                    }
                }
                if now >= cfg.max_duration_ms {
                    e.event("max_duration", format!("the call reached its maximum duration of {} s", cfg.max_duration_ms / 1000));
                    break 'call DisconnectionReason::MaxDuration;
                }
                let idle = !e.agent_busy() && !vad.speaking() && asr_pending == 0 && e.turn.is_none() && reply.is_none();
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
                    Some(Inbound::Hangup) | None => break 'call DisconnectionReason::UserHangup,
                };
                let now = e.now();
                let pos = (now as usize * 16).saturating_sub(frame.len()).max(e.o.caller_audio.len());
                place(&mut e.o.caller_audio, pos, &frame);
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
                            let audio = std::mem::take(&mut utterance);
                            e.answer_detected = Some(Instant::now());
                            let asr = e.asr.clone();
                            let lang = cfg.language.clone();
                            let tx = asr_tx.clone();
                            let started = speech_started_ms;
                            asr_pending += 1;
                            tokio::spawn(async move {
                                let r = asr.transcribe(&audio, CALL_RATE, lang.as_deref()).await;
                                let _ = tx.send((started, end_of_speech, r)).await;
                            });
                            last_activity = now;
                        }
                    }
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
                reply = Some(agent.reply(&text).await);
                reply_turn = Some(index);
                e.turn = Some(AgentTurn { text: String::new(), spoken_samples: 0, total_samples: 0, started_ms: None, ended_ms: 0, answering: Some(end_of_speech) });
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
    let len = e.o.caller_audio.len().max(e.o.agent_audio.len());
    e.o.caller_audio.resize(len, 0);
    e.o.agent_audio.resize(len, 0);
    e.o
}
