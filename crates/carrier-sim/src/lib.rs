//! A stateful fake of Twilio (the carrier) for end-to-end tests, following
//! `shared/reference/telephony.md`: it signs and sends voice webhooks, executes the TwiML it gets
//! back, speaks Media Streams as the carrier side of `<Connect><Stream>`, serves the Calls REST
//! API (Basic auth, idempotency token, redirects, hangups), delivers status callbacks in order,
//! simulates machine detection, DTMF, `<Dial>` legs and (minimal) conferences.
//!
//! It never does the server's work: it does not dedupe callbacks, does not retry, signs every
//! request (the server verifies) and records everything the server sent, valid or not.
//!
//! Running it stand-alone (`dialnexa dev carrier`): [`serve_forever`], or [`CarrierSim::start_on`]
//! and keep the handle; the same listener serves the REST API under `/2010-04-01/` and a JSON
//! control API under `/sim/` (`POST /sim/numbers`, `POST /sim/callees`, `POST /sim/calls`,
//! `GET /sim/calls`, `GET /sim/calls/{sid}`).

mod audio;
mod call;
mod media;
pub mod mulaw;
mod rest;
mod sign;
mod twiml;
mod util;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use dialnexa_voice::speech::Tts;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use sign::signature;

/// Recorded audio per stream is capped at 10 minutes of 8 kHz samples.
pub const MAX_AUDIO_SAMPLES: usize = 8000 * 600;
/// Recorded lists (REST requests, callbacks, messages) are capped at this many entries.
pub const MAX_LIST: usize = 10_000;
/// How long `WaitForAgent` / `WaitAgentSpeaking` wait before the caller goes on anyway.
pub const WAIT_MAX_MS: u64 = 20_000;

#[derive(Clone)]
pub struct SimConfig {
    pub account_sid: String,
    pub auth_token: String,
    /// Voices the caller's `Say` steps and voicemail greetings; without it, a speech-like tone.
    pub tts: Option<Arc<dyn Tts>>,
}

impl SimConfig {
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        SimConfig { account_sid: account_sid.into(), auth_token: auth_token.into(), tts: None }
    }

    pub fn with_tts(mut self, tts: Arc<dyn Tts>) -> Self {
        self.tts = Some(tts);
        self
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig").field("account_sid", &self.account_sid).field("tts", &self.tts.as_ref().map(|t| t.id())).finish_non_exhaustive()
    }
}

/// What the far end of a dialed call does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Callee {
    /// A person answers after `script.ring_ms` (default 300) and follows the script.
    Answer {
        script: Script,
    },
    Busy,
    NoAnswer,
    Fail,
    /// An answering machine: the greeting (synthesized), a 0.5 s 1 kHz beep, then it records
    /// until the server hangs up or [`CarrierSim::set_voicemail_max_record_ms`] (default 20 s) passes.
    Voicemail {
        greeting: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    pub steps: Vec<Step>,
    /// For callees: how long the phone rings before the person answers (default 300 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_ms: Option<u64>,
}

impl Script {
    pub fn new(steps: Vec<Step>) -> Self {
        Script { steps, ring_ms: None }
    }

