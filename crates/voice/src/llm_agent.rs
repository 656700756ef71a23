//! The `llm` runtime: a conversation with any OpenAI-compatible chat-completions model.
//!
//! Driven like the flow runtime: `start` once, then `caller_said` for each caller turn. A
//! turn is a stream of [`AgentEvent`]s rather than one [`Step`](crate::Step): the answer is
//! streamed (`stream: true`) and each complete sentence is handed out as soon as it has
//! arrived, so speech can start on the first sentence instead of the whole answer. Every
//! turn ends with [`AgentEvent::Done`] carrying the same [`Outcome`] the flow runtime uses.
//!
//! The model has tools: `end_call`, `transfer_call` (only to the config's
//! `transfer_numbers`), `record_field` (a field of the agent's analysis schema) and the
//! agent version's own HTTP tools, whose answers go back to the model before it speaks on
//! (at most [`MAX_TOOL_ROUNDS`] requests per turn). A model that is slow (no first token
//! within `llm_timeout_ms`, or a stream that stalls that long) or fails (HTTP errors, a
//! refused connection, a broken stream) makes the agent say the config's `fallback_line`,
//! with an [`AgentEvent::Error`] the call can store on its timeline; the call goes on.
//!
//! What was generated and what was actually spoken can differ (the caller barges in):
//! [`LlmSession::interrupted`] rewrites the history to what was said, so the model knows
//! it was cut off.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use dialnexa_core::agent::{HeaderPart, parse_header_value};
use dialnexa_core::analysis::{AnalysisSchema, SchemaFieldType};
use dialnexa_core::flow::render;
use dialnexa_core::{ConfigError, PhoneNumber};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use dialnexa_core::agent::{DEFAULT_FALLBACK_LINE, HttpMethod, HttpTool, LlmAgentConfig};

use crate::session::{Ending, Outcome, SessionError};

/// Most model requests in one agent turn (tool calls and their answers included). The last
/// request is sent with `tool_choice: "none"` so that the model answers in words.
pub const MAX_TOOL_ROUNDS: u32 = 5;
/// Longest tool result given back to the model, in characters.
pub const MAX_TOOL_RESULT_CHARS: usize = 4_000;
/// Appended to an agent message the caller cut off (see [`LlmSession::interrupted`]).
pub const INTERRUPTED_MARKER: &str = "[interrupted by the caller]";
/// A sentence longer than this (in characters) is cut at a comma or a space, so speech
/// does not wait for a model that never puts a full stop.
pub const MAX_SENTENCE_CHARS: usize = 250;
/// Environment prefix of the secrets HTTP tools' headers refer to (`${NAME}`).
pub const SECRET_ENV_PREFIX: &str = "DIALNEXA_SECRET_";

const EVENT_BUFFER: usize = 64;
const MAX_ERROR_BODY: usize = 16 * 1024;
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The endpoint

/// An OpenAI-compatible chat-completions endpoint. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct LlmClient {
    base_url: String,
    api_key: Option<String>,
    model: String,
    max_response: Duration,
    secrets: Arc<BTreeMap<String, String>>,
    http: reqwest::Client,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("max_response", &self.max_response)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LlmClient {
    /// `base_url` includes the version prefix (`http://host:8000/v1`); requests go to
    /// `{base_url}/chat/completions` with `Authorization: Bearer <api_key>` when a key is
    /// given. `model` is used when the agent config names none.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>, model: impl Into<String>) -> Result<LlmClient, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Client { message: e.to_string() })?;
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Ok(LlmClient {
            base_url,
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.into(),
            max_response: Duration::from_secs(60),
            secrets: Arc::default(),
            http,
        })
    }

    /// Secrets that HTTP tools' headers refer to as `${NAME}` (see [`secrets_from_env`]).
    pub fn with_secrets(mut self, secrets: BTreeMap<String, String>) -> LlmClient {
        self.secrets = Arc::new(secrets);
        self
    }

    /// The longest one model request may take from start to end (default 60 s), however
    /// steadily it streams.
    pub fn with_max_response(mut self, max: Duration) -> LlmClient {
        self.max_response = max;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn model(&self) -> &str {
        &self.model
    }
}

/// Secrets for HTTP tools from the environment: `DIALNEXA_SECRET_CRM_TOKEN=...` is the
/// secret `CRM_TOKEN`.
pub fn secrets_from_env() -> BTreeMap<String, String> {
    // `vars_os`: one variable that is not UTF-8 must not take the process down.
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let (k, v) = (k.into_string().ok()?, v.into_string().ok()?);
            k.strip_prefix(SECRET_ENV_PREFIX).filter(|n| !n.is_empty()).map(|n| (n.to_owned(), v))
        })
        .collect()
}

/// Why a model request gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LlmError {
    #[error("the model sent no first token within {ms} ms")]
    FirstTokenTimeout { ms: u64 },
    #[error("the model's answer stalled for {ms} ms")]
    Stalled { ms: u64 },
    #[error("the model's answer took longer than {ms} ms")]
    TooSlow { ms: u64 },
    #[error("the endpoint answered HTTP {status}: {message}")]
    Status { status: u16, message: String, retry_after_secs: Option<u64> },
    #[error("cannot reach the endpoint: {message}")]
    Connection { message: String },
    #[error("the answer broke off: {message}")]
    Stream { message: String },
    #[error("the answer is not a chat completion: {message}")]
    BadResponse { message: String },
    #[error("the model answered nothing")]
    EmptyAnswer,
    #[error("the model was still calling tools after {rounds} requests")]
    ToolRounds { rounds: u32 },
    #[error("cannot build the HTTP client: {message}")]
    Client { message: String },
}

impl LlmError {
    /// A stable snake_case name (timeline event kinds, metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FirstTokenTimeout { .. } => "first_token_timeout",
            Self::Stalled { .. } => "stalled",
            Self::TooSlow { .. } => "too_slow",
            Self::Status { .. } => "status",
            Self::Connection { .. } => "connection",
            Self::Stream { .. } => "stream",
            Self::BadResponse { .. } => "bad_response",
            Self::EmptyAnswer => "empty_answer",
            Self::ToolRounds { .. } => "tool_rounds",
            Self::Client { .. } => "client",
        }
    }

    /// The model was too slow (as opposed to failing).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::FirstTokenTimeout { .. } | Self::Stalled { .. } | Self::TooSlow { .. })
    }
}

// ---------------------------------------------------------------------------------------
// Events and turns

