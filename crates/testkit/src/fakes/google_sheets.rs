//! Fake Google Sheets API v4 (values.get and values.append), per integrations.md §6.
//!
//! One spreadsheet ([`SPREADSHEET_ID`]) with one sheet, `Incidents`, holding rows of cells.
//! - `GET /v4/spreadsheets/{id}/values/{range}` → `{"range","majorDimension":"ROWS","values"?}`
//!   (`values` is left out when the range is empty, as Google does; columns are cut to the range).
//! - `POST /v4/spreadsheets/{id}/values/{range}:append?valueInputOption=RAW|USER_ENTERED&insertDataOption=…`
//!   with `{"range"?,"majorDimension"?,"values":[[…]]}` → `{"spreadsheetId","tableRange"?,"updates":{…}}`.
//! - Auth: `Authorization: Bearer <token>`; a wrong token gives 401 UNAUTHENTICATED, no token
//!   403 PERMISSION_DENIED, [`FakeSheets::deny_access`] 403 "The caller does not have permission".
//! - Unknown spreadsheet: 404 NOT_FOUND; unknown sheet: 400 "Unable to parse range".
//! - Errors use Google's envelope `{"error":{"code","message","status"}}`; an injected 429 is
//!   RESOURCE_EXHAUSTED with no `Retry-After` (Google sends none).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Control, bearer, json_response, serve};

pub const SPREADSHEET_ID: &str = "1DialNexaFakeSheet_0123456789abcdefghijk";
pub const TOKEN: &str = "ya29.fake-sheets-access-token";
pub const SHEET: &str = "Incidents";

struct Inner {
    token: String,
    spreadsheet_id: String,
    /// Sheets in order, each a list of rows.
    sheets: Vec<(String, Vec<Vec<Value>>)>,
    deny: bool,
}

#[derive(Clone)]
pub struct FakeSheets {
    pub base_url: String,
    pub control: Control,
    pub token: String,
    pub spreadsheet_id: String,
    inner: Arc<Mutex<Inner>>,
}

fn google_error(code: u16, status: &str, message: &str) -> Response {
    json_response(code, json!({ "error": { "code": code, "message": message, "status": status } }))
}

fn error_body(code: u16) -> Response {
    match code {
        400 => google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        ),
        403 => google_error(403, "PERMISSION_DENIED", "The caller does not have permission"),
        404 => google_error(404, "NOT_FOUND", "Requested entity was not found."),
        429 => google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:000000000000'.",
        ),
        500 => google_error(500, "INTERNAL", "Internal error encountered."),
        502 => google_error(502, "UNAVAILABLE", "Bad Gateway"),
        503 => google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
        504 => google_error(504, "DEADLINE_EXCEEDED", "The request timed out."),
        c => google_error(c, "UNKNOWN", "Error"),
    }
}

/// Column letters → 0-based index.
fn col_index(letters: &str) -> Option<usize> {
    if letters.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for c in letters.chars() {
        if !c.is_ascii_alphabetic() {
            return None;
        }
        n = n * 26 + (c.to_ascii_uppercase() as usize - 'A' as usize + 1);
    }
    Some(n - 1)
}

fn col_letters(mut i: usize) -> String {
    let mut s = vec![];
    loop {
        s.push((b'A' + (i % 26) as u8) as char);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.iter().rev().collect()
}

fn quote_sheet(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') { name.to_owned() } else { format!("'{}'", name.replace('\'', "''")) }
}

/// A parsed range: sheet index, first and last column (0-based, inclusive).
struct Target {
    sheet: usize,
    first: usize,
    last: Option<usize>,
}