    pub fn with_ring_ms(mut self, ms: u64) -> Self {
        self.ring_ms = Some(ms);
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Speak now (streamed in real time, 20 ms frames); the step lasts as long as the speech.
    Say {
        text: String,
    },
    Silence {
        ms: u64,
    },
    /// Wait until agent audio has arrived since the previous wait step ended (or the stream
    /// started) and then nothing has played for `quiet_ms`; gives up after [`WAIT_MAX_MS`].
    WaitForAgent {
        quiet_ms: u64,
    },
    /// Wait until agent audio has been playing for `ms` in the current agent burst (a burst
    /// ends after 300 ms with nothing playing); gives up after [`WAIT_MAX_MS`].
    WaitAgentSpeaking {
        ms: u64,
    },
    /// One `dtmf` message per digit, 100 ms apart.
    Dtmf {
        digits: String,
    },
    /// Send `stop`, close the socket; the call completes.
    Hangup,
    /// Close the TCP connection abruptly (RST): no `stop`, no close frame.
    DropSocket,
    /// Send `ms` of speech-like audio at once; the real-time frames then pause for as long,
    /// so the stream's clock stays right on average (network jitter).
    Burst {
        ms: u64,
    },
}

/// One status-callback delivery (or a deliberate non-delivery).
#[derive(Debug, Clone, Serialize)]
pub struct Callback {
    pub url: String,
    /// `initiated` | `ringing` | `answered` | `completed`.
    pub event: String,
    pub call_status: String,
    pub params: Vec<(String, String)>,
    /// The HTTP status the server answered.
    pub status: Option<u16>,
    /// A transport error, or "dropped by the sim" for lost callbacks.
    pub error: Option<String>,
    pub delivered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialRecord {
    pub numbers: Vec<String>,
    pub conference: Option<String>,
    pub action: Option<String>,
    /// `completed` | `answered` | `busy` | `no-answer` | `failed` | `canceled` (empty while dialing).
    pub dial_call_status: String,
    pub dial_call_sid: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestRequest {
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Query and form parameters, in order.
    pub params: Vec<(String, String)>,
    pub auth_ok: bool,
    pub status: u16,
    pub idempotency_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamRecord {
    pub url: String,
    pub stream_sid: String,
    pub custom_parameters: BTreeMap<String, String>,
    /// 101 when accepted, the HTTP status when refused, None when no HTTP answer came.
    pub handshake_status: Option<u16>,
    /// What the server sent, decoded to 8 kHz PCM, in arrival order.
    pub agent_audio: Vec<i16>,
    /// What played to the caller (cleared audio never plays).
    pub heard_audio: Vec<i16>,
    /// Per `clear`: ms of agent audio that had played in the current burst.
    pub played_ms_at_clear: Vec<u64>,
    pub marks_received: Vec<String>,
    pub marks_echoed: Vec<String>,
    pub clears: u32,
    /// Every non-media JSON message the server sent.
    pub server_events: Vec<serde_json::Value>,
    /// Server messages that were not valid Media Streams JSON (or named another stream).
    pub bad_messages: Vec<String>,
    /// `server` (socket closed, or the call hung up through REST) | `caller_stop` | `dropped` |
    /// `redirect` | `failed` (the WebSocket could not be opened); empty while open.
    pub closed_by: String,
    /// The stream ended because the server hung the call up through REST.
    pub rest_hangup: bool,
    /// Caller messages sent (connected, start, media, dtmf, mark, stop).
    pub messages_sent: u64,
    pub dtmf_sent: Vec<String>,
}

/// (url, params, HTTP status answered or 0).
pub type WebhookRequest = (String, Vec<(String, String)>, u16);

#[derive(Debug, Clone, Default, Serialize)]
pub struct SimCall {
    pub sid: String,
    pub from: String,
    pub to: String,
    /// `inbound` | `outbound-api` | `outbound-dial`.
    pub direction: String,
    pub status: String,
    pub statuses: Vec<String>,
    pub answered_by: Option<String>,
    /// Every TwiML document executed, in order.
    pub twiml: Vec<String>,
    /// Voice webhooks, `<Redirect>`/`Url=` fetches, `<Dial action>` and stream status callbacks:
    /// (url, params, HTTP status answered, 0 when none).
    pub webhook_requests: Vec<WebhookRequest>,
    pub callbacks: Vec<Callback>,
    /// The last media stream.
    pub stream: Option<StreamRecord>,
    pub streams: Vec<StreamRecord>,
    pub dials: Vec<DialRecord>,
    pub duration_secs: u64,
    pub error: Option<String>,
    /// `<Say>` texts executed.
    pub said: Vec<String>,
    /// The `<Reject reason>` when the call was rejected.
    pub reject_reason: Option<String>,
    pub parent_call_sid: Option<String>,
    /// Conference names this call joined.
    pub conferences: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum SimError {
    /// `call_in` to a number the account does not hold.
    UnknownNumber(String),
    InvalidNumber(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::UnknownNumber(n) => write!(f, "the account holds no number {n}"),
            SimError::InvalidNumber(n) => write!(f, "'{n}' is not an E.164 number"),
        }
    }
}

impl std::error::Error for SimError {}

// ---------------------------------------------------------------------------------------------
// Shared state.

#[derive(Debug, Clone)]
pub(crate) enum Source {
    Inline(String),
    /// A URL to fetch TwiML from, with parameters beyond the call's own (a Dial action's).
    Fetch {
        url: String,
        method: String,
        extra: Vec<(String, String)>,
    },
}

#[derive(Debug)]
pub(crate) enum Cmd {
    Hangup,
    Redirect(Source),
}

pub(crate) struct Number {
    voice_url: String,
    status_callback: Option<String>,
}

pub(crate) struct CallEntry {
    pub(crate) rec: SimCall,
    cb_url: Option<String>,
    cb_method: String,
    cb_events: Vec<String>,
    /// Callbacks and webhooks of this call are never delivered (the server looks down).
    pub(crate) lost: bool,
    dropped: bool,
    cb_seq: u64,
    pending_cb: usize,
    active: bool,
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
    cb_tx: mpsc::UnboundedSender<CbJob>,
    /// What runs once an outbound call is answered (a REST update may replace it while ringing).
    pub(crate) source: Option<Source>,
    pub(crate) machine_detection: Option<String>,
    pub(crate) ring_timeout_s: u64,
    created: SystemTime,
    answered: Option<(SystemTime, Instant)>,
    ended: Option<SystemTime>,
    updated: SystemTime,
}

pub(crate) struct Conference {
    pub(crate) sid: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) created: SystemTime,
    /// (call sid, label, end_conference_on_exit, still in)
    pub(crate) participants: Vec<Participant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub(crate) call_sid: String,
    pub(crate) label: Option<String>,
    pub(crate) end_on_exit: bool,
    pub(crate) present: bool,
}

pub(crate) struct State {
    numbers: HashMap<String, Number>,
    pub(crate) callees: HashMap<String, Callee>,
    pub(crate) calls: Vec<CallEntry>,
    index: HashMap<String, usize>,
    pub(crate) rest: Vec<RestRequest>,
    pub(crate) idem: HashMap<String, String>,
    callbacks_lost: bool,
    pub(crate) voicemail_max_record_ms: u64,
    pub(crate) conferences: Vec<Conference>,
}

impl State {
    pub(crate) fn call_mut(&mut self, sid: &str) -> Option<&mut CallEntry> {
        let i = *self.index.get(sid)?;
        self.calls.get_mut(i)
    }

    pub(crate) fn call_ref(&self, sid: &str) -> Option<&CallEntry> {
        self.calls.get(*self.index.get(sid)?)
    }
}

pub(crate) struct Inner {
    pub(crate) cfg: SimConfig,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    st: Mutex<State>,
}

pub(crate) struct CbJob {
    url: String,
    method: String,
    params: Vec<(String, String)>,
    event: String,
    call_status: String,
    deliver: bool,
}

pub(crate) struct NewCall {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) direction: &'static str,
    pub(crate) status: &'static str,
    pub(crate) parent: Option<String>,
    pub(crate) cb_url: Option<String>,
    pub(crate) cb_method: String,
    pub(crate) cb_events: Vec<String>,
    pub(crate) source: Option<Source>,
    pub(crate) machine_detection: Option<String>,
    pub(crate) ring_timeout_s: u64,
}

pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "busy" | "failed" | "no-answer" | "canceled")
}

