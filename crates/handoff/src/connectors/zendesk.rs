//! Zendesk Support: customer-facing support records from calls.
//!
//! Action `create_ticket`:
//! 1. list `GET /api/v2/tickets?external_id=<call id>`; a ticket of this call is returned as
//!    `deduplicated` and nothing is created;
//! 2. otherwise `POST /api/v2/tickets` with `Idempotency-Key: <idempotency key>` and
//!    `{"ticket":{subject, comment:{body, public:false}, requester?, external_id: <call id>, tags,
//!    priority}}`. A replay (`x-idempotency-lookup: hit`) is reported as `deduplicated`.
//!
//! The external id is the ticket id and the URL the agent UI (`https://{sub}.zendesk.com/agent/tickets/{id}`).
//! Auth is Basic `{email}/token:{api_token}`.
//!
//! Options (`payload.options`): `public` (bool, default false: the comment is an internal note),
//! `type` (`problem|incident|question|task`).
//!
//! ## Duplicates
//! Two guards: the `external_id` listing (not a search index, so no lag) and Zendesk's
//! idempotency key (kept about 2 h). A retry after a lost answer finds the ticket by either.
//! If the payload changed between attempts Zendesk answers `IdempotentRequestError`; the connector
//! then lists by `external_id` again and reports the existing ticket.
//!
//! ## Updates (a repeat contact about the same issue)
//! With `HandoffRequest::update` set ([`Connector::updates`] is true for `create_ticket`), nothing
//! is created: an internal note goes on the earlier call's ticket (`ExistingRecord::external_id`).
//! 1. read the ticket's comments, `GET /api/v2/tickets/{id}/comments?sort_order=desc` (pages
//!    followed by `next_page` or `links.next`); a comment carrying this handoff's marker
//!    `dialnexa-key: <idempotency key>` means an earlier attempt already added it: `deduplicated`;
//! 2. otherwise `PUT /api/v2/tickets/{id}` with `{"ticket":{"comment":{"body","public":false}}}`
//!    (200 with the ticket and the audit whose `Comment` event is the new comment): "Repeat
//!    contact", the new call's summary, reason, next step, triage and links, and the marker.
//!
//! Zendesk's idempotency key covers ticket creation only, so the marker is the guard here; the
//! comment list is read directly (no search lag). External id and URL stay the ticket's;
//! evidence `{"updated": true, "ticket_id", "comment_id", "repeat_of_call", "marker"}`. A ticket
//! that no longer exists (404) and a closed ticket (422) are non-retryable errors.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::connector::{
    AttemptLog, Connector, Delivered, DeliveryError, Exchange, ExistingRecord, HandoffRequest, Outcome, contains_text, excerpt, redact_url, scrub_outcome,
    send, update_marker,
};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["create_ticket"];

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `acme` for `https://acme.zendesk.com`.
    pub subdomain: Option<String>,
    /// The full address instead of `subdomain` (`https://support.acme.com`, a host-mapped brand).
    pub site: Option<String>,
    /// The agent whose API token this is.
    pub email: String,
    /// A secret.
    pub api_token: String,
    /// Replaces the site for API calls (`/api/v2` is added); the agent URL still uses the site.
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("subdomain", &self.subdomain)
            .field("site", &self.site)
            .field("email", &self.email)
            .field("api_token", &"[redacted]")
            .field("base_url", &self.base_url)
            .finish()
    }
}

fn is_local(u: &reqwest::Url) -> bool {
    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        match (present(&self.subdomain), present(&self.site)) {
            (Some(_), Some(_)) => return Err("subdomain: give subdomain or site, not both".into()),
            (None, None) if present(&self.base_url).is_none() => {
                return Err("subdomain: required (acme for https://acme.zendesk.com), or give site".into());
            }
            (Some(sub), None) => {
                if !sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || sub.starts_with('-') {
                    return Err("subdomain: just the first part of the address, like acme for https://acme.zendesk.com".into());
                }
            }
            (None, Some(site)) => match reqwest::Url::parse(site) {
                Ok(u) if u.host_str().is_some() && (u.scheme() == "https" || (u.scheme() == "http" && is_local(&u))) => {}
                _ => return Err("site: must be an https URL like https://acme.zendesk.com".into()),
            },
            (None, None) => {}
        }
        let email = self.email.trim();
        if email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace) {
            return Err("email: must be the email of the agent who owns the API token".into());
        }
        if self.api_token.trim().is_empty() || self.api_token.trim().contains(char::is_whitespace) {
            return Err("api_token: required (a Zendesk API token, without spaces)".into());
        }
        if let Some(b) = present(&self.base_url) {
            match reqwest::Url::parse(b) {
                Ok(u) if u.host_str().is_some() && (u.scheme() == "https" || (u.scheme() == "http" && is_local(&u))) => {}
                _ => return Err("base_url: must be an https URL".into()),
            }
        }
        Ok(())
    }
}

