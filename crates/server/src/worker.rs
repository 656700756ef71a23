//! Background work: post-call analysis, run from the durable queue under a lease.
//!
//! `serve` runs [`run`] (poll, claim, work) unless `workers = false`; tests call
//! [`drain`] to run whatever is due, deterministically, without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use dialnexa_analysis::llm::{LlmConfig, LlmEngine};
use dialnexa_analysis::{Engine, EngineError, RulesEngine};
use dialnexa_core::agent::AgentConfig;
use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, AnalysisSchema};
use dialnexa_core::evidence::Role;
use dialnexa_core::{CallId, ExtractedField};
use dialnexa_store::{AnalysisUpdate, CallDetail, Claimed, Completion, NewWork, RetrySchedule, StoreError, WorkFailure};
use serde_json::{Value, json};

use crate::config::Config;
use crate::state::AppState;

pub const ANALYSIS: &str = "analysis";
const BATCH: u32 = 8;

/// Delays between LLM attempts before falling back to the rules engine.
pub fn analysis_retry_schedule() -> RetrySchedule {
    RetrySchedule::from_secs(&[5, 30, 120, 600])
}

pub fn engine_from(config: &Config) -> Result<Arc<dyn Engine>, String> {
    match (config.analysis_engine.as_str(), &config.llm_url) {
        ("llm", Some(url)) => {
            let llm = LlmEngine::new(LlmConfig {
                base_url: url.clone(),
                model: config.llm_model.clone(),
                api_key: config.llm_api_key.clone(),
                timeout: Duration::from_millis(config.llm_timeout_ms),
            })
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(llm))
        }
        _ => Ok(Arc::new(RulesEngine)),
    }
}

/// The work item that analyses a call. `attempt_key` tells reruns apart.
pub fn analysis_work(call_id: &CallId, attempt_key: &str, max_attempts: u32) -> NewWork {
    NewWork {
        kind: ANALYSIS.into(),
        payload: json!({ "call_id": call_id }),
        dedup_key: Some(format!("analysis:{call_id}:{attempt_key}")),
        max_attempts,
        run_at: None,
    }
}

pub fn pending(now: jiff::Timestamp, engine: &str) -> Value {
    json!({ "status": "pending", "engine": engine, "requested_at": now.to_string() })
}

/// Whether this node's workers are running, for `/readyz`.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    /// This node should run workers (`workers = true`).
    expected: AtomicBool,
    /// The worker loop is running (false between a crash of the loop and its restart).
    running: AtomicBool,
    /// When the loop last finished a pass (ms since the epoch, wall clock).
    last_pass_ms: AtomicI64,
    restarts: AtomicU64,
}

