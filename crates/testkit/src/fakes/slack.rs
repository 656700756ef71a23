//! Fake Slack, per `reference/integrations.md` §3. Two hosts, like the real service:
//! - the webhook host (`hooks_url`, real `https://hooks.slack.com`): `POST /services/T…/B…/…`
//!   answers 200 `ok`, or a plain-text error (`invalid_payload`, `no_text`, `no_service`,
//!   `invalid_token`, `channel_is_archived`, `rollup_error`...);
//! - the Web API (`base_url`, real `https://slack.com/api`): `POST /chat.postMessage` with a
//!   bearer token, JSON or form body; logic errors are HTTP 200 `{"ok":false,"error":…}`
//!   (`not_authed`, `invalid_auth`, `channel_not_found`, `not_in_channel`, `is_archived`,
//!   `no_text`, `msg_too_long`, `invalid_blocks`); success `{"ok":true,"channel","ts","message"}`.
//!   With `thread_ts` the message is a reply in that message's thread (a reply's `ts` threads on
//!   its parent); a `thread_ts` that names no message of the channel answers `thread_not_found`
//!   [unverified: Slack's reference does not say].
//! - `GET|POST /conversations.replies?channel=&ts=&limit=&cursor=` (Slack's reference;
//!   integrations.md §3 does not list it): the parent then its replies, oldest first,
//!   `{"ok":true,"messages":[…],"has_more","response_metadata":{"next_cursor"}}`; a `ts` that
//!   names no message (or a deleted one, [`FakeSlack::delete_message`]) → `thread_not_found`;
//!   without the history scope (switch `history_scope`) → `missing_scope`.
//!
//! Every message received is stored ([`FakeSlack::messages`], replies included, and
//! [`FakeSlack::replies`] per thread): the fake never de-duplicates.
//!
//! Both share one [`Control`]: a 429 fault answers `{"ok":false,"error":"ratelimited"}` on the
//! API host and `rate_limited` as text on the webhook host, each with `Retry-After`.
//! The [unverified] webhook errors are switches ([`SlackSwitches`]).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Control, bearer, json_response, percent_decode, serve};

/// The channels a fake workspace starts with.
pub const ONCALL: &str = "C0ONCALL";
pub const ESCALATIONS: &str = "C0ESCALATE";
/// A channel the bot is not a member of.
pub const PRIVATE: &str = "C0PRIVATE";

/// Switches for what `integrations.md` marks [unverified].
#[derive(Debug, Clone)]
pub struct SlackSwitches {
    /// A webhook post without `text` or `blocks` answers 400 `no_text` (true) or `invalid_payload` (false).
    pub webhook_no_text: bool,
    /// An unknown or revoked webhook answers 404 `no_service` (true) or 403 `invalid_token` (false).
    pub unknown_webhook_no_service: bool,
    /// The bot token has `channels:history`/`groups:history`, so `conversations.replies` works
    /// (true), or it answers `missing_scope` (false).
    pub history_scope: bool,
}

impl Default for SlackSwitches {
    fn default() -> Self {
        SlackSwitches { webhook_no_text: true, unknown_webhook_no_service: true, history_scope: true }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlackChannel {
    pub id: String,
    pub name: String,
    pub archived: bool,
    /// The bot was invited.
    pub bot_member: bool,
}

/// A message Slack accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// `webhook` or `chat.postMessage`.
    pub via: String,
    pub channel: String,
    pub text: String,
    pub blocks: Value,
    pub ts: String,
    /// The parent's `ts` when the message is a reply in a thread.
    pub thread_ts: Option<String>,
    /// The whole request body.
    pub body: Value,
}

impl SlackMessage {
    /// Every text of the message (text and blocks), for content assertions.
    pub fn all_text(&self) -> String {
        format!("{}\n{}", self.text, self.blocks)
    }
}

struct Webhook {
    path: String,
    channel: String,
    revoked: bool,
}

struct Inner {
    bot_token: String,
    channels: Vec<SlackChannel>,
    webhooks: Vec<Webhook>,
    messages: Vec<SlackMessage>,
    /// `(channel, ts)` of deleted messages (they stay in `messages`, as received).
    deleted: Vec<(String, String)>,
    next_ts: u64,
    switches: SlackSwitches,
    /// `{"ok":false,"error":…}` answers queued for the next chat.postMessage calls.
    api_errors: std::collections::VecDeque<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
pub struct FakeSlack {
    /// The Web API root (like `https://slack.com/api`): use as the bot form's `base_url`.
    pub base_url: String,
    /// The webhook host (like `https://hooks.slack.com`): use as the webhook form's `base_url`.
    pub hooks_url: String,
    /// The bot token the API accepts.
    pub bot_token: String,
    /// The path of the working incoming webhook (`/services/T…/B…/…`): the secret part.
    pub webhook_path: String,
    pub control: Control,
    state: Shared,
}

fn api_error_body(status: u16) -> Response {
    let error = match status {
        429 => "ratelimited",
        401 => "not_authed",
        403 => "invalid_auth",
        404 => "unknown_method",
        s if s >= 500 => "internal_error",
        _ => "invalid_arguments",
    };
    json_response(status, json!({ "ok": false, "error": error }))
}

fn hooks_error_body(status: u16) -> Response {
    let error = match status {
        429 => "rate_limited",
        400 => "invalid_payload",
        403 => "action_prohibited",
        404 => "channel_not_found",
        410 => "channel_is_archived",
        s if s >= 500 => "rollup_error",
        _ => "invalid_payload",
    };
    text_response(status, error)
}

fn text_response(status: u16, body: &str) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), [("content-type", "text/html")], body.to_owned()).into_response()
}