/// What happens during one agent turn, in order. Every turn that runs to its end finishes
/// with exactly one `Done`; a turn cancelled by [`LlmSession::interrupted`] or a new
/// [`LlmSession::caller_said`] simply stops (its stream ends without `Done`).
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A complete sentence to speak, cleaned for speech (no markdown, single spaces).
    Sentence(String),
    /// `record_field` stored a value (normalised to the schema field's type).
    FieldRecorded { name: String, value: Value },
    /// A tool ran (built-in or HTTP). `detail` is for the timeline; it holds no secrets.
    ToolCalled { name: String, ok: bool, detail: String },
    /// `transfer_call`: once the sentences before it are spoken, transfer the call.
    Transfer { to: String },
    /// `transfer_call` with `warm`: hold the caller while the target is dialed and briefed;
    /// the session goes on (the model is told if the target does not take the call).
    WarmTransfer { to: String },
    /// `end_call`: once the sentences before it are spoken, hang up.
    End { reason: Option<String> },
    /// The model failed or was too slow; the fallback line follows as a `Sentence`.
    Error(LlmError),
    /// The turn is over: wait for the caller, or end the call (`Ended`).
    Done(Outcome),
}

/// The events of one agent turn, as they happen. Also a [`Stream`].
pub struct AgentTurn {
    rx: mpsc::Receiver<AgentEvent>,
}

impl AgentTurn {
    /// The next event; `None` once the turn is over (or was cancelled).
    pub async fn recv(&mut self) -> Option<AgentEvent> {
        self.rx.recv().await
    }

    /// Every event up to the end of the turn.
    pub async fn collect_all(mut self) -> Vec<AgentEvent> {
        let mut out = vec![];
        while let Some(e) = self.rx.recv().await {
            out.push(e);
        }
        out
    }
}

impl Stream for AgentTurn {
    type Item = AgentEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AgentEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// What the last agent turn generated and, after a barge-in, what of it was spoken.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TurnRecord {
    /// Every sentence handed out in the turn (fallback line included), joined by spaces.
    pub generated: String,
    /// What the caller heard, when the turn was interrupted.
    pub spoken: Option<String>,
    pub interrupted: bool,
    pub error: Option<LlmError>,
    /// Where the turn's messages start in the history.
    #[serde(skip)]
    first_message: usize,
}

// ---------------------------------------------------------------------------------------
// The session

/// What never changes during a call.
struct Ctx {
    config: Arc<LlmAgentConfig>,
    client: LlmClient,
    variables: BTreeMap<String, String>,
    schema: Option<AnalysisSchema>,
    tools: Vec<Value>,
    model: String,
    fallback: String,
}

#[derive(Default)]
struct Conversation {
    messages: Vec<Value>,
    fields: BTreeMap<String, Value>,
    ending: Option<Ending>,
    agent_turns: u32,
    consecutive_errors: u32,
    next_turn: u64,
    running: Option<Running>,
    last_turn: Option<TurnRecord>,
}

/// The turn in progress.
struct Running {
    id: u64,
    /// Sentences handed out in the current model request, not yet in `messages`.
    round: Vec<String>,
}

impl Conversation {
    /// Put what the current request produced so far into the history (as plain content).
    fn commit_round(&mut self) {
        if let Some(r) = &mut self.running
            && !r.round.is_empty()
        {
            let content = std::mem::take(&mut r.round).join(" ");
            self.messages.push(json!({ "role": "assistant", "content": content }));
        }
    }

    fn cancel_running(&mut self) {
        self.commit_round();
        self.running = None;
    }
}

/// One conversation with an `llm` agent.
pub struct LlmSession {
    ctx: Arc<Ctx>,
    state: Arc<Mutex<Conversation>>,
    task: Option<tokio::task::JoinHandle<()>>,
    started: bool,
}

impl fmt::Debug for LlmSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSession").field("model", &self.ctx.model).field("client", &self.ctx.client).field("started", &self.started).finish()
    }
}

impl Drop for LlmSession {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn lock(state: &Mutex<Conversation>) -> MutexGuard<'_, Conversation> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl LlmSession {
    /// A session for one call. `variables` are the call's own (built-ins included); they
    /// override the config's defaults. The config is checked again, as the flow runtime
    /// does, so a hand-built config cannot reach the model.
    pub fn new(config: Arc<LlmAgentConfig>, variables: BTreeMap<String, String>, client: LlmClient) -> Result<LlmSession, ConfigError> {
        config.validate()?;
        let mut merged = config.variables.clone();
        merged.extend(variables);
        let schema = config.analysis.resolve("analysis").ok();
        let lookup = |name: &str| merged.get(name).cloned();
        let system = render(&config.prompt, &lookup);
        let fallback = normalise(&render(&config.fallback_line, &lookup));
        let fallback = if fallback.is_empty() { DEFAULT_FALLBACK_LINE.to_owned() } else { fallback };
        let model = config.model.clone().unwrap_or_else(|| client.model.clone());
        let tools = tool_definitions(&config, schema.as_ref());
        let state = Conversation { messages: vec![json!({ "role": "system", "content": system })], ..Conversation::default() };
        let ctx = Ctx { config, client, variables: merged, schema, tools, model, fallback };
        Ok(LlmSession { ctx: Arc::new(ctx), state: Arc::new(Mutex::new(state)), task: None, started: false })
    }

    /// The agent's opening. With a `begin_message` the agent says it (no model request);
    /// otherwise the model speaks first, from the system prompt alone.
    pub fn start(&mut self) -> Result<AgentTurn, SessionError> {
        if self.started {
            return Err(SessionError::AlreadyStarted);
        }
        self.started = true;
        let Some(begin) = &self.ctx.config.begin_message else {
            return Ok(self.spawn_turn());
        };
        let text = render(begin, &|name: &str| self.ctx.variables.get(name).cloned());
        let mut splitter = SentenceSplitter::new();
        let mut sentences = splitter.push(&text);
        sentences.extend(splitter.finish());
        let (tx, rx) = mpsc::channel(sentences.len() + 1);
        {
            let mut st = lock(&self.state);
            st.agent_turns += 1;
            let first_message = st.messages.len();
            let generated = sentences.join(" ");
            if !generated.is_empty() {
                st.messages.push(json!({ "role": "assistant", "content": generated }));
            }
            st.last_turn = Some(TurnRecord { generated, first_message, ..TurnRecord::default() });
        }
        for s in sentences {
            let _ = tx.try_send(AgentEvent::Sentence(s));
        }
        let _ = tx.try_send(AgentEvent::Done(Outcome::AwaitingCaller));
        Ok(AgentTurn { rx })
    }

