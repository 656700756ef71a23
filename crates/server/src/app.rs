//! The router and the entry point that serves it.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use dialnexa_store::{SqlStore, Store};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::api;
use crate::config::Config;
use crate::state::AppState;

/// The process-wide metrics recorder (installed once, shared by every app in a process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/openapi.json", get(api::openapi::document))
        .route("/agents", post(api::agents::create).get(api::agents::list))
        .route("/agents/{agent_id}", get(api::agents::get_one))
        .route("/agents/{agent_id}/draft", put(api::agents::update_draft))
        .route("/agents/{agent_id}/publish", post(api::agents::publish))
        .route("/agents/{agent_id}/versions/{version}", get(api::agents::get_version))
        .route("/phone-numbers", post(api::numbers::create).get(api::numbers::list))
        .route("/phone-numbers/{phone_number}", get(api::numbers::get_one).patch(api::numbers::patch).delete(api::numbers::delete))
        .route("/routes/resolve", post(api::routes::resolve))
        .route("/calls", get(api::calls::list))
        .route("/calls/test", post(api::calls::create_test))
        .route("/calls/export", get(api::export::export))
        .route("/calls/{call_id}", get(api::calls::get_one))
        .route("/calls/{call_id}/annotations", post(api::annotations::create))
        .route("/calls/{call_id}/analysis/rerun", post(api::calls::rerun_analysis))
        .route("/calls/web", post(crate::webcall::create_web))
        .route("/calls/outbound", post(crate::telephony::outbound::create))
        .route("/calls/{call_id}/end", post(crate::webcall::end))
        .route("/calls/{call_id}/recording", get(api::recording::recording))
        .route("/annotations", get(api::annotations::list))
        .route("/integrations", post(api::integrations::create).get(api::integrations::list))
        .route("/integrations/recommended-rules", get(api::integrations::recommended_rules))
        .route("/integrations/{integration_id}", get(api::integrations::get_one))
        .route("/handoffs", get(api::handoffs::list))
        .route("/handoffs/{handoff_id}", get(api::handoffs::get_one))
        .route("/handoffs/{handoff_id}/retry", post(api::handoffs::retry))
        .route("/review-items", get(api::handoffs::list_reviews))
        .route("/review-items/{review_id}/approve", post(api::handoffs::approve))
        .route("/review-items/{review_id}/reject", post(api::handoffs::reject))
        .route("/follow-ups", get(api::handoffs::list_follow_ups))
        .route("/follow-ups/{follow_up_id}/complete", post(api::handoffs::complete_follow_up))
        .route("/insights/recurring", get(api::handoffs::recurring))
        .layer(middleware::from_fn_with_state(state.clone(), crate::idempotency::layer))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_key));
    // The stream authenticates with its access token, not an API key.
    let open = Router::new().route("/v1/calls/{call_id}/stream", get(crate::webcall::stream));
    Router::new()
        .merge(open)
        .merge(crate::console::routes())
        .merge(crate::telephony::routes())
        .nest("/v1", v1)
        .route("/healthz", get(api::health::healthz))
        .route("/readyz", get(api::health::readyz))
        .route("/metrics", get(api::health::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(track))
        .layer(axum::extract::DefaultBodyLimit::max(crate::extract::MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> Response {
    crate::error::ApiError::not_found("route").into_response()
}

/// The `method` label: the standard methods by name, anything else `other` (a client may
/// send any token as a method; the label set must stay bounded).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `route` label for requests no route matched (never the raw path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Request counts and latencies per route; and a last line of defence: a panic in a
/// handler becomes a logged opaque 500, never a dropped connection. Labels are bounded: the
/// matched route template (or [`UNMATCHED_ROUTE`]), [`method_label`] and the status code.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let method = method_label(req.method());
    let resp = match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(route = %route, error = %e, "handler panicked");
            crate::error::ApiError::internal().into_response()
        }
    };
    let status = resp.status().as_u16().to_string();
    metrics::counter!("dialnexa_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("dialnexa_http_request_duration_seconds", "method" => method, "route" => route).record(start.elapsed().as_secs_f64());
    resp
}

/// Open the store, make sure an admin key exists, seed the demo when asked.
pub async fn prepare(config: &Config) -> Result<AppState, String> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("cannot create data directory {}: {e}", config.data_dir.display()))?;
    }
    let store = SqlStore::connect(&config.store_url()).await.map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(store);
    let now = jiff::Timestamp::now();
    if let Some(key) = &config.admin_key {
        let record = crate::auth::record_for(key, "admin (DIALNEXA_ADMIN_KEY)", now);
        if store.find_api_key(&record.key_hash).await.map_err(|e| e.to_string())?.is_none() {
            store.insert_api_key(&record).await.map_err(|e| e.to_string())?;
        }
    } else if store.count_api_keys().await.map_err(|e| e.to_string())? == 0 {
        let (key, record) = crate::auth::generate_key("admin (first start)", now);
        store.insert_api_key(&record).await.map_err(|e| e.to_string())?;
        // Shown once, on the terminal only: never logged.
        println!("Created the first admin API key (shown only this once; keep it):\n\n    {key}\n");
    }
    // One SQLite node: a call still `ongoing` at start lost its connection with the last
    // process. (Several PostgreSQL nodes share calls, so there the sweep waits for node ids.)
    if store.backend() == dialnexa_store::Backend::Sqlite {
        let swept = store.sweep_interrupted(now).await.map_err(|e| e.to_string())?;
        if !swept.is_empty() {
            tracing::warn!(calls = swept.len(), "closed calls that were live when the server stopped");
        }
    }
    // One SQLite node: no call is live before it serves, so staging tracks left here belong to
    // calls the last process was in the middle of (closed by the sweep or reconciliation).
    // Several PostgreSQL nodes may share a data directory: there they are left alone.
    let staging = crate::blobs::BlobStore::new(&config.data_dir).staging("x").parent().map(std::path::Path::to_path_buf);
    if let Some(dir) = staging.filter(|d| store.backend() == dialnexa_store::Backend::Sqlite && d.is_dir()) {
        let mut removed = 0usize;
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?.flatten() {
            if std::fs::remove_dir_all(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(removed, "removed the recording tracks of calls that were live when the server stopped");
        }
    }
    if config.demo {
        crate::demo::seed(store.as_ref(), now).await.map_err(|e| format!("cannot seed the demo: {}", e.message))?;
    }
    let engine = crate::worker::engine_from(config)?;
    let worker_id = format!("{}-{}", config.listen, &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let http = dialnexa_handoff::connector::http_client(std::time::Duration::from_millis(config.handoff_timeout_ms));
    config.vad_kind()?;
    let speech = crate::webcall::speech_from(config)?;
    if speech.is_some() && !dialnexa_voice::live::vad::preload() {
        tracing::warn!("the neural voice activity detector did not load; calls use the WebRTC detector alone");
    }
    let carrier = crate::telephony::carrier_from(config)?;
    Ok(AppState {
        store,
        config: Arc::new(config.clone()),
        metrics: metrics_handle(),
        engine,
        worker_id,
        http,
        speech,
        live: Arc::default(),
        clock: Arc::default(),
        workers: Arc::default(),
        carrier,
    })
}

/// Serve until the shutdown future resolves. Tests pass a listener bound to port 0 and
/// drive background work themselves (`config.workers = false`).
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = state.config.workers.then(|| tokio::spawn(crate::worker::run(state.clone(), stop_rx)));
    let result = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(true);
    if let Some(w) = workers {
        let _ = w.await;
    }
    result
}
