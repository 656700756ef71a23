//! The handoff policy: from an analysed call and the integrations' rules, one decision per
//! (integration, action) — the idempotency key is call + integration + action — each with
//! its reason: `planned`, `skipped` (no rule matched, and why), or `held_for_review` (with
//! the review reason). Pure: the server adds what needs the database (cross-call dedup).

use std::collections::{BTreeMap, BTreeSet};

use dialnexa_core::analysis::{Analysis, Category, Severity};
use serde_json::Value;

use crate::kind::IntegrationKind;
use crate::payload::{CallerInfo, HandoffPayload, Links};
use crate::rules::{Conditions, Rule, SignalName, is_enrichment};

/// What the policy knows of the call besides its analysis.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub call_id: String,
    pub entry_point: String,
    pub agent_id: Option<String>,
    pub links: Links,
    /// Customers whose calls need a person to approve commitments (names, lower-case).
    pub vip_customers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IntegrationView {
    pub integration_id: String,
    pub kind: IntegrationKind,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub integration_id: String,
    pub kind: IntegrationKind,
    pub action: String,
    pub rule_name: Option<String>,
    /// planned | skipped | held_for_review
    pub status: &'static str,
    pub reason: String,
    /// (review reason code, detail) when held.
    pub review: Option<(&'static str, String)>,
    pub payload: HandoffPayload,
    /// 0: enrichment (runs first), 1: delivery.
    pub phase: i64,
}

fn field_str(a: &Analysis, name: &str) -> Option<String> {
    a.fields.get(name).and_then(|f| match &f.value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

fn urls(a: &Analysis) -> Vec<String> {
    let mut out = vec![];
    for name in ["status_page_link", "endpoint"] {
        if let Some(v) = field_str(a, name)
            && (v.starts_with("https://") || v.starts_with("http://"))
        {
            out.push(v);
        }
    }
    for t in &a.redacted_transcript {
        if t.role != dialnexa_core::evidence::Role::Caller {
            continue;
        }
        for w in t.text.split_whitespace() {
            let w = w.trim_matches(|c: char| matches!(c, ',' | '.' | ')' | '(' | '"' | '\'' | ';' | '!' | '?'));
            if (w.starts_with("https://") || w.starts_with("http://")) && w.len() > 10 && !out.iter().any(|u| u == w) {
                out.push(w.to_owned());
            }
        }
    }
    out
}

fn is_vip(a: &Analysis, call: &CallContext) -> bool {
    let customer = field_str(a, "customer").map(|c| c.to_lowercase());
    customer.is_some_and(|c| call.vip_customers.iter().any(|v| v.to_lowercase() == c)) || field_str(a, "plan").is_some_and(|p| p == "enterprise")
}

/// The signals of a call, for rule conditions.
pub fn signals(a: &Analysis, call: &CallContext) -> BTreeSet<SignalName> {
    use SignalName::*;
    let mut s = BTreeSet::new();
    if a.repeat_contact.detected {
        s.insert(RepeatContact);
    }
    if a.cancellation_language.detected {
        s.insert(CancellationLanguage);
    }
    if a.sla_risk.detected {
        s.insert(SlaRisk);
    }
    if a.sensitive.detected {
        s.insert(Sensitive);
    }
    if a.reproducible_bug.reproducible {
        s.insert(ReproducibleBug);
    }
    if !a.callbacks.is_empty() || a.fields.contains_key("callback_time") {
        s.insert(Callback);
    }
    if !a.promises.is_empty() || a.fields.contains_key("promised_next_step") {
        s.insert(Promise);
    }
    if !urls(a).is_empty() {
        s.insert(UrlMentioned);
    }
    if a.fields.contains_key("caller_email") {
        s.insert(CallerEmail);
    }
    if is_vip(a, call) {
        s.insert(HighValueCustomer);
    }
    if a.fields.contains_key("blocker") {
        s.insert(Blocked);
    }
    if a.fields.contains_key("deadline") || field_str(a, "urgency").is_some_and(|u| u == "urgent") {
        s.insert(UrgentDeadline);
    }
    s
}

/// Why a rule does not match, or `None` when it does.
fn mismatch(w: &Conditions, a: &Analysis, call: &CallContext, sig: &BTreeSet<SignalName>) -> Option<String> {
    if !w.category.is_empty() && !w.category.contains(&a.category) {
        return Some(format!("the call is {}", a.category.as_str().replace('_', " ")));
    }
    if !w.severity.is_empty() && !a.severity.is_some_and(|s| w.severity.contains(&s)) {
        return Some(format!("severity is {}", a.severity.map(|s| s.as_str()).unwrap_or("unknown")));
    }
    if !w.sentiment.is_empty() && !w.sentiment.contains(&a.sentiment) {
        return Some(format!("the caller was {}", a.sentiment.as_str()));
    }
    if !w.entry_point.is_empty() && !w.entry_point.contains(&call.entry_point) {
        return Some(format!("entry point is {}", call.entry_point));
    }
    if !w.agent_id.is_empty() && !call.agent_id.as_ref().is_some_and(|x| w.agent_id.contains(x)) {
        return Some("another agent took the call".into());
    }
    if !w.customer.is_empty() {
        let c = field_str(a, "customer").map(|c| c.to_lowercase());
        if !c.as_ref().is_some_and(|c| w.customer.iter().any(|x| x.to_lowercase() == *c)) {
            return Some("another customer".into());
        }
    }
    for (name, want) in &w.fields {
        let have = a.fields.get(name).map(|f| &f.value);
        let ok = match (want, have) {
            (Value::String(s), Some(_)) if s == "present" => true,
            (Value::Array(list), Some(v)) => list.contains(v),
            (v, Some(h)) => v == h,
            (_, None) => false,
        };
        if !ok {
            return Some(format!("field {name} is {}", have.map(|v| v.to_string()).unwrap_or_else(|| "absent".into())));
        }
    }
    if let Some(missing) = w.signals.iter().find(|s| !sig.contains(s)) {
        return Some(format!("no {}", serde_json::to_value(missing).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()));
    }
    if !w.any_signal.is_empty() && !w.any_signal.iter().any(|s| sig.contains(s)) {
        return Some("none of its signals".into());
    }
    None
}

fn urgency(a: &Analysis, rule_urgency: &str) -> String {
    if rule_urgency != "from_analysis" {
        return rule_urgency.to_owned();
    }
    if let Some(u) = field_str(a, "urgency") {
        return u;
    }
    match a.severity {
        Some(Severity::Sev1) => "urgent",
        Some(Severity::Sev2) => "high",
        Some(Severity::Sev3) => "medium",
        Some(Severity::Sev4) => "low",
        None if a.cancellation_language.detected || a.sentiment == dialnexa_core::analysis::Sentiment::Angry || a.sla_risk.detected => "high",
        None => "medium",
    }
    .to_owned()
}

fn title(a: &Analysis) -> String {
    let cat = a.category.as_str().replace('_', " ");
    let mut t = match a.severity {
        Some(s) => format!("{}{} ({})", cat[..1].to_uppercase(), &cat[1..], s.as_str()),
        None => format!("{}{}", cat[..1].to_uppercase(), &cat[1..]),
    };
    let what: Vec<String> = ["product_area", "error_message", "endpoint", "region", "request_category", "related_object_id"]
        .iter()
        .filter_map(|f| field_str(a, f))
        .take(3)
        .collect();
    if !what.is_empty() {
        t.push_str(": ");
        t.push_str(&what.join(", "));
    } else if let Some(s) = &a.summary.symptom {
        t.push_str(": ");
        t.push_str(&s.chars().take(80).collect::<String>());
    }
    if let Some(c) = field_str(a, "customer") {
        t.push_str(&format!(" — {c}"));
    }
    t
}

/// Mask anything that looks like a card or national id number.
fn redact_value(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let digits = s.chars().filter(char::is_ascii_digit).count();
            if digits >= 9 && s.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') && !s.starts_with('+') {
                Value::String("[redacted]".into())
            } else {
                v.clone()
            }
        }
        other => other.clone(),
    }
}

