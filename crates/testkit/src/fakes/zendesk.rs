//! Fake Zendesk Support, per `reference/integrations.md` §5.
//!
//! - `POST /api/v2/tickets(.json)`: Basic `{email}/token:{api_token}` (or a Bearer token when
//!   set); `Idempotency-Key` (at most 255 characters): `x-idempotency-lookup: miss` the first
//!   time, `hit` on a replay which returns the original response, the same key with another body
//!   → 400 `IdempotentRequestError`; keys kept 2 h. Validation → 422 `RecordInvalid`. Success
//!   201 `{"ticket":{…},"audit":{…}}` with `Location`.
//! - `GET /api/v2/tickets(.json)?external_id=` lists the matches (`{"tickets":[…],…}`);
//!   `GET /api/v2/tickets/{id}(.json)`.
//! - `GET /api/v2/search(.json)?query=type:ticket …` → `{"results":[…],"count",…}`.
//! - comments (Zendesk's Tickets and Ticket Comments reference; integrations.md §5 does not list
//!   them): `PUT /api/v2/tickets/{id}(.json)` `{"ticket":{"comment":{"body"|"html_body","public"?},
//!   "status"?,"priority"?,"tags"?}}` → 200 `{"ticket","audit":{"events":[{"type":"Comment","id",…}]}}`
//!   (`public` defaults to true, as in Zendesk); an unknown or deleted ticket → 404
//!   `RecordNotFound`; a closed ticket → 422 `RecordInvalid` ("Status: closed prevents ticket
//!   update"); a blank comment → 422. `GET /api/v2/tickets/{id}/comments(.json)` lists them,
//!   the ticket's first comment included: offset pages (`page`, `per_page` ≤ 100, `next_page`),
//!   or cursor pages with `page[size]` (`meta.has_more`, `links.next`), `sort_order=asc|desc`.
//!   Every comment received is stored ([`FakeZendesk::comments`]): the fake never de-duplicates.
//!   Idempotency keys apply to ticket creation only.
//! - Injected faults answer Zendesk's bodies: 429 as text (with `Retry-After` from the fault
//!   layer), other errors as `{"error","description"}`.
//!
//! Switches ([`ZendeskSwitches`]) for the [unverified] points: search lag, concurrent in-flight
//! duplicates of one idempotency key, the IdempotentRequestError text, a create delay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::jira::basic_credentials;
use super::{Control, bearer, json_response, percent_decode, serve};

/// What a second request with an idempotency key still in flight gets ([unverified]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    /// 409 `IdempotentRequestError` ("in progress").
    Conflict,
    /// Waits for the first, then gets its response replayed.
    Wait,
    /// No protection: both create a ticket.
    Duplicate,
}

/// Switches for what `integrations.md` marks [unverified].
#[derive(Debug, Clone)]
pub struct ZendeskSwitches {
    /// A new ticket is invisible to the first N `search.json` queries (the search index lags).
    pub search_lag: u32,
    /// Concurrent requests with one idempotency key.
    pub in_flight: InFlight,
    /// Time a create takes (to make concurrent requests overlap).
    pub create_delay: Duration,
    /// The `description` of the IdempotentRequestError.
    pub idempotency_error_description: String,
    /// How long idempotency keys are kept.
    pub idempotency_ttl: Duration,
    /// An OAuth bearer token that is accepted too.
    pub bearer_token: Option<String>,
}