pub struct Zendesk {
    /// `https://acme.zendesk.com`: for agent URLs.
    site: String,
    /// `…/api/v2`.
    api: String,
    user: String,
    api_token: String,
    client: reqwest::Client,
}

impl Zendesk {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        let trim = |s: &str| s.trim().trim_end_matches('/').to_owned();
        let base = present(&config.base_url).map(|b| trim(b).trim_end_matches("/api/v2").to_owned());
        let site = match (present(&config.subdomain), present(&config.site)) {
            (Some(sub), _) => format!("https://{}.zendesk.com", sub.to_ascii_lowercase()),
            (None, Some(site)) => trim(site),
            (None, None) => base.clone().unwrap_or_default(),
        };
        let api = format!("{}/api/v2", base.unwrap_or_else(|| site.clone()));
        Self { site, api, user: format!("{}/token", config.email.trim()), api_token: config.api_token.trim().to_owned(), client }
    }

    fn scrub(&self, s: &str) -> String {
        if self.api_token.len() >= 4 { s.replace(&self.api_token, "[redacted]") } else { s.to_owned() }
    }

    async fn exchange(&self, req: reqwest::RequestBuilder, shown: String, log: &mut Vec<AttemptLog>, what: &str) -> Result<Exchange, DeliveryError> {
        let req = req.basic_auth(&self.user, Some(&self.api_token)).header(reqwest::header::ACCEPT, "application/json");
        match send(req, shown).await {
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
        let detail = self.scrub(&zendesk_messages(ex));
        e.message = match ex.status {
            401 => format!("{what}: Zendesk rejected the credentials (401): check email and api_token, and that token access is enabled"),
            403 => format!("{what}: the Zendesk agent may not do this (403): check its role ({detail})"),
            404 => format!("{what}: Zendesk answered 404: check subdomain/site/base_url ({detail})"),
            422 => format!("{what}: Zendesk refused the ticket (422): {detail}"),
            429 => format!("{what}: Zendesk is rate-limiting (429): retry later"),
            300..=399 => format!("{what}: Zendesk answered a redirect ({}): redirects are not followed; check subdomain/site", ex.status),
            s => format!("{what}: Zendesk answered {s}: {detail}"),
        };
        e
    }

    fn delivered(&self, ticket: &Value, deduplicated: bool, found_by: &str) -> Option<Delivered> {
        let id = match &ticket["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.is_empty() => s.clone(),
            _ => return None,
        };
        let url = format!("{}/agent/tickets/{id}", self.site);
        Some(Delivered {
            external_id: Some(id.clone()),
            external_url: Some(url),
            evidence: json!({
                "ticket_id": id,
                "status": ticket["status"],
                "api_url": ticket["url"],
                "found_by": found_by,
            }),
            deduplicated,
        })
    }

    /// The tickets of this call, by `external_id`.
    async fn find(&self, call_id: &str, log: &mut Vec<AttemptLog>) -> Result<Option<Delivered>, DeliveryError> {
        let base = format!("{}/tickets", self.api);
        let Ok(mut url) = reqwest::Url::parse(&base) else {
            return Err(DeliveryError::fatal("Zendesk: the API address is not a URL: check subdomain/site/base_url"));
        };
        url.query_pairs_mut().append_pair("external_id", call_id);
        let ex = self.exchange(self.client.get(url), format!("GET {}", redact_url(&base)), log, "Zendesk ticket lookup").await?;
        if !ex.ok() {
            return Err(self.error(&ex, "Zendesk ticket lookup"));
        }
        let v = ex.json().unwrap_or(Value::Null);
        let Some(list) = v["tickets"].as_array().or_else(|| v["results"].as_array()) else {
            return Err(DeliveryError {
                status: Some(ex.status),
                ..DeliveryError::fatal("Zendesk ticket lookup answered without a tickets list: check subdomain/site/base_url")
            });
        };
        // `external_id` is not unique and a server that ignored the filter must not make us skip: check it.
        let mut ours: Vec<&Value> = list.iter().filter(|t| t["external_id"].as_str() == Some(call_id) && t["status"].as_str() != Some("deleted")).collect();
        ours.sort_by_key(|t| t["id"].as_u64().unwrap_or(u64::MAX));
        Ok(ours.first().and_then(|t| self.delivered(t, true, "external_id")).map(|mut d| {
            d.evidence["matches"] = json!(ours.len());
            d
        }))
    }

    async fn create_ticket(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let p = &req.payload;
        if let Some(found) = self.find(&p.call_id, log).await? {
            return Ok(found);
        }
        let url = format!("{}/tickets", self.api);
        let body = json!({ "ticket": ticket(p) });
        let key = idempotency_key(&req.idempotency_key);
        let builder = self.client.post(&url).header("Idempotency-Key", key).json(&body);
        let ex = self.exchange(builder, format!("POST {}", redact_url(&url)), log, "Zendesk create ticket").await?;
        if ex.ok() {
            let replay = ex.headers.get("x-idempotency-lookup").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("hit"));
            let v = ex.json().unwrap_or(Value::Null);
            return match self.delivered(&v["ticket"], replay, if replay { "idempotency_key" } else { "created" }) {
                Some(d) => Ok(d),
                None => Err(DeliveryError {
                    status: Some(ex.status),
                    ..DeliveryError::retry(format!("Zendesk create ticket answered {} without a ticket id; the retry looks it up by external_id", ex.status))
                }),
            };
        }
        let v = ex.json();
        let code = v.as_ref().and_then(|v| v["error"].as_str()).unwrap_or_default();
        if ex.status == 400 && code == "IdempotentRequestError" {
            // The key was used with another body: an earlier attempt got through. Find its ticket.
            if let Some(found) = self.find(&p.call_id, log).await? {
                return Ok(found);
            }
            return Err(DeliveryError {
                status: Some(400),
                ..DeliveryError::fatal(
                    "Zendesk create ticket: the idempotency key was already used with a different ticket body, and no ticket of this call was found",
                )
            });
        }
        let mut e = self.error(&ex, "Zendesk create ticket");
        if ex.status == 409 {
            // The same key is still being processed: ask again shortly.
            e.retryable = true;
            e.message = "Zendesk create ticket: a request with the same idempotency key is in progress (409): retry".into();
        }
        Err(e)
    }
}

