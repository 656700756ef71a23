//! Google Sheets: the incident review log.
//!
//! Action `append_row`: one row per call in `range` (default `Incidents!A:L`), whose first
//! column is the key column (the DialNexa call id). Columns: call id, date (RFC 3339), customer,
//! category, severity, title, urgency, owner, status (`options.status` or "open"), next step,
//! call link, evidence link(s).
//!
//! Exactly-once: the Sheets API takes no idempotency key. Before appending, the connector reads
//! `GET /v4/spreadsheets/{id}/values/{range}` and looks for the call id in the key column; a
//! match is returned as `deduplicated` with that row's range. Values are written with
//! `valueInputOption=RAW`, so a caller's words are never evaluated as formulas. Remaining risk:
//! two deliveries of the same call racing between the read and the append (the delivery queue
//! runs one attempt per handoff at a time), and rows whose key cell was edited by hand.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connector::{AttemptLog, Connector, Delivered, DeliveryError, Exchange, HandoffRequest, Outcome, excerpt, redact_url, send};
use crate::kind::IntegrationKind;
use crate::payload::HandoffPayload;

pub const ACTIONS: &[&str] = &["append_row"];

pub const DEFAULT_RANGE: &str = "Incidents!A:L";
pub const DEFAULT_BASE_URL: &str = "https://sheets.googleapis.com";
/// A cell holds at most 50,000 characters.
const CELL_MAX: usize = 50_000;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub spreadsheet_id: String,
    /// OAuth2 access token with the `spreadsheets` scope.
    pub access_token: String,
    #[serde(default)]
    pub range: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("spreadsheet_id", &self.spreadsheet_id)
            .field("access_token", &"<redacted>")
            .field("range", &self.range)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let id = self.spreadsheet_id.trim();
        if id.is_empty() {
            return Err("spreadsheet_id: is required".into());
        }
        if id.len() > 200 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err("spreadsheet_id: must be the id from the sheet's URL (letters, digits, '-' and '_')".into());
        }
        if self.access_token.trim().is_empty() {
            return Err("access_token: is required".into());
        }
        if self.access_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("access_token: must not contain spaces or control characters".into());
        }
        if let Some(r) = &self.range {
            if r.trim().is_empty() {
                return Err("range: must not be empty (omit it for Incidents!A:L)".into());
            }
            if r.len() > 200 || r.chars().any(char::is_control) {
                return Err("range: must be an A1 range such as Incidents!A:L".into());
            }
        }
        if let Some(b) = &self.base_url
            && !(b.starts_with("http://") || b.starts_with("https://"))
        {
            return Err("base_url: must be an http:// or https:// URL".into());
        }
        Ok(())
    }

    fn range(&self) -> &str {
        self.range.as_deref().map(str::trim).unwrap_or(DEFAULT_RANGE)
    }
}

pub struct GoogleSheets {
    config: Config,
    client: reqwest::Client,
}

/// Percent-encode one path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `pairs` appended as a form-encoded query string.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// `Sheet!A1:L57` → (sheet part with its `!`, first column, first row, last column).
fn parse_a1(range: &str) -> Option<(String, String, u64, String)> {
    let (sheet, cells) = match range.rfind('!') {
        Some(i) => (&range[..=i], &range[i + 1..]),
        None => ("", range),
    };
    let (start, end) = cells.split_once(':').unwrap_or((cells, cells));
    let col: String = start.chars().take_while(char::is_ascii_alphabetic).collect();
    let row: u64 = start[col.len()..].parse().ok()?;
    let end_col: String = end.chars().take_while(char::is_ascii_alphabetic).collect();
    if col.is_empty() {
        return None;
    }
    Some((sheet.to_owned(), col, row, if end_col.is_empty() { start.to_owned() } else { end_col }))
}

fn cell(v: impl Into<String>) -> Value {
    let s: String = v.into();
    Value::String(if s.chars().count() > CELL_MAX { s.chars().take(CELL_MAX).collect() } else { s })
}

/// The row for a call, in column order.
pub fn row(p: &HandoffPayload, date: &str) -> Vec<Value> {
    let status = p.options.get("status").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).unwrap_or("open");
    let customer = p.caller.customer.clone().or_else(|| p.caller.account.clone()).or_else(|| p.caller.name.clone()).unwrap_or_default();
    let evidence: Vec<&str> = p.links.evidence.values().map(String::as_str).collect();
    vec![
        cell(p.call_id.clone()),
        cell(date),
        cell(customer),
        cell(p.category.clone()),
        cell(p.severity.clone().unwrap_or_default()),
        cell(p.title.clone()),
        cell(p.urgency.clone()),
        cell(p.owner.clone().unwrap_or_default()),
        cell(status),
        cell(p.next_step.clone()),
        cell(p.links.call.clone()),
        cell(evidence.join("\n")),
    ]
}

