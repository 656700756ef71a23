//! Slack: on-call alerts and owner/escalation notices.
//!
//! Two forms, chosen by the config:
//! - an **incoming webhook** (`{webhook_url}`): `POST` the message to the URL; there is no auth
//!   header because the URL *is* the secret, so its path never appears in a log line, an error
//!   message, the evidence or `Debug` (only `scheme://host/[webhook path redacted]`). Success is
//!   200 with the text `ok`; errors are plain-text codes (`invalid_payload`, `no_service`...).
//! - a **bot token** (`{bot_token, channel}`): `POST {base_url}/chat.postMessage` with
//!   `Authorization: Bearer xoxb-…`. Logic errors come back as HTTP 200 with
//!   `{"ok":false,"error":…}` and are classified here (`ratelimited` retryable, bad token or
//!   channel fatal). The message `ts` is kept as the external id. `payload.options["channel"]`
//!   overrides the configured channel.
//!
//! The message is a short mrkdwn `text` (the notification line) plus blocks: title, urgency,
//! owner, caller, affected record, reason, next step, summary and links to the call evidence.
//!
//! ## Duplicates: the remaining risk
//! Slack takes no idempotency key, and neither form offers a search the connector can use before
//! posting (incoming webhooks have no read API at all; reading channel history would need extra
//! scopes the bot is not given). So when an attempt ends with an *unknown* outcome (a timeout or
//! a connection reset after the request left, or a 5xx that Slack raised after posting), the
//! retry may post the same message a second time. This is accepted: an on-call alert posted
//! twice is better than one never posted. To keep the damage small every message carries
//! `[call <id>]` so a duplicate is easy to recognise, and once a delivery has succeeded its
//! outcome (and, for the bot form, `ts`) is recorded by the delivery layer, so a *known*
//! success is never posted again.
//!
//! ## Updates (a repeat contact about the same issue): bot form only
//! With `HandoffRequest::update` set ([`Connector::updates`] is true for `post_message` in the bot
//! form), nothing new is posted in the channel: a reply goes in the thread of the earlier call's
//! message, whose `channel` and `ts` the create path keeps in its evidence (`ts` is also its
//! external id).
//! 1. read the thread, `GET {base_url}/conversations.replies?channel=&ts=` (pages by
//!    `response_metadata.next_cursor`); a reply carrying this handoff's marker
//!    `dialnexa-key: <idempotency key>` means an earlier attempt already posted it: `deduplicated`.
//!    A parent message that is gone (`thread_not_found`) is a non-retryable error;
//! 2. otherwise `chat.postMessage` with `thread_ts` = the original `ts`, same channel: "Repeat
//!    contact", the new call's summary, reason, next step, triage and links, and the marker.
//!
//! Slack has no idempotency key, so the thread read is the guard. It needs the history scope
//! (`channels:history`, `groups:history` for private channels); a bot token without it answers
//! `missing_scope`, and then the reply is posted unchecked (`"thread_checked": false` in the
//! evidence), the same remaining risk as a new message. The incoming-webhook form has no `ts` and
//! no read API, so it does not update: it posts a new message as before.
//! External id stays the original `ts`; evidence `{"updated": true, "form": "bot", "channel",
//! "thread_ts", "ts" (the reply's), "repeat_of_call", "marker", "thread_checked"}`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{
    AttemptLog, Connector, Delivered, DeliveryError, Exchange, ExistingRecord, HandoffRequest, Outcome, contains_text, retry_after, scrub_outcome, send,
    update_marker,
};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["post_message"];

const DEFAULT_BASE_URL: &str = "https://slack.com/api";

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Incoming webhook URL (`https://hooks.slack.com/services/T…/B…/…`): a secret.
    pub webhook_url: Option<String>,
    /// Bot token (`xoxb-…`) for `chat.postMessage`: a secret.
    pub bot_token: Option<String>,
    /// Channel id (`C0123…`) or name (`#oncall`) for the bot form.
    pub channel: Option<String>,
    /// Replaces `https://slack.com/api` (bot form) or the webhook URL's `scheme://host` (webhook form).
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("webhook_url", &self.webhook_url.as_deref().map(shown_webhook))
            .field("bot_token", &self.bot_token.as_ref().map(|_| "[redacted]"))
            .field("channel", &self.channel)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A webhook URL as it may be shown: its origin only.
