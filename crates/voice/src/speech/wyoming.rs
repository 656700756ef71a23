//! The Wyoming protocol: the offline speech servers wyoming-faster-whisper (ASR) and
//! wyoming-piper (TTS), started by `scripts/speech-servers` (docs/voice-speech.md).
//!
//! An event is one JSON header line ending in `\n` (`type`, optional `version`,
//! `data_length`, `payload_length`), then `data_length` bytes of JSON (merged over an inline
//! `data` object, which is also accepted), then `payload_length` raw bytes.
//!
//! - ASR, one utterance per connection: `transcribe {language?}`, `audio-start`,
//!   `audio-chunk`* (100 ms each), `audio-stop` → `transcript {text}`; the server closes after it.
//! - TTS, a connection per request: `synthesize {text, voice: {name}}` → `audio-start`,
//!   `audio-chunk`*, `audio-stop`. wyoming-piper synthesizes sentence by sentence, so the
//!   first chunk comes after the first sentence; chunks are resampled to [`CALL_RATE`] (or
//!   the rate set with [`WyomingTts::with_output_rate`]) as they arrive. Only the configured
//!   voice is ever named: wyoming-piper downloads any catalog voice a client names.
//! - `describe` → `info` (wyoming-piper's is ~86 KB), `error {text, code}` → [`SpeechError::Server`].
//!
//! A refused connection, a connect or read timeout, or a server that goes away is
//! [`SpeechError::Unavailable`]; on a TTS stream it is the stream's last item.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::resample::Resampler;
use super::{Asr, AudioChunk, AudioStream, CALL_RATE, SpeechError, Tts};

/// A header line longer than this is a protocol error.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// `data_length` and `payload_length` above this are protocol errors.
pub const MAX_SECTION_BYTES: u64 = 32 << 20;
/// Audio sent to the ASR server per `audio-chunk`.
pub const ASR_CHUNK_MS: u32 = 100;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Waiting for the transcript of one utterance (about 0.3 s on 2 cores for a sentence).
pub const DEFAULT_ASR_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting for the next TTS event (the first chunk comes after the first sentence is synthesized).
pub const DEFAULT_TTS_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One Wyoming event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// The `type` (`audio-chunk`, `transcript`, ...).
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: impl Into<String>) -> Self {
        Event { kind: kind.into(), ..Event::default() }
    }

    /// Set the data (an object; other values are ignored).
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    /// The wire form: header line, data, payload (the `data_length` form the servers send).
    pub fn encode(&self) -> Vec<u8> {
        let data = if self.data.is_empty() { Vec::new() } else { serde_json::to_vec(&self.data).unwrap_or_default() };
        let mut header = Map::new();
        header.insert("type".into(), Value::String(self.kind.clone()));
        if !data.is_empty() {
            header.insert("data_length".into(), json!(data.len()));
        }
        if !self.payload.is_empty() {
            header.insert("payload_length".into(), json!(self.payload.len()));
        }
        let mut out = serde_json::to_vec(&header).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(&data);
        out.extend_from_slice(&self.payload);
        out
    }
}

fn lost(e: std::io::Error) -> SpeechError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        SpeechError::Unavailable("the speech server closed the connection in the middle of an event".into())
    } else {
        SpeechError::Unavailable(format!("connection to the speech server lost: {e}"))
    }
}