impl Inner {
    fn resolve(&self, range: &str) -> Option<Target> {
        let (sheet_name, cells) = match range.rfind('!') {
            Some(i) => (Some(&range[..i]), &range[i + 1..]),
            None => match self.sheets.iter().any(|(n, _)| n == range) {
                true => (Some(range), ""),
                false => (None, range),
            },
        };
        let sheet = match sheet_name {
            Some(n) => {
                let n = n.strip_prefix('\'').and_then(|n| n.strip_suffix('\'')).map(|n| n.replace("''", "'")).unwrap_or_else(|| n.to_owned());
                self.sheets.iter().position(|(name, _)| *name == n)?
            }
            None => 0,
        };
        if cells.is_empty() {
            return Some(Target { sheet, first: 0, last: None });
        }
        let (a, b) = cells.split_once(':').unwrap_or((cells, cells));
        let letters = |s: &str| s.chars().take_while(char::is_ascii_alphabetic).collect::<String>();
        let digits_ok = |s: &str| s.chars().skip_while(char::is_ascii_alphabetic).all(|c| c.is_ascii_digit());
        if !digits_ok(a) || !digits_ok(b) {
            return None;
        }
        Some(Target { sheet, first: col_index(&letters(a)).unwrap_or(0), last: col_index(&letters(b)) })
    }
}

impl FakeSheets {
    pub async fn start() -> Self {
        let control = Control::default();
        let inner =
            Arc::new(Mutex::new(Inner { token: TOKEN.into(), spreadsheet_id: SPREADSHEET_ID.into(), sheets: vec![(SHEET.into(), vec![])], deny: false }));
        let mut fake = FakeSheets { base_url: String::new(), control: control.clone(), token: TOKEN.into(), spreadsheet_id: SPREADSHEET_ID.into(), inner };
        let router = Router::new().route("/v4/spreadsheets/{id}/values/{range}", get(get_values).post(append)).with_state(fake.clone());
        fake.base_url = serve(router, control, error_body).await;
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rows of a sheet, as stored.
    pub fn rows(&self, sheet: &str) -> Vec<Vec<Value>> {
        self.lock().sheets.iter().find(|(n, _)| n == sheet).map(|(_, r)| r.clone()).unwrap_or_default()
    }

    /// Add a row as if a person had typed it.
    pub fn seed_row(&self, sheet: &str, row: Vec<&str>) {
        let mut st = self.lock();
        let row = row.into_iter().map(|c| Value::String(c.to_owned())).collect();
        match st.sheets.iter_mut().find(|(n, _)| n == sheet) {
            Some((_, rows)) => rows.push(row),
            None => st.sheets.push((sheet.to_owned(), vec![row])),
        }
    }

    pub fn add_sheet(&self, name: &str) {
        let mut st = self.lock();
        if !st.sheets.iter().any(|(n, _)| n == name) {
            st.sheets.push((name.to_owned(), vec![]));
        }
    }

    /// The spreadsheet is no longer shared with the token's account: 403.
    pub fn deny_access(&self, deny: bool) {
        self.lock().deny = deny;
    }
}

fn check(st: &Inner, headers: &HeaderMap, id: &str) -> Option<Response> {
    match bearer(headers) {
        None => return Some(google_error(403, "PERMISSION_DENIED", "The request is missing a valid API key.")),
        Some(t) if t != st.token => return Some(error_body(401)),
        _ => {}
    }
    if id != st.spreadsheet_id {
        return Some(error_body(404));
    }
    if st.deny {
        return Some(error_body(403));
    }
    None
}

async fn get_values(
    State(fake): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let st = fake.lock();
    if let Some(r) = check(&st, &headers, &id) {
        return r;
    }
    if q.get("majorDimension").is_some_and(|d| d != "ROWS" && d != "COLUMNS") {
        return google_error(400, "INVALID_ARGUMENT", "Invalid value at 'major_dimension'");
    }
    let Some(t) = st.resolve(&range) else {
        return google_error(400, "INVALID_ARGUMENT", &format!("Unable to parse range: {range}"));
    };
    let (name, rows) = &st.sheets[t.sheet];
    let mut values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let end = t.last.map(|l| (l + 1).min(r.len())).unwrap_or(r.len());
            let mut cells: Vec<Value> = if t.first < end { r[t.first..end].to_vec() } else { vec![] };
            while cells.last().is_some_and(|c| c.as_str() == Some("")) {
                cells.pop();
            }
            Value::Array(cells)
        })
        .collect();
    while values.last().is_some_and(|v| v.as_array().is_some_and(Vec::is_empty)) {
        values.pop();
    }
    let last_col = t.last.map(col_letters).unwrap_or_else(|| col_letters(rows.iter().map(Vec::len).max().unwrap_or(1).max(1) - 1));
    let grid_rows = rows.len().max(1000);
    let mut body = json!({ "range": format!("{}!{}1:{last_col}{grid_rows}", quote_sheet(name), col_letters(t.first)), "majorDimension": "ROWS" });
    if !values.is_empty() {
        body["values"] = Value::Array(values);
    }
    json_response(200, body)
}

