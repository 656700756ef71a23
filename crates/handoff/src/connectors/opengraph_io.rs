//! OpenGraph.io: look at the page the caller mentioned (integrations.md §1).
//!
//! Actions, each on the first http(s) URL in `payload.urls`:
//! - `capture_screenshot`: `GET /api/{version}/screenshot/{target}` → a hosted screenshot URL
//!   (`external_url`, evidence `{"screenshot_url"}`), for other handoffs to link to;
//! - `site_info`: `GET /api/{version}/site/{target}` → `{"title","description","status","url","site_name"}`;
//! - `scrape_site`: `GET /api/{version}/scrape/{target}` → `{"length","title"}` (raw HTML, or the
//!   `{"html","requestInfo"}` variant).
//!
//! The target is percent-encoded as one path segment (`encodeURIComponent`). Auth is only the
//! `app_id` query parameter: it never appears in a log line (`redact_url` drops the query), an
//! error message or the evidence (answers are scrubbed of it as well).
//!
//! Idempotency: the calls are read-only (they cost credits but change nothing), so there is no
//! dedup search; the caller does not repeat a successful call, and a retry after an unknown
//! outcome only costs credits (OpenGraph.io's cache makes it a 1-credit hit).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{
    AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, redact_url, retry_after, retryable_status, scrub_outcome, send,
};
use crate::kind::IntegrationKind;

pub const ACTIONS: &[&str] = &["capture_screenshot", "scrape_site", "site_info"];

const DEFAULT_BASE: &str = "https://opengraph.io";
const VERSIONS: &[&str] = &["1.1", "3.0"];
const REDACTED: &str = "[redacted]";

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OpenGraph.io App ID: sent only as the `app_id` query parameter.
    pub app_id: String,
    /// Replaces `https://opengraph.io` (a trailing `/api` is accepted too).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `"1.1"` (default) or `"3.0"`.
    #[serde(default)]
    pub version: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("app_id", &REDACTED)
            .field("base_url", &self.base_url.as_deref().map(redact_url))
            .field("version", &self.version)
            .finish()
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let app_id = self.app_id.trim();
        if app_id.is_empty() {
            return Err("app_id: is required (the OpenGraph.io App ID)".into());
        }
        if app_id.len() != self.app_id.len() || app_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("app_id: must not contain spaces or control characters".into());
        }
        if let Some(v) = &self.version
            && !VERSIONS.contains(&v.as_str())
        {
            return Err(format!("version: must be \"1.1\" or \"3.0\" (there is no v2), not \"{}\"", v.chars().take(20).collect::<String>()));
        }
        if let Some(b) = &self.base_url {
            let lower = b.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) || b.contains(['?', '#', ' ']) || b.len() < 10 {
                return Err("base_url: must be an http or https URL without a query string".into());
            }
        }
        Ok(())
    }

    fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("1.1")
    }

    fn base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or(DEFAULT_BASE).trim_end_matches('/');
        b.strip_suffix("/api").unwrap_or(b).to_owned()
    }
}

pub struct OpengraphIo {
    config: Config,
    client: reqwest::Client,
}

impl OpengraphIo {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let service = match req.action.as_str() {
            "capture_screenshot" => "screenshot",
            "scrape_site" => "scrape",
            "site_info" => "site",
            other => {
                return Err(DeliveryError::fatal(format!(
                    "opengraph_io cannot '{}' (actions: {})",
                    other.chars().take(40).collect::<String>(),
                    ACTIONS.join(", ")
                )));
            }
        };
        let target = first_web_url(&req.payload.urls)
            .ok_or_else(|| DeliveryError::fatal(format!("{}: no URL the caller mentioned (payload.urls holds no http or https URL to look at)", req.action)))?;
        let mut url = format!(
            "{}/api/{}/{}/{}?app_id={}",
            self.config.base(),
            self.config.version(),
            service,
            encode_component(&target),
            encode_component(self.config.app_id.trim())
        );
        for (k, v) in pass_through_options(req, service) {
            url.push('&');
            url.push_str(&encode_component(&k));
            url.push('=');
            url.push_str(&encode_component(&v));
        }
        let shown = format!("GET {}", redact_url(&url));
        let accept = if service == "scrape" { "text/html, application/json" } else { "application/json" };
        let ex = match send(self.client.get(&url).header("accept", accept), shown).await {
            Ok(ex) => ex,
            Err((e, l)) => {
                log.push(l);
                return Err(e);
            }
        };
        log.push(ex.log.clone());
        if !ex.ok() {
            return Err(classify(&ex));
        }
        let json = ex.json();
        if let Some(j) = &json
            && error_flag(j)
        {
            let (msg, _) = error_message(j);
            return Err(DeliveryError {
                retryable: false,
                retry_after: None,
                status: Some(ex.status),
                message: format!("OpenGraph.io answered {} with an error: {}", ex.status, msg.unwrap_or_else(|| "no message".into())),
            });
        }
        match service {
            "screenshot" => screenshot(&ex, json),
            "site" => Ok(site(json.unwrap_or(Value::Null), &target)),
            _ => Ok(scrape(&ex.body, json, &target)),
        }
    }

    fn scrub(&self, s: &str) -> String {
        let secret = self.config.app_id.trim();
        if secret.len() < 3 {
            return s.to_owned();
        }
        s.replace(secret, REDACTED).replace(&encode_component(secret), REDACTED)
    }
}