fn ok_false(error: &str) -> Response {
    json_response(200, json!({ "ok": false, "error": error }))
}

/// Check blocks roughly as Slack does: an array of at most 50 typed blocks with bounded texts.
fn blocks_valid(blocks: &Value) -> bool {
    let Some(list) = blocks.as_array() else { return false };
    if list.len() > 50 {
        return false;
    }
    list.iter().all(|b| {
        let text_len = |v: &Value| v["text"].as_str().map(|t| t.chars().count());
        match b["type"].as_str() {
            Some("header") => b["text"]["type"] == "plain_text" && text_len(&b["text"]).is_some_and(|n| (1..=150).contains(&n)),
            Some("section") => {
                let text_ok = b.get("text").is_none_or(|t| text_len(t).is_some_and(|n| (1..=3000).contains(&n)));
                let fields_ok = b
                    .get("fields")
                    .is_none_or(|f| f.as_array().is_some_and(|f| f.len() <= 10 && f.iter().all(|x| text_len(x).is_some_and(|n| (1..=2000).contains(&n)))));
                text_ok && fields_ok && (b.get("text").is_some() || b.get("fields").is_some())
            }
            Some("context") => b["elements"].as_array().is_some_and(|e| !e.is_empty() && e.len() <= 10),
            Some("divider" | "actions" | "image" | "rich_text" | "input" | "file" | "video" | "markdown") => true,
            _ => false,
        }
    })
}

fn has_content(body: &Value) -> bool {
    body["text"].as_str().is_some_and(|t| !t.trim().is_empty())
        || body["blocks"].as_array().is_some_and(|b| !b.is_empty())
        || body["attachments"].as_array().is_some_and(|a| !a.is_empty())
}

impl FakeSlack {
    pub async fn start() -> Self {
        let control = Control::default();
        let webhook_path = "/services/T0DIALNEXA/B0ONCALL/hOoKsEcReT0123456789abcd".to_owned();
        let state: Shared = Arc::new(Mutex::new(Inner {
            bot_token: "xoxb-1111-2222-fakeSlackBotSecret".into(),
            channels: vec![
                SlackChannel { id: ONCALL.into(), name: "oncall".into(), archived: false, bot_member: true },
                SlackChannel { id: ESCALATIONS.into(), name: "escalations".into(), archived: false, bot_member: true },
                SlackChannel { id: PRIVATE.into(), name: "private-ops".into(), archived: false, bot_member: false },
            ],
            webhooks: vec![Webhook { path: webhook_path.clone(), channel: ONCALL.into(), revoked: false }],
            messages: Vec::new(),
            deleted: Vec::new(),
            next_ts: 1_700_000_000_000_100,
            switches: SlackSwitches::default(),
            api_errors: Default::default(),
        }));
        let api = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/conversations.replies", get(replies).post(replies))
            .with_state(state.clone());
        let hooks = Router::new().route("/services/{*rest}", post(webhook)).with_state(state.clone());
        let api_root = serve(api, control.clone(), api_error_body).await;
        let hooks_url = serve(hooks, control.clone(), hooks_error_body).await;
        let bot_token = lock(&state).bot_token.clone();
        FakeSlack { base_url: format!("{api_root}/api"), hooks_url, bot_token, webhook_path, control, state }
    }

    /// The working incoming webhook, as a full URL on the fake's host.
    pub fn webhook_url(&self) -> String {
        format!("{}{}", self.hooks_url, self.webhook_path)
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        lock(&self.state).messages.clone()
    }

    pub fn channels(&self) -> Vec<SlackChannel> {
        lock(&self.state).channels.clone()
    }

    /// Add a channel (the bot is a member); returns its id.
    pub fn add_channel(&self, name: &str) -> String {
        let mut st = lock(&self.state);
        let id = format!("C0{:06}", st.channels.len() + 1);
        st.channels.push(SlackChannel { id: id.clone(), name: name.trim_start_matches('#').to_owned(), archived: false, bot_member: true });
        id
    }

