//! Fake HubSpot CRM v3 notes, per integrations.md §7.
//!
//! - `POST /crm/v3/objects/notes` (and the date-versioned `/crm/objects/2026-03/notes`):
//!   `hs_timestamp` required (else 400 VALIDATION_ERROR), `hs_note_body` ≤ 65,536 characters,
//!   associations to seeded companies (type 190) and contacts (202); 201
//!   `{id,properties,createdAt,updatedAt,archived:false}` [unverified shape].
//! - `POST /crm/v3/objects/notes/search`: `filterGroups` (OR of ANDed filters; EQ, NEQ,
//!   CONTAINS_TOKEN, NOT_CONTAINS_TOKEN, HAS_PROPERTY, NOT_HAS_PROPERTY), `properties`, `limit`,
//!   `after` → `{total,results,paging?}` [unverified]. CONTAINS_TOKEN matches whole tokens
//!   (split on anything but letters, digits, '-' and '_'), case-insensitively, `*` wildcards.
//! - `GET /crm/v3/objects/notes/{id}`.
//! - Auth: `Authorization: Bearer <token>`; otherwise 401 INVALID_AUTHENTICATION.
//! - Errors: `{"status":"error","message","correlationId","category"}`; 429 is the reference's
//!   `{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT",…}`
//!   (`Fault::RateLimited` adds `Retry-After`, `Fault::Status(429)` does not: both [unverified]).
//! - Switch: [`FakeHubspot::set_index_lag`]: new notes stay invisible to search until
//!   [`FakeHubspot::index_now`] (HubSpot's search index lags writes).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{Control, bearer, json_response, serve};

pub const TOKEN: &str = "pat-na1-fake-hubspot-token-0000";

#[derive(Debug, Clone, PartialEq)]
pub struct FakeNote {
    pub id: String,
    pub properties: Map<String, Value>,
    /// (to object id, associationTypeId).
    pub associations: Vec<(String, u64)>,
    pub created_at: String,
    indexed: bool,
}

impl FakeNote {
    pub fn body(&self) -> &str {
        self.properties.get("hs_note_body").and_then(Value::as_str).unwrap_or("")
    }
}

struct Inner {
    token: String,
    notes: Vec<FakeNote>,
    companies: BTreeSet<String>,
    contacts: BTreeSet<String>,
    next_id: u64,
    index_lag: bool,
}

#[derive(Clone)]
pub struct FakeHubspot {
    pub base_url: String,
    pub control: Control,
    pub token: String,
    inner: Arc<Mutex<Inner>>,
}

fn correlation() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn hs_error(code: u16, category: &str, message: &str) -> Response {
    json_response(code, json!({ "status": "error", "message": message, "correlationId": correlation(), "category": category }))
}

fn error_body(code: u16) -> Response {
    match code {
        400 => hs_error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1"),
        401 => hs_error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ),
        403 => hs_error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        ),
        404 => hs_error(404, "OBJECT_NOT_FOUND", "resource not found"),
        429 => json_response(
            429,
            json!({
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation(),
                "policyName": "SECONDLY",
                "requestId": correlation(),
            }),
        ),
        c => hs_error(c, "INTERNAL_ERROR", "internal error"),
    }
}

fn now_iso() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string()
}

fn timestamp_ok(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_i64().is_some(),
        Value::String(s) => s.parse::<i64>().is_ok() || s.parse::<jiff::Timestamp>().is_ok(),
        _ => false,
    }
}

