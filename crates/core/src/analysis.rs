//! Post-call analysis: what a call was about, learned from the transcript alone.
//!
//! The schema says which fields to look for; the output says what was found, each field
//! grounded in a transcript span with a confidence, plus triage, severity, sentiment and the
//! signals handoffs act on. Engines live in `dialnexa-analysis`; these are the shared words.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::agent::ConfigError;
use crate::evidence::{ExtractedField, Span, TranscriptTurn};

/// The value type of a schema field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaFieldType {
    String,
    Enum,
    Boolean,
    Number,
    Datetime,
    Email,
    Phone,
    Url,
}

/// One field to extract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: SchemaFieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<serde_json::Value>,
    /// The allowed values of an `enum` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The fields an agent version's calls are analysed for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSchema {
    pub fields: Vec<SchemaField>,
}

impl AnalysisSchema {
    pub fn field(&self, name: &str) -> Option<&SchemaField> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

pub const BUILTIN_SCHEMAS: [&str; 2] = ["technical_incident", "operational_follow_up"];
pub const URGENCY: [&str; 4] = ["low", "medium", "high", "urgent"];
pub const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];
pub const PLANS: [&str; 5] = ["free", "starter", "pro", "business", "enterprise"];
pub const SEVERITIES: [&str; 4] = ["sev1", "sev2", "sev3", "sev4"];
pub const REQUEST_CATEGORIES: [&str; 8] = ["billing", "access", "data_request", "account_change", "scheduling", "order", "cancellation", "other"];

fn f(name: &str, field_type: SchemaFieldType, description: &str) -> SchemaField {
    SchemaField { name: name.into(), field_type, required: false, description: description.into(), examples: vec![], options: vec![] }
}

fn e(name: &str, options: &[&str], description: &str) -> SchemaField {
    SchemaField { options: options.iter().map(|o| o.to_string()).collect(), ..f(name, SchemaFieldType::Enum, description) }
}

fn caller_fields() -> Vec<SchemaField> {
    use SchemaFieldType::*;
    vec![
        f("caller_name", String, "The caller's name as they gave it"),
        f("caller_email", Email, "The caller's email address"),
        f("caller_phone", Phone, "A phone number the caller gave, in E.164"),
        f("customer", String, "The caller's company"),
        f("account", String, "The caller's account id"),
    ]
}

/// A built-in schema by name (from the product brief's capture lists).
pub fn builtin_schema(name: &str) -> Option<AnalysisSchema> {
    use SchemaFieldType::*;
    let mut fields = caller_fields();
    match name {
        // The OpenGraph.io page's capture list.
        "technical_incident" => fields.extend([
            e("plan", &PLANS, "The customer's plan"),
            e("environment", &ENVIRONMENTS, "Where the problem is"),
            f("region", String, "Cloud region, canonical id such as us-east-1"),
            f("product_area", String, "The affected product or area"),
            f("endpoint", String, "API endpoint, path or URL that fails"),
            f("error_message", String, "The error text or code the caller sees"),
            e("severity", &SEVERITIES, "sev1 outage .. sev4 minor"),
            f("business_impact", String, "What the problem stops the business doing"),
            f("affected_users", Number, "How many users are affected"),
            f("start_time", Datetime, "When the problem started"),
            f("workaround", String, "A workaround in place, or none"),
            e("urgency", &URGENCY, "How urgent the caller says it is"),
            f("steps", String, "Steps to reproduce"),
            f("expected_behavior", String, "What should happen"),
            f("actual_behavior", String, "What happens instead"),
            f("logs_referenced", Boolean, "The caller has or checked logs, traces or request ids"),
            f("repo", String, "Source repository"),
            f("deploy", String, "Deploy, release or version"),
            f("monitor", String, "Monitor name"),
            f("alert", String, "Alert name"),
            f("owner", String, "Owning person or team"),
            f("escalation_channel", String, "Where escalations go (channel, pager)"),
            f("support_ticket", String, "An existing support ticket id"),
            f("status_page_link", Url, "Status page URL"),
        ]),
        // The Heartbeat page's capture list.
        "operational_follow_up" => fields.extend([
            e("request_category", &REQUEST_CATEGORIES, "What kind of request"),
            e("urgency", &URGENCY, "How urgent the caller says it is"),
            f("related_object_id", String, "Invoice, order, case or record id"),
            f("requested_outcome", String, "What the caller wants done"),
            f("missing_information", String, "What is still needed to act"),
            f("blocker", String, "What blocks the request"),
            f("promised_next_step", String, "What the agent promised to do"),
            f("deadline", Datetime, "When it must be done"),
            f("approval_required", Boolean, "A person must approve it"),
            f("sensitive_data", Boolean, "The caller shared sensitive data"),
            f("routing_note", String, "Who should handle it and why"),
            f("callback_time", Datetime, "When to call back"),
            f("callback_timezone", String, "The caller's timezone for the callback, IANA name"),
        ]),
        _ => return None,
    }
    Some(AnalysisSchema { fields })
}

