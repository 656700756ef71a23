//! What a connector does: build the request, send it, read the answer, say whether an error
//! is worth retrying, and keep the external id and URL. Every HTTP exchange is logged as an
//! [`AttemptLog`] with secrets redacted.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

/// One handoff to deliver.
#[derive(Debug, Clone)]
pub struct HandoffRequest {
    pub handoff_id: String,
    /// call id + integration + action: unique; sent where the destination takes one.
    pub idempotency_key: String,
    pub action: String,
    pub payload: HandoffPayload,
    /// 1-based.
    pub attempt: u32,
    /// A repeat of an issue already handed off: add to that record (a comment, a thread
    /// reply, a note) instead of creating a new one. `None`: create (or find) the record.
    pub update: Option<ExistingRecord>,
}

/// The record an earlier call created for the same issue, that a repeat adds to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExistingRecord {
    /// The call whose handoff created the record.
    pub call_id: String,
    pub external_id: String,
    pub external_url: Option<String>,
    /// What that delivery gave back (e.g. Slack's `channel` and `ts`, a ticket number).
    pub evidence: Value,
}

/// A successful delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    /// What the destination told us that others can use (screenshot URL, matched user ...).
    pub evidence: Value,
    /// The record already existed (found by search): nothing new was created.
    pub deduplicated: bool,
}

/// A failed delivery. `message` never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryError {
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    pub status: Option<u16>,
    pub message: String,
}

impl DeliveryError {
    pub fn fatal(message: impl Into<String>) -> Self {
        DeliveryError { retryable: false, retry_after: None, status: None, message: message.into() }
    }
    pub fn retry(message: impl Into<String>) -> Self {
        DeliveryError { retryable: true, retry_after: None, status: None, message: message.into() }
    }
}

/// One HTTP exchange, as stored with the handoff's attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// `POST https://host/path` with credentials removed from the URL.
    pub request: String,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The first 500 characters of the answer.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// The outcome of a delivery and the exchanges it took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: Result<Delivered, DeliveryError>,
    pub log: Vec<AttemptLog>,
}

#[async_trait]
pub trait Connector: Send + Sync {
    fn kind(&self) -> IntegrationKind;
    /// The actions this connector can carry out.
    fn actions(&self) -> &'static [&'static str];
    /// Whether this connector can add to an existing record for `action` (a comment on an
    /// issue or ticket, a reply in a thread): when it can and [`HandoffRequest::update`] is
    /// set, `deliver` adds to that record instead of creating one. When it cannot, `deliver`
    /// ignores `update` and creates (or finds) a record as usual.
    fn updates(&self, _action: &str) -> bool {
        false
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome;
}

/// The marker an update (a comment, a reply) carries so a retry can tell it was already made:
/// `dialnexa-key: <idempotency key>`.
pub fn update_marker(idempotency_key: &str) -> String {
    format!("dialnexa-key: {}", idempotency_key.trim())
}

/// Does any string inside `v` (text nodes, blocks, bodies) contain `needle`?
pub fn contains_text(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| contains_text(x, needle)),
        Value::Object(o) => o.values().any(|x| contains_text(x, needle)),
        _ => false,
    }
}

/// Remove secrets from everything an outcome carries (log lines, error, evidence), with the
/// connector's own `scrub`: defence in depth against an answer that echoes a credential.
pub fn scrub_outcome(outcome: Outcome, scrub: impl Fn(&str) -> String) -> Outcome {
    let Outcome { result, mut log } = outcome;
    for l in &mut log {
        l.request = scrub(&l.request);
        l.response_excerpt = l.response_excerpt.as_deref().map(&scrub);
        l.error = l.error.as_deref().map(&scrub);
    }
    let result = match result {
        Ok(mut d) => {
            if let Ok(text) = serde_json::to_string(&d.evidence)
                && text != scrub(&text)
            {
                d.evidence = serde_json::from_str(&scrub(&text)).unwrap_or(Value::Null);
            }
            Ok(d)
        }
        Err(mut e) => {
            e.message = scrub(&e.message);
            Err(e)
        }
    };
    Outcome { result, log }
}

/// Status codes worth retrying: 408, 425, 429 and 5xx. Other 4xx are the request's fault.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

/// `Retry-After` in seconds (an HTTP date is read too).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let secs = when.as_second() - jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The first `n` characters of a body.
pub fn excerpt(body: &str, n: usize) -> String {
    body.chars().take(n).collect()
}

/// A URL without its query string or userinfo (where credentials hide).
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match (no_query.find("://"), no_query.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &no_query[..s + 3], &no_query[at + 1..]),
        _ => no_query.to_owned(),
    }
}

/// The HTTP client every connector uses: no redirects (a 3xx is a failure), timeouts.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5)).redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default()
}

/// A response read whole, with the exchange logged.
pub struct Exchange {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub log: AttemptLog,
}

/// Send a request and log it; transport failures become retryable errors.
pub async fn send(req: reqwest::RequestBuilder, shown: String) -> Result<Exchange, (DeliveryError, AttemptLog)> {
    let started = Instant::now();
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            match resp.text().await {
                Ok(body) => {
                    let log = AttemptLog {
                        request: shown,
                        status: Some(status),
                        latency_ms: started.elapsed().as_millis() as u64,
                        response_excerpt: Some(excerpt(&body, 500)),
                        error: None,
                    };
                    Ok(Exchange { status, headers, body, log })
                }
                Err(_) => {
                    // The answer broke off: the outcome is unknown, so retry (the connectors
                    // search or send an idempotency key before creating again).
                    let message = format!("the answer ({status}) broke off before it was complete");
                    let log = AttemptLog {
                        request: shown,
                        status: Some(status),
                        latency_ms: started.elapsed().as_millis() as u64,
                        response_excerpt: None,
                        error: Some(message.clone()),
                    };
                    Err((DeliveryError::retry(message), log))
                }
            }
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else if e.is_redirect() {
                "was redirected (redirects are not followed)"
            } else {
                "failed (connection reset or protocol error)"
            };
            let message = format!("the request {what}");
            let log = AttemptLog {
                request: shown,
                status: None,
                latency_ms: started.elapsed().as_millis() as u64,
                response_excerpt: None,
                error: Some(message.clone()),
            };
            Err((DeliveryError::retry(message), log))
        }
    }
}

impl Exchange {
    /// The error for a non-2xx answer, classified.
    pub fn error(&self, what: &str) -> DeliveryError {
        DeliveryError {
            retryable: retryable_status(self.status),
            retry_after: retry_after(&self.headers),
            status: Some(self.status),
            message: format!("{what} answered {}: {}", self.status, excerpt(self.body.trim(), 200)),
        }
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn markers_are_found_anywhere_in_a_record() {
        let m = update_marker(" c2:jira:create_issue ");
        assert_eq!(m, "dialnexa-key: c2:jira:create_issue");
        let adf = serde_json::json!({ "type": "doc", "content": [{ "type": "paragraph", "content": [{ "type": "text", "text": format!("x {m} y") }] }] });
        assert!(contains_text(&adf, &m));
        assert!(!contains_text(&adf, "dialnexa-key: c3:jira:create_issue"));
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(redact_url("https://opengraph.io/api/1.1/site/x?app_id=SECRET"), "https://opengraph.io/api/1.1/site/x");
        assert_eq!(redact_url("https://user:pw@host/p"), "https://host/p");
    }
}