pub(crate) fn push_capped<T>(v: &mut Vec<T>, item: T) {
    if v.len() < MAX_LIST {
        v.push(item);
    }
}

pub(crate) fn extend_audio(v: &mut Vec<i16>, samples: &[i16]) {
    let room = MAX_AUDIO_SAMPLES.saturating_sub(v.len());
    v.extend_from_slice(&samples[..samples.len().min(room)]);
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn with_call<R>(&self, sid: &str, f: impl FnOnce(&mut CallEntry) -> R) -> Option<R> {
        self.lock().call_mut(sid).map(f)
    }

    pub(crate) fn set_error(&self, sid: &str, error: impl Into<String>) {
        let error = error.into();
        tracing::debug!(sid, %error, "carrier-sim: call error");
        self.with_call(sid, |c| {
            // The first error is the cause; later ones are consequences.
            if c.rec.error.is_none() {
                c.rec.error = Some(error);
            }
        });
    }

    pub(crate) fn status_of(&self, sid: &str) -> String {
        self.with_call(sid, |c| c.rec.status.clone()).unwrap_or_default()
    }

    pub(crate) fn new_call(self: &Arc<Self>, n: NewCall) -> (String, mpsc::UnboundedReceiver<Cmd>) {
        let sid = util::sid("CA");
        let (cmd, rx) = mpsc::unbounded_channel();
        let (cb_tx, cb_rx) = mpsc::unbounded_channel();
        let now = SystemTime::now();
        let mut st = self.lock();
        let lost = st.callbacks_lost;
        let entry = CallEntry {
            rec: SimCall {
                sid: sid.clone(),
                from: n.from,
                to: n.to,
                direction: n.direction.into(),
                status: n.status.into(),
                statuses: vec![n.status.into()],
                parent_call_sid: n.parent,
                ..Default::default()
            },
            cb_url: n.cb_url,
            cb_method: n.cb_method,
            cb_events: n.cb_events,
            lost,
            dropped: false,
            cb_seq: 0,
            pending_cb: 0,
            active: true,
            cmd,
            cb_tx,
            source: n.source,
            machine_detection: n.machine_detection,
            ring_timeout_s: n.ring_timeout_s,
            created: now,
            answered: None,
            ended: None,
            updated: now,
        };
        let at = st.calls.len();
        st.index.insert(sid.clone(), at);
        st.calls.push(entry);
        drop(st);
        tokio::spawn(deliver_callbacks(self.clone(), sid.clone(), cb_rx));
        (sid, rx)
    }

    /// The parameters every request about this call carries.
    pub(crate) fn call_params(&self, sid: &str) -> Vec<(String, String)> {
        let st = self.lock();
        let Some(c) = st.call_ref(sid) else { return Vec::new() };
        call_fields(&self.cfg.account_sid, c, &c.rec.status)
    }

    /// Move the call to `status` (a terminal status never changes again) and queue the
    /// status callback when its event is subscribed.
    pub(crate) fn set_status(&self, sid: &str, status: &str) {
        let mut st = self.lock();
        let Some(c) = st.call_mut(sid) else { return };
        if c.rec.status == status || is_terminal(&c.rec.status) {
            return;
        }
        let now = SystemTime::now();
        c.rec.status = status.to_owned();
        c.rec.statuses.push(status.to_owned());
        c.updated = now;
        if status == "in-progress" && c.answered.is_none() {
            c.answered = Some((now, Instant::now()));
        }
        let terminal = is_terminal(status);
        if terminal {
            c.ended = Some(now);
            c.rec.duration_secs = c.answered.map(|(_, at)| (at.elapsed().as_millis() as u64 + 500) / 1000).unwrap_or(0);
        }
        let event = match status {
            "initiated" => "initiated",
            "ringing" => "ringing",
            "in-progress" => "answered",
            s if is_terminal(s) => "completed",
            _ => return,
        };
        let Some(url) = c.cb_url.clone() else { return };
        if !c.cb_events.iter().any(|e| e == event) {
            return;
        }
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let mut params = call_fields(&self.cfg.account_sid, c, status);
        params.push(p("SequenceNumber", &c.cb_seq.to_string()));
        params.push(p("Timestamp", &util::rfc2822(now)));
        params.push(p("CallbackSource", "call-progress-events"));
        if terminal {
            params.push(p("CallDuration", &c.rec.duration_secs.to_string()));
            params.push(p("Duration", &c.rec.duration_secs.div_ceil(60).to_string()));
        }
        c.cb_seq += 1;
        c.pending_cb += 1;
        let job = CbJob { url, method: c.cb_method.clone(), params, event: event.into(), call_status: status.into(), deliver: !c.lost && !c.dropped };
        if c.cb_tx.send(job).is_err() {
            c.pending_cb -= 1;
        }
    }

    /// Sign and send a form request as Twilio does. GET carries the params in the query.
    pub(crate) async fn send_signed(&self, url: &str, method: &str, params: &[(String, String)]) -> Result<(u16, String), String> {
        let (url, fragment) = url.split_once('#').unwrap_or((url, ""));
        let timeout = fragment_timeout(fragment).unwrap_or(Duration::from_secs(15));
        let get = method.eq_ignore_ascii_case("GET");
        let (full, body_params): (String, &[(String, String)]) = if get {
            let q = util::form_encode(params);
            let sep = if url.contains('?') { '&' } else { '?' };
            (if q.is_empty() { url.to_owned() } else { format!("{url}{sep}{q}") }, &[])
        } else {
            (url.to_owned(), params)
        };
        let sig = signature(&self.cfg.auth_token, &full, body_params);
        let req = if get { self.http.get(&full) } else { self.http.post(&full) };
        let req = req
            .timeout(timeout)
            .header("X-Twilio-Signature", sig)
            .header("User-Agent", "TwilioProxy/1.1")
            .header("I-Twilio-Idempotency-Token", util::sid(""))
            .header("Accept", "*/*");
        let req = if get { req } else { req.header("Content-Type", "application/x-www-form-urlencoded").body(util::form_encode(body_params)) };
        let resp = req.send().await.map_err(|e| format!("request to {full} failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| format!("reading the answer from {full} failed: {e}"))?;
        Ok((status, body))
    }

    fn snapshot(&self, c: &CallEntry) -> SimCall {
        let mut rec = c.rec.clone();
        rec.stream = rec.streams.last().cloned();
        rec
    }
}

/// `#tt=` / `#rt=` connection overrides (telephony.md §1), in ms, capped at Twilio's 15 s.
fn fragment_timeout(fragment: &str) -> Option<Duration> {
    let mut best: Option<u64> = None;
    for kv in fragment.split('&') {
        if let Some((k, v)) = kv.split_once('=')
            && (k == "tt" || k == "rt")
            && let Ok(ms) = v.parse::<u64>()
        {
            best = Some(best.map_or(ms, |b: u64| b.min(ms)));
        }
    }
    best.map(|ms| Duration::from_millis(ms.clamp(100, 15_000)))
}

/// Status callbacks of one call go out one at a time, in order.
async fn deliver_callbacks(sim: Arc<Inner>, sid: String, mut rx: mpsc::UnboundedReceiver<CbJob>) {
    while let Some(job) = rx.recv().await {
        let (status, error, delivered) = if job.deliver {
            match sim.send_signed(&job.url, &job.method, &job.params).await {
                Ok((s, _)) => (Some(s), None, true),
                Err(e) => (None, Some(e), false),
            }
        } else {
            (None, Some("dropped by the sim".to_owned()), false)
        };
        let cb = Callback { url: job.url, event: job.event, call_status: job.call_status, params: job.params, status, error, delivered };
        sim.with_call(&sid, |c| {
            push_capped(&mut c.rec.callbacks, cb);
            c.pending_cb = c.pending_cb.saturating_sub(1);
        });
    }
}

/// Marks a call's activity as over when its driver ends, however it ends.
pub(crate) struct ActiveGuard {
    pub(crate) sim: Arc<Inner>,
    pub(crate) sid: String,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.sim.with_call(&self.sid, |c| c.active = false);
    }
}

// ---------------------------------------------------------------------------------------------
// The public handle.

/// The simulator. Cheap to clone; it runs as long as the process (its tasks are detached).
#[derive(Clone)]
pub struct CarrierSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CarrierSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierSim").field("api_base", &self.inner.base).finish()
    }
}