fn prop_text(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn glob(pattern: &str, s: &str) -> bool {
    let p = pattern.to_lowercase();
    let s = s.to_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == s;
    }
    let mut rest = s.as_str();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn contains_token(text: &str, value: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')).any(|tok| !tok.is_empty() && glob(value, tok))
}

/// Does a note pass one filter? `Err` for an unknown operator.
fn filter_ok(note: &FakeNote, f: &Value) -> Result<bool, String> {
    let prop = f.get("propertyName").and_then(Value::as_str).unwrap_or("");
    let op = f.get("operator").and_then(Value::as_str).unwrap_or("EQ");
    let value = prop_text(f.get("value")).unwrap_or_default();
    let actual = if prop == "hs_object_id" { Some(note.id.clone()) } else { prop_text(note.properties.get(prop)) };
    Ok(match op {
        "EQ" => actual.is_some_and(|a| a.eq_ignore_ascii_case(&value)),
        "NEQ" => !actual.is_some_and(|a| a.eq_ignore_ascii_case(&value)),
        "CONTAINS_TOKEN" => actual.is_some_and(|a| contains_token(&a, &value)),
        "NOT_CONTAINS_TOKEN" => !actual.is_some_and(|a| contains_token(&a, &value)),
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        other => return Err(other.to_owned()),
    })
}

fn note_json(n: &FakeNote, props: Option<&[String]>) -> Value {
    let mut properties = Map::new();
    for (k, v) in &n.properties {
        if props.is_none_or(|p| p.iter().any(|x| x == k)) {
            properties.insert(k.clone(), v.clone());
        }
    }
    properties.insert("hs_object_id".into(), json!(n.id));
    properties.insert("hs_createdate".into(), json!(n.created_at));
    properties.insert("hs_lastmodifieddate".into(), json!(n.created_at));
    json!({ "id": n.id, "properties": properties, "createdAt": n.created_at, "updatedAt": n.created_at, "archived": false })
}

impl FakeHubspot {
    pub async fn start() -> Self {
        let control = Control::default();
        let inner = Arc::new(Mutex::new(Inner {
            token: TOKEN.into(),
            notes: vec![],
            companies: BTreeSet::new(),
            contacts: BTreeSet::new(),
            next_id: 71_000_000_001,
            index_lag: false,
        }));
        let mut fake = FakeHubspot { base_url: String::new(), control: control.clone(), token: TOKEN.into(), inner };
        let router = Router::new()
            .route("/crm/v3/objects/notes", post(create))
            .route("/crm/objects/2026-03/notes", post(create))
            .route("/crm/v3/objects/notes/search", post(search))
            .route("/crm/objects/2026-03/notes/search", post(search))
            .route("/crm/v3/objects/notes/{id}", get(read))
            .with_state(fake.clone());
        fake.base_url = serve(router, control, error_body).await;
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notes(&self) -> Vec<FakeNote> {
        self.lock().notes.clone()
    }

    pub fn seed_company(&self, id: &str) {
        self.lock().companies.insert(id.to_owned());
    }

    pub fn seed_contact(&self, id: &str) {
        self.lock().contacts.insert(id.to_owned());
    }

    /// A note someone (or an earlier delivery) already wrote; searchable at once.
    pub fn seed_note(&self, body: &str) -> String {
        let mut st = self.lock();
        let id = st.next_id.to_string();
        st.next_id += 1;
        let mut properties = Map::new();
        properties.insert("hs_note_body".into(), json!(body));
        properties.insert("hs_timestamp".into(), json!(now_iso()));
        st.notes.push(FakeNote { id: id.clone(), properties, associations: vec![], created_at: now_iso(), indexed: true });
        id
    }

    /// While on, new notes are not found by search until [`Self::index_now`].
    pub fn set_index_lag(&self, on: bool) {
        self.lock().index_lag = on;
    }

    pub fn index_now(&self) {
        for n in &mut self.lock().notes {
            n.indexed = true;
        }
    }
}

fn authed(st: &Inner, headers: &HeaderMap) -> Option<Response> {
    if bearer(headers).as_deref() == Some(st.token.as_str()) { None } else { Some(error_body(401)) }
}

fn validation(message: String) -> Response {
    hs_error(400, "VALIDATION_ERROR", &message)
}

async fn create(State(fake): State<FakeHubspot>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = fake.lock();
    if let Some(r) = authed(&st, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error_body(400);
    };
    let Some(props) = v.get("properties").and_then(Value::as_object).cloned() else {
        return validation("Invalid input JSON: 'properties' is required".into());
    };
    match props.get("hs_timestamp") {
        None => {
            return validation(
                "Property values were not valid: [{\"isValid\":false,\"message\":\"Property hs_timestamp is required\",\"error\":\"REQUIRED_PROPERTY\",\"name\":\"hs_timestamp\"}]".into(),
            );
        }
        Some(t) if !timestamp_ok(t) => {
            return validation(format!(
                "Property values were not valid: [{{\"isValid\":false,\"message\":\"{} was not a valid long.\",\"error\":\"INVALID_LONG\",\"name\":\"hs_timestamp\"}}]",
                prop_text(Some(t)).unwrap_or_default().replace('"', "")
            ));
        }
        _ => {}
    }
    if props.get("hs_note_body").and_then(Value::as_str).is_some_and(|b| b.chars().count() > 65_536) {
        return validation(
            "Property values were not valid: [{\"isValid\":false,\"message\":\"hs_note_body exceeds the maximum length of 65536\",\"error\":\"INVALID_PROPERTY_VALUE\",\"name\":\"hs_note_body\"}]".into(),
        );
    }
    let mut associations = vec![];
    for a in v.get("associations").and_then(Value::as_array).cloned().unwrap_or_default() {
        let to = a.pointer("/to/id").and_then(|i| prop_text(Some(i))).unwrap_or_default();
        let types = a.get("types").and_then(Value::as_array).cloned().unwrap_or_default();
        if types.is_empty() {
            return validation("Invalid association: 'types' is required".into());
        }
        for t in types {
            let category = t.get("associationCategory").and_then(Value::as_str).unwrap_or("");
            let type_id = t.get("associationTypeId").and_then(Value::as_u64).unwrap_or(0);
            let known = match type_id {
                190 => st.companies.contains(&to),
                202 => st.contacts.contains(&to),
                _ => false,
            };
            if category != "HUBSPOT_DEFINED" || !known {
                return validation(format!("One or more associations are invalid: note to {to} with association type {type_id} ({category})"));
            }
            associations.push((to.clone(), type_id));
        }
    }
    let id = st.next_id.to_string();
    st.next_id += 1;
    let created = now_iso();
    let indexed = !st.index_lag;
    let note = FakeNote { id, properties: props, associations, created_at: created, indexed };
    let out = note_json(&note, None);
    st.notes.push(note);
    json_response(201, out)
}

async fn search(State(fake): State<FakeHubspot>, headers: HeaderMap, body: Bytes) -> Response {
    let st = fake.lock();
    if let Some(r) = authed(&st, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error_body(400);
    };
    let groups = v.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    let limit = v.get("limit").and_then(Value::as_u64).unwrap_or(10);
    if limit > 200 {
        return validation("limit must be at most 200".into());
    }
    let after: usize = v.get("after").and_then(|a| prop_text(Some(a))).and_then(|a| a.parse().ok()).unwrap_or(0);
    let props: Option<Vec<String>> = v.get("properties").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let mut hits = vec![];
    for n in st.notes.iter().filter(|n| n.indexed) {
        let mut any = groups.is_empty();
        for g in &groups {
            let mut all = true;
            for f in g.get("filters").and_then(Value::as_array).cloned().unwrap_or_default() {
                match filter_ok(n, &f) {
                    Ok(ok) => all &= ok,
                    Err(op) => return validation(format!("Unsupported filter operator: {op}")),
                }
            }
            any |= all;
        }
        if any {
            hits.push(n);
        }
    }
    let total = hits.len();
    let page: Vec<Value> = hits.iter().skip(after).take(limit as usize).map(|n| note_json(n, props.as_deref())).collect();
    let mut out = json!({ "total": total, "results": page });
    if after + (limit as usize) < total {
        out["paging"] = json!({ "next": { "after": (after + limit as usize).to_string() } });
    }
    json_response(200, out)
}

async fn read(State(fake): State<FakeHubspot>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let st = fake.lock();
    if let Some(r) = authed(&st, &headers) {
        return r;
    }
    match st.notes.iter().find(|n| n.id == id) {
        Some(n) => json_response(200, note_json(n, None)),
        None => error_body(404),
    }
}