fn shown_webhook(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}/[webhook path redacted]", origin(&u)),
        Err(_) => "[redacted]".to_owned(),
    }
}

fn origin(u: &reqwest::Url) -> String {
    u.origin().ascii_serialization()
}

fn is_local(u: &reqwest::Url) -> bool {
    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

fn check_http_url(field: &str, value: &str, secret: bool) -> Result<reqwest::Url, String> {
    let what = if secret { "the value".to_owned() } else { format!("'{}'", value.chars().take(80).collect::<String>()) };
    let u = reqwest::Url::parse(value.trim()).map_err(|_| format!("{field}: {what} is not a URL"))?;
    if u.host_str().is_none() || !matches!(u.scheme(), "https" | "http") {
        return Err(format!("{field}: must be an https URL"));
    }
    if u.scheme() == "http" && !is_local(&u) {
        return Err(format!("{field}: must use https (plain http is only accepted for localhost)"));
    }
    Ok(u)
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let empty = |v: &Option<String>| v.as_deref().map(str::trim).is_none_or(str::is_empty);
        if let Some(base) = &self.base_url {
            check_http_url("base_url", base, false)?;
        }
        match (empty(&self.webhook_url), empty(&self.bot_token)) {
            (false, false) => Err("webhook_url: give either webhook_url, or bot_token with channel, not both".into()),
            (true, true) => Err("webhook_url: required (an incoming webhook URL), or give bot_token and channel".into()),
            (false, true) => {
                let u = check_http_url("webhook_url", self.webhook_url.as_deref().unwrap_or_default(), true)?;
                if u.path().trim_matches('/').is_empty() {
                    return Err("webhook_url: must be the full incoming webhook URL (https://hooks.slack.com/services/T…/B…/…)".into());
                }
                if !empty(&self.channel) {
                    return Err("channel: an incoming webhook always posts to its own channel; remove channel (or use bot_token)".into());
                }
                Ok(())
            }
            (true, false) => {
                let token = self.bot_token.as_deref().unwrap_or_default().trim();
                if !token.starts_with("xox") || token.contains(char::is_whitespace) {
                    return Err("bot_token: must be a Slack bot token (xoxb-…)".into());
                }
                if empty(&self.channel) {
                    return Err("channel: required with bot_token (a channel id like C0123ABCD or a name like #oncall)".into());
                }
                Ok(())
            }
        }
    }
}

enum Mode {
    /// Where to post, and how to show it.
    Webhook { url: String, shown: String, secret_path: String },
    Bot {
        /// The Web API root (`https://slack.com/api`).
        api: String,
        endpoint: String,
        token: String,
        channel: String,
    },
}

pub struct Slack {
    mode: Mode,
    client: reqwest::Client,
}

