//! What every handler can reach.

use std::sync::Arc;

use dialnexa_analysis::Engine;
use dialnexa_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    /// The post-call analysis engine (rules, or llm with rules as its fallback).
    pub engine: Arc<dyn Engine>,
    /// This process's name in leases and attempts.
    pub worker_id: String,
    /// The HTTP client towards integrations: no redirects, timeouts.
    pub http: reqwest::Client,
    /// Speech recognition and synthesis, when configured (web calls need them).
    pub speech: Option<Arc<crate::webcall::Speech>>,
    /// Calls in progress on this node.
    pub live: Arc<crate::webcall::LiveCalls>,
    /// What background work reads as "now" (tests step it forward).
    pub clock: Arc<crate::clock::Clock>,
    /// Whether this node's workers are running (for `/readyz`).
    pub workers: Arc<crate::worker::WorkerHealth>,
    /// The phone carrier, when configured (phone calls need it).
    pub carrier: Option<Arc<dyn dialnexa_voice::carrier::Carrier>>,
}
