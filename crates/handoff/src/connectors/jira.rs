//! Jira Cloud (REST v3): engineering tasks from calls.
//!
//! Action `create_issue`:
//! 1. search `POST {site}/rest/api/3/search/jql` for `project = "<KEY>" AND labels = "call-<id>"`;
//!    a hit is returned as `deduplicated` with its key, and nothing is created;
//! 2. otherwise `POST {site}/rest/api/3/issue` with the summary, issue type, labels
//!    `["call-<id>", "dialnexa", …tags]` and a description in Atlassian Document Format
//!    (headings, paragraphs and lists: summary, symptom, expected, actual, steps, impact, triage,
//!    details and evidence links).
//!
//! The external id is the issue key, the URL `{site}/browse/{key}`. Auth is Basic
//! `email:api_token`.
//!
//! ## Updates (a repeat contact about the same issue)
//! With `HandoffRequest::update` set ([`Connector::updates`] is true for `create_issue`), nothing
//! is created: a comment goes on the earlier call's issue (`ExistingRecord::external_id`, the key).
//! 1. read the issue's comments, `GET /rest/api/3/issue/{key}/comment?orderBy=-created` (pages of
//!    `{startAt,maxResults,total,comments}`); a comment carrying this handoff's marker
//!    `dialnexa-key: <idempotency key>` means an earlier attempt already added it: `deduplicated`;
//! 2. otherwise `POST /rest/api/3/issue/{key}/comment` `{"body": <ADF>}` (201 with the comment):
//!    "Repeat contact", the new call's summary, reason, next step, triage and links, and the marker.
//!
//! External id and URL stay the issue's; evidence `{"updated": true, "key", "comment_id",
//! "comment_url", "repeat_of_call", "marker"}`. An issue that no longer exists (404) is a
//! non-retryable error. The comment list is read directly (not through the search index), so a
//! comment an attempt added is seen by the next one; only a thread of more than 2,000 comments
//! newer than ours could hide it.
//!
//! ## Duplicates
//! Jira takes no idempotency key, so the label `call-<id>` is the dedup key. Jira's search is
//! eventually consistent: an issue created moments ago may not be found yet. The connector
//! therefore returns the key as soon as the create answers, so the delivery layer records it and
//! never creates again; the search only matters when an attempt's answer was lost (a timeout or a
//! reset after Jira acted). If such a retry comes within the index lag, a second issue can be
//! created: a remaining, rare risk (retries are spaced by backoff well beyond the usual lag).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{
    AttemptLog, Connector, Delivered, DeliveryError, Exchange, ExistingRecord, HandoffRequest, Outcome, contains_text, excerpt, redact_url, scrub_outcome,
    send, update_marker,
};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["create_issue"];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://acme.atlassian.net` (`acme` and `acme.atlassian.net` are read too).
    pub site: String,
    /// The Atlassian account that owns the API token.
    pub email: String,
    /// A secret.
    pub api_token: String,
    pub project_key: String,
    /// Default "Task".
    pub issue_type: Option<String>,
    /// Replaces the site for API calls (the browse URL still uses `site`).
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("site", &self.site)
            .field("email", &self.email)
            .field("api_token", &"[redacted]")
            .field("project_key", &self.project_key)
            .field("issue_type", &self.issue_type)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The site as `https://host`, from `acme`, `acme.atlassian.net` or a URL.
fn site_url(site: &str) -> String {
    let s = site.trim().trim_end_matches('/');
    if s.contains("://") {
        s.to_owned()
    } else if s.contains('.') {
        format!("https://{s}")
    } else {
        format!("https://{s}.atlassian.net")
    }
}

fn is_local(u: &reqwest::Url) -> bool {
    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.site.trim().is_empty() {
            return Err("site: required (your Jira Cloud address, like https://acme.atlassian.net)".into());
        }
        match reqwest::Url::parse(&site_url(&self.site)) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            _ => return Err("site: must be your Jira Cloud address over https, like https://acme.atlassian.net".into()),
        }
        let email = self.email.trim();
        if email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace) {
            return Err("email: must be the email of the Atlassian account that owns the API token".into());
        }
        if self.api_token.trim().is_empty() || self.api_token.trim().contains(char::is_whitespace) {
            return Err("api_token: required (an Atlassian API token, without spaces)".into());
        }
        let key = self.project_key.trim();
        let mut chars = key.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err("project_key: must be the project's key in capitals, like OPS".into());
        }
        if let Some(t) = &self.issue_type
            && t.trim().is_empty()
        {
            return Err("issue_type: must not be empty (leave it out for Task)".into());
        }
        if let Some(b) = &self.base_url {
            match reqwest::Url::parse(b.trim()) {
                Ok(u) if u.host_str().is_some() && (u.scheme() == "https" || (u.scheme() == "http" && is_local(&u))) => {}
                _ => return Err("base_url: must be an https URL".into()),
            }
        }
        Ok(())
    }
}