impl Slack {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        let base = config.base_url.as_deref().map(|b| b.trim().trim_end_matches('/').to_owned());
        let mode = match (&config.webhook_url, &config.bot_token) {
            (Some(hook), _) if !hook.trim().is_empty() => {
                let hook = hook.trim();
                let parsed = reqwest::Url::parse(hook).ok();
                let path = parsed.as_ref().map(|u| u.path().to_owned()).unwrap_or_default();
                let host = parsed.as_ref().map(origin).unwrap_or_default();
                let (url, shown_origin) = match &base {
                    Some(b) => (format!("{b}{path}"), b.clone()),
                    None => (hook.to_owned(), host),
                };
                Mode::Webhook { url, shown: format!("POST {shown_origin}/[webhook path redacted]"), secret_path: path }
            }
            _ => {
                let api = base.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
                Mode::Bot {
                    endpoint: format!("{api}/chat.postMessage"),
                    api,
                    token: config.bot_token.clone().unwrap_or_default().trim().to_owned(),
                    channel: config.channel.clone().unwrap_or_default().trim().to_owned(),
                }
            }
        };
        Self { mode, client }
    }

    /// Remove the secrets from anything a server said back (a misdirected server may echo the path).
    fn scrub(&self, s: &str) -> String {
        match &self.mode {
            Mode::Webhook { secret_path, .. } if secret_path.trim_matches('/').len() > 1 => s.replace(secret_path.as_str(), "/[webhook path redacted]"),
            Mode::Bot { token, .. } if !token.is_empty() => s.replace(token.as_str(), "[redacted]"),
            _ => s.to_owned(),
        }
    }

    fn scrub_log(&self, mut log: AttemptLog) -> AttemptLog {
        log.response_excerpt = log.response_excerpt.map(|e| self.scrub(&e));
        log.error = log.error.map(|e| self.scrub(&e));
        log
    }

    async fn post_webhook(&self, url: &str, shown: &str, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let (text, blocks) = render(p);
        let body = json!({ "text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false });
        let ex = match send(self.client.post(url).json(&body), shown.to_owned()).await {
            Ok(ex) => ex,
            Err((e, l)) => {
                log.push(self.scrub_log(l));
                return Err(DeliveryError { message: format!("Slack webhook: {}", e.message), ..e });
            }
        };
        log.push(self.scrub_log(ex.log.clone()));
        let code = self.scrub(&crate::connector::excerpt(ex.body.trim(), 120));
        if ex.ok() {
            let ignored = p.options.contains_key("channel");
            return Ok(Delivered {
                external_id: None,
                external_url: None,
                evidence: json!({ "form": "webhook", "response": code, "channel_override_ignored": ignored }),
                deduplicated: false,
            });
        }
        let mut err = ex.error("Slack webhook");
        err.message = match (ex.status, code.as_str()) {
            (429, _) => format!("Slack webhook is rate-limited (429{}): retry later", if code.is_empty() { String::new() } else { format!(" {code}") }),
            (300..=399, _) => format!("Slack webhook answered a redirect ({}): redirects are not followed; check webhook_url", ex.status),
            (_, "invalid_token" | "no_service" | "action_prohibited" | "no_team") => {
                format!("Slack refused the incoming webhook ({} {code}): the webhook URL is revoked, disabled or wrong; create a new one", ex.status)
            }
            (_, "channel_not_found" | "channel_is_archived") => {
                format!("Slack webhook's channel is gone ({} {code}): the channel was deleted or archived; create a webhook for a live channel", ex.status)
            }
            (_, "invalid_payload" | "no_text" | "user_not_found") => format!("Slack refused the message ({} {code})", ex.status),
            _ if err.retryable => format!("Slack webhook failed ({} {code}): will retry", ex.status),
            _ => format!("Slack webhook answered {} {code}", ex.status),
        };
        Err(err)
    }

    async fn post_bot(&self, endpoint: &str, token: &str, channel: &str, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let channel = p.options.get("channel").and_then(Value::as_str).map(str::trim).filter(|c| !c.is_empty()).unwrap_or(channel);
        let (text, blocks) = render(p);
        let body = json!({ "channel": channel, "text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false });
        let shown = format!("POST {}", crate::connector::redact_url(endpoint));
        let ex = match send(self.client.post(endpoint).bearer_auth(token).json(&body), shown).await {
            Ok(ex) => ex,
            Err((e, l)) => {
                log.push(self.scrub_log(l));
                return Err(DeliveryError { message: format!("Slack chat.postMessage: {}", e.message), ..e });
            }
        };
        log.push(self.scrub_log(ex.log.clone()));
        let answer = ex.json();
        if !ex.ok() {
            return Err(self.http_error("chat.postMessage", &ex, answer.as_ref()));
        }
        let Some(v) = answer else {
            return Err(DeliveryError {
                status: Some(ex.status),
                ..DeliveryError::fatal(format!("Slack chat.postMessage answered {} without Slack's JSON: check base_url", ex.status))
            });
        };
        if v["ok"].as_bool() == Some(true) {
            let ts = v["ts"].as_str().map(str::to_owned);
            let posted_in = v["channel"].as_str().unwrap_or(channel).to_owned();
            return Ok(Delivered {
                external_id: ts.clone(),
                external_url: None,
                evidence: json!({ "form": "bot", "channel": posted_in, "ts": ts }),
                deduplicated: false,
            });
        }
        Err(api_error("chat.postMessage", v["error"].as_str().unwrap_or("unknown_error"), channel, &ex))
    }

    fn http_error(&self, method: &str, ex: &Exchange, answer: Option<&Value>) -> DeliveryError {
        let mut err = ex.error(&format!("Slack {method}"));
        let code = answer.and_then(|v| v["error"].as_str()).map(str::to_owned).unwrap_or_else(|| self.scrub(&crate::connector::excerpt(ex.body.trim(), 120)));
        err.message = match ex.status {
            429 => format!("Slack rate-limited {method} (429 {code}): retry later"),
            401 | 403 => format!("Slack rejected the bot token ({} {code}): check bot_token and its scopes", ex.status),
            300..=399 => format!("Slack {method} answered a redirect ({}): redirects are not followed; check base_url", ex.status),
            s => format!("Slack {method} answered {s} {code}"),
        };
        err
    }

    /// One Web API call (bearer token), logged and scrubbed; the answer's JSON, or the error.
    async fn api_call(&self, method: &str, req: reqwest::RequestBuilder, shown: String, log: &mut Vec<AttemptLog>) -> Result<(Exchange, Value), DeliveryError> {
        let ex = match send(req, shown).await {
            Ok(ex) => ex,
            Err((e, l)) => {
                log.push(self.scrub_log(l));
                return Err(DeliveryError { message: format!("Slack {method}: {}", e.message), ..e });
            }
        };
        log.push(self.scrub_log(ex.log.clone()));
        let answer = ex.json();
        if !ex.ok() {
            return Err(self.http_error(method, &ex, answer.as_ref()));
        }
        match answer {
            Some(v) => Ok((ex, v)),
            None => Err(DeliveryError {
                status: Some(ex.status),
                ..DeliveryError::fatal(format!("Slack {method} answered {} without Slack's JSON: check base_url", ex.status))
            }),
        }
    }

    /// The thread of `ts`, searched for `marker`.
    async fn find_reply(&self, api: &str, token: &str, channel: &str, ts: &str, marker: &str, log: &mut Vec<AttemptLog>) -> Result<ThreadCheck, DeliveryError> {
        const PAGES: usize = 10;
        let endpoint = format!("{api}/conversations.replies");
        let escaped = esc(marker);
        let mut cursor: Option<String> = None;
        for _ in 0..PAGES {
            let mut query = vec![("channel", channel.to_owned()), ("ts", ts.to_owned()), ("limit", "200".to_owned())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let req = self.client.get(&endpoint).bearer_auth(token).query(&query);
            let (ex, v) = self.api_call("conversations.replies", req, format!("GET {}", crate::connector::redact_url(&endpoint)), log).await?;
            if v["ok"].as_bool() != Some(true) {
                let code = v["error"].as_str().unwrap_or("unknown_error");
                return match code {
                    "missing_scope" => Ok(ThreadCheck::Unchecked),
                    "thread_not_found" => Err(gone(channel, ts, &ex)),
                    _ => Err(api_error("conversations.replies", code, channel, &ex)),
                };
            }
            let messages = v["messages"].as_array().cloned().unwrap_or_default();
            if let Some(m) = messages.iter().find(|m| m["ts"].as_str() != Some(ts) && (contains_text(m, marker) || contains_text(m, &escaped))) {
                return Ok(ThreadCheck::Found(m["ts"].as_str().unwrap_or_default().to_owned()));
            }
            cursor = v["response_metadata"]["next_cursor"].as_str().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
            if cursor.is_none() || messages.is_empty() {
                return Ok(ThreadCheck::NotFound);
            }
        }
        Ok(ThreadCheck::NotFound)
    }

    /// A reply in the thread of the earlier call's message, once.
    async fn reply_bot(
        &self,
        bot: (&str, &str, &str, &str),
        req: &HandoffRequest,
        existing: &ExistingRecord,
        log: &mut Vec<AttemptLog>,
    ) -> Result<Delivered, DeliveryError> {
        let (api, endpoint, token, configured) = bot;
        let p = &req.payload;
        let ts = [existing.evidence["ts"].as_str(), Some(existing.external_id.as_str())]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|t| !t.is_empty() && t.len() <= 40 && t.chars().all(|c| c.is_ascii_digit() || c == '.'));
        let Some(ts) = ts else {
            return Err(DeliveryError::fatal(format!(
                "Slack update: the message of call {} has no ts to reply to (a message posted through an incoming webhook cannot be replied to)",
                existing.call_id.chars().take(80).collect::<String>()
            )));
        };
        let option_channel = p.options.get("channel").and_then(Value::as_str);
        let channel = [existing.evidence["channel"].as_str(), option_channel, Some(configured)]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|c| !c.is_empty())
            .unwrap_or(configured)
            .to_owned();
        let marker = update_marker(&req.idempotency_key);
        let checked = match self.find_reply(api, token, &channel, ts, &marker, log).await? {
            ThreadCheck::Found(reply) => return Ok(updated(existing, &channel, ts, &reply, &marker, true, true)),
            ThreadCheck::NotFound => true,
            ThreadCheck::Unchecked => false,
        };
        let (text, blocks) = render_update(p, existing, &marker);
        let body = json!({ "channel": channel, "thread_ts": ts, "text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false });
        let (ex, v) = self
            .api_call(
                "chat.postMessage",
                self.client.post(endpoint).bearer_auth(token).json(&body),
                format!("POST {}", crate::connector::redact_url(endpoint)),
                log,
            )
            .await?;
        if v["ok"].as_bool() == Some(true) {
            let reply = v["ts"].as_str().unwrap_or_default().to_owned();
            let posted_in = v["channel"].as_str().unwrap_or(&channel).to_owned();
            return Ok(updated(existing, &posted_in, ts, &reply, &marker, checked, false));
        }
        match v["error"].as_str().unwrap_or("unknown_error") {
            "thread_not_found" | "invalid_thread_ts" | "message_not_found" => Err(gone(&channel, ts, &ex)),
            code => Err(api_error("chat.postMessage", code, &channel, &ex)),
        }
    }
}

/// What reading a thread found.
enum ThreadCheck {
    /// The reply is there already (its ts).
    Found(String),
    NotFound,
    /// The token may not read history (`missing_scope`).
    Unchecked,
}

fn updated(existing: &ExistingRecord, channel: &str, thread_ts: &str, reply_ts: &str, marker: &str, checked: bool, deduplicated: bool) -> Delivered {
    let mut evidence = json!({
        "updated": true,
        "form": "bot",
        "channel": channel,
        "thread_ts": thread_ts,
        "ts": (!reply_ts.is_empty()).then_some(reply_ts),
        "repeat_of_call": existing.call_id,
        "marker": marker,
        "thread_checked": checked,
    });
    if deduplicated {
        evidence["found_by"] = json!("marker");
    }
    Delivered {
        external_id: Some(if existing.external_id.trim().is_empty() { thread_ts.to_owned() } else { existing.external_id.trim().to_owned() }),
        external_url: existing.external_url.clone().filter(|u| !u.trim().is_empty()),
        evidence,
        deduplicated,
    }
}

/// The original message of a thread is gone.
fn gone(channel: &str, ts: &str, ex: &Exchange) -> DeliveryError {
    let channel: String = channel.chars().take(80).collect();
    DeliveryError {
        status: Some(ex.status),
        ..DeliveryError::fatal(format!(
            "Slack update: the original message {ts} in channel {channel} no longer exists (thread_not_found): nothing was posted in its thread"
        ))
    }
}

/// Classify a Web API method's `{"ok":false,"error":…}` (sent with HTTP 200).
fn api_error(method: &str, code: &str, channel: &str, ex: &Exchange) -> DeliveryError {
    let code: String = code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(60).collect();
    let retry = |message: String| DeliveryError { retryable: true, retry_after: retry_after(&ex.headers), status: Some(ex.status), message };
    let fatal = |message: String| DeliveryError { status: Some(ex.status), ..DeliveryError::fatal(message) };
    let channel: String = channel.chars().take(80).collect();
    match code.as_str() {
        "ratelimited" | "rate_limited" => retry(format!("Slack rate-limited {method} ({code}): retry later")),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            retry(format!("Slack {method} failed on Slack's side ({code}): will retry"))
        }
        "not_authed"
        | "invalid_auth"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "no_permission"
        | "not_allowed_token_type"
        | "ekm_access_denied" => fatal(format!("Slack rejected the bot token ({code}): check bot_token")),
        "missing_scope" => fatal(format!("Slack bot token lacks a scope for {method} ({code}): add chat:write to the app")),
        "channel_not_found" => fatal(format!("Slack channel {channel} not found ({code}): check channel, and invite the bot to private channels")),
        "not_in_channel" => fatal(format!("the Slack bot is not in channel {channel} ({code}): invite it (/invite @bot)")),
        "is_archived" => fatal(format!("Slack channel {channel} is archived ({code}): choose a live channel")),
        "msg_too_long" | "no_text" | "too_many_attachments" | "invalid_blocks" | "invalid_arguments" => fatal(format!("Slack refused the message ({code})")),
        _ => fatal(format!("Slack {method} refused ({code})")),
    }
}

#[async_trait]
impl Connector for Slack {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Slack
    }
    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }
    /// The bot form replies in the original message's thread; a webhook has no thread to reply in.
    fn updates(&self, action: &str) -> bool {
        matches!(self.mode, Mode::Bot { .. }) && action == "post_message"
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome {
        let mut log = Vec::new();
        if !ACTIONS.contains(&req.action.as_str()) {
            let action: String = req.action.chars().take(60).collect();
            return Outcome { result: Err(DeliveryError::fatal(format!("slack has no action '{action}' (expected post_message)"))), log };
        }
        let result = match (&self.mode, &req.update) {
            (Mode::Webhook { url, shown, .. }, _) => self.post_webhook(url, shown, &req.payload, &mut log).await,
            (Mode::Bot { api, endpoint, token, channel }, Some(existing)) => self.reply_bot((api, endpoint, token, channel), req, existing, &mut log).await,
            (Mode::Bot { endpoint, token, channel, .. }, None) => self.post_bot(endpoint, token, channel, &req.payload, &mut log).await,
        };
        scrub_outcome(Outcome { result, log }, |t| self.scrub(t))
    }
}

// ---------------------------------------------------------------- rendering

/// Escape text for mrkdwn (`&`, `<`, `>` are control characters).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn cut(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `<url|label>` for an http(s) URL, else the escaped text.
fn link(url: &str, label: &str) -> String {
    let url = url.trim();
    if url.starts_with("https://") || url.starts_with("http://") {
        let safe = url.replace('|', "%7C").replace('<', "%3C").replace('>', "%3E").replace(' ', "%20");
        format!("<{safe}|{}>", esc(label))
    } else {
        esc(url)
    }
}

fn urgency_badge(urgency: &str) -> &'static str {
    match urgency.trim().to_ascii_lowercase().as_str() {
        "urgent" => ":rotating_light: URGENT",
        "high" => ":red_circle: High",
        "medium" => ":large_orange_circle: Medium",
        "low" => ":white_circle: Low",
        _ => ":speech_balloon:",
    }
}

fn caller_line(p: &HandoffPayload) -> String {
    let c = &p.caller;
    let parts: Vec<String> =
        [&c.name, &c.email, &c.phone, &c.customer, &c.account].into_iter().flatten().map(|s| s.trim()).filter(|s| !s.is_empty()).map(esc).collect();
    if parts.is_empty() { "unknown caller".to_owned() } else { parts.join(" · ") }
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(&text, 2900) } })
}