/// The handoff content for one rule.
pub fn payload(a: &Analysis, call: &CallContext, rule: &Rule, reason: &str) -> HandoffPayload {
    let fields: BTreeMap<String, Value> =
        a.fields.iter().filter(|(k, _)| k.as_str() != "sensitive_data").map(|(k, f)| (k.clone(), redact_value(&f.value))).collect();
    let mut tags = vec![format!("call-{}", call.call_id), "dialnexa".to_owned(), a.category.as_str().to_owned()];
    if let Some(s) = a.severity {
        tags.push(s.as_str().to_owned());
    }
    let mut options = rule.options.clone();
    options.insert("mapping".into(), serde_json::to_value(&rule.mapping).unwrap_or_default());
    HandoffPayload {
        call_id: call.call_id.clone(),
        title: title(a),
        summary: a.summary.text.clone(),
        reason: reason.to_owned(),
        urgency: urgency(a, &rule.mapping.urgency),
        owner: Some(rule.mapping.owner.clone()),
        next_step: a.summary.next_step.clone().map(|n| format!("{}; {n}", rule.mapping.next_step)).unwrap_or_else(|| rule.mapping.next_step.clone()),
        category: a.category.as_str().to_owned(),
        severity: a.severity.map(|s| s.as_str().to_owned()),
        sentiment: a.sentiment.as_str().to_owned(),
        caller: CallerInfo {
            name: field_str(a, "caller_name"),
            email: field_str(a, "caller_email"),
            phone: field_str(a, "caller_phone"),
            customer: field_str(a, "customer"),
            account: field_str(a, "account"),
        },
        affected: ["related_object_id", "account", "endpoint", "product_area"].iter().find_map(|f| field_str(a, f)),
        fields,
        symptom: a.summary.symptom.clone(),
        expected: a.summary.expected.clone().or_else(|| field_str(a, "expected_behavior")),
        actual: a.summary.actual.clone().or_else(|| field_str(a, "actual_behavior")),
        steps: field_str(a, "steps"),
        impact: a.summary.impact.clone().or_else(|| field_str(a, "business_impact")),
        urls: urls(a),
        links: call.links.clone(),
        tags,
        options,
    }
}

