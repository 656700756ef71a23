//! Datadog: monitor context for incidents.
//!
//! Actions:
//! - `create_event`: `POST /api/v1/events` with a title, a Markdown text (at most 4,000
//!   characters: summary, reason, urgency, owner, next step, caller, affected record, symptom /
//!   expected / actual / impact, links), `alert_type` from the severity (sev1/sev2 → error,
//!   sev3 → warning, else info), `aggregation_key` = the call id and the tags
//!   `dialnexa_call:<id>`, `source:dialnexa`, `category:…`, `severity:…`, `urgency:…`.
//! - `search_monitors`: `GET /api/v1/monitor/search?query=…` with the payload's product area,
//!   endpoint, error message and region (`options.monitor_query` replaces the built query).
//!   Evidence: `{"monitors":[{id,name,status,url}],"query"}`, linking the symptom to monitors.
//!   Needs `app_key` (reads need `DD-APPLICATION-KEY` and the `monitors_read` scope).
//!
//! Exactly-once for `create_event`: Datadog takes no idempotency key (`aggregation_key` only
//! groups events). When `app_key` is set, the connector first searches
//! `GET /api/v1/events?start=&end=&tags=dialnexa_call:<id>` over the last 7 days and returns a
//! match as `deduplicated`. Without `app_key` it cannot read, so it posts directly: a retry after
//! an attempt whose outcome was lost (timeout, reset) creates a second event, grouped with the
//! first under the same aggregation key. Datadog lowercases tags; the call-id tag is built
//! lowercase so the search matches what Datadog stored.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, excerpt, redact_url, send};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["create_event", "search_monitors"];

pub const DEFAULT_SITE: &str = "datadoghq.com";
/// `text` holds at most 4,000 characters.
pub const TEXT_MAX: usize = 4000;
/// How far back the dedup search looks.
const DEDUP_WINDOW_SECS: i64 = 7 * 24 * 3600;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_key: String,
    #[serde(default)]
    pub app_key: Option<String>,
    /// `datadoghq.com` (default), `datadoghq.eu`, `us3.datadoghq.com`, `us5.datadoghq.com`,
    /// `ap1.datadoghq.com`, `ddog-gov.com` ...
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"<redacted>")
            .field("app_key", &self.app_key.as_ref().map(|_| "<redacted>"))
            .field("site", &self.site)
            .field("base_url", &self.base_url)
            .finish()
    }
}

fn key_ok(k: &str) -> bool {
    !k.trim().is_empty() && !k.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.trim().is_empty() {
            return Err("api_key: is required".into());
        }
        if !key_ok(&self.api_key) {
            return Err("api_key: must not contain spaces or control characters".into());
        }
        if let Some(k) = &self.app_key
            && !key_ok(k)
        {
            return Err("app_key: must be a non-empty key without spaces (or omit it)".into());
        }
        if let Some(s) = &self.site {
            let s = s.trim();
            let host_ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !host_ok || !(s.ends_with("datadoghq.com") || s.ends_with("datadoghq.eu") || s.ends_with("ddog-gov.com")) {
                return Err("site: must be a Datadog site such as datadoghq.com, datadoghq.eu, us3.datadoghq.com or ddog-gov.com".into());
            }
        }
        if let Some(b) = &self.base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            return Err("base_url: must be an http:// or https:// URL".into());
        }
        Ok(())
    }

    fn site(&self) -> &str {
        self.site.as_deref().map(str::trim).unwrap_or(DEFAULT_SITE)
    }

    fn api_base(&self) -> String {
        match &self.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!("https://api.{}", self.site()),
        }
    }

    /// The web app's host: `app.datadoghq.com`, `us3.datadoghq.com`, `app.datadoghq.eu` ...
    fn app_base(&self) -> String {
        let site = self.site();
        if site.matches('.').count() >= 2 { format!("https://{site}") } else { format!("https://app.{site}") }
    }
}

/// A tag as Datadog stores it: lowercase; characters other than letters, digits, `_ - : . /`
/// become `_`; at most 200 characters.
pub fn tag(s: &str) -> String {
    s.trim().to_lowercase().chars().map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/') { c } else { '_' }).take(200).collect()
}