    /// Archive a channel (by id or name).
    pub fn archive_channel(&self, channel: &str) {
        let mut st = lock(&self.state);
        let name = channel.trim_start_matches('#');
        for c in st.channels.iter_mut().filter(|c| c.id == channel || c.name == name) {
            c.archived = true;
        }
    }

    /// Revoke the incoming webhook.
    pub fn revoke_webhook(&self) {
        for w in lock(&self.state).webhooks.iter_mut() {
            w.revoked = true;
        }
    }

    /// The replies in the thread of `ts` (not the parent), in order.
    pub fn replies(&self, ts: &str) -> Vec<SlackMessage> {
        lock(&self.state).messages.iter().filter(|m| m.thread_ts.as_deref() == Some(ts)).cloned().collect()
    }

    /// Delete a message, as someone in Slack would: its thread is gone (`thread_not_found`).
    pub fn delete_message(&self, channel: &str, ts: &str) {
        lock(&self.state).deleted.push((channel.to_owned(), ts.to_owned()));
    }

    /// Make the next chat.postMessage answer HTTP 200 `{"ok":false,"error":code}` (e.g. `ratelimited`).
    pub fn next_api_error(&self, code: &str) {
        lock(&self.state).api_errors.push_back(code.to_owned());
    }

    pub fn set_switches(&self, switches: SlackSwitches) {
        lock(&self.state).switches = switches;
    }

    pub fn switches(&self) -> SlackSwitches {
        lock(&self.state).switches.clone()
    }
}

fn next_ts(st: &mut Inner) -> String {
    st.next_ts += 1;
    format!("{}.{:06}", st.next_ts / 1_000_000, st.next_ts % 1_000_000)
}

async fn webhook(State(state): State<Shared>, Path(rest): Path<String>, headers: HeaderMap, body: String) -> Response {
    let mut st = lock(&state);
    let path = format!("/services/{rest}");
    let hook = st.webhooks.iter().find(|w| w.path == path && !w.revoked).map(|w| w.channel.clone());
    let Some(channel) = hook else {
        return if st.switches.unknown_webhook_no_service { text_response(404, "no_service") } else { text_response(403, "invalid_token") };
    };
    // Slack reads JSON, or a form with a `payload` field.
    let is_form = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let raw = if is_form {
        body.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == "payload").map(|(_, v)| percent_decode(v)).unwrap_or_default()
    } else {
        body
    };
    let Ok(parsed) = serde_json::from_str::<Value>(&raw) else { return text_response(400, "invalid_payload") };
    if !parsed.is_object() {
        return text_response(400, "invalid_payload");
    }
    if !has_content(&parsed) {
        return if st.switches.webhook_no_text { text_response(400, "no_text") } else { text_response(400, "invalid_payload") };
    }
    if let Some(blocks) = parsed.get("blocks")
        && !blocks_valid(blocks)
    {
        return text_response(400, "invalid_blocks");
    }
    if st.channels.iter().any(|c| c.id == channel && c.archived) {
        return text_response(410, "channel_is_archived");
    }
    let ts = next_ts(&mut st);
    st.messages.push(SlackMessage {
        via: "webhook".into(),
        channel,
        text: parsed["text"].as_str().unwrap_or_default().to_owned(),
        blocks: parsed.get("blocks").cloned().unwrap_or(Value::Null),
        ts,
        thread_ts: None,
        body: parsed,
    });
    text_response(200, "ok")
}

async fn post_message(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut st = lock(&state);
    let is_json = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    let parsed: Value = if is_json {
        match serde_json::from_str(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return ok_false("invalid_json"),
        }
    } else {
        let mut m = serde_json::Map::new();
        for (k, v) in body.split('&').filter_map(|p| p.split_once('=')) {
            let v = percent_decode(v);
            let v = if k == "blocks" || k == "attachments" { serde_json::from_str(&v).unwrap_or(Value::String(v)) } else { Value::String(v) };
            m.insert(percent_decode(k), v);
        }
        Value::Object(m)
    };
    let token = bearer(&headers).or_else(|| parsed["token"].as_str().map(str::to_owned));
    match token {
        None => return ok_false("not_authed"),
        Some(t) if t != st.bot_token => return ok_false("invalid_auth"),
        Some(_) => {}
    }
    if let Some(code) = st.api_errors.pop_front() {
        return ok_false(&code);
    }
    let Some(wanted) = parsed["channel"].as_str().map(str::trim).filter(|c| !c.is_empty()) else {
        return ok_false("channel_not_found");
    };
    let name = wanted.trim_start_matches('#');
    let Some(channel) = st.channels.iter().find(|c| c.id == wanted || c.name == name).cloned() else {
        return ok_false("channel_not_found");
    };
    if channel.archived {
        return ok_false("is_archived");
    }
    if !channel.bot_member {
        return ok_false("not_in_channel");
    }
    if !has_content(&parsed) {
        return ok_false("no_text");
    }
    if parsed["text"].as_str().is_some_and(|t| t.chars().count() > 40_000) {
        return ok_false("msg_too_long");
    }
    if let Some(blocks) = parsed.get("blocks")
        && !blocks_valid(blocks)
    {
        return ok_false("invalid_blocks");
    }
    let thread_ts = match parsed["thread_ts"].as_str().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match parent_of(&st, &channel.id, t) {
            Some(parent) => Some(parent),
            None => return ok_false("thread_not_found"),
        },
    };
    let ts = next_ts(&mut st);
    let text = parsed["text"].as_str().unwrap_or_default().to_owned();
    let blocks = parsed.get("blocks").cloned().unwrap_or(Value::Null);
    st.messages.push(SlackMessage {
        via: "chat.postMessage".into(),
        channel: channel.id.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
        ts: ts.clone(),
        thread_ts: thread_ts.clone(),
        body: parsed,
    });
    let mut message =
        json!({ "type": "message", "subtype": "bot_message", "text": text, "user": "U0DIALNEXA", "bot_id": "B0DIALNEXA", "ts": ts, "blocks": blocks });
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
    }
    json_response(200, json!({ "ok": true, "channel": channel.id, "ts": ts, "message": message }))
}