#[async_trait]
impl Connector for OpengraphIo {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::OpengraphIo
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

/// The first http(s) URL the caller mentioned.
fn first_web_url(urls: &[String]) -> Option<String> {
    urls.iter()
        .map(|u| u.trim())
        .find(|u| {
            let lower = u.to_ascii_lowercase();
            let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
            matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
        })
        .map(str::to_owned)
}

/// Options a rule may set for the call (version-neutral names only).
fn pass_through_options(req: &HandoffRequest, service: &str) -> Vec<(String, String)> {
    let mut keys: Vec<&str> = vec!["full_render", "accept_lang", "cache_ok", "max_cache_age"];
    if service == "screenshot" {
        keys.extend(["full_page", "dimensions", "format", "quality", "dark_mode", "block_cookie_banner"]);
    }
    let mut out = Vec::new();
    for k in keys {
        let v = match req.payload.options.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        out.push((k.to_owned(), v));
    }
    out
}

/// Percent-encode as `encodeURIComponent` does: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
pub fn encode_component(s: &str) -> String {
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

/// `error` as a bool or an object.
fn error_flag(j: &Value) -> bool {
    match j.get("error") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

/// `message` at the top level or inside `error`, and `code` likewise.
fn error_message(j: &Value) -> (Option<String>, Option<String>) {
    let inner = j.get("error").filter(|e| e.is_object());
    let message = j
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| inner.and_then(|e| e.get("message")).and_then(Value::as_str))
        .or_else(|| j.get("error").and_then(Value::as_str))
        .map(|s| s.chars().take(200).collect());
    let code = j.get("code").or_else(|| inner.and_then(|e| e.get("code"))).and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    (message, code)
}

fn classify(ex: &Exchange) -> DeliveryError {
    let status = ex.status;
    let (msg, code) = ex.json().map(|j| error_message(&j)).unwrap_or((None, None));
    let detail = match (msg, code) {
        (Some(m), Some(c)) => format!("{m} ({c})"),
        (Some(m), None) => m,
        (None, Some(c)) => format!("code {c}"),
        (None, None) => ex.body.trim().chars().take(120).collect(),
    };
    let what = match status {
        300..=399 => "OpenGraph.io answered a redirect, which is not followed".to_owned(),
        400 => "OpenGraph.io refused the request (bad target encoding or parameters)".to_owned(),
        401 => "OpenGraph.io rejected the app_id: check the integration's App ID".to_owned(),
        403 => "the target site blocks OpenGraph.io".to_owned(),
        404 => "OpenGraph.io could not find the target page".to_owned(),
        422 => "OpenGraph.io blocked the page (risk score too high)".to_owned(),
        429 => "OpenGraph.io concurrency or credit limit reached".to_owned(),
        502..=504 => "the target site is unavailable through OpenGraph.io".to_owned(),
        _ => "OpenGraph.io failed".to_owned(),
    };
    DeliveryError {
        retryable: retryable_status(status),
        retry_after: retry_after(&ex.headers),
        status: Some(status),
        message: format!("{what} ({status}){}", if detail.is_empty() { String::new() } else { format!(": {detail}") }),
    }
}

fn screenshot(ex: &Exchange, json: Option<Value>) -> Result<Delivered, DeliveryError> {
    let j = json.unwrap_or(Value::Null);
    let url = j
        .get("screenshotUrl")
        .or_else(|| j.get("screenshot_url"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    match url {
        Some(u) => Ok(Delivered { external_id: None, external_url: Some(u.to_owned()), evidence: json!({ "screenshot_url": u }), deduplicated: false }),
        None => {
            let (msg, _) = error_message(&j);
            Err(DeliveryError {
                retryable: false,
                retry_after: None,
                status: Some(ex.status),
                message: format!("OpenGraph.io answered {} without a screenshotUrl{}", ex.status, msg.map(|m| format!(": {m}")).unwrap_or_default()),
            })
        }
    }
}

fn first_str(j: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|p| {
        let mut v = j;
        for k in *p {
            v = v.get(k)?;
        }
        v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(500).collect())
    })
}

fn site(j: Value, target: &str) -> Delivered {
    let title = first_str(&j, &[&["hybridGraph", "title"], &["openGraph", "title"], &["htmlInferred", "title"]]);
    let description = first_str(&j, &[&["hybridGraph", "description"], &["openGraph", "description"], &["htmlInferred", "description"]]);
    let site_name = first_str(&j, &[&["hybridGraph", "site_name"], &["openGraph", "site_name"], &["htmlInferred", "site_name"]]);
    let url = first_str(&j, &[&["hybridGraph", "url"], &["openGraph", "url"], &["url"]]).unwrap_or_else(|| target.to_owned());
    let status = j.get("requestInfo").and_then(|r| r.get("responseCode")).and_then(Value::as_u64);
    Delivered {
        external_id: None,
        external_url: Some(url.clone()),
        evidence: json!({ "title": title, "description": description, "status": status, "url": url, "site_name": site_name }),
        deduplicated: false,
    }
}

fn scrape(body: &str, json: Option<Value>, target: &str) -> Delivered {
    let html = json.as_ref().and_then(|j| j.get("html")).and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| body.to_owned());
    Delivered {
        external_id: None,
        external_url: Some(target.to_owned()),
        evidence: json!({ "length": html.chars().count(), "title": html_title(&html) }),
        deduplicated: false,
    }
}

/// The text of the first `<title>`, entities decoded and whitespace collapsed.
pub fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    let open = loop {
        let at = from + lower[from..].find("<title")?;
        let next = lower.as_bytes().get(at + 6).copied();
        if matches!(next, Some(b'>') | Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r')) {
            break at;
        }
        from = at + 6;
    };
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title").unwrap_or(lower.len() - start);
    let raw = html.get(start..end)?;
    let text = decode_entities(raw).split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(300).collect();
    (!text.is_empty()).then_some(text)
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest[..rest.len().min(10)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16).ok().and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_encode_uri_component() {
        assert_eq!(encode_component("https://github.com"), "https%3A%2F%2Fgithub.com");
        assert_eq!(encode_component("a b?c=d&e/f#g"), "a%20b%3Fc%3Dd%26e%2Ff%23g");
        assert_eq!(encode_component("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn reads_titles() {
        assert_eq!(html_title("<html><head><TITLE>\n Acme &amp; Co </TITLE></head>").as_deref(), Some("Acme & Co"));
        assert_eq!(html_title("<title lang=\"en\">A&#39;s</title>").as_deref(), Some("A's"));
        assert_eq!(html_title("<titles>x</titles><p>none</p>"), None);
        assert_eq!(html_title("<title></title>"), None);
    }

    #[test]
    fn picks_the_first_web_url() {
        let urls = vec!["ftp://x".to_owned(), " https://a.example/p ".to_owned()];
        assert_eq!(first_web_url(&urls).as_deref(), Some("https://a.example/p"));
        assert_eq!(first_web_url(&["mailto:a@b".to_owned(), "https://".to_owned()]), None);
    }

    #[test]
    fn reads_both_error_forms() {
        let docs = json!({"error": true, "message": "Invalid App ID", "code": "INVALID_APP_ID"});
        let nested = json!({"error": {"code": 102, "message": "Rate limit exceeded"}});
        assert!(error_flag(&docs) && error_flag(&nested));
        assert_eq!(error_message(&docs), (Some("Invalid App ID".into()), Some("INVALID_APP_ID".into())));
        assert_eq!(error_message(&nested), (Some("Rate limit exceeded".into()), Some("102".into())));
        assert!(!error_flag(&json!({"error": false})));
    }
}
