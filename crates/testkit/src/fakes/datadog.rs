//! Fake Datadog API (events v1 and monitor search), per integrations.md §8.
//!
//! - `POST /api/v1/events` (`DD-API-KEY`): `title` and `text` required, `text` ≤ 4,000 characters,
//!   `aggregation_key` ≤ 100; tags are stored lowercased (as Datadog does); 202
//!   `{"status":"ok","event":{id,id_str,title,text,date_happened,tags,url,…}}`.
//! - `GET /api/v1/events?start=&end=&tags=` and `GET /api/v1/events/{id}` (`DD-API-KEY` and
//!   `DD-APPLICATION-KEY`): `{"events":[…],"status":"ok"}`; `tags` is comma-separated, any match.
//! - `GET /api/v1/monitor/search?query=&page=&per_page=` (both keys): free-text terms (quoted or
//!   bare; ANDed, or ORed when the query says `OR`) matched against names and tags, plus
//!   `status:` and `tag:` filters; `{"monitors":[…],"metadata":{…},"counts":{…}}`. Seed with
//!   [`FakeDatadog::seed_monitor`].
//! - Wrong or missing keys: 403 `{"errors":["Forbidden"]}`. Errors use `{"errors":[…]}` [unverified].
//! - Switch: [`FakeDatadog::set_truncate_long_text`]: cut a long `text` instead of refusing it
//!   (what Datadog does past 4,000 characters is not documented).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Control, json_response, serve};

pub const API_KEY: &str = "fake0dd0api0key0000000000000000a";
pub const APP_KEY: &str = "fake0dd0app0key000000000000000000000000b";

struct Inner {
    api_key: String,
    app_key: String,
    events: Vec<Value>,
    monitors: Vec<Value>,
    next_id: i64,
    truncate: bool,
}

#[derive(Clone)]
pub struct FakeDatadog {
    pub base_url: String,
    pub control: Control,
    pub api_key: String,
    pub app_key: String,
    inner: Arc<Mutex<Inner>>,
}

fn errors(code: u16, msgs: &[&str]) -> Response {
    json_response(code, json!({ "errors": msgs }))
}

