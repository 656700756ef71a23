//! HubSpot CRM v3: a note on the affected account.
//!
//! Action `create_note`: `POST /crm/v3/objects/notes` with `hs_timestamp` (required) and
//! `hs_note_body` (an HTML summary: title, reason, urgency, owner, next step, caller, affected
//! record, symptom / expected / actual / impact, links to the call, transcript, recording and
//! evidence), associated with the configured company (`associationTypeId` 190, note → company)
//! and/or contact (202, note → contact). `options.company_id` / `options.contact_id` override the
//! config for one handoff (the matched account); `options.hubspot_owner_id` sets the owner.
//!
//! Exactly-once: HubSpot takes no idempotency key. The reference suggests searching a custom
//! unique property, but that needs a property created in every portal (and the schema scope).
//! We use the note body instead: it always ends with the marker `dialnexa-call-<id>` (letters,
//! digits, '-' and '_' only, so it survives HTML escaping), and before creating we search
//! `POST /crm/v3/objects/notes/search` with `hs_note_body CONTAINS_TOKEN <marker>`; a hit whose
//! body really contains the marker is returned as `deduplicated`. Remaining risks: the search
//! index lags writes by a few seconds, so a retry very soon after an attempt whose outcome was
//! lost may not see the note and create a second one; and how CONTAINS_TOKEN tokenises hyphens
//! is not documented (the exact-marker check guards against false positives, not misses).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, excerpt, redact_url, send};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["create_note"];

pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// `hs_note_body` holds at most 65,536 characters.
pub const NOTE_BODY_MAX: usize = 65_536;
/// HUBSPOT_DEFINED association type: note → company.
pub const NOTE_TO_COMPANY: u32 = 190;
/// HUBSPOT_DEFINED association type: note → contact.
pub const NOTE_TO_CONTACT: u32 = 202;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Private-app access token (scopes: crm.objects.contacts/companies read+write for notes).
    pub access_token: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    /// The portal (hub) id, to link the associated record in HubSpot's app.
    #[serde(default)]
    pub portal_id: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("access_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("company_id", &self.company_id)
            .field("contact_id", &self.contact_id)
            .field("portal_id", &self.portal_id)
            .finish()
    }
}

fn numeric_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 20 && v.chars().all(|c| c.is_ascii_digit())
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.access_token.trim().is_empty() {
            return Err("access_token: is required".into());
        }
        if self.access_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("access_token: must not contain spaces or control characters".into());
        }
        for (name, v) in [("company_id", &self.company_id), ("contact_id", &self.contact_id), ("portal_id", &self.portal_id)] {
            if let Some(v) = v
                && !numeric_id(v.trim())
            {
                return Err(format!("{name}: must be a numeric HubSpot id"));
            }
        }
        if let Some(b) = &self.base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            return Err("base_url: must be an http:// or https:// URL".into());
        }
        Ok(())
    }
}

