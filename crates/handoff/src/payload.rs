//! The content of a handoff: concise and action-ready. A teammate can triage from it
//! without replaying the call: matched caller, affected record, reason, urgency, owner,
//! next step, and links to the call detail, transcript and recording.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallerInfo {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub customer: Option<String>,
    pub account: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    pub call: String,
    pub transcript: String,
    pub recording: Option<String>,
    /// Evidence gathered by other handoffs (screenshot URL, matched user, monitors ...).
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
}

/// What every connector renders, each in its own form (ADF for Jira, blocks for Slack ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoffPayload {
    pub call_id: String,
    /// One line: what this is about ("Checkout API down with 503s in us-east-1").
    pub title: String,
    /// Two to five sentences: symptom, expected, actual, area, impact, what was checked.
    pub summary: String,
    /// Why this handoff exists (the rule and the evidence that triggered it).
    pub reason: String,
    /// low | medium | high | urgent
    pub urgency: String,
    pub owner: Option<String>,
    pub next_step: String,
    pub category: String,
    pub severity: Option<String>,
    pub sentiment: String,
    pub caller: CallerInfo,
    /// The affected record or object, when known (account, invoice, endpoint ...).
    pub affected: Option<String>,
    /// Extracted fields (name → value), redacted of sensitive data.
    pub fields: BTreeMap<String, Value>,
    pub symptom: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub steps: Option<String>,
    pub impact: Option<String>,
    /// URLs the caller mentioned (OpenGraph.io looks at the first).
    pub urls: Vec<String>,
    pub links: Links,
    /// Tags for search and dedup (`call-<id>`, category, severity ...).
    pub tags: Vec<String>,
    /// Rule-specific options (e.g. a destination object or status to set).
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}
