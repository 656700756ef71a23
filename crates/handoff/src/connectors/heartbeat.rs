//! Heartbeat (heartbeat.chat): find and verify the caller, read upcoming events, message the
//! owner, post in a chat channel (integrations.md §2). Base `https://api.heartbeat.chat`, paths
//! under `/v0`, `Authorization: Bearer <api_key>` on every request (reads included).
//!
//! Actions:
//! - `retrieve_user`: `GET /v0/users/{id}` when the rule names `options.user_id`, else
//!   `GET /v0/find/users?email=<caller email>` (a bare array, or `{"users"|"data": [...]}`).
//!   The best candidate is verified against the caller's email (exact: strong), name
//!   (similarity) and phone (when the profile has one) into `match_confidence` 0..1. Evidence:
//!   `{"user_id","name","email","match_confidence","matched","reasons"}`. No user found is a
//!   delivery with `matched: false` and confidence 0, not an error.
//! - `get_events`: `GET /v0/events?groupID=<group_id>` → the upcoming events, soonest first,
//!   as `{id,name,startTime}`.
//! - `notify_owner`: `PUT /v0/directMessages` `{"to": <owner user id>, "text"}` → 204.
//! - `post_thread`: `PUT /v0/chatChannel/{channel_id}/message` `{"text","from"?}` → 204.
//!
//! Body field names: integrations.md does not name them. We send `to`/`text`(/`from`) for
//! direct messages and `text`/`from` for chat messages, as Heartbeat's OpenAPI document does
//! (per the w6w connector built from it). Chat messages need an admin `from`: the rule's
//! `options.from_user_id`, else `manager_user_id`, else `owner_user_id`; without one the field is
//! left out and Heartbeat's answer decides.
//!
//! Text uses only `<p> <a href> <b> <h1>-<h3> <ul> <li> <br>` (others are stripped by Heartbeat)
//! and ends with the marker `[call <call id>]`.
//!
//! Exactly-once: Heartbeat has no idempotency key.
//! - `post_thread` reads the channel's recent messages (`GET /v0/chatChannel/{id}/messages`,
//!   `{data,hasMore}`) for the marker first and returns `deduplicated` when it is there.
//!   Remaining risk: only the first page is read, so a marker pushed off it by a very busy
//!   channel between attempts is missed.
//! - `notify_owner`: there is no documented read of direct messages, so no search is possible.
//!   Remaining risk: when a send took effect but the answer was lost (reset, timeout), the retry
//!   sends a second DM. The `[call <id>]` marker lets the owner see it is the same handoff.
//! - `retrieve_user` and `get_events` are reads.
//!
//! Updates (a repeat contact about the same issue): none; [`Connector::updates`] stays false for
//! every action, and `HandoffRequest::update` is ignored. integrations.md documents no comment,
//! note, reply or edit endpoint for what these actions create (a direct message or a chat-channel
//! message; the only documented update, `POST`, is for users, which no action creates), and both
//! writes answer 204 with no body, so there is no id of the earlier message to address. Posting
//! another channel message would be a new record, not an update: the delivery layer decides
//! about repeats (de-duplication) instead.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{
    AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, redact_url, retry_after, retryable_status, scrub_outcome, send,
};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["retrieve_user", "get_events", "notify_owner", "post_thread"];

const DEFAULT_BASE: &str = "https://api.heartbeat.chat";
const REDACTED: &str = "[redacted]";
/// At or above this, the user found is taken to be the caller.
pub const MATCH_THRESHOLD: f64 = 0.5;
const MAX_EVENTS: usize = 10;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The community's API key (`Authorization: Bearer`).
    pub api_key: String,
    /// Replaces `https://api.heartbeat.chat` (a trailing `/v0` is accepted too).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Who `notify_owner` messages unless the rule names one (`options.owner_user_id`).
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// Messaged by `notify_owner` when the rule says `options.recipient = "manager"`; the
    /// default sender of chat messages.
    #[serde(default)]
    pub manager_user_id: Option<String>,
    /// The chat channel `post_thread` posts in unless the rule names one.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// The group whose events `get_events` reads.
    #[serde(default)]
    pub group_id: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &REDACTED)
            .field("base_url", &self.base_url.as_deref().map(redact_url))
            .field("owner_user_id", &self.owner_user_id)
            .field("manager_user_id", &self.manager_user_id)
            .field("channel_id", &self.channel_id)
            .field("group_id", &self.group_id)
            .finish()
    }
}

