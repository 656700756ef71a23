//! The OpenAI-compatible audio endpoints, for `--asr https://...` and `--tts https://...`
//! (the URL is the API base, e.g. `https://api.openai.com/v1`; the key comes from
//! `DIALNEXA_SPEECH_API_KEY` and is sent as `Authorization: Bearer`).
//!
//! - ASR: `POST {base}/audio/transcriptions`, `multipart/form-data` with `file` (a 16-bit WAV),
//!   `model` (default `whisper-1`), `language` when known and `response_format=json` → `{text}`.
//! - TTS: `POST {base}/audio/speech` with `{model (tts-1), input, voice (alloy),
//!   response_format: "pcm"}` → raw 24 kHz 16-bit mono PCM, streamed and resampled to
//!   [`CALL_RATE`] as it arrives. A `wav` answer (by `Content-Type` or a `RIFF` start) is read
//!   too, at the rate its header says.
//!
//! Errors: 401/403 → [`SpeechError::Config`] (the key), 408/429/5xx, refused connections and
//! timeouts → [`SpeechError::Unavailable`], other answers → [`SpeechError::Server`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::resample::Resampler;
use super::wav::{parse_header, wav_bytes};
use super::{Asr, AudioChunk, AudioStream, CALL_RATE, SpeechError, Tts};

pub const DEFAULT_ASR_MODEL: &str = "whisper-1";
pub const DEFAULT_TTS_MODEL: &str = "tts-1";
pub const DEFAULT_VOICE: &str = "alloy";
/// The rate of OpenAI's `pcm` speech format.
pub const OPENAI_PCM_RATE: u32 = 24_000;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ASR_TIMEOUT: Duration = Duration::from_secs(60);
/// TTS answers stream: no total deadline, but no gap between bytes longer than this.
const TTS_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The API base: trailing `/` and an endpoint path pasted by mistake are dropped.
fn base_url(url: &str) -> String {
    let mut base = url.trim().trim_end_matches('/');
    for suffix in ["/audio/transcriptions", "/audio/speech"] {
        base = base.strip_suffix(suffix).unwrap_or(base);
    }
    base.to_owned()
}

fn client(timeout: Option<Duration>, read_timeout: Option<Duration>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    if let Some(t) = read_timeout {
        b = b.read_timeout(t);
    }
    b.build().unwrap_or_default()
}

fn request_error(what: &str, e: reqwest::Error) -> SpeechError {
    if e.is_builder() {
        return SpeechError::Config(format!("{what}: bad URL: {e}"));
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL but never headers, so the key cannot leak here.
    SpeechError::Unavailable(format!("{what}: {kind}: {e}"))
}

/// An HTTP error answer → the error kind DialNexa acts on.
pub fn classify_status(what: &str, status: u16, body: &[u8]) -> SpeechError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).or_else(|| v.get("error").and_then(Value::as_str)).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned());
    let text = if message.is_empty() { format!("{what}: HTTP {status}") } else { format!("{what}: HTTP {status}: {message}") };
    match status {
        401 | 403 => SpeechError::Config(format!("{text} (check DIALNEXA_SPEECH_API_KEY)")),
        408 | 429 | 500..=599 => SpeechError::Unavailable(text),
        _ => SpeechError::Server(text),
    }
}

async fn check(what: &str, resp: reqwest::Response) -> Result<reqwest::Response, SpeechError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Err(classify_status(what, status, &body))
}

fn authorized(req: reqwest::RequestBuilder, key: &Option<String>) -> reqwest::RequestBuilder {
    match key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => req.bearer_auth(k),
        None => req,
    }
}

/// A `multipart/form-data` body: text fields, then one file. Returns (content type, body).
pub fn multipart_form(fields: &[(&str, &str)], file_field: &str, file_name: &str, file_type: &str, file: &[u8]) -> (String, Vec<u8>) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut boundary;
    let mut salt = COUNTER.fetch_add(1, Ordering::Relaxed);
    loop {
        boundary = format!("----dialnexa-{nanos:x}-{salt:x}");
        let b = boundary.as_bytes();
        if !file.windows(b.len()).any(|w| w == b) && fields.iter().all(|(_, v)| !v.contains(&boundary)) {
            break;
        }
        salt = salt.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    let mut body = Vec::with_capacity(file.len() + 512);
    let quoted = |s: &str| s.replace(['"', '\r', '\n'], "_");
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n", quoted(name)).as_bytes());
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {file_type}\r\n\r\n",
            quoted(file_field),
            quoted(file_name)
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// ASR through `POST {base}/audio/transcriptions`.
pub struct OpenAiAsr {
    url: String,
    api_key: Option<String>,
    model: String,
    http: reqwest::Client,
}

impl OpenAiAsr {
    /// `url` is the API base (`https://api.openai.com/v1`).
    pub fn new(url: &str, api_key: Option<String>) -> Self {
        OpenAiAsr { url: base_url(url), api_key, model: DEFAULT_ASR_MODEL.to_owned(), http: client(Some(ASR_TIMEOUT), None) }
    }

    pub fn with_model(mut self, model: &str) -> Self {
        self.model = model.to_owned();
        self
    }

    /// The whole request's deadline (60 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = client(Some(timeout), None);
        self
    }
}