/// The tag that finds a call's event.
pub fn call_tag(call_id: &str) -> String {
    tag(&format!("dialnexa_call:{}", call_id.trim()))
}

pub fn alert_type(severity: Option<&str>) -> &'static str {
    let s: String = severity.unwrap_or("").to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    match s.as_str() {
        "sev1" | "sev2" => "error",
        "sev3" => "warning",
        _ => "info",
    }
}

fn cap(s: &str, max: usize) -> String {
    let t = s.trim();
    if t.chars().count() > max { format!("{}…", t.chars().take(max.saturating_sub(1)).collect::<String>()) } else { t.to_owned() }
}

/// The event text: Markdown between `%%%` markers, at most [`TEXT_MAX`] characters; the links
/// are always kept, the summary is cut first.
pub fn event_text(p: &HandoffPayload) -> String {
    let mut facts = vec![];
    let mut add = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            facts.push(format!("- **{k}:** {}", cap(v, 300)));
        }
    };
    add("Reason", Some(&p.reason));
    add("Urgency", Some(&p.urgency));
    add("Owner", p.owner.as_deref());
    add("Next step", Some(&p.next_step));
    let caller = [p.caller.name.as_deref(), p.caller.customer.as_deref().or(p.caller.account.as_deref())].into_iter().flatten().collect::<Vec<_>>().join(", ");
    add("Caller", Some(&caller));
    add("Affected", p.affected.as_deref());
    add("Symptom", p.symptom.as_deref());
    add("Expected", p.expected.as_deref());
    add("Actual", p.actual.as_deref());
    add("Impact", p.impact.as_deref());
    let mut links = vec![format!("[Call]({})", cap(&p.links.call, 300)), format!("[Transcript]({})", cap(&p.links.transcript, 300))];
    if let Some(r) = &p.links.recording {
        links.push(format!("[Recording]({})", cap(r, 300)));
    }
    for (name, url) in p.links.evidence.iter().take(5) {
        links.push(format!("[{}]({})", cap(name, 40), cap(url, 300)));
    }
    let tail = format!("\n\n{}\n\nDialNexa call {}\n%%%", links.join(" · "), cap(&p.call_id, 100));
    let head = "%%%\n";
    let facts = facts.join("\n");
    let budget = TEXT_MAX.saturating_sub(head.chars().count() + tail.chars().count() + 2);
    let facts = cap(&facts, budget);
    let summary = cap(&p.summary, budget.saturating_sub(facts.chars().count() + 2));
    let body = if summary.is_empty() { facts } else { format!("{summary}\n\n{facts}") };
    let text = format!("{head}{body}{tail}");
    if text.chars().count() > TEXT_MAX { text.chars().take(TEXT_MAX).collect() } else { text }
}

/// The monitor search terms: product area, endpoint, error message, region.
pub fn monitor_query(p: &HandoffPayload) -> Option<String> {
    if let Some(q) = p.options.get("monitor_query").and_then(Value::as_str).filter(|q| !q.trim().is_empty()) {
        return Some(cap(q, 500));
    }
    let mut terms: Vec<String> = vec![];
    for k in ["product_area", "service", "endpoint", "error_message", "error", "region"] {
        let Some(v) = p.fields.get(k).and_then(Value::as_str) else { continue };
        let clean: String = v.chars().filter(|c| !matches!(c, '"' | '\\' | '(' | ')')).take(80).collect();
        let clean = clean.trim().to_owned();
        if !clean.is_empty() && !terms.contains(&format!("\"{clean}\"")) {
            terms.push(format!("\"{clean}\""));
        }
    }
    match terms.len() {
        0 => None,
        1 => terms.pop(),
        _ => Some(format!("({})", terms.join(" OR "))),
    }
}

fn datadog_error(x: &Exchange, what: &str) -> DeliveryError {
    let mut e = x.error(what);
    let errors =
        x.json().and_then(|v| v.get("errors").and_then(Value::as_array).cloned()).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
    if let Some(m) = errors.filter(|m| !m.is_empty()) {
        e.message = format!("{what} answered {}: {}", x.status, excerpt(&m, 200));
    }
    if matches!(x.status, 401 | 403) {
        e.retryable = false;
        e.message = format!("Datadog rejected the credentials ({}): check api_key (and app_key with the needed scopes for reads) and the site", x.status);
    }
    e
}