/// Serve the simulator on `listener` until the process ends (for `dialnexa dev carrier`).
pub async fn serve_forever(listener: tokio::net::TcpListener, cfg: SimConfig) {
    let _sim = CarrierSim::start_on(listener, cfg).await;
    std::future::pending::<()>().await;
}

impl CarrierSim {
    /// Bind 127.0.0.1 on a free port.
    pub async fn start(cfg: SimConfig) -> CarrierSim {
        match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => Self::start_on(l, cfg).await,
            // Tests cannot go on without a socket; this is the harness, not server input.
            Err(e) => panic!("carrier-sim: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    pub async fn start_on(listener: tokio::net::TcpListener, cfg: SimConfig) -> CarrierSim {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "127.0.0.1:0".into());
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::limited(5)).build().unwrap_or_default();
        let inner = Arc::new(Inner {
            cfg,
            base: format!("http://{addr}"),
            http,
            st: Mutex::new(State {
                numbers: HashMap::new(),
                callees: HashMap::new(),
                calls: Vec::new(),
                index: HashMap::new(),
                rest: Vec::new(),
                idem: HashMap::new(),
                callbacks_lost: false,
                voicemail_max_record_ms: 20_000,
                conferences: Vec::new(),
            }),
        });
        let router = rest::router(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("carrier-sim: server stopped: {e}");
            }
        });
        CarrierSim { inner }
    }

    /// `http://127.0.0.1:PORT`: the server's `DIALNEXA_TWILIO_API_BASE`.
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    pub fn account_sid(&self) -> String {
        self.inner.cfg.account_sid.clone()
    }

    /// A number the account holds: incoming calls to it POST `voice_url`; with a status
    /// callback, all four events of those calls are sent to it.
    pub fn set_number(&self, number: &str, voice_url: &str, status_callback: Option<&str>) {
        self.inner.lock().numbers.insert(number.to_owned(), Number { voice_url: voice_url.to_owned(), status_callback: status_callback.map(str::to_owned) });
    }

    /// What happens when any call rings `number` (unset: [`Callee::NoAnswer`]).
    pub fn on_dial(&self, number: &str, callee: Callee) {
        self.inner.lock().callees.insert(number.to_owned(), callee);
    }

    /// How long an answering machine records after its beep (default 20 000 ms).
    pub fn set_voicemail_max_record_ms(&self, ms: u64) {
        self.inner.lock().voicemail_max_record_ms = ms;
    }

    /// An incoming call from `from` to the held number `to`, the caller following `script`.
    pub async fn call_in(&self, from: &str, to: &str, script: Script) -> Result<String, SimError> {
        let (voice_url, status_callback) = {
            let st = self.inner.lock();
            let n = st.numbers.get(to).ok_or_else(|| SimError::UnknownNumber(to.to_owned()))?;
            (n.voice_url.clone(), n.status_callback.clone())
        };
        let valid = |n: &str| util::is_e164(n) || n.starts_with("client:") || n.starts_with("sip:");
        if !valid(from) {
            return Err(SimError::InvalidNumber(from.to_owned()));
        }
        let events = ["initiated", "ringing", "answered", "completed"].map(String::from).to_vec();
        let (sid, rx) = self.inner.new_call(NewCall {
            from: from.to_owned(),
            to: to.to_owned(),
            direction: "inbound",
            status: "queued",
            parent: None,
            cb_url: status_callback,
            cb_method: "POST".into(),
            cb_events: events,
            source: Some(Source::Fetch { url: voice_url, method: "POST".into(), extra: Vec::new() }),
            machine_detection: None,
            ring_timeout_s: 60,
        });
        tokio::spawn(call::drive_inbound(self.inner.clone(), sid.clone(), script, rx));
        Ok(sid)
    }

    /// Wait until the call is terminal and its media, dial and callback activity is over, or
    /// `timeout` passes; the record either way (None for an unknown sid).
    pub async fn wait_ended(&self, sid: &str, timeout: Duration) -> Option<SimCall> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = {
                let st = self.inner.lock();
                let c = st.call_ref(sid)?;
                is_terminal(&c.rec.status) && !c.active && c.pending_cb == 0
            };
            if done || Instant::now() >= deadline {
                return self.call(sid);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn call(&self, sid: &str) -> Option<SimCall> {
        let st = self.inner.lock();
        st.call_ref(sid).map(|c| self.inner.snapshot(c))
    }

    /// All calls, in creation order.
    pub fn calls(&self) -> Vec<SimCall> {
        let st = self.inner.lock();
        st.calls.iter().map(|c| self.inner.snapshot(c)).collect()
    }

    /// Every REST API request received, in order.
    pub fn rest_requests(&self) -> Vec<RestRequest> {
        self.inner.lock().rest.clone()
    }

    /// Stop delivering this call's status callbacks from now on (the REST resource still changes).
    pub fn drop_callbacks(&self, sid: &str) {
        self.inner.with_call(sid, |c| c.dropped = true);
    }

    /// Calls created from now on get none of their webhooks or callbacks delivered.
    pub fn set_callbacks_lost(&self, lost: bool) {
        self.inner.lock().callbacks_lost = lost;
    }

    /// The conference names with the call sids currently in each.
    pub fn conferences(&self) -> Vec<(String, String, Vec<String>)> {
        let st = self.inner.lock();
        st.conferences
            .iter()
            .map(|c| (c.sid.clone(), c.name.clone(), c.participants.iter().filter(|p| p.present).map(|p| p.call_sid.clone()).collect()))
            .collect()
    }
}

/// The parameters every request about a call carries, with `status` as its CallStatus.
fn call_fields(account_sid: &str, c: &CallEntry, status: &str) -> Vec<(String, String)> {
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let mut v = vec![
        p("CallSid", &c.rec.sid),
        p("AccountSid", account_sid),
        p("From", &c.rec.from),
        p("To", &c.rec.to),
        p("Caller", &c.rec.from),
        p("Called", &c.rec.to),
        p("CallStatus", status),
        p("Direction", &c.rec.direction),
        p("ApiVersion", "2010-04-01"),
    ];
    if let Some(parent) = &c.rec.parent_call_sid {
        v.push(p("ParentCallSid", parent));
    }
    if let Some(a) = &c.rec.answered_by {
        v.push(p("AnsweredBy", a));
    }
    v
}