pub struct Jira {
    site: String,
    api: String,
    email: String,
    api_token: String,
    project_key: String,
    issue_type: String,
    client: reqwest::Client,
}

impl Jira {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        let site = site_url(&config.site);
        let api = config.base_url.as_deref().map(|b| b.trim().trim_end_matches('/').to_owned()).unwrap_or_else(|| site.clone());
        Self {
            site,
            api,
            email: config.email.trim().to_owned(),
            api_token: config.api_token.trim().to_owned(),
            project_key: config.project_key.trim().to_owned(),
            issue_type: config.issue_type.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).unwrap_or_else(|| "Task".into()),
            client,
        }
    }

    fn scrub(&self, s: &str) -> String {
        if self.api_token.len() >= 4 { s.replace(&self.api_token, "[redacted]") } else { s.to_owned() }
    }

    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        log: &mut Vec<AttemptLog>,
        what: &str,
    ) -> Result<Exchange, DeliveryError> {
        let url = format!("{}{path}", self.api);
        let mut req =
            self.client.request(method.clone(), &url).basic_auth(&self.email, Some(&self.api_token)).header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        match send(req, format!("{method} {}", redact_url(&url))).await {
            Ok(ex) => {
                let mut l = ex.log.clone();
                l.response_excerpt = l.response_excerpt.map(|e| self.scrub(&e));
                log.push(l);
                Ok(ex)
            }
            Err((e, l)) => {
                log.push(l);
                Err(DeliveryError { message: format!("{what}: {}", e.message), ..e })
            }
        }
    }

    fn error(&self, ex: &Exchange, what: &str) -> DeliveryError {
        let mut e = ex.error(what);
        if e.retry_after.is_none() && ex.status == 429 {
            e.retry_after = rate_limit_reset(&ex.headers);
        }
        e.message = match ex.status {
            401 => format!("{what}: Jira rejected the credentials (401): check email and api_token"),
            403 => format!("{what}: the Jira account may not do this (403) in project {}: check its permissions", self.project_key),
            404 => format!("{what}: Jira answered 404: check site/base_url and project_key ({})", self.scrub(&jira_messages(ex))),
            410 => format!("{what}: Jira answered 410 Gone: this API is retired"),
            429 => format!("{what}: Jira is rate-limiting (429): retry later"),
            300..=399 => format!("{what}: Jira answered a redirect ({}): redirects are not followed; check site/base_url", ex.status),
            s if (400..500).contains(&s) => format!("{what}: Jira refused the request ({s}): {}", self.scrub(&jira_messages(ex))),
            s => format!("{what}: Jira answered {s}: {}", self.scrub(&jira_messages(ex))),
        };
        e
    }

    fn delivered(&self, key: &str, id: Option<&str>, deduplicated: bool, extra: Value) -> Delivered {
        let mut evidence = json!({ "key": key, "project": self.project_key, "browse_url": format!("{}/browse/{key}", self.site) });
        if let Some(id) = id {
            evidence["id"] = json!(id);
        }
        if let (Some(e), Some(x)) = (evidence.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        Delivered { external_id: Some(key.to_owned()), external_url: Some(format!("{}/browse/{key}", self.site)), evidence, deduplicated }
    }

    async fn create_issue(&self, p: &HandoffPayload, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let label = call_label(&p.call_id);
        // 1. Search for an issue of this call.
        let jql = format!("project = \"{}\" AND labels = \"{}\" ORDER BY created ASC", jql_escape(&self.project_key), jql_escape(&label));
        let search = json!({ "jql": jql, "fields": ["summary", "status", "labels", "created"], "maxResults": 10 });
        let ex = self.exchange(reqwest::Method::POST, "/rest/api/3/search/jql", Some(&search), log, "Jira issue search").await?;
        if !ex.ok() {
            return Err(self.error(&ex, "Jira issue search"));
        }
        let Some(found) = ex.json() else {
            return Err(DeliveryError { status: Some(ex.status), ..DeliveryError::fatal("Jira issue search answered without JSON: check site/base_url") });
        };
        let Some(issues) = found["issues"].as_array() else {
            return Err(DeliveryError {
                status: Some(ex.status),
                ..DeliveryError::fatal("Jira issue search answered without an issues list: check site/base_url")
            });
        };
        if let Some(hit) = issues.iter().find(|i| i["key"].as_str().is_some_and(|k| !k.is_empty())) {
            let key = hit["key"].as_str().unwrap_or_default();
            let status = hit["fields"]["status"]["name"].as_str();
            return Ok(self.delivered(
                key,
                hit["id"].as_str(),
                true,
                json!({ "found_by": format!("labels = {label}"), "status": status, "matches": issues.len() }),
            ));
        }

        // 2. Create it.
        let body = json!({ "fields": {
            "project": { "key": self.project_key },
            "summary": summary_line(p),
            "issuetype": { "name": self.issue_type },
            "labels": labels(p),
            "description": description(p),
        }});
        let ex = self.exchange(reqwest::Method::POST, "/rest/api/3/issue", Some(&body), log, "Jira create issue").await?;
        if !ex.ok() {
            return Err(self.error(&ex, "Jira create issue"));
        }
        let created = ex.json().unwrap_or(Value::Null);
        match created["key"].as_str().filter(|k| !k.is_empty()) {
            Some(key) => Ok(self.delivered(key, created["id"].as_str(), false, json!({ "self": created["self"] }))),
            // It was created, but we cannot say which: the retry's search finds it by label.
            None => Err(DeliveryError {
                status: Some(ex.status),
                ..DeliveryError::retry(format!("Jira create issue answered {} without an issue key; the retry looks it up by label {label}", ex.status))
            }),
        }
    }
}

