//! Fake OpenGraph.io (integrations.md §1): `GET /api/{1.1|3.0}/{site|scrape|screenshot}/{target}`
//! with the `app_id` query parameter as the only auth. The target must be one percent-encoded
//! path segment (`encodeURIComponent`), else 400. Sites are seedable ([`FakeOpengraphIo::add_site`]);
//! an unknown site gets a plain generated page. Every call is kept ([`FakeOpengraphIo::calls`])
//! with the credits it cost.
//!
//! Switches for the [unverified] points: the error body form ([`ErrorStyle`]), the scrape body
//! ([`ScrapeShape`]), the screenshot `dimensions` presets ([`Presets`]), `openGraph` without tags,
//! and rate-limit headers. `max_cache_age` accepts any integer (seconds or milliseconds).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{Control, json_response, percent_decode};

/// The app id the fake accepts.
pub const APP_ID: &str = "og_app_5f1c9e2a7b";

/// How errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    /// `{"error":true,"message":"…","code":"…"}` (the docs).
    #[default]
    Docs,
    /// `{"error":{"code":101,"message":"…"}}` (a third party).
    Nested,
}

/// What `/scrape` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScrapeShape {
    /// The page's HTML as `text/html` (client code).
    #[default]
    RawHtml,
    /// `{"html","requestInfo"}` (a third party).
    Json,
}

/// Which screenshot `dimensions` values v1.1 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presets {
    /// `lg|md|sm|xs` (client, vendor MCP).
    #[default]
    Vendor,
    /// `sm|md|lg|xl` (a third party).
    ThirdParty,
}

/// A page the fake knows.
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    pub description: String,
    pub site_name: String,
    /// The HTML `/scrape` answers; generated from the title when `None`.
    pub html: Option<String>,
    /// The target's own status; 404 → OpenGraph.io 404, 5xx → 502, 403 → 403.
    pub status: u16,
}

impl Site {
    pub fn new(title: &str, description: &str) -> Self {
        Site { title: title.into(), description: description.into(), site_name: String::new(), html: None, status: 200 }
    }
}

/// One call the fake answered successfully.
#[derive(Debug, Clone, PartialEq)]
pub struct OgCall {
    pub version: String,
    pub service: String,
    /// The decoded target URL.
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub credits: u32,
    /// For screenshots: the hosted URL handed out.
    pub screenshot_url: Option<String>,
}

struct Inner {
    sites: HashMap<String, Site>,
    calls: Vec<OgCall>,
    error_style: ErrorStyle,
    scrape_shape: ScrapeShape,
    presets: Presets,
    no_opengraph_tags: bool,
    rate_limit_headers: bool,
    base_url: String,
}

#[derive(Clone)]
pub struct FakeOpengraphIo {
    pub base_url: String,
    pub control: Control,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOpengraphIo {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            sites: HashMap::new(),
            calls: vec![],
            error_style: ErrorStyle::Docs,
            scrape_shape: ScrapeShape::RawHtml,
            presets: Presets::Vendor,
            no_opengraph_tags: false,
            rate_limit_headers: false,
            base_url: String::new(),
        }));
        let control = Control::default();
        let router = axum::Router::new().route("/api/{version}/{service}/{*target}", get(handle)).fallback(not_found).with_state(inner.clone());
        let base_url = super::serve(router, control.clone(), error_body).await;
        lock(&inner).base_url = base_url.clone();
        FakeOpengraphIo { base_url, control, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
    /// Seed a page (keyed by the exact URL).
    pub fn add_site(&self, url: &str, site: Site) {
        self.lock().sites.insert(url.to_owned(), site);
    }
    /// Every successful call, in order.
    pub fn calls(&self) -> Vec<OgCall> {
        self.lock().calls.clone()
    }
    /// The hosted screenshot URLs handed out.
    pub fn screenshots(&self) -> Vec<String> {
        self.lock().calls.iter().filter_map(|c| c.screenshot_url.clone()).collect()
    }
    pub fn credits_used(&self) -> u32 {
        self.lock().calls.iter().map(|c| c.credits).sum()
    }
    pub fn set_error_style(&self, s: ErrorStyle) {
        self.lock().error_style = s;
    }
    pub fn set_scrape_shape(&self, s: ScrapeShape) {
        self.lock().scrape_shape = s;
    }
    pub fn set_presets(&self, p: Presets) {
        self.lock().presets = p;
    }
    /// `openGraph` answers `{"error":"No OpenGraph Tags Found"}`.
    pub fn set_no_opengraph_tags(&self, on: bool) {
        self.lock().no_opengraph_tags = on;
    }
    /// Send third-party `X-RateLimit-*` headers.
    pub fn set_rate_limit_headers(&self, on: bool) {
        self.lock().rate_limit_headers = on;
    }
}