fn valid_id(v: &str) -> bool {
    !v.trim().is_empty() && v.len() <= 200 && !v.chars().any(|c| c.is_whitespace() || c.is_control() || "/?#%".contains(c))
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let key = self.api_key.trim();
        if key.is_empty() {
            return Err("api_key: is required (the community's Heartbeat API key)".into());
        }
        if key.len() != self.api_key.len() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("api_key: must not contain spaces or control characters".into());
        }
        if let Some(b) = &self.base_url {
            let lower = b.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) || b.contains(['?', '#', ' ']) || b.len() < 10 {
                return Err("base_url: must be an http or https URL without a query string".into());
            }
        }
        for (field, value) in
            [("owner_user_id", &self.owner_user_id), ("manager_user_id", &self.manager_user_id), ("channel_id", &self.channel_id), ("group_id", &self.group_id)]
        {
            if let Some(v) = value
                && !valid_id(v)
            {
                return Err(format!("{field}: must be a Heartbeat id (no spaces, '/', '?', '#' or '%')"));
            }
        }
        Ok(())
    }

    fn base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or(DEFAULT_BASE).trim_end_matches('/');
        b.strip_suffix("/v0").unwrap_or(b).to_owned()
    }
}

pub struct Heartbeat {
    config: Config,
    client: reqwest::Client,
}

