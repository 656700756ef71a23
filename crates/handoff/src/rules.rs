//! Handoff rules: when (conditions on the analysis and the call), what (an action and its
//! mapping), and who owns it. The required mapping (destination object, owner, status,
//! urgency, next step, record URL) is checked when a rule is saved, not when a call ends.

use std::collections::BTreeMap;

use dialnexa_core::analysis::{Category, Sentiment, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kind::IntegrationKind;

/// Where a handoff lands and who owns it: required on every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The object created or updated (e.g. "Zendesk ticket", "#oncall message").
    pub destination_object: String,
    pub owner: String,
    /// The status to set on the destination record.
    pub status: String,
    /// low | medium | high | urgent | from_analysis
    pub urgency: String,
    pub next_step: String,
    /// from_response (the destination's URL), none, or a URL.
    pub record_url: String,
}

/// A signal the analysis may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalName {
    RepeatContact,
    CancellationLanguage,
    SlaRisk,
    Sensitive,
    ReproducibleBug,
    Callback,
    Promise,
    UrlMentioned,
    CallerEmail,
    HighValueCustomer,
    Blocked,
    UrgentDeadline,
}

/// All lists are "any of"; all conditions must hold. Empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sentiment: Vec<Sentiment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_id: Vec<String>,
    /// Customer names (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer: Vec<String>,
    /// Field name → `"present"`, a value, or a list of values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    /// Every one of these signals must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalName>,
    /// At least one of these signals must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_signal: Vec<SignalName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub when: Conditions,
    pub action: String,
    pub mapping: Mapping,
    /// Passed to the connector (e.g. `channel`), and `requires: [field names]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, Value>,
    /// Why the policy skips calls this rule does not match (shown on the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
}

/// A fault in a rule, with the path of the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFault {
    pub path: String,
    pub message: String,
}

/// Parse and check an integration's rules.
pub fn parse_rules(kind: IntegrationKind, value: &Value) -> Result<Vec<Rule>, RuleFault> {
    let rules: Vec<Rule> = serde_json::from_value(value.clone()).map_err(|e| RuleFault { path: "rules".into(), message: e.to_string() })?;
    if rules.len() > 50 {
        return Err(RuleFault { path: "rules".into(), message: "at most 50 rules".into() });
    }
    let actions = crate::connectors::actions(kind);
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if r.name.trim().is_empty() {
            return Err(RuleFault { path: at("name"), message: "must not be empty".into() });
        }
        if !actions.contains(&r.action.as_str()) {
            return Err(RuleFault { path: at("action"), message: format!("{kind} can do: {}", actions.join(", ")) });
        }
        let m = &r.mapping;
        for (name, v) in [
            ("destination_object", &m.destination_object),
            ("owner", &m.owner),
            ("status", &m.status),
            ("urgency", &m.urgency),
            ("next_step", &m.next_step),
            ("record_url", &m.record_url),
        ] {
            if v.trim().is_empty() {
                return Err(RuleFault { path: at(&format!("mapping.{name}")), message: "is required (map it before launch)".into() });
            }
        }
        if !["low", "medium", "high", "urgent", "from_analysis"].contains(&m.urgency.as_str()) {
            return Err(RuleFault { path: at("mapping.urgency"), message: "low, medium, high, urgent or from_analysis".into() });
        }
        if !(m.record_url == "from_response" || m.record_url == "none" || m.record_url.starts_with("https://") || m.record_url.starts_with("http://")) {
            return Err(RuleFault { path: at("mapping.record_url"), message: "from_response, none, or a URL".into() });
        }
        if let Some(req) = r.options.get("requires")
            && !req.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err(RuleFault { path: at("options.requires"), message: "a list of field names".into() });
        }
    }
    Ok(rules)
}

fn mapping(destination: &str, owner: &str, status: &str, urgency: &str, next_step: &str) -> Mapping {
    Mapping {
        destination_object: destination.into(),
        owner: owner.into(),
        status: status.into(),
        urgency: urgency.into(),
        next_step: next_step.into(),
        record_url: "from_response".into(),
    }
}