impl Jira {
    /// The error of an update's exchange: a 404 means the issue is gone, not a bad site.
    fn update_error(&self, ex: &Exchange, what: &str, key: &str) -> DeliveryError {
        let mut e = self.error(ex, what);
        if ex.status == 404 {
            e.retryable = false;
            e.message = format!("{what}: the Jira issue {key} no longer exists, or the account cannot see it (404): nothing was added to it");
        }
        e
    }

    /// A comment on `key` carrying `marker`: its id (or "" when it has none).
    async fn find_comment(&self, key: &str, marker: &str, log: &mut Vec<AttemptLog>) -> Result<Option<String>, DeliveryError> {
        const PAGE: u64 = 100;
        const PAGES: u64 = 20;
        let mut start = 0u64;
        for _ in 0..PAGES {
            let path = format!("/rest/api/3/issue/{key}/comment?startAt={start}&maxResults={PAGE}&orderBy=-created");
            let ex = self.exchange(reqwest::Method::GET, &path, None, log, "Jira comment list").await?;
            if !ex.ok() {
                return Err(self.update_error(&ex, "Jira comment list", key));
            }
            let page = ex.json().unwrap_or(Value::Null);
            let Some(comments) = page["comments"].as_array() else {
                return Err(DeliveryError {
                    status: Some(ex.status),
                    ..DeliveryError::fatal("Jira comment list answered without a comments list: check site/base_url")
                });
            };
            if let Some(c) = comments.iter().find(|c| contains_text(&c["body"], marker)) {
                return Ok(Some(id_text(&c["id"]).unwrap_or_default()));
            }
            let read = page["startAt"].as_u64().unwrap_or(start) + comments.len() as u64;
            let total = page["total"].as_u64().unwrap_or(0);
            if comments.is_empty() || read >= total {
                return Ok(None);
            }
            start = read;
        }
        Ok(None)
    }

