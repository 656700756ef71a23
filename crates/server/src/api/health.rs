//! Liveness, readiness and Prometheus metrics (no API key needed).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The database answers, and the background workers run where they should.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready"), (status = 503, description = "the database does not answer, or this node's workers are not running")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.backend().as_str();
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": database, "reason": "the database does not answer" })));
    }
    if let Some(problem) = state.workers.problem(crate::worker::stale_after(&state.config)) {
        tracing::warn!(reason = %problem, "readiness check failed");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": database, "reason": problem })));
    }
    (StatusCode::OK, Json(json!({ "status": "ready", "database": database, "worker_restarts": state.workers.restarts() })))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("dialnexa_up").set(1.0);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
