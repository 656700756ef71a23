//! Caller audio: synthesized speech through the configured TTS, or a speech-like tone.

use std::f64::consts::PI;
use std::sync::Arc;

use dialnexa_voice::speech::{Tts, resample};
use futures_util::StreamExt;

pub const RATE: u32 = 8000;
/// Samples per 20 ms frame at 8 kHz (and μ-law bytes per frame).
pub const FRAME: usize = 160;

/// Text → 8 kHz PCM. Falls back to the tone when the TTS fails, so a flaky speech server
/// shows up in logs rather than as a silent caller.
pub async fn speak(tts: Option<&Arc<dyn Tts>>, text: &str) -> Vec<i16> {
    if let Some(tts) = tts {
        match synthesize(tts.as_ref(), text).await {
            Ok(pcm) if !pcm.is_empty() => return pcm,
            Ok(_) => tracing::warn!("carrier-sim: TTS returned no audio for {text:?}; using a tone"),
            Err(e) => tracing::warn!("carrier-sim: TTS failed ({e}); using a tone"),
        }
    }
    speech_tone(text)
}

async fn synthesize(tts: &dyn Tts, text: &str) -> Result<Vec<i16>, String> {
    let mut stream = tts.synthesize(text, None).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        out.extend(resample(&chunk.samples, chunk.rate, RATE));
    }
    Ok(out)
}

/// About 60 ms per character (capped at 4 s) of a voiced, syllable-modulated tone: loud and
/// periodic enough for any energy or model VAD to call it speech.
pub fn speech_tone(text: &str) -> Vec<i16> {
    tone_ms(speech_ms(text))
}

/// How long the tone for `text` lasts.
pub fn speech_ms(text: &str) -> u64 {
    (text.chars().count() as u64 * 60).clamp(200, 4000)
}

/// `ms` of the speech-like tone.
pub fn tone_ms(ms: u64) -> Vec<i16> {
    let n = (ms * u64::from(RATE) / 1000) as usize;
    let rate = f64::from(RATE);
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            // A gliding pitch around 140 Hz with a few harmonics, shaped by a ~4 Hz syllable envelope.
            let f0 = 140.0 + 20.0 * (2.0 * PI * 0.7 * t).sin();
            let phase = 2.0 * PI * f0 * t;
            let voiced = phase.sin() + 0.6 * (2.0 * phase).sin() + 0.4 * (3.0 * phase).sin() + 0.25 * (5.0 * phase).sin();
            let envelope = 0.35 + 0.65 * (PI * 4.0 * t).sin().abs();
            let fade = (t * 50.0).min(1.0).min(((n - i) as f64 / rate) * 50.0);
            (voiced * envelope * fade * 6000.0) as i16
        })
        .collect()
}

/// The answering machine's beep: 0.5 s of 1 kHz.
pub fn beep() -> Vec<i16> {
    (0..RATE as usize / 2).map(|i| ((2.0 * PI * 1000.0 * i as f64 / f64::from(RATE)).sin() * 8000.0) as i16).collect()
}

pub fn ms_of(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(RATE)
}
