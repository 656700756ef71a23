//! Background work: post-call analysis, run from the durable queue under a lease.
//!
//! `serve` runs [`run`] (poll, claim, work) unless `workers = false`; tests call
//! [`drain`] to run whatever is due, deterministically, without sleeping.

use std::sync::Arc;
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
    RetrySchedule { delays: [5, 30, 120, 600].into_iter().map(Duration::from_secs).collect(), jitter: 0.2 }
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

/// Poll for work until `stop` turns true.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let worked = match run_once(&state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "worker pass failed");
                0
            }
        };
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
    drain_at(state, jiff::Timestamp::now()).await
}

/// [`drain`] as if the clock said `now` (tests step time forward to reach retries).
pub async fn drain_at(state: &AppState, now: jiff::Timestamp) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = run_once_at(state, now).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Claim a batch and work it.
pub async fn run_once(state: &AppState) -> Result<usize, StoreError> {
    run_once_at(state, jiff::Timestamp::now()).await
}

pub async fn run_once_at(state: &AppState, now: jiff::Timestamp) -> Result<usize, StoreError> {
    // Long enough for a slow LLM answer; a crashed worker's item is rescued after it.
    let lease = Duration::from_millis(state.config.analysis_lease_ms.max(state.config.llm_timeout_ms * 2));
    let items = state.store.claim(&[ANALYSIS], &state.worker_id, BATCH, lease, now).await?;
    let results = futures_util::future::join_all(items.iter().map(|item| analyse(state, item, now))).await;
    for (item, r) in items.iter().zip(results) {
        if let Err(e) = r {
            // The lease runs out and the item is rescued: nothing is lost.
            tracing::error!(item = %item.id, error = %e, "analysis item failed; it will be retried after its lease");
        }
    }
    let delivered = crate::handoffs::deliver_batch(state, now).await?;
    Ok(items.len() + delivered)
}

fn schema_of(config: &Value) -> AnalysisSchema {
    AgentConfig::parse(config)
        .ok()
        .and_then(|c| c.analysis_schema().ok())
        .unwrap_or_else(|| AnalysisConfig::default().resolve("analysis").unwrap_or(AnalysisSchema { fields: vec![] }))
}

async fn analyse(state: &AppState, item: &Claimed, now: jiff::Timestamp) -> Result<(), StoreError> {
    let store = state.store.as_ref();
    let Some(call_id) = item.payload.get("call_id").and_then(Value::as_str).and_then(|c| CallId::parse(c).ok()) else {
        tracing::error!(item = %item.id, "analysis item without a call id");
        store.fail(item, &WorkFailure { error: "no call_id in payload".into(), retryable: false, retry_after: None }, &analysis_retry_schedule(), now).await?;
        return Ok(());
    };
    let call = match store.get_call(&call_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            store.complete(item, now).await?;
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
            if let Completion::Retrying { at } = store.fail(item, &failure, &analysis_retry_schedule(), now).await? {
                let status = json!({
                    "status": "pending", "engine": engine.name(), "attempts": item.attempt, "last_error": message, "next_attempt_at": at.to_string(),
                });
                store.set_call_analysis(&call_id, &status, now).await?;
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
    let update = build_update(&call, &analysis, fallback, item.attempt, now, &input);
    let plan = crate::handoffs::plan_for(state, &call, &analysis, now).await?;
    match store.finish_analysis(item, &call_id, &update, &plan, now).await? {
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