    /// The caller finished a turn: the agent's answer, as a stream of events. A turn still
    /// running is cancelled first (what it had produced stays in the history).
    pub fn caller_said(&mut self, text: &str) -> Result<AgentTurn, SessionError> {
        if !self.started {
            return Err(SessionError::NotStarted);
        }
        self.cancel();
        let max_turns = {
            let mut st = lock(&self.state);
            if st.ending.is_some() {
                return Err(SessionError::Ended);
            }
            st.messages.push(json!({ "role": "user", "content": text }));
            if st.agent_turns >= self.ctx.config.max_turns {
                st.ending = Some(Ending::MaxTurns);
                true
            } else {
                false
            }
        };
        if max_turns {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(AgentEvent::Done(Outcome::Ended(Ending::MaxTurns)));
            return Ok(AgentTurn { rx });
        }
        Ok(self.spawn_turn())
    }

    /// The caller barged in: only `spoken_text` of the last agent turn was heard. A turn
    /// still running is cancelled, and the turn's messages in the history are cut to what
    /// was spoken, the last one ending with [`INTERRUPTED_MARKER`] (messages never spoken
    /// are dropped), so that the model knows it was cut off. Pass the text of the sentences
    /// played in full plus the words of the one cut off, if known.
    pub fn interrupted(&mut self, spoken_text: &str) {
        self.cancel();
        let mut st = lock(&self.state);
        let spoken = normalise(spoken_text);
        let Some(first) = st.last_turn.as_ref().map(|t| t.first_message) else {
            return;
        };
        if let Some(t) = &mut st.last_turn {
            t.spoken = Some(spoken.clone());
            t.interrupted = true;
        }
        cut_to_spoken(&mut st.messages, first, &spoken);
    }

    /// The call has ended (end_call, transfer_call or max_turns).
    pub fn is_ended(&self) -> bool {
        lock(&self.state).ending.is_some()
    }

    pub fn ending(&self) -> Option<Ending> {
        lock(&self.state).ending.clone()
    }

    /// Agent turns so far (the opening included).
    pub fn agent_turns(&self) -> u32 {
        lock(&self.state).agent_turns
    }

    /// Turns in a row that ended in an [`AgentEvent::Error`] (0 after a turn that worked).
    /// The call may end with `error_llm` when the model keeps failing.
    pub fn consecutive_errors(&self) -> u32 {
        lock(&self.state).consecutive_errors
    }

    /// Fields recorded with `record_field` (a field recorded twice keeps its latest value).
    pub fn recorded_fields(&self) -> BTreeMap<String, Value> {
        lock(&self.state).fields.clone()
    }

    /// The conversation as the model sees it (system prompt first).
    pub fn messages(&self) -> Vec<Value> {
        lock(&self.state).messages.clone()
    }

    pub fn last_turn(&self) -> Option<TurnRecord> {
        lock(&self.state).last_turn.clone()
    }

    /// The tool definitions offered to the model.
    pub fn tools(&self) -> &[Value] {
        &self.ctx.tools
    }

    /// The model requests are sent for.
    pub fn model(&self) -> &str {
        &self.ctx.model
    }

    pub fn config(&self) -> &LlmAgentConfig {
        &self.ctx.config
    }

    fn cancel(&mut self) {
        lock(&self.state).cancel_running();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    fn spawn_turn(&mut self) -> AgentTurn {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let id = {
            let mut st = lock(&self.state);
            st.next_turn += 1;
            let id = st.next_turn;
            st.agent_turns += 1;
            st.running = Some(Running { id, round: vec![] });
            st.last_turn = Some(TurnRecord { first_message: st.messages.len(), ..TurnRecord::default() });
            id
        };
        let turn = Turn { ctx: Arc::clone(&self.ctx), state: Arc::clone(&self.state), id, tx, spoke: false };
        self.task = Some(tokio::spawn(turn.run()));
        AgentTurn { rx }
    }
}

/// Cut the assistant messages from `first` on to the text that was spoken.
fn cut_to_spoken(messages: &mut Vec<Value>, first: usize, spoken: &str) {
    let with_text: Vec<usize> =
        (first..messages.len()).filter(|&i| messages[i]["role"] == "assistant" && messages[i]["content"].as_str().is_some_and(|c| !c.is_empty())).collect();
    let Some(&last) = with_text.last() else {
        return;
    };
    let mut remaining = spoken;
    let mut marked = false;
    let mut drop = vec![];
    for &i in &with_text {
        let content = messages[i]["content"].as_str().unwrap_or_default().to_owned();
        let new = if marked {
            None
        } else if let Some(rest) = remaining.strip_prefix(content.as_str()).filter(|r| r.is_empty() || r.starts_with(' ')) {
            remaining = rest.trim_start();
            if remaining.is_empty() || i == last {
                marked = true;
                Some(format!("{content} {INTERRUPTED_MARKER}"))
            } else {
                Some(content)
            }
        } else {
            // Cut inside this message (or what was spoken is not what was generated: then
            // what was spoken is the truth).
            marked = true;
            Some(format!("{remaining} {INTERRUPTED_MARKER}").trim_start().to_owned())
        };
        match new {
            Some(c) => messages[i]["content"] = Value::String(c),
            None if messages[i].get("tool_calls").is_some() => messages[i]["content"] = Value::Null,
            None => drop.push(i),
        }
    }
    for i in drop.into_iter().rev() {
        messages.remove(i);
    }
}

// ---------------------------------------------------------------------------------------
// One turn

struct Turn {
    ctx: Arc<Ctx>,
    state: Arc<Mutex<Conversation>>,
    id: u64,
    tx: mpsc::Sender<AgentEvent>,
    /// A sentence has been handed out in this turn.
    spoke: bool,
}

/// A tool call put together from streamed fragments.
#[derive(Debug, Clone, Default)]
struct ToolCallAcc {
    id: String,
    name: String,
    arguments: String,
}

/// The turn was cancelled (superseded, or nobody listens any more).
struct Cancelled;

struct RoundOutput {
    calls: Vec<ToolCallAcc>,
}

impl Turn {
    /// Change the conversation, if this turn is still the current one.
    fn with<R>(&self, f: impl FnOnce(&mut Conversation) -> R) -> Result<R, Cancelled> {
        let mut st = lock(&self.state);
        if st.running.as_ref().map(|r| r.id) != Some(self.id) {
            return Err(Cancelled);
        }
        Ok(f(&mut st))
    }

    async fn emit(&self, e: AgentEvent) -> Result<(), Cancelled> {
        if self.tx.send(e).await.is_err() {
            // Nobody listens: stop, keeping what was produced.
            let _ = self.with(Conversation::cancel_running);
            return Err(Cancelled);
        }
        Ok(())
    }

    async fn say(&mut self, sentence: String) -> Result<(), Cancelled> {
        self.with(|c| {
            if let Some(r) = &mut c.running {
                r.round.push(sentence.clone());
            }
            if let Some(t) = &mut c.last_turn {
                if !t.generated.is_empty() {
                    t.generated.push(' ');
                }
                t.generated.push_str(&sentence);
            }
        })?;
        self.spoke = true;
        self.emit(AgentEvent::Sentence(sentence)).await
    }