    /// A comment on the earlier call's issue, once.
    async fn add_comment(&self, req: &HandoffRequest, existing: &ExistingRecord, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let Some(key) = record_key(existing) else {
            return Err(DeliveryError::fatal(format!(
                "Jira update: the record of call {} has no issue key to comment on",
                existing.call_id.chars().take(80).collect::<String>()
            )));
        };
        let marker = update_marker(&req.idempotency_key);
        if let Some(found) = self.find_comment(&key, &marker, log).await? {
            return Ok(self.updated(&key, existing, &found, &marker, true));
        }
        let body = json!({ "body": update_comment(&req.payload, existing, &marker) });
        let ex = self.exchange(reqwest::Method::POST, &format!("/rest/api/3/issue/{key}/comment"), Some(&body), log, "Jira add comment").await?;
        if !ex.ok() {
            return Err(self.update_error(&ex, "Jira add comment", &key));
        }
        // Added, even if the answer has no id (a retry would find it by the marker).
        let id = ex.json().and_then(|c| id_text(&c["id"])).unwrap_or_default();
        Ok(self.updated(&key, existing, &id, &marker, false))
    }

    fn updated(&self, key: &str, existing: &ExistingRecord, comment_id: &str, marker: &str, deduplicated: bool) -> Delivered {
        let browse = format!("{}/browse/{key}", self.site);
        let comment_id = (!comment_id.is_empty()).then(|| comment_id.to_owned());
        let mut evidence = json!({
            "updated": true,
            "key": key,
            "browse_url": browse,
            "comment_id": comment_id,
            "comment_url": comment_id.as_ref().map(|id| format!("{browse}?focusedCommentId={id}")),
            "repeat_of_call": existing.call_id,
            "marker": marker,
        });
        if deduplicated {
            evidence["found_by"] = json!("marker");
        }
        Delivered {
            external_id: Some(if existing.external_id.trim().is_empty() { key.to_owned() } else { existing.external_id.trim().to_owned() }),
            external_url: existing.external_url.clone().filter(|u| !u.trim().is_empty()).or(Some(browse)),
            evidence,
            deduplicated,
        }
    }
}

/// The issue an update comments on: its key (or id), safe in a path.
fn record_key(existing: &ExistingRecord) -> Option<String> {
    let safe = |k: &str| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    [Some(existing.external_id.as_str()), existing.evidence["key"].as_str(), existing.evidence["id"].as_str()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|k| safe(k))
        .map(str::to_owned)
}

/// An id given as a string or a number.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `X-RateLimit-Reset` (ISO 8601) as a wait, when `Retry-After` is missing.
fn rate_limit_reset(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?;
    let when: jiff::Timestamp = v.trim().parse().ok()?;
    let secs = when.as_second() - jiff::Timestamp::now().as_second();
    Some(std::time::Duration::from_secs(secs.max(0) as u64))
}

