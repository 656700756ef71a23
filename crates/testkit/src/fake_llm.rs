//! A stateful fake of an OpenAI-compatible chat-completions server
//! (`POST /v1/chat/completions`), following the real contract: bearer auth, a JSON body with
//! `model` and `messages`, answers shaped like `chat.completion` (or server-sent
//! `chat.completion.chunk` events when `stream: true`), errors shaped like OpenAI's. It
//! records every request and replies from a script, so tests can make it fail on demand.
//!
//! Besides plain answers it can answer with tool calls (streamed as `delta.tool_calls`
//! fragments, or whole in `message.tool_calls`), and with hand-made streams
//! ([`Reply::Stream`]): delayed pieces, a slow first token, a stall or a mid-stream
//! disconnect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake answers to the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An assistant message whose content is this JSON (serialised).
    Json(Value),
    /// An assistant message with this exact content (e.g. broken JSON).
    Content(String),
    /// An error status with an OpenAI-style error body.
    Status(u16),
    /// 429 with `Retry-After` in seconds.
    RateLimited { retry_after_secs: u64 },
    /// Wait, then answer.
    Delay(Duration, Box<Reply>),
    /// An assistant message with tool calls (and optional content before them). Streamed:
    /// the content in pieces, then each call as `delta.tool_calls` fragments (id and name
    /// first, the arguments in several pieces), `finish_reason: "tool_calls"`.
    ToolCalls { content: Option<String>, calls: Vec<ToolCall> },
    /// A hand-made answer, step by step. Streamed, a role chunk goes out at once, then the
    /// steps in order, then `finish_reason` and `[DONE]` (unless a step disconnects).
    /// Not streamed: waits for the total of the waits, then answers the content and tool
    /// calls as one message (a disconnect drops the connection without an answer).
    Stream(Vec<Chunk>),
}

impl Reply {
    /// Content sent in `pieces`, with `gap` before each piece after the first.
    pub fn chunked(pieces: &[&str], gap: Duration) -> Reply {
        let mut steps = vec![];
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                steps.push(Chunk::Wait(gap));
            }
            steps.push(Chunk::Content((*p).to_owned()));
        }
        Reply::Stream(steps)
    }

    /// The response starts at once (headers and the role chunk) but the first token comes
    /// after `delay`.
    pub fn slow_first_token(delay: Duration, content: &str) -> Reply {
        Reply::Stream(vec![Chunk::Wait(delay), Chunk::Content(content.to_owned())])
    }

    /// One tool call and nothing else.
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply::ToolCalls { content: None, calls: vec![ToolCall::new(name, arguments)] }
    }
}

/// A tool call the fake model makes.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// Empty: the fake makes one up (`call_<request>_<index>`).
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

impl ToolCall {
    pub fn new(name: &str, arguments: Value) -> ToolCall {
        ToolCall { id: String::new(), name: name.to_owned(), arguments }
    }
}

/// One step of a [`Reply::Stream`].
#[derive(Debug, Clone)]
pub enum Chunk {
    /// A `delta.content` piece.
    Content(String),
    /// Send nothing for a while (a slow first token, a stall).
    Wait(Duration),
    /// A tool call, as fragments.
    ToolCall(ToolCall),
    /// A chunk with an OpenAI-style `error` object instead of choices.
    Error(String),
    /// Drop the connection here, without `finish_reason` or `[DONE]`.
    Disconnect,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    requests: Vec<Value>,
    api_key: Option<String>,
    served: u64,
    ignore_stream: bool,
}

#[derive(Clone)]
pub struct FakeLlm {
    /// Base URL with the version prefix: `http://127.0.0.1:PORT/v1`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeLlm {
    pub async fn start() -> FakeLlm {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().route("/v1/chat/completions", post(completions)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake llm");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm { url: format!("http://{addr}/v1"), inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer the next request with `reply` (replies queue up in order).
    pub fn push(&self, reply: Reply) -> &Self {
        self.lock().script.push_back(reply);
        self
    }

    /// The answer when the script is empty (without one: 500).
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = Some(reply);
    }

    /// Demand `Authorization: Bearer <key>`.
    pub fn require_key(&self, key: &str) {
        self.lock().api_key = Some(key.to_owned());
    }

    /// Answer every request in one piece, even when it asks for `stream: true` (as some
    /// OpenAI-compatible servers do).
    pub fn ignore_stream(&self, on: bool) {
        self.lock().ignore_stream = on;
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.clone()
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": code } }))).into_response()
}

async fn completions(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let (reply, n) = {
        let mut st = inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &st.api_key {
            let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            if sent != Some(key.as_str()) {
                return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
            }
        }
        let Ok(req) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json");
        };
        let model_ok = req.get("model").is_some_and(Value::is_string);
        let messages_ok = req.get("messages").and_then(Value::as_array).is_some_and(|m| !m.is_empty());
        if !(model_ok && messages_ok) {
            return error(StatusCode::BAD_REQUEST, "'model' and a non-empty 'messages' are required.", "invalid_request_error", "missing_required_parameter");
        }
        st.requests.push(req.clone());
        st.served += 1;
        let reply = st.script.pop_front().or_else(|| st.default.clone());
        (reply.map(|r| (r, req, st.ignore_stream)), st.served)
    };
    let Some((mut reply, req, ignore_stream)) = reply else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "The fake has no scripted reply.", "server_error", "no_reply");
    };
    while let Reply::Delay(d, next) = reply {
        tokio::time::sleep(d).await;
        reply = *next;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or("fake").to_owned();
    let streamed = req.get("stream").and_then(Value::as_bool) == Some(true) && !ignore_stream;
    let id = format!("chatcmpl-fake-{n}");
    let content = match reply {
        Reply::Json(v) => v.to_string(),
        Reply::Content(c) => c,
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, "The server had an error while processing your request.", "server_error", "server_error");
        }
        Reply::RateLimited { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached for requests.", "requests", "rate_limit_exceeded");
            r.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.to_string().parse().expect("header"));
            return r;
        }
        Reply::Delay(..) => unreachable_delay(),
        Reply::ToolCalls { content, calls } => {
            let mut steps: Vec<Chunk> = content.map(Chunk::Content).into_iter().collect();
            steps.extend(calls.into_iter().map(Chunk::ToolCall));
            return scripted(n, id, model, steps, streamed).await;
        }
        Reply::Stream(steps) => return scripted(n, id, model, steps, streamed).await,
    };
    if streamed {
        return stream(id, model, content);
    }
    Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": jiff_now_secs(),
        "model": model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": body.len() / 4, "completion_tokens": content.len() / 4, "total_tokens": (body.len() + content.len()) / 4 }
    }))
    .into_response()
}

