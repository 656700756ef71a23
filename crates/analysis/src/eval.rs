//! `dialnexa analysis eval`: score an engine against labelled transcripts.
//!
//! Scoring is micro-averaged over all cases. A labelled field predicted with a matching
//! value is a true positive; predicted with another value, a false positive and a false
//! negative; not predicted, a false negative. A field listed under `absent` that is
//! predicted is a false positive. Fields neither labelled nor absent are not scored.
//!
//! Matching: strings match when equal after case and whitespace folding, or when the
//! prediction contains the expected value as a whole phrase; numbers and booleans when
//! equal; times when they name the same instant within a minute; phone numbers after
//! normalisation to E.164.

use std::collections::BTreeMap;
use std::path::Path;

use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, AnalysisSchema, Category, SchemaFieldType};
use dialnexa_core::evidence::{Role, TranscriptTurn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTurn {
    pub role: Role,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub category: Category,
    #[serde(default)]
    pub severity: Option<dialnexa_core::analysis::Severity>,
    #[serde(default)]
    pub sentiment: Option<dialnexa_core::analysis::Sentiment>,
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    #[serde(default)]
    pub absent: Vec<String>,
}

/// One labelled transcript.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    #[serde(skip)]
    pub name: String,
    pub call_time: jiff::Timestamp,
    pub timezone: String,
    pub transcript: Vec<CaseTurn>,
    pub expected: Expected,
    #[serde(default)]
    pub absent: Vec<String>,
}

impl Case {
    /// Fields that must not be extracted (top level or under `expected`).
    pub fn absent(&self) -> impl Iterator<Item = &String> {
        self.absent.iter().chain(self.expected.absent.iter())
    }

    pub fn input(&self, schema: &AnalysisSchema) -> AnalysisInput {
        AnalysisInput {
            call_time: self.call_time,
            timezone: self.timezone.clone(),
            transcript: self
                .transcript
                .iter()
                .enumerate()
                .map(|(i, t)| TranscriptTurn { index: i as u32, role: t.role, text: t.text.clone(), start_ms: 0, end_ms: 0 })
                .collect(),
            schema: schema.clone(),
        }
    }
}

/// The schema eval cases are scored against: both built-in schemas.
pub fn eval_schema() -> AnalysisSchema {
    AnalysisConfig::default().resolve("analysis").unwrap_or(AnalysisSchema { fields: vec![] })
}

