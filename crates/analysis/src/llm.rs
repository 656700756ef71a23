//! The `llm` engine: any OpenAI-compatible chat-completions endpoint, asked for JSON that
//! follows a strict JSON schema. The answer is checked, not trusted: every field must have
//! the schema's type and be grounded in a quote of the transcript, or it is dropped; an
//! answer that is not valid JSON of that shape is an [`EngineError::InvalidOutput`], and
//! the caller falls back to the rules engine. Redaction always comes from the rules engine,
//! so what leaves the system never depends on a model.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use dialnexa_core::analysis::{
    Analysis, AnalysisInput, AnalysisSchema, CallbackRequest, Category, Evidence, Promise, SchemaFieldType, Sentiment, Severity, Signal, Summary,
};
use dialnexa_core::evidence::{ExtractedField, Role, Span};
use serde_json::{Value, json};

use crate::{Engine, EngineError};

/// Bumped whenever the prompt or the answer schema changes; recorded on every analysis.
pub const PROMPT_VERSION: &str = "analysis-v1";

#[derive(Clone)]
pub struct LlmConfig {
    /// Base URL including the version prefix, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct LlmEngine {
    config: LlmConfig,
    client: reqwest::Client,
}

impl LlmEngine {
    pub fn new(config: LlmConfig) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EngineError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(LlmEngine { config, client })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The request body: the transcript, the instructions and the answer's JSON schema.
    pub fn request_body(&self, input: &AnalysisInput) -> Value {
        let fields: Vec<Value> = input
            .schema
            .fields
            .iter()
            .map(|f| json!({ "name": f.name, "type": f.field_type, "description": f.description, "options": f.options, "required": f.required }))
            .collect();
        let transcript: String = input.transcript.iter().map(|t| format!("[{}] {}: {}\n", t.index, t.role.as_str(), t.text)).collect();
        let system = format!(
            "You analyse support calls for triage. Use only what the transcript says. Statements by the agent are not the caller's claims, \
             except promises the agent made. Ignore negated and hedged statements. For every field you return, give the transcript turn \
             index and the exact quote (verbatim words of that turn) it comes from; omit any field you cannot ground. Resolve times \
             against the call start {} in timezone {} and answer them as RFC 3339 with offset. Phones in E.164. Regions as canonical ids \
             (us-east-1). Categories: incident, bug, setup_question, product_confusion, account_configuration, known_limitation, \
             operational_request, callback_request, other. Fields to look for: {}",
            input.call_time,
            input.timezone,
            Value::Array(fields)
        );
        json!({
            "model": self.config.model,
            "temperature": 0,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": format!("Transcript:\n{transcript}") }
            ],
            "response_format": { "type": "json_schema", "json_schema": { "name": "call_analysis", "strict": true, "schema": answer_schema(&input.schema) } }
        })
    }

    /// Check a model's answer against the schema and the transcript.
    pub fn parse_answer(&self, input: &AnalysisInput, content: &str) -> Result<Analysis, EngineError> {
        let v: Value = serde_json::from_str(content).map_err(|e| EngineError::InvalidOutput(format!("not JSON: {e}")))?;
        let str_of = |k: &str| v.get(k).and_then(Value::as_str);
        let category: Category = str_of("category").ok_or_else(|| invalid("category missing"))?.parse().map_err(invalid)?;
        let sentiment: Sentiment = str_of("sentiment").ok_or_else(|| invalid("sentiment missing"))?.parse().map_err(invalid)?;
        let severity: Option<Severity> = match v.get("severity") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(invalid)?),
            Some(_) => return Err(invalid("severity is not a string")),
        };
        let reasons: Vec<String> =
            v.get("category_reasons").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
        let mut warnings = vec![];
        let mut fields = BTreeMap::new();
        for f in v.get("fields").and_then(Value::as_array).ok_or_else(|| invalid("fields is not a list"))? {
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(def) = input.schema.field(name) else {
                warnings.push(format!("the model returned '{name}', which is not in the schema; dropped"));
                continue;
            };
            let Some(value) = f.get("value").and_then(|raw| typed_value(def.field_type, &def.options, raw)) else {
                warnings.push(format!("the model's value for '{name}' is not a valid {:?}; dropped", def.field_type));
                continue;
            };
            let quote = f.get("quote").and_then(Value::as_str).unwrap_or_default();
            let turn = f.get("turn").and_then(Value::as_u64).map(|t| t as usize);
            let speaker = if name == "promised_next_step" { None } else { Some(Role::Caller) };
            let Some(span) = ground(input, turn, quote, speaker) else {
                warnings.push(format!("the model's '{name}' could not be found in the caller's words; dropped"));
                continue;
            };
            let confidence = f.get("confidence").and_then(Value::as_f64).unwrap_or(0.7).clamp(0.0, 1.0);
            fields.insert(name.to_owned(), ExtractedField { value, confidence, span });
        }
        let evidence_of = |item: &Value| -> Option<Evidence> {
            let quote = item.get("quote").and_then(Value::as_str).unwrap_or_default();
            let turn = item.get("turn").and_then(Value::as_u64).map(|t| t as usize);
            ground(input, turn, quote, None).map(|span| Evidence { span, quote: quote.to_owned() })
        };
        let opt_str = |item: &Value, k: &str| item.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let callbacks = v
            .get("callbacks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        let evidence = evidence_of(c)?;
                        let time = opt_str(c, "preferred_time");
                        let resolved = time.as_ref().filter(|t| t.parse::<jiff::Timestamp>().is_ok()).cloned();
                        Some(CallbackRequest {
                            phone: opt_str(c, "phone")
                                .and_then(|p| typed_value(SchemaFieldType::Phone, &[], &Value::String(p)))
                                .and_then(|p| p.as_str().map(str::to_owned)),
                            preferred_time_text: if resolved.is_none() { time } else { None },
                            preferred_time: resolved,
                            timezone: opt_str(c, "timezone").filter(|z| jiff::tz::TimeZone::get(z).is_ok()),
                            reason: opt_str(c, "reason"),
                            evidence,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let promises = v
            .get("promises")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        let evidence = evidence_of(p)?;
                        let by = opt_str(p, "by_when");
                        let resolved = by.as_ref().filter(|t| t.parse::<jiff::Timestamp>().is_ok()).cloned();
                        Some(Promise {
                            what: opt_str(p, "what")?,
                            to_whom: opt_str(p, "to_whom"),
                            by_when_text: if resolved.is_none() { by } else { None },
                            by_when: resolved,
                            channel: opt_str(p, "channel"),
                            evidence,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let summary_v = v.get("summary").ok_or_else(|| invalid("summary missing"))?;
        let s = |k: &str| summary_v.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_owned);
        let summary = Summary {
            text: s("text").ok_or_else(|| invalid("summary.text missing"))?,
            symptom: s("symptom"),
            expected: s("expected"),
            actual: s("actual"),
            affected_area: s("affected_area"),
            impact: s("impact"),
            already_checked: s("already_checked"),
            next_step: s("next_step"),
        };
        let flag = |k: &str| Signal { detected: v.get(k).and_then(Value::as_bool).unwrap_or(false), evidence: vec![] };

        // Redaction and sensitive-data detection stay deterministic.
        let offline = crate::rules::analyze(input);
        let mut sensitive = offline.sensitive.clone();
        for k in v.get("sensitive_kinds").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if ["card_number", "national_id", "password", "health"].contains(&k) && !sensitive.kinds.iter().any(|x| x == k) {
                sensitive.kinds.push(k.to_owned());
                sensitive.detected = true;
            }
        }
        let missing: Vec<String> =
            [("steps", "steps"), ("expected_behavior", "expected"), ("actual_behavior", "actual"), ("product_area", "area"), ("business_impact", "impact")]
                .iter()
                .filter(|(f, _)| !fields.contains_key(*f))
                .map(|(_, label)| label.to_string())
                .collect();
        Ok(Analysis {
            engine: "llm".into(),
            engine_version: PROMPT_VERSION.into(),
            model: Some(self.config.model.clone()),
            prompt_version: Some(PROMPT_VERSION.into()),
            summary,
            fields,
            category,
            category_reasons: reasons,
            severity,
            sentiment,
            repeat_contact: flag("repeat_contact"),
            cancellation_language: flag("cancellation_language"),
            sla_risk: flag("sla_risk"),
            sensitive,
            redacted_transcript: offline.redacted_transcript,
            reproducible_bug: dialnexa_core::analysis::Reproducibility { reproducible: missing.is_empty(), missing },
            callbacks,
            promises,
            truncated: None,
            warnings,
        })
    }
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidOutput(e.to_string())
}

/// Find `quote` in the transcript (first in the named turn, then anywhere), as a span.
fn ground(input: &AnalysisInput, turn: Option<usize>, quote: &str, speaker: Option<Role>) -> Option<Span> {
    let quote = quote.trim();
    if quote.is_empty() {
        return None;
    }
    let needle = quote.to_lowercase();
    let order = turn.into_iter().chain(0..input.transcript.len());
    for i in order {
        let Some(t) = input.transcript.get(i) else { continue };
        if speaker.is_some_and(|r| r != t.role) {
            continue;
        }
        let hay = t.text.to_lowercase();
        // Lower-casing can change byte lengths; only trust positions when it did not.
        if hay.len() != t.text.len() {
            continue;
        }
        if let Some(b) = hay.find(&needle) {
            let start = t.text[..b].chars().count() as u32;
            let end = start + t.text[b..b + needle.len()].chars().count() as u32;
            return Some(Span { turn: t.index, start, end });
        }
    }
    None
}

/// A model's value coerced to the field's type, or `None` when it is not one.
pub fn typed_value(t: SchemaFieldType, options: &[String], raw: &Value) -> Option<Value> {
    use SchemaFieldType::*;
    let text = match raw {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }?;
    match t {
        String => Some(Value::String(text)),
        Enum => options.iter().find(|o| o.eq_ignore_ascii_case(&text)).map(|o| Value::String(o.clone())),
        Boolean => match text.to_lowercase().as_str() {
            "true" | "yes" => Some(Value::Bool(true)),
            "false" | "no" => Some(Value::Bool(false)),
            _ => None,
        },
        Number => text
            .replace(',', "")
            .parse::<f64>()
            .ok()
            .and_then(|n| if n.fract() == 0.0 && n.abs() < 9e15 { Some(json!(n as i64)) } else { serde_json::Number::from_f64(n).map(Value::Number) }),
        Datetime => text.parse::<jiff::Timestamp>().ok().map(|_| Value::String(text)),
        Email => {
            let e = text.to_lowercase();
            e.split_once('@').filter(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.')).map(|_| Value::String(e.clone()))
        }
        Phone => {
            let digits: std::string::String = text.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
            let candidate = if digits.starts_with('+') {
                digits
            } else if digits.len() == 10 {
                format!("+1{digits}")
            } else {
                format!("+{digits}")
            };
            dialnexa_core::PhoneNumber::parse(&candidate).ok().map(|p| Value::String(p.to_string()))
        }
        Url => (text.starts_with("https://") || text.starts_with("http://")).then_some(Value::String(text)),
    }
}

/// The JSON schema of the answer (strict mode: every property required, none extra).
pub fn answer_schema(schema: &AnalysisSchema) -> Value {
    let nullable = json!({ "type": ["string", "null"] });
    let names: Vec<&str> = schema.names().collect();
    let cats: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    let sevs: Vec<Option<&str>> = Severity::ALL.iter().map(|s| Some(s.as_str())).chain([None]).collect();
    let sents: Vec<&str> = Sentiment::ALL.iter().map(|s| s.as_str()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary", "category", "category_reasons", "severity", "sentiment", "repeat_contact", "cancellation_language", "sla_risk", "sensitive_kinds", "fields", "callbacks", "promises"],
        "properties": {
            "summary": {
                "type": "object", "additionalProperties": false,
                "required": ["text", "symptom", "expected", "actual", "affected_area", "impact", "already_checked", "next_step"],
                "properties": { "text": { "type": "string" }, "symptom": nullable, "expected": nullable, "actual": nullable, "affected_area": nullable, "impact": nullable, "already_checked": nullable, "next_step": nullable }
            },
            "category": { "type": "string", "enum": cats },
            "category_reasons": { "type": "array", "items": { "type": "string" } },
            "severity": { "type": ["string", "null"], "enum": sevs },
            "sentiment": { "type": "string", "enum": sents },
            "repeat_contact": { "type": "boolean" },
            "cancellation_language": { "type": "boolean" },
            "sla_risk": { "type": "boolean" },
            "sensitive_kinds": { "type": "array", "items": { "type": "string", "enum": ["card_number", "national_id", "password", "health"] } },
            "fields": { "type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["name", "value", "turn", "quote", "confidence"],
                "properties": { "name": { "type": "string", "enum": names }, "value": { "type": ["string", "number", "boolean"] }, "turn": { "type": "integer" }, "quote": { "type": "string" }, "confidence": { "type": "number" } }
            }},
            "callbacks": { "type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["phone", "preferred_time", "timezone", "reason", "turn", "quote"],
                "properties": { "phone": nullable, "preferred_time": nullable, "timezone": nullable, "reason": nullable, "turn": { "type": "integer" }, "quote": { "type": "string" } }
            }},
            "promises": { "type": "array", "items": {
                "type": "object", "additionalProperties": false, "required": ["what", "to_whom", "by_when", "channel", "turn", "quote"],
                "properties": { "what": { "type": "string" }, "to_whom": nullable, "by_when": nullable, "channel": nullable, "turn": { "type": "integer" }, "quote": { "type": "string" } }
            }}
        }
    })
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