fn lock(inner: &Arc<Mutex<Inner>>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn docs_error(status: u16, message: &str, code: &str) -> Response {
    json_response(status, json!({ "error": true, "message": message, "code": code }))
}

fn error(style: ErrorStyle, status: u16, message: &str, code: &str, number: i32) -> Response {
    match style {
        ErrorStyle::Docs => docs_error(status, message, code),
        ErrorStyle::Nested => json_response(status, json!({ "error": { "code": number, "message": message } })),
    }
}

/// Injected faults: the docs' envelope.
fn error_body(status: u16) -> Response {
    let (message, code) = match status {
        400 => ("Invalid request", "BAD_REQUEST"),
        401 => ("Invalid App ID", "INVALID_APP_ID"),
        403 => ("The target site blocked the request", "FORBIDDEN"),
        404 => ("Target not found", "NOT_FOUND"),
        429 => ("Too many concurrent requests", "RATE_LIMITED"),
        502 | 503 => ("Target unavailable", "TARGET_UNAVAILABLE"),
        _ => ("Internal server error", "INTERNAL_ERROR"),
    };
    docs_error(status, message, code)
}

async fn not_found() -> Response {
    docs_error(404, "Not found", "NOT_FOUND")
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

/// Is this one `encodeURIComponent` segment?
fn well_encoded(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) => i += 1,
            _ => return false,
        }
    }
    !raw.is_empty()
}

fn validate_params(version: &str, service: &str, params: &BTreeMap<String, String>, presets: Presets) -> Result<(), String> {
    let bool_params = [
        "cache_ok",
        "full_render",
        "use_proxy",
        "use_premium",
        "use_superior",
        "auto_proxy",
        "retry",
        "full_page",
        "dark_mode",
        "block_cookie_banner",
        "use_ai",
    ];
    for k in bool_params {
        if let Some(v) = params.get(k)
            && v != "true"
            && v != "false"
        {
            return Err(format!("{k} must be true or false"));
        }
    }
    if let Some(v) = params.get("max_cache_age")
        && v.parse::<i64>().is_err()
    {
        return Err("max_cache_age must be an integer".into());
    }
    if let Some(v) = params.get("max_retries")
        && !matches!(v.parse::<u8>(), Ok(1..=4))
    {
        return Err("max_retries must be 1-4".into());
    }
    if service == "screenshot" {
        if let Some(d) = params.get("dimensions") {
            let ok = if version == "3.0" {
                d.split_once('x').is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok())
            } else {
                match presets {
                    Presets::Vendor => ["lg", "md", "sm", "xs"].contains(&d.as_str()),
                    Presets::ThirdParty => ["sm", "md", "lg", "xl"].contains(&d.as_str()),
                }
            };
            if !ok {
                return Err(format!("invalid dimensions {d}"));
            }
        }
        if let Some(q) = params.get("quality") {
            let ok = match q.parse::<u32>() {
                Ok(n) if version == "3.0" => (1..=100).contains(&n),
                Ok(n) => (10..=80).contains(&n),
                Err(_) => false,
            };
            if !ok {
                return Err("invalid quality".into());
            }
        }
        if let Some(f) = params.get("format") {
            let allowed: &[&str] = if version == "3.0" { &["jpg", "png", "webp"] } else { &["jpeg", "png", "webp"] };
            if !allowed.contains(&f.as_str()) {
                return Err(format!("invalid format {f}"));
            }
        }
    }
    Ok(())
}

fn generated(target: &str) -> Site {
    let host = target.split("://").nth(1).unwrap_or(target).split(['/', '?', '#']).next().unwrap_or("").to_owned();
    Site { title: format!("{host} page"), description: format!("A page on {host}"), site_name: host, html: None, status: 200 }
}

