//! The cascade: the WebRTC detector votes on every 20 ms frame; Silero is called in only where
//! that vote cannot be taken as it is.
//!
//! - A frame below `min_rms`, or one the WebRTC detector calls silence, is silence: WebRTC is a
//!   good judge of "nobody is talking", and a poor one of "this is a voice" (it calls most
//!   broadband noise voice).
//! - A frame WebRTC calls voice is *unsure*, unless the caller is speaking and Silero confirmed
//!   that speech within the last [`TRUST_MS`]. An unsure frame asks Silero. If Silero is idle it
//!   is reset and first replays the last [`PRE_ROLL`] samples from a ring buffer, so its LSTM
//!   judges the frame with context rather than from a cold state.
//! - Once called in, Silero runs on every 32 ms window until frames have been sure for
//!   [`LINGER_MS`], or until it has confirmed the caller's speech (then WebRTC's votes are
//!   trusted for [`TRUST_MS`], after which Silero checks again).
//!
//! - When Silero has rejected an unsure stretch as noise for [`LEARN_MS`], the stretch's level
//!   is remembered: later unsure frames no louder than it plus [`MARGIN_DB`] are that noise
//!   again (steady hiss that WebRTC keeps calling voice), and Silero is not asked. The level
//!   follows the noise: quickly down, slowly up.
//!
//! Silero's probability goes through hysteresis ([`ON`] / [`OFF`], its own defaults).

use std::collections::VecDeque;

use super::cheap::Cheap;
use super::silero::{CONTEXT, Silero, WINDOW};

/// Audio Silero replays when called in: 10 windows, 320 ms.
pub const PRE_ROLL: usize = 10 * WINDOW;
const RING: usize = PRE_ROLL + CONTEXT;
/// Silero goes idle after this long without an unsure frame.
pub const LINGER_MS: u64 = 200;
/// WebRTC's voice votes stand for the caller's speech this long after Silero confirmed it.
pub const TRUST_MS: u64 = 800;
/// Silero confirms speech with [`SURE`] for this long (at the start of a turn) ...
const CONFIRM_MS: u64 = 160;
/// ... or this long when it checks a turn again.
const RECONFIRM_MS: u64 = 40;
pub const ON: f32 = 0.5;
pub const OFF: f32 = 0.35;
const SURE: f32 = 0.7;
/// Silero rejects this much of a stretch before its level counts as known noise.
pub const LEARN_MS: u64 = 200;
/// Frames up to this much louder than known noise are that noise.
pub const MARGIN_DB: f64 = 3.0;
const FRAME_MS: u64 = 20;

#[derive(Debug)]
pub struct Cascade {
    cheap: Cheap,
    neural: Option<Silero>,
    ring: VecDeque<i16>,
    engaged: bool,
    idle_ms: u64,
    voiced: bool,
    confirmed_ms: u64,
    confirm_target: u64,
    trust_ms: u64,
    /// Level (dB re 1) of the noise Silero last rejected.
    noise_db: Option<f64>,
    /// The stretch Silero is rejecting: its length and mean level.
    rejected_ms: u64,
    rejected_db: f64,
}

impl Cascade {
    pub fn new(neural: bool) -> Cascade {
        Cascade {
            cheap: Cheap::new(),
            neural: if neural { Silero::new() } else { None },
            ring: VecDeque::with_capacity(RING + super::FRAME),
            engaged: false,
            idle_ms: 0,
            voiced: false,
            confirmed_ms: 0,
            confirm_target: CONFIRM_MS,
            trust_ms: 0,
            noise_db: None,
            rejected_ms: 0,
            rejected_db: 0.0,
        }
    }

    /// Windows Silero has run.
    pub fn neural_windows(&self) -> u64 {
        self.neural.as_ref().map_or(0, |n| n.windows)
    }

    /// Whether Silero is loaded (false: WebRTC alone).
    pub fn has_neural(&self) -> bool {
        self.neural.is_some()
    }

    /// Is this frame speech? `loud`: it passed `min_rms`; `speaking`: the caller is in a turn.
    pub fn frame(&mut self, frame: &[i16], level: f64, loud: bool, speaking: bool) -> bool {
        let vote = self.cheap.vote(frame);
        self.ring.extend(frame);
        if self.ring.len() > RING {
            self.ring.drain(..self.ring.len() - RING);
        }
        if !speaking {
            self.trust_ms = 0;
        }
        let trusted = speaking && self.trust_ms > 0;
        self.trust_ms = self.trust_ms.saturating_sub(FRAME_MS);
        let level_db = 20.0 * level.max(1.0).log10();
        let mut unsure = loud && vote && !trusted;
        if unsure
            && !self.engaged
            && let Some(noise) = self.noise_db.as_mut()
            && level_db <= *noise + MARGIN_DB
        {
            // The noise Silero rejected: follow its level, and do not ask again.
            let k = if level_db < *noise { 0.2 } else { 0.02 };
            *noise += k * (level_db - *noise);
            unsure = false;
        }
        let Some(neural) = self.neural.as_mut() else {
            return loud && vote;
        };
        let fed = if unsure && !self.engaged {
            self.engaged = true;
            self.idle_ms = 0;
            self.voiced = false;
            self.confirmed_ms = 0;
            self.confirm_target = if speaking { RECONFIRM_MS } else { CONFIRM_MS };
            neural.reset();
            let ring = self.ring.make_contiguous();
            let split = ring.len().saturating_sub(PRE_ROLL);
            neural.set_context(&ring[..split]);
            neural.push(&ring[split..])
        } else if self.engaged {
            neural.push(frame)
        } else {
            // Sure without asking: silence, known noise, or WebRTC's vote in a confirmed turn.
            return loud && vote && trusted;
        };
        if let Err(e) = fed {
            tracing::error!("voice activity detection: Silero failed ({e:#}); using the WebRTC detector alone");
            self.neural = None;
            self.engaged = false;
            return loud && vote;
        }
        let p = neural.prob;
        if p >= ON {
            self.voiced = true;
        } else if p < OFF {
            self.voiced = false;
        }
        self.confirmed_ms = if p >= SURE { self.confirmed_ms + FRAME_MS } else { 0 };
        self.idle_ms = if unsure { 0 } else { self.idle_ms + FRAME_MS };
        let speech = loud && vote && self.voiced;
        if p >= OFF {
            self.rejected_ms = 0;
            self.rejected_db = 0.0;
        } else if unsure {
            self.rejected_ms += FRAME_MS;
            let n = (self.rejected_ms / FRAME_MS) as f64;
            self.rejected_db += (level_db - self.rejected_db) / n;
        }
        if speaking && speech && self.confirmed_ms >= self.confirm_target {
            self.trust_ms = TRUST_MS;
            self.engaged = false;
        } else if self.rejected_ms >= LEARN_MS {
            self.noise_db = Some(self.rejected_db);
            self.rejected_ms = 0;
            self.engaged = false;
        } else if self.idle_ms >= LINGER_MS {
            self.engaged = false;
        }
        speech
    }
}
