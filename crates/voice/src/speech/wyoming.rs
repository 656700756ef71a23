//! The Wyoming protocol (placeholder: being written).

use async_trait::async_trait;

use super::{Asr, AudioStream, SpeechError, Tts};

pub struct WyomingAsr {
    addr: String,
}

impl WyomingAsr {
    pub fn new(addr: &str) -> Self {
        WyomingAsr { addr: addr.to_owned() }
    }
}

#[async_trait]
impl Asr for WyomingAsr {
    fn id(&self) -> String {
        format!("wyoming://{}", self.addr)
    }
    async fn transcribe(&self, _samples: &[i16], _rate: u32, _language: Option<&str>) -> Result<String, SpeechError> {
        Err(SpeechError::Unavailable("not built yet".into()))
    }
}

pub struct WyomingTts {
    addr: String,
    voice: Option<String>,
}

impl WyomingTts {
    pub fn new(addr: &str, voice: Option<String>) -> Self {
        WyomingTts { addr: addr.to_owned(), voice }
    }
}

#[async_trait]
impl Tts for WyomingTts {
    fn id(&self) -> String {
        format!("wyoming://{}#{}", self.addr, self.voice.clone().unwrap_or_default())
    }
    fn default_voice(&self) -> Option<String> {
        self.voice.clone()
    }
    async fn synthesize(&self, _text: &str, _voice: Option<&str>) -> Result<AudioStream, SpeechError> {
        Err(SpeechError::Unavailable("not built yet".into()))
    }
}