    async fn run(mut self) {
        let _ = self.run_rounds().await;
    }

    async fn run_rounds(&mut self) -> Result<(), Cancelled> {
        for round in 1..=MAX_TOOL_ROUNDS {
            let last = round == MAX_TOOL_ROUNDS;
            let messages = self.with(|c| c.messages.clone())?;
            let body = request_body(&self.ctx, messages, last);
            tracing::debug!(model = %self.ctx.model, round, "llm request");
            let calls = match self.request(body).await? {
                Ok(out) => out.calls,
                Err(e) => return self.fail(e).await,
            };
            if calls.is_empty() {
                return self.finish(None).await;
            }
            if last {
                // Tools refused on the last request, yet the model still asks for one.
                return self.fail(LlmError::ToolRounds { rounds: MAX_TOOL_ROUNDS }).await;
            }
            let calls: Vec<ToolCallAcc> = calls
                .into_iter()
                .enumerate()
                .map(|(i, c)| ToolCallAcc { id: if c.id.is_empty() { format!("call_{}_{round}_{i}", self.id) } else { c.id }, ..c })
                .collect();
            let mut results = vec![];
            let mut ending = None;
            for call in &calls {
                let (result, end) = self.run_tool(call).await?;
                results.push(json!({ "role": "tool", "tool_call_id": call.id, "content": result }));
                if ending.is_none() {
                    ending = end;
                }
            }
            self.with(|c| {
                let content = c.running.as_mut().map(|r| std::mem::take(&mut r.round).join(" ")).filter(|s| !s.is_empty());
                let tool_calls: Vec<Value> =
                    calls.iter().map(|t| json!({ "id": t.id, "type": "function", "function": { "name": t.name, "arguments": t.arguments } })).collect();
                c.messages.push(json!({ "role": "assistant", "content": content, "tool_calls": tool_calls }));
                c.messages.extend(results);
                if let Some(e) = &ending {
                    c.ending = Some(e.clone());
                }
            })?;
            if let Some(e) = ending {
                return self.finish(Some(e)).await;
            }
        }
        Ok(())
    }

    /// The turn is over. A turn that said nothing and does not end the call is a failure:
    /// the caller must hear something.
    async fn finish(&mut self, ending: Option<Ending>) -> Result<(), Cancelled> {
        if !self.spoke && ending.is_none() {
            return self.fail(LlmError::EmptyAnswer).await;
        }
        self.with(|c| c.consecutive_errors = 0)?;
        self.done(ending).await
    }

    /// Put the turn in the history, then say it is over.
    async fn done(&mut self, ending: Option<Ending>) -> Result<(), Cancelled> {
        self.with(|c| {
            c.commit_round();
            c.running = None;
        })?;
        let outcome = match ending {
            Some(e) => Outcome::Ended(e),
            None => Outcome::AwaitingCaller,
        };
        let _ = self.tx.send(AgentEvent::Done(outcome)).await;
        Ok(())
    }

    /// The model failed: say so on the timeline, say the fallback line, wait for the caller.
    async fn fail(&mut self, error: LlmError) -> Result<(), Cancelled> {
        tracing::warn!(model = %self.ctx.model, error = %error, "llm turn failed; saying the fallback line");
        self.with(|c| {
            if let Some(t) = &mut c.last_turn {
                t.error = Some(error.clone());
            }
            c.consecutive_errors += 1;
        })?;
        self.emit(AgentEvent::Error(error)).await?;
        let fallback = self.ctx.fallback.clone();
        self.say(fallback).await?;
        self.done(None).await
    }