/// Read one event; `Ok(None)` at a clean end of the stream (between events).
pub async fn read_event<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Option<Event>, SpeechError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *reader).take(MAX_HEADER_BYTES).read_until(b'\n', &mut line).await.map_err(lost)?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            if n as u64 >= MAX_HEADER_BYTES {
                return Err(SpeechError::Protocol(format!("event header longer than {MAX_HEADER_BYTES} bytes")));
            }
            return Err(SpeechError::Unavailable("the speech server closed the connection in the middle of an event header".into()));
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    let header: Map<String, Value> = serde_json::from_slice(&line).map_err(|e| SpeechError::Protocol(format!("bad event header ({e}): {}", excerpt(&line))))?;
    let kind =
        header.get("type").and_then(Value::as_str).ok_or_else(|| SpeechError::Protocol(format!("event header without a type: {}", excerpt(&line))))?.to_owned();
    let length = |key: &str| -> Result<usize, SpeechError> {
        match header.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_SECTION_BYTES => Ok(n as usize),
                _ => Err(SpeechError::Protocol(format!("bad {key} {v} in '{kind}'"))),
            },
        }
    };
    let (data_len, payload_len) = (length("data_length")?, length("payload_length")?);
    let mut data = match header.get("data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if data_len > 0 {
        let mut buf = vec![0; data_len];
        reader.read_exact(&mut buf).await.map_err(lost)?;
        match serde_json::from_slice::<Value>(&buf) {
            Ok(Value::Object(m)) => data.extend(m),
            Ok(_) => return Err(SpeechError::Protocol(format!("the data of '{kind}' is not a JSON object"))),
            Err(e) => return Err(SpeechError::Protocol(format!("bad data in '{kind}': {e}"))),
        }
    }
    let mut payload = vec![0; payload_len];
    if payload_len > 0 {
        reader.read_exact(&mut payload).await.map_err(lost)?;
    }
    Ok(Some(Event { kind, data, payload }))
}

/// Write one event (not flushed when `writer` buffers).
pub async fn write_event<W: AsyncWrite + Unpin>(writer: &mut W, event: &Event) -> Result<(), SpeechError> {
    writer.write_all(&event.encode()).await.map_err(lost)
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim_end().to_owned()
}

/// Trim a transcript and fold its runs of whitespace (the servers start with a space and may
/// put two between words).
pub fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A connection to a Wyoming server with a read timeout per event.
struct Conn {
    io: BufReader<TcpStream>,
    addr: String,
    read_timeout: Duration,
}

impl Conn {
    async fn open(addr: &str, connect_timeout: Duration, read_timeout: Duration) -> Result<Conn, SpeechError> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SpeechError::Unavailable(format!("cannot connect to wyoming://{addr}: {e}"))),
            Err(_) => return Err(SpeechError::Unavailable(format!("cannot connect to wyoming://{addr}: no answer within {connect_timeout:?}"))),
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn { io: BufReader::with_capacity(64 * 1024, stream), addr: addr.to_owned(), read_timeout })
    }

    async fn send(&mut self, event: &Event) -> Result<(), SpeechError> {
        write_event(self.io.get_mut(), event).await
    }

    async fn recv(&mut self) -> Result<Option<Event>, SpeechError> {
        match tokio::time::timeout(self.read_timeout, read_event(&mut self.io)).await {
            Ok(r) => r,
            Err(_) => Err(SpeechError::Unavailable(format!("wyoming://{} sent nothing for {:?}", self.addr, self.read_timeout))),
        }
    }

    /// After a failed write: the server may have said why before closing.
    async fn why_closed(&mut self, write_error: SpeechError) -> SpeechError {
        match tokio::time::timeout(Duration::from_millis(200), read_event(&mut self.io)).await {
            Ok(Ok(Some(e))) if e.kind == "error" => server_error(&e),
            _ => write_error,
        }
    }
}

fn server_error(event: &Event) -> SpeechError {
    let text = event.str("text").unwrap_or("unknown error");
    match event.str("code") {
        Some(code) => SpeechError::Server(format!("{text} ({code})")),
        None => SpeechError::Server(text.to_owned()),
    }
}

/// `describe` → the `info` event's data (programs, models, voices, ...).
pub async fn describe(addr: &str, connect_timeout: Duration, read_timeout: Duration) -> Result<Value, SpeechError> {
    let mut conn = Conn::open(addr, connect_timeout, read_timeout).await?;
    conn.send(&Event::new("describe")).await?;
    loop {
        match conn.recv().await? {
            Some(e) if e.kind == "info" => return Ok(Value::Object(e.data)),
            Some(e) if e.kind == "error" => return Err(server_error(&e)),
            Some(_) => continue,
            None => return Err(SpeechError::Unavailable(format!("wyoming://{addr} closed the connection before answering describe"))),
        }
    }
}