impl WorkerHealth {
    pub fn expect(&self) {
        self.expected.store(true, Ordering::Relaxed);
    }
    fn pass(&self) {
        self.last_pass_ms.store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }
    /// `None` when ready (or workers do not run here), else why not.
    pub fn problem(&self, stale_after: Duration) -> Option<String> {
        if !self.expected.load(Ordering::Relaxed) {
            return None;
        }
        if !self.running.load(Ordering::Relaxed) {
            return Some("the background workers are not running".into());
        }
        let age = jiff::Timestamp::now().as_millisecond() - self.last_pass_ms.load(Ordering::Relaxed);
        (age > i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX))
            .then(|| format!("the background workers have not finished a pass for {} s", age / 1000))
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// How long a pass may take before `/readyz` says the workers are stuck: a pass waits for
/// its items, and each is bounded by its lease.
pub fn stale_after(config: &Config) -> Duration {
    Duration::from_millis(analysis_lease(config).max(handoff_lease(config)).as_millis() as u64 * 2) + Duration::from_secs(30)
}

pub fn analysis_lease(config: &Config) -> Duration {
    // Long enough for a slow LLM answer; it is renewed while the answer is awaited.
    Duration::from_millis(config.analysis_lease_ms.max(config.llm_timeout_ms * 2))
}

pub fn handoff_lease(config: &Config) -> Duration {
    Duration::from_millis(config.handoff_lease_ms.max(config.handoff_timeout_ms * 2))
}

/// Poll for work until `stop` turns true. Supervised: a crash of the loop is logged and the
/// loop starts again; a crash of one item fails that item alone (see [`run_item`]).
pub async fn run(state: AppState, stop: tokio::sync::watch::Receiver<bool>) {
    state.workers.expect();
    loop {
        state.workers.running.store(true, Ordering::Relaxed);
        state.workers.pass();
        let looped = tokio::spawn(poll(state.clone(), stop.clone())).await;
        state.workers.running.store(false, Ordering::Relaxed);
        match looped {
            Ok(()) => return,
            Err(e) => {
                state.workers.restarts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dialnexa_worker_restarts_total").increment(1);
                tracing::error!(error = %e, "the worker loop crashed; starting it again");
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn poll(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Phone calls are reconciled with the carrier at start, then every interval.
    let mut reconciled: Option<std::time::Instant> = None;
    let mut reconciling: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let every = Duration::from_secs(state.config.reconcile_interval_secs.max(1));
        // In a task of its own: a slow carrier does not hold up analysis and deliveries.
        if state.carrier.is_some() && reconciled.is_none_or(|t| t.elapsed() >= every) && reconciling.as_ref().is_none_or(|h| h.is_finished()) {
            reconciled = Some(std::time::Instant::now());
            let s = state.clone();
            reconciling = Some(tokio::spawn(async move {
                if let Err(e) = crate::telephony::reconcile::run(&s, jiff::Timestamp::now()).await {
                    tracing::error!(error = %e, "reconciliation with the carrier failed");
                }
            }));
        }
        let worked = match run_once(&state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "worker pass failed");
                0
            }
        };
        state.workers.pass();
        if *stop.borrow() {
            return;
        }
        if worked == 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Run every item that is due now, until none is left. Returns how many ran.
pub async fn drain(state: &AppState) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = run_once(state).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// [`drain`] after stepping the clock forward to `now` (tests reach retries this way).
pub async fn drain_at(state: &AppState, now: jiff::Timestamp) -> Result<usize, StoreError> {
    state.clock.advance_to(now);
    drain(state).await
}

/// Claim a batch and work it.
pub async fn run_once(state: &AppState) -> Result<usize, StoreError> {
    let lease = analysis_lease(&state.config);
    let items = state.store.claim(&[ANALYSIS], &state.worker_id, BATCH, lease, state.clock.now()).await?;
    let n = items.len();
    futures_util::future::join_all(items.into_iter().map(|item| run_item(state, item, lease))).await;
    let delivered = crate::handoffs::deliver_batch(state).await?;
    Ok(n + delivered)
}

/// Work one item in a task of its own, under its lease (renewed while it runs). A panic or
/// an error fails this item alone: it is stored as a failed attempt with the reason, and an
/// item that keeps failing goes `dead`.
pub async fn run_item(state: &AppState, item: Claimed, lease: Duration) {
    let task = {
        let (state, item) = (state.clone(), item.clone());
        tokio::spawn(async move {
            match under_lease(&state, &item, lease, work(&state, &item)).await {
                Some(r) => r,
                None => {
                    tracing::warn!(item = %item.id, kind = %item.kind, "the lease was lost while working; the next holder decides");
                    Ok(())
                }
            }
        })
    };
    let failure = match task.await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("the work failed: {e}"),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "no message".into());
            metrics::counter!("dialnexa_work_panics_total", "kind" => item.kind.clone()).increment(1);
            format!("the work panicked: {msg}")
        }
        Err(e) => format!("the work was cancelled: {e}"),
    };
    tracing::error!(item = %item.id, kind = %item.kind, error = %failure, "work item failed");
    let schedule = match item.kind.as_str() {
        ANALYSIS => analysis_retry_schedule(),
        _ => crate::handoffs::delivery_policy(&state.config).schedule,
    };
    let f = WorkFailure { error: failure.clone(), retryable: true, retry_after: None };
    match state.store.fail(&item, &f, &schedule, state.clock.now()).await {
        Ok(Completion::Dead) if item.kind == ANALYSIS => {
            if let Some(call_id) = item.payload.get("call_id").and_then(Value::as_str).and_then(|c| CallId::parse(c).ok()) {
                let status = json!({ "status": "failed", "attempts": item.attempt, "error": failure });
                if let Err(e) = state.store.set_call_analysis(&call_id, &status, state.clock.now()).await {
                    tracing::error!(call_id = %call_id, error = %e, "cannot record the failed analysis");
                }
            }
        }
        Ok(_) => {}
        // The lease runs out and the item is rescued: nothing is lost.
        Err(e) => tracing::error!(item = %item.id, error = %e, "cannot record the failed attempt; the item is rescued after its lease"),
    }
}

async fn work(state: &AppState, item: &Claimed) -> Result<(), StoreError> {
    match item.kind.as_str() {
        ANALYSIS => analyse(state, item).await,
        crate::handoffs::HANDOFF => crate::handoffs::deliver(state, item).await,
        other => Err(StoreError::Corrupt(format!("no worker for work of kind {other}"))),
    }
}

/// Run `work` while renewing `item`'s lease; `None` when the lease was lost (the work is
/// dropped: whatever it would still have written is refused by the fence anyway).
pub async fn under_lease<F: std::future::Future>(state: &AppState, item: &Claimed, lease: Duration, work: F) -> Option<F::Output> {
    let beat = (lease / 3).max(Duration::from_millis(50));
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = tokio::time::sleep(beat) => match state.store.heartbeat(item, lease, state.clock.now()).await {
                Ok(true) => {}
                Ok(false) => return None,
                // The database hiccuped: keep working; the fence decides at the end.
                Err(e) => tracing::warn!(item = %item.id, error = %e, "cannot renew the lease"),
            },
        }
    }
}

