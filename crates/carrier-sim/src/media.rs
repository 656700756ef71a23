//! The carrier side of a bidirectional Media Stream (`<Connect><Stream>`, telephony.md §3).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::audio::{self, FRAME};
use crate::call::{Flow, Party};
use crate::twiml::Element;
use crate::{Cmd, Inner, Step, StreamRecord, WAIT_MAX_MS, extend_audio, mulaw, push_capped, util};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// A pause in agent playout longer than this ends the agent's burst.
const BURST_GAP: Duration = Duration::from_millis(300);
/// The caller hangs up a call that has gone on this long.
const MAX_STREAM: Duration = Duration::from_secs(600);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the script task and the stream loop share.
#[derive(Default)]
struct Live {
    caller_q: VecDeque<u8>,
    received_total: u64,
    playbuf_len: usize,
    last_played: Option<Instant>,
    burst_bytes: u64,
}

enum ScriptCmd {
    Dtmf(char),
    Hangup,
    Drop,
    Burst(u64),
}

fn lock(l: &Mutex<Live>) -> std::sync::MutexGuard<'_, Live> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn with_stream(&self, sid: &str, k: usize, f: impl FnOnce(&mut StreamRecord)) {
        self.with_call(sid, |c| {
            if let Some(s) = c.rec.streams.get_mut(k) {
                f(s)
            }
        });
    }
}

async fn connect(url: &str) -> Result<(Ws, u16), (Option<u16>, String)> {
    if url.starts_with("wss://") {
        return Err((None, "the sim opens ws:// streams only (no TLS)".into()));
    }
    let Some(rest) = url.strip_prefix("ws://") else {
        return Err((None, format!("the Stream url '{url}' is not a ws:// URL")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let request = url.into_client_request().map_err(|e| (None, format!("bad Stream url: {e}")))?;
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr))
        .await
        .map_err(|_| (None, format!("connecting to {addr} timed out")))?
        .map_err(|e| (None, format!("connecting to {addr} failed: {e}")))?;
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))).await {
        Err(_) => Err((None, "the WebSocket handshake timed out".into())),
        Ok(Ok((ws, resp))) => Ok((ws, resp.status().as_u16())),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            Err((Some(status), format!("the WebSocket handshake was refused with HTTP {status}")))
        }
        Ok(Err(e)) => Err((None, format!("the WebSocket handshake failed: {e}"))),
    }
}

/// Open the stream, talk Media Streams until one side ends it, and say what the TwiML runner
/// does next.
pub(crate) async fn run_stream(sim: &Arc<Inner>, sid: &str, stream: &Element, party: &mut Party, cmds: &mut UnboundedReceiver<Cmd>) -> Flow {
    let url = stream.attr("url").unwrap_or("").trim().to_owned();
    let status_cb = stream.attr("statusCallback").map(str::to_owned);
    let status_cb_method = stream.attr("statusCallbackMethod").unwrap_or("POST").to_owned();
    let custom: BTreeMap<String, String> = stream
        .elements()
        .filter(|e| e.name == "Parameter")
        .filter_map(|e| Some((e.attr("name")?.to_owned(), e.attr("value").unwrap_or("").to_owned())))
        .collect();
    let stream_sid = util::sid("MZ");
    let k = sim
        .with_call(sid, |c| {
            c.rec.streams.push(StreamRecord { url: url.clone(), stream_sid: stream_sid.clone(), custom_parameters: custom.clone(), ..Default::default() });
            c.rec.streams.len() - 1
        })
        .unwrap_or(0);
    if url.is_empty() {
        sim.set_error(sid, "an application error has occurred: <Stream> without a url");
        sim.with_stream(sid, k, |s| s.closed_by = "failed".into());
        return Flow::Next;
    }
    let (ws, status) = match connect(&url).await {
        Ok(v) => v,
        Err((status, e)) => {
            sim.set_error(sid, format!("stream {url}: {e}"));
            sim.with_stream(sid, k, |s| {
                s.handshake_status = status;
                s.closed_by = "failed".into();
            });
            stream_event(sim, sid, &stream_sid, status_cb.as_deref(), &status_cb_method, "stream-error");
            // Twilio goes on with the next verb when the stream cannot be opened.
            return Flow::Next;
        }
    };
    sim.with_stream(sid, k, |s| s.handshake_status = Some(status));
    stream_event(sim, sid, &stream_sid, status_cb.as_deref(), &status_cb_method, "stream-started");
    let mut session = Session {
        sim: sim.clone(),
        sid: sid.to_owned(),
        k,
        stream_sid: stream_sid.clone(),
        seq: 0,
        chunk: 0,
        live: Arc::new(Mutex::new(Live::default())),
        playbuf: VecDeque::new(),
        enq_total: 0,
        played_total: 0,
        marks: VecDeque::new(),
        empty_since: None,
        skip_ticks: 0,
    };
    let (flow, closed_by, rest_hangup) = session.run(ws, &custom, party, cmds).await;
    sim.with_stream(sid, k, |s| {
        s.closed_by = closed_by.into();
        s.rest_hangup = rest_hangup;
    });
    stream_event(sim, sid, &stream_sid, status_cb.as_deref(), &status_cb_method, "stream-stopped");
    flow
}

