//! Voice activity detection, with onset and hangover so a breath is not a turn and a short
//! pause does not end one.
//!
//! [`Vad::new`] is a cascade that holds up on phone lines ([`cascade`]): the WebRTC VAD on every
//! 20 ms frame, and the Silero neural VAD only where WebRTC's vote is not enough (it calls most
//! noise voice), so the neural cost is paid around speech, not on every frame.
//! [`Vad::energy`] is the older detector, frame energy against an adaptive noise floor: it
//! calls anything loud speech (a tone, a car passing), which suits tests of the turn loop.

mod cascade;
mod cheap;
mod silero;

use cascade::Cascade;

/// 20 ms at 16 kHz.
pub const FRAME: usize = 320;

#[derive(Debug, Clone)]
pub struct VadConfig {
    /// RMS a frame needs above the noise floor to count as speech.
    pub min_rms: f64,
    /// Speech starts after this much voiced audio.
    pub onset_ms: u64,
    /// The turn ends after this much silence.
    pub end_of_turn_ms: u64,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig { min_rms: 300.0, onset_ms: 60, end_of_turn_ms: 700 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    SpeechStarted,
    /// The caller stopped talking for `end_of_turn_ms`.
    TurnEnded,
}

#[derive(Debug)]
pub struct Vad {
    cfg: VadConfig,
    detector: Detector,
    voiced_ms: u64,
    silent_ms: u64,
    speaking: bool,
    pending: Vec<i16>,
    frames: u64,
}

#[derive(Debug)]
enum Detector {
    /// Frame energy over a noise floor that follows the quiet frames.
    Energy {
        floor: f64,
    },
    Cascade(Box<Cascade>),
}

/// Which detector a [`Vad`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadKind {
    /// Frame energy over an adaptive noise floor ([`Vad::energy`]).
    Energy,
    /// The WebRTC VAD alone ([`Vad::webrtc`], or the cascade when Silero failed to load).
    WebRtc,
    /// WebRTC, then Silero where WebRTC is unsure ([`Vad::new`]).
    Cascade,
}

/// Load and optimise the Silero model now rather than on the first call's first unsure frame
/// (it takes a moment). Returns whether it loaded; if not, the error was logged and
/// [`Vad::new`] runs the WebRTC detector alone.
pub fn preload() -> bool {
    silero::available()
}

pub fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    (sum / frame.len() as f64).sqrt()
}

impl Vad {
    /// The cascade: WebRTC on every frame, Silero where WebRTC is unsure. `min_rms` still gates:
    /// a frame quieter than it is silence without asking either.
    pub fn new(cfg: VadConfig) -> Self {
        Vad::with(cfg, Detector::Cascade(Box::new(Cascade::new(true))))
    }

    /// The energy detector: a frame is speech when its RMS is above both `min_rms` and three
    /// times the noise floor. Any loud sound is speech to it.
    pub fn energy(cfg: VadConfig) -> Self {
        Vad::with(cfg, Detector::Energy { floor: 50.0 })
    }

    /// The WebRTC detector alone (the cascade's first stage), gated by `min_rms`.
    pub fn webrtc(cfg: VadConfig) -> Self {
        Vad::with(cfg, Detector::Cascade(Box::new(Cascade::new(false))))
    }

    fn with(cfg: VadConfig, detector: Detector) -> Self {
        Vad { cfg, detector, voiced_ms: 0, silent_ms: 0, speaking: false, pending: Vec::with_capacity(FRAME), frames: 0 }
    }

    pub fn kind(&self) -> VadKind {
        match &self.detector {
            Detector::Energy { .. } => VadKind::Energy,
            Detector::Cascade(c) if c.has_neural() => VadKind::Cascade,
            Detector::Cascade(_) => VadKind::WebRtc,
        }
    }