fn html_of(site: &Site) -> String {
    site.html.clone().unwrap_or_else(|| {
        format!(
            "<!doctype html><html><head><title>{}</title><meta name=\"description\" content=\"{}\"></head><body><h1>{}</h1></body></html>",
            site.title, site.description, site.title
        )
    })
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, uri: Uri, RawQuery(query): RawQuery) -> Response {
    let params = parse_query(query.as_deref().unwrap_or(""));
    let (style, presets, scrape_shape, no_tags, rl_headers, base) = {
        let st = lock(&inner);
        (st.error_style, st.presets, st.scrape_shape, st.no_opengraph_tags, st.rate_limit_headers, st.base_url.clone())
    };
    let mut resp = answer(&inner, uri.path(), &params, style, presets, scrape_shape, no_tags, &base);
    if rl_headers {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", "5".parse().expect("header"));
        h.insert("x-ratelimit-remaining", "4".parse().expect("header"));
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn answer(
    inner: &Arc<Mutex<Inner>>,
    path: &str,
    params: &BTreeMap<String, String>,
    style: ErrorStyle,
    presets: Presets,
    scrape_shape: ScrapeShape,
    no_tags: bool,
    base: &str,
) -> Response {
    // /api/{version}/{service}/{raw target}
    let mut parts = path.trim_start_matches('/').splitn(4, '/');
    let (_, version, service, raw) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match params.get("app_id").map(String::as_str) {
        None | Some("") => return error(style, 401, "App ID is required", "APP_ID_REQUIRED", -9),
        Some(id) if id != APP_ID => return error(style, 401, "Invalid App ID", "INVALID_APP_ID", 101),
        _ => {}
    }
    if version != "1.1" && version != "3.0" {
        return docs_error(404, "Not found", "NOT_FOUND");
    }
    if !["site", "scrape", "screenshot"].contains(&service) {
        return docs_error(404, "Not found", "NOT_FOUND");
    }
    if !well_encoded(raw) {
        return error(style, 400, "The URL must be encoded as one path segment", "BAD_URL_ENCODING", 103);
    }
    let target = percent_decode(raw);
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return error(style, 400, "Invalid URL", "INVALID_URL", 103);
    }
    if let Err(m) = validate_params(version, service, params, presets) {
        return error(style, 400, &m, "INVALID_PARAMS", 106);
    }
    let site = lock(inner).sites.get(&target).cloned().unwrap_or_else(|| generated(&target));
    match site.status {
        404 => return error(style, 404, "Target not found", "NOT_FOUND", 404),
        403 => return error(style, 403, "The target site blocked the request", "FORBIDDEN", 403),
        s if s >= 500 => return error(style, 502, "Target unavailable", "TARGET_UNAVAILABLE", 104),
        _ => {}
    }
    let mut credits = match service {
        "screenshot" => 20,
        _ => 1,
    };
    for (opt, cost) in [("full_render", 10), ("use_proxy", 10), ("use_premium", 20), ("use_superior", 30)] {
        if params.get(opt).is_some_and(|v| v == "true") {
            credits = cost;
        }
    }
    let request_info = json!({ "redirects": 0, "host": target, "responseCode": site.status, "cache_ok": params.get("cache_ok").is_none_or(|v| v == "true"),
        "full_render": params.get("full_render").is_some_and(|v| v == "true"), "use_proxy": false, "requestCount": 1, "is_cache": false });
    let mut st = lock(inner);
    let n = st.calls.len() + 1;
    let mut call = OgCall { version: version.into(), service: service.into(), target: target.clone(), params: params.clone(), credits, screenshot_url: None };
    let resp = match service {
        "screenshot" => {
            let ext = params.get("format").map(|f| if f == "jpg" { "jpeg" } else { f.as_str() }).unwrap_or("jpeg");
            let url = format!("{base}/screenshots/{n:04}.{ext}");
            call.screenshot_url = Some(url.clone());
            json_response(200, json!({ "screenshotUrl": url, "message": "Screenshot captured" }))
        }
        "scrape" => {
            let html = html_of(&site);
            match scrape_shape {
                ScrapeShape::RawHtml => (StatusCode::OK, [("content-type", "text/html; charset=utf-8")], html).into_response(),
                ScrapeShape::Json => json_response(200, json!({ "html": html, "requestInfo": request_info })),
            }
        }
        _ => {
            let open_graph = if no_tags {
                json!({ "error": "No OpenGraph Tags Found" })
            } else {
                json!({ "title": site.title, "type": "website", "site_name": site.site_name, "image": { "url": format!("{target}/og.png") }, "url": target, "description": site.description })
            };
            json_response(
                200,
                json!({
                    "hybridGraph": { "title": site.title, "description": site.description, "type": "website", "image": format!("{target}/og.png"),
                        "imageSecureUrl": format!("{target}/og.png"), "imageWidth": 1200, "imageHeight": 630, "url": target, "favicon": format!("{target}/favicon.ico"), "site_name": site.site_name },
                    "openGraph": open_graph,
                    "htmlInferred": { "title": site.title, "description": site.description, "type": "website", "url": target, "favicon": format!("{target}/favicon.ico"),
                        "site_name": site.site_name, "images": [], "image_guess": Value::Null },
                    "requestInfo": request_info,
                    "url": target,
                    "version": version,
                }),
            )
        }
    };
    st.calls.push(call);
    resp
}
