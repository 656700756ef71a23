//! Fake Jira Cloud REST v3, per `reference/integrations.md` §4.
//!
//! - `POST /rest/api/3/issue`: Basic `email:api_token` (or a Bearer token when set); validates
//!   project, summary, issue type, labels (no spaces), unknown fields, and the description in ADF
//!   (a plain string → 400 `{"errorMessages":[],"errors":{"description":…}}`); answers 201
//!   `{id,key,self}`.
//! - `GET /rest/api/3/issue/{key}`.
//! - `GET|POST /rest/api/3/search/jql`: a small JQL (`project`, `labels`, `key`, `issuetype`,
//!   `=`/`in`, `AND`, `ORDER BY`), `fields` (default `id` only), `maxResults`, `nextPageToken`,
//!   `isLast`, no `total`.
//! - the retired `GET|POST /rest/api/3/search` → 410.
//! - comments (Jira's REST v3 reference; integrations.md §4 does not list them):
//!   `POST /rest/api/3/issue/{issueIdOrKey}/comment` `{"body": <ADF>}` → 201 with the comment
//!   (`{id,self,author,body,created,updated,jsdPublic}`); a body that is not ADF → 400 (with the
//!   ADF switch), an empty one → 400. `GET /rest/api/3/issue/{issueIdOrKey}/comment?startAt=
//!   &maxResults=&orderBy=[+|-]created` → `{startAt,maxResults,total,comments}`. An unknown (or
//!   deleted, [`FakeJira::delete_issue`]) issue → 404. Every comment received is stored
//!   ([`FakeJira::comments`]): the fake never de-duplicates.
//!
//! Switches ([`JiraSwitches`]) for the [unverified] points: ADF required, search lag (a new
//! issue is invisible to the first N searches), the accepted auth forms.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::{Control, bearer, json_response, percent_decode, serve};

/// Switches for what `integrations.md` marks [unverified].
#[derive(Debug, Clone)]
pub struct JiraSwitches {
    /// A description that is not ADF is refused with 400 (true), or stored as given (false).
    pub adf_required: bool,
    /// A new issue is invisible to the first N searches after its creation (eventual consistency).
    pub search_lag: u32,
    /// Basic `email:api_token` is accepted.
    pub accept_basic: bool,
    /// An OAuth bearer token that is accepted too.
    pub bearer_token: Option<String>,
}

impl Default for JiraSwitches {
    fn default() -> Self {
        JiraSwitches { adf_required: true, search_lag: 0, accept_basic: true, bearer_token: None }
    }
}

/// An issue as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub summary: String,
    pub issue_type: String,
    pub labels: Vec<String>,
    /// The description as sent (ADF).
    pub description: Value,
    /// Every field as sent.
    pub fields: Value,
    pub created: String,
    /// Every comment added to it, in order.
    pub comments: Vec<JiraComment>,
    /// Searches it stays invisible to (the lag switch).
    hidden_for: u32,
}

/// A comment as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraComment {
    pub id: String,
    /// The body as sent (ADF).
    pub body: Value,
    pub created: String,
}

impl JiraComment {
    /// Every text node (and link) of the body, joined by newlines.
    pub fn text(&self) -> String {
        adf_text(&self.body)
    }
}