fn unreachable_delay() -> String {
    String::new()
}

fn jiff_now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn chunk_json(id: &str, model: &str, delta: Value, finish: Value) -> Value {
    json!({ "id": id, "object": "chat.completion.chunk", "created": jiff_now_secs(), "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
}

/// Server-sent events, a few words per chunk, then `[DONE]`.
fn stream(id: String, model: String, content: String) -> Response {
    let mut events = vec![];
    let chunk = |delta: Value, finish: Value| chunk_json(&id, &model, delta, finish);
    events.push(chunk(json!({ "role": "assistant", "content": "" }), Value::Null));
    let words: Vec<&str> = content.split_inclusive(' ').collect();
    for piece in words.chunks(3) {
        events.push(chunk(json!({ "content": piece.concat() }), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    let mut text = String::new();
    for e in events {
        text.push_str(&format!("data: {e}\n\n"));
    }
    text.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from(text)).into_response()
}

/// What a scripted stream does next.
enum Emit {
    Data(String),
    Wait(Duration),
    Fail,
}

/// Answer a [`Reply::Stream`] (or tool calls), streamed or whole.
async fn scripted(n: u64, id: String, model: String, steps: Vec<Chunk>, streamed: bool) -> Response {
    let call_id = |i: usize, c: &ToolCall| if c.id.is_empty() { format!("call_{n}_{i}") } else { c.id.clone() };
    if !streamed {
        let mut content = String::new();
        let mut calls = vec![];
        for step in steps {
            match step {
                Chunk::Content(c) => content.push_str(&c),
                Chunk::Wait(d) => tokio::time::sleep(d).await,
                Chunk::ToolCall(c) => {
                    let i = calls.len();
                    calls.push(json!({ "id": call_id(i, &c), "type": "function", "function": { "name": c.name, "arguments": c.arguments.to_string() } }));
                }
                Chunk::Error(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, &message, "server_error", "server_error"),
                Chunk::Disconnect => return disconnect(),
            }
        }
        let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
        let mut message = json!({ "role": "assistant", "content": if content.is_empty() { Value::Null } else { json!(content) } });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        return Json(json!({
            "id": id, "object": "chat.completion", "created": jiff_now_secs(), "model": model,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 }
        }))
        .into_response();
    }
    let data = |v: Value| Emit::Data(format!("data: {v}\n\n"));
    let mut out = std::collections::VecDeque::new();
    out.push_back(data(chunk_json(&id, &model, json!({ "role": "assistant", "content": "" }), Value::Null)));
    let mut calls = 0usize;
    let mut failed = false;
    for step in steps {
        match step {
            Chunk::Content(c) => out.push_back(data(chunk_json(&id, &model, json!({ "content": c }), Value::Null))),
            Chunk::Wait(d) => out.push_back(Emit::Wait(d)),
            Chunk::ToolCall(c) => {
                let i = calls;
                calls += 1;
                let first =
                    json!({ "tool_calls": [{ "index": i, "id": call_id(i, &c), "type": "function", "function": { "name": c.name, "arguments": "" } }] });
                out.push_back(data(chunk_json(&id, &model, first, Value::Null)));
                let args = c.arguments.to_string();
                let chars: Vec<char> = args.chars().collect();
                for piece in chars.chunks(chars.len().div_ceil(3).max(1)) {
                    let piece: String = piece.iter().collect();
                    let delta = json!({ "tool_calls": [{ "index": i, "function": { "arguments": piece } }] });
                    out.push_back(data(chunk_json(&id, &model, delta, Value::Null)));
                }
            }
            Chunk::Error(message) => {
                out.push_back(data(json!({ "error": { "message": message, "type": "server_error", "param": null, "code": "server_error" } })));
            }
            Chunk::Disconnect => {
                // Let what was sent reach the client first (hyper would drop it unsent).
                out.push_back(Emit::Wait(Duration::from_millis(100)));
                out.push_back(Emit::Fail);
                failed = true;
                break;
            }
        }
    }
    if !failed {
        let finish = if calls > 0 { "tool_calls" } else { "stop" };
        out.push_back(data(chunk_json(&id, &model, json!({}), json!(finish))));
        out.push_back(Emit::Data("data: [DONE]\n\n".to_owned()));
    }
    let body = futures_util::stream::unfold(out, |mut out| async move {
        loop {
            match out.pop_front()? {
                Emit::Wait(d) => tokio::time::sleep(d).await,
                Emit::Data(d) => return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(d)), out)),
                Emit::Fail => return Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake dropped the stream")), out)),
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}

/// A response whose body breaks off at once.
fn disconnect() -> Response {
    let body = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake dropped the connection"))
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}