/// `url` with `pairs` appended as a form-encoded query string.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id_str")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| v.get("id").and_then(|i| i.as_str().map(str::to_owned).or_else(|| i.as_i64().map(|n| n.to_string()))))
}

pub struct Datadog {
    config: Config,
    client: reqwest::Client,
}

impl Datadog {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    async fn exchange(&self, rb: reqwest::RequestBuilder, shown: String, read: bool, log: &mut Vec<AttemptLog>) -> Result<Exchange, DeliveryError> {
        let mut rb = rb.header("DD-API-KEY", self.config.api_key.trim()).header("accept", "application/json");
        if read && let Some(k) = &self.config.app_key {
            rb = rb.header("DD-APPLICATION-KEY", k.trim());
        }
        match send(rb, shown).await {
            Ok(x) => {
                log.push(x.log.clone());
                Ok(x)
            }
            Err((e, l)) => {
                log.push(l);
                Err(e)
            }
        }
    }

    async fn find_event(&self, tag: &str, log: &mut Vec<AttemptLog>) -> Result<Option<Value>, DeliveryError> {
        let url = format!("{}/api/v1/events", self.config.api_base());
        let now = jiff::Timestamp::now().as_second();
        let (start, end) = ((now - DEDUP_WINDOW_SECS).to_string(), (now + 300).to_string());
        let rb = self.client.get(with_query(&url, &[("start", start.as_str()), ("end", end.as_str()), ("tags", tag)]));
        let x = self.exchange(rb, format!("GET {}", redact_url(&url)), true, log).await?;
        if !x.ok() {
            return Err(datadog_error(&x, "Datadog (event search)"));
        }
        let Some(v) = x.json() else {
            return Err(DeliveryError::retry(format!("Datadog (event search) answered {} with a body that is not JSON", x.status)));
        };
        let events = v.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(events
            .into_iter()
            .find(|e| e.get("tags").and_then(Value::as_array).is_some_and(|t| t.iter().any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(tag))))))
    }

    async fn create_event(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let ctag = call_tag(&p.call_id);
        let searched = self.config.app_key.is_some();
        if searched && let Some(found) = self.find_event(&ctag, log).await? {
            let id = id_of(&found);
            return Ok(Delivered {
                external_id: id.clone(),
                external_url: found.get("url").and_then(Value::as_str).map(str::to_owned),
                evidence: json!({ "event_id": id, "tag": ctag, "found_by": "tag search" }),
                deduplicated: true,
            });
        }
        let mut tags = vec![ctag.clone(), "source:dialnexa".to_owned(), tag(&format!("category:{}", p.category)), tag(&format!("urgency:{}", p.urgency))];
        if let Some(s) = &p.severity {
            tags.push(tag(&format!("severity:{s}")));
        }
        for t in p.tags.iter().take(20) {
            let t = tag(t);
            if !t.is_empty() && !tags.contains(&t) {
                tags.push(t);
            }
        }
        let title = cap(&p.title, 100);
        let body = json!({
            "title": if title.is_empty() { format!("DialNexa call {}", cap(&p.call_id, 60)) } else { title },
            "text": event_text(p),
            "tags": tags,
            "alert_type": alert_type(p.severity.as_deref()),
            "aggregation_key": p.call_id.trim().chars().take(100).collect::<String>(),
            "source_type_name": "my_apps",
            "date_happened": jiff::Timestamp::now().as_second(),
            "priority": "normal",
        });
        let url = format!("{}/api/v1/events", self.config.api_base());
        let x = self.exchange(self.client.post(&url).json(&body), format!("POST {}", redact_url(&url)), false, log).await?;
        if !x.ok() {
            return Err(datadog_error(&x, "Datadog (post event)"));
        }
        let v = x.json().unwrap_or(Value::Null);
        let event = v.get("event").cloned().unwrap_or(Value::Null);
        let id = id_of(&event);
        let url = event.get("url").and_then(Value::as_str).map(str::to_owned);
        Ok(Delivered {
            external_id: id.clone(),
            external_url: url,
            evidence: json!({
                "event_id": id,
                "tag": ctag,
                "dedup_search": if searched { "searched by tag" } else { "skipped: no app_key, a retry after a lost answer can duplicate the event" },
            }),
            deduplicated: false,
        })
    }

    async fn search_monitors(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        if self.config.app_key.is_none() {
            return Err(DeliveryError::fatal(
                "datadog: search_monitors needs app_key (an application key with monitors_read); add it to the integration's config",
            ));
        }
        let Some(query) = monitor_query(p) else {
            return Ok(Delivered {
                evidence: json!({ "monitors": [], "query": null, "note": "the call named no product area, endpoint, error or region to search monitors for" }),
                ..Delivered::default()
            });
        };
        let url = format!("{}/api/v1/monitor/search", self.config.api_base());
        let rb = self.client.get(with_query(&url, &[("query", query.as_str()), ("page", "0"), ("per_page", "20")]));
        let x = self.exchange(rb, format!("GET {}", redact_url(&url)), true, log).await?;
        if !x.ok() {
            return Err(datadog_error(&x, "Datadog (monitor search)"));
        }
        let Some(v) = x.json() else {
            return Err(DeliveryError::retry(format!("Datadog (monitor search) answered {} with a body that is not JSON", x.status)));
        };
        let app = self.config.app_base();
        let monitors: Vec<Value> = v
            .get("monitors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(20)
                    .map(|m| {
                        let id = m.get("id").cloned().unwrap_or(Value::Null);
                        let id_s = id.as_i64().map(|n| n.to_string()).or_else(|| id.as_str().map(str::to_owned)).unwrap_or_default();
                        json!({
                            "id": id,
                            "name": m.get("name").and_then(Value::as_str).map(|s| cap(s, 200)),
                            "status": m.get("status"),
                            "url": format!("{app}/monitors/{id_s}"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut search = reqwest::Url::parse(&format!("{app}/monitors/manage")).map_err(|e| DeliveryError::fatal(format!("datadog: bad site: {e}")))?;
        search.query_pairs_mut().append_pair("q", &query);
        Ok(Delivered {
            external_id: None,
            external_url: Some(search.to_string()),
            evidence: json!({ "monitors": monitors, "query": query }),
            deduplicated: false,
        })
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        match req.action.as_str() {
            "create_event" => self.create_event(&req.payload, log).await,
            "search_monitors" => self.search_monitors(&req.payload, log).await,
            other => Err(DeliveryError::fatal(format!("datadog: unknown action '{}' (expected create_event or search_monitors)", excerpt(other, 40)))),
        }
    }
}

#[async_trait]
impl Connector for Datadog {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Datadog
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
    fn severities_and_tags() {
        assert_eq!(alert_type(Some("SEV1")), "error");
        assert_eq!(alert_type(Some("sev-2")), "error");
        assert_eq!(alert_type(Some("sev3")), "warning");
        assert_eq!(alert_type(Some("sev4")), "info");
        assert_eq!(alert_type(None), "info");
        assert_eq!(tag("Category:Setup Question"), "category:setup_question");
    }

    #[test]
    fn text_fits() {
        let p = HandoffPayload { call_id: "call_1".into(), summary: "s".repeat(10_000), reason: "r".repeat(10_000), ..Default::default() };
        let t = event_text(&p);
        assert!(t.chars().count() <= TEXT_MAX);
        assert!(t.ends_with("%%%"));
    }

    #[test]
    fn app_hosts() {
        let c = |s: &str| Config { api_key: "k".into(), app_key: None, site: Some(s.into()), base_url: None };
        assert_eq!(c("datadoghq.com").app_base(), "https://app.datadoghq.com");
        assert_eq!(c("us3.datadoghq.com").app_base(), "https://us3.datadoghq.com");
        assert_eq!(c("datadoghq.eu").app_base(), "https://app.datadoghq.eu");
    }
}
