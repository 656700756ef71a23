//! Repeat contacts: is this call about an issue already handed off for the same caller?
//!
//! A repeat is the same caller (or account) with the same issue, judged on the category
//! plus the issue's signature (product area, endpoint, error, the record it is about). A
//! different incident from the same customer is a new record, never hidden as a duplicate.
//! A repeat adds to the existing record where the destination can (a comment, a thread
//! reply, a note); where it cannot, the handoff is `deduplicated` and says which record.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::connector::ExistingRecord;
use crate::payload::HandoffPayload;

/// How far back a repeat is looked for, by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 7;

/// What identifies an issue apart from its category, normalised so that two callers'
/// wordings of the same thing compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueSignature {
    pub category: String,
    /// part name → normalised value (`error` holds the codes when the text has any).
    pub parts: BTreeMap<&'static str, BTreeSet<String>>,
}

const PARTS: [(&str, &str); 5] =
    [("product_area", "product_area"), ("endpoint", "endpoint"), ("error", "error_message"), ("record", "related_object_id"), ("request", "request_category")];

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn words(s: &str) -> String {
    let lower = s.to_lowercase();
    let kept: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '/' && c != '-' && c != '_' && c != '.')
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '-'))
        .filter(|w| !w.is_empty() && !matches!(*w, "the" | "a" | "an" | "our" | "my" | "your" | "api" | "service" | "page" | "endpoint"))
        .collect();
    kept.join(" ")
}

/// An endpoint without scheme, host, query and trailing slash: `/v1/checkout`.
fn endpoint_key(s: &str) -> String {
    let t = s.trim().to_lowercase();
    let t = t.split_once("://").map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/")).unwrap_or(&t).to_owned();
    let t = t.split(['?', '#']).next().unwrap_or("").trim_end_matches('/').to_owned();
    if t.starts_with('/') { t } else { words(&t) }
}

/// Error codes in a message: HTTP statuses (3 digits, 4xx/5xx) and code-like tokens
/// (`E1234`, `ERR_CONN_RESET`, `card_declined`). Empty when the text has none.
fn error_codes(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for raw in s.split(|c: char| !c.is_alphanumeric() && c != '_') {
        // "503s" is the plural of a status, not a code of its own.
        let raw = match raw.strip_suffix(['s', 'S']) {
            Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) => d,
            _ => raw,
        };
        if raw.is_empty() {
            continue;
        }
        let digits = raw.chars().all(|c| c.is_ascii_digit());
        let http = digits && raw.len() == 3 && matches!(raw.as_bytes().first(), Some(b'4' | b'5'));
        let has_digit = raw.chars().any(|c| c.is_ascii_digit());
        let has_alpha = raw.chars().any(|c| c.is_alphabetic());
        let code_like = (has_digit && has_alpha && raw.len() >= 3) || (raw.contains('_') && raw.len() >= 5);
        if http || code_like {
            out.insert(raw.to_lowercase());
        }
    }
    out
}

pub fn signature(p: &HandoffPayload) -> IssueSignature {
    let mut parts = BTreeMap::new();
    for (part, field) in PARTS {
        let Some(text) = p.fields.get(field).and_then(text_of) else { continue };
        let values: BTreeSet<String> = match part {
            "endpoint" => [endpoint_key(&text)].into_iter().collect(),
            "error" => {
                let codes = error_codes(&text);
                if codes.is_empty() { [words(&text)].into_iter().collect() } else { codes }
            }
            _ => [words(&text)].into_iter().collect(),
        };
        let values: BTreeSet<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        if !values.is_empty() {
            parts.insert(part, values);
        }
    }
    IssueSignature { category: p.category.clone(), parts }
}

/// Why `new` is the same issue as `old`, or `None` when it is a different one. When the
/// calls share no part to compare, only a caller who says it is a repeat ("calling again
/// about ...") makes it one.
pub fn same_issue(new: &IssueSignature, new_says_repeat: bool, old: &IssueSignature) -> Option<String> {
    if new.category != old.category {
        return None;
    }
    let mut shared = vec![];
    for (part, values) in &new.parts {
        let Some(theirs) = old.parts.get(part) else { continue };
        if values.is_disjoint(theirs) {
            return None;
        }
        shared.push(format!("{} {}", part.replace('_', " "), values.intersection(theirs).cloned().collect::<Vec<_>>().join(", ")));
    }
    let category = new.category.replace('_', " ");
    if !shared.is_empty() {
        return Some(format!("the same {category} ({})", shared.join("; ")));
    }
    new_says_repeat.then(|| format!("the same {category}, and the caller said they were calling again about it"))
}

/// An earlier handoff of the same integration and action for the same caller.
#[derive(Debug, Clone)]
pub struct Earlier {
    pub call_id: String,
    pub payload: HandoffPayload,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub evidence: Value,
}

