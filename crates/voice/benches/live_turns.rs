//! Benchmark (not a test): the platform's own overhead per turn in live calls, with instant
//! fake speech providers, at 200 concurrent calls. Overhead = from detecting the end of the
//! caller's turn to sending the agent's first audio frame. Target: p99 ≤ 5 ms on 2 cores.
//!
//! `cargo bench -p dialnexa-voice --bench live_turns` (CALLS=200 TURNS=6 to change the load).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dialnexa_core::agent::AgentConfig;
use dialnexa_voice::live::{AudioCache, FlowAgent, Inbound, LiveConfig, run_call};
use dialnexa_voice::speech::{Asr, AudioChunk, AudioStream, SpeechError, Tts};
use tokio::sync::mpsc;

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
        let samples: Vec<i16> = (0..16 * 300).map(|i| ((i as f64 * 0.05).sin() * 2000.0) as i16).collect();
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(AudioChunk { samples, rate: 16_000 })])))
    }
}

fn agent() -> FlowAgent {
    let cfg = serde_json::json!({ "kind": "flow", "max_turns": 100, "flow": { "start": "hi", "nodes": [
        { "id": "hi", "type": "say", "text": "Hello, go ahead.", "next": "loop" },
        { "id": "loop", "type": "ask", "text": "Got it. Go on.", "next": "loop" }
    ]}});
    let AgentConfig::Flow(f) = AgentConfig::parse(&cfg).expect("config") else { unreachable!() };
    FlowAgent::new(Arc::new(f), BTreeMap::new()).expect("agent")
}

async fn caller(tx: mpsc::Sender<Inbound>, turns: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let plan: Vec<(u64, f64)> = std::iter::once((800, 0.0)).chain((0..turns).flat_map(|_| [(400, 6000.0), (1200, 0.0)])).collect();
    let mut n = 0u64;
    for (ms, amp) in plan {
        for _ in 0..ms / 20 {
            tick.tick().await;
            let f: Vec<i16> = (0..320).map(|j| (((n * 320 + j) as f64 * 0.09).sin() * amp) as i16).collect();
            n += 1;
            if tx.send(Inbound::Audio(f)).await.is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Inbound::Hangup).await;
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let calls: usize = std::env::var("CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let turns: usize = std::env::var("TURNS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let asr: Arc<dyn Asr> = Arc::new(InstantAsr);
        let tts: Arc<dyn Tts> = Arc::new(InstantTts);
        let cache = AudioCache::new(64 << 20);
        let mut handles = vec![];
        for _ in 0..calls {
            let (in_tx, in_rx) = mpsc::channel(256);
            let (out_tx, mut out_rx) = mpsc::channel(256);
            // The browser's side: drain what the call sends.
            tokio::spawn(async move { while out_rx.recv().await.is_some() {} });
            tokio::spawn(caller(in_tx, turns));
            let cfg = LiveConfig { silence_timeout_ms: 60_000, ..LiveConfig::default() };
            handles.push(tokio::spawn(run_call(Box::new(agent()), asr.clone(), tts.clone(), cache.clone(), in_rx, out_tx, cfg)));
        }
        let mut out = vec![];
        for h in handles {
            out.push(h.await.expect("call"));
        }
        out
    });
    let mut overhead: Vec<u64> = outcomes.iter().flat_map(|o| o.overhead_us.iter().copied()).collect();
    overhead.sort_unstable();
    let answered = overhead.len();
    println!("live turns: {calls} concurrent calls, {turns} caller turns each, instant fake speech providers");
    println!("turns answered: {answered} of {} in {:.1} s", calls * turns, started.elapsed().as_secs_f64());
    println!(
        "platform overhead per turn (end of caller turn detected -> first agent audio sent): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(&overhead, 0.5) as f64 / 1000.0,
        pct(&overhead, 0.9) as f64 / 1000.0,
        pct(&overhead, 0.99) as f64 / 1000.0,
        overhead.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let target = pct(&overhead, 0.99) <= 5_000;
    println!("target p99 <= 5 ms: {}", if target { "met" } else { "NOT met" });
}