#[async_trait]
impl Asr for OpenAiAsr {
    fn id(&self) -> String {
        format!("{}#{}", self.url, self.model)
    }

    async fn transcribe(&self, samples: &[i16], rate: u32, language: Option<&str>) -> Result<String, SpeechError> {
        if rate == 0 {
            return Err(SpeechError::Config("audio with a sample rate of 0".into()));
        }
        if samples.is_empty() {
            return Ok(String::new());
        }
        let wav = wav_bytes(samples, rate, 1);
        let mut fields = vec![("model", self.model.as_str()), ("response_format", "json")];
        if let Some(l) = language.filter(|l| !l.is_empty()) {
            fields.push(("language", l));
        }
        let (content_type, body) = multipart_form(&fields, "file", "audio.wav", "audio/wav", &wav);
        let what = "transcription";
        let req = self.http.post(format!("{}/audio/transcriptions", self.url)).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let resp = authorized(req, &self.api_key).send().await.map_err(|e| request_error(what, e))?;
        let resp = check(what, resp).await?;
        let body = resp.bytes().await.map_err(|e| request_error(what, e))?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| SpeechError::Protocol(format!("{what}: the answer is not JSON: {e}")))?;
        let text = v.get("text").and_then(Value::as_str).ok_or_else(|| SpeechError::Protocol(format!("{what}: the answer has no text")))?;
        Ok(super::wyoming::fold_whitespace(text))
    }
}

/// TTS through `POST {base}/audio/speech`, streamed.
pub struct OpenAiTts {
    url: String,
    api_key: Option<String>,
    voice: String,
    model: String,
    response_format: String,
    pcm_rate: u32,
    out_rate: u32,
    http: reqwest::Client,
}

impl OpenAiTts {
    /// `url` is the API base; `voice` the default voice (`alloy` when `None`).
    pub fn new(url: &str, api_key: Option<String>, voice: Option<String>) -> Self {
        OpenAiTts {
            url: base_url(url),
            api_key,
            voice: voice.filter(|v| !v.trim().is_empty()).unwrap_or_else(|| DEFAULT_VOICE.to_owned()),
            model: DEFAULT_TTS_MODEL.to_owned(),
            response_format: "pcm".to_owned(),
            pcm_rate: OPENAI_PCM_RATE,
            out_rate: CALL_RATE,
            http: client(None, Some(TTS_READ_TIMEOUT)),
        }
    }

    pub fn with_model(mut self, model: &str) -> Self {
        self.model = model.to_owned();
        self
    }

    /// `pcm` (default) or `wav`.
    pub fn with_response_format(mut self, format: &str) -> Self {
        self.response_format = format.to_owned();
        self
    }

    /// The rate of raw `pcm` answers (24000 for OpenAI; some compatible servers differ).
    pub fn with_pcm_rate(mut self, rate: u32) -> Self {
        self.pcm_rate = rate.max(1);
        self
    }

    /// The rate of the chunks the stream yields ([`CALL_RATE`] unless set).
    pub fn with_output_rate(mut self, rate: u32) -> Self {
        self.out_rate = rate.max(1);
        self
    }

    /// The longest wait for the next bytes of an answer (20 s by default).
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.http = client(None, Some(timeout));
        self
    }
}

#[async_trait]
impl Tts for OpenAiTts {
    fn id(&self) -> String {
        format!("{}#{}/{}", self.url, self.model, self.voice)
    }

    fn default_voice(&self) -> Option<String> {
        Some(self.voice.clone())
    }

    async fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<AudioStream, SpeechError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let voice = voice.filter(|v| !v.is_empty()).unwrap_or(&self.voice);
        let what = "speech";
        let body = json!({ "model": self.model, "input": text, "voice": voice, "response_format": self.response_format });
        let req = self.http.post(format!("{}/audio/speech", self.url)).json(&body);
        let resp = authorized(req, &self.api_key).send().await.map_err(|e| request_error(what, e))?;
        let resp = check(what, resp).await?;
        let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let wav = content_type.contains("wav") || self.response_format == "wav";
        let state = PcmStream {
            body: Box::pin(resp.bytes_stream()),
            // Raw PCM unless the answer turns out to be a WAV file (decided on the first bytes).
            header: if wav { Header::Wav(Vec::new()) } else { Header::Sniff(Vec::new()) },
            rate: self.pcm_rate,
            odd: None,
            resampler: None,
            out_rate: self.out_rate,
            done: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(state, PcmStream::next)))
    }
}

enum Header {
    /// Not yet known whether the bytes are raw PCM or a WAV file.
    Sniff(Vec<u8>),
    /// A WAV header being collected.
    Wav(Vec<u8>),
    /// In the samples: at most `remaining` more bytes of them (`None`: to the end).
    Data(Option<usize>),
}