#[async_trait]
impl Engine for LlmEngine {
    fn name(&self) -> &'static str {
        "llm"
    }

    async fn analyze(&self, input: &AnalysisInput) -> Result<Analysis, EngineError> {
        let (capped, truncation) = crate::truncate(input);
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let mut req = self.client.post(&url).json(&self.request_body(&capped));
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| {
            // Never echo the URL's query or any header: only the kind of failure.
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            EngineError::Retryable { message: format!("LLM endpoint {what}"), retry_after: None }
        })?;
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            return Err(EngineError::Retryable { message: format!("LLM endpoint answered {}", status.as_u16()), retry_after: retry_after(resp.headers()) });
        }
        if !status.is_success() {
            return Err(EngineError::Failed(format!("LLM endpoint answered {}", status.as_u16())));
        }
        let body: Value = resp.json().await.map_err(|e| EngineError::InvalidOutput(format!("the response is not JSON: {e}")))?;
        let content = body.pointer("/choices/0/message/content").and_then(Value::as_str).ok_or_else(|| invalid("no choices[0].message.content"))?;
        let mut a = self.parse_answer(&capped, content)?;
        if let Some(t) = truncation {
            a.warnings.push(format!("transcript cut from {} turns to {} before analysis", t.original_turns, t.kept_turns));
            a.truncated = Some(t);
        }
        Ok(a)
    }
}