/// `<Stream statusCallback>` events, fire and forget, recorded with the webhooks.
fn stream_event(sim: &Arc<Inner>, sid: &str, stream_sid: &str, url: Option<&str>, method: &str, event: &str) {
    let Some(url) = url else { return };
    let lost = sim.with_call(sid, |c| c.lost).unwrap_or(false);
    let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let params = vec![
        p("AccountSid", &sim.cfg.account_sid),
        p("CallSid", sid),
        p("StreamSid", stream_sid),
        p("StreamEvent", event),
        p("Timestamp", &util::rfc2822(std::time::SystemTime::now())),
    ];
    let (sim, sid, url, method) = (sim.clone(), sid.to_owned(), url.to_owned(), method.to_owned());
    tokio::spawn(async move {
        let status = if lost { 0 } else { sim.send_signed(&url, &method, &params).await.map(|(s, _)| s).unwrap_or(0) };
        sim.with_call(&sid, |c| push_capped(&mut c.rec.webhook_requests, (url, params, status)));
    });
}

struct Session {
    sim: Arc<Inner>,
    sid: String,
    k: usize,
    stream_sid: String,
    seq: u64,
    chunk: u64,
    live: Arc<Mutex<Live>>,
    playbuf: VecDeque<u8>,
    enq_total: u64,
    played_total: u64,
    /// Pending marks with the byte position (in `enq_total`) they wait for.
    marks: VecDeque<(String, u64)>,
    empty_since: Option<Instant>,
    skip_ticks: u64,
}

type Sink = futures_util::stream::SplitSink<Ws, Message>;

impl Session {
    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    async fn send(&mut self, sink: &mut Sink, v: Value) -> bool {
        self.sim.with_stream(&self.sid, self.k, |s| s.messages_sent += 1);
        sink.send(Message::text(v.to_string())).await.is_ok()
    }

    async fn send_media(&mut self, sink: &mut Sink, frame: &[u8]) -> bool {
        self.chunk += 1;
        let seq = self.next_seq();
        let ts = ((self.chunk - 1) * 20).to_string();
        let msg = json!({
            "event": "media",
            "sequenceNumber": seq,
            "streamSid": self.stream_sid,
            "media": {"track": "inbound", "chunk": self.chunk.to_string(), "timestamp": ts, "payload": B64.encode(frame)},
        });
        self.send(sink, msg).await
    }

    async fn send_stop(&mut self, sink: &mut Sink) {
        let seq = self.next_seq();
        let msg = json!({
            "event": "stop",
            "sequenceNumber": seq,
            "streamSid": self.stream_sid,
            "stop": {"accountSid": self.sim.cfg.account_sid, "callSid": self.sid},
        });
        self.send(sink, msg).await;
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    }

