//! Fake Heartbeat (integrations.md §2), base `{base_url}/v0`.
//!
//! - Every request needs `Authorization: Bearer <API_KEY>`; otherwise
//!   `401 {"error":true,"message":"Invalid API Key"}`. Every answer (401 and injected faults
//!   included) carries `x-ratelimit-limit: 20`, `x-ratelimit-remaining`, `x-ratelimit-reset`
//!   (a rolling 2 s window); enforcing it (429) is a switch.
//! - Users (seed with [`FakeHeartbeat::add_user`] / [`FakeHeartbeat::add_user_profile`]):
//!   `GET /v0/users`, `GET /v0/users/{id}` (a bare object, or a bare 404),
//!   `GET /v0/find/users?email=` (the wrapper is a switch: [`FindUsersShape`]), `GET /v0/roles`.
//! - Events (seed with [`FakeHeartbeat::add_event`]): `GET /v0/events?groupID=` (a bare array),
//!   `GET /v0/events/{id}`.
//! - `PUT /v0/directMessages` `{"to","text","from"?}` → 204, kept in [`FakeHeartbeat::direct_messages`].
//! - `PUT /v0/chatChannel/{id}/message` `{"text","from"}` → 204 (`from` required unless switched
//!   off), kept in [`FakeHeartbeat::channel_messages`]; `GET /v0/chatChannel/{id}/messages` →
//!   `{data,hasMore}`, newest first.
//!
//! Missing required fields answer `400 {"error":true,"message":"ValidationError: …"}`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::{Control, bearer, json_response, percent_decode};

/// The API key the fake accepts.
pub const API_KEY: &str = "hb:5e0b7c41d29f8a63e1";
const RATE_LIMIT: usize = 20;
const WINDOW: Duration = Duration::from_secs(2);
const PAGE: usize = 50;

/// The `GET /v0/find/users` wrapper ([unverified]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FindUsersShape {
    /// `[...]`, like every other list.
    #[default]
    BareArray,
    /// `{"users":[...]}` (as w6w exposes it).
    Users,
    /// `{"data":[...]}`.
    Data,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DirectMessage {
    pub to: String,
    pub from: Option<String>,
    pub text: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    pub id: String,
    pub channel_id: String,
    pub from: Option<String>,
    pub text: String,
    pub created_at: String,
}

struct Inner {
    users: Vec<Value>,
    events: Vec<Value>,
    dms: Vec<DirectMessage>,
    messages: Vec<ChannelMessage>,
    find_shape: FindUsersShape,
    require_chat_from: bool,
    known_recipients_only: bool,
    enforce_rate_limit: bool,
    retry_after_on_429: bool,
    window: VecDeque<Instant>,
}

type Shared = Arc<Mutex<Inner>>;

#[derive(Clone)]
pub struct FakeHeartbeat {
    pub base_url: String,
    pub control: Control,
    inner: Shared,
}

