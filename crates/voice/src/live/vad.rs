//! Voice activity detection: frame energy against an adaptive noise floor, with onset and
//! hangover so a breath is not a turn and a short pause does not end one.

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
    floor: f64,
    voiced_ms: u64,
    silent_ms: u64,
    speaking: bool,
    pending: Vec<i16>,
}

pub fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    (sum / frame.len() as f64).sqrt()
}

impl Vad {
    pub fn new(cfg: VadConfig) -> Self {
        Vad { cfg, floor: 50.0, voiced_ms: 0, silent_ms: 0, speaking: false, pending: Vec::with_capacity(FRAME) }
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
            let level = rms(frame);
            let voiced = level > self.cfg.min_rms.max(self.floor * 3.0);
            if !voiced {
                // The floor follows the quiet frames slowly.
                self.floor = self.floor * 0.95 + level * 0.05;
            }
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

    #[test]
    fn speech_then_silence_is_a_turn() {
        let mut v = Vad::new(VadConfig::default());
        assert!(v.feed(&tone(500, 0.0)).is_empty());
        assert_eq!(v.feed(&tone(400, 6000.0)), vec![VadEvent::SpeechStarted]);
        assert!(v.feed(&tone(300, 0.0)).is_empty(), "a short pause is not the end");
        assert!(v.feed(&tone(300, 6000.0)).is_empty());
        assert_eq!(v.feed(&tone(800, 0.0)), vec![VadEvent::TurnEnded]);
    }

    #[test]
    fn a_click_is_not_speech() {
        let mut v = Vad::new(VadConfig::default());
        let mut a = tone(20, 8000.0);
        a.extend(tone(1000, 0.0));
        assert!(v.feed(&a).is_empty());
    }
}