/// Little-endian PCM of `width` bytes per sample and `channels` channels → mono 16-bit.
fn decode_audio(payload: &[u8], width: u64, channels: u64) -> Result<Vec<i16>, SpeechError> {
    let bits = match width {
        2 => 16,
        3 => 24,
        4 => 32,
        _ => return Err(SpeechError::Protocol(format!("unsupported audio width {width}"))),
    };
    let samples = super::wav::decode_pcm(payload, bits);
    let channels = u16::try_from(channels.max(1)).map_err(|_| SpeechError::Protocol(format!("bad channel count {channels}")))?;
    Ok(super::wav::to_mono(&samples, channels))
}

/// ASR over Wyoming (wyoming-faster-whisper): one connection per utterance.
pub struct WyomingAsr {
    addr: String,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl WyomingAsr {
    /// `addr` is `HOST:PORT`.
    pub fn new(addr: &str) -> Self {
        WyomingAsr { addr: addr.to_owned(), connect_timeout: DEFAULT_CONNECT_TIMEOUT, read_timeout: DEFAULT_ASR_READ_TIMEOUT }
    }

    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    /// The server's `info`.
    pub async fn describe(&self) -> Result<Value, SpeechError> {
        describe(&self.addr, self.connect_timeout, self.read_timeout).await
    }

    async fn send_utterance(&self, conn: &mut Conn, samples: &[i16], rate: u32, language: Option<&str>) -> Result<(), SpeechError> {
        let transcribe = match language {
            Some(l) => Event::new("transcribe").with_data(json!({ "language": l })),
            None => Event::new("transcribe"),
        };
        conn.send(&transcribe).await?;
        conn.send(&Event::new("audio-start").with_data(json!({ "rate": rate, "width": 2, "channels": 1, "timestamp": 0 }))).await?;
        let per_chunk = (rate as usize * ASR_CHUNK_MS as usize / 1000).max(1);
        let mut sent = 0u64;
        let mut bytes = Vec::with_capacity(per_chunk * 2);
        for chunk in samples.chunks(per_chunk) {
            bytes.clear();
            bytes.extend(chunk.iter().flat_map(|s| s.to_le_bytes()));
            let timestamp = sent * 1000 / u64::from(rate);
            let event =
                Event::new("audio-chunk").with_data(json!({ "rate": rate, "width": 2, "channels": 1, "timestamp": timestamp })).with_payload(bytes.clone());
            conn.send(&event).await?;
            sent += chunk.len() as u64;
        }
        conn.send(&Event::new("audio-stop").with_data(json!({ "timestamp": sent * 1000 / u64::from(rate) }))).await
    }
}

#[async_trait]
impl Asr for WyomingAsr {
    fn id(&self) -> String {
        format!("wyoming://{}", self.addr)
    }

    async fn transcribe(&self, samples: &[i16], rate: u32, language: Option<&str>) -> Result<String, SpeechError> {
        if rate == 0 {
            return Err(SpeechError::Config("audio with a sample rate of 0".into()));
        }
        if samples.is_empty() {
            return Ok(String::new());
        }
        let mut conn = Conn::open(&self.addr, self.connect_timeout, self.read_timeout).await?;
        if let Err(e) = self.send_utterance(&mut conn, samples, rate, language).await {
            return Err(conn.why_closed(e).await);
        }
        loop {
            match conn.recv().await? {
                Some(e) if e.kind == "transcript" => return Ok(fold_whitespace(e.str("text").unwrap_or(""))),
                Some(e) if e.kind == "error" => return Err(server_error(&e)),
                // transcript-start / transcript-chunk (streaming servers), info, ...: the final transcript follows.
                Some(_) => continue,
                None => return Err(SpeechError::Unavailable(format!("wyoming://{} closed the connection before the transcript", self.addr))),
            }
        }
    }
}

/// TTS over Wyoming (wyoming-piper): a connection per request, audio streamed as it comes.
pub struct WyomingTts {
    addr: String,
    voice: Option<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    out_rate: u32,
    warned_voice: AtomicBool,
}

impl WyomingTts {
    /// `addr` is `HOST:PORT`; `voice` the installed voice (`en_US-joe-medium`), or `None` for the
    /// server's default (`--voice`). No other voice is ever sent to the server.
    pub fn new(addr: &str, voice: Option<String>) -> Self {
        WyomingTts {
            addr: addr.to_owned(),
            voice: voice.filter(|v| !v.trim().is_empty()),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_TTS_READ_TIMEOUT,
            out_rate: CALL_RATE,
            warned_voice: AtomicBool::new(false),
        }
    }

    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    /// The rate of the chunks the stream yields ([`CALL_RATE`] unless set; e.g. 8000 for a phone leg).
    pub fn with_output_rate(mut self, rate: u32) -> Self {
        self.out_rate = rate.max(1);
        self
    }