fn lock(inner: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl FakeHeartbeat {
    pub async fn start() -> Self {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            users: vec![],
            events: vec![],
            dms: vec![],
            messages: vec![],
            find_shape: FindUsersShape::BareArray,
            require_chat_from: true,
            known_recipients_only: false,
            enforce_rate_limit: false,
            retry_after_on_429: true,
            window: VecDeque::new(),
        }));
        let control = Control::default();
        let router = axum::Router::new()
            .route("/v0/users", get(list_users))
            .route("/v0/users/{id}", get(get_user))
            .route("/v0/find/users", get(find_users))
            .route("/v0/roles", get(roles))
            .route("/v0/events", get(list_events))
            .route("/v0/events/{id}", get(get_event))
            .route("/v0/directMessages", put(put_dm))
            .route("/v0/chatChannel/{id}/message", put(put_message))
            .route("/v0/chatChannel/{id}/messages", get(list_messages))
            .fallback(|| async { StatusCode::NOT_FOUND.into_response() })
            .layer(axum::middleware::from_fn(auth))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), rate_limit))
            .with_state(inner.clone());
        let base_url = super::serve(router, control.clone(), error_body).await;
        FakeHeartbeat { base_url, control, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Seed a member; returns the id.
    pub fn add_user(&self, name: &str, email: &str) -> String {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        self.add_user_profile(json!({ "email": email, "name": name, "firstName": first, "lastName": last }))
    }

    /// Seed a member from a profile (its `id` is kept or made up; the usual fields are filled in).
    pub fn add_user_profile(&self, profile: Value) -> String {
        let mut p = json!({ "id": new_id(), "email": "", "name": "", "firstName": "", "lastName": "", "bio": "", "createdAt": now(), "role": "User",
            "isAdmin": false, "groups": [], "avatar": null, "linkedInSummary": null, "linkedInData": null, "onboardingResponses": [] });
        if let (Some(base), Some(extra)) = (p.as_object_mut(), profile.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let id = p["id"].as_str().unwrap_or_default().to_owned();
        self.lock().users.push(p);
        id
    }

    /// Seed an event starting at `start_time` (RFC 3339), lasting an hour; `group_ids` empty = open to all.
    pub fn add_event(&self, name: &str, start_time: &str, group_ids: &[&str]) -> String {
        let end = start_time.parse::<jiff::Timestamp>().ok().and_then(|t| t.checked_add(jiff::SignedDuration::from_hours(1)).ok()).map(|t| t.to_string());
        self.add_event_json(json!({ "name": name, "startTime": start_time, "endTime": end, "invitedGroups": group_ids }))
    }

    /// Seed an event from JSON (its `id` is kept or made up).
    pub fn add_event_json(&self, event: Value) -> String {
        let mut e = json!({ "id": new_id(), "name": "", "description": "", "startTime": null, "endTime": null, "createdAt": now(), "createdBy": null,
            "invitedUsers": [], "invitedGroups": [], "recurring": false });
        if let (Some(base), Some(extra)) = (e.as_object_mut(), event.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let id = e["id"].as_str().unwrap_or_default().to_owned();
        self.lock().events.push(e);
        id
    }

    pub fn users(&self) -> Vec<Value> {
        self.lock().users.clone()
    }
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }
    pub fn direct_messages(&self) -> Vec<DirectMessage> {
        self.lock().dms.clone()
    }
    /// Every chat-channel message, in the order received.
    pub fn channel_messages(&self) -> Vec<ChannelMessage> {
        self.lock().messages.clone()
    }
    /// Seed a message already in a channel.
    pub fn add_channel_message(&self, channel_id: &str, text: &str) -> String {
        let id = new_id();
        self.lock().messages.push(ChannelMessage { id: id.clone(), channel_id: channel_id.into(), from: None, text: text.into(), created_at: now() });
        id
    }
    pub fn set_find_users_shape(&self, s: FindUsersShape) {
        self.lock().find_shape = s;
    }
    /// Chat messages need `from` (default true, as Heartbeat's schema says).
    pub fn set_require_chat_from(&self, on: bool) {
        self.lock().require_chat_from = on;
    }
    /// Direct messages to an unknown user answer 404 (default false).
    pub fn set_known_recipients_only(&self, on: bool) {
        self.lock().known_recipients_only = on;
    }
    /// Answer 429 beyond 20 requests per rolling 2 s (default false).
    pub fn set_enforce_rate_limit(&self, on: bool) {
        self.lock().enforce_rate_limit = on;
    }
    /// Send `Retry-After` with the fake's own 429s (default true; [unverified]).
    pub fn set_retry_after_on_429(&self, on: bool) {
        self.lock().retry_after_on_429 = on;
    }
}

fn hb_error(status: u16, message: &str) -> Response {
    json_response(status, json!({ "error": true, "message": message }))
}

fn reset_at() -> String {
    (jiff::Timestamp::now().as_second() + 2).to_string()
}

/// Injected faults: Heartbeat's envelope, with the rate-limit headers every answer has.
fn error_body(status: u16) -> Response {
    let mut r = if status == 404 {
        StatusCode::NOT_FOUND.into_response()
    } else {
        let message = match status {
            400 => "ValidationError",
            401 => "Invalid API Key",
            429 => "Too many requests",
            _ => "Internal Server Error",
        };
        hb_error(status, message)
    };
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", RATE_LIMIT.to_string().parse().expect("header"));
    h.insert("x-ratelimit-remaining", (if status == 429 { 0 } else { RATE_LIMIT - 1 }).to_string().parse().expect("header"));
    h.insert("x-ratelimit-reset", reset_at().parse().expect("header"));
    r
}

async fn rate_limit(State(inner): State<Shared>, req: Request, next: Next) -> Response {
    let (count, enforce, retry_after) = {
        let mut st = lock(&inner);
        let now = Instant::now();
        while st.window.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            st.window.pop_front();
        }
        st.window.push_back(now);
        (st.window.len(), st.enforce_rate_limit, st.retry_after_on_429)
    };
    let mut resp = if enforce && count > RATE_LIMIT {
        let mut r = hb_error(429, "Too many requests");
        if retry_after {
            r.headers_mut().insert("retry-after", "2".parse().expect("header"));
        }
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", RATE_LIMIT.to_string().parse().expect("header"));
    h.insert("x-ratelimit-remaining", RATE_LIMIT.saturating_sub(count).to_string().parse().expect("header"));
    h.insert("x-ratelimit-reset", reset_at().parse().expect("header"));
    resp
}

async fn auth(req: Request, next: Next) -> Response {
    if bearer(req.headers()).as_deref() != Some(API_KEY) {
        return hb_error(401, "Invalid API Key");
    }
    next.run(req).await
}

fn query_param(q: &Option<String>, name: &str) -> Option<String> {
    q.as_deref()?.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
}

async fn list_users(State(inner): State<Shared>) -> Response {
    json_response(200, Value::Array(lock(&inner).users.clone()))
}

async fn get_user(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&inner).users.iter().find(|u| u["id"] == id.as_str()) {
        Some(u) => json_response(200, u.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn find_users(State(inner): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let Some(email) = query_param(&q, "email").map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()) else {
        return hb_error(400, "ValidationError: email is required");
    };
    let st = lock(&inner);
    let found: Vec<Value> = st.users.iter().filter(|u| u["email"].as_str().is_some_and(|e| e.to_lowercase() == email)).cloned().collect();
    json_response(
        200,
        match st.find_shape {
            FindUsersShape::BareArray => Value::Array(found),
            FindUsersShape::Users => json!({ "users": found }),
            FindUsersShape::Data => json!({ "data": found }),
        },
    )
}

async fn roles() -> Response {
    json_response(200, json!([{ "id": "role-admin", "name": "Admin" }, { "id": "role-user", "name": "User" }]))
}

async fn list_events(State(inner): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let group = query_param(&q, "groupID").filter(|g| !g.is_empty());
    let st = lock(&inner);
    let events: Vec<Value> = st
        .events
        .iter()
        .filter(|e| {
            let Some(g) = &group else { return true };
            let groups = e["invitedGroups"].as_array().map(Vec::len).unwrap_or(0);
            let users = e["invitedUsers"].as_array().map(Vec::len).unwrap_or(0);
            e["invitedGroups"].as_array().is_some_and(|a| a.iter().any(|x| x == g.as_str())) || (groups == 0 && users == 0)
        })
        .cloned()
        .collect();
    json_response(200, Value::Array(events))
}

async fn get_event(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&inner).events.iter().find(|e| e["id"] == id.as_str()) {
        Some(e) => json_response(200, e.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn body_json(body: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err("ValidationError: the body must be a JSON object".into()),
    }
}

fn required_str(o: &serde_json::Map<String, Value>, field: &str) -> Result<String, String> {
    match o.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(format!("ValidationError: \"{field}\" is required")),
    }
}

async fn put_dm(State(inner): State<Shared>, body: String) -> Response {
    let parsed = body_json(&body).and_then(|o| Ok((required_str(&o, "to")?, required_str(&o, "text")?, o)));
    let (to, text, o) = match parsed {
        Ok(v) => v,
        Err(m) => return hb_error(400, &m),
    };
    let mut st = lock(&inner);
    if st.known_recipients_only && !st.users.iter().any(|u| u["id"] == to.as_str()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let from = o.get("from").and_then(Value::as_str).map(str::to_owned);
    st.dms.push(DirectMessage { to, from, text, created_at: now() });
    StatusCode::NO_CONTENT.into_response()
}

async fn put_message(State(inner): State<Shared>, Path(channel): Path<String>, body: String) -> Response {
    let (text, o) = match body_json(&body).and_then(|o| Ok((required_str(&o, "text")?, o))) {
        Ok(v) => v,
        Err(m) => return hb_error(400, &m),
    };
    let mut st = lock(&inner);
    let from = match required_str(&o, "from") {
        Ok(f) => Some(f),
        Err(m) if st.require_chat_from => return hb_error(400, &m),
        Err(_) => None,
    };
    let created_at = o.get("createdAt").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(now);
    st.messages.push(ChannelMessage { id: new_id(), channel_id: channel, from, text, created_at });
    StatusCode::NO_CONTENT.into_response()
}

async fn list_messages(State(inner): State<Shared>, Path(channel): Path<String>) -> Response {
    let st = lock(&inner);
    let all: Vec<&ChannelMessage> = st.messages.iter().rev().filter(|m| m.channel_id == channel).collect();
    let data: Vec<Value> =
        all.iter().take(PAGE).map(|m| json!({ "id": m.id, "text": m.text, "from": m.from, "createdAt": m.created_at, "channelID": m.channel_id })).collect();
    json_response(200, json!({ "data": data, "hasMore": all.len() > PAGE }))
}