/// The notification text and the blocks of a message.
pub fn render(p: &HandoffPayload) -> (String, Value) {
    let title = if p.title.trim().is_empty() { format!("DialNexa call {}", p.call_id) } else { p.title.trim().to_owned() };
    let owner = p.owner.as_deref().map(str::trim).filter(|o| !o.is_empty());
    let marker = format!("[call {}]", p.call_id);
    let mut text = format!("{} *{}*", urgency_badge(&p.urgency), esc(&cut(&title, 300)));
    if let Some(o) = owner {
        text.push_str(&format!(" · owner {}", esc(o)));
    }
    text.push_str(&format!(" {}", esc(&marker)));

    let mut blocks = vec![json!({ "type": "header", "text": { "type": "plain_text", "text": cut(&title, 150), "emoji": true } })];

    let mut urgency = if p.urgency.trim().is_empty() { "unspecified".to_owned() } else { esc(p.urgency.trim()) };
    if let Some(sev) = p.severity.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        urgency.push_str(&format!(" (severity {})", esc(sev)));
    }
    let mut fields = vec![
        json!({ "type": "mrkdwn", "text": format!("*Urgency*\n{}", cut(&urgency, 1900)) }),
        json!({ "type": "mrkdwn", "text": format!("*Owner*\n{}", owner.map(esc).unwrap_or_else(|| "unassigned".into())) }),
        json!({ "type": "mrkdwn", "text": cut(&format!("*Caller*\n{}", caller_line(p)), 1900) }),
    ];
    if let Some(a) = p.affected.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        fields.push(json!({ "type": "mrkdwn", "text": cut(&format!("*Affected*\n{}", esc(a)), 1900) }));
    }
    if !p.category.trim().is_empty() {
        fields.push(json!({ "type": "mrkdwn", "text": cut(&format!("*Category*\n{}", esc(p.category.trim())), 1900) }));
    }
    blocks.push(json!({ "type": "section", "fields": fields }));

    if !p.reason.trim().is_empty() {
        blocks.push(section(format!("*Reason*\n{}", esc(p.reason.trim()))));
    }
    if !p.next_step.trim().is_empty() {
        blocks.push(section(format!("*Next step*\n{}", esc(p.next_step.trim()))));
    }
    let mut summary = esc(p.summary.trim());
    for (label, value) in [("Symptom", &p.symptom), ("Expected", &p.expected), ("Actual", &p.actual), ("Impact", &p.impact)] {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            summary.push_str(&format!("\n• _{label}:_ {}", esc(&cut(v, 400))));
        }
    }
    if !summary.trim().is_empty() {
        blocks.push(section(format!("*Summary*\n{}", summary.trim())));
    }

    let links = links(p);
    if !links.is_empty() {
        blocks.push(section(format!("*Links*\n{}", links.join(" · "))));
    }
    blocks.push(json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("DialNexa {}", esc(&marker)) } ] }));
    (text, Value::Array(blocks))
}