/// The rule's string option, if set.
fn option(p: &HandoffPayload, key: &str) -> Option<String> {
    match p.options.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

impl Heartbeat {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    async fn call(&self, method: reqwest::Method, path_and_query: &str, body: Option<&Value>, log: &mut Vec<AttemptLog>) -> Result<Exchange, DeliveryError> {
        let url = format!("{}{}", self.config.base(), path_and_query);
        let shown = format!("{method} {}", redact_url(&url));
        let mut rb = self.client.request(method, &url).bearer_auth(self.config.api_key.trim()).header("accept", "application/json");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        match send(rb, shown).await {
            Ok(ex) => {
                log.push(ex.log.clone());
                Ok(ex)
            }
            Err((e, l)) => {
                log.push(l);
                Err(e)
            }
        }
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        match req.action.as_str() {
            "retrieve_user" => self.retrieve_user(&req.payload, log).await,
            "get_events" => self.get_events(&req.payload, log).await,
            "notify_owner" => self.notify_owner(&req.payload, log).await,
            "post_thread" => self.post_thread(&req.payload, log).await,
            other => Err(DeliveryError::fatal(format!("heartbeat cannot '{}' (actions: {})", other.chars().take(40).collect::<String>(), ACTIONS.join(", ")))),
        }
    }

    async fn retrieve_user(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let caller_email = p.caller.email.as_deref().map(str::trim).filter(|e| e.contains('@') && !is_masked(e));
        let (candidates, how) = if let Some(id) = option(p, "user_id") {
            if !valid_id(&id) {
                return Err(DeliveryError::fatal("retrieve_user: options.user_id is not a Heartbeat id"));
            }
            let ex = self.call(reqwest::Method::GET, &format!("/v0/users/{}", encode_component(&id)), None, log).await?;
            if ex.status == 404 {
                (vec![], format!("no Heartbeat user has the id {id}"))
            } else if !ex.ok() {
                return Err(classify(&ex, "looking up the user"));
            } else {
                let user = ex.json().filter(Value::is_object).ok_or_else(|| answer_unreadable(&ex, "a user"))?;
                (vec![user], "looked up by the rule's user_id".to_owned())
            }
        } else if let Some(email) = caller_email {
            let ex = self.call(reqwest::Method::GET, &format!("/v0/find/users?email={}", encode_component(email)), None, log).await?;
            if ex.status == 404 {
                (vec![], "no Heartbeat user has the caller's email".to_owned())
            } else if !ex.ok() {
                return Err(classify(&ex, "finding the user"));
            } else {
                let j = ex.json().ok_or_else(|| answer_unreadable(&ex, "a user list"))?;
                let list = match &j {
                    Value::Array(a) => a.clone(),
                    Value::Object(o) => match o.get("users").or_else(|| o.get("data")).or_else(|| o.get("results")) {
                        Some(Value::Array(a)) => a.clone(),
                        _ if o.contains_key("id") => vec![j.clone()],
                        _ => return Err(answer_unreadable(&ex, "a user list")),
                    },
                    _ => return Err(answer_unreadable(&ex, "a user list")),
                };
                let list: Vec<Value> = list.into_iter().filter(Value::is_object).collect();
                let how = if list.is_empty() { "no Heartbeat user has the caller's email" } else { "found by the caller's email" };
                (list, how.to_owned())
            }
        } else {
            (vec![], "the caller gave no usable email and the rule names no user_id: nothing to look up".to_owned())
        };

        let best = candidates.iter().map(|u| (u, verify(&p.caller, u))).max_by(|a, b| a.1.confidence.total_cmp(&b.1.confidence));
        let Some((user, m)) = best else {
            return Ok(Delivered {
                external_id: None,
                external_url: None,
                evidence: json!({ "user_id": null, "name": null, "email": null, "match_confidence": 0.0, "matched": false, "reasons": [how] }),
                deduplicated: false,
            });
        };
        let user_id = id_of(user);
        let mut reasons = vec![how];
        if candidates.len() > 1 {
            reasons.push(format!("{} users matched the lookup; the best is kept", candidates.len()));
        }
        reasons.extend(m.reasons);
        Ok(Delivered {
            external_id: user_id.clone(),
            external_url: None,
            evidence: json!({
                "user_id": user_id,
                "name": user_name(user),
                "email": user.get("email").and_then(Value::as_str),
                "match_confidence": m.confidence,
                "matched": m.confidence >= MATCH_THRESHOLD,
                "reasons": reasons,
            }),
            deduplicated: false,
        })
    }

    async fn get_events(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let group = option(p, "group_id").or_else(|| self.config.group_id.clone());
        let path = match &group {
            Some(g) => format!("/v0/events?groupID={}", encode_component(g)),
            None => "/v0/events".to_owned(),
        };
        let ex = self.call(reqwest::Method::GET, &path, None, log).await?;
        if !ex.ok() {
            return Err(classify(&ex, "listing events"));
        }
        let list = match ex.json() {
            Some(Value::Array(a)) => a,
            Some(Value::Object(o)) => match o.get("events").or_else(|| o.get("data")) {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err(answer_unreadable(&ex, "an event list")),
            },
            _ => return Err(answer_unreadable(&ex, "an event list")),
        };
        let now = jiff::Timestamp::now();
        let mut upcoming: Vec<(jiff::Timestamp, Value)> = list
            .iter()
            .filter_map(|e| {
                let start = e.get("startTime").and_then(Value::as_str).and_then(parse_time)?;
                let end = e.get("endTime").and_then(Value::as_str).and_then(parse_time).unwrap_or(start);
                (end >= now || start >= now).then(|| {
                    (start, json!({ "id": e.get("id").cloned().unwrap_or(Value::Null), "name": e.get("name").cloned().unwrap_or(Value::Null), "startTime": e.get("startTime").cloned().unwrap_or(Value::Null) }))
                })
            })
            .collect();
        upcoming.sort_by_key(|(t, _)| *t);
        let total = upcoming.len();
        let events: Vec<Value> = upcoming.into_iter().take(MAX_EVENTS).map(|(_, v)| v).collect();
        Ok(Delivered {
            external_id: None,
            external_url: None,
            evidence: json!({ "group_id": group, "upcoming": total, "events": events }),
            deduplicated: false,
        })
    }

    async fn notify_owner(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let to_manager = option(p, "recipient").is_some_and(|r| r.eq_ignore_ascii_case("manager"));
        let to = if to_manager { self.config.manager_user_id.clone() } else { option(p, "owner_user_id").or_else(|| self.config.owner_user_id.clone()) };
        let Some(to) = to.filter(|t| valid_id(t)) else {
            let field = if to_manager { "manager_user_id" } else { "owner_user_id" };
            return Err(DeliveryError::fatal(format!(
                "notify_owner: no one to message: set {field} in the Heartbeat integration (or options.owner_user_id in the rule)"
            )));
        };
        let marker = marker(p);
        let mut body = json!({ "to": to, "text": render_text(p, &marker) });
        if let Some(from) = option(p, "from_user_id") {
            body["from"] = json!(from);
        }
        let ex = self.call(reqwest::Method::PUT, "/v0/directMessages", Some(&body), log).await?;
        if !ex.ok() {
            return Err(classify(&ex, "sending the direct message"));
        }
        Ok(Delivered { external_id: None, external_url: None, evidence: json!({ "to": to, "marker": marker }), deduplicated: false })
    }

    async fn post_thread(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let Some(channel) = option(p, "channel_id").or_else(|| self.config.channel_id.clone()).filter(|c| valid_id(c)) else {
            return Err(DeliveryError::fatal("post_thread: no chat channel: set channel_id in the Heartbeat integration (or options.channel_id in the rule)"));
        };
        let marker = marker(p);
        let channel_path = format!("/v0/chatChannel/{}", encode_component(&channel));

        // Dedup: the channel's recent messages, searched for this call's marker.
        let ex = self.call(reqwest::Method::GET, &format!("{channel_path}/messages"), None, log).await?;
        if !ex.ok() {
            return Err(classify(&ex, "reading the channel before posting"));
        }
        let messages = match ex.json() {
            Some(Value::Object(o)) => match o.get("data") {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err(answer_unreadable(&ex, "a message page")),
            },
            Some(Value::Array(a)) => a,
            _ => return Err(answer_unreadable(&ex, "a message page")),
        };
        let escaped = escape(&marker);
        if let Some(found) = messages.iter().find(|m| m.get("text").and_then(Value::as_str).is_some_and(|t| t.contains(&marker) || t.contains(&escaped))) {
            let id = id_of(found);
            return Ok(Delivered {
                external_id: id.clone(),
                external_url: None,
                evidence: json!({ "channel_id": channel, "marker": marker, "message_id": id }),
                deduplicated: true,
            });
        }

        let mut body = json!({ "text": render_text(p, &marker) });
        if let Some(from) = option(p, "from_user_id").or_else(|| self.config.manager_user_id.clone()).or_else(|| self.config.owner_user_id.clone()) {
            body["from"] = json!(from);
        }
        let ex = self.call(reqwest::Method::PUT, &format!("{channel_path}/message"), Some(&body), log).await?;
        if !ex.ok() {
            return Err(classify(&ex, "posting in the channel"));
        }
        Ok(Delivered { external_id: None, external_url: None, evidence: json!({ "channel_id": channel, "marker": marker }), deduplicated: false })
    }

    fn scrub(&self, s: &str) -> String {
        let secret = self.config.api_key.trim();
        if secret.len() < 3 { s.to_owned() } else { s.replace(secret, REDACTED) }
    }
}

#[async_trait]
impl Connector for Heartbeat {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Heartbeat
    }
    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome {
        let mut log = Vec::new();
        let result = self.run(req, &mut log).await;
        scrub_outcome(Outcome { result, log }, |t| self.scrub(t))
    }
}