fn google_error(x: &Exchange, what: &str) -> DeliveryError {
    let mut e = x.error(what);
    let detail = x.json().and_then(|v| {
        let err = v.get("error")?;
        let status = err.get("status").and_then(Value::as_str).unwrap_or("");
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        Some(format!("{status} {}", excerpt(message, 200)).trim().to_owned())
    });
    if let Some(d) = &detail {
        e.message = format!("{what} answered {}: {d}", x.status);
    }
    match x.status {
        401 => {
            e.retryable = false;
            e.message = format!(
                "Google Sheets rejected the access token (401{}): refresh or replace access_token",
                detail.map(|d| format!(", {d}")).unwrap_or_default()
            );
        }
        403 => {
            e.retryable = false;
            e.message = format!(
                "Google Sheets refused access (403{}): share the spreadsheet with the token's account and grant the spreadsheets scope",
                detail.map(|d| format!(", {d}")).unwrap_or_default()
            );
        }
        404 => e.message = format!("{what} answered 404: the spreadsheet was not found (check spreadsheet_id)"),
        _ => {}
    }
    e
}

impl GoogleSheets {
    pub fn new(config: Config, client: reqwest::Client) -> Self {
        Self { config, client }
    }

    fn values_url(&self) -> String {
        let base = self.config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        format!("{base}/v4/spreadsheets/{}/values/{}", self.config.spreadsheet_id.trim(), encode_segment(self.config.range()))
    }

    fn sheet_url(&self) -> String {
        format!("https://docs.google.com/spreadsheets/d/{}/edit", self.config.spreadsheet_id.trim())
    }

    async fn exchange(&self, rb: reqwest::RequestBuilder, shown: String, log: &mut Vec<AttemptLog>) -> Result<Exchange, DeliveryError> {
        match send(rb.bearer_auth(self.config.access_token.trim()), shown).await {
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

    /// The range of the row whose key cell holds `call_id`, if any.
    async fn find(&self, call_id: &str, log: &mut Vec<AttemptLog>) -> Result<Option<(Option<String>, usize)>, DeliveryError> {
        let url = self.values_url();
        let rb = self.client.get(with_query(&url, &[("majorDimension", "ROWS")]));
        let x = self.exchange(rb, format!("GET {}", redact_url(&url)), log).await?;
        if !x.ok() {
            return Err(google_error(&x, "Google Sheets (read)"));
        }
        let Some(v) = x.json() else {
            return Err(DeliveryError::retry(format!("Google Sheets (read) answered {} with a body that is not JSON", x.status)));
        };
        let rows = v.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
        // Cells come back as formatted strings (valueRenderOption FORMATTED_VALUE).
        let found = rows.iter().position(|r| r.as_array().and_then(|r| r.first()).and_then(Value::as_str).is_some_and(|s| s.trim() == call_id));
        Ok(found.map(|i| {
            let range = v.get("range").and_then(Value::as_str).and_then(parse_a1).map(|(sheet, col, row, end)| {
                let n = row + i as u64;
                format!("{sheet}{col}{n}:{end}{n}")
            });
            (range, i)
        }))
    }

    async fn run(&self, req: &HandoffRequest, log: &mut Vec<AttemptLog>) -> Result<Delivered, DeliveryError> {
        if req.action != "append_row" {
            return Err(DeliveryError::fatal(format!("google_sheets: unknown action '{}' (expected append_row)", excerpt(&req.action, 40))));
        }
        let call_id = req.payload.call_id.trim();
        if call_id.is_empty() {
            return Err(DeliveryError::fatal("google_sheets: the payload has no call id for the key column"));
        }
        if let Some((range, index)) = self.find(call_id, log).await? {
            return Ok(Delivered {
                external_id: range.clone(),
                external_url: Some(self.sheet_url()),
                evidence: json!({ "spreadsheet_id": self.config.spreadsheet_id.trim(), "updated_range": range, "row_index": index, "found_by": "key column" }),
                deduplicated: true,
            });
        }
        let date = req
            .payload
            .options
            .get("date")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(jiff::Timestamp::now)
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let url = format!("{}:append", self.values_url());
        let body = json!({ "range": self.config.range(), "majorDimension": "ROWS", "values": [row(&req.payload, &date)] });
        let rb = self.client.post(with_query(&url, &[("valueInputOption", "RAW"), ("insertDataOption", "INSERT_ROWS")])).json(&body);
        let x = self.exchange(rb, format!("POST {}", redact_url(&url)), log).await?;
        if !x.ok() {
            return Err(google_error(&x, "Google Sheets (append)"));
        }
        let v = x.json().unwrap_or(Value::Null);
        let updated = v.pointer("/updates/updatedRange").and_then(Value::as_str).map(str::to_owned);
        Ok(Delivered {
            external_id: updated.clone(),
            external_url: Some(self.sheet_url()),
            evidence: json!({
                "spreadsheet_id": self.config.spreadsheet_id.trim(),
                "updated_range": updated,
                "table_range": v.get("tableRange"),
                "updated_cells": v.pointer("/updates/updatedCells"),
            }),
            deduplicated: false,
        })
    }
}

#[async_trait]
impl Connector for GoogleSheets {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::GoogleSheets
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
    fn a1_ranges() {
        assert_eq!(parse_a1("Incidents!A1:L57"), Some(("Incidents!".into(), "A".into(), 1, "L".into())));
        assert_eq!(parse_a1("'My log'!B2:M3"), Some(("'My log'!".into(), "B".into(), 2, "M".into())));
        assert_eq!(parse_a1("Incidents!A:L"), None);
        assert_eq!(encode_segment("Incidents!A:L"), "Incidents%21A%3AL");
    }
}