/// The dedup marker a note carries: `dialnexa-call-<id>`.
pub fn marker(call_id: &str) -> String {
    let id: String = call_id.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    format!("dialnexa-call-{id}")
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped and capped, so the whole body stays far below [`NOTE_BODY_MAX`].
fn text(s: &str, max: usize) -> String {
    let capped: String = s.trim().chars().take(max).collect();
    let more = if s.trim().chars().count() > max { "…" } else { "" };
    format!("{}{more}", esc(&capped))
}

fn link(label: &str, url: &str) -> String {
    // Only web links become anchors; anything else is shown as text.
    let u = url.trim();
    if u.starts_with("https://") || u.starts_with("http://") {
        format!("<a href=\"{}\">{}</a>", esc(&u.chars().take(2000).collect::<String>()), esc(label))
    } else {
        format!("{}: {}", esc(label), text(u, 200))
    }
}

/// The note body (HTML).
pub fn note_body(p: &HandoffPayload) -> String {
    let mut items: Vec<String> = vec![];
    let mut li = |k: &str, v: Option<&str>, max: usize| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            items.push(format!("<li><strong>{k}:</strong> {}</li>", text(v, max)));
        }
    };
    li("Reason", Some(&p.reason), 1000);
    li("Urgency", Some(&p.urgency), 40);
    li("Severity", p.severity.as_deref(), 40);
    li("Category", Some(&p.category), 80);
    li("Owner", p.owner.as_deref(), 200);
    li("Next step", Some(&p.next_step), 1000);
    let caller = [p.caller.name.as_deref(), p.caller.email.as_deref(), p.caller.phone.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(", ");
    li("Caller", Some(&caller), 300);
    li("Customer", p.caller.customer.as_deref().or(p.caller.account.as_deref()), 200);
    li("Affected", p.affected.as_deref(), 500);
    li("Symptom", p.symptom.as_deref(), 1500);
    li("Expected", p.expected.as_deref(), 1500);
    li("Actual", p.actual.as_deref(), 1500);
    li("Impact", p.impact.as_deref(), 1500);
    let mut links = vec![link("Call", &p.links.call), link("Transcript", &p.links.transcript)];
    if let Some(r) = &p.links.recording {
        links.push(link("Recording", r));
    }
    for (name, url) in p.links.evidence.iter().take(20) {
        links.push(link(&name.chars().take(80).collect::<String>(), url));
    }
    format!(
        "<p><strong>{}</strong></p><p>{}</p><ul>{}</ul><p>{}</p><p>DialNexa call {} · {}</p>",
        text(&p.title, 300),
        text(&p.summary, 6000),
        items.join(""),
        links.join(" · "),
        text(&p.call_id, 100),
        marker(&p.call_id)
    )
}

fn hubspot_error(x: &Exchange, what: &str) -> DeliveryError {
    let mut e = x.error(what);
    let v = x.json();
    let category = v.as_ref().and_then(|v| v.get("category").or_else(|| v.get("errorType"))).and_then(Value::as_str).unwrap_or("");
    let message = v.as_ref().and_then(|v| v.get("message")).and_then(Value::as_str).map(|m| excerpt(m, 200));
    if let Some(m) = &message {
        e.message = format!("{what} answered {} {category}: {m}", x.status);
    }
    match x.status {
        401 => {
            e.retryable = false;
            e.message = "HubSpot rejected the access token (401): replace access_token with a valid private-app token".into();
        }
        403 => {
            e.retryable = false;
            e.message = format!("HubSpot refused the request (403 {category}): grant the private app the scopes for notes and their associations");
        }
        _ => {}
    }
    e
}

pub struct Hubspot {
    config: Config,
    client: reqwest::Client,
}