/// What a repeat does.
#[derive(Debug, Clone, PartialEq)]
pub enum Repeat {
    /// Add to the existing record; deliver with `HandoffRequest::update`.
    Update { of: ExistingRecord, reason: String },
    /// The destination cannot add to a record: nothing new is sent.
    Deduplicated { reason: String },
}

/// The first earlier handoff (newest first) that is the same issue decides; `None`: a new
/// issue, a new record. `updates`: the connector can add to an existing record.
pub fn repeat_of(new: &HandoffPayload, new_says_repeat: bool, earlier: &[Earlier], updates: bool, window_days: u32) -> Option<Repeat> {
    let sig = signature(new);
    earlier.iter().find_map(|e| {
        let why = same_issue(&sig, new_says_repeat, &signature(&e.payload))?;
        let record = e.external_id.as_deref().map(|id| format!("record {id}")).unwrap_or_else(|| "its record".into());
        let url = e.external_url.as_deref().map(|u| format!(", {u}")).unwrap_or_default();
        let reason = format!("repeat contact: {why} as call {} in the last {window_days} days ({record}{url})", e.call_id);
        match (&e.external_id, updates) {
            (Some(id), true) => Some(Repeat::Update {
                of: ExistingRecord { call_id: e.call_id.clone(), external_id: id.clone(), external_url: e.external_url.clone(), evidence: e.evidence.clone() },
                reason: format!("{reason}: this call is added to that record"),
            }),
            _ => Some(Repeat::Deduplicated { reason: format!("deduplicated: {reason}; this destination cannot add to a record, so nothing new was sent") }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(category: &str, fields: Value) -> HandoffPayload {
        HandoffPayload { category: category.into(), fields: serde_json::from_value(fields).unwrap(), ..Default::default() }
    }

    #[test]
    fn the_same_error_on_the_same_endpoint_is_a_repeat() {
        let a = signature(&p("incident", json!({"endpoint": "https://api.acme.com/v1/checkout?x=1", "error_message": "HTTP 503 Service Unavailable"})));
        let b = signature(&p("incident", json!({"endpoint": "/v1/checkout/", "error_message": "still getting 503s"})));
        let why = same_issue(&b, false, &a).expect("same");
        assert!(why.contains("endpoint /v1/checkout") && why.contains("error 503"), "{why}");
    }

    #[test]
    fn a_different_incident_from_the_same_customer_is_new() {
        let a = signature(&p("incident", json!({"endpoint": "/v1/checkout", "error_message": "503"})));
        let b = signature(&p("incident", json!({"endpoint": "/v1/login", "error_message": "401 unauthorized"})));
        assert_eq!(same_issue(&b, true, &a), None, "even when the caller says they call again");
        let c = signature(&p("incident", json!({"product_area": "webhooks"})));
        let d = signature(&p("incident", json!({"product_area": "billing exports"})));
        assert_eq!(same_issue(&d, false, &c), None);
    }

    #[test]
    fn another_category_is_another_issue() {
        let a = signature(&p("incident", json!({"endpoint": "/v1/checkout"})));
        let b = signature(&p("bug", json!({"endpoint": "/v1/checkout"})));
        assert_eq!(same_issue(&b, true, &a), None);
    }

    #[test]
    fn nothing_to_compare_is_a_repeat_only_when_the_caller_says_so() {
        let a = signature(&p("callback_request", json!({})));
        let b = signature(&p("callback_request", json!({})));
        assert_eq!(same_issue(&b, false, &a), None);
        assert!(same_issue(&b, true, &a).is_some());
    }

    #[test]
    fn a_repeat_updates_where_the_destination_can_else_it_is_deduplicated() {
        let old = Earlier {
            call_id: "call_1".into(),
            payload: p("incident", json!({"error_message": "E1234"})),
            external_id: Some("OPS-7".into()),
            external_url: Some("https://jira/OPS-7".into()),
            evidence: json!({}),
        };
        let new = p("incident", json!({"error_message": "error e1234 again"}));
        match repeat_of(&new, false, std::slice::from_ref(&old), true, 7) {
            Some(Repeat::Update { of, reason }) => {
                assert_eq!(of.external_id, "OPS-7");
                assert!(reason.contains("call_1") && reason.contains("OPS-7"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(repeat_of(&new, false, &[old], false, 7), Some(Repeat::Deduplicated { .. })));
    }

    #[test]
    fn codes_and_words() {
        assert_eq!(error_codes("ERR_CONN_RESET after 502"), ["502", "err_conn_reset"].into_iter().map(String::from).collect());
        assert!(error_codes("it just spins").is_empty());
        assert_eq!(endpoint_key("https://x.io"), "");
        assert_eq!(words("The Billing API"), "billing");
    }
}