async fn append(
    State(fake): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(range) = range.strip_suffix(":append") else {
        return json_response(404, json!({ "error": { "code": 404, "message": "Method not found.", "status": "NOT_FOUND" } }));
    };
    let mut st = fake.lock();
    if let Some(r) = check(&st, &headers, &id) {
        return r;
    }
    match q.get("valueInputOption").map(String::as_str) {
        None => return google_error(400, "INVALID_ARGUMENT", "'valueInputOption' is required but not specified"),
        Some("RAW" | "USER_ENTERED") => {}
        Some(other) => {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                &format!("Invalid value at 'value_input_option' (type.googleapis.com/google.apps.sheets.v4.ValueInputOption), \"{other}\""),
            );
        }
    }
    if let Some(o) = q.get("insertDataOption")
        && o != "INSERT_ROWS"
        && o != "OVERWRITE"
    {
        return google_error(400, "INVALID_ARGUMENT", &format!("Invalid value at 'insert_data_option', \"{o}\""));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.");
    };
    if let Some(r) = v.get("range").and_then(Value::as_str)
        && r != range
    {
        return google_error(400, "INVALID_ARGUMENT", &format!("Requested writing within range [{range}], but tried writing to [{r}]"));
    }
    let Some(rows) = v.get("values").and_then(Value::as_array).filter(|rows| rows.iter().all(Value::is_array)) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid value at 'data.values' (type.googleapis.com/google.protobuf.ListValue)");
    };
    let Some(t) = st.resolve(range) else {
        return google_error(400, "INVALID_ARGUMENT", &format!("Unable to parse range: {range}"));
    };
    let spreadsheet_id = st.spreadsheet_id.clone();
    let (name, sheet_rows) = &mut st.sheets[t.sheet];
    let before = sheet_rows.len();
    let width = rows.iter().filter_map(Value::as_array).map(Vec::len).max().unwrap_or(0);
    for r in rows {
        let mut row = vec![Value::String(String::new()); t.first];
        row.extend(r.as_array().cloned().unwrap_or_default().into_iter().map(|c| match c {
            Value::String(_) => c,
            Value::Null => Value::String(String::new()),
            other => Value::String(other.to_string()),
        }));
        sheet_rows.push(row);
    }
    let first = col_letters(t.first);
    let last = col_letters(t.first + width.max(1) - 1);
    let sheet = quote_sheet(name);
    let mut out = json!({
        "spreadsheetId": spreadsheet_id,
        "updates": {
            "spreadsheetId": spreadsheet_id,
            "updatedRange": format!("{sheet}!{first}{}:{last}{}", before + 1, before + rows.len()),
            "updatedRows": rows.len(),
            "updatedColumns": width,
            "updatedCells": rows.iter().filter_map(Value::as_array).map(Vec::len).sum::<usize>(),
        }
    });
    if before > 0 {
        out["tableRange"] = json!(format!("{sheet}!{first}1:{last}{before}"));
    }
    json_response(200, out)
}