/// Every `*.json` in `dir`, sorted by name; a file that does not parse is an error naming it.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, String> {
    let schema = eval_schema();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut cases = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut case: Case = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        case.name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for name in case.expected.fields.keys().chain(case.absent()) {
            if schema.field(name).is_none() {
                return Err(format!("{}: '{name}' is not a field of the built-in schemas", case.name));
            }
        }
        if jiff::tz::TimeZone::get(&case.timezone).is_err() {
            return Err(format!("{}: unknown timezone '{}'", case.name, case.timezone));
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(format!("no *.json cases in {}", dir.display()));
    }
    Ok(cases)
}

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// `hay` contains `needle` with word boundaries on both sides.
fn contains_phrase(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric();
    let mut from = 0;
    while let Some(pos) = hay[from..].find(needle) {
        let start = from + pos;
        let end = start + needle.len();
        let before_ok = hay[..start].chars().next_back().is_none_or(|c| !is_word(c) || !needle.chars().next().is_some_and(is_word));
        let after_ok = hay[end..].chars().next().is_none_or(|c| !is_word(c) || !needle.chars().next_back().is_some_and(is_word));
        if before_ok && after_ok {
            return true;
        }
        from = start + needle.chars().next().map(char::len_utf8).unwrap_or(1);
    }
    false
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn e164(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
    let candidate = if digits.starts_with('+') {
        digits
    } else if digits.len() == 10 {
        format!("+1{digits}")
    } else {
        format!("+{digits}")
    };
    phonenumber::parse(None, &candidate).ok().map(|p| p.format().mode(phonenumber::Mode::E164).to_string())
}

/// Whether a predicted value matches the expected one, for a field of type `t`.
pub fn values_match(t: Option<SchemaFieldType>, predicted: &Value, expected: &Value) -> bool {
    match (t, expected) {
        (_, Value::Bool(e)) => predicted.as_bool() == Some(*e) || as_text(predicted).is_some_and(|p| p.eq_ignore_ascii_case(&e.to_string())),
        (_, Value::Number(e)) => {
            let p = predicted.as_f64().or_else(|| as_text(predicted).and_then(|s| s.replace(',', "").trim().parse::<f64>().ok()));
            matches!((p, e.as_f64()), (Some(p), Some(e)) if (p - e).abs() < 1e-9)
        }
        (Some(SchemaFieldType::Datetime), Value::String(e)) => {
            let p = as_text(predicted).and_then(|s| s.parse::<jiff::Timestamp>().ok());
            match (p, e.parse::<jiff::Timestamp>()) {
                (Some(p), Ok(e)) => (p.as_second() - e.as_second()).abs() <= 60,
                _ => false,
            }
        }
        (Some(SchemaFieldType::Phone), Value::String(e)) => match (as_text(predicted).and_then(|p| e164(&p)), e164(e)) {
            (Some(p), Some(e)) => p == e,
            _ => false,
        },
        (_, Value::String(e)) => {
            let Some(p) = as_text(predicted) else { return false };
            let (p, e) = (fold(&p), fold(e));
            p == e || contains_phrase(&p, &e)
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Counts {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 { 1.0 } else { f64::from(a) / f64::from(b) }
}

/// One scoring mistake, to show where an engine goes wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub case: String,
    pub field: String,
    pub kind: &'static str,
    pub expected: Option<Value>,
    pub predicted: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cases: usize,
    pub field_precision: f64,
    pub field_recall: f64,
    pub field_f1: f64,
    pub category_accuracy: f64,
    pub severity_accuracy: f64,
    pub sentiment_accuracy: f64,
    pub totals: Counts,
    pub per_field: BTreeMap<String, Counts>,
    /// expected category → predicted category → count.
    pub confusion: BTreeMap<String, BTreeMap<String, u32>>,
    pub category_misses: Vec<(String, String, String)>,
    pub misses: Vec<Miss>,
}

/// Score analyses against their cases.
pub fn score(results: &[(Case, Analysis)]) -> Report {
    let schema = eval_schema();
    let mut totals = Counts::default();
    let mut per_field: BTreeMap<String, Counts> = BTreeMap::new();
    let mut confusion: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut misses = vec![];
    let mut category_misses = vec![];
    let (mut cat_ok, mut sev_ok, mut sev_n, mut sent_ok, mut sent_n) = (0u32, 0u32, 0u32, 0u32, 0u32);
    for (case, a) in results {
        for (name, expected) in &case.expected.fields {
            let c = per_field.entry(name.clone()).or_default();
            let t = schema.field(name).map(|f| f.field_type);
            match a.fields.get(name) {
                Some(p) if values_match(t, &p.value, expected) => c.tp += 1,
                Some(p) => {
                    c.fp += 1;
                    c.fn_ += 1;
                    misses.push(Miss {
                        case: case.name.clone(),
                        field: name.clone(),
                        kind: "wrong_value",
                        expected: Some(expected.clone()),
                        predicted: Some(p.value.clone()),
                    });
                }
                None => {
                    c.fn_ += 1;
                    misses.push(Miss { case: case.name.clone(), field: name.clone(), kind: "missed", expected: Some(expected.clone()), predicted: None });
                }
            }
        }
        for name in case.absent() {
            if let Some(p) = a.fields.get(name) {
                per_field.entry(name.clone()).or_default().fp += 1;
                misses.push(Miss { case: case.name.clone(), field: name.clone(), kind: "should_be_absent", expected: None, predicted: Some(p.value.clone()) });
            }
        }
        let (e, p) = (case.expected.category.as_str().to_owned(), a.category.as_str().to_owned());
        *confusion.entry(e.clone()).or_default().entry(p.clone()).or_default() += 1;
        if e == p {
            cat_ok += 1;
        } else {
            category_misses.push((case.name.clone(), e, p));
        }
        if let Some(s) = case.expected.severity {
            sev_n += 1;
            sev_ok += u32::from(a.severity == Some(s));
        }
        if let Some(s) = case.expected.sentiment {
            sent_n += 1;
            sent_ok += u32::from(a.sentiment == s);
        }
    }
    for c in per_field.values() {
        totals.tp += c.tp;
        totals.fp += c.fp;
        totals.fn_ += c.fn_;
    }
    let n = results.len() as u32;
    Report {
        cases: results.len(),
        field_precision: totals.precision(),
        field_recall: totals.recall(),
        field_f1: totals.f1(),
        category_accuracy: ratio(cat_ok, n),
        severity_accuracy: ratio(sev_ok, sev_n),
        sentiment_accuracy: ratio(sent_ok, sent_n),
        totals,
        per_field,
        confusion,
        category_misses,
        misses,
    }
}

impl Report {
    /// The human-readable report.
    pub fn render(&self, verbose: bool) -> String {
        let mut s = format!("{} cases\n\n{:<22} {:>9} {:>9} {:>9} {:>5} {:>5} {:>5}\n", self.cases, "field", "precision", "recall", "f1", "tp", "fp", "fn");
        for (name, c) in &self.per_field {
            s.push_str(&format!("{name:<22} {:>9.3} {:>9.3} {:>9.3} {:>5} {:>5} {:>5}\n", c.precision(), c.recall(), c.f1(), c.tp, c.fp, c.fn_));
        }
        s.push_str(&format!(
            "{:<22} {:>9.3} {:>9.3} {:>9.3} {:>5} {:>5} {:>5}\n\n",
            "ALL (micro)", self.field_precision, self.field_recall, self.field_f1, self.totals.tp, self.totals.fp, self.totals.fn_
        ));
        s.push_str(&format!(
            "category accuracy  {:.3}\nseverity accuracy  {:.3}\nsentiment accuracy {:.3}\n\n",
            self.category_accuracy, self.severity_accuracy, self.sentiment_accuracy
        ));
        let cats: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        let short = |c: &str| c.chars().take(8).collect::<String>();
        s.push_str(&format!("confusion (rows: expected, columns: predicted)\n{:<22}", ""));
        for c in &cats {
            s.push_str(&format!(" {:>8}", short(c)));
        }
        s.push('\n');
        for e in &cats {
            let Some(row) = self.confusion.get(*e) else { continue };
            s.push_str(&format!("{e:<22}"));
            for p in &cats {
                s.push_str(&format!(" {:>8}", row.get(*p).copied().unwrap_or(0)));
            }
            s.push('\n');
        }
        if verbose {
            s.push_str("\nmisses\n");
            for (case, e, p) in &self.category_misses {
                s.push_str(&format!("  {case}: category {e} → {p}\n"));
            }
            for m in &self.misses {
                s.push_str(&format!(
                    "  {}: {} {} expected {} got {}\n",
                    m.case,
                    m.field,
                    m.kind,
                    m.expected.as_ref().map(|v| v.to_string()).unwrap_or("-".into()),
                    m.predicted.as_ref().map(|v| v.to_string()).unwrap_or("-".into())
                ));
            }
        }
        s
    }

    /// The `--json` object.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cases": self.cases,
            "field_precision": self.field_precision,
            "field_recall": self.field_recall,
            "field_f1": self.field_f1,
            "category_accuracy": self.category_accuracy,
            "severity_accuracy": self.severity_accuracy,
            "sentiment_accuracy": self.sentiment_accuracy,
            "totals": { "tp": self.totals.tp, "fp": self.totals.fp, "fn": self.totals.fn_ },
            "per_field": self.per_field.iter().map(|(k, c)| (k.clone(), serde_json::json!({ "precision": c.precision(), "recall": c.recall(), "f1": c.f1(), "tp": c.tp, "fp": c.fp, "fn": c.fn_ }))).collect::<serde_json::Map<_, _>>(),
            "confusion": self.confusion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SchemaFieldType::*;
    use serde_json::json;

    #[test]
    fn matching_rules() {
        assert!(values_match(Some(String), &json!("HTTP 503 Service Unavailable"), &json!("503")));
        assert!(values_match(Some(String), &json!("  Payments   API "), &json!("payments api")));
        assert!(!values_match(Some(String), &json!("5030"), &json!("503")), "whole phrases only");
        assert!(!values_match(Some(String), &json!("eu-west-1"), &json!("us-east-1")));
        assert!(values_match(Some(String), &json!("/v1/charges endpoint"), &json!("/v1/charges")));
        assert!(values_match(Some(Number), &json!(2000), &json!(2000)));
        assert!(values_match(Some(Number), &json!("2,000"), &json!(2000)));
        assert!(!values_match(Some(Number), &json!(200), &json!(2000)));
        assert!(values_match(Some(Boolean), &json!(true), &json!(true)));
        assert!(!values_match(Some(Boolean), &json!(false), &json!(true)));
        assert!(values_match(Some(Datetime), &json!("2026-03-09T19:00:30Z"), &json!("2026-03-09T15:00:00-04:00")));
        assert!(!values_match(Some(Datetime), &json!("2026-03-09T19:02:00Z"), &json!("2026-03-09T15:00:00-04:00")));
        assert!(values_match(Some(Phone), &json!("(415) 555-0123"), &json!("+14155550123")));
        assert!(values_match(Some(Phone), &json!("+1 415 555 0123"), &json!("+14155550123")));
        assert!(!values_match(Some(Phone), &json!("+14155550124"), &json!("+14155550123")));
    }

    #[test]
    fn micro_averaged_counts() {
        let schema = eval_schema();
        let case: Case = serde_json::from_value(json!({
            "call_time": "2026-03-10T14:20:00Z", "timezone": "UTC",
            "transcript": [{"role": "caller", "text": "hi"}],
            "expected": {"category": "incident", "severity": "sev2", "fields": {"region": "us-east-1", "endpoint": "/v1/x", "affected_users": 10}, "absent": ["error_message"]}
        }))
        .unwrap();
        let mut a = crate::rules::analyze(&case.input(&schema));
        let field = |v: Value| dialnexa_core::ExtractedField { value: v, confidence: 0.9, span: dialnexa_core::Span { turn: 0, start: 0, end: 1 } };
        a.fields.insert("region".into(), field(json!("us-east-1")));
        a.fields.insert("endpoint".into(), field(json!("/v2/y")));
        a.fields.insert("error_message".into(), field(json!("boom")));
        a.fields.insert("plan".into(), field(json!("pro")));
        a.category = Category::Incident;
        let r = score(&[(case, a)]);
        // region TP; endpoint FP+FN; affected_users FN; error_message FP; plan unscored.
        assert_eq!(r.totals, Counts { tp: 1, fp: 2, fn_: 2 });
        assert!((r.field_precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((r.field_recall - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.category_accuracy, 1.0);
        assert_eq!(r.severity_accuracy, 0.0);
        assert_eq!(r.cases, 1);
        let j = r.to_json();
        for k in ["cases", "field_precision", "field_recall", "field_f1", "category_accuracy", "severity_accuracy", "sentiment_accuracy"] {
            assert!(j.get(k).is_some(), "{k}");
        }
    }
}