    /// The server's `info` (wyoming-piper lists its whole catalog as installed: do not trust it).
    pub async fn describe(&self) -> Result<Value, SpeechError> {
        describe(&self.addr, self.connect_timeout, self.read_timeout).await
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

    async fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<AudioStream, SpeechError> {
        if let Some(asked) = voice.filter(|v| Some(*v) != self.voice.as_deref() && !v.is_empty())
            && !self.warned_voice.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(asked, configured = ?self.voice, "the Wyoming TTS speaks only its configured voice: a request for another voice uses it instead");
        }
        let text = text.trim();
        if text.is_empty() {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let mut conn = Conn::open(&self.addr, self.connect_timeout, self.read_timeout).await?;
        let mut data = json!({ "text": text });
        if let Some(v) = &self.voice {
            data["voice"] = json!({ "name": v });
        }
        if let Err(e) = conn.send(&Event::new("synthesize").with_data(data)).await {
            return Err(conn.why_closed(e).await);
        }
        let state = TtsStream { conn, out_rate: self.out_rate, format: None, resampler: None, done: false };
        Ok(Box::pin(futures_util::stream::unfold(state, TtsStream::next)))
    }
}

struct TtsStream {
    conn: Conn,
    out_rate: u32,
    /// rate, width, channels from `audio-start` (each chunk may repeat them).
    format: Option<(u64, u64, u64)>,
    resampler: Option<Resampler>,
    done: bool,
}

impl TtsStream {
    async fn next(mut self) -> Option<(Result<AudioChunk, SpeechError>, TtsStream)> {
        while !self.done {
            let event = match self.conn.recv().await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    self.done = true;
                    let addr = &self.conn.addr;
                    return Some((Err(SpeechError::Unavailable(format!("wyoming://{addr} closed the connection in the middle of the audio"))), self));
                }
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            };
            match event.kind.as_str() {
                "audio-start" => {
                    let fmt = (event.u64("rate").unwrap_or(22050), event.u64("width").unwrap_or(2), event.u64("channels").unwrap_or(1));
                    self.format = Some(fmt);
                }
                "audio-chunk" => {
                    let (r0, w0, c0) = self.format.unwrap_or((22050, 2, 1));
                    let (rate, width, channels) = (event.u64("rate").unwrap_or(r0), event.u64("width").unwrap_or(w0), event.u64("channels").unwrap_or(c0));
                    let samples = match decode_audio(&event.payload, width, channels) {
                        Ok(s) => s,
                        Err(e) => {
                            self.done = true;
                            return Some((Err(e), self));
                        }
                    };
                    let rate = u32::try_from(rate).unwrap_or(0);
                    if rate == 0 {
                        self.done = true;
                        return Some((Err(SpeechError::Protocol("audio-chunk with a rate of 0".into())), self));
                    }
                    let mut out = Vec::new();
                    if self.resampler.as_ref().is_some_and(|r| r.from_rate() != rate) {
                        // The rate changed mid-stream: finish the old one.
                        out.extend(self.resampler.take().map(|mut r| r.flush()).unwrap_or_default());
                    }
                    let resampler = self.resampler.get_or_insert_with(|| Resampler::new(rate, self.out_rate));
                    out.extend(resampler.process(&samples));
                    if !out.is_empty() {
                        let rate = self.out_rate;
                        return Some((Ok(AudioChunk { samples: out, rate }), self));
                    }
                }
                "audio-stop" => {
                    self.done = true;
                    let tail = self.resampler.take().map(|mut r| r.flush()).unwrap_or_default();
                    if !tail.is_empty() {
                        let rate = self.out_rate;
                        return Some((Ok(AudioChunk { samples: tail, rate }), self));
                    }
                }
                "error" => {
                    self.done = true;
                    let e = server_error(&event);
                    return Some((Err(e), self));
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, SpeechError> {
        let mut r = std::io::Cursor::new(bytes.to_vec());
        let mut out = Vec::new();
        while let Some(e) = read_event(&mut r).await? {
            out.push(e);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn framing_round_trips() {
        let events = vec![
            Event::new("describe"),
            Event::new("synthesize").with_data(json!({ "text": "Héllo, wörld — “quoted”\nline", "voice": { "name": "en_US-joe-medium" } })),
            Event::new("audio-chunk")
                .with_data(json!({ "rate": 22050, "width": 2, "channels": 1, "timestamp": null }))
                .with_payload((0..=255u8).cycle().take(2048).collect()),
            Event::new("audio-stop"),
        ];
        let mut wire = Vec::new();
        for e in &events {
            wire.extend(e.encode());
        }
        assert_eq!(decode_all(&wire).await.unwrap(), events);
        // The header line is JSON with the lengths in bytes; data is not newline-terminated.
        let enc = events[1].encode();
        let nl = enc.iter().position(|&b| b == b'\n').unwrap();
        let header: Value = serde_json::from_slice(&enc[..nl]).unwrap();
        assert_eq!(header["type"], "synthesize");
        assert_eq!(header["data_length"].as_u64().unwrap() as usize, enc.len() - nl - 1);
        assert!(header.get("payload_length").is_none());
    }

    #[tokio::test]
    async fn reads_inline_data_versions_and_large_messages() {
        // Inline data, merged with data_length data; a version; blank lines between events.
        let data = br#"{"text":"from data_length"}"#;
        let mut wire =
            format!("{{\"type\":\"transcript\",\"version\":\"1.8.0\",\"data\":{{\"language\":\"en\",\"text\":\"inline\"}},\"data_length\":{}}}\n", data.len())
                .into_bytes();
        wire.extend_from_slice(data);
        wire.extend_from_slice(b"\n{\"type\":\"transcript\",\"data\":{\"text\":\" only  inline \"}}\n");
        let events = decode_all(&wire).await.unwrap();
        assert_eq!(events[0].str("text"), Some("from data_length"));
        assert_eq!(events[0].str("language"), Some("en"));
        assert_eq!(fold_whitespace(events[1].str("text").unwrap()), "only inline");

        // An info message of ~1 MB.
        let voices: Vec<Value> = (0..5000).map(|i| json!({ "name": format!("voice-{i}"), "installed": true, "description": "x".repeat(150) })).collect();
        let info = Event::new("info").with_data(json!({ "tts": [{ "name": "piper", "voices": voices }] }));
        let enc = info.encode();
        assert!(enc.len() > 900_000);
        let back = decode_all(&enc).await.unwrap();
        assert_eq!(back, vec![info]);
    }

    #[tokio::test]
    async fn bad_input_is_an_error_not_a_panic() {
        for (wire, want) in [
            (&b"not json\n"[..], "Protocol"),
            (b"{\"data\":{}}\n", "Protocol"),
            (b"{\"type\":\"x\",\"data_length\":-1}\n", "Protocol"),
            (b"{\"type\":\"x\",\"payload_length\":99999999999}\n", "Protocol"),
            (b"{\"type\":\"x\",\"data_length\":3}\n[1]", "Protocol"),
            (b"{\"type\":\"x\",\"data_length\":10}\n{}", "Unavailable"),
            (b"{\"type\":\"x\",\"payload_length\":10}\nabc", "Unavailable"),
            (b"{\"type\":\"x\"", "Unavailable"),
        ] {
            let err = decode_all(wire).await.unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{:?} → {err:?}", String::from_utf8_lossy(wire));
        }
        let long = vec![b' '; MAX_HEADER_BYTES as usize + 10];
        let mut long = long;
        long[0] = b'{';
        assert!(matches!(decode_all(&long).await, Err(SpeechError::Protocol(_))));
    }

    #[test]
    fn decodes_audio_formats() {
        assert_eq!(decode_audio(&[1, 0, 255, 255], 2, 1).unwrap(), vec![1, -1]);
        assert_eq!(decode_audio(&[100, 0, 200, 0], 2, 2).unwrap(), vec![150]);
        assert!(decode_audio(&[1, 2], 1, 1).is_err());
    }
}