/// Which review path holds a planned handoff, if any.
fn hold(kind: IntegrationKind, action: &str, a: &Analysis, sig: &BTreeSet<SignalName>, rule: &Rule) -> Option<(&'static str, String)> {
    if let Some(req) = rule.options.get("requires").and_then(Value::as_array) {
        let missing: Vec<&str> = req.iter().filter_map(Value::as_str).filter(|f| !a.fields.contains_key(*f)).collect();
        if !missing.is_empty() {
            return Some(("missing_required_field", format!("the rule needs {} and the call did not give it", missing.join(", "))));
        }
    }
    // Alerts and tracking threads inside the team go out at once; records, tasks and
    // messages that reach or commit to the customer wait for a person in these cases.
    let alert = matches!(kind, IntegrationKind::Slack | IntegrationKind::Datadog)
        || (kind, action) == (IntegrationKind::Heartbeat, "post_thread")
        || is_enrichment(kind, action);
    if alert {
        return None;
    }
    if sig.contains(&SignalName::Sensitive) {
        return Some(("sensitive_request", format!("the caller shared sensitive data ({}); a person decides what leaves", a.sensitive.kinds.join(", "))));
    }
    let money = ["billing", "access", "cancellation"];
    let request_category = a.fields.get("request_category").and_then(|f| f.value.as_str()).unwrap_or("");
    let approval = a.fields.get("approval_required").and_then(|f| f.value.as_bool()).unwrap_or(false);
    if a.category == Category::OperationalRequest && (money.contains(&request_category) || approval || sig.contains(&SignalName::CancellationLanguage)) {
        return Some((
            "changes_money_access_legal_or_commitment",
            format!(
                "the request changes money, access, legal terms or a commitment ({})",
                if request_category.is_empty() { "approval required" } else { request_category }
            ),
        ));
    }
    if sig.contains(&SignalName::HighValueCustomer) && matches!(kind, IntegrationKind::Zendesk | IntegrationKind::Hubspot | IntegrationKind::Heartbeat) {
        return Some(("high_value_customer", "a high-value customer: a person approves what is created for them".into()));
    }
    None
}