struct PcmStream<S> {
    body: S,
    header: Header,
    rate: u32,
    /// A byte of a sample split across two reads.
    odd: Option<u8>,
    resampler: Option<Resampler>,
    out_rate: u32,
    done: bool,
}

impl<S, B> PcmStream<S>
where
    S: Stream<Item = Result<B, reqwest::Error>> + Unpin + Send,
    B: AsRef<[u8]>,
{
    async fn next(mut self) -> Option<(Result<AudioChunk, SpeechError>, Self)> {
        while !self.done {
            match self.body.next().await {
                Some(Ok(bytes)) => match self.take(bytes.as_ref()) {
                    Ok(samples) if samples.is_empty() => {}
                    Ok(samples) => {
                        // Created at the first samples: a WAV header has set the rate by then.
                        let out = self.resampler.get_or_insert_with(|| Resampler::new(self.rate, self.out_rate)).process(&samples);
                        if !out.is_empty() {
                            let rate = self.out_rate;
                            return Some((Ok(AudioChunk { samples: out, rate }), self));
                        }
                    }
                    Err(e) => {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                },
                Some(Err(e)) => {
                    self.done = true;
                    return Some((Err(request_error("speech", e)), self));
                }
                None => {
                    self.done = true;
                    if let Header::Sniff(pending) | Header::Wav(pending) = &self.header
                        && !pending.is_empty()
                    {
                        let n = pending.len();
                        return Some((Err(SpeechError::Protocol(format!("speech: the answer ended after {n} bytes, inside its header"))), self));
                    }
                    let tail = self.resampler.take().map(|mut r| r.flush()).unwrap_or_default();
                    if !tail.is_empty() {
                        let rate = self.out_rate;
                        return Some((Ok(AudioChunk { samples: tail, rate }), self));
                    }
                }
            }
        }
        None
    }

    /// The next bytes of the body → the complete samples in them.
    fn take(&mut self, bytes: &[u8]) -> Result<Vec<i16>, SpeechError> {
        let data: Vec<u8> = match &mut self.header {
            Header::Sniff(pending) => {
                pending.extend_from_slice(bytes);
                if pending.len() < 4 && b"RIFF".starts_with(pending) {
                    return Ok(Vec::new());
                }
                let pending = std::mem::take(pending);
                if pending.starts_with(b"RIFF") {
                    self.header = Header::Wav(Vec::new());
                    return self.take(&pending);
                }
                self.header = Header::Data(None);
                pending
            }
            Header::Wav(pending) => {
                pending.extend_from_slice(bytes);
                match parse_header(pending).map_err(|e| SpeechError::Protocol(format!("speech: {e}")))? {
                    None if pending.len() > 1 << 20 => return Err(SpeechError::Protocol("speech: WAV header longer than 1 MiB".into())),
                    None => return Ok(Vec::new()),
                    Some((format, start, len)) => {
                        if format.bits_per_sample != 16 || format.channels != 1 {
                            return Err(SpeechError::Protocol(format!(
                                "speech: WAV of {} bits, {} channels (16-bit mono expected)",
                                format.bits_per_sample, format.channels
                            )));
                        }
                        self.rate = format.rate;
                        let rest = pending[start..].to_vec();
                        self.header = Header::Data(len);
                        return self.take(&rest);
                    }
                }
            }
            Header::Data(None) => bytes.to_vec(),
            Header::Data(Some(remaining)) => {
                let n = bytes.len().min(*remaining);
                *remaining -= n;
                bytes[..n].to_vec()
            }
        };
        let mut out = Vec::with_capacity(data.len() / 2 + 1);
        let mut rest = &data[..];
        if let Some(lo) = self.odd.take() {
            match rest.split_first() {
                Some((&hi, r)) => {
                    out.push(i16::from_le_bytes([lo, hi]));
                    rest = r;
                }
                None => self.odd = Some(lo),
            }
        }
        let mut pairs = rest.chunks_exact(2);
        out.extend(pairs.by_ref().map(|c| i16::from_le_bytes([c[0], c[1]])));
        if let [b] = pairs.remainder() {
            self.odd = Some(*b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert!(
            matches!(classify_status("x", 401, b"{\"error\":{\"message\":\"Incorrect API key\"}}"), SpeechError::Config(m) if m.contains("Incorrect API key"))
        );
        assert!(matches!(classify_status("x", 403, b""), SpeechError::Config(_)));
        assert!(matches!(classify_status("x", 429, b"slow down"), SpeechError::Unavailable(m) if m.contains("slow down")));
        assert!(matches!(classify_status("x", 503, b""), SpeechError::Unavailable(_)));
        assert!(matches!(classify_status("x", 400, b"{\"error\":\"bad voice\"}"), SpeechError::Server(m) if m.contains("bad voice")));
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("https://api.openai.com/v1/"), "https://api.openai.com/v1");
        assert_eq!(base_url("http://127.0.0.1:9/v1/audio/speech"), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn multipart_fields_and_file() {
        let (ct, body) = multipart_form(&[("model", "whisper-1")], "file", "a.wav", "audio/wav", b"RIFF\r\n--x");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--x\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }
}
