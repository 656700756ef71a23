//! Benchmark (not a test): concurrent phone calls over Twilio Media Streams, measured with the
//! shared load generator `../shared/bench/media-loadgen.py` (the harness that measured the
//! peer). The server runs in this process with instant fake speech providers (each agent turn
//! is 2 s of audio, as in the peer's run) and the real router, carrier webhook, media
//! session, turn loop and voice activity detector; the load generator POSTs the signed voice
//! webhook for each call, streams caller audio to the `<Stream url>` it gets back, and prints
//! one JSON line of figures (lateness, replies, CPU per call-minute).
//!
//! ```sh
//! python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install websockets
//! STREAMS=500 DURATION=30 PYTHON=/tmp/bench-venv/bin/python cargo bench -p dialnexa-server --bench media_streams
//! ```
//! Target: 500 streams, steady p99 lateness ≤ 20 ms, ≤ 0.1 CPU-seconds per call-minute.

use std::sync::Arc;

use async_trait::async_trait;
use dialnexa_server::Config;
use dialnexa_voice::live::AudioCache;
use dialnexa_voice::speech::{Asr, AudioChunk, AudioStream, SpeechError, Tts};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "bench-auth-token";
/// The number the load generator dials.
const NUMBER: &str = "+15005550006";

struct InstantAsr;

#[async_trait]
impl Asr for InstantAsr {
    fn id(&self) -> String {
        "instant".into()
    }
    async fn transcribe(&self, _s: &[i16], _r: u32, _l: Option<&str>) -> Result<String, SpeechError> {
        Ok("yes that is right".into())
    }
}

/// Two seconds of a tone per sentence, at once.
struct InstantTts;

#[async_trait]
impl Tts for InstantTts {
    fn id(&self) -> String {
        "instant".into()
    }
    fn default_voice(&self) -> Option<String> {
        None
    }
    async fn synthesize(&self, _text: &str, _v: Option<&str>) -> Result<AudioStream, SpeechError> {
        let samples: Vec<i16> = (0..16 * 2000).map(|i| ((i as f64 * 0.05).sin() * 4000.0) as i16).collect();
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(AudioChunk { samples, rate: 16_000 })])))
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let streams: usize = env("STREAMS", 500);
    let duration: u64 = env("DURATION", 30);
    let python: String = env("PYTHON", "python3".to_owned());
    let loadgen = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/media-loadgen.py");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Config {
            listen: addr,
            data_dir: dir.path().to_path_buf(),
            admin_key: Some("dnx_bench_admin_key".into()),
            workers: false,
            twilio_account_sid: Some(ACCOUNT.into()),
            twilio_auth_token: Some(TOKEN.into()),
            twilio_api_base: "http://127.0.0.1:9".into(),
            max_live_calls: streams + 50,
            silence_timeout_ms: 60_000,
            ..Config::default()
        };
        let mut state = dialnexa_server::prepare(&config).await.expect("the server starts");
        state.speech =
            Some(Arc::new(dialnexa_server::webcall::Speech { asr: Arc::new(InstantAsr), tts: Arc::new(InstantTts), cache: AudioCache::new(64 << 20) }));
        let server = tokio::spawn(dialnexa_server::serve(state, listener, std::future::pending()));
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let post = |path: &str, body: serde_json::Value| http.post(format!("{base}{path}")).bearer_auth("dnx_bench_admin_key").json(&body).send();
        let agent = post(
            "/v1/agents",
            serde_json::json!({ "name": "Bench", "config": { "kind": "flow", "max_turns": 1000, "flow": { "start": "hi", "nodes": [
                { "id": "hi", "type": "say", "text": "Hello, go ahead.", "next": "loop" },
                { "id": "loop", "type": "ask", "text": "Got it. Go on.", "next": "loop" }
            ]}}}),
        )
        .await
        .expect("agent")
        .json::<serde_json::Value>()
        .await
        .expect("agent json");
        let agent_id = agent["agent_id"].as_str().expect("agent id").to_owned();
        post(&format!("/v1/agents/{agent_id}/publish"), serde_json::json!({})).await.expect("publish");
        post("/v1/phone-numbers", serde_json::json!({ "phone_number": NUMBER, "inbound_agent_id": agent_id })).await.expect("number");
        eprintln!("media_streams: {streams} streams for {duration} s against {base} (this process, pid {})", std::process::id());
        let out = tokio::process::Command::new(&python)
            .arg(&loadgen)
            .args(["--twiml-url", &format!("{base}/telephony/twilio/voice"), "--twilio-auth-token", TOKEN])
            .args(["-n", &streams.to_string(), "-d", &duration.to_string(), "--server-pid", &std::process::id().to_string(), "--label", "dialnexa"])
            .output()
            .await
            .expect("the load generator runs (PYTHON with websockets installed)");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
        server.abort();
    });
}
