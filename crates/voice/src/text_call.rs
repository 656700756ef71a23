//! Test calls in text: a flow agent against a scripted caller, on a simulated clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use dialnexa_core::agent::FlowAgentConfig;
use dialnexa_core::{ConfigError, DisconnectionReason, ExtractedField, Role, Span, TranscriptTurn};
use serde::Serialize;

use crate::session::{Ending, FlowSession, Outcome, Step};

/// The simulated speech clock of text calls.
///
/// Text has no audio, yet transcripts need timings that look like a call and that are the
/// same on every run (tests and evidence compare them). Every turn lasts the time its words
/// take at a typical speaking rate, never less than [`MIN_TURN_MS`](clock::MIN_TURN_MS), and
/// each turn starts after a fixed response latency, so turns never overlap.
pub mod clock {
    /// Agent speech rate (text-to-speech voices speak a little faster than people).
    pub const AGENT_WORDS_PER_MINUTE: u64 = 165;
    /// Caller speech rate.
    pub const CALLER_WORDS_PER_MINUTE: u64 = 150;
    /// Silence before each agent turn (thinking + speech synthesis); also the pick-up delay
    /// before the agent's first words.
    pub const AGENT_RESPONSE_LATENCY_MS: u64 = 600;
    /// Silence before each caller turn.
    pub const CALLER_RESPONSE_LATENCY_MS: u64 = 800;
    /// The shortest turn: even "yes" takes a moment to say.
    pub const MIN_TURN_MS: u64 = 400;

    /// How long `text` takes to say at `words_per_minute` (rounded up to the millisecond).
    pub fn speech_ms(text: &str, words_per_minute: u64) -> u64 {
        let words = text.split_whitespace().count() as u64;
        let ms = (words * 60_000).div_ceil(words_per_minute.max(1));
        ms.max(MIN_TURN_MS)
    }
}

/// A flow event placed on the call's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowTimelineEvent {
    pub offset_ms: u64,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferInfo {
    pub to: String,
    /// When the transfer happened: right after the agent's last words.
    pub at_ms: u64,
}

/// Everything a text test call produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextCall {
    pub transcript: Vec<TranscriptTurn>,
    /// `span.turn` is the transcript index of the caller turn the value came from.
    pub fields: BTreeMap<String, ExtractedField>,
    pub timeline: Vec<FlowTimelineEvent>,
    pub disconnection_reason: DisconnectionReason,
    pub transfer: Option<TransferInfo>,
    /// The node the call ended at (or waited at when the caller hung up).
    pub final_node: Option<String>,
    pub duration_ms: u64,
    /// Script lines never said because the call ended first.
    pub unused_script_lines: usize,
}

struct Recorder {
    max_duration_ms: u64,
    clock_ms: u64,
    transcript: Vec<TranscriptTurn>,
    fields: BTreeMap<String, ExtractedField>,
    timeline: Vec<FlowTimelineEvent>,
}

impl Recorder {
    /// Add a turn after the right latency; `false` when it would run past the call's
    /// maximum duration (the turn is then not said).
    fn turn(&mut self, role: Role, text: &str) -> bool {
        use clock::*;
        let (latency, wpm) = match role {
            Role::Agent => (AGENT_RESPONSE_LATENCY_MS, AGENT_WORDS_PER_MINUTE),
            Role::Caller => (CALLER_RESPONSE_LATENCY_MS, CALLER_WORDS_PER_MINUTE),
        };
        let start_ms = self.clock_ms + latency;
        let end_ms = start_ms + speech_ms(text, wpm);
        if end_ms > self.max_duration_ms {
            return false;
        }
        self.transcript.push(TranscriptTurn { index: u32::try_from(self.transcript.len()).unwrap_or(u32::MAX), role, text: text.to_owned(), start_ms, end_ms });
        self.clock_ms = end_ms;
        true
    }

    fn event(&mut self, kind: &str, detail: String) {
        self.timeline.push(FlowTimelineEvent { offset_ms: self.clock_ms, kind: kind.to_owned(), detail });
    }

    /// Record a step's events and fields (at the moment the agent decides, the end of the
    /// caller's turn) and then its speech. `false` when the maximum duration cut it short.
    fn step(&mut self, step: &Step, caller_turn: Option<u32>) -> bool {
        for e in &step.events {
            self.event(e.kind.as_str(), e.detail.clone());
        }
        if let Some(turn) = caller_turn {
            for f in &step.fields {
                self.fields.insert(
                    f.name.clone(),
                    ExtractedField { value: f.value.clone(), confidence: f.confidence, span: Span { turn, start: f.start, end: f.end } },
                );
            }
        }
        match &step.utterance {
            Some(text) => self.turn(Role::Agent, text),
            None => true,
        }
    }
}

/// Run a whole test call: the agent speaks first, each script line is one caller turn, and
/// when the script runs out while the agent waits, the caller hangs up (`user_hangup`).
/// `variables` are the call's variables (built-ins included), over the config's defaults.
pub fn run_text_call(config: &FlowAgentConfig, variables: BTreeMap<String, String>, script: &[String]) -> Result<TextCall, ConfigError> {
    let mut session = FlowSession::new(Arc::new(config.clone()), variables)?;
    let mut rec = Recorder { max_duration_ms: config.max_duration_ms, clock_ms: 0, transcript: Vec::new(), fields: BTreeMap::new(), timeline: Vec::new() };
    let mut lines = script.iter();
    let mut transfer = None;
    let mut step = session.start();
    let mut caller_turn = None;
    let reason = loop {
        let s = match step {
            Ok(s) => s,
            // Not reachable with this driver (it only answers a waiting session), but a
            // broken invariant must end the call, not the process.
            Err(e) => {
                rec.event("error", e.to_string());
                break DisconnectionReason::ErrorInternal;
            }
        };
        if !rec.step(&s, caller_turn) {
            break DisconnectionReason::MaxDuration;
        }
        match s.outcome {
            Outcome::Ended(ending) => {
                if let Ending::Transfer { to } = &ending {
                    transfer = Some(TransferInfo { to: to.clone(), at_ms: rec.clock_ms });
                }
                break ending.disconnection_reason();
            }
            Outcome::AwaitingCaller => {}
        }
        let Some(line) = lines.next() else {
            break DisconnectionReason::UserHangup;
        };
        if !rec.turn(Role::Caller, line) {
            break DisconnectionReason::MaxDuration;
        }
        caller_turn = rec.transcript.len().checked_sub(1).and_then(|i| u32::try_from(i).ok());
        step = session.caller_said(line);
    };
    let duration_ms = if reason == DisconnectionReason::MaxDuration { config.max_duration_ms } else { rec.clock_ms };
    rec.clock_ms = duration_ms;
    rec.event("call_ended", format!("the call ended: {}", reason.as_str()));
    Ok(TextCall {
        transcript: rec.transcript,
        fields: rec.fields,
        timeline: rec.timeline,
        disconnection_reason: reason,
        transfer,
        final_node: session.current_node().map(str::to_owned),
        duration_ms,
        unused_script_lines: lines.len(),
    })
}