/// The thread reply of a repeat contact: what happened, the new call's summary, triage and
/// links, and the marker a retry looks for.
pub fn render_update(p: &HandoffPayload, existing: &ExistingRecord, marker: &str) -> (String, Value) {
    let new_call = if p.call_id.trim().is_empty() { "a new call".to_owned() } else { format!("call {}", esc(p.call_id.trim())) };
    let earlier = if existing.call_id.trim().is_empty() { "the earlier call".to_owned() } else { format!("call {}", esc(existing.call_id.trim())) };
    let call_marker = format!("[call {}]", p.call_id);
    let title = p.title.trim();
    let mut text = format!(":repeat: *Repeat contact*: {new_call} is about the same issue as {earlier}");
    if !title.is_empty() {
        text.push_str(&format!(" ({})", esc(&cut(title, 200))));
    }
    text.push_str(&format!(" {}", esc(&call_marker)));

    let mut blocks = vec![section(format!("*Repeat contact*: {new_call} is about the same issue as {earlier}, whose message this thread is on."))];
    if !p.summary.trim().is_empty() {
        blocks.push(section(format!("*Summary*\n{}", esc(p.summary.trim()))));
    }
    let mut urgency = if p.urgency.trim().is_empty() { "unspecified".to_owned() } else { esc(p.urgency.trim()) };
    if let Some(sev) = p.severity.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        urgency.push_str(&format!(" (severity {})", esc(sev)));
    }
    let owner = p.owner.as_deref().map(str::trim).filter(|o| !o.is_empty()).map(esc).unwrap_or_else(|| "unassigned".into());
    blocks.push(json!({ "type": "section", "fields": [
        { "type": "mrkdwn", "text": cut(&format!("*Urgency*\n{urgency}"), 1900) },
        { "type": "mrkdwn", "text": cut(&format!("*Owner*\n{owner}"), 1900) },
        { "type": "mrkdwn", "text": cut(&format!("*Caller*\n{}", caller_line(p)), 1900) },
    ] }));
    if !p.reason.trim().is_empty() {
        blocks.push(section(format!("*Reason*\n{}", esc(p.reason.trim()))));
    }
    if !p.next_step.trim().is_empty() {
        blocks.push(section(format!("*Next step*\n{}", esc(p.next_step.trim()))));
    }
    let links = links(p);
    if !links.is_empty() {
        blocks.push(section(format!("*Links*\n{}", links.join(" · "))));
    }
    blocks.push(json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("DialNexa {} · {}", esc(&call_marker), esc(marker)) } ] }));
    (text, Value::Array(blocks))
}