/// The thread a `ts` of `channel` belongs to (its parent's ts), if the message exists.
fn parent_of(st: &Inner, channel: &str, ts: &str) -> Option<String> {
    let deleted = |ts: &str| st.deleted.iter().any(|(c, t)| c == channel && t == ts);
    let m = st.messages.iter().find(|m| m.channel == channel && m.ts == ts && !deleted(ts))?;
    let parent = m.thread_ts.clone().unwrap_or_else(|| m.ts.clone());
    (!deleted(&parent)).then_some(parent)
}

fn message_json(m: &SlackMessage) -> Value {
    let mut v = json!({ "type": "message", "text": m.text, "ts": m.ts, "blocks": m.blocks });
    if m.via == "webhook" {
        v["subtype"] = json!("bot_message");
        v["bot_id"] = json!("B0WEBHOOK");
    } else {
        v["user"] = json!("U0DIALNEXA");
        v["bot_id"] = json!("B0DIALNEXA");
    }
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = json!(t);
        v["parent_user_id"] = json!("U0DIALNEXA");
    }
    v
}

async fn replies(State(state): State<Shared>, headers: HeaderMap, RawQuery(query): RawQuery, body: String) -> Response {
    let st = lock(&state);
    // Arguments in the query string, or a form body.
    let mut args: Vec<(String, String)> = Vec::new();
    for part in query.as_deref().unwrap_or("").split('&').chain(body.split('&')) {
        if let Some((k, v)) = part.split_once('=') {
            args.push((percent_decode(k), percent_decode(v)));
        }
    }
    let arg = |name: &str| args.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
    match bearer(&headers).or_else(|| arg("token")) {
        None => return ok_false("not_authed"),
        Some(t) if t != st.bot_token => return ok_false("invalid_auth"),
        Some(_) => {}
    }
    if !st.switches.history_scope {
        return json_response(200, json!({ "ok": false, "error": "missing_scope", "needed": "channels:history,groups:history", "provided": "chat:write" }));
    }
    let Some(wanted) = arg("channel") else { return ok_false("channel_not_found") };
    let Some(channel) = st.channels.iter().find(|c| c.id == wanted).cloned() else {
        return ok_false("channel_not_found");
    };
    if !channel.bot_member {
        return ok_false("not_in_channel");
    }
    let Some(ts) = arg("ts") else { return ok_false("thread_not_found") };
    let Some(parent) = parent_of(&st, &channel.id, &ts) else { return ok_false("thread_not_found") };
    let deleted = |ts: &str| st.deleted.iter().any(|(c, t)| *c == channel.id && t == ts);
    let thread: Vec<&SlackMessage> = st
        .messages
        .iter()
        .filter(|m| m.channel == channel.id && !deleted(&m.ts) && (m.ts == parent || m.thread_ts.as_deref() == Some(parent.as_str())))
        .collect();
    let limit: usize = arg("limit").and_then(|l| l.parse().ok()).unwrap_or(1000).clamp(1, 1000);
    let start: usize = arg("cursor").and_then(|c| c.strip_prefix("offset:").and_then(|n| n.parse().ok())).unwrap_or(0);
    let page: Vec<Value> = thread.iter().skip(start).take(limit).map(|m| message_json(m)).collect();
    let has_more = start + limit < thread.len();
    let next = if has_more { format!("offset:{}", start + limit) } else { String::new() };
    json_response(200, json!({ "ok": true, "messages": page, "has_more": has_more, "response_metadata": { "next_cursor": next } }))
}