/// Decide every (integration, action) for an analysed call.
pub fn plan(a: &Analysis, call: &CallContext, integrations: &[IntegrationView]) -> Vec<Decision> {
    let sig = signals(a, call);
    let mut out = vec![];
    for integ in integrations {
        // Group the rules by action, in order: the first matching rule decides.
        let mut actions: Vec<&str> = vec![];
        for r in &integ.rules {
            if !actions.contains(&r.action.as_str()) {
                actions.push(&r.action);
            }
        }
        for action in actions {
            let rules: Vec<&Rule> = integ.rules.iter().filter(|r| r.action == action).collect();
            let phase = if is_enrichment(integ.kind, action) { 0 } else { 1 };
            let matched: Vec<&Rule> = rules.iter().copied().filter(|r| mismatch(&r.when, a, call, &sig).is_none()).collect();
            match matched.first() {
                Some(rule) => {
                    let names: Vec<&str> = matched.iter().map(|r| r.name.as_str()).collect();
                    let reason = format!("{}: {}", names.join("; "), explain(a, &sig));
                    let review = hold(integ.kind, action, a, &sig, rule);
                    let status = if review.is_some() { "held_for_review" } else { "planned" };
                    let reason = match &review {
                        Some((_, why)) => format!("held for review: {why} ({reason})"),
                        None => reason,
                    };
                    // One handoff per action: it addresses the owner of every rule that matched.
                    let mut p = payload(a, call, rule, &reason);
                    let mut owners: Vec<&str> = vec![];
                    for r in &matched {
                        if !owners.contains(&r.mapping.owner.as_str()) {
                            owners.push(&r.mapping.owner);
                        }
                    }
                    p.owner = Some(owners.join(", "));
                    out.push(Decision {
                        integration_id: integ.integration_id.clone(),
                        kind: integ.kind,
                        action: action.to_owned(),
                        rule_name: Some(rule.name.clone()),
                        status,
                        payload: p,
                        reason,
                        review,
                        phase,
                    });
                }
                None => {
                    let first = rules[0];
                    let why = mismatch(&first.when, a, call, &sig).unwrap_or_default();
                    let reason = match &first.skip_reason {
                        Some(s) => format!("skipped: {why}; {s}"),
                        None => format!("skipped: {why}, so '{}' does not apply", first.name),
                    };
                    out.push(Decision {
                        integration_id: integ.integration_id.clone(),
                        kind: integ.kind,
                        action: action.to_owned(),
                        rule_name: Some(first.name.clone()),
                        status: "skipped",
                        payload: payload(a, call, first, &reason),
                        reason,
                        review: None,
                        phase,
                    });
                }
            }
        }
    }
    out
}

fn explain(a: &Analysis, sig: &BTreeSet<SignalName>) -> String {
    let mut parts = vec![a.category.as_str().replace('_', " ")];
    if let Some(s) = a.severity {
        parts.push(s.as_str().to_owned());
    }
    if a.sentiment != dialnexa_core::analysis::Sentiment::Neutral {
        parts.push(format!("{} caller", a.sentiment.as_str()));
    }
    for s in sig {
        parts.push(serde_json::to_value(s).ok().and_then(|v| v.as_str().map(|x| x.replace('_', " "))).unwrap_or_default());
    }
    parts.join(", ")
}

/// Callbacks and promises to track: (kind, key suffix, detail, due).
pub fn follow_ups(a: &Analysis, owner: &str) -> Vec<(&'static str, String, Value, Option<jiff::Timestamp>)> {
    let mut out = vec![];
    for (i, c) in a.callbacks.iter().enumerate() {
        let due = c.preferred_time.as_ref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let detail = serde_json::json!({
            "phone": c.phone.clone().or_else(|| field_str(a, "caller_phone")),
            "preferred_time": c.preferred_time, "preferred_time_text": c.preferred_time_text, "timezone": c.timezone,
            "owner": owner, "attempt_count": 0, "reason": c.reason.clone().unwrap_or_else(|| a.summary.text.chars().take(200).collect()),
            "quote": c.evidence.quote,
        });
        out.push(("callback", format!("callback:{i}"), detail, due));
    }
    for (i, p) in a.promises.iter().enumerate() {
        let due = p.by_when.as_ref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let detail = serde_json::json!({
            "what": p.what, "to_whom": p.to_whom.clone().or_else(|| field_str(a, "caller_name")), "by_when": p.by_when, "by_when_text": p.by_when_text,
            "channel": p.channel, "owner": owner, "quote": p.evidence.quote,
        });
        out.push(("promise", format!("promise:{i}"), detail, due));
    }
    out
}

/// The call's reason for recurring-issue insights.
pub fn reason_key(a: &Analysis) -> String {
    let topic = ["product_area", "request_category", "endpoint", "error_message"].iter().find_map(|f| field_str(a, f)).map(|t| t.to_lowercase());
    match topic {
        Some(t) => format!("{}: {}", a.category.as_str(), t.chars().take(60).collect::<String>()),
        None => a.category.as_str().to_owned(),
    }
}
