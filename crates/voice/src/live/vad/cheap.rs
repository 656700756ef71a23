//! The cheap stage: the WebRTC VAD (Gaussian mixtures over six sub-band energies), as ported
//! to pure Rust by `earshot` 0.1, on the 20 ms frame downsampled to 8 kHz.

use std::fmt;

use earshot::{VoiceActivityDetector, VoiceActivityProfile};

use crate::speech::Resampler;

/// Samples of a 20 ms frame at 8 kHz.
const FRAME_8K: usize = 160;

pub struct Cheap {
    det: VoiceActivityDetector,
    down: Resampler,
    buf: Vec<i16>,
    last: bool,
}

impl fmt::Debug for Cheap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cheap").field("last", &self.last).finish_non_exhaustive()
    }
}

impl Cheap {
    pub fn new() -> Cheap {
        // earshot's own 16 kHz entry point hands a 240-sample buffer to the 8 kHz model whatever
        // the frame size, so downsample here (with a proper low-pass) and use the 8 kHz one.
        Cheap {
            det: VoiceActivityDetector::new(VoiceActivityProfile::AGGRESSIVE),
            // The detector looks at band energies, not waveforms: the short filter is enough.
            down: Resampler::phone(16_000, 8_000),
            buf: Vec::with_capacity(2 * FRAME_8K),
            last: false,
        }
    }

    /// The vote for a 16 kHz frame (the latest complete 8 kHz frame's).
    pub fn vote(&mut self, frame: &[i16]) -> bool {
        self.buf.extend(self.down.process(frame));
        let mut used = 0;
        while self.buf.len() - used >= FRAME_8K {
            self.last = self.det.predict_8khz(&self.buf[used..used + FRAME_8K]).unwrap_or(false);
            used += FRAME_8K;
        }
        self.buf.drain(..used);
        self.last
    }
}