impl Zendesk {
    /// The error of an update's exchange: a 404 means the ticket is gone, a 422 that it takes no
    /// more comments (closed, or at Zendesk's 5,000-comment limit).
    fn update_error(&self, ex: &Exchange, what: &str, id: &str) -> DeliveryError {
        let mut e = self.error(ex, what);
        let detail = self.scrub(&zendesk_messages(ex));
        match ex.status {
            404 => {
                e.retryable = false;
                e.message = format!("{what}: the Zendesk ticket {id} no longer exists, or the agent cannot see it (404): nothing was added to it");
            }
            422 => e.message = format!("{what}: Zendesk refused the comment on ticket {id} (422; a closed ticket takes no comments): {detail}"),
            409 => {
                // Another update of the ticket at the same moment: ask again shortly.
                e.retryable = true;
                e.message = format!("{what}: ticket {id} was being updated by someone else (409): retry");
            }
            _ => {}
        }
        e
    }

    /// A comment of ticket `id` carrying `marker`: its id (or "" when it has none).
    async fn find_comment(&self, id: &str, marker: &str, log: &mut Vec<AttemptLog>) -> Result<Option<String>, DeliveryError> {
        const PAGES: usize = 20;
        let first = format!("{}/tickets/{id}/comments", self.api);
        let Ok(mut url) = reqwest::Url::parse(&first) else {
            return Err(DeliveryError::fatal("Zendesk: the API address is not a URL: check subdomain/site/base_url"));
        };
        url.query_pairs_mut().append_pair("sort_order", "desc").append_pair("per_page", "100");
        for _ in 0..PAGES {
            let shown = format!("GET {}", redact_url(url.as_str()));
            let ex = self.exchange(self.client.get(url.clone()), shown, log, "Zendesk comment list").await?;
            if !ex.ok() {
                return Err(self.update_error(&ex, "Zendesk comment list", id));
            }
            let page = ex.json().unwrap_or(Value::Null);
            let Some(comments) = page["comments"].as_array() else {
                return Err(DeliveryError {
                    status: Some(ex.status),
                    ..DeliveryError::fatal("Zendesk comment list answered without a comments list: check subdomain/site/base_url")
                });
            };
            let carries = |c: &Value| ["body", "plain_body", "html_body"].iter().any(|k| contains_text(&c[*k], marker));
            if let Some(c) = comments.iter().find(|c| carries(c)) {
                return Ok(Some(id_text(&c["id"]).unwrap_or_default()));
            }
            // Offset pages (`next_page`) or cursor pages (`meta.has_more` + `links.next`).
            let next =
                page["next_page"].as_str().or_else(|| page["meta"]["has_more"].as_bool().unwrap_or(false).then(|| page["links"]["next"].as_str()).flatten());
            // The next page's query on our own API address: a `base_url` proxy gets Zendesk's
            // host in `next_page`, and credentials never go to a host the answer names.
            match next.and_then(|n| reqwest::Url::parse(n).ok()).and_then(|n| n.query().map(str::to_owned)) {
                Some(q) if !comments.is_empty() => url.set_query(Some(&q)),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// An internal note on the earlier call's ticket, once.
    async fn add_comment(&self, req: &HandoffRequest, existing: &ExistingRecord, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        let Some(id) = ticket_id(existing) else {
            return Err(DeliveryError::fatal(format!(
                "Zendesk update: the record of call {} has no ticket id to comment on",
                existing.call_id.chars().take(80).collect::<String>()
            )));
        };
        let marker = update_marker(&req.idempotency_key);
        if let Some(found) = self.find_comment(&id, &marker, log).await? {
            return Ok(self.updated(&id, existing, &found, &marker, true));
        }
        let url = format!("{}/tickets/{id}", self.api);
        let body = json!({ "ticket": { "comment": { "body": update_comment(&req.payload, existing, &marker), "public": false } } });
        let ex = self.exchange(self.client.put(&url).json(&body), format!("PUT {}", redact_url(&url)), log, "Zendesk add comment").await?;
        if !ex.ok() {
            return Err(self.update_error(&ex, "Zendesk add comment", &id));
        }
        // The new comment is the audit's `Comment` event. Added, even if it is missing.
        let v = ex.json().unwrap_or(Value::Null);
        let comment_id = v["audit"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["type"].as_str() == Some("Comment"))
            .and_then(|e| id_text(&e["id"]))
            .unwrap_or_default();
        Ok(self.updated(&id, existing, &comment_id, &marker, false))
    }

    fn updated(&self, id: &str, existing: &ExistingRecord, comment_id: &str, marker: &str, deduplicated: bool) -> Delivered {
        let mut evidence = json!({
            "updated": true,
            "ticket_id": id,
            "comment_id": (!comment_id.is_empty()).then_some(comment_id),
            "public": false,
            "repeat_of_call": existing.call_id,
            "marker": marker,
        });
        if deduplicated {
            evidence["found_by"] = json!("marker");
        }
        Delivered {
            external_id: Some(if existing.external_id.trim().is_empty() { id.to_owned() } else { existing.external_id.trim().to_owned() }),
            external_url: existing.external_url.clone().filter(|u| !u.trim().is_empty()).or_else(|| Some(format!("{}/agent/tickets/{id}", self.site))),
            evidence,
            deduplicated,
        }
    }
}

/// The ticket an update comments on: its numeric id.
fn ticket_id(existing: &ExistingRecord) -> Option<String> {
    let from_evidence = id_text(&existing.evidence["ticket_id"]);
    [Some(existing.external_id.trim().to_owned()), from_evidence]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit()))
}

/// An id given as a number or a string.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The internal note a repeat contact adds to the earlier call's ticket, in plain text.
pub fn update_comment(p: &HandoffPayload, existing: &ExistingRecord, marker: &str) -> String {
    let new_call = if p.call_id.trim().is_empty() { "A new call".to_owned() } else { format!("Call {}", p.call_id.trim()) };
    let earlier = if existing.call_id.trim().is_empty() { "the earlier call".to_owned() } else { format!("call {}", existing.call_id.trim()) };
    let mut out = vec![format!("Repeat contact: {new_call} is about the same issue as {earlier}, which created this ticket.")];
    if !p.summary.trim().is_empty() {
        out.push(cut(&p.summary, 4000));
    }
    out.push(triage(p).join("\n"));
    let links = links(p);
    if !links.is_empty() {
        out.push(format!("Links:\n{}", links.join("\n")));
    }
    out.push(format!("DialNexa call {} · {marker}", p.call_id));
    out.join("\n\n")
}

/// Zendesk's error bodies (`{"error","description","details"}`, or text) as one line.
fn zendesk_messages(ex: &Exchange) -> String {
    let Some(v) = ex.json() else {
        return excerpt(ex.body.trim(), 200);
    };
    let mut parts = Vec::new();
    match &v["error"] {
        Value::String(s) => parts.push(s.clone()),
        Value::Object(o) => parts.extend(["title", "message"].iter().filter_map(|k| o.get(*k).and_then(Value::as_str)).map(str::to_owned)),
        _ => {}
    }
    if let Some(d) = v["description"].as_str() {
        parts.push(d.to_owned());
    }
    if let Some(details) = v["details"].as_object() {
        for (field, errs) in details {
            let msgs: Vec<String> = errs.as_array().into_iter().flatten().filter_map(|e| e["description"].as_str()).map(str::to_owned).collect();
            parts.push(if msgs.is_empty() { field.clone() } else { format!("{field}: {}", msgs.join(", ")) });
        }
    }
    if parts.is_empty() { excerpt(ex.body.trim(), 200) } else { excerpt(&parts.join("; "), 300) }
}

/// At most 255 characters; a longer key is hashed.
fn idempotency_key(key: &str) -> String {
    if key.len() <= 255 && key.is_ascii() {
        key.to_owned()
    } else {
        let digest = sha2::Sha256::digest(key.as_bytes());
        format!("sha256-{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
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

/// Zendesk priority from DialNexa urgency.
pub fn priority(urgency: &str) -> &'static str {
    match urgency.trim().to_ascii_lowercase().as_str() {
        "low" => "low",
        "high" => "high",
        "urgent" | "critical" => "urgent",
        _ => "normal",
    }
}

/// A Zendesk tag: lower case, no spaces.
fn tag(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | ':' | '?') { c } else { '_' })
        .take(80)
        .collect::<String>()
        .trim_matches('_')
        .to_owned()
}

fn tags(p: &HandoffPayload) -> Vec<String> {
    let mut out = vec!["dialnexa".to_owned(), tag(&format!("call-{}", p.call_id))];
    for t in p.tags.iter().chain(std::iter::once(&p.category)) {
        let t = tag(t);
        if !t.is_empty() && !out.contains(&t) && out.len() < 20 {
            out.push(t);
        }
    }
    out
}

/// The ticket body (deterministic: the same payload gives the same body, as idempotency needs).
pub fn ticket(p: &HandoffPayload) -> Value {
    let subject = p.title.split_whitespace().collect::<Vec<_>>().join(" ");
    let subject = if subject.is_empty() { format!("Call {}", p.call_id) } else { cut(&subject, 150) };
    let public = p.options.get("public").and_then(Value::as_bool).unwrap_or(false);
    let mut t = json!({
        "subject": subject,
        "comment": { "body": comment(p), "public": public },
        "external_id": p.call_id,
        "tags": tags(p),
        "priority": priority(&p.urgency),
    });
    if let Some(email) = present(&p.caller.email).filter(|e| e.contains('@')) {
        let name = present(&p.caller.name).map(str::to_owned).unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
        t["requester"] = json!({ "name": name, "email": email });
    }
    if let Some(kind) = p.options.get("type").and_then(Value::as_str).filter(|k| matches!(*k, "problem" | "incident" | "question" | "task")) {
        t["type"] = json!(kind);
    }
    t
}

/// Urgency, category, owner, reason, next step, caller and affected record, one per line.
fn triage(p: &HandoffPayload) -> Vec<String> {
    let mut triage = Vec::new();
    let mut urgency = if p.urgency.trim().is_empty() { "unspecified".to_owned() } else { p.urgency.trim().to_owned() };
    if let Some(s) = present(&p.severity) {
        urgency.push_str(&format!(" (severity {s})"));
    }
    triage.push(format!("Urgency: {urgency}"));
    if !p.category.trim().is_empty() {
        triage.push(format!("Category: {}", p.category.trim()));
    }
    triage.push(format!("Owner: {}", present(&p.owner).unwrap_or("unassigned")));
    if !p.reason.trim().is_empty() {
        triage.push(format!("Reason: {}", cut(&p.reason, 1000)));
    }
    if !p.next_step.trim().is_empty() {
        triage.push(format!("Next step: {}", cut(&p.next_step, 1000)));
    }
    let c = &p.caller;
    let caller: Vec<&str> = [&c.name, &c.email, &c.phone, &c.customer, &c.account].into_iter().filter_map(present).collect();
    triage.push(format!("Caller: {}", if caller.is_empty() { "unknown".to_owned() } else { caller.join(", ") }));
    if let Some(a) = present(&p.affected) {
        triage.push(format!("Affected: {a}"));
    }
    triage
}

/// Links to the call's evidence, one `- label: url` line each.
fn links(p: &HandoffPayload) -> Vec<String> {
    let mut links = Vec::new();
    if !p.links.call.trim().is_empty() {
        links.push(format!("- Call detail: {}", p.links.call.trim()));
    }
    if !p.links.transcript.trim().is_empty() {
        links.push(format!("- Transcript: {}", p.links.transcript.trim()));
    }
    if let Some(r) = present(&p.links.recording) {
        links.push(format!("- Recording: {r}"));
    }
    for (name, url) in &p.links.evidence {
        links.push(format!("- {}: {}", name.trim(), url.trim()));
    }
    for url in p.urls.iter().filter(|u| !u.trim().is_empty()).take(10) {
        links.push(format!("- Mentioned by the caller: {}", url.trim()));
    }
    links
}

/// The comment: summary first, then triage and links, in plain text.
pub fn comment(p: &HandoffPayload) -> String {
    let mut out = Vec::new();
    if !p.summary.trim().is_empty() {
        out.push(cut(&p.summary, 4000));
    }
    let mut facts = Vec::new();
    for (label, value) in [("Symptom", &p.symptom), ("Expected", &p.expected), ("Actual", &p.actual), ("Steps", &p.steps), ("Impact", &p.impact)] {
        if let Some(v) = present(value) {
            facts.push(format!("{label}: {}", cut(v, 2000)));
        }
    }
    if !facts.is_empty() {
        out.push(facts.join("\n"));
    }

    out.push(triage(p).join("\n"));

    let details: Vec<String> = p
        .fields
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.trim().to_owned(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (!v.is_empty()).then(|| format!("- {}: {}", k.trim(), cut(&v, 300)))
        })
        .take(25)
        .collect();
    if !details.is_empty() {
        out.push(format!("Details:\n{}", details.join("\n")));
    }