/// The call marker every message carries, so a person (and `post_thread`) can spot duplicates.
pub fn marker(p: &HandoffPayload) -> String {
    format!("[call {}]", p.call_id)
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn user_name(u: &Value) -> Option<String> {
    let name = u.get("name").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    name.map(str::to_owned).or_else(|| {
        let parts: Vec<&str> =
            ["firstName", "lastName"].iter().filter_map(|k| u.get(*k).and_then(Value::as_str)).map(str::trim).filter(|s| !s.is_empty()).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    // `YYYY-MM-DD hh:mm[:ss]` or `YYYY-MM-DD`, read as UTC.
    let civil = s.replacen(' ', "T", 1);
    if let Ok(dt) = civil.parse::<jiff::civil::DateTime>() {
        return dt.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    s.parse::<jiff::civil::Date>().ok().and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok()).map(|z| z.timestamp())
}

fn answer_unreadable(ex: &Exchange, what: &str) -> DeliveryError {
    DeliveryError {
        retryable: false,
        retry_after: None,
        status: Some(ex.status),
        message: format!("Heartbeat answered {} but not with {what} we could read", ex.status),
    }
}

fn classify(ex: &Exchange, doing: &str) -> DeliveryError {
    let status = ex.status;
    let msg = ex.json().and_then(|j| {
        j.get("message").and_then(Value::as_str).or_else(|| j.get("error").and_then(Value::as_str)).map(|s| s.chars().take(200).collect::<String>())
    });
    let msg = msg.unwrap_or_else(|| ex.body.trim().chars().take(120).collect());
    let what = match status {
        300..=399 => "Heartbeat answered a redirect, which is not followed",
        401 | 403 => "Heartbeat rejected the API key: check the integration's api_key",
        400 => "Heartbeat refused the request",
        404 => "Heartbeat does not know the user, channel or group named",
        429 => "Heartbeat's rate limit was reached",
        _ => "Heartbeat failed",
    };
    // Without Retry-After, `x-ratelimit-reset` (Unix seconds) says when the window reopens.
    let after = retry_after(&ex.headers).or_else(|| {
        (status == 429)
            .then(|| ex.headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse::<i64>().ok())
            .flatten()
            .map(|reset| std::time::Duration::from_secs((reset - jiff::Timestamp::now().as_second()).clamp(1, 60) as u64))
    });
    DeliveryError {
        retryable: retryable_status(status),
        retry_after: after,
        status: Some(status),
        message: format!("{what} while {doing} ({status}){}", if msg.is_empty() { String::new() } else { format!(": {msg}") }),
    }
}

/// Percent-encode as `encodeURIComponent` does.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_masked(s: &str) -> bool {
    s.contains(['*', '•']) || s.contains("[redacted]")
}

// ---------------------------------------------------------------------------------------------
// Verifying a user against the caller.

struct Verdict {
    confidence: f64,
    reasons: Vec<String>,
}

fn verify(caller: &crate::payload::CallerInfo, user: &Value) -> Verdict {
    let mut reasons = Vec::new();
    // (weight, score) per signal both sides have.
    let mut signals: Vec<(f64, f64)> = Vec::new();
    let mut email_matched = false;
    let mut email_differs = false;
    let mut phone_matched = false;

    let user_email = user.get("email").and_then(Value::as_str).map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
    match (caller.email.as_deref().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty() && !is_masked(e)), user_email) {
        (Some(c), Some(u)) if c == u => {
            email_matched = true;
            signals.push((0.6, 1.0));
            reasons.push("email matches exactly".to_owned());
        }
        (Some(_), Some(_)) => {
            email_differs = true;
            signals.push((0.6, 0.0));
            reasons.push("email differs from the caller's".to_owned());
        }
        (None, _) => reasons.push("the caller gave no email to compare".to_owned()),
        (Some(_), None) => reasons.push("the profile has no email to compare".to_owned()),
    }

    match (caller.name.as_deref().filter(|n| !n.trim().is_empty() && !is_masked(n)), user_name(user)) {
        (Some(c), Some(u)) => {
            let s = name_similarity(c, &u);
            signals.push((0.3, s));
            reasons.push(if s >= 0.9 {
                "name matches".to_owned()
            } else if s >= 0.6 {
                format!("name is similar ({s:.2})")
            } else {
                format!("name differs ({s:.2})")
            });
        }
        (None, _) => reasons.push("the caller gave no name to compare".to_owned()),
        (Some(_), None) => reasons.push("the profile has no name to compare".to_owned()),
    }

    match (caller.phone.as_deref(), profile_phone(user)) {
        (Some(c), Some(u)) => match phone_match(c, &u) {
            Some(true) => {
                phone_matched = true;
                signals.push((0.25, 1.0));
                reasons.push("phone matches".to_owned());
            }
            Some(false) => {
                signals.push((0.25, 0.0));
                reasons.push("phone differs".to_owned());
            }
            None => reasons.push("the caller's phone is too redacted to compare".to_owned()),
        },
        (_, None) => reasons.push("no phone in the profile to compare".to_owned()),
        (None, Some(_)) => reasons.push("the caller gave no phone to compare".to_owned()),
    }

    let weight: f64 = signals.iter().map(|(w, _)| w).sum();
    let mut confidence = if weight > 0.0 { signals.iter().map(|(w, s)| w * s).sum::<f64>() / weight } else { 0.0 };
    // What the evidence can support at most, whatever the average.
    let ceiling = if email_differs {
        0.4
    } else if email_matched {
        if weight > 0.6 { 1.0 } else { 0.9 }
    } else if weight == 0.0 {
        0.0
    } else if phone_matched {
        0.85
    } else {
        0.7
    };
    if weight == 0.0 {
        reasons.push("nothing from the caller to verify the user against".to_owned());
    }
    confidence = (confidence.min(ceiling) * 100.0).round() / 100.0;
    Verdict { confidence: confidence.clamp(0.0, 1.0), reasons }
}

fn name_tokens(s: &str) -> Vec<String> {
    s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn token_similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    // An initial ("J." for "John").
    if (a.chars().count() == 1 && b.starts_with(a)) || (b.chars().count() == 1 && a.starts_with(b)) {
        return 0.7;
    }
    let longest = a.chars().count().max(b.chars().count()) as f64;
    1.0 - levenshtein(a, b) as f64 / longest
}

/// 0..1: each of the caller's name parts against its best counterpart in the profile name;
/// a partial name (first name only) counts a little less.
pub fn name_similarity(caller: &str, profile: &str) -> f64 {
    let c = name_tokens(caller);
    let u = name_tokens(profile);
    if c.is_empty() || u.is_empty() {
        return 0.0;
    }
    let sum: f64 = c.iter().map(|ct| u.iter().map(|ut| token_similarity(ct, ut)).fold(0.0, f64::max)).sum();
    let mut s = sum / c.len() as f64;
    if c.len() < u.len() {
        s *= 0.85;
    }
    (s * 100.0).round() / 100.0
}

/// A phone number in the profile: a phone field, or an onboarding answer to a phone question.
fn profile_phone(u: &Value) -> Option<String> {
    for k in ["phone", "phoneNumber", "phone_number", "mobile"] {
        if let Some(p) = u.get(k).and_then(Value::as_str).filter(|p| p.chars().filter(char::is_ascii_digit).count() >= 7) {
            return Some(p.to_owned());
        }
    }
    u.get("onboardingResponses").and_then(Value::as_array)?.iter().find_map(|r| {
        let q = r.get("question").and_then(Value::as_str)?.to_lowercase();
        let a = r.get("answer").and_then(Value::as_str)?;
        ((q.contains("phone") || q.contains("mobile")) && a.chars().filter(char::is_ascii_digit).count() >= 7).then(|| a.to_owned())
    })
}

/// Some(true|false) when comparable; a redacted caller phone compares its visible last digits.
fn phone_match(caller: &str, profile: &str) -> Option<bool> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let p = digits(profile);
    if is_masked(caller) || caller.contains(['x', 'X']) {
        let tail: String = caller
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ' ' || *c == '-')
            .filter(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return (tail.len() >= 4).then(|| p.ends_with(&tail));
    }
    let c = digits(caller);
    if c.len() < 7 || p.len() < 7 {
        return None;
    }
    let n = c.len().min(p.len()).min(10);
    Some(c[c.len() - n..] == p[p.len() - n..])
}

