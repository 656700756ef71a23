//! A Standard Webhooks receiver, as a customer would run one.
//!
//! `POST` on any path: checks `webhook-id`, `webhook-timestamp` and `webhook-signature` against
//! its secret with `dialnexa_handoff::connectors::webhook::verify` (±5 minutes); a bad or missing
//! signature gives 401 `{"error":…}` and is counted in [`FakeWebhookReceiver::rejected`]. A
//! verified delivery is counted per `webhook-id` and recorded once (the receiver dedupes on the
//! id, as the specification asks), so tests can assert that the effect happened exactly once.
//! Injected 3xx faults carry a `Location` header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use dialnexa_handoff::connectors::webhook;
use serde_json::{Value, json};

use super::{Control, json_response, serve};

/// 24 random-looking bytes, `whsec_` + base64.
pub const SECRET: &str = "whsec_ZGlhbG5leGEtZmFrZS1yZWNlaXZlci1zZWNyZXQ=";

/// One verified delivery (the first arrival of its `webhook-id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub path: String,
    pub raw: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    secret: String,
    deliveries: Vec<Delivery>,
    arrivals: BTreeMap<String, usize>,
    rejected: Vec<String>,
}

#[derive(Clone)]
pub struct FakeWebhookReceiver {
    pub base_url: String,
    pub control: Control,
    pub secret: String,
    inner: Arc<Mutex<Inner>>,
}

fn error_body(code: u16) -> Response {
    let mut r = json_response(code, json!({ "error": format!("receiver answered {code}") }));
    if (300..400).contains(&code)
        && let Ok(v) = "https://moved.example.invalid/hooks".parse()
    {
        r.headers_mut().insert("location", v);
    }
    r
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl FakeWebhookReceiver {
    pub async fn start() -> Self {
        Self::with_secret(SECRET).await
    }

    pub async fn with_secret(secret: &str) -> Self {
        let control = Control::default();
        let inner = Arc::new(Mutex::new(Inner { secret: secret.to_owned(), ..Inner::default() }));
        let mut fake = FakeWebhookReceiver { base_url: String::new(), control: control.clone(), secret: secret.to_owned(), inner };
        let router = Router::new().route("/", post(receive)).route("/{*path}", post(receive)).with_state(fake.clone());
        fake.base_url = serve(router, control, error_body).await;
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint to configure: `{base_url}/hooks/dialnexa`.
    pub fn url(&self) -> String {
        format!("{}/hooks/dialnexa", self.base_url)
    }

    /// Verified deliveries, one per `webhook-id`.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// How many verified requests arrived with this `webhook-id`.
    pub fn arrivals(&self, id: &str) -> usize {
        self.lock().arrivals.get(id).copied().unwrap_or(0)
    }

    pub fn arrival_counts(&self) -> BTreeMap<String, usize> {
        self.lock().arrivals.clone()
    }

    /// Why each refused request was refused.
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// Verify with another secret from now on (rotation, or a misconfigured receiver).
    pub fn set_secret(&self, secret: &str) {
        self.lock().secret = secret.to_owned();
    }
}

async fn receive(State(fake): State<FakeWebhookReceiver>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = fake.lock();
    let (Some(id), Some(ts), Some(sig)) = (header(&headers, "webhook-id"), header(&headers, "webhook-timestamp"), header(&headers, "webhook-signature")) else {
        st.rejected.push("missing webhook-id, webhook-timestamp or webhook-signature".into());
        return json_response(401, json!({ "error": "missing webhook headers" }));
    };
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) = webhook::verify(&st.secret, (&id, &ts, &sig), &body, now, webhook::TOLERANCE_SECS) {
        st.rejected.push(e.clone());
        return json_response(401, json!({ "error": format!("signature verification failed: {e}") }));
    }
    let count = {
        let c = st.arrivals.entry(id.clone()).or_insert(0);
        *c += 1;
        *c
    };
    if count == 1 {
        let raw = String::from_utf8_lossy(&body).into_owned();
        let parsed = serde_json::from_str(&raw).unwrap_or(Value::Null);
        st.deliveries.push(Delivery { id, timestamp: ts.parse().unwrap_or(0), signature: sig, path: uri.path().to_owned(), raw, body: parsed });
    }
    json_response(200, json!({ "received": true, "duplicate": count > 1 }))
}