/// Jira's `{"errorMessages":[…],"errors":{field: msg}}` as one line.
fn jira_messages(ex: &Exchange) -> String {
    let Some(v) = ex.json() else {
        return excerpt(ex.body.trim(), 200);
    };
    let mut parts: Vec<String> = v["errorMessages"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    if let Some(errors) = v["errors"].as_object() {
        parts.extend(errors.iter().map(|(k, m)| format!("{k}: {}", m.as_str().map(str::to_owned).unwrap_or_else(|| m.to_string()))));
    }
    if parts.is_empty() { excerpt(ex.body.trim(), 200) } else { excerpt(&parts.join("; "), 300) }
}

fn jql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A Jira label: no spaces, at most 255 characters.
fn label_safe(s: &str) -> String {
    s.trim().chars().map(|c| if c.is_whitespace() { '-' } else { c }).take(255).collect()
}

/// The dedup label of a call.
pub fn call_label(call_id: &str) -> String {
    label_safe(&format!("call-{}", call_id.trim()))
}

fn labels(p: &HandoffPayload) -> Vec<String> {
    let mut out = vec![call_label(&p.call_id), "dialnexa".to_owned()];
    for t in &p.tags {
        let l = label_safe(t);
        if !l.is_empty() && !out.contains(&l) && out.len() < 20 {
            out.push(l);
        }
    }
    out
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

/// One line, at most 255 characters.
fn summary_line(p: &HandoffPayload) -> String {
    let t = p.title.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() { format!("Call {}", p.call_id) } else { cut(&t, 255) }
}

// ---------------------------------------------------------------- ADF

fn text(s: &str) -> Value {
    json!({ "type": "text", "text": s })
}
fn strong(s: &str) -> Value {
    json!({ "type": "text", "text": s, "marks": [{ "type": "strong" }] })
}
fn code(s: &str) -> Value {
    json!({ "type": "text", "text": s, "marks": [{ "type": "code" }] })
}
fn is_url(s: &str) -> bool {
    let s = s.trim();
    (s.starts_with("https://") || s.starts_with("http://")) && !s.contains(char::is_whitespace)
}
/// A link when `href` is an http(s) URL, else plain text.
fn link(label: &str, href: &str) -> Value {
    if is_url(href) { json!({ "type": "text", "text": label, "marks": [{ "type": "link", "attrs": { "href": href.trim() } }] }) } else { text(href) }
}
fn para(nodes: Vec<Value>) -> Value {
    json!({ "type": "paragraph", "content": nodes })
}
fn heading(level: u8, s: &str) -> Value {
    json!({ "type": "heading", "attrs": { "level": level }, "content": [text(s)] })
}
fn list(kind: &str, items: Vec<Vec<Value>>) -> Value {
    let items: Vec<Value> = items.into_iter().map(|nodes| json!({ "type": "listItem", "content": [para(nodes)] })).collect();
    json!({ "type": kind, "content": items })
}
fn labelled(label: &str, value: &str) -> Vec<Value> {
    vec![strong(&format!("{label}: ")), text(&cut(value, 2000))]
}
fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Steps as separate items when the caller gave several ("1. …\n2. …").
fn split_steps(steps: &str) -> Vec<String> {
    steps
        .lines()
        .map(|l| l.trim().trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*' | '•')).trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Urgency, category, owner, reason, next step, affected record and caller, as list items.
fn triage(p: &HandoffPayload) -> Vec<Vec<Value>> {
    let mut triage = Vec::new();
    let mut urgency = if p.urgency.trim().is_empty() { "unspecified".to_owned() } else { p.urgency.trim().to_owned() };
    if let Some(s) = present(&p.severity) {
        urgency.push_str(&format!(" (severity {s})"));
    }
    triage.push(labelled("Urgency", &urgency));
    if !p.category.trim().is_empty() {
        triage.push(labelled("Category", &p.category));
    }
    triage.push(labelled("Owner", present(&p.owner).unwrap_or("unassigned")));
    if !p.reason.trim().is_empty() {
        triage.push(labelled("Reason", &p.reason));
    }
    if !p.next_step.trim().is_empty() {
        triage.push(labelled("Next step", &p.next_step));
    }
    if let Some(a) = present(&p.affected) {
        triage.push(labelled("Affected", a));
    }
    let c = &p.caller;
    let caller: Vec<&str> = [&c.name, &c.email, &c.phone, &c.customer, &c.account].into_iter().filter_map(present).collect();
    triage.push(labelled("Caller", &if caller.is_empty() { "unknown".to_owned() } else { caller.join(", ") }));
    triage
}

/// Links to the call's evidence, as list items.
fn evidence_items(p: &HandoffPayload) -> Vec<Vec<Value>> {
    let mut evidence = Vec::new();
    if !p.links.call.trim().is_empty() {
        evidence.push(vec![link("Call detail", &p.links.call)]);
    }
    if !p.links.transcript.trim().is_empty() {
        evidence.push(vec![link("Transcript", &p.links.transcript)]);
    }
    if let Some(r) = present(&p.links.recording) {
        evidence.push(vec![link("Recording", r)]);
    }
    for (name, url) in &p.links.evidence {
        if !url.trim().is_empty() && !name.trim().is_empty() {
            evidence.push(vec![strong(&format!("{}: ", name.trim())), link(url.trim(), url)]);
        }
    }
    for url in p.urls.iter().filter(|u| !u.trim().is_empty()).take(10) {
        evidence.push(vec![strong("Mentioned by the caller: "), link(url.trim(), url)]);
    }
    evidence
}

/// The comment a repeat contact adds to the earlier call's issue, in ADF: what happened, the
/// new call's summary, triage and links, and the marker a retry looks for.
pub fn update_comment(p: &HandoffPayload, existing: &ExistingRecord, marker: &str) -> Value {
    let mut intro = vec![strong("Repeat contact: ")];
    let new_call = if p.call_id.trim().is_empty() { "a new call".to_owned() } else { format!("call {}", p.call_id.trim()) };
    let earlier = if existing.call_id.trim().is_empty() { "the earlier call".to_owned() } else { format!("call {}", existing.call_id.trim()) };
    intro.push(text(&format!("{new_call} is about the same issue as {earlier}, which created this issue.")));
    let mut content = vec![para(intro)];
    if !p.summary.trim().is_empty() {
        content.push(para(vec![text(&cut(&p.summary, 4000))]));
    }
    content.push(list("bulletList", triage(p)));
    let evidence = evidence_items(p);
    if !evidence.is_empty() {
        content.push(para(vec![strong("Links")]));
        content.push(list("bulletList", evidence));
    }
    let mut footer = vec![text("Added by DialNexa from call ")];
    if !p.call_id.trim().is_empty() {
        footer.push(code(p.call_id.trim()));
        footer.push(text(" · "));
    }
    footer.push(code(marker));
    content.push(para(footer));
    json!({ "type": "doc", "version": 1, "content": content })
}

/// The issue description in Atlassian Document Format.
pub fn description(p: &HandoffPayload) -> Value {
    let mut content = Vec::new();
    if !p.summary.trim().is_empty() {
        content.push(heading(2, "Summary"));
        content.push(para(vec![text(&cut(&p.summary, 4000))]));
    }
    for (title, value) in [("Symptom", &p.symptom), ("Expected behaviour", &p.expected), ("Actual behaviour", &p.actual)] {
        if let Some(v) = present(value) {
            content.push(heading(3, title));
            content.push(para(vec![text(&cut(v, 4000))]));
        }
    }
    if let Some(steps) = present(&p.steps) {
        content.push(heading(3, "Steps to reproduce"));
        let items = split_steps(steps);
        if items.len() > 1 {
            content.push(list("orderedList", items.iter().map(|s| vec![text(&cut(s, 1000))]).collect()));
        } else {
            content.push(para(vec![text(&cut(steps, 4000))]));
        }
    }
    if let Some(v) = present(&p.impact) {
        content.push(heading(3, "Impact"));
        content.push(para(vec![text(&cut(v, 4000))]));
    }

    content.push(heading(2, "Triage"));
    content.push(list("bulletList", triage(p)));

    let details: Vec<Vec<Value>> = p
        .fields
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.trim().to_owned(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (!v.is_empty() && !k.trim().is_empty()).then(|| labelled(k.trim(), &cut(&v, 300)))
        })
        .take(25)
        .collect();
    if !details.is_empty() {
        content.push(heading(2, "Details"));
        content.push(list("bulletList", details));
    }

    let evidence = evidence_items(p);
    if !evidence.is_empty() {
        content.push(heading(2, "Evidence"));
        content.push(list("bulletList", evidence));
    }
    let mut footer = vec![text("Created by DialNexa from call ")];
    if !p.call_id.trim().is_empty() {
        footer.push(code(p.call_id.trim()));
    }
    content.push(para(footer));
    json!({ "type": "doc", "version": 1, "content": content })
}

#[async_trait]
impl Connector for Jira {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Jira
    }
    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }
    fn updates(&self, action: &str) -> bool {
        action == "create_issue"
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome {
        let mut log = Vec::new();
        let result = match (req.action.as_str(), &req.update) {
            ("create_issue", Some(existing)) => self.add_comment(req, existing, &mut log).await,
            ("create_issue", None) => self.create_issue(&req.payload, &mut log).await,
            (other, _) => Err(DeliveryError::fatal(format!("jira has no action '{}' (expected create_issue)", other.chars().take(60).collect::<String>()))),
        };
        scrub_outcome(Outcome { result, log }, |t| self.scrub(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_read_in_every_form() {
        assert_eq!(site_url("acme"), "https://acme.atlassian.net");
        assert_eq!(site_url("acme.atlassian.net/"), "https://acme.atlassian.net");
        assert_eq!(site_url("https://acme.atlassian.net"), "https://acme.atlassian.net");
    }

    #[test]
    fn adf_has_no_empty_text() {
        let p = HandoffPayload { call_id: "c1".into(), steps: Some("1. open\n2. click\n".into()), ..Default::default() };
        let d = description(&p);
        fn walk(v: &Value) {
            if v["type"] == "text" {
                assert!(!v["text"].as_str().unwrap_or_default().is_empty(), "{v}");
            }
            for c in v["content"].as_array().into_iter().flatten() {
                walk(c);
            }
        }
        walk(&d);
        assert!(d.to_string().contains("orderedList"));
    }
}