// ---------------------------------------------------------------------------------------------
// The message text: Heartbeat's rich-text subset only.

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

fn web_link(url: &str, label: &str) -> Option<String> {
    let u = url.trim();
    (u.starts_with("https://") || u.starts_with("http://")).then(|| format!("<a href=\"{}\">{}</a>", escape(u), escape(label)))
}

/// The handoff as Heartbeat rich text: title, the triage facts, the caller, the summary, the
/// details and the links, then the call marker.
pub fn render_text(p: &HandoffPayload, marker: &str) -> String {
    let mut t = String::new();
    t.push_str(&format!("<h3>{} [{}]</h3>", escape(&clip(&p.title, 200)), escape(&p.urgency)));
    let mut facts = vec![format!("<b>Reason:</b> {}", escape(&clip(&p.reason, 400)))];
    facts.push(format!("<b>Urgency:</b> {}", escape(&p.urgency)));
    if let Some(s) = p.severity.as_deref().filter(|s| !s.is_empty()) {
        facts.push(format!("<b>Severity:</b> {}", escape(s)));
    }
    if let Some(o) = p.owner.as_deref().filter(|s| !s.is_empty()) {
        facts.push(format!("<b>Owner:</b> {}", escape(o)));
    }
    facts.push(format!("<b>Next step:</b> {}", escape(&clip(&p.next_step, 400))));
    t.push_str(&format!("<p>{}</p>", facts.join("<br>")));

    let c = &p.caller;
    let who: Vec<String> = [&c.name, &c.email, &c.phone].iter().filter_map(|v| v.as_deref()).filter(|v| !v.is_empty()).map(escape).collect();
    let mut about = Vec::new();
    if !who.is_empty() {
        about.push(format!("<b>Caller:</b> {}", who.join(", ")));
    }
    if let Some(org) = c.customer.as_deref().or(c.account.as_deref()).filter(|v| !v.is_empty()) {
        about.push(format!("<b>Customer:</b> {}", escape(org)));
    }
    if let Some(a) = p.affected.as_deref().filter(|v| !v.is_empty()) {
        about.push(format!("<b>Affected:</b> {}", escape(a)));
    }
    about.push(format!("<b>Category:</b> {}", escape(&p.category)));
    t.push_str(&format!("<p>{}</p>", about.join("<br>")));

    if !p.summary.trim().is_empty() {
        t.push_str(&format!("<p>{}</p>", escape(&clip(&p.summary, 1500))));
    }
    let details: Vec<String> = [("Symptom", &p.symptom), ("Expected", &p.expected), ("Actual", &p.actual), ("Steps", &p.steps), ("Impact", &p.impact)]
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.trim().is_empty()).map(|v| format!("<li><b>{k}:</b> {}</li>", escape(&clip(v, 500)))))
        .collect();
    if !details.is_empty() {
        t.push_str(&format!("<ul>{}</ul>", details.concat()));
    }

    let mut links: Vec<String> = [web_link(&p.links.call, "Call detail"), web_link(&p.links.transcript, "Transcript")].into_iter().flatten().collect();
    if let Some(r) = p.links.recording.as_deref().and_then(|r| web_link(r, "Recording")) {
        links.push(r);
    }
    if !links.is_empty() {
        t.push_str(&format!("<p>{}</p>", links.join(" | ")));
    }
    let evidence: Vec<String> = p
        .links
        .evidence
        .iter()
        .map(|(k, v)| match web_link(v, k) {
            Some(a) => format!("<li>{a}</li>"),
            None => format!("<li><b>{}:</b> {}</li>", escape(k), escape(&clip(v, 200))),
        })
        .collect();
    if !evidence.is_empty() {
        t.push_str(&format!("<p><b>Evidence:</b></p><ul>{}</ul>", evidence.concat()));
    }
    t.push_str(&format!("<p>{}</p>", escape(marker)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::CallerInfo;

    fn caller(name: &str, email: Option<&str>, phone: Option<&str>) -> CallerInfo {
        CallerInfo { name: Some(name.into()), email: email.map(Into::into), phone: phone.map(Into::into), ..CallerInfo::default() }
    }

    #[test]
    fn names_compare_by_parts() {
        assert_eq!(name_similarity("John Smith", "john smith"), 1.0);
        assert_eq!(name_similarity("Smith, John", "John Smith"), 1.0);
        assert!(name_similarity("Jon Smith", "John Smith") >= 0.8);
        assert!(name_similarity("John", "John Smith") >= 0.8);
        assert!(name_similarity("Jane Doe", "John Smith") < 0.5);
    }

    #[test]
    fn verification_weighs_email_name_and_phone() {
        let user = json!({"id": "u1", "email": "Ana@Example.com", "name": "Ana Lima",
            "onboardingResponses": [{"question": "Phone number?", "answer": "+1 (415) 555-0101", "isPrivate": true}]});
        let strong = verify(&caller("Ana Lima", Some("ana@example.com"), Some("+14155550101")), &user);
        assert_eq!(strong.confidence, 1.0, "{:?}", strong.reasons);
        let email_only = verify(&CallerInfo { email: Some("ana@example.com".into()), ..CallerInfo::default() }, &user);
        assert!(email_only.confidence >= 0.8 && email_only.confidence < 1.0);
        let wrong_name = verify(&caller("Bruno Costa", Some("ana@example.com"), None), &user);
        assert!(wrong_name.confidence < 0.8 && wrong_name.confidence >= 0.5, "{}", wrong_name.confidence);
        let wrong_email = verify(&caller("Ana Lima", Some("other@example.com"), None), &user);
        assert!(wrong_email.confidence <= 0.4);
        let wrong_phone = verify(&caller("Ana Lima", None, Some("+1 212 555 0199")), &user);
        assert!(wrong_phone.confidence < 0.6, "{}", wrong_phone.confidence);
        let name_and_phone = verify(&caller("Ana Lima", None, Some("+1 415 555 0101")), &user);
        assert_eq!(name_and_phone.confidence, 0.85);
        let masked = phone_match("***-***-0101", "+1 (415) 555-0101");
        assert_eq!(masked, Some(true));
    }

    #[test]
    fn text_uses_only_allowed_tags() {
        let p = HandoffPayload { call_id: "c1".into(), title: "<script>x</script>".into(), urgency: "high".into(), ..HandoffPayload::default() };
        let t = render_text(&p, &marker(&p));
        assert!(t.contains("&lt;script&gt;") && t.ends_with("<p>[call c1]</p>"));
    }

    #[test]
    fn reads_event_times() {
        assert!(parse_time("2026-01-30T13:00:00.000Z").is_some());
        assert!(parse_time("2026-01-30 13:00").is_some());
        assert!(parse_time("2026-01-30").is_some());
        assert!(parse_time("soon").is_none());
    }
}
