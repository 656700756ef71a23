//! The OpenAI-compatible speech clients against a small fake HTTP server (a raw tokio
//! responder): the requests are well-formed (multipart fields, JSON body, bearer key), the
//! PCM and WAV answers stream out at the call rate, and errors are classified.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialnexa_voice::speech::openai::{OpenAiAsr, OpenAiTts};
use dialnexa_voice::speech::{Asr, CALL_RATE, SpeechError, Tts, asr_from_url, parse_wav, tts_from_url, wav_bytes};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Chunked transfer encoding, one part every `gap`.
    Chunked {
        content_type: &'static str,
        parts: Vec<Vec<u8>>,
        gap: Duration,
    },
    /// Promises more bytes than it sends, then closes.
    Truncated {
        body: Vec<u8>,
        declared: usize,
    },
    /// Reads the request and never answers.
    Hang,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

async fn fake_http(handler: Box<Handler>) -> (String, Arc<Mutex<Vec<Req>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", l.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Req>>> = Arc::default();
    let log = seen.clone();
    let handler: Arc<Handler> = Arc::from(handler);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (log, handler) = (log.clone(), handler.clone());
            tokio::spawn(async move {
                let mut io = BufReader::new(s);
                let mut line = String::new();
                io.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                let mut headers = Vec::new();
                loop {
                    line.clear();
                    io.read_line(&mut line).await.unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    let (n, v) = l.split_once(':').unwrap();
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
                let len: usize = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
                let mut body = vec![0; len];
                io.read_exact(&mut body).await.unwrap();
                let req = Req { method, path, headers, body };
                log.lock().unwrap().push(req.clone());
                let reply = handler(&req);
                let s = io.get_mut();
                match reply {
                    Reply::Full { status, content_type, body } => {
                        let head =
                            format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                        let _ = s.write_all(head.as_bytes()).await;
                        let _ = s.write_all(&body).await;
                    }
                    Reply::Chunked { content_type, parts, gap } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                        let _ = s.write_all(head.as_bytes()).await;
                        for p in parts {
                            let _ = s.write_all(format!("{:x}\r\n", p.len()).as_bytes()).await;
                            let _ = s.write_all(&p).await;
                            let _ = s.write_all(b"\r\n").await;
                            let _ = s.flush().await;
                            tokio::time::sleep(gap).await;
                        }
                        let _ = s.write_all(b"0\r\n\r\n").await;
                    }
                    Reply::Truncated { body, declared } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: audio/pcm\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n");
                        let _ = s.write_all(head.as_bytes()).await;
                        let _ = s.write_all(&body).await;
                        let _ = s.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Reply::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (base, seen)
}

/// A part of a multipart body: (headers, content).
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1).expect("a boundary");
    let delim = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let positions: Vec<usize> = text.windows(delim.len()).enumerate().filter(|(_, w)| *w == delim.as_bytes()).map(|(i, _)| i).collect();
    assert!(text[positions[positions.len() - 1]..].starts_with(format!("{delim}--\r\n").as_bytes()), "closing delimiter");
    for w in positions.windows(2) {
        let part = &text[w[0] + delim.len() + 2..w[1] - 2]; // after "--b\r\n", before "\r\n--b"
        let split = part.windows(4).position(|x| x == b"\r\n\r\n").unwrap();
        parts.push((String::from_utf8(part[..split].to_vec()).unwrap(), part[split + 4..].to_vec()));
    }
    parts
}

fn sine(freq: f64, rate: u32, secs: f64) -> Vec<i16> {
    (0..(f64::from(rate) * secs) as usize).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16).collect()
}

fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[tokio::test]
async fn transcription_requests_are_multipart_with_a_wav_file_and_the_key() {
    let (base, seen) =
        fake_http(Box::new(|_| Reply::Full { status: 200, content_type: "application/json", body: br#"{"text":" Hello,  world. "}"#.to_vec() })).await;
    let asr = OpenAiAsr::new(&base, Some("sk-test-123".into()));
    let audio = sine(440.0, 8000, 0.5);
    assert_eq!(asr.transcribe(&audio, 8000, Some("en")).await.unwrap(), "Hello, world.");
    assert_eq!(asr.id(), format!("{base}#whisper-1"));

    let req = seen.lock().unwrap()[0].clone();
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/audio/transcriptions"));
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-123"));
    let ct = req.header("content-type").unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let parts = multipart_parts(ct, &req.body);
    let field = |name: &str| parts.iter().find(|(h, _)| h.contains(&format!("name=\"{name}\""))).unwrap_or_else(|| panic!("no field {name}: {parts:?}"));
    assert_eq!(field("model").1, b"whisper-1");
    assert_eq!(field("language").1, b"en");
    assert_eq!(field("response_format").1, b"json");
    let (file_headers, file) = field("file");
    assert!(file_headers.contains("filename=\"audio.wav\"") && file_headers.contains("Content-Type: audio/wav"), "{file_headers}");
    let wav = parse_wav(file).unwrap();
    assert_eq!((wav.rate, wav.channels), (8000, 1));
    assert_eq!(wav.samples, audio);

    // Another model, no key, no language: no Authorization header, no language field.
    let asr = OpenAiAsr::new(&format!("{base}/"), None).with_model("whisper-large-v3");
    asr.transcribe(&audio, 8000, None).await.unwrap();
    let req = seen.lock().unwrap()[1].clone();
    assert_eq!(req.header("authorization"), None);
    let parts = multipart_parts(req.header("content-type").unwrap(), &req.body);
    assert!(parts.iter().any(|(h, v)| h.contains("name=\"model\"") && v == b"whisper-large-v3"));
    assert!(!parts.iter().any(|(h, _)| h.contains("name=\"language\"")));

    // Through the URL factory.
    let asr = asr_from_url(&base, Some("sk-x".into())).unwrap();
    assert_eq!(asr.transcribe(&audio, 8000, None).await.unwrap(), "Hello, world.");
    assert_eq!(seen.lock().unwrap()[2].header("authorization"), Some("Bearer sk-x"));
}

#[tokio::test]
async fn speech_streams_24k_pcm_out_at_the_call_rate() {
    let audio = sine(440.0, 24_000, 1.0);
    let bytes = pcm_bytes(&audio);
    // Odd-sized parts: samples split across reads.
    let parts: Vec<Vec<u8>> = bytes.chunks(9_601).map(<[u8]>::to_vec).collect();
    let n_parts = parts.len();
    let (base, seen) = fake_http(Box::new(move |_| Reply::Chunked { content_type: "audio/pcm", parts: parts.clone(), gap: Duration::from_millis(60) })).await;
    let tts = OpenAiTts::new(&base, Some("sk-test".into()), None);
    assert_eq!(tts.default_voice().as_deref(), Some("alloy"));
    let t0 = Instant::now();
    let mut stream = tts.synthesize("Hello there, how can I help?", None).await.unwrap();
    let mut chunks = Vec::new();
    let mut first = None;
    while let Some(c) = stream.next().await {
        chunks.push(c.unwrap());
        first.get_or_insert_with(|| t0.elapsed());
    }
    let total = t0.elapsed();
    assert!(chunks.len() >= n_parts - 1, "streamed: {} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.rate == CALL_RATE));
    let out: Vec<i16> = chunks.iter().flat_map(|c| c.samples.iter().copied()).collect();
    assert_eq!(out.len(), 16_000, "1 s at 16 kHz");
    // The tone survives the split samples and the resampling (no clicks: smooth everywhere).
    let expected = dialnexa_voice::speech::resample(&audio, 24_000, 16_000);
    assert!(out == expected, "chunked streaming equals one-shot resampling");
    assert!(first.unwrap() < total / 2, "first audio {:?} before the answer ended {:?}", first.unwrap(), total);

    let req = seen.lock().unwrap()[0].clone();
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/audio/speech"));
    assert_eq!(req.header("authorization"), Some("Bearer sk-test"));
    assert!(req.header("content-type").unwrap().starts_with("application/json"));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, json!({ "model": "tts-1", "input": "Hello there, how can I help?", "voice": "alloy", "response_format": "pcm" }));

    // A voice per request, a model and a default voice.
    let tts = tts_from_url(&base, Some("sk-test".into()), Some("nova".into())).unwrap();
    assert_eq!(tts.id(), format!("{base}#tts-1/nova"));
    let _ = tts.synthesize("Hi.", None).await.unwrap().collect::<Vec<_>>().await;
    let tts = OpenAiTts::new(&base, None, Some("nova".into())).with_model("gpt-4o-mini-tts");
    let _ = tts.synthesize("Hi.", Some("echo")).await.unwrap().collect::<Vec<_>>().await;
    let seen = seen.lock().unwrap();
    let bodies: Vec<Value> = seen[1..].iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!((bodies[0]["voice"].as_str(), bodies[0]["model"].as_str()), (Some("nova"), Some("tts-1")));
    assert_eq!((bodies[1]["voice"].as_str(), bodies[1]["model"].as_str()), (Some("echo"), Some("gpt-4o-mini-tts")));
    assert_eq!(seen[2].header("authorization"), None);
}

#[tokio::test]
async fn speech_reads_wav_answers() {
    let audio = sine(300.0, 22_050, 0.5);
    let wav = wav_bytes(&audio, 22_050, 1);
    for content_type in ["audio/wav", "application/octet-stream"] {
        // In small parts: the header itself arrives in pieces.
        let parts: Vec<Vec<u8>> = wav.chunks(7_001).map(<[u8]>::to_vec).collect();
        let mut first = parts[0].clone();
        let rest = first.split_off(20);
        let mut parts2 = vec![first, rest];
        parts2.extend(parts[1..].iter().cloned());
        let (base, seen) = fake_http(Box::new(move |_| Reply::Chunked { content_type, parts: parts2.clone(), gap: Duration::from_millis(5) })).await;
        // Asked for wav; or asked for pcm and sent a WAV file anyway (found by its RIFF start).
        let format = if content_type == "audio/wav" { "wav" } else { "pcm" };
        let tts = OpenAiTts::new(&base, None, None).with_response_format(format);
        let out: Vec<i16> = tts.synthesize("Hi.", None).await.unwrap().flat_map(|c| futures_util::stream::iter(c.unwrap().samples)).collect().await;
        assert!(out == dialnexa_voice::speech::resample(&audio, 22_050, 16_000), "{content_type}: read at 22050 Hz ({} samples)", out.len());
        let body: Value = serde_json::from_slice(&seen.lock().unwrap()[0].body).unwrap();
        assert_eq!(body["response_format"], format);
    }
}

#[tokio::test]
async fn errors_are_classified() {
    for (status, want) in [(401, "Config"), (403, "Config"), (429, "Unavailable"), (500, "Unavailable"), (503, "Unavailable"), (400, "Server"), (404, "Server")]
    {
        let (base, _) = fake_http(Box::new(move |_| Reply::Full {
            status,
            content_type: "application/json",
            body: json!({ "error": { "message": format!("failure {status}") } }).to_string().into_bytes(),
        }))
        .await;
        let e = OpenAiAsr::new(&base, Some("sk-secret-key".into())).transcribe(&[1, 2, 3], 16000, None).await.unwrap_err();
        assert!(format!("{e:?}").starts_with(want), "ASR {status}: {e:?}");
        assert!(e.to_string().contains(&format!("failure {status}")), "{e}");
        assert!(!e.to_string().contains("sk-secret-key"), "the key never shows");
        let e = OpenAiTts::new(&base, Some("sk-secret-key".into()), None).synthesize("Hi.", None).await.err().unwrap();
        assert!(format!("{e:?}").starts_with(want), "TTS {status}: {e:?}");
    }

    // Nobody listening: unavailable at once.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", l.local_addr().unwrap());
    drop(l);
    let t0 = Instant::now();
    assert!(matches!(OpenAiAsr::new(&dead, None).transcribe(&[1], 16000, None).await, Err(SpeechError::Unavailable(_))));
    assert!(matches!(OpenAiTts::new(&dead, None, None).synthesize("Hi.", None).await, Err(SpeechError::Unavailable(_))));
    assert!(t0.elapsed() < Duration::from_secs(1));

    // A server that never answers: the timeouts.
    let (base, _) = fake_http(Box::new(|_| Reply::Hang)).await;
    let t0 = Instant::now();
    let e = OpenAiAsr::new(&base, None).with_timeout(Duration::from_millis(300)).transcribe(&[1], 16000, None).await.unwrap_err();
    assert!(matches!(e, SpeechError::Unavailable(ref m) if m.contains("timed out")), "{e:?}");
    let e = OpenAiTts::new(&base, None, None).with_read_timeout(Duration::from_millis(300)).synthesize("Hi.", None).await.err().unwrap();
    assert!(matches!(e, SpeechError::Unavailable(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // A TTS answer cut short: the audio so far, then an error item.
    let (base, _) = fake_http(Box::new(|_| Reply::Truncated { body: pcm_bytes(&sine(440.0, 24_000, 0.2)), declared: 96_000 })).await;
    let items: Vec<_> = OpenAiTts::new(&base, None, None).synthesize("Hi.", None).await.unwrap().collect().await;
    assert!(items.first().is_some_and(Result::is_ok), "{items:?}");
    assert!(matches!(items.last(), Some(Err(SpeechError::Unavailable(_)))), "{:?}", items.last());

    // Answers that are not what was asked for.
    let (base, _) = fake_http(Box::new(|_| Reply::Full { status: 200, content_type: "text/html", body: b"<html>login</html>".to_vec() })).await;
    assert!(matches!(OpenAiAsr::new(&base, None).transcribe(&[1], 16000, None).await, Err(SpeechError::Protocol(_))));
    let (base, _) = fake_http(Box::new(|_| Reply::Full { status: 200, content_type: "audio/wav", body: b"RIFF\0\0\0\0WAVEfmt ".to_vec() })).await;
    let items: Vec<_> = OpenAiTts::new(&base, None, None).synthesize("Hi.", None).await.unwrap().collect().await;
    assert!(matches!(&items[..], [Err(SpeechError::Protocol(_))]), "{items:?}");
}