    /// (20 ms frames seen, 32 ms Silero windows run, pre-roll replays included).
    pub fn stats(&self) -> (u64, u64) {
        let neural = match &self.detector {
            Detector::Energy { .. } => 0,
            Detector::Cascade(c) => c.neural_windows(),
        };
        (self.frames, neural)
    }

    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feed audio at 16 kHz; returns what happened, in order.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut out = vec![];
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        while self.pending.len() - start >= FRAME {
            let frame = &self.pending[start..start + FRAME];
            start += FRAME;
            self.frames += 1;
            let level = rms(frame);
            let voiced = match &mut self.detector {
                Detector::Energy { floor } => {
                    let voiced = level > self.cfg.min_rms.max(*floor * 3.0);
                    if !voiced {
                        // The floor follows the quiet frames slowly.
                        *floor = *floor * 0.95 + level * 0.05;
                    }
                    voiced
                }
                Detector::Cascade(c) => c.frame(frame, level, level >= self.cfg.min_rms, self.speaking),
            };
            if voiced {
                self.voiced_ms += 20;
                self.silent_ms = 0;
                if !self.speaking && self.voiced_ms >= self.cfg.onset_ms {
                    self.speaking = true;
                    out.push(VadEvent::SpeechStarted);
                }
            } else {
                self.silent_ms += 20;
                if !self.speaking {
                    self.voiced_ms = 0;
                }
                if self.speaking && self.silent_ms >= self.cfg.end_of_turn_ms {
                    self.speaking = false;
                    self.voiced_ms = 0;
                    out.push(VadEvent::TurnEnded);
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, amp: f64) -> Vec<i16> {
        (0..ms * 16).map(|i| (amp * (i as f64 * 0.07).sin()) as i16).collect()
    }

    /// libfvad's test recording (see tests/data/README.md): about 3.2 s of speech, then 2 s of
    /// non-speech sound.
    fn recording() -> Vec<i16> {
        crate::speech::parse_wav(include_bytes!("../../../tests/data/audio_tiny16.wav")).unwrap().mono()
    }

    fn scaled(samples: &[i16], gain: f64) -> Vec<i16> {
        samples.iter().map(|s| (f64::from(*s) * gain).clamp(-32768.0, 32767.0) as i16).collect()
    }

    #[test]
    fn speech_then_silence_is_a_turn() {
        let mut v = Vad::energy(VadConfig::default());
        assert!(v.feed(&tone(500, 0.0)).is_empty());
        assert_eq!(v.feed(&tone(400, 6000.0)), vec![VadEvent::SpeechStarted]);
        assert!(v.feed(&tone(300, 0.0)).is_empty(), "a short pause is not the end");
        assert!(v.feed(&tone(300, 6000.0)).is_empty());
        assert_eq!(v.feed(&tone(800, 0.0)), vec![VadEvent::TurnEnded]);
    }

    #[test]
    fn a_click_is_not_speech() {
        for mut v in [Vad::energy(VadConfig::default()), Vad::new(VadConfig::default())] {
            let mut a = tone(20, 8000.0);
            a.extend(tone(1000, 0.0));
            assert!(v.feed(&a).is_empty());
        }
    }

    #[test]
    fn silero_matches_the_reference() {
        // Windows over 0.5 / 0.35 from onnxruntime with silero-vad's own wrapper (16 kHz).
        const REFERENCE: &str = "...############################################################..#################################....+.................................................................";
        let mut s = silero::Silero::new().expect("the model loads");
        let mut line = String::new();
        for w in recording().chunks_exact(silero::WINDOW) {
            s.push(w).unwrap();
            line.push(if s.prob > 0.5 {
                '#'
            } else if s.prob > 0.35 {
                '+'
            } else {
                '.'
            });
        }
        assert_eq!(line, REFERENCE);
    }

    #[test]
    fn soft_speech_is_speech() {
        // The recording's speech at -30 dBFS, after a second of silence.
        let x = recording();
        let speech = &x[..16 * 3250];
        let gain = 10f64.powf(-30.0 / 20.0) * 32768.0 / rms(speech);
        let mut a = vec![0; 16_000];
        a.extend(scaled(speech, gain));
        a.extend(vec![0; 16_000]);
        let mut v = Vad::new(VadConfig::default());
        assert_eq!(v.kind(), VadKind::Cascade);
        let mut started = vec![];
        for (i, f) in a.chunks(FRAME).enumerate() {
            if v.feed(f).contains(&VadEvent::SpeechStarted) {
                started.push(i * 20);
            }
        }
        assert!(!started.is_empty() && started[0] >= 1000 && started[0] < 1300, "speech started at {started:?} ms");
    }

    #[test]
    fn loud_noise_bursts_are_not_speech() {
        // 300 ms bursts of white noise at -10 dBFS, once a second.
        let mut seed = 1u32;
        let mut a = vec![];
        for _ in 0..6 {
            a.extend((0..16 * 300).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                ((f64::from(seed) / f64::from(u32::MAX) - 0.5) * 2.0 * 10362.0 * 3f64.sqrt()) as i16
            }));
            a.extend(vec![0; 16 * 700]);
        }
        let mut cascade = Vad::new(VadConfig::default());
        assert!(!cascade.feed(&a).contains(&VadEvent::SpeechStarted));
        let mut energy = Vad::energy(VadConfig::default());
        assert!(energy.feed(&a).contains(&VadEvent::SpeechStarted), "energy alone calls them speech");
    }
}