fn rule(name: &str, when: Conditions, action: &str, m: Mapping, skip: &str) -> Rule {
    Rule { name: name.into(), when, action: action.into(), mapping: m, options: BTreeMap::new(), skip_reason: Some(skip.into()) }
}

use Category::*;

fn technical() -> Vec<Category> {
    vec![Incident, Bug]
}

/// The rules an integration uses when it is created without any: they carry out the
/// workflows of the product brief (docs/handoffs.md lists them).
pub fn recommended(kind: IntegrationKind) -> Vec<Rule> {
    let c = Conditions::default;
    match kind {
        IntegrationKind::OpengraphIo => vec![
            rule(
                "Screenshot the page the caller reported",
                Conditions { category: technical(), signals: vec![SignalName::UrlMentioned], ..c() },
                "capture_screenshot",
                mapping("call evidence: screenshot", "support", "attached", "from_analysis", "link the screenshot in the ticket and alerts"),
                "only incidents and bugs with a URL the caller mentioned get a screenshot",
            ),
            rule(
                "Check the reported page's status",
                Conditions { category: technical(), signals: vec![SignalName::UrlMentioned], ..c() },
                "site_info",
                mapping("call evidence: page title and status", "support", "attached", "from_analysis", "compare the page status with the caller's report"),
                "only incidents and bugs with a URL the caller mentioned are checked",
            ),
            rule(
                "Scrape the page for a reproducible bug",
                Conditions { category: vec![Bug], signals: vec![SignalName::UrlMentioned], ..c() },
                "scrape_site",
                mapping("call evidence: page content", "engineering", "attached", "from_analysis", "attach the page content to the engineering task"),
                "only bugs with a URL the caller mentioned are scraped",
            ),
        ],
        IntegrationKind::Heartbeat => vec![
            rule(
                "Match the caller to a Heartbeat user",
                Conditions { signals: vec![SignalName::CallerEmail], ..c() },
                "retrieve_user",
                mapping("Heartbeat user", "support", "matched", "from_analysis", "verify the caller before routing"),
                "the caller gave no email to match",
            ),
            rule(
                "Check upcoming events before a callback",
                Conditions { category: vec![CallbackRequest, OperationalRequest], ..c() },
                "get_events",
                mapping("Heartbeat events", "support", "checked", "from_analysis", "pick a callback slot that avoids scheduled events"),
                "only callbacks and operational requests need the event calendar",
            ),
            rule(
                "Alert the owner of an operational request, callback or promise",
                Conditions {
                    any_signal: vec![SignalName::Callback, SignalName::Promise, SignalName::SlaRisk, SignalName::Blocked, SignalName::UrgentDeadline],
                    ..c()
                },
                "notify_owner",
                mapping("Heartbeat direct message", "request owner", "open", "from_analysis", "act on the request and update the caller"),
                "no callback, promise, blocker, deadline or SLA risk needs an owner",
            ),
            rule(
                "Operational request to its owner",
                Conditions { category: vec![OperationalRequest], ..c() },
                "notify_owner",
                mapping("Heartbeat direct message", "operations owner", "open", "from_analysis", "carry out the request"),
                "not an operational request",
            ),
            rule(
                "Categorise a recurring issue",
                Conditions { any_signal: vec![SignalName::RepeatContact, SignalName::Promise], ..c() },
                "post_thread",
                mapping("Heartbeat channel thread", "operations", "tracking", "from_analysis", "track the recurring issue or promise to closure"),
                "not a repeat contact and no promise to track",
            ),
        ],
        IntegrationKind::Slack => vec![
            rule(
                "On-call alert",
                Conditions { category: vec![Incident], severity: vec![Severity::Sev1, Severity::Sev2], ..c() },
                "post_message",
                mapping("#oncall message", "on-call engineer", "alerted", "urgent", "acknowledge and page the service owner"),
                "only sev1 and sev2 incidents page on-call; setup questions, product confusion, account configuration and known limitations are not incidents",
            ),
            rule(
                "Escalation owner: angry or at-risk customer",
                Conditions {
                    any_signal: vec![SignalName::CancellationLanguage, SignalName::RepeatContact],
                    sentiment: vec![Sentiment::Angry, Sentiment::Negative],
                    ..c()
                },
                "post_message",
                mapping("#escalations message", "escalation owner", "escalated", "high", "call the customer back within the SLA"),
                "the caller was not angry or at risk of leaving",
            ),
            rule(
                "Manager notice",
                Conditions {
                    any_signal: vec![SignalName::HighValueCustomer, SignalName::Blocked, SignalName::UrgentDeadline, SignalName::RepeatContact],
                    ..c()
                },
                "post_message",
                mapping("#managers message", "support manager", "notified", "high", "review the account and unblock the work"),
                "no VIP customer, blocked work, urgent deadline or repeated issue",
            ),
        ],
        IntegrationKind::Jira => vec![rule(
            "Engineering task for a reproducible bug or regression",
            Conditions { category: technical(), any_signal: vec![SignalName::ReproducibleBug], ..c() },
            "create_issue",
            mapping("Jira task", "engineering triage", "To Do", "from_analysis", "reproduce and fix"),
            "a bug becomes an engineering task only when it is reproducible (steps, expected, actual, area and impact)",
        )],
        IntegrationKind::Zendesk => vec![rule(
            "Customer-facing ticket",
            Conditions { category: vec![Incident, Bug, OperationalRequest, CallbackRequest], ..c() },
            "create_ticket",
            mapping("Zendesk ticket", "support queue", "open", "from_analysis", "update the customer"),
            "no ticket: the caller needs no follow-up, SLA tracking, evidence, escalation or customer-visible ownership",
        )],
        IntegrationKind::GoogleSheets => vec![rule(
            "Incident review log",
            Conditions { category: vec![Incident], ..c() },
            "append_row",
            mapping("Incidents sheet row", "incident manager", "open", "from_analysis", "review in the weekly incident review"),
            "only incidents go to the incident review log",
        )],
        IntegrationKind::Hubspot => vec![rule(
            "Note on the affected account",
            Conditions {
                category: vec![Incident, Bug, OperationalRequest],
                fields: BTreeMap::from([("customer".to_owned(), Value::String("present".into()))]),
                ..c()
            },
            "create_note",
            mapping("HubSpot note", "account owner", "logged", "from_analysis", "check in with the account"),
            "no affected account to note (not an incident, bug or request, or no customer named)",
        )],
        IntegrationKind::Datadog => vec![
            rule(
                "Link the symptom to monitors",
                Conditions { category: technical(), ..c() },
                "search_monitors",
                mapping("Datadog monitors", "on-call engineer", "linked", "from_analysis", "check the linked monitors"),
                "only incidents and bugs are linked to monitors",
            ),
            rule(
                "Customer-reported incident event",
                Conditions { category: vec![Incident], ..c() },
                "create_event",
                mapping("Datadog event", "on-call engineer", "open", "from_analysis", "correlate with alerts"),
                "only incidents become events",
            ),
        ],
        IntegrationKind::Webhook => vec![rule(
            "Every analysed call",
            c(),
            "deliver",
            mapping("webhook delivery", "integrating system", "delivered", "from_analysis", "process the call"),
            "never skipped",
        )],
    }
}

/// Actions that gather evidence for the others: they run first.
pub fn is_enrichment(kind: IntegrationKind, action: &str) -> bool {
    matches!(
        (kind, action),
        (IntegrationKind::OpengraphIo, _) | (IntegrationKind::Heartbeat, "retrieve_user" | "get_events") | (IntegrationKind::Datadog, "search_monitors")
    )
}