    async fn echo_mark(&mut self, sink: &mut Sink, name: String) -> bool {
        let seq = self.next_seq();
        let msg = json!({"event": "mark", "sequenceNumber": seq, "streamSid": self.stream_sid, "mark": {"name": name}});
        self.sim.with_stream(&self.sid, self.k, |s| push_capped(&mut s.marks_echoed, name));
        self.send(sink, msg).await
    }

    async fn run(&mut self, ws: Ws, custom: &BTreeMap<String, String>, party: &mut Party, cmds: &mut UnboundedReceiver<Cmd>) -> (Flow, &'static str, bool) {
        let (mut sink, mut stream) = ws.split();
        let start_msg = json!({
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid,
                "accountSid": self.sim.cfg.account_sid,
                "callSid": self.sid,
                "tracks": ["inbound"],
                "customParameters": custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        });
        if !self.send(&mut sink, json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await {
            return (Flow::Next, "server", false);
        }
        self.seq = 1;
        if !self.send(&mut sink, start_msg).await {
            return (Flow::Next, "server", false);
        }

        let started = Instant::now();
        let (script_tx, mut script_rx) = unbounded_channel();
        let mut script_task = None;
        let mut deadline = started + MAX_STREAM;
        match party {
            Party::Person { script, pos } => {
                script_task = Some(tokio::spawn(run_script(self.sim.clone(), script.steps.clone(), pos.clone(), self.live.clone(), script_tx)));
            }
            Party::Machine { greeting, played } => {
                let max_record = Duration::from_millis(self.sim.lock().voicemail_max_record_ms);
                if *played {
                    deadline = started + max_record;
                } else {
                    let mut pcm = greeting.clone();
                    pcm.extend(audio::beep());
                    deadline = started + Duration::from_millis(audio::ms_of(pcm.len())) + max_record;
                    lock(&self.live).caller_q.extend(mulaw::encode(&pcm));
                    *played = true;
                }
                drop(script_tx);
            }
        }
        let mut script_open = script_task.is_some();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::from_std(started) + Duration::from_millis(20), Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

        let outcome = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if !self.tick(&mut sink).await {
                        break (Flow::Next, "server", false);
                    }
                    if Instant::now() >= deadline {
                        self.send_stop(&mut sink).await;
                        break (Flow::End("completed"), "caller_stop", false);
                    }
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if !self.on_server_text(&mut sink, t.as_str()).await {
                            break (Flow::Next, "server", false);
                        }
                    }
                    Some(Ok(Message::Binary(b))) => {
                        let note = format!("a binary frame of {} bytes", b.len());
                        self.sim.with_stream(&self.sid, self.k, |s| push_capped(&mut s.bad_messages, note));
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break (Flow::Next, "server", false),
                    Some(Ok(_)) => {}
                },
                c = script_rx.recv(), if script_open => match c {
                    None => script_open = false,
                    Some(ScriptCmd::Dtmf(d)) => {
                        let seq = self.next_seq();
                        let msg = json!({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": seq, "dtmf": {"track": "inbound_track", "digit": d.to_string()}});
                        self.sim.with_stream(&self.sid, self.k, |s| s.dtmf_sent.push(d.to_string()));
                        if !self.send(&mut sink, msg).await {
                            break (Flow::Next, "server", false);
                        }
                    }
                    Some(ScriptCmd::Hangup) => {
                        self.send_stop(&mut sink).await;
                        break (Flow::End("completed"), "caller_stop", false);
                    }
                    Some(ScriptCmd::Drop) => {
                        if let Ok(ws) = sink.reunite(stream) {
                            // SO_LINGER 0 turns the close into a reset: no FIN handshake, no close frame.
                            if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                                let _ = tcp.set_zero_linger();
                            }
                            drop(ws);
                        }
                        if let Some(t) = script_task.take() {
                            t.abort();
                        }
                        return (Flow::Next, "dropped", false);
                    }
                    Some(ScriptCmd::Burst(ms)) => {
                        let frames = ms.div_ceil(20);
                        let tone = mulaw::encode(&audio::tone_ms(frames * 20));
                        let mut ok = true;
                        for f in tone.chunks(FRAME) {
                            ok &= self.send_media(&mut sink, f).await;
                        }
                        self.skip_ticks += frames;
                        if !ok {
                            break (Flow::Next, "server", false);
                        }
                    }
                },
                c = cmds.recv() => match c {
                    Some(Cmd::Hangup) | None => {
                        self.send_stop(&mut sink).await;
                        break (Flow::End("completed"), "server", true);
                    }
                    Some(Cmd::Redirect(src)) => {
                        self.send_stop(&mut sink).await;
                        break (Flow::Goto(src), "redirect", false);
                    }
                },
            }
        };
        if let Some(t) = script_task.take() {
            t.abort();
        }
        outcome
    }

    /// One 20 ms tick: send a caller frame, play 20 ms of agent audio, echo the marks it reached.
    async fn tick(&mut self, sink: &mut Sink) -> bool {
        let now = Instant::now();
        let frame: Vec<u8> = {
            let mut live = lock(&self.live);
            if self.skip_ticks > 0 {
                Vec::new()
            } else {
                let n = live.caller_q.len().min(FRAME);
                let mut f: Vec<u8> = live.caller_q.drain(..n).collect();
                f.resize(FRAME, mulaw::SILENCE);
                f
            }
        };
        if frame.is_empty() {
            self.skip_ticks -= 1;
        } else if !self.send_media(sink, &frame).await {
            return false;
        }

        let n = self.playbuf.len().min(FRAME);
        let played: Vec<u8> = self.playbuf.drain(..n).collect();
        self.played_total += n as u64;
        {
            let mut live = lock(&self.live);
            live.playbuf_len = self.playbuf.len();
            if n > 0 {
                live.burst_bytes += n as u64;
                live.last_played = Some(now);
                self.empty_since = None;
            } else {
                let since = *self.empty_since.get_or_insert(now);
                if now.duration_since(since) >= BURST_GAP {
                    live.burst_bytes = 0;
                }
            }
        }
        if n > 0 {
            let pcm = mulaw::decode(&played);
            self.sim.with_stream(&self.sid, self.k, |s| extend_audio(&mut s.heard_audio, &pcm));
        }
        while self.marks.front().is_some_and(|(_, pos)| *pos <= self.played_total) {
            let Some((name, _)) = self.marks.pop_front() else { break };
            if !self.echo_mark(sink, name).await {
                return false;
            }
        }
        true
    }

    fn bad(&self, what: String) {
        self.sim.with_stream(&self.sid, self.k, |s| push_capped(&mut s.bad_messages, what));
    }

    /// Validate and apply one server message; false when the socket failed.
    async fn on_server_text(&mut self, sink: &mut Sink, text: &str) -> bool {
        let short = || text.chars().take(300).collect::<String>();
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.bad(format!("not JSON ({e}): {}", short()));
                return true;
            }
        };
        let event = v.get("event").and_then(Value::as_str).unwrap_or("").to_owned();
        if event != "media" {
            let ev = v.clone();
            self.sim.with_stream(&self.sid, self.k, |s| push_capped(&mut s.server_events, ev));
        }
        if !matches!(event.as_str(), "media" | "mark" | "clear") {
            self.bad(format!("unknown event {event:?}: {}", short()));
            return true;
        }
        if v.get("streamSid").and_then(Value::as_str) != Some(self.stream_sid.as_str()) {
            self.bad(format!("wrong or missing streamSid: {}", short()));
            return true;
        }
        match event.as_str() {
            "media" => {
                let Some(payload) = v.pointer("/media/payload").and_then(Value::as_str) else {
                    self.bad(format!("media without media.payload: {}", short()));
                    return true;
                };
                let bytes = match B64.decode(payload) {
                    Ok(b) => b,
                    Err(e) => {
                        self.bad(format!("media payload is not base64 ({e}): {}", short()));
                        return true;
                    }
                };
                let pcm = mulaw::decode(&bytes);
                self.sim.with_stream(&self.sid, self.k, |s| extend_audio(&mut s.agent_audio, &pcm));
                self.enq_total += bytes.len() as u64;
                self.playbuf.extend(bytes.iter().copied());
                // Bound the playout queue like the recording: past 10 minutes it is a runaway sender.
                while self.playbuf.len() > crate::MAX_AUDIO_SAMPLES {
                    self.playbuf.pop_front();
                    self.played_total += 1;
                }
                let mut live = lock(&self.live);
                live.received_total += bytes.len() as u64;
                live.playbuf_len = self.playbuf.len();
            }
            "mark" => {
                let Some(name) = v.pointer("/mark/name").and_then(Value::as_str).map(str::to_owned) else {
                    self.bad(format!("mark without mark.name: {}", short()));
                    return true;
                };
                let n2 = name.clone();
                self.sim.with_stream(&self.sid, self.k, |s| push_capped(&mut s.marks_received, n2));
                self.marks.push_back((name, self.enq_total));
            }
            _ => {
                let burst_ms = lock(&self.live).burst_bytes / 8;
                self.sim.with_stream(&self.sid, self.k, |s| {
                    s.clears += 1;
                    push_capped(&mut s.played_ms_at_clear, burst_ms);
                });
                self.playbuf.clear();
                self.played_total = self.enq_total;
                {
                    let mut live = lock(&self.live);
                    live.playbuf_len = 0;
                    live.burst_bytes = 0;
                }
                while let Some((name, _)) = self.marks.pop_front() {
                    if !self.echo_mark(sink, name).await {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// The caller following its script. `pos` survives the stream so a redirected call's caller
/// goes on where it was.
async fn run_script(sim: Arc<Inner>, steps: Vec<Step>, pos: Arc<AtomicUsize>, live: Arc<Mutex<Live>>, tx: UnboundedSender<ScriptCmd>) {
    let poll = Duration::from_millis(10);
    let mut mark = 0u64;
    while let Some(step) = steps.get(pos.load(Ordering::SeqCst)) {
        match step {
            Step::Say { text } => {
                let pcm = audio::speak(sim.cfg.tts.as_ref(), text).await;
                lock(&live).caller_q.extend(mulaw::encode(&pcm));
                while !lock(&live).caller_q.is_empty() {
                    tokio::time::sleep(poll).await;
                }
            }
            Step::Silence { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::WaitForAgent { quiet_ms } => {
                let give_up = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
                let quiet = Duration::from_millis(*quiet_ms);
                while Instant::now() < give_up {
                    let done = {
                        let l = lock(&live);
                        l.received_total > mark && l.playbuf_len == 0 && l.last_played.is_none_or(|t| t.elapsed() >= quiet)
                    };
                    if done {
                        break;
                    }
                    tokio::time::sleep(poll).await;
                }
                mark = lock(&live).received_total;
            }
            Step::WaitAgentSpeaking { ms } => {
                let give_up = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
                while Instant::now() < give_up && lock(&live).burst_bytes / 8 < *ms {
                    tokio::time::sleep(poll).await;
                }
                mark = lock(&live).received_total;
            }
            Step::Dtmf { digits } => {
                for d in digits.chars() {
                    let _ = tx.send(ScriptCmd::Dtmf(d));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Step::Hangup => {
                pos.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(ScriptCmd::Hangup);
                return;
            }
            Step::DropSocket => {
                pos.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(ScriptCmd::Drop);
                return;
            }
            Step::Burst { ms } => {
                let _ = tx.send(ScriptCmd::Burst(*ms));
            }
        }
        pos.fetch_add(1, Ordering::SeqCst);
    }
}