impl Default for ZendeskSwitches {
    fn default() -> Self {
        ZendeskSwitches {
            search_lag: 0,
            in_flight: InFlight::Conflict,
            create_delay: Duration::ZERO,
            idempotency_error_description: "Request parameters don't match the given idempotency key".into(),
            idempotency_ttl: Duration::from_secs(2 * 3600),
            bearer_token: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Requester {
    pub id: u64,
    pub name: String,
    pub email: String,
}

/// A ticket as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZendeskTicket {
    pub id: u64,
    pub subject: String,
    /// The first comment.
    pub comment_body: String,
    pub comment_public: bool,
    pub requester: Option<Requester>,
    pub external_id: Option<String>,
    pub tags: Vec<String>,
    pub priority: Option<String>,
    pub ticket_type: Option<String>,
    pub status: String,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
    /// The `ticket` object as sent.
    pub raw: Value,
    pub created_at: String,
    hidden_for: u32,
}

/// A ticket comment as the fake holds it (the ticket's first comment included).
#[derive(Debug, Clone, PartialEq)]
pub struct ZendeskComment {
    pub id: u64,
    pub ticket_id: u64,
    pub body: String,
    pub public: bool,
    pub created_at: String,
}

struct Stored {
    body: Value,
    at: Instant,
    /// None while the first request is in flight.
    response: Option<(u16, Value, String)>,
}

struct Inner {
    email: String,
    api_token: String,
    tickets: Vec<ZendeskTicket>,
    comments: Vec<ZendeskComment>,
    next_comment_id: u64,
    users: Vec<Requester>,
    keys: HashMap<String, Stored>,
    next_id: u64,
    switches: ZendeskSwitches,
    base_url: String,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
pub struct FakeZendesk {
    /// Use as the connector's `base_url` (the API is under `/api/v2`).
    pub base_url: String,
    pub email: String,
    pub api_token: String,
    pub control: Control,
    state: Shared,
}

fn error_json(status: u16, error: &str, description: &str) -> Response {
    json_response(status, json!({ "error": error, "description": description }))
}

fn error_body(status: u16) -> Response {
    match status {
        429 => (StatusCode::TOO_MANY_REQUESTS, [("content-type", "text/plain")], "Too Many Requests").into_response(),
        401 => json_response(401, json!({ "error": "Couldn't authenticate you" })),
        403 => error_json(403, "Forbidden", "You do not have access to this page. Please contact the account owner of this help desk for further help."),
        404 => error_json(404, "RecordNotFound", "Not found"),
        422 => json_response(422, json!({ "error": "RecordInvalid", "description": "Record validation errors", "details": {} })),
        503 => (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "text/plain")], "Service Unavailable: maintenance").into_response(),
        s => error_json(s, "InternalError", "Something went wrong"),
    }
}

impl FakeZendesk {
    pub async fn start() -> Self {
        let control = Control::default();
        let email = "agent@acme.example".to_owned();
        let api_token = "zdTokenFake0123456789SECRET".to_owned();
        let state: Shared = Arc::new(Mutex::new(Inner {
            email: email.clone(),
            api_token: api_token.clone(),
            tickets: Vec::new(),
            comments: Vec::new(),
            next_comment_id: 5000,
            users: Vec::new(),
            keys: HashMap::new(),
            next_id: 100,
            switches: ZendeskSwitches::default(),
            base_url: String::new(),
        }));
        let router = Router::new()
            .route("/api/v2/tickets", get(list_tickets).post(create_ticket))
            .route("/api/v2/tickets.json", get(list_tickets).post(create_ticket))
            .route("/api/v2/tickets/{id}", get(show_ticket).put(update_ticket))
            .route("/api/v2/tickets/{id}/comments", get(list_comments))
            .route("/api/v2/tickets/{id}/comments.json", get(list_comments))
            .route("/api/v2/search", get(search))
            .route("/api/v2/search.json", get(search))
            .with_state(state.clone());
        let base_url = serve(router, control.clone(), error_body).await;
        lock(&state).base_url = base_url.clone();
        FakeZendesk { base_url, email, api_token, control, state }
    }

    /// Every ticket, in order of creation.
    pub fn tickets(&self) -> Vec<ZendeskTicket> {
        lock(&self.state).tickets.clone()
    }

    /// End users created as requesters.
    pub fn users(&self) -> Vec<Requester> {
        lock(&self.state).users.clone()
    }

    /// Put a ticket there as if it existed before; returns its id.
    pub fn seed_ticket(&self, subject: &str, external_id: Option<&str>) -> u64 {
        let mut st = lock(&self.state);
        let raw = json!({ "subject": subject, "comment": { "body": "seeded" }, "external_id": external_id });
        insert_ticket(&mut st, &raw, None, 0).id
    }

    /// The comments of a ticket, in order (its first comment included).
    pub fn comments(&self, ticket_id: u64) -> Vec<ZendeskComment> {
        lock(&self.state).comments.iter().filter(|c| c.ticket_id == ticket_id).cloned().collect()
    }

    /// Delete a ticket, as an agent would: it answers 404 afterwards.
    pub fn delete_ticket(&self, ticket_id: u64) {
        let mut st = lock(&self.state);
        st.tickets.retain(|t| t.id != ticket_id);
        st.comments.retain(|c| c.ticket_id != ticket_id);
    }

    /// Close a ticket: it takes no more comments (422).
    pub fn close_ticket(&self, ticket_id: u64) {
        for t in lock(&self.state).tickets.iter_mut().filter(|t| t.id == ticket_id) {
            t.status = "closed".into();
        }
    }