    /// One model request. Sentences are handed out while the answer streams in. The outer
    /// `Err` is a cancelled turn; the inner one a failed request.
    async fn request(&mut self, body: Value) -> Result<Result<RoundOutput, LlmError>, Cancelled> {
        let ctx = Arc::clone(&self.ctx);
        let client = &ctx.client;
        let timeout = Duration::from_millis(self.ctx.config.llm_timeout_ms);
        let started = Instant::now();
        let first_deadline = started + timeout;
        let overall = started + client.max_response;
        let mut req = client.http.post(format!("{}/chat/completions", client.base_url)).json(&body);
        if let Some(key) = &client.api_key {
            req = req.bearer_auth(key);
        }
        let resp = match tokio::time::timeout_at(first_deadline.min(overall), req.send()).await {
            Err(_) => return Ok(Err(LlmError::FirstTokenTimeout { ms: ms(timeout) })),
            Ok(Err(e)) => return Ok(Err(LlmError::Connection { message: error_chain(&e) })),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let retry_after_secs = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
            let body = read_capped(resp, MAX_ERROR_BODY, first_deadline.max(Instant::now() + Duration::from_secs(1))).await.unwrap_or_default();
            return Ok(Err(LlmError::Status { status: status.as_u16(), message: error_message(&body), retry_after_secs }));
        }
        let is_sse = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
        if !is_sse {
            // An endpoint that ignores `stream: true` and answers in one piece.
            let Some(text) = read_capped(resp, MAX_ANSWER_BYTES, overall).await else {
                return Ok(Err(LlmError::Stream { message: "the answer could not be read in time".into() }));
            };
            return self.whole_answer(&text).await;
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = vec![];
        let mut splitter = SentenceSplitter::new();
        let mut calls: BTreeMap<u64, ToolCallAcc> = BTreeMap::new();
        let mut got_token = false;
        let mut finished = false;
        'read: loop {
            let until = if got_token { (Instant::now() + timeout).min(overall) } else { first_deadline.min(overall) };
            let bytes = match tokio::time::timeout_at(until, stream.next()).await {
                Err(_) => {
                    let e = if Instant::now() >= overall {
                        LlmError::TooSlow { ms: ms(client.max_response) }
                    } else if got_token {
                        LlmError::Stalled { ms: ms(timeout) }
                    } else {
                        LlmError::FirstTokenTimeout { ms: ms(timeout) }
                    };
                    return Ok(Err(e));
                }
                Ok(None) if finished => break,
                Ok(None) => return Ok(Err(LlmError::Stream { message: "the stream ended before the answer was complete".into() })),
                Ok(Some(Err(e))) => return Ok(Err(LlmError::Stream { message: error_chain(&e) })),
                Ok(Some(Ok(b))) => b,
            };
            buf.extend(bytes.iter().filter(|&&b| b != b'\r'));
            while let Some(end) = find_blank_line(&buf) {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let data = sse_data(&String::from_utf8_lossy(&event));
                let Some(data) = data else { continue };
                if data.trim() == "[DONE]" {
                    break 'read;
                }
                let chunk: Value = match serde_json::from_str(&data) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(LlmError::BadResponse { message: format!("a stream chunk is not JSON: {e}") })),
                };
                if let Some(err) = chunk.get("error") {
                    return Ok(Err(LlmError::Stream { message: error_message(&err.to_string()) }));
                }
                let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else { continue };
                let delta = &choice["delta"];
                if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    got_token = true;
                    for s in splitter.push(text) {
                        self.say(s).await?;
                    }
                }
                if let Some(fragments) = delta.get("tool_calls").and_then(Value::as_array) {
                    got_token = true;
                    for (pos, f) in fragments.iter().enumerate() {
                        let index = f.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                        let acc = calls.entry(index).or_default();
                        if let Some(id) = f.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                            id.clone_into(&mut acc.id);
                        }
                        if let Some(name) = f["function"].get("name").and_then(Value::as_str) {
                            acc.name.push_str(name);
                        }
                        if let Some(args) = f["function"].get("arguments").and_then(Value::as_str) {
                            acc.arguments.push_str(args);
                        }
                    }
                }
                if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    finished = true;
                }
            }
        }
        if let Some(rest) = splitter.finish() {
            self.say(rest).await?;
        }
        Ok(Ok(RoundOutput { calls: calls.into_values().filter(|c| !c.name.is_empty()).collect() }))
    }

    /// A `chat.completion` answered in one piece.
    async fn whole_answer(&mut self, text: &str) -> Result<Result<RoundOutput, LlmError>, Cancelled> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Ok(Err(LlmError::BadResponse { message: format!("not JSON: {e}") })),
        };
        let Some(message) = v.get("choices").and_then(|c| c.get(0)).and_then(|c| c.get("message")) else {
            return Ok(Err(LlmError::BadResponse { message: "no choices[0].message".into() }));
        };
        if let Some(content) = message.get("content").and_then(Value::as_str) {
            let mut splitter = SentenceSplitter::new();
            let mut sentences = splitter.push(content);
            sentences.extend(splitter.finish());
            for s in sentences {
                self.say(s).await?;
            }
        }
        let calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| ToolCallAcc {
                        id: c.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        name: c["function"].get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        arguments: match &c["function"]["arguments"] {
                            Value::String(s) => s.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        },
                    })
                    .filter(|c| !c.name.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Ok(RoundOutput { calls }))
    }

    /// Run one tool call: the text for the model, and whether the call now ends.
    async fn run_tool(&mut self, call: &ToolCallAcc) -> Result<(String, Option<Ending>), Cancelled> {
        let args: Value = if call.arguments.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str(&call.arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    let detail = "the arguments are not a JSON object".to_owned();
                    self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: false, detail: detail.clone() }).await?;
                    return Ok((format!("Error: {detail}."), None));
                }
            }
        };
        let text_arg = |k: &str| args.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        match call.name.as_str() {
            "end_call" => {
                let reason = text_arg("reason");
                let detail = match &reason {
                    Some(r) => format!("the agent ends the call: {}", clip(r, 200)),
                    None => "the agent ends the call".to_owned(),
                };
                self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: true, detail }).await?;
                self.emit(AgentEvent::End { reason }).await?;
                Ok(("The call will end after your last words.".to_owned(), Some(Ending::AgentHangup)))
            }
            "transfer_call" if !self.ctx.config.transfer_numbers.is_empty() => {
                let to = text_arg("to").unwrap_or_default();
                let allowed = &self.ctx.config.transfer_numbers;
                let target = PhoneNumber::parse(&to).ok().map(|p| p.as_str().to_owned()).filter(|p| allowed.contains(p));
                let Some(target) = target else {
                    let detail = format!("refused a transfer to '{}': not one of {}", clip(&to, 40), allowed.join(", "));
                    self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: false, detail }).await?;
                    return Ok((format!("Error: you can only transfer to one of: {}.", allowed.join(", ")), None));
                };
                if args.get("warm").and_then(Value::as_bool).unwrap_or(false) {
                    let detail = format!("a warm transfer to {target}: the caller holds while they are briefed");
                    self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: true, detail }).await?;
                    self.emit(AgentEvent::WarmTransfer { to: target.clone() }).await?;
                    return Ok((
                        format!(
                            "{target} is being called and will be briefed; the caller is on hold. If nobody answers you will be told: then help the caller yourself."
                        ),
                        None,
                    ));
                }
                self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: true, detail: format!("transferring the call to {target}") }).await?;
                self.emit(AgentEvent::Transfer { to: target.clone() }).await?;
                Ok((format!("The call will be transferred to {target} after your last words."), Some(Ending::Transfer { to: target })))
            }
            "record_field" => {
                let name = text_arg("name").unwrap_or_default();
                let raw = args.get("value").cloned().unwrap_or(Value::Null);
                match check_field(self.ctx.schema.as_ref(), &name, &raw) {
                    Ok(value) => {
                        self.with(|c| c.fields.insert(name.clone(), value.clone()))?;
                        let detail = format!("recorded {name} = {value}");
                        self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: true, detail }).await?;
                        self.emit(AgentEvent::FieldRecorded { name: name.clone(), value: value.clone() }).await?;
                        Ok((format!("Recorded {name} = {value}."), None))
                    }
                    Err(why) => {
                        self.emit(AgentEvent::ToolCalled { name: call.name.clone(), ok: false, detail: format!("refused {}: {why}", clip(&name, 64)) }).await?;
                        Ok((format!("Error: {why}"), None))
                    }
                }
            }
            other => {
                let Some(tool) = self.ctx.config.tools.iter().find(|t| t.name == other) else {
                    let detail = format!("the model called '{}', which is not one of its tools", clip(other, 64));
                    self.emit(AgentEvent::ToolCalled { name: clip(other, 64), ok: false, detail }).await?;
                    return Ok((format!("Error: there is no tool named '{}'.", clip(other, 64)), None));
                };
                let (ok, detail, result) = call_http_tool(&self.ctx.client, tool, &args).await;
                self.emit(AgentEvent::ToolCalled { name: tool.name.clone(), ok, detail }).await?;
                Ok((result, None))
            }
        }
    }
}