/// The `analysis` section of an agent config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Built-in schemas to use, merged in order.
    #[serde(default = "default_schemas")]
    pub schemas: Vec<String>,
    /// Extra fields; a field named like a built-in one replaces it.
    #[serde(default)]
    pub fields: Vec<SchemaField>,
}

fn default_schemas() -> Vec<String> {
    BUILTIN_SCHEMAS.iter().map(|s| s.to_string()).collect()
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig { schemas: default_schemas(), fields: vec![] }
    }
}

fn example_fits(t: SchemaFieldType, options: &[String], v: &serde_json::Value) -> bool {
    use SchemaFieldType::*;
    match (t, v) {
        (String, serde_json::Value::String(_)) => true,
        (Enum, serde_json::Value::String(s)) => options.contains(s),
        (Boolean, serde_json::Value::Bool(_)) => true,
        (Number, serde_json::Value::Number(_)) => true,
        (Datetime, serde_json::Value::String(s)) => s.parse::<jiff::Timestamp>().is_ok(),
        (Email, serde_json::Value::String(s)) => s.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        (Phone, serde_json::Value::String(s)) => crate::phone::PhoneNumber::parse(s).is_ok(),
        (Url, serde_json::Value::String(s)) => s.starts_with("http://") || s.starts_with("https://"),
        _ => false,
    }
}

impl AnalysisConfig {
    /// The schema this config names, or the fault at `path` (e.g. `analysis.fields[2].options`).
    pub fn resolve(&self, path: &str) -> Result<AnalysisSchema, ConfigError> {
        let mut fields: Vec<SchemaField> = vec![];
        for (i, name) in self.schemas.iter().enumerate() {
            let schema = builtin_schema(name).ok_or_else(|| {
                ConfigError::new(format!("{path}.schemas[{i}]"), format!("unknown schema '{name}' (built-in: {})", BUILTIN_SCHEMAS.join(", ")))
            })?;
            for f in schema.fields {
                if !fields.iter().any(|x| x.name == f.name) {
                    fields.push(f);
                }
            }
        }
        for (i, field) in self.fields.iter().enumerate() {
            let at = format!("{path}.fields[{i}]");
            if !crate::flow::is_identifier(&field.name) {
                return Err(ConfigError::new(format!("{at}.name"), "field names are snake_case: lower-case letters, digits and '_'"));
            }
            if self.fields[..i].iter().any(|x| x.name == field.name) {
                return Err(ConfigError::new(format!("{at}.name"), format!("field '{}' is defined twice", field.name)));
            }
            if field.field_type == SchemaFieldType::Enum && field.options.is_empty() {
                return Err(ConfigError::new(format!("{at}.options"), "an enum field needs options"));
            }
            if field.field_type != SchemaFieldType::Enum && !field.options.is_empty() {
                return Err(ConfigError::new(format!("{at}.options"), "only enum fields have options"));
            }
            if field.description.chars().count() > 500 {
                return Err(ConfigError::new(format!("{at}.description"), "at most 500 characters"));
            }
            for (j, ex) in field.examples.iter().enumerate() {
                if !example_fits(field.field_type, &field.options, ex) {
                    return Err(ConfigError::new(format!("{at}.examples[{j}]"), format!("is not a valid {:?} value", field.field_type).to_lowercase()));
                }
            }
            match fields.iter_mut().find(|x| x.name == field.name) {
                Some(existing) => *existing = field.clone(),
                None => fields.push(field.clone()),
            }
        }
        if fields.is_empty() {
            return Err(ConfigError::new(path.to_owned(), "the schema has no fields"));
        }
        if fields.len() > 200 {
            return Err(ConfigError::new(format!("{path}.fields"), "at most 200 fields"));
        }
        Ok(AnalysisSchema { fields })
    }
}

macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown value '{}' (expected one of {})", s.chars().take(40).collect::<String>(), all.join(", "))
                })
            }
        }
    };
}

vocabulary!(
    /// Triage category.
    Category {
        Incident => "incident",
        Bug => "bug",
        SetupQuestion => "setup_question",
        ProductConfusion => "product_confusion",
        AccountConfiguration => "account_configuration",
        KnownLimitation => "known_limitation",
        OperationalRequest => "operational_request",
        CallbackRequest => "callback_request",
        Other => "other",
    }
);

vocabulary!(
    /// sev1 (outage) .. sev4 (minor).
    Severity { Sev1 => "sev1", Sev2 => "sev2", Sev3 => "sev3", Sev4 => "sev4" }
);

vocabulary!(
    /// The caller's mood.
    Sentiment { Positive => "positive", Neutral => "neutral", Negative => "negative", Angry => "angry" }
);

/// A quote from the transcript that supports a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub span: Span,
    pub quote: String,
}

/// A yes/no signal with what it rests on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub detected: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// A summary a teammate can triage from without replaying the call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Two to five sentences.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_area: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_checked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
}

/// Sensitive data seen in the call: card numbers, national ids, passwords, health details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SensitiveData {
    pub detected: bool,
    /// `card_number`, `national_id`, `password`, `health`.
    pub kinds: Vec<String>,
    /// Where it was (the quote is itself redacted).
    pub evidence: Vec<Evidence>,
}

