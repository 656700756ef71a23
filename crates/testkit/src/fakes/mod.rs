//! Stateful fakes of the outside services DialNexa hands off to. Each follows the real
//! contract of `../shared/reference/integrations.md`, records what it received, and fails
//! on demand through its [`Control`]: a status, a 429 with `Retry-After`, a delay (timeout),
//! a connection reset before or after the request took effect, or "down" for a while.

/// The carrier (Twilio-compatible): its own crate, so that `dialnexa dev carrier` runs it too.
pub use dialnexa_carrier_sim as carrier;
pub mod datadog;
pub mod google_sheets;
pub mod heartbeat;
pub mod hubspot;
pub mod jira;
pub mod opengraph_io;
pub mod slack;
pub mod webhook_receiver;
pub mod zendesk;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A failure to inject into the next request(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with the service's error body (the fake's `error_body`).
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// Wait this long before handling (a client with a shorter timeout gives up).
    Delay(Duration),
    /// Cut the connection before the request has any effect.
    Reset,
    /// Let the request take effect, then cut the connection: the client cannot know.
    ResetAfterEffect,
}

/// One request as the fake received it (secrets stay in it: tests may check auth).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    /// A query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
    }
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct ControlInner {
    faults: VecDeque<Fault>,
    down: Option<Fault>,
    received: Vec<Received>,
}

/// Fault injection and the record of requests, shared by a fake's handlers.
#[derive(Clone, Default)]
pub struct Control {
    inner: Arc<Mutex<ControlInner>>,
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, ControlInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Fail the next request with `fault` (faults queue up).
    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }
    pub fn fail_times(&self, n: usize, fault: Fault) {
        for _ in 0..n {
            self.fail_next(fault.clone());
        }
    }
    /// Fail every request with `fault` until [`Control::up`].
    pub fn down(&self, fault: Fault) {
        self.lock().down = Some(fault);
    }
    pub fn up(&self) {
        self.lock().down = None;
    }
    /// Every request received, faulted ones included, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }
    pub fn clear_received(&self) {
        self.lock().received.clear();
    }
    fn next_fault(&self) -> Option<Fault> {
        let mut st = self.lock();
        st.faults.pop_front().or_else(|| st.down.clone())
    }
}

/// A response body that breaks the connection when read.
fn reset_response() -> Response {
    let stream = futures_util::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by fake")) });
    Response::builder().status(StatusCode::OK).header("content-length", "1000").body(Body::from_stream(stream)).unwrap_or_default()
}

/// How a fake answers an injected error status: its own error envelope.
pub type ErrorBody = fn(u16) -> Response;

/// The middleware every fake puts in front of its routes: record, then apply faults.
pub async fn control_layer(State((control, error_body)): State<(Control, ErrorBody)>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let headers: BTreeMap<String, String> = parts.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    control.lock().received.push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let req = Request::from_parts(parts, Body::from(bytes));
    match control.next_fault() {
        None => next.run(req).await,
        Some(Fault::Status(code)) => error_body(code),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = error_body(429);
            r.headers_mut().insert("retry-after", retry_after_secs.to_string().parse().expect("header"));
            r
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::Reset) => reset_response(),
        Some(Fault::ResetAfterEffect) => {
            let _ = next.run(req).await;
            reset_response()
        }
    }
}

/// Start `router` on 127.0.0.1:0 behind the control layer; returns the base URL.
pub async fn serve(router: axum::Router, control: Control, error_body: ErrorBody) -> String {
    let app = router.layer(axum::middleware::from_fn_with_state((control, error_body), control_layer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A bearer token from the headers.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned)
}

/// A JSON response with a status.
pub fn json_response(status: u16, body: serde_json::Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response()
}