/// Links to the call's evidence, as mrkdwn.
fn links(p: &HandoffPayload) -> Vec<String> {
    let mut links = Vec::new();
    if !p.links.call.trim().is_empty() {
        links.push(link(&p.links.call, "Call detail"));
    }
    if !p.links.transcript.trim().is_empty() {
        links.push(link(&p.links.transcript, "Transcript"));
    }
    if let Some(r) = p.links.recording.as_deref().filter(|r| !r.trim().is_empty()) {
        links.push(link(r, "Recording"));
    }
    for (name, url) in &p.links.evidence {
        links.push(link(url, name));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_webhook_path_and_token() {
        let c = Config { webhook_url: Some("https://hooks.slack.com/services/T1/B2/SECRETPATH".into()), bot_token: None, channel: None, base_url: None };
        let d = format!("{c:?}");
        assert!(!d.contains("SECRETPATH") && !d.contains("T1/B2"), "{d}");
        assert!(d.contains("hooks.slack.com"), "{d}");
        let c = Config { webhook_url: None, bot_token: Some("xoxb-SECRET".into()), channel: Some("#oncall".into()), base_url: None };
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn validation_names_the_field_without_echoing_secrets() {
        let c = Config { webhook_url: Some("not a url SECRET".into()), bot_token: None, channel: None, base_url: None };
        let e = c.validate().unwrap_err();
        assert!(e.starts_with("webhook_url: ") && !e.contains("SECRET"), "{e}");
        let c = Config { webhook_url: None, bot_token: Some("xoxb-1".into()), channel: None, base_url: None };
        assert!(c.validate().unwrap_err().starts_with("channel: "));
    }

    #[test]
    fn render_escapes_and_marks_the_call() {
        let p = HandoffPayload { call_id: "c1".into(), title: "A <b> & c".into(), urgency: "high".into(), ..Default::default() };
        let (text, blocks) = render(&p);
        assert!(text.contains("A &lt;b&gt; &amp; c") && text.contains("[call c1]"), "{text}");
        assert_eq!(blocks[0]["type"], "header");
    }
}