fn schema_of(config: &Value) -> AnalysisSchema {
    AgentConfig::parse(config)
        .ok()
        .and_then(|c| c.analysis_schema().ok())
        .unwrap_or_else(|| AnalysisConfig::default().resolve("analysis").unwrap_or(AnalysisSchema { fields: vec![] }))
}

async fn analyse(state: &AppState, item: &Claimed) -> Result<(), StoreError> {
    let store = state.store.as_ref();
    let clock = state.clock.as_ref();
    let Some(call_id) = item.payload.get("call_id").and_then(Value::as_str).and_then(|c| CallId::parse(c).ok()) else {
        tracing::error!(item = %item.id, "analysis item without a call id");
        store
            .fail(item, &WorkFailure { error: "no call_id in payload".into(), retryable: false, retry_after: None }, &analysis_retry_schedule(), clock.now())
            .await?;
        return Ok(());
    };
    let call = match store.get_call(&call_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            store.complete(item, clock.now()).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let schema = match (&call.row.agent_id, call.row.agent_version) {
        (Some(a), Some(v)) => match store.get_version(a, v).await {
            Ok(version) => schema_of(&version.config),
            Err(StoreError::NotFound) => schema_of(&Value::Null),
            Err(e) => return Err(e),
        },
        _ => schema_of(&Value::Null),
    };
    let input = AnalysisInput {
        call_time: call.row.started_at.unwrap_or(call.row.created_at),
        timezone: call.row.timezone.clone().unwrap_or_else(|| state.config.default_timezone.clone()),
        transcript: call.transcript.clone(),
        schema,
    };
    let engine = state.engine.as_ref();
    let started = std::time::Instant::now();
    let outcome = engine.analyze(&input).await;
    metrics::histogram!("dialnexa_analysis_seconds", "engine" => engine.name()).record(started.elapsed().as_secs_f64());
    let (analysis, fallback) = match outcome {
        Ok(a) => (a, None),
        Err(EngineError::Retryable { message, retry_after }) if item.attempt < item.max_attempts => {
            let failure = WorkFailure { error: message.clone(), retryable: true, retry_after };
            if let Completion::Retrying { at } = store.fail(item, &failure, &analysis_retry_schedule(), clock.now()).await? {
                let status = json!({
                    "status": "pending", "engine": engine.name(), "attempts": item.attempt, "last_error": message, "next_attempt_at": at.to_string(),
                });
                store.set_call_analysis(&call_id, &status, clock.now()).await?;
            }
            metrics::counter!("dialnexa_analysis_total", "engine" => engine.name(), "outcome" => "retrying").increment(1);
            return Ok(());
        }
        Err(e) => {
            // Out of attempts, an unusable answer or a refusal: the offline engine answers.
            let reason = match &e {
                EngineError::Retryable { message, .. } => format!("{message}; gave up after {} attempts", item.attempt),
                other => other.to_string(),
            };
            tracing::warn!(call_id = %call_id, engine = engine.name(), reason = %reason, "analysis falls back to the rules engine");
            (dialnexa_analysis::analyze_offline(&input), Some(json!({ "from": engine.name(), "reason": reason })))
        }
    };
    let update = build_update(&call, &analysis, fallback, item.attempt, clock.now(), &input);
    let plan = crate::handoffs::plan_for(state, &call, &analysis, clock.now()).await?;
    match store.finish_analysis(item, &call_id, &update, &plan, clock.now()).await? {
        Completion::Stale => tracing::warn!(call_id = %call_id, "analysis finished after its lease was lost; discarded"),
        _ => metrics::counter!("dialnexa_analysis_total", "engine" => analysis.engine.clone(), "outcome" => "done").increment(1),
    }
    Ok(())
}

/// The call's fields after analysis: what the agent collected in the call wins over what
/// analysis found afterwards (it was a direct answer to a question).
fn merged_fields(call: &CallDetail, analysis: &Analysis) -> std::collections::BTreeMap<String, ExtractedField> {
    let previous: std::collections::BTreeMap<String, ExtractedField> =
        call.row.analysis.as_ref().and_then(|a| a.get("fields")).and_then(|f| serde_json::from_value(f.clone()).ok()).unwrap_or_default();
    let mut merged: std::collections::BTreeMap<String, ExtractedField> = analysis.fields.clone();
    for (name, field) in &call.row.extracted_fields {
        // Skip what an earlier analysis put there; keep what the call itself collected.
        if previous.get(name) != Some(field) {
            merged.insert(name.clone(), field.clone());
        }
    }
    merged
}

fn build_update(call: &CallDetail, a: &Analysis, fallback: Option<Value>, attempts: u32, now: jiff::Timestamp, input: &AnalysisInput) -> AnalysisUpdate {
    let mut warnings = a.warnings.clone();
    if !input.transcript.iter().any(|t| t.role == Role::Caller) {
        warnings.push("the caller said nothing: there is nothing to learn from the call".into());
    }
    let mut analysis = serde_json::to_value(a).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut analysis {
        m.insert("status".into(), json!("done"));
        m.insert("completed_at".into(), json!(now.to_string()));
        m.insert("attempts".into(), json!(attempts));
        m.insert("timezone".into(), json!(input.timezone));
        m.insert("warnings".into(), json!(warnings));
        if let Some(f) = fallback {
            m.insert("fallback".into(), f);
        }
    }
    AnalysisUpdate {
        analysis,
        category: Some(a.category.as_str().to_owned()),
        summary: Some(a.summary.text.clone()).filter(|s| !s.is_empty()),
        extracted_fields: merged_fields(call, a),
    }
}