    let links = links(p);
    if !links.is_empty() {
        out.push(format!("Links:\n{}", links.join("\n")));
    }
    out.push(format!("DialNexa call {}", p.call_id));
    out.join("\n\n")
}

#[async_trait]
impl Connector for Zendesk {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Zendesk
    }
    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }
    fn updates(&self, action: &str) -> bool {
        action == "create_ticket"
    }
    async fn deliver(&self, req: &HandoffRequest) -> Outcome {
        let mut log = Vec::new();
        let result = match (req.action.as_str(), &req.update) {
            ("create_ticket", Some(existing)) => self.add_comment(req, existing, &mut log).await,
            ("create_ticket", None) => self.create_ticket(req, &mut log).await,
            (other, _) => Err(DeliveryError::fatal(format!("zendesk has no action '{}' (expected create_ticket)", other.chars().take(60).collect::<String>()))),
        };
        scrub_outcome(Outcome { result, log }, |t| self.scrub(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_maps_to_priority() {
        assert_eq!(priority("low"), "low");
        assert_eq!(priority("medium"), "normal");
        assert_eq!(priority("HIGH"), "high");
        assert_eq!(priority("urgent"), "urgent");
        assert_eq!(priority(""), "normal");
    }

    #[test]
    fn long_keys_are_hashed() {
        assert_eq!(idempotency_key("a:b:c"), "a:b:c");
        let k = idempotency_key(&"x".repeat(300));
        assert!(k.len() <= 255 && k.starts_with("sha256-"));
    }

    #[test]
    fn agent_url_uses_the_site() {
        let c = Config {
            subdomain: Some("acme".into()),
            site: None,
            email: "a@b.c".into(),
            api_token: "t".into(),
            base_url: Some("http://127.0.0.1:9/api/v2/".into()),
        };
        let z = Zendesk::new(c, reqwest::Client::new());
        assert_eq!(z.site, "https://acme.zendesk.com");
        assert_eq!(z.api, "http://127.0.0.1:9/api/v2");
    }
}