fn adf_text(doc: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        if let Some(t) = v["text"].as_str() {
            out.push(t.to_owned());
        }
        if let Some(href) = v["attrs"]["href"].as_str() {
            out.push(href.to_owned());
        }
        for c in v["content"].as_array().into_iter().flatten().chain(v["marks"].as_array().into_iter().flatten()) {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    if let Some(s) = doc.as_str() {
        out.push(s.to_owned());
    }
    out.join("\n")
}

impl JiraIssue {
    /// Every text node of the description, joined by newlines.
    pub fn description_text(&self) -> String {
        adf_text(&self.description)
    }
}

struct Project {
    next: u64,
}

struct Inner {
    email: String,
    api_token: String,
    projects: BTreeMap<String, Project>,
    issue_types: Vec<(String, String)>,
    issues: Vec<JiraIssue>,
    next_id: u64,
    next_comment_id: u64,
    searches: u64,
    switches: JiraSwitches,
    base_url: String,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
pub struct FakeJira {
    /// Use as the connector's `base_url` (the site stays `https://…atlassian.net`).
    pub base_url: String,
    pub email: String,
    pub api_token: String,
    pub control: Control,
    state: Shared,
}

fn errors(status: u16, messages: &[&str], fields: Value) -> Response {
    json_response(status, json!({ "errorMessages": messages, "errors": fields }))
}

fn error_body(status: u16) -> Response {
    let message = match status {
        401 => "Client must be authenticated to access this resource.",
        403 => "You do not have permission to perform this operation.",
        404 => "The requested resource could not be found.",
        429 => "Rate limit exceeded.",
        503 => "Service Unavailable",
        s if s >= 500 => "Internal server error",
        _ => "The request could not be processed.",
    };
    errors(status, &[message], json!({}))
}

/// The user and password of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = String::from_utf8(base64_decode(v.trim())?).ok()?;
    let (user, pass) = raw.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Standard base64 (padding optional).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend([(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend([(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
}

impl FakeJira {
    /// A site with project `OPS` and the issue types Task, Bug, Story and Incident.
    pub async fn start() -> Self {
        let control = Control::default();
        let email = "dialnexa-bot@example.com".to_owned();
        let api_token = "ATATT3xFfGF0-fakeJiraTokenSecret".to_owned();
        let mut projects = BTreeMap::new();
        projects.insert("OPS".to_owned(), Project { next: 1 });
        let state: Shared = Arc::new(Mutex::new(Inner {
            email: email.clone(),
            api_token: api_token.clone(),
            projects,
            issue_types: [("10001", "Task"), ("10002", "Bug"), ("10003", "Story"), ("10004", "Incident")].map(|(i, n)| (i.to_owned(), n.to_owned())).to_vec(),
            issues: Vec::new(),
            next_id: 10000,
            next_comment_id: 10100,
            searches: 0,
            switches: JiraSwitches::default(),
            base_url: String::new(),
        }));
        let router = Router::new()
            .route("/rest/api/3/issue", post(create_issue))
            .route("/rest/api/3/issue/{key}", get(get_issue))
            .route("/rest/api/3/issue/{key}/comment", get(list_comments).post(add_comment))
            .route("/rest/api/3/search/jql", get(search).post(search))
            .route("/rest/api/3/search", any(retired_search))
            .with_state(state.clone());
        let base_url = serve(router, control.clone(), error_body).await;
        lock(&state).base_url = base_url.clone();
        FakeJira { base_url, email, api_token, control, state }
    }

    /// Every issue created, in order.
    pub fn issues(&self) -> Vec<JiraIssue> {
        lock(&self.state).issues.clone()
    }

    /// Add a project (by key).
    pub fn add_project(&self, key: &str) {
        let mut st = lock(&self.state);
        st.projects.entry(key.to_owned()).or_insert(Project { next: 1 });
    }

    /// Put an issue there as if someone created it earlier (visible to search at once).
    pub fn seed_issue(&self, project: &str, summary: &str, labels: &[&str]) -> String {
        let mut st = lock(&self.state);
        let fields = json!({ "project": { "key": project }, "summary": summary, "issuetype": { "name": "Task" }, "labels": labels });
        let issue = insert_issue(&mut st, project, "Task", fields, 0);
        issue.key
    }

    pub fn set_switches(&self, switches: JiraSwitches) {
        lock(&self.state).switches = switches;
    }

    pub fn switches(&self) -> JiraSwitches {
        lock(&self.state).switches.clone()
    }

    /// Searches served so far.
    pub fn searches(&self) -> u64 {
        lock(&self.state).searches
    }

    /// The comments of an issue (by key or id), in order; empty for an unknown issue.
    pub fn comments(&self, key: &str) -> Vec<JiraComment> {
        lock(&self.state).issues.iter().find(|i| i.key == key || i.id == key).map(|i| i.comments.clone()).unwrap_or_default()
    }

    /// Delete an issue (by key or id), as someone in Jira would: it answers 404 afterwards.
    pub fn delete_issue(&self, key: &str) {
        lock(&self.state).issues.retain(|i| i.key != key && i.id != key);
    }
}

fn authorized(st: &Inner, headers: &HeaderMap) -> bool {
    if let Some(token) = bearer(headers) {
        return st.switches.bearer_token.as_deref() == Some(token.as_str());
    }
    st.switches.accept_basic && basic_credentials(headers).is_some_and(|(u, p)| u == st.email && p == st.api_token)
}

fn unauthorized() -> Response {
    errors(401, &["Client must be authenticated to access this resource."], json!({}))
}

fn insert_issue(st: &mut Inner, project: &str, issue_type: &str, fields: Value, hidden_for: u32) -> JiraIssue {
    st.next_id += 1;
    let id = st.next_id.to_string();
    let number = st.projects.get_mut(project).map(|p| {
        p.next += 1;
        p.next - 1
    });
    let key = format!("{project}-{}", number.unwrap_or(st.next_id));
    let issue = JiraIssue {
        id,
        key,
        project: project.to_owned(),
        summary: fields["summary"].as_str().unwrap_or_default().to_owned(),
        issue_type: issue_type.to_owned(),
        labels: fields["labels"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect(),
        description: fields.get("description").cloned().unwrap_or(Value::Null),
        fields,
        created: jiff::Timestamp::now().to_string(),
        comments: Vec::new(),
        hidden_for,
    };
    st.issues.push(issue.clone());
    issue
}

const NODE_TYPES: &[&str] = &[
    "paragraph",
    "text",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "codeBlock",
    "blockquote",
    "rule",
    "hardBreak",
    "panel",
    "table",
    "tableRow",
    "tableHeader",
    "tableCell",
    "mention",
    "emoji",
    "inlineCard",
    "mediaSingle",
    "media",
    "mediaGroup",
    "date",
    "status",
    "expand",
];

/// Is this a valid ADF document (as far as the fake checks)?
fn adf_valid(doc: &Value) -> bool {
    fn node(v: &Value) -> bool {
        let Some(t) = v["type"].as_str() else { return false };
        if !NODE_TYPES.contains(&t) {
            return false;
        }
        if t == "text" && v["text"].as_str().is_none_or(str::is_empty) {
            return false;
        }
        if t == "heading" && !v["attrs"]["level"].as_u64().is_some_and(|l| (1..=6).contains(&l)) {
            return false;
        }
        if let Some(marks) = v.get("marks") {
            let ok = marks.as_array().is_some_and(|m| {
                m.iter().all(|m| match m["type"].as_str() {
                    Some("link") => m["attrs"]["href"].as_str().is_some_and(|h| !h.is_empty()),
                    Some("strong" | "em" | "code" | "strike" | "underline" | "subsup" | "textColor") => true,
                    _ => false,
                })
            });
            if !ok {
                return false;
            }
        }
        match v.get("content") {
            None => true,
            Some(c) => c.as_array().is_some_and(|c| c.iter().all(node)),
        }
    }
    doc["type"] == "doc" && doc["version"] == 1 && doc["content"].as_array().is_some_and(|c| c.iter().all(node))
}

/// What Jira checks of every JSON write, in its order: credentials, media type, a JSON body.
fn json_write(st: &Inner, headers: &HeaderMap, body: &str) -> Result<Value, Box<Response>> {
    if !authorized(st, headers) {
        return Err(Box::new(unauthorized()));
    }
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json")) {
        return Err(Box::new(errors(415, &["Unsupported Media Type"], json!({}))));
    }
    serde_json::from_str::<Value>(body).map_err(|_| Box::new(errors(400, &["Unexpected character: was expecting a JSON value"], json!({}))))
}

const SETTABLE: &[&str] = &["project", "summary", "issuetype", "description", "labels", "priority", "assignee", "reporter", "components", "duedate", "parent"];

async fn create_issue(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut st = lock(&state);
    let v = match json_write(&st, &headers, &body) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let Some(fields) = v["fields"].as_object() else {
        return errors(400, &["Issue must have fields"], json!({}));
    };
    let mut errs = serde_json::Map::new();
    for f in fields.keys().filter(|k| !SETTABLE.contains(&k.as_str())) {
        errs.insert(f.clone(), json!(format!("Field '{f}' cannot be set. It is not on the appropriate screen, or unknown.")));
    }
    let project = fields.get("project").and_then(|p| p["key"].as_str()).unwrap_or_default().to_owned();
    if !st.projects.contains_key(&project) {
        errs.insert("project".into(), json!("valid project is required"));
    }
    match fields.get("summary").and_then(Value::as_str).map(str::trim) {
        None | Some("") => {
            errs.insert("summary".into(), json!("You must specify a summary of the issue."));
        }
        Some(s) if s.chars().count() > 255 => {
            errs.insert("summary".into(), json!("Summary must be less than 255 characters."));
        }
        Some(s) if s.contains('\n') => {
            errs.insert("summary".into(), json!("The summary is invalid because it contains newline characters."));
        }
        Some(_) => {}
    }
    let it = fields.get("issuetype").cloned().unwrap_or(Value::Null);
    let issue_type = st.issue_types.iter().find(|(id, name)| it["id"].as_str() == Some(id) || it["name"].as_str() == Some(name)).map(|(_, n)| n.clone());
    if issue_type.is_none() {
        errs.insert("issuetype".into(), json!("Specify a valid issue type"));
    }
    if let Some(labels) = fields.get("labels") {
        match labels.as_array() {
            Some(list) => {
                if let Some(bad) = list.iter().find(|l| l.as_str().is_none_or(|s| s.is_empty() || s.contains(char::is_whitespace) || s.chars().count() > 255)) {
                    errs.insert("labels".into(), json!(format!("The label '{}' contains spaces which is invalid.", bad.as_str().unwrap_or_default())));
                }
            }
            None => {
                errs.insert("labels".into(), json!("data was not an array"));
            }
        }
    }
    if let Some(d) = fields.get("description")
        && !d.is_null()
        && st.switches.adf_required
        && !adf_valid(d)
    {
        errs.insert("description".into(), json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"));
    }
    if !errs.is_empty() {
        return errors(400, &[], Value::Object(errs));
    }
    let lag = st.switches.search_lag;
    let issue = insert_issue(&mut st, &project, issue_type.as_deref().unwrap_or("Task"), Value::Object(fields.clone()), lag);
    let base = st.base_url.clone();
    json_response(201, json!({ "id": issue.id, "key": issue.key, "self": format!("{base}/rest/api/3/issue/{}", issue.id) }))
}

fn issue_json(base: &str, i: &JiraIssue, fields: &[String]) -> Value {
    if fields.is_empty() {
        return json!({ "id": i.id });
    }
    let all = fields.iter().any(|f| f == "*all" || f == "*navigable");
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, v: Value| {
        if all || fields.iter().any(|f| f == name) {
            out.insert(name.to_owned(), v);
        }
    };
    put("summary", json!(i.summary));
    put("labels", json!(i.labels));
    put("status", json!({ "name": "To Do", "statusCategory": { "key": "new" } }));
    put("issuetype", json!({ "name": i.issue_type }));
    put("project", json!({ "key": i.project }));
    put("created", json!(i.created));
    put("description", i.description.clone());
    json!({ "id": i.id, "key": i.key, "self": format!("{base}/rest/api/3/issue/{}", i.id), "fields": out })
}

async fn get_issue(State(state): State<Shared>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    match st.issues.iter().find(|i| i.key == key || i.id == key) {
        Some(i) => json_response(200, issue_json(&st.base_url, i, &["*all".to_owned()])),
        None => errors(404, &["Issue does not exist or you do not have permission to see it."], json!({})),
    }
}

fn no_issue() -> Response {
    errors(404, &["Issue does not exist or you do not have permission to see it."], json!({}))
}

fn comment_json(base: &str, issue: &JiraIssue, c: &JiraComment, email: &str) -> Value {
    let author = json!({ "accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "DialNexa bot", "emailAddress": email, "active": true });
    json!({
        "self": format!("{base}/rest/api/3/issue/{}/comment/{}", issue.id, c.id),
        "id": c.id,
        "author": author,
        "body": c.body,
        "updateAuthor": author,
        "created": c.created,
        "updated": c.created,
        "jsdPublic": true,
    })
}

async fn add_comment(State(state): State<Shared>, headers: HeaderMap, Path(key): Path<String>, body: String) -> Response {
    let mut st = lock(&state);
    let v = match json_write(&st, &headers, &body) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    if !st.issues.iter().any(|i| i.key == key || i.id == key) {
        return no_issue();
    }
    let text = &v["body"];
    let empty = match text {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        doc => adf_text(doc).trim().is_empty(),
    };
    if empty {
        return errors(400, &[], json!({ "comment": "Comment body can not be empty!" }));
    }
    if st.switches.adf_required && !adf_valid(text) {
        return errors(400, &[], json!({ "comment": "Operation value must be an Atlassian Document (see the Atlassian Document Format)" }));
    }
    st.next_comment_id += 1;
    let comment = JiraComment { id: st.next_comment_id.to_string(), body: text.clone(), created: jiff::Timestamp::now().to_string() };
    let (base, email) = (st.base_url.clone(), st.email.clone());
    let Some(issue) = st.issues.iter_mut().find(|i| i.key == key || i.id == key) else { return no_issue() };
    issue.comments.push(comment.clone());
    let answer = comment_json(&base, issue, &comment, &email);
    json_response(201, answer)
}

async fn list_comments(State(state): State<Shared>, headers: HeaderMap, Path(key): Path<String>, RawQuery(query): RawQuery) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let Some(issue) = st.issues.iter().find(|i| i.key == key || i.id == key) else { return no_issue() };
    let param =
        |name: &str| query.as_deref().unwrap_or("").split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v));
    let start: usize = param("startAt").and_then(|v| v.parse().ok()).unwrap_or(0);
    let max: usize = param("maxResults").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 5000);
    let mut all: Vec<&JiraComment> = issue.comments.iter().collect();
    match param("orderBy").as_deref().map(str::trim) {
        None | Some("" | "created" | "+created") => {}
        Some("-created") => all.reverse(),
        Some(other) => return errors(400, &[format!("The orderBy value '{other}' is not supported.").as_str()], json!({})),
    }
    let page: Vec<Value> = all.iter().skip(start).take(max).map(|c| comment_json(&st.base_url, issue, c, &st.email)).collect();
    json_response(200, json!({ "startAt": start, "maxResults": max, "total": all.len(), "comments": page }))
}

async fn retired_search(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    errors(
        410,
        &[
            "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
        ],
        json!({}),
    )
}

/// One JQL condition: field, accepted values.
type Clause = (String, Vec<String>);

fn parse_value(s: &str) -> String {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) { inner.replace("\\\"", "\"").replace("\\\\", "\\") } else { s.to_owned() }
}

/// A small JQL: `a = "x" AND b in (y, z) ORDER BY …`.
fn parse_jql(jql: &str) -> Result<Vec<Clause>, String> {
    let lower = jql.to_ascii_lowercase();
    let cond = match lower.find("order by") {
        Some(i) => &jql[..i],
        None => jql,
    };
    let mut clauses = Vec::new();
    let mut rest = cond.trim().to_owned();
    while !rest.is_empty() {
        // Split at the first " AND " outside quotes.
        let mut in_q = false;
        let mut split = None;
        let chars: Vec<(usize, char)> = rest.char_indices().collect();
        for (n, (i, c)) in chars.iter().enumerate() {
            if *c == '"' && (n == 0 || chars[n - 1].1 != '\\') {
                in_q = !in_q;
            }
            if !in_q && rest[*i..].to_ascii_lowercase().starts_with(" and ") {
                split = Some(*i);
                break;
            }
        }
        let (clause, next) = match split {
            Some(i) => (rest[..i].to_owned(), rest[i + 5..].to_owned()),
            None => (rest.clone(), String::new()),
        };
        let clause = clause.trim();
        if let Some((field, value)) = clause.split_once('=') {
            clauses.push((field.trim().to_ascii_lowercase(), vec![parse_value(value)]));
        } else if let Some(i) = clause.to_ascii_lowercase().find(" in ") {
            let field = clause[..i].trim().to_ascii_lowercase();
            let list = clause[i + 4..].trim().trim_start_matches('(').trim_end_matches(')');
            clauses.push((field, list.split(',').map(parse_value).collect()));
        } else {
            return Err(format!("Error in the JQL Query: the clause '{clause}' is not supported."));
        }
        rest = next.trim().to_owned();
    }
    for (f, _) in &clauses {
        if !["project", "labels", "key", "issuetype", "type"].contains(&f.as_str()) {
            return Err(format!("Field '{f}' does not exist or you do not have permission to view it."));
        }
    }
    Ok(clauses)
}

async fn search(State(state): State<Shared>, headers: HeaderMap, method: Method, RawQuery(query): RawQuery, body: String) -> Response {
    let mut st = lock(&state);
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let params: Value = if method == Method::POST {
        match serde_json::from_str(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return errors(400, &["Invalid request payload. Refer to the REST API documentation and try again."], json!({})),
        }
    } else {
        let mut m = serde_json::Map::new();
        for (k, v) in query.as_deref().unwrap_or("").split('&').filter_map(|p| p.split_once('=')) {
            let v = percent_decode(v);
            let v = match k {
                "maxResults" => v.parse::<u64>().map(Value::from).unwrap_or(Value::String(v)),
                "fields" => Value::Array(v.split(',').map(|s| Value::String(s.trim().to_owned())).collect()),
                _ => Value::String(v),
            };
            m.insert(percent_decode(k), v);
        }
        Value::Object(m)
    };
    let Some(jql) = params["jql"].as_str().map(str::to_owned) else {
        return errors(400, &["The JQL query is required."], json!({}));
    };
    let clauses = match parse_jql(&jql) {
        Ok(c) => c,
        Err(e) => return errors(400, &[e.as_str()], json!({})),
    };
    for (f, vals) in &clauses {
        if f == "project" {
            for p in vals {
                if !st.projects.contains_key(p) {
                    return errors(400, &[format!("The value '{p}' does not exist for the field 'project'.").as_str()], json!({}));
                }
            }
        }
    }
    let fields: Vec<String> = match &params["fields"] {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => Vec::new(),
    };
    let max = params["maxResults"].as_u64().unwrap_or(50).clamp(1, 5000) as usize;
    let start: usize = params["nextPageToken"].as_str().and_then(|t| t.strip_prefix("page-")).and_then(|t| t.parse().ok()).unwrap_or(0);
    st.searches += 1;
    let mut matches = Vec::new();
    for issue in st.issues.iter_mut() {
        if issue.hidden_for > 0 {
            issue.hidden_for -= 1;
            continue;
        }
        let ok = clauses.iter().all(|(f, vals)| match f.as_str() {
            "project" => vals.contains(&issue.project),
            "labels" => vals.iter().any(|v| issue.labels.contains(v)),
            "key" => vals.contains(&issue.key),
            _ => vals.iter().any(|v| v.eq_ignore_ascii_case(&issue.issue_type)),
        });
        if ok {
            matches.push(issue.clone());
        }
    }
    let base = st.base_url.clone();
    let page: Vec<Value> = matches.iter().skip(start).take(max).map(|i| issue_json(&base, i, &fields)).collect();
    let is_last = start + max >= matches.len();
    let mut out = json!({ "issues": page, "isLast": is_last });
    if !is_last {
        out["nextPageToken"] = json!(format!("page-{}", start + max));
    }
    json_response(200, out)
}
