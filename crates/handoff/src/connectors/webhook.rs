//! Signed webhooks (Standard Webhooks v1.0.0, symmetric `v1` signatures).
//!
//! Action `deliver`: `POST {url}` with the JSON body
//! `{"type":"handoff.requested","timestamp":"<RFC 3339>","data":{...payload}}` and the headers
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`, keyed with the decoded `whsec_` secret).
//!
//! Exactly-once: a plain receiver has no search API, so the sender cannot look before it sends.
//! `webhook-id` is derived from the handoff's idempotency key and is the same on every retry;
//! receivers must dedupe on it (the specification asks them to). A receiver that does not will
//! see a duplicate after an attempt whose outcome we could not read (timeout, reset).
//!
//! Receiver answers (reference/reliability.md §1): 2xx delivered; 3xx failed (redirects are not
//! followed: fix the URL); 410 fatal (the endpoint is gone: disable it); 408/425/429/5xx retried,
//! honouring `Retry-After`; any other 4xx fatal.
//!
//! [`sign`] and [`verify`] are public so receivers (and the test fake) can check deliveries.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::connector::{AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, excerpt, redact_url, retry_after, send};
use crate::kind::IntegrationKind;

pub const ACTIONS: &[&str] = &["deliver"];

/// The event type of every delivery.
pub const EVENT_TYPE: &str = "handoff.requested";
/// Default verification tolerance: 5 minutes, past and future.
pub const TOLERANCE_SECS: i64 = 5 * 60;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The receiver's endpoint (http or https).
    pub url: String,
    /// `whsec_<base64>`, 24 to 64 bytes once decoded.
    pub secret: String,
    /// Replaces the origin (`scheme://host:port`) of `url`, keeping its path (tests).
    #[serde(default)]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("url", &shown_url(&self.url)).field("secret", &"<redacted>").finish()
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err("url: is required".into());
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 || url.contains(char::is_whitespace) {
            return Err("url: must be an http:// or https:// URL without spaces".into());
        }
        if !self.secret.starts_with("whsec_") {
            return Err("secret: must look like whsec_<base64> (Standard Webhooks format)".into());
        }
        let key = decode_secret(&self.secret).map_err(|e| format!("secret: {e}"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!("secret: must decode to 24 to 64 bytes, found {}", key.len()));
        }
        if let Some(b) = &self.base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            return Err("base_url: must be an http:// or https:// URL".into());
        }
        Ok(())
    }
}

/// The key bytes of a `whsec_<base64>` secret (the prefix is optional here, as in the
/// specification's libraries).
fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.trim().strip_prefix("whsec_").unwrap_or(secret.trim());
    let key = B64.decode(b64).map_err(|_| "is not valid base64 after the whsec_ prefix".to_owned())?;
    if key.is_empty() {
        return Err("is empty".into());
    }
    Ok(key)
}

