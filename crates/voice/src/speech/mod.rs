//! Speech behind traits: ASR (speech → text) and TTS (text → speech), chosen by URL:
//! `wyoming://HOST:PORT` (the Wyoming protocol: offline servers such as
//! wyoming-faster-whisper and wyoming-piper) or `https://...` (OpenAI-compatible
//! `/v1/audio/transcriptions` and `/v1/audio/speech`).
//!
//! Audio inside DialNexa is 16-bit signed little-endian PCM, mono; [`AudioChunk`] carries
//! its sample rate, and [`resample`] converts between rates. [`wav`] writes and reads WAV
//! files; [`word_error_rate`] scores transcripts. Running the offline servers:
//! docs/voice-speech.md.

pub mod openai;
pub mod resample;
pub mod wav;
pub mod wer;
pub mod wyoming;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;

pub use resample::{Resampler, resample};
pub use wav::{parse_wav, wav_bytes};
pub use wer::word_error_rate;

/// The rate of web calls and of everything the turn loop handles.
pub const CALL_RATE: u32 = 16_000;

#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    pub samples: Vec<i16>,
    pub rate: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpeechError {
    /// The server could not be reached or went away: the call ends with `error_asr`/`error_tts`.
    #[error("speech server unavailable: {0}")]
    Unavailable(String),
    #[error("speech server error: {0}")]
    Server(String),
    #[error("speech protocol error: {0}")]
    Protocol(String),
    #[error("bad speech configuration: {0}")]
    Config(String),
}

pub type AudioStream = Pin<Box<dyn Stream<Item = Result<AudioChunk, SpeechError>> + Send>>;

#[async_trait]
pub trait Asr: Send + Sync {
    /// A stable id for evidence and caching (`wyoming://127.0.0.1:10300`).
    fn id(&self) -> String;
    /// One utterance of 16-bit mono PCM at `rate` → its text ("" for silence).
    async fn transcribe(&self, samples: &[i16], rate: u32, language: Option<&str>) -> Result<String, SpeechError>;
}

#[async_trait]
pub trait Tts: Send + Sync {
    /// A stable id for evidence and caching (provider + voice).
    fn id(&self) -> String;
    /// The voice used when a request names none.
    fn default_voice(&self) -> Option<String>;
    /// Text → audio, streamed: the first chunk arrives before the whole sentence is done.
    async fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<AudioStream, SpeechError>;
}

/// Build an ASR client from its URL (`wyoming://host:port` or `https://.../v1` with a key).
pub fn asr_from_url(url: &str, api_key: Option<String>) -> Result<Arc<dyn Asr>, SpeechError> {
    if let Some(addr) = url.strip_prefix("wyoming://") {
        return Ok(Arc::new(wyoming::WyomingAsr::new(addr.trim_end_matches('/'))));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Arc::new(openai::OpenAiAsr::new(url, api_key)));
    }
    Err(SpeechError::Config(format!("unsupported ASR URL '{}': use wyoming://HOST:PORT or https://...", url.chars().take(80).collect::<String>())))
}

/// Build a TTS client from its URL.
pub fn tts_from_url(url: &str, api_key: Option<String>, voice: Option<String>) -> Result<Arc<dyn Tts>, SpeechError> {
    if let Some(addr) = url.strip_prefix("wyoming://") {
        return Ok(Arc::new(wyoming::WyomingTts::new(addr.trim_end_matches('/'), voice)));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Arc::new(openai::OpenAiTts::new(url, api_key, voice)));
    }
    Err(SpeechError::Config(format!("unsupported TTS URL '{}': use wyoming://HOST:PORT or https://...", url.chars().take(80).collect::<String>())))
}