/// Whether the call describes a reproducible bug.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reproducibility {
    pub reproducible: bool,
    /// What is missing of steps, expected, actual, area and impact.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackRequest {
    pub phone: Option<String>,
    /// RFC 3339, when it could be resolved.
    pub preferred_time: Option<String>,
    /// What the caller said, when it could not be resolved to an instant.
    pub preferred_time_text: Option<String>,
    pub timezone: Option<String>,
    pub reason: Option<String>,
    pub evidence: Evidence,
}

/// A promise the agent made: what, to whom, by when, where the update goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promise {
    pub what: String,
    pub to_whom: Option<String>,
    pub by_when: Option<String>,
    pub by_when_text: Option<String>,
    pub channel: Option<String>,
    pub evidence: Evidence,
}

/// The transcript was cut to this many turns and characters before analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truncation {
    pub original_turns: usize,
    pub kept_turns: usize,
    pub original_chars: usize,
    pub kept_chars: usize,
}

/// What an engine learned from a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub engine: String,
    pub engine_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    pub summary: Summary,
    pub fields: BTreeMap<String, ExtractedField>,
    pub category: Category,
    pub category_reasons: Vec<String>,
    pub severity: Option<Severity>,
    pub sentiment: Sentiment,
    pub repeat_contact: Signal,
    pub cancellation_language: Signal,
    pub sla_risk: Signal,
    pub sensitive: SensitiveData,
    /// The transcript with sensitive data masked: what may leave the system.
    pub redacted_transcript: Vec<TranscriptTurn>,
    pub reproducible_bug: Reproducibility,
    pub callbacks: Vec<CallbackRequest>,
    pub promises: Vec<Promise>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What an engine reads.
#[derive(Debug, Clone)]
pub struct AnalysisInput {
    pub call_time: jiff::Timestamp,
    /// IANA name; relative times ("3pm yesterday") are resolved in it.
    pub timezone: String,
    pub transcript: Vec<TranscriptTurn>,
    pub schema: AnalysisSchema,
}

/// Build transcript turns from (role, text) pairs, for inputs without timing.
pub fn turns(pairs: &[(crate::evidence::Role, &str)]) -> Vec<TranscriptTurn> {
    pairs.iter().enumerate().map(|(i, (role, text))| TranscriptTurn { index: i as u32, role: *role, text: text.to_string(), start_ms: 0, end_ms: 0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_the_fixed_names() {
        let t = builtin_schema("technical_incident").unwrap();
        let names: Vec<&str> = t.names().collect();
        assert_eq!(names.len(), 29);
        for n in ["caller_name", "caller_email", "caller_phone", "customer", "account", "error_message", "status_page_link", "logs_referenced"] {
            assert!(names.contains(&n), "{n}");
        }
        let o = builtin_schema("operational_follow_up").unwrap();
        assert_eq!(o.names().count(), 18);
        assert!(o.field("callback_timezone").is_some());
        assert!(builtin_schema("nope").is_none());
    }

    #[test]
    fn default_config_merges_both_without_duplicates() {
        let s = AnalysisConfig::default().resolve("analysis").unwrap();
        let mut names: Vec<&str> = s.names().collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(n, names.len());
        assert_eq!(n, 29 + 18 - 6); // caller fields and urgency are shared
    }

    #[test]
    fn invalid_schemas_name_the_path() {
        let bad = |json: serde_json::Value| {
            serde_json::from_value::<AnalysisConfig>(json).map_err(|e| e.to_string()).and_then(|c| c.resolve("analysis").map_err(|e| e.path))
        };
        assert_eq!(bad(serde_json::json!({"schemas": ["nope"]})), Err("analysis.schemas[0]".into()));
        assert_eq!(bad(serde_json::json!({"fields": [{"name": "Tier", "type": "string"}]})), Err("analysis.fields[0].name".into()));
        assert_eq!(bad(serde_json::json!({"fields": [{"name": "tier", "type": "enum"}]})), Err("analysis.fields[0].options".into()));
        assert_eq!(
            bad(serde_json::json!({"fields": [{"name": "when", "type": "datetime", "examples": ["soon"]}]})),
            Err("analysis.fields[0].examples[0]".into())
        );
        assert_eq!(
            bad(serde_json::json!({"fields": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}]})),
            Err("analysis.fields[1].name".into())
        );
        assert_eq!(bad(serde_json::json!({"schemas": [], "fields": []})), Err("analysis".into()));
        assert!(bad(serde_json::json!({"fields": [{"name": "x", "type": "colour"}]})).is_err());
        let ok = serde_json::from_value::<AnalysisConfig>(serde_json::json!({"schemas": ["technical_incident"], "fields": [{"name": "tier", "type": "enum", "options": ["gold"], "examples": ["gold"], "required": true}]})).unwrap();
        assert!(ok.resolve("analysis").unwrap().field("tier").unwrap().required);
    }

    #[test]
    fn vocabularies_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>().unwrap(), *c);
        }
        assert_eq!(Category::ALL.len(), 9);
        assert!("sev5".parse::<Severity>().is_err());
        assert_eq!(serde_json::to_value(Sentiment::Angry).unwrap(), "angry");
    }
}