/// Call an HTTP tool: (ok, detail for the timeline, text for the model).
async fn call_http_tool(client: &LlmClient, tool: &HttpTool, args: &Value) -> (bool, String, String) {
    let started = Instant::now();
    let method = match tool.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let shown = format!("{} {}", tool.method.as_str(), tool.url);
    let mut req = client.http.request(method, &tool.url).timeout(Duration::from_millis(tool.timeout_ms));
    if tool.method.uses_query() {
        let pairs: Vec<(String, String)> = args
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        req = req.query(&pairs);
    } else {
        req = req.json(args);
    }
    for (name, value) in &tool.headers {
        let mut resolved = String::new();
        for part in parse_header_value(value).unwrap_or_default() {
            match part {
                HeaderPart::Text(t) => resolved.push_str(t),
                HeaderPart::Secret(s) => match client.secrets.get(s) {
                    Some(v) => resolved.push_str(v),
                    None => {
                        let detail = format!("{shown}: the secret {s} is not configured on the server ({SECRET_ENV_PREFIX}{s})");
                        return (false, detail, "Error: the tool is not available right now.".to_owned());
                    }
                },
            }
        }
        req = req.header(name.as_str(), resolved);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return (false, format!("{shown}: no answer within {} ms", tool.timeout_ms), "Error: the tool did not answer in time.".to_owned());
        }
        Err(e) => return (false, format!("{shown}: {}", error_chain(&e)), "Error: the tool could not be reached.".to_owned()),
    };
    let status = resp.status();
    let deadline = started + Duration::from_millis(tool.timeout_ms);
    let body = read_capped(resp, MAX_TOOL_RESULT_CHARS * 4, deadline.max(Instant::now() + Duration::from_millis(100))).await.unwrap_or_default();
    let took = started.elapsed().as_millis();
    let text = clip(&body, MAX_TOOL_RESULT_CHARS);
    let text = if text.len() < body.len() { format!("{text} [truncated]") } else { text };
    if status.is_success() {
        (true, format!("{shown} → {} in {took} ms", status.as_u16()), if text.is_empty() { "OK (empty answer)".to_owned() } else { text })
    } else {
        (false, format!("{shown} → {} in {took} ms", status.as_u16()), format!("Error: the tool answered HTTP {}: {text}", status.as_u16()))
    }
}

/// Check a `record_field` value against the schema field, normalised to its type.
fn check_field(schema: Option<&AnalysisSchema>, name: &str, raw: &Value) -> Result<Value, String> {
    let text = match raw {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err("the value must be a string".to_owned()),
    };
    if text.is_empty() || text.chars().count() > 500 {
        return Err("the value must be 1 to 500 characters".to_owned());
    }
    let Some(schema) = schema else {
        return if dialnexa_core::flow::is_identifier(name) { Ok(Value::String(text)) } else { Err("the field name must be snake_case".to_owned()) };
    };
    let Some(field) = schema.field(name) else {
        let names: Vec<&str> = schema.names().collect();
        return Err(format!("'{}' is not a field; the fields are: {}", clip(name, 64), names.join(", ")));
    };
    use SchemaFieldType as T;
    let bad = |what: &str| format!("{name} must be {what}");
    match field.field_type {
        T::String | T::Datetime => Ok(Value::String(text)),
        T::Enum => field
            .options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(&text))
            .map(|o| Value::String(o.clone()))
            .ok_or_else(|| bad(&format!("one of: {}", field.options.join(", ")))),
        T::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err(bad("yes or no")),
        },
        T::Number => {
            let cleaned: String = text.chars().filter(|c| *c != ',' && *c != '_').collect();
            if let Ok(i) = cleaned.parse::<i64>() {
                return Ok(json!(i));
            }
            cleaned.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| json!(f)).ok_or_else(|| bad("a number in digits"))
        }
        T::Email => {
            let ok = text.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !text.contains(' '));
            if ok { Ok(Value::String(text.to_lowercase())) } else { Err(bad("an email address")) }
        }
        T::Phone => PhoneNumber::parse(&text).map(|p| Value::String(p.as_str().to_owned())).map_err(|_| bad("a phone number in E.164, e.g. +15550100000")),
        T::Url => {
            if text.starts_with("http://") || text.starts_with("https://") {
                Ok(Value::String(text))
            } else {
                Err(bad("an http:// or https:// URL"))
            }
        }
    }
}

/// The request body: the contract of `POST {base}/chat/completions`.
fn request_body(ctx: &Ctx, messages: Vec<Value>, last_round: bool) -> Value {
    let mut body = json!({
        "model": ctx.model,
        "messages": messages,
        "stream": true,
        "tools": ctx.tools,
        "tool_choice": if last_round { "none" } else { "auto" },
    });
    if let Some(t) = ctx.config.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// The tools offered to the model, as OpenAI function definitions.
fn tool_definitions(config: &LlmAgentConfig, schema: Option<&AnalysisSchema>) -> Vec<Value> {
    let function = |name: &str, description: &str, parameters: Value| json!({ "type": "function", "function": { "name": name, "description": description, "parameters": parameters } });
    let mut tools = vec![function(
        "end_call",
        "End the call. Say goodbye first, in the same answer.",
        json!({ "type": "object", "properties": { "reason": { "type": "string", "description": "Why the call ends" } }, "required": [] }),
    )];
    if !config.transfer_numbers.is_empty() {
        tools.push(function(
            "transfer_call",
            "Transfer the caller to a person. Tell the caller first, in the same answer.",
            json!({ "type": "object", "properties": {
                "to": { "type": "string", "enum": config.transfer_numbers, "description": "The number to transfer to, in E.164" },
                "reason": { "type": "string", "description": "Why the call is transferred" },
                "warm": { "type": "boolean", "description": "Phone calls: keep the caller on hold while the person is called and briefed with a summary, and come back to the caller if nobody answers" }
            }, "required": ["to"] }),
        ));
    }
    let mut name = json!({ "type": "string", "description": "The field's name" });
    let mut described = String::new();
    if let Some(schema) = schema {
        name["enum"] = Value::Array(schema.names().map(|n| json!(n)).collect());
        for f in &schema.fields {
            described.push_str(&format!("\n- {}: {}", f.name, f.description));
            if !f.options.is_empty() {
                described.push_str(&format!(" (one of {})", f.options.join(", ")));
            }
        }
    }
    tools.push(function(
        "record_field",
        &format!(
            "Record a fact the caller stated, as soon as they state it.{}",
            if described.is_empty() { String::new() } else { format!(" Fields:{described}") }
        ),
        json!({ "type": "object", "properties": {
            "name": name,
            "value": { "type": "string", "description": "The value as the caller gave it: numbers in digits, yes or no, phones in E.164, times in ISO 8601" }
        }, "required": ["name", "value"] }),
    ));
    for t in &config.tools {
        tools.push(function(&t.name, &t.description, t.parameters.clone()));
    }
    tools
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Collapse whitespace to single spaces.
fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    clip(&out, 300)
}

/// `error.message` of an OpenAI-style error body, or the start of the body.
fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v.as_ref().and_then(|v| v.get("error").and_then(|e| e.get("message")).or_else(|| v.get("message"))).and_then(Value::as_str);
    match msg {
        Some(m) => clip(m, 300),
        None if body.trim().is_empty() => "(no body)".to_owned(),
        None => clip(body.trim(), 300),
    }
}