    /// Forget every idempotency key (as after their 2 h).
    pub fn expire_idempotency_keys(&self) {
        lock(&self.state).keys.clear();
    }

    pub fn set_switches(&self, switches: ZendeskSwitches) {
        lock(&self.state).switches = switches;
    }

    pub fn switches(&self) -> ZendeskSwitches {
        lock(&self.state).switches.clone()
    }
}

fn authorized(st: &Inner, headers: &HeaderMap) -> bool {
    if let Some(token) = bearer(headers) {
        return st.switches.bearer_token.as_deref() == Some(token.as_str());
    }
    basic_credentials(headers).is_some_and(|(u, p)| u == format!("{}/token", st.email) && p == st.api_token)
}

fn unauthorized() -> Response {
    json_response(401, json!({ "error": "Couldn't authenticate you" }))
}

fn ticket_json(base: &str, t: &ZendeskTicket) -> Value {
    json!({
        "id": t.id,
        "url": format!("{base}/api/v2/tickets/{}.json", t.id),
        "external_id": t.external_id,
        "subject": t.subject,
        "raw_subject": t.subject,
        "description": t.comment_body,
        "priority": t.priority,
        "type": t.ticket_type,
        "status": t.status,
        "requester_id": t.requester.as_ref().map(|r| r.id),
        "tags": t.tags,
        "created_at": t.created_at,
        "updated_at": t.created_at,
    })
}

fn insert_ticket(st: &mut Inner, raw: &Value, key: Option<String>, hidden_for: u32) -> ZendeskTicket {
    st.next_id += 1;
    let id = st.next_id;
    let requester = raw["requester"]["email"].as_str().map(|email| {
        let email = email.trim().to_ascii_lowercase();
        match st.users.iter().find(|u| u.email == email) {
            Some(u) => u.clone(),
            None => {
                let u = Requester { id: 9000 + st.users.len() as u64, name: raw["requester"]["name"].as_str().unwrap_or(&email).to_owned(), email };
                st.users.push(u.clone());
                u
            }
        }
    });
    let ticket = ZendeskTicket {
        id,
        subject: raw["subject"].as_str().unwrap_or_default().to_owned(),
        comment_body: raw["comment"]["body"].as_str().or_else(|| raw["comment"]["html_body"].as_str()).unwrap_or_default().to_owned(),
        comment_public: raw["comment"]["public"].as_bool().unwrap_or(true),
        requester,
        external_id: raw["external_id"].as_str().map(str::to_owned),
        tags: raw["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect(),
        priority: raw["priority"].as_str().map(str::to_owned),
        ticket_type: raw["type"].as_str().map(str::to_owned),
        status: "new".into(),
        idempotency_key: key,
        raw: raw.clone(),
        created_at: jiff::Timestamp::now().to_string(),
        hidden_for,
    };
    st.tickets.push(ticket.clone());
    let first = ticket.comment_body.clone();
    push_comment(st, id, first, ticket.comment_public);
    ticket
}

fn push_comment(st: &mut Inner, ticket_id: u64, body: String, public: bool) -> ZendeskComment {
    st.next_comment_id += 1;
    let c = ZendeskComment { id: st.next_comment_id, ticket_id, body, public, created_at: jiff::Timestamp::now().to_string() };
    st.comments.push(c.clone());
    c
}

fn comment_json(c: &ZendeskComment) -> Value {
    json!({
        "id": c.id,
        "type": "Comment",
        "author_id": 1,
        "body": c.body,
        "html_body": format!("<div class=\"zd-comment\"><p>{}</p></div>", c.body.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")),
        "plain_body": c.body,
        "public": c.public,
        "attachments": [],
        "audit_id": c.id * 10,
        "via": { "channel": "api" },
        "created_at": c.created_at,
    })
}

fn record_invalid(details: Value) -> Response {
    json_response(422, json!({ "error": "RecordInvalid", "description": "Record validation errors", "details": details }))
}

fn blank(field: &str, label: &str) -> (String, Value) {
    (field.to_owned(), json!([{ "description": format!("{label}: cannot be blank"), "error": "BlankValue" }]))
}

/// The 422 details of a ticket, if it is invalid.
fn validate(t: &Value) -> Option<Value> {
    let mut d = serde_json::Map::new();
    if t["subject"].as_str().is_none_or(|s| s.trim().is_empty()) {
        let (k, v) = blank("subject", "Subject");
        d.insert(k, v);
    }
    let body = t["comment"]["body"].as_str().or_else(|| t["comment"]["html_body"].as_str());
    if body.is_none_or(|b| b.trim().is_empty()) {
        let (k, v) = blank("base", "Description");
        d.insert(k, v);
    }
    if let Some(p) = t.get("priority").filter(|p| !p.is_null())
        && !p.as_str().is_some_and(|p| ["low", "normal", "high", "urgent"].contains(&p))
    {
        d.insert("priority".into(), json!([{ "description": "Priority: is not valid", "error": "InvalidValue" }]));
    }
    if let Some(ty) = t.get("type").filter(|p| !p.is_null())
        && !ty.as_str().is_some_and(|p| ["problem", "incident", "question", "task"].contains(&p))
    {
        d.insert("type".into(), json!([{ "description": "Type: is not valid", "error": "InvalidValue" }]));
    }
    if let Some(r) = t.get("requester") {
        let ok = r["email"].as_str().is_some_and(|e| {
            let e = e.trim();
            e.contains('@') && !e.contains(char::is_whitespace) && e.split('@').nth(1).is_some_and(|h| h.contains('.'))
        });
        if !ok {
            d.insert("requester".into(), json!([{ "description": "Requester: Email is not properly formatted", "error": "InvalidValue" }]));
        }
    }
    if let Some(tags) = t.get("tags")
        && !tags.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        d.insert("tags".into(), json!([{ "description": "Tags: is not valid", "error": "InvalidValue" }]));
    }
    (!d.is_empty()).then_some(Value::Object(d))
}

fn replay(status: u16, body: Value, location: &str) -> Response {
    let mut r = json_response(status, body);
    r.headers_mut().insert("x-idempotency-lookup", "hit".parse().expect("header"));
    if !location.is_empty()
        && let Ok(v) = location.parse()
    {
        r.headers_mut().insert("location", v);
    }
    r
}

/// What to do with a create before it takes effect.
enum Gate {
    Respond(Response),
    /// Go on with this body.
    Proceed(Value),
    /// The same key is in flight: ask again shortly.
    Wait,
}

fn gate(state: &Shared, headers: &HeaderMap, body: &str, key: &Option<String>) -> Gate {
    let mut st = lock(state);
    if !authorized(&st, headers) {
        return Gate::Respond(unauthorized());
    }
    let Ok(parsed) = serde_json::from_str::<Value>(body) else {
        return Gate::Respond(error_json(400, "InvalidJSON", "The request body is not valid JSON"));
    };
    let Some(k) = key else { return Gate::Proceed(parsed) };
    if k.is_empty() || k.len() > 255 {
        return Gate::Respond(error_json(400, "IdempotentRequestError", "Idempotency-Key must be 1 to 255 characters"));
    }
    let ttl = st.switches.idempotency_ttl;
    st.keys.retain(|_, s| s.at.elapsed() < ttl);
    match st.keys.get(k) {
        Some(stored) if stored.body != parsed => {
            let d = st.switches.idempotency_error_description.clone();
            Gate::Respond(error_json(400, "IdempotentRequestError", &d))
        }
        Some(Stored { response: Some((status, resp, location)), .. }) => Gate::Respond(replay(*status, resp.clone(), location)),
        Some(Stored { response: None, .. }) => match st.switches.in_flight {
            InFlight::Conflict => Gate::Respond(error_json(409, "IdempotentRequestError", "A request with this idempotency key is already in progress")),
            InFlight::Wait => Gate::Wait,
            InFlight::Duplicate => Gate::Proceed(parsed),
        },
        None => {
            st.keys.insert(k.clone(), Stored { body: parsed.clone(), at: Instant::now(), response: None });
            Gate::Proceed(parsed)
        }
    }
}

fn finish(state: &Shared, parsed: &Value, key: &Option<String>) -> Response {
    let mut st = lock(state);
    let Some(t) = parsed.get("ticket").filter(|t| t.is_object()) else {
        if let Some(k) = key {
            st.keys.remove(k);
        }
        return error_json(400, "InvalidEndpoint", "The request must contain a ticket object");
    };
    if let Some(details) = validate(t) {
        if let Some(k) = key {
            st.keys.remove(k);
        }
        return record_invalid(details);
    }
    let lag = st.switches.search_lag;
    let ticket = insert_ticket(&mut st, t, key.clone(), lag);
    let base = st.base_url.clone();
    let body = json!({
        "ticket": ticket_json(&base, &ticket),
        "audit": {
            "id": ticket.id * 10,
            "ticket_id": ticket.id,
            "created_at": ticket.created_at,
            "author_id": 1,
            "events": [ { "id": ticket.id * 10 + 1, "type": "Comment", "body": ticket.comment_body, "public": ticket.comment_public } ],
        },
    });
    let location = format!("{base}/api/v2/tickets/{}.json", ticket.id);
    if let Some(k) = key
        && let Some(stored) = st.keys.get_mut(k)
        && stored.response.is_none()
    {
        stored.response = Some((201, body.clone(), location.clone()));
    }
    let mut r = json_response(201, body);
    if let Ok(v) = location.parse() {
        r.headers_mut().insert("location", v);
    }
    if key.is_some() {
        r.headers_mut().insert("x-idempotency-lookup", "miss".parse().expect("header"));
    }
    r
}

async fn create_ticket(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let parsed = loop {
        match gate(&state, &headers, &body, &key) {
            Gate::Respond(r) => return r,
            Gate::Proceed(v) => break v,
            Gate::Wait => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let delay = lock(&state).switches.create_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    finish(&state, &parsed, &key)
}

fn query_params(query: &Option<String>) -> Vec<(String, String)> {
    query.as_deref().unwrap_or("").split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

async fn list_tickets(State(state): State<Shared>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let params = query_params(&query);
    let external_id = params.iter().find(|(k, _)| k == "external_id").map(|(_, v)| v.clone());
    let list: Vec<Value> =
        st.tickets.iter().filter(|t| external_id.as_ref().is_none_or(|e| t.external_id.as_ref() == Some(e))).map(|t| ticket_json(&st.base_url, t)).collect();
    json_response(200, json!({ "tickets": list, "next_page": null, "previous_page": null, "count": list.len() }))
}

async fn show_ticket(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let id: Option<u64> = id.trim_end_matches(".json").parse().ok();
    match st.tickets.iter().find(|t| Some(t.id) == id) {
        Some(t) => json_response(200, json!({ "ticket": ticket_json(&st.base_url, t) })),
        None => error_json(404, "RecordNotFound", "Not found"),
    }
}

async fn update_ticket(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>, body: String) -> Response {
    let mut st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let Ok(parsed) = serde_json::from_str::<Value>(&body) else {
        return error_json(400, "InvalidJSON", "The request body is not valid JSON");
    };
    let id: Option<u64> = id.trim_end_matches(".json").parse().ok();
    let Some(index) = st.tickets.iter().position(|t| Some(t.id) == id) else {
        return error_json(404, "RecordNotFound", "Not found");
    };
    let Some(t) = parsed.get("ticket").filter(|t| t.is_object()) else {
        return error_json(400, "InvalidEndpoint", "The request must contain a ticket object");
    };
    if st.tickets[index].status == "closed" {
        return record_invalid(json!({ "status": [{ "description": "Status: closed prevents ticket update", "error": "InvalidValue" }] }));
    }
    let comment = match t.get("comment").filter(|c| !c.is_null()) {
        None => None,
        Some(c) => match c["body"].as_str().or_else(|| c["html_body"].as_str()).filter(|b| !b.trim().is_empty()) {
            Some(b) => Some((b.to_owned(), c["public"].as_bool().unwrap_or(true))),
            None => {
                let (_, v) = blank("comment", "Comment");
                return record_invalid(json!({ "comment": v }));
            }
        },
    };
    if let Some(p) = t.get("priority").filter(|p| !p.is_null())
        && !p.as_str().is_some_and(|p| ["low", "normal", "high", "urgent"].contains(&p))
    {
        return record_invalid(json!({ "priority": [{ "description": "Priority: is not valid", "error": "InvalidValue" }] }));
    }
    let ticket_id = st.tickets[index].id;
    {
        let ticket = &mut st.tickets[index];
        if let Some(status) = t["status"].as_str() {
            ticket.status = status.to_owned();
        }
        if let Some(p) = t["priority"].as_str() {
            ticket.priority = Some(p.to_owned());
        }
        if let Some(tags) = t["tags"].as_array() {
            ticket.tags = tags.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
    }
    let mut events = Vec::new();
    if let Some((body, public)) = comment {
        let c = push_comment(&mut st, ticket_id, body, public);
        events.push(json!({ "id": c.id, "type": "Comment", "author_id": 1, "body": c.body, "public": c.public, "attachments": [], "audit_id": c.id * 10 }));
    }
    let now = jiff::Timestamp::now().to_string();
    let base = st.base_url.clone();
    let mut ticket = ticket_json(&base, &st.tickets[index]);
    ticket["updated_at"] = json!(now);
    json_response(
        200,
        json!({ "ticket": ticket, "audit": { "id": ticket_id * 1000 + st.next_comment_id, "ticket_id": ticket_id, "created_at": now, "author_id": 1, "events": events } }),
    )
}

async fn list_comments(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let id: Option<u64> = id.trim_end_matches(".json").parse().ok();
    let Some(ticket) = st.tickets.iter().find(|t| Some(t.id) == id) else {
        return error_json(404, "RecordNotFound", "Not found");
    };
    let params = query_params(&query);
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut all: Vec<&ZendeskComment> = st.comments.iter().filter(|c| c.ticket_id == ticket.id).collect();
    match param("sort_order").as_deref() {
        None | Some("asc") => {}
        Some("desc") => all.reverse(),
        Some(_) => return error_json(400, "InvalidPaginationParameter", "sort_order must be asc or desc"),
    }
    let url = format!("{}/api/v2/tickets/{}/comments.json", st.base_url, ticket.id);
    if let Some(size) = param("page[size]") {
        // Cursor pages: the cursor is the offset.
        let size: usize = size.parse().unwrap_or(100).clamp(1, 100);
        let start: usize = param("page[after]").and_then(|c| c.parse().ok()).unwrap_or(0);
        let page: Vec<Value> = all.iter().skip(start).take(size).map(|c| comment_json(c)).collect();
        let has_more = start + size < all.len();
        let after = (start + size).to_string();
        let sort = param("sort_order").map(|s| format!("&sort_order={s}")).unwrap_or_default();
        return json_response(
            200,
            json!({
                "comments": page,
                "meta": { "has_more": has_more, "after_cursor": has_more.then_some(&after), "before_cursor": (start > 0).then(|| start.to_string()) },
                "links": { "next": has_more.then(|| format!("{url}?page%5Bsize%5D={size}&page%5Bafter%5D={after}{sort}")), "prev": null },
            }),
        );
    }
    let per_page: usize = param("per_page").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 100);
    let page_no: usize = param("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let start = (page_no - 1) * per_page;
    let page: Vec<Value> = all.iter().skip(start).take(per_page).map(|c| comment_json(c)).collect();
    let sort = param("sort_order").map(|s| format!("&sort_order={s}")).unwrap_or_default();
    let next = (start + per_page < all.len()).then(|| format!("{url}?page={}&per_page={per_page}{sort}", page_no + 1));
    let prev = (page_no > 1).then(|| format!("{url}?page={}&per_page={per_page}{sort}", page_no - 1));
    json_response(200, json!({ "comments": page, "next_page": next, "previous_page": prev, "count": all.len() }))
}

async fn search(State(state): State<Shared>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let mut st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let params = query_params(&query);
    let Some(q) = params.iter().find(|(k, _)| k == "query").map(|(_, v)| v.clone()) else {
        return error_json(400, "InvalidSearch", "Query parameter is required");
    };
    let terms: Vec<String> = q.split_whitespace().map(str::to_owned).collect();
    let base = st.base_url.clone();
    let mut results = Vec::new();
    for t in st.tickets.iter_mut() {
        if t.hidden_for > 0 {
            t.hidden_for -= 1;
            continue;
        }
        let ok = terms.iter().all(|term| match term.split_once(':') {
            Some(("type", v)) => v == "ticket",
            Some(("external_id", v)) => t.external_id.as_deref() == Some(v.trim_matches('"')),
            Some(("tags" | "tag", v)) => t.tags.iter().any(|x| x == v),
            Some(("status", v)) => t.status == v,
            Some(("priority", v)) => t.priority.as_deref() == Some(v),
            _ => {
                let w = term.trim_matches('"').to_lowercase();
                t.subject.to_lowercase().contains(&w) || t.comment_body.to_lowercase().contains(&w)
            }
        });
        if ok {
            let mut j = ticket_json(&base, t);
            j["result_type"] = json!("ticket");
            results.push(j);
        }
    }
    json_response(200, json!({ "results": results, "count": results.len(), "next_page": null, "previous_page": null, "facets": null }))
}