fn mac(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<HmacSha256, String> {
    if msg_id.is_empty() || msg_id.contains('.') {
        return Err("the message id must be non-empty and must not contain '.'".into());
    }
    let key = decode_secret(secret).map_err(|e| format!("secret {e}"))?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| "bad key length".to_owned())?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// `v1,<base64 HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}")>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mac = mac(secret, msg_id, timestamp, body)?;
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// Check a delivery: `headers` are (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
/// The timestamp must be within `tolerance_secs` of `now` (both ways); any one of the
/// space-separated `v1,` signatures may match; the comparison is constant-time.
pub fn verify(secret: &str, headers: (&str, &str, &str), body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), String> {
    let (msg_id, ts, signatures) = headers;
    let ts: i64 = ts.trim().parse().map_err(|_| "invalid webhook-timestamp".to_owned())?;
    if now - ts > tolerance_secs {
        return Err("webhook-timestamp is too old".into());
    }
    if ts - now > tolerance_secs {
        return Err("webhook-timestamp is too far in the future".into());
    }
    let mac = mac(secret, msg_id, ts, body)?;
    let matched = signatures.split(' ').filter_map(|s| s.split_once(',')).filter(|(v, _)| *v == "v1").any(|(_, sig)| match B64.decode(sig) {
        // `verify_slice` compares in constant time.
        Ok(bytes) => mac.clone().verify_slice(&bytes).is_ok(),
        Err(_) => false,
    });
    if matched { Ok(()) } else { Err("no matching signature".into()) }
}

/// The endpoint as logged: no query string or userinfo, and path segments long enough to be
/// tokens (`/hooks/catch/123/AbC...`, as Zapier and Slack-style URLs carry) masked.
pub fn shown_url(url: &str) -> String {
    let clean = redact_url(url);
    let Some(i) = clean.find("://") else { return "<invalid url>".into() };
    let rest = &clean[i + 3..];
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path: Vec<&str> = path.split('/').map(|seg| if seg.chars().count() >= 16 { "***" } else { seg }).collect();
    format!("{}{host}{}", &clean[..i + 3], path.join("/"))
}

/// The `webhook-id` of a handoff: stable across retries, no '.', readable and collision-free
/// (a sanitised prefix of the key plus a hash of the whole key).
pub fn message_id(idempotency_key: &str) -> String {
    let readable: String = idempotency_key.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    let hash = Sha256::digest(idempotency_key.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("msg_{readable}_{hex}")
}

pub struct Webhook {
    config: Config,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    /// The endpoint, with `base_url` in place of its origin when set.
    fn endpoint(&self) -> String {
        let url = self.config.url.trim();
        match &self.config.base_url {
            None => url.to_owned(),
            Some(base) => {
                let after_scheme = url.find("://").map(|i| &url[i + 3..]).unwrap_or(url);
                let path = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("/");
                format!("{}{path}", base.trim_end_matches('/'))
            }
        }
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        if req.action != "deliver" {
            return Err(DeliveryError::fatal(format!("webhook: unknown action '{}' (expected deliver)", excerpt(&req.action, 40))));
        }
        let msg_id = message_id(&req.idempotency_key);
        let now = jiff::Timestamp::now();
        let body = json!({
            "type": EVENT_TYPE,
            "timestamp": now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string(),
            "data": req.payload,
        });
        let body = serde_json::to_vec(&body).map_err(|e| DeliveryError::fatal(format!("webhook: could not encode the payload: {e}")))?;
        let ts = now.as_second();
        let signature = sign(&self.config.secret, &msg_id, ts, &body).map_err(|e| DeliveryError::fatal(format!("webhook: cannot sign: {e}")))?;
        let url = self.endpoint();
        let shown = format!("POST {}", shown_url(&url));
        let rb = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "DialNexa-Webhooks/1")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let x = match send(rb, shown).await {
            Ok(x) => x,
            Err((e, l)) => {
                log.push(l);
                return Err(e);
            }
        };
        log.push(x.log.clone());
        if x.ok() {
            return Ok(Delivered {
                external_id: Some(msg_id.clone()),
                external_url: None,
                evidence: json!({ "webhook_id": msg_id, "status": x.status }),
                deduplicated: false,
            });
        }
        Err(classify(&x))
    }
}

fn classify(x: &Exchange) -> DeliveryError {
    let mut e = x.error("the webhook receiver");
    match x.status {
        300..=399 => {
            e.retryable = false;
            e.message = format!("the webhook receiver answered {} (a redirect): redirects are not followed, update the endpoint URL", x.status);
        }
        410 => {
            e.retryable = false;
            e.message = "the webhook endpoint is gone (410): disable it or update the URL".into();
        }
        401 | 403 => {
            e.retryable = false;
            e.message = format!("the webhook receiver refused the delivery ({}): check that it uses this endpoint's signing secret", x.status);
        }
        _ => {}
    }
    if e.retryable {
        e.retry_after = retry_after(&x.headers);
    }
    e
}

#[async_trait]
impl Connector for Webhook {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Webhook
    }
    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome {
        let mut log = Vec::new();
        let result = self.run(req, &mut log).await;
        Outcome { result, log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_dot_free() {
        let a = message_id("call_1.webhook.deliver");
        assert_eq!(a, message_id("call_1.webhook.deliver"));
        assert!(!a.contains('.'));
        assert_ne!(a, message_id("call_1:webhook:deliver"));
    }

    #[test]
    fn shown_urls_hide_tokens() {
        assert_eq!(shown_url("https://u:p@hooks.example.com/catch/123/AbCdEfGhIjKlMnOpQr?t=1"), "https://hooks.example.com/catch/123/***");
        assert_eq!(shown_url("http://127.0.0.1:9/hook"), "http://127.0.0.1:9/hook");
    }
}