/// Read a body, at most `cap` bytes, before `deadline`; `None` if it broke or was late.
async fn read_capped(mut resp: reqwest::Response, cap: usize, deadline: Instant) -> Option<String> {
    let mut buf: Vec<u8> = vec![];
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                buf.extend_from_slice(&c);
                if buf.len() >= cap {
                    buf.truncate(cap);
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

/// The `data:` lines of one server-sent event, joined; `None` for events without data.
fn sse_data(event: &str) -> Option<String> {
    let lines: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(|l| l.strip_prefix(' ').unwrap_or(l)).collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

// ---------------------------------------------------------------------------------------
// Sentences

/// Words that end in a full stop without ending the sentence ("Dr. Smith").
const ABBREVIATIONS: [&str; 21] =
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "approx", "dept", "inc", "ltd", "corp", "co", "mt", "ft", "apt", "ave", "fig"];

/// Cuts a streamed answer into sentences as the pieces arrive: a sentence ends at `.`,
/// `!`, `?` or `…` (with any closing quotes or brackets) followed by a space or a line
/// break; a line break alone ends one too. A full stop inside a word or number ("3.5",
/// "example.com") or after an abbreviation ("Dr.", "e.g.", "a.m.", an initial "J.") does
/// not. A sentence longer than [`MAX_SENTENCE_CHARS`] is cut at a comma or space.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    pub fn new() -> SentenceSplitter {
        SentenceSplitter::default()
    }

    /// Add a piece of the answer; the sentences it completes.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        let mut out = vec![];
        while let Some(end) = self.boundary() {
            let sentence = speakable(&self.buf[..end]);
            self.buf.drain(..end);
            let trimmed = self.buf.trim_start().len();
            self.buf.drain(..self.buf.len() - trimmed);
            if !sentence.is_empty() {
                out.push(sentence);
            }
        }
        out
    }

    /// The end of the answer: what is left, if anything.
    pub fn finish(&mut self) -> Option<String> {
        let rest = speakable(&std::mem::take(&mut self.buf));
        (!rest.is_empty()).then_some(rest)
    }

    /// The byte offset where the first complete sentence of the buffer ends.
    fn boundary(&self) -> Option<usize> {
        let b = &self.buf;
        let chars: Vec<(usize, char)> = b.char_indices().collect();
        let mut k = 0;
        while k < chars.len() {
            let (i, c) = chars[k];
            if c == '\n' {
                if !b[..i].trim().is_empty() {
                    return Some(i);
                }
                k += 1;
                continue;
            }
            if !matches!(c, '.' | '!' | '?' | '…') {
                k += 1;
                continue;
            }
            // The run of terminators and closing marks.
            let mut j = k;
            while j + 1 < chars.len() && matches!(chars[j + 1].1, '.' | '!' | '?' | '…' | '"' | '\'' | '”' | '’' | ')' | ']') {
                j += 1;
            }
            let Some(&(next_at, next)) = chars.get(j + 1) else {
                // Not known yet what follows.
                return self.soft_cut();
            };
            if next.is_whitespace() && !(c == '.' && j == k && is_abbreviation(&b[..i])) {
                return Some(next_at);
            }
            k = j + 1;
        }
        self.soft_cut()
    }

    /// A very long sentence: cut at the last comma (or space) before the limit.
    fn soft_cut(&self) -> Option<usize> {
        if self.buf.chars().count() <= MAX_SENTENCE_CHARS {
            return None;
        }
        let limit = self.buf.char_indices().nth(MAX_SENTENCE_CHARS).map_or(self.buf.len(), |(i, _)| i);
        let head = &self.buf[..limit];
        head.rfind([',', ';', ':']).map(|i| i + 1).or_else(|| head.rfind(' ')).filter(|&i| i > 0)
    }
}

/// The text before a full stop ends in an abbreviation.
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace()).next().unwrap_or_default();
    let word = word.trim_start_matches(['(', '"', '\'', '“', '‘', '[']);
    if word.is_empty() {
        return false;
    }
    // "e.g", "i.e", "a.m", "U.S": letters with inner dots.
    if word.contains('.') && word.chars().all(|c| c.is_alphabetic() || c == '.') {
        return true;
    }
    let mut chars = word.chars();
    // An initial: "J. Smith".
    if let (Some(c), None) = (chars.next(), chars.next())
        && c.is_uppercase()
    {
        return true;
    }
    ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Text as it should be spoken: no markdown emphasis or code marks, no heading or bullet