fn error_body(code: u16) -> Response {
    match code {
        400 => errors(400, &["Bad Request"]),
        401 => errors(401, &["Unauthorized"]),
        403 => errors(403, &["Forbidden"]),
        404 => errors(404, &["Not found"]),
        429 => errors(429, &["Rate limit of 250000 requests in 60 seconds reached. Please try again later."]),
        500 => errors(500, &["Internal Server Error"]),
        c => errors(c, &["Error"]),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A tag as Datadog stores it.
fn norm_tag(t: &str) -> String {
    t.trim().to_lowercase().chars().map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/') { c } else { '_' }).collect()
}

impl FakeDatadog {
    pub async fn start() -> Self {
        let control = Control::default();
        let inner = Arc::new(Mutex::new(Inner {
            api_key: API_KEY.into(),
            app_key: APP_KEY.into(),
            events: vec![],
            monitors: vec![],
            next_id: 7_340_000_000_000_000_001,
            truncate: false,
        }));
        let mut fake = FakeDatadog { base_url: String::new(), control: control.clone(), api_key: API_KEY.into(), app_key: APP_KEY.into(), inner };
        let router = Router::new()
            .route("/api/v1/events", get(list_events).post(post_event))
            .route("/api/v1/events/{id}", get(get_event))
            .route("/api/v1/monitor/search", get(search_monitors))
            .with_state(fake.clone());
        fake.base_url = serve(router, control, error_body).await;
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event posted (or seeded), as stored.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    /// An event that already exists (tags are normalised as Datadog does).
    pub fn seed_event(&self, title: &str, tags: &[&str]) -> String {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let ev = json!({
            "id": id, "id_str": id.to_string(), "title": title, "text": "", "date_happened": jiff::Timestamp::now().as_second(),
            "tags": tags.iter().map(|t| norm_tag(t)).collect::<Vec<_>>(), "alert_type": "info", "priority": "normal",
            "url": format!("https://app.datadoghq.com/event/event?id={id}"),
        });
        st.events.push(ev);
        id.to_string()
    }

    pub fn seed_monitor(&self, id: i64, name: &str, status: &str, tags: &[&str]) {
        self.lock().monitors.push(json!({
            "id": id, "name": name, "status": status, "tags": tags, "type": "metric alert", "classification": "metric",
            "creator": { "name": "Fake Creator", "handle": "fake@example.com", "id": 1 },
            "last_triggered_ts": null, "metrics": [], "notifications": [], "org_id": 1, "overall_state_modified": null,
            "scopes": [], "query": format!("avg(last_5m):avg:fake.metric{{*}} > 1"),
        }));
    }

    pub fn set_truncate_long_text(&self, on: bool) {
        self.lock().truncate = on;
    }
}

fn api_ok(st: &Inner, h: &HeaderMap) -> bool {
    header(h, "dd-api-key") == Some(st.api_key.as_str())
}

fn read_ok(st: &Inner, h: &HeaderMap) -> bool {
    api_ok(st, h) && header(h, "dd-application-key") == Some(st.app_key.as_str())
}

async fn post_event(State(fake): State<FakeDatadog>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = fake.lock();
    if !api_ok(&st, &headers) {
        return error_body(403);
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return errors(400, &["Invalid JSON in request body"]);
    };
    let title = v.get("title").and_then(Value::as_str).unwrap_or("");
    if title.trim().is_empty() {
        return errors(400, &["Event title is required"]);
    }
    let Some(text) = v.get("text").and_then(Value::as_str) else {
        return errors(400, &["Event text is required"]);
    };
    let mut text = text.to_owned();
    if text.chars().count() > 4000 {
        if st.truncate {
            text = text.chars().take(4000).collect();
        } else {
            return errors(400, &["Event text is too long: the limit is 4000 characters"]);
        }
    }
    if v.get("aggregation_key").and_then(Value::as_str).is_some_and(|k| k.chars().count() > 100) {
        return errors(400, &["aggregation_key is longer than 100 characters"]);
    }
    let alert = v.get("alert_type").and_then(Value::as_str).unwrap_or("info");
    if !matches!(alert, "error" | "warning" | "info" | "success" | "user_update" | "recommendation" | "snapshot") {
        return errors(400, &["Invalid alert_type"]);
    }
    let id = st.next_id;
    st.next_id += 1;
    let tags: Vec<String> = v.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(norm_tag).collect()).unwrap_or_default();
    let event = json!({
        "id": id,
        "id_str": id.to_string(),
        "title": title,
        "text": text,
        "date_happened": v.get("date_happened").and_then(Value::as_i64).unwrap_or_else(|| jiff::Timestamp::now().as_second()),
        "handle": null,
        "priority": v.get("priority").and_then(Value::as_str).unwrap_or("normal"),
        "related_event_id": null,
        "tags": tags,
        "alert_type": alert,
        "aggregation_key": v.get("aggregation_key"),
        "source_type_name": v.get("source_type_name"),
        "url": format!("https://app.datadoghq.com/event/event?id={id}"),
    });
    st.events.push(event.clone());
    let mut shown = event;
    if let Some(o) = shown.as_object_mut() {
        o.remove("alert_type");
        o.remove("aggregation_key");
        o.remove("source_type_name");
    }
    json_response(202, json!({ "status": "ok", "event": shown }))
}

async fn list_events(State(fake): State<FakeDatadog>, Query(q): Query<BTreeMap<String, String>>, headers: HeaderMap) -> Response {
    let st = fake.lock();
    if !read_ok(&st, &headers) {
        return error_body(403);
    }
    let (Some(start), Some(end)) = (q.get("start").and_then(|s| s.parse::<i64>().ok()), q.get("end").and_then(|s| s.parse::<i64>().ok())) else {
        return errors(400, &["The parameters 'start' and 'end' are required (POSIX seconds)"]);
    };
    let wanted: Vec<String> = q.get("tags").map(|t| t.split(',').map(norm_tag).filter(|t| !t.is_empty()).collect()).unwrap_or_default();
    let events: Vec<Value> = st
        .events
        .iter()
        .filter(|e| e.get("date_happened").and_then(Value::as_i64).is_some_and(|d| d >= start && d <= end))
        .filter(|e| {
            wanted.is_empty()
                || e.get("tags").and_then(Value::as_array).is_some_and(|t| t.iter().any(|t| t.as_str().is_some_and(|t| wanted.iter().any(|w| w == t))))
        })
        .cloned()
        .collect();
    json_response(200, json!({ "events": events, "status": "ok" }))
}

async fn get_event(State(fake): State<FakeDatadog>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let st = fake.lock();
    if !read_ok(&st, &headers) {
        return error_body(403);
    }
    match st.events.iter().find(|e| e.get("id_str").and_then(Value::as_str) == Some(id.as_str())) {
        Some(e) => json_response(200, json!({ "event": e, "status": "ok" })),
        None => errors(404, &["Event not found"]),
    }
}

/// Quoted phrases and bare words of a monitor query.
fn tokens(q: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if !quoted {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '(' | ')' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

async fn search_monitors(State(fake): State<FakeDatadog>, Query(q): Query<BTreeMap<String, String>>, headers: HeaderMap) -> Response {
    let st = fake.lock();
    if !read_ok(&st, &headers) {
        return error_body(403);
    }
    let query = q.get("query").cloned().unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30).clamp(1, 1000);
    let toks = tokens(&query);
    let any = toks.iter().any(|t| t == "OR");
    let (filters, terms): (Vec<&String>, Vec<&String>) =
        toks.iter().filter(|t| !matches!(t.as_str(), "OR" | "AND")).partition(|t| t.starts_with("status:") || t.starts_with("tag:"));
    let hits: Vec<&Value> = st
        .monitors
        .iter()
        .filter(|m| {
            let name = m.get("name").and_then(Value::as_str).unwrap_or("").to_lowercase();
            let tags: Vec<String> =
                m.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_lowercase).collect()).unwrap_or_default();
            let status = m.get("status").and_then(Value::as_str).unwrap_or("").to_lowercase();
            let filters_ok = filters.iter().all(|f| match f.split_once(':') {
                Some(("status", s)) => status == s.to_lowercase(),
                Some(("tag", t)) => tags.contains(&t.trim_matches('"').to_lowercase()),
                _ => true,
            });
            let matches = |t: &String| {
                let t = t.to_lowercase();
                name.contains(&t) || tags.iter().any(|g| g.contains(&t))
            };
            let terms_ok = terms.is_empty() || if any { terms.iter().any(|t| matches(t)) } else { terms.iter().all(|t| matches(t)) };
            filters_ok && terms_ok
        })
        .collect();
    let total = hits.len();
    let monitors: Vec<Value> = hits.into_iter().skip(page * per_page).take(per_page).cloned().collect();
    json_response(
        200,
        json!({
            "monitors": monitors,
            "metadata": { "page": page, "per_page": per_page, "page_count": total.div_ceil(per_page), "total_count": total },
            "counts": { "muted": [], "status": [], "tag": [], "type": [] },
        }),
    )
}
