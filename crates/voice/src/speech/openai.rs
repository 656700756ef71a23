//! The OpenAI-compatible audio endpoints (placeholder: being written).

use async_trait::async_trait;

use super::{Asr, AudioStream, SpeechError, Tts};

pub struct OpenAiAsr {
    url: String,
    _api_key: Option<String>,
}

impl OpenAiAsr {
    pub fn new(url: &str, api_key: Option<String>) -> Self {
        OpenAiAsr { url: url.to_owned(), _api_key: api_key }
    }
}

#[async_trait]
impl Asr for OpenAiAsr {
    fn id(&self) -> String {
        self.url.clone()
    }
    async fn transcribe(&self, _samples: &[i16], _rate: u32, _language: Option<&str>) -> Result<String, SpeechError> {
        Err(SpeechError::Unavailable("not built yet".into()))
    }
}

pub struct OpenAiTts {
    url: String,
    _api_key: Option<String>,
    voice: Option<String>,
}

impl OpenAiTts {
    pub fn new(url: &str, api_key: Option<String>, voice: Option<String>) -> Self {
        OpenAiTts { url: url.to_owned(), _api_key: api_key, voice }
    }
}

#[async_trait]
impl Tts for OpenAiTts {
    fn id(&self) -> String {
        format!("{}#{}", self.url, self.voice.clone().unwrap_or_default())
    }
    fn default_voice(&self) -> Option<String> {
        self.voice.clone()
    }
    async fn synthesize(&self, _text: &str, _voice: Option<&str>) -> Result<AudioStream, SpeechError> {
        Err(SpeechError::Unavailable("not built yet".into()))
    }
}
