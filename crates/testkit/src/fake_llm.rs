//! A stateful fake of an OpenAI-compatible chat-completions server
//! (`POST /v1/chat/completions`), following the real contract: bearer auth, a JSON body with
//! `model` and `messages`, answers shaped like `chat.completion` (or server-sent
//! `chat.completion.chunk` events when `stream: true`), errors shaped like OpenAI's. It
//! records every request and replies from a script, so tests can make it fail on demand.

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
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    requests: Vec<Value>,
    api_key: Option<String>,
    served: u64,
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
        (reply.map(|r| (r, req)), st.served)
    };
    let Some((mut reply, req)) = reply else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "The fake has no scripted reply.", "server_error", "no_reply");
    };
    while let Reply::Delay(d, next) = reply {
        tokio::time::sleep(d).await;
        reply = *next;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or("fake").to_owned();
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
    };
    let id = format!("chatcmpl-fake-{n}");
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
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

/// Server-sent events, a few words per chunk, then `[DONE]`.
fn stream(id: String, model: String, content: String) -> Response {
    let mut events = vec![];
    let chunk = |delta: Value, finish: Value| json!({ "id": id, "object": "chat.completion.chunk", "created": jiff_now_secs(), "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
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