/// marks, no interruption marker copied by the model, single spaces.
fn speakable(s: &str) -> String {
    let s = s.replace(INTERRUPTED_MARKER, "");
    let mut words: Vec<&str> = vec![];
    for line in s.lines() {
        let line = line.trim_start().trim_start_matches('#').trim_start();
        let line = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")).unwrap_or(line);
        words.extend(line.split_whitespace());
    }
    let joined = words.join(" ");
    joined.chars().filter(|c| !matches!(c, '*' | '`')).collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn sentences_split_on_terminators_followed_by_space() {
        assert_eq!(split(&["Hello there! How are", " you? I am fine."]), ["Hello there!", "How are you?", "I am fine."]);
        assert_eq!(split(&["Version 3.5 is out. See example.com now"]), ["Version 3.5 is out.", "See example.com now"]);
        assert_eq!(split(&["Dr. Smith will call, e.g. tomorrow at 9 a.m. or so. Ok"]), ["Dr. Smith will call, e.g. tomorrow at 9 a.m. or so.", "Ok"]);
        assert_eq!(split(&["Ask J. Doe. Really?! Yes."]), ["Ask J. Doe.", "Really?!", "Yes."]);
        assert_eq!(split(&["He said \"stop.\" Then", " left."]), ["He said \"stop.\"", "Then left."]);
        assert_eq!(split(&["The total is 42. Anything else?"]), ["The total is 42.", "Anything else?"]);
        assert_eq!(split(&["Wait... what"]), ["Wait...", "what"]);
        assert_eq!(split(&["No. I don't think so."]), ["No.", "I don't think so."]);
    }

    #[test]
    fn a_sentence_waits_for_what_follows_its_full_stop() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It costs 3.").is_empty());
        assert!(s.push("5 dollars").is_empty());
        assert_eq!(s.push(". Next"), ["It costs 3.5 dollars."]);
        assert_eq!(s.finish().as_deref(), Some("Next"));
    }

    #[test]
    fn markdown_and_line_breaks() {
        assert_eq!(split(&["**Sure**, here:\n- one\n- two"]), ["Sure, here:", "one", "two"]);
    }

    #[test]
    fn long_sentences_are_cut() {
        let long = format!("{}, and then more words", "word ".repeat(60));
        let out = split(&[&long]);
        assert!(out.len() >= 2, "{out:?}");
        assert!(out.iter().all(|s| s.chars().count() <= MAX_SENTENCE_CHARS));
    }

    #[test]
    fn interruption_cuts_the_history() {
        let mut m = vec![json!({"role": "system", "content": "s"}), json!({"role": "user", "content": "hi"})];
        m.push(json!({"role": "assistant", "content": "Let me check. One moment.", "tool_calls": []}));
        m.push(json!({"role": "tool", "tool_call_id": "a", "content": "ok"}));
        m.push(json!({"role": "assistant", "content": "Your order shipped. It arrives Monday."}));
        let mut a = m.clone();
        cut_to_spoken(&mut a, 2, "Let me check. One moment. Your order");
        assert_eq!(a[2]["content"], "Let me check. One moment.");
        assert_eq!(a[4]["content"], format!("Your order {INTERRUPTED_MARKER}"));
        let mut b = m.clone();
        cut_to_spoken(&mut b, 2, "Let me");
        assert_eq!(b[2]["content"], format!("Let me {INTERRUPTED_MARKER}"));
        assert_eq!(b.len(), 4, "the unspoken message is dropped: {b:?}");
        let mut c = m.clone();
        cut_to_spoken(&mut c, 2, "");
        assert_eq!(c[2]["content"], INTERRUPTED_MARKER);
    }

    fn parse(v: Value) -> Result<(), ConfigError> {
        dialnexa_core::AgentConfig::parse(&v).map(|_| ())
    }

    fn base() -> Value {
        json!({
            "kind": "llm", "prompt": "You help.",
            "tools": [{ "name": "lookup", "description": "Look up an order", "url": "https://crm.example.com/orders",
                        "parameters": { "type": "object", "properties": { "order": { "type": "string" } }, "required": ["order"] },
                        "headers": { "Authorization": "Bearer ${CRM_TOKEN}", "X-Team": "support" } }],
            "transfer_numbers": ["+15550100001"]
        })
    }

    #[test]
    fn config_validation_paths() {
        parse(base()).expect("valid");
        let path = |f: &dyn Fn(&mut Value)| {
            let mut v = base();
            f(&mut v);
            parse(v).expect_err("refused").path
        };
        assert_eq!(path(&|v| v["tools"][0]["name"] = json!("end_call")), "tools[0].name");
        assert_eq!(path(&|v| v["tools"][0]["name"] = json!("Look Up")), "tools[0].name");
        assert_eq!(path(&|v| v["tools"][0]["description"] = json!(" ")), "tools[0].description");
        assert_eq!(path(&|v| v["tools"][0]["url"] = json!("ftp://x")), "tools[0].url");
        assert_eq!(path(&|v| v["tools"][0]["url"] = json!("https://u:p@x.com/")), "tools[0].url");
        assert_eq!(path(&|v| v["tools"][0]["url"] = json!("https://x.com/?api_key=abc")), "tools[0].url");
        assert_eq!(path(&|v| v["tools"][0]["method"] = json!("TRACE")), "tools[0].method");
        assert_eq!(path(&|v| v["tools"][0]["extra"] = json!(1)), "tools[0].extra");
        assert_eq!(path(&|v| v["tools"][0]["parameters"]["type"] = json!("string")), "tools[0].parameters.type");
        assert_eq!(path(&|v| v["tools"][0]["parameters"]["required"] = json!(["nope"])), "tools[0].parameters.required[0]");
        assert_eq!(path(&|v| v["tools"][0]["parameters"]["properties"]["order"] = json!(3)), "tools[0].parameters.properties.order");
        assert_eq!(path(&|v| v["tools"][0]["headers"]["Authorization"] = json!("Bearer sk-live-123")), "tools[0].headers.Authorization");
        assert_eq!(path(&|v| v["tools"][0]["headers"]["X-Api-Key"] = json!("abc")), "tools[0].headers.X-Api-Key");
        assert_eq!(path(&|v| v["tools"][0]["headers"]["X-Team"] = json!("${lower}")), "tools[0].headers.X-Team");
        assert_eq!(path(&|v| v["tools"][0]["timeout_ms"] = json!(10)), "tools[0].timeout_ms");
        assert_eq!(
            path(&|v| {
                let t = v["tools"][0].clone();
                v["tools"].as_array_mut().expect("tools").push(t);
            }),
            "tools[1].name"
        );
        assert_eq!(path(&|v| v["transfer_numbers"][0] = json!("5550100001")), "transfer_numbers[0]");
        assert_eq!(path(&|v| v["fallback_line"] = json!("")), "fallback_line");
        assert_eq!(path(&|v| v["fallback_line"] = json!("Sorry {{oops")), "fallback_line");
        assert_eq!(path(&|v| v["begin_message"] = json!("  ")), "begin_message");
        assert_eq!(path(&|v| v["llm_timeout_ms"] = json!(10)), "llm_timeout_ms");
        assert_eq!(path(&|v| v["model"] = json!("")), "model");
    }

    #[test]
    fn the_docs_llm_example_is_valid() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/agents.md")).expect("docs/agents.md");
        let section = &doc[doc.find("### `llm` fields").expect("llm section")..];
        let body = section.split_once("```json\n").and_then(|(_, rest)| rest.split_once("\n```")).map(|(j, _)| j).expect("a json block");
        let v: Value = serde_json::from_str(body).expect("the example parses");
        let cfg = match dialnexa_core::AgentConfig::parse(&v).expect("the example is valid") {
            dialnexa_core::AgentConfig::Llm(c) => c,
            other => panic!("not an llm config: {other}"),
        };
        assert_eq!(cfg.tools[0].method, HttpMethod::Post);
        assert_eq!(cfg.llm_timeout_ms, 5_000);
    }

    #[test]
    fn record_field_values_follow_the_schema() {
        let schema = dialnexa_core::analysis::AnalysisConfig::default().resolve("analysis").expect("schema");
        let s = Some(&schema);
        assert_eq!(check_field(s, "urgency", &json!("HIGH")), Ok(json!("high")));
        assert_eq!(check_field(s, "affected_users", &json!("1,200")), Ok(json!(1200)));
        assert_eq!(check_field(s, "caller_phone", &json!("+15550100002")), Ok(json!("+15550100002")));
        assert!(check_field(s, "caller_phone", &json!("tomorrow")).is_err());
        assert!(check_field(s, "favourite_color", &json!("blue")).is_err());
        assert_eq!(check_field(s, "logs_referenced", &json!("yes")), Ok(json!(true)));
    }
}