impl Hubspot {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/'))
    }

    async fn post(&self, path: &str, body: &Value, log: &mut Vec<AttemptLog>) -> Result<Exchange, DeliveryError> {
        let url = self.url(path);
        let rb = self.client.post(&url).bearer_auth(self.config.access_token.trim()).json(body);
        match send(rb, format!("POST {}", redact_url(&url))).await {
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

    fn record_url(&self, company: Option<&str>, contact: Option<&str>) -> Option<String> {
        let portal = self.config.portal_id.as_deref()?.trim();
        match (company, contact) {
            (Some(c), _) => Some(format!("https://app.hubspot.com/contacts/{portal}/record/0-2/{c}")),
            (None, Some(c)) => Some(format!("https://app.hubspot.com/contacts/{portal}/record/0-1/{c}")),
            _ => None,
        }
    }

    async fn find(&self, marker: &str, log: &mut Vec<AttemptLog>) -> Result<Option<Value>, DeliveryError> {
        let body = json!({
            "filterGroups": [{ "filters": [{ "propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN", "value": marker }] }],
            "properties": ["hs_note_body", "hs_timestamp"],
            "sorts": [{ "propertyName": "hs_createdate", "direction": "ASCENDING" }],
            "limit": 10,
        });
        let x = self.post("/crm/v3/objects/notes/search", &body, log).await?;
        if !x.ok() {
            return Err(hubspot_error(&x, "HubSpot (note search)"));
        }
        let Some(v) = x.json() else {
            return Err(DeliveryError::retry(format!("HubSpot (note search) answered {} with a body that is not JSON", x.status)));
        };
        let results = v.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(results.into_iter().find(|r| r.pointer("/properties/hs_note_body").and_then(Value::as_str).is_some_and(|b| b.contains(marker))))
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        if req.action != "create_note" {
            return Err(DeliveryError::fatal(format!("hubspot: unknown action '{}' (expected create_note)", excerpt(&req.action, 40))));
        }
        let p = &req.payload;
        if p.call_id.trim().is_empty() {
            return Err(DeliveryError::fatal("hubspot: the payload has no call id for the dedup marker"));
        }
        let opt = |k: &str| p.options.get(k).and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())));
        let company = opt("company_id").or_else(|| self.config.company_id.clone()).map(|s| s.trim().to_owned());
        let contact = opt("contact_id").or_else(|| self.config.contact_id.clone()).map(|s| s.trim().to_owned());
        let owner = opt("hubspot_owner_id");
        for (name, v) in [("options.company_id", &company), ("options.contact_id", &contact), ("options.hubspot_owner_id", &owner)] {
            if let Some(v) = v
                && !numeric_id(v)
            {
                return Err(DeliveryError::fatal(format!("hubspot: {name} must be a numeric HubSpot id")));
            }
        }
        let url = self.record_url(company.as_deref(), contact.as_deref());
        let mark = marker(&p.call_id);
        if let Some(found) = self.find(&mark, log).await? {
            let id = found.get("id").and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())));
            return Ok(Delivered {
                external_id: id.clone(),
                external_url: url,
                evidence: json!({ "note_id": id, "marker": mark, "found_by": "search" }),
                deduplicated: true,
            });
        }
        let body_html = note_body(p);
        if body_html.chars().count() > NOTE_BODY_MAX {
            return Err(DeliveryError::fatal("hubspot: the note body is longer than 65,536 characters"));
        }
        let now = jiff::Timestamp::now();
        let mut properties = json!({
            "hs_timestamp": now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string(),
            "hs_note_body": body_html,
        });
        if let Some(o) = &owner {
            properties["hubspot_owner_id"] = json!(o);
        }
        let assoc =
            |id: &str, type_id: u32| json!({ "to": { "id": id }, "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }] });
        let mut associations = vec![];
        if let Some(c) = &company {
            associations.push(assoc(c, NOTE_TO_COMPANY));
        }
        if let Some(c) = &contact {
            associations.push(assoc(c, NOTE_TO_CONTACT));
        }
        let body = json!({ "properties": properties, "associations": associations });
        let x = self.post("/crm/v3/objects/notes", &body, log).await?;
        if !x.ok() {
            return Err(hubspot_error(&x, "HubSpot (create note)"));
        }
        let v = x.json().unwrap_or(Value::Null);
        let id = v.get("id").and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())));
        Ok(Delivered {
            external_id: id.clone(),
            external_url: url,
            evidence: json!({ "note_id": id, "marker": mark, "company_id": company, "contact_id": contact, "created_at": v.get("createdAt") }),
            deduplicated: false,
        })
    }
}

#[async_trait]
impl Connector for Hubspot {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Hubspot
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
    fn bodies_escape_and_carry_the_marker() {
        let p = HandoffPayload { call_id: "call_ab12".into(), title: "<script>x</script>".into(), ..Default::default() };
        let b = note_body(&p);
        assert!(b.contains("&lt;script&gt;"));
        assert!(b.ends_with("dialnexa-call-call_ab12</p>"));
        let big = HandoffPayload { summary: "x".repeat(200_000), reason: "y".repeat(200_000), ..p };
        assert!(note_body(&big).chars().count() < NOTE_BODY_MAX);
    }
}
