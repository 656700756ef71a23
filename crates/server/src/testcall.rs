//! Test calls: the "manual test" entry point. The flow agent runs against a caller script
//! in text, and the whole call is stored as evidence, exactly like any other call.

use std::collections::BTreeMap;

use dialnexa_core::agent::AgentConfig;
use dialnexa_core::route::RouteRequest;
use dialnexa_core::{AgentId, CallId, CallStatus, DisconnectionReason, EntryPoint, PhoneNumber, TimelineEvent};
use dialnexa_store::{CallRow, NewCall, RecordingInfo, Store};
use serde_json::{Value, json};

use crate::api::routes::resolve_with;
use crate::error::{ApiError, ApiResult};

/// Limits on a caller script.
pub const MAX_SCRIPT_LINES: usize = 200;
pub const MAX_LINE_CHARS: usize = 2000;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_VARIABLES: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct TestCallRequest {
    pub agent_id: Option<AgentId>,
    pub agent_version: Option<u32>,
    pub caller_script: Vec<String>,
    pub from_number: Option<PhoneNumber>,
    pub to_number: Option<PhoneNumber>,
    pub variables: BTreeMap<String, String>,
    pub metadata: Value,
    /// IANA name; relative times the caller says are resolved in it.
    pub timezone: Option<String>,
}

/// Check the parts of a request that do not need the database.
pub fn check_request(req: &TestCallRequest) -> ApiResult<()> {
    if req.caller_script.is_empty() {
        return Err(ApiError::unprocessable("invalid_caller_script", "caller_script needs at least one line").with_details(json!({ "path": "caller_script" })));
    }
    if req.caller_script.len() > MAX_SCRIPT_LINES {
        return Err(ApiError::unprocessable(
            "invalid_caller_script",
            format!("caller_script has {} lines; at most {MAX_SCRIPT_LINES}", req.caller_script.len()),
        )
        .with_details(json!({ "path": "caller_script", "limit": MAX_SCRIPT_LINES })));
    }
    for (i, line) in req.caller_script.iter().enumerate() {
        let path = format!("caller_script[{i}]");
        if line.trim().is_empty() {
            return Err(ApiError::unprocessable("invalid_caller_script", format!("{path} is empty; each line is something the caller says"))
                .with_details(json!({ "path": path })));
        }
        if line.chars().count() > MAX_LINE_CHARS {
            return Err(ApiError::unprocessable("invalid_caller_script", format!("{path} is longer than {MAX_LINE_CHARS} characters"))
                .with_details(json!({ "path": path, "limit": MAX_LINE_CHARS })));
        }
    }
    if !req.metadata.is_object() && !req.metadata.is_null() {
        return Err(ApiError::field("metadata", "must be a JSON object"));
    }
    if req.metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::field("metadata", format!("larger than {MAX_METADATA_BYTES} bytes")));
    }
    if let Some(tz) = &req.timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(ApiError::field("timezone", format!("'{}' is not an IANA timezone such as Europe/Berlin", tz.chars().take(60).collect::<String>())));
    }
    if req.variables.len() > MAX_VARIABLES {
        return Err(ApiError::field("variables", format!("at most {MAX_VARIABLES} variables")));
    }
    for (k, v) in &req.variables {
        if !dialnexa_core::flow::is_identifier(k) {
            return Err(ApiError::field(&format!("variables.{k}"), "names are lower-case letters, digits and '_', starting with a letter"));
        }
        if v.chars().count() > MAX_LINE_CHARS {
            return Err(ApiError::field(&format!("variables.{k}"), format!("longer than {MAX_LINE_CHARS} characters")));
        }
    }
    Ok(())
}

fn ending_sentence(reason: DisconnectionReason, script_lines: usize, final_node: Option<&str>, transfer_to: Option<&str>, max_turns: u32) -> String {
    let node = final_node.map(|n| format!(" at node '{n}'")).unwrap_or_default();
    match reason {
        DisconnectionReason::UserHangup => {
            format!("The caller hung up{node}: the caller script ran out after {script_lines} line{}", if script_lines == 1 { "" } else { "s" })
        }
        DisconnectionReason::AgentHangup => format!("The agent ended the call{node}"),
        DisconnectionReason::Transfer => format!("The agent transferred the call to {}{node}", transfer_to.unwrap_or("another number")),
        DisconnectionReason::MaxTurns => format!("The call reached the agent's bound of {max_turns} turns{node} and was ended"),
        DisconnectionReason::MaxDuration => format!("The call reached the agent's maximum duration{node} and was ended"),
        other => format!("The call ended ({other}){node}"),
    }
}

fn at(start: jiff::Timestamp, offset_ms: u64) -> jiff::Timestamp {
    start.checked_add(jiff::SignedDuration::from_millis(i64::try_from(offset_ms).unwrap_or(i64::MAX / 2))).unwrap_or(start)
}

/// How the stored call is analysed afterwards.
#[derive(Debug, Clone)]
pub struct AnalysisPlan {
    pub engine: String,
    pub max_attempts: u32,
}

/// Run a test call and store it with its analysis work item, in one transaction; returns
/// its id. Every fault before the call is stored is a user error that changes nothing.
pub async fn run(store: &dyn Store, req: TestCallRequest, plan: &AnalysisPlan, now: jiff::Timestamp) -> ApiResult<CallId> {
    check_request(&req)?;
    let route_req =
        RouteRequest { entry_point: Some(EntryPoint::Test), agent_id: req.agent_id.clone(), agent_version: req.agent_version, ..Default::default() };
    let route = resolve_with(store, &route_req).await?;
    let version = store.get_version(&route.agent_id, route.agent_version).await?;
    let config = AgentConfig::parse(&version.config).map_err(|e| {
        tracing::error!(agent_id = %route.agent_id, version = route.agent_version, error = %e, "a published config no longer parses");
        ApiError::internal()
    })?;
    let AgentConfig::Flow(flow) = config else {
        return Err(ApiError::unprocessable(
            "agent_kind_not_supported",
            format!("agent '{}' is an llm agent; text test calls run flow agents (llm agents take web calls)", route.agent_name),
        )
        .with_details(json!({ "kind": "llm" })));
    };
    let call_id = CallId::generate();
    let mut variables = req.variables.clone();
    variables.insert("call_id".into(), call_id.to_string());
    variables.insert("agent_name".into(), route.agent_name.clone());
    variables.insert("agent_version".into(), route.agent_version.to_string());
    variables.insert("from_number".into(), req.from_number.as_ref().map(|p| p.to_string()).unwrap_or_default());
    variables.insert("to_number".into(), req.to_number.as_ref().map(|p| p.to_string()).unwrap_or_default());
    let text = dialnexa_voice::run_text_call(&flow, variables, &req.caller_script).map_err(|e| {
        tracing::error!(agent_id = %route.agent_id, error = %e, "a published flow no longer validates");
        ApiError::internal()
    })?;

    let reason = text.disconnection_reason;
    let status = CallStatus::Registered.transition(CallStatus::Ongoing).and_then(|s| s.transition(reason.final_status())).map_err(|e| {
        tracing::error!(error = %e, "test call state machine");
        ApiError::internal()
    })?;
    let mut timeline = vec![
        TimelineEvent { at: now, offset_ms: 0, kind: "call_registered".into(), detail: "Test call registered from a caller script".into() },
        TimelineEvent { at: now, offset_ms: 0, kind: "route_resolved".into(), detail: route.explanation.clone() },
        TimelineEvent { at: now, offset_ms: 0, kind: "status_changed".into(), detail: "registered → ongoing".into() },
    ];
    timeline.extend(text.timeline.iter().map(|e| TimelineEvent {
        at: at(now, e.offset_ms),
        offset_ms: e.offset_ms,
        kind: e.kind.clone(),
        detail: e.detail.clone(),
    }));
    let said = req.caller_script.len() - text.unused_script_lines;
    let mut ending = ending_sentence(reason, said, text.final_node.as_deref(), text.transfer.as_ref().map(|t| t.to.as_str()), flow.max_turns);
    if text.unused_script_lines > 0 {
        ending.push_str(&format!("; {} script line(s) were not said because the call had ended", text.unused_script_lines));
    }
    timeline.push(TimelineEvent { at: at(now, text.duration_ms), offset_ms: text.duration_ms, kind: "call_ended".into(), detail: ending });
    timeline.push(TimelineEvent {
        at: at(now, text.duration_ms),
        offset_ms: text.duration_ms,
        kind: "status_changed".into(),
        detail: format!("ongoing → {status} ({reason})"),
    });

    let transfer = text.transfer.as_ref().map(|t| json!({ "to": t.to, "at_ms": t.at_ms, "from_node": text.final_node, "status": "requested" }));
    let route_json = json!({
        "entry_point": EntryPoint::Test.as_str(),
        "agent_name": route.agent_name,
        "explanation": route.explanation,
    });
    let row = CallRow {
        call_id: call_id.clone(),
        entry_point: EntryPoint::Test.as_str().into(),
        direction: EntryPoint::Test.direction().as_str().into(),
        from_number: req.from_number.map(|p| p.to_string()),
        to_number: req.to_number.map(|p| p.to_string()),
        agent_id: Some(route.agent_id.clone()),
        agent_version: Some(route.agent_version),
        config_hash: Some(route.config_hash.clone()),
        route: route_json,
        batch_id: None,
        workflow_id: None,
        status: status.as_str().into(),
        disconnection_reason: Some(reason.as_str().into()),
        created_at: now,
        started_at: Some(now),
        ended_at: Some(at(now, text.duration_ms)),
        duration_ms: Some(text.duration_ms),
        category: None,
        summary: None,
        extracted_fields: text.fields,
        analysis: Some(crate::worker::pending(now, &plan.engine)),
        transfer,
        recording: RecordingInfo {
            status: "none".into(),
            url: None,
            duration_ms: None,
            reason: Some("test calls are text only: there is no audio to record".into()),
            blob: None,
            blob_channels: None,
        },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        metadata: if req.metadata.is_null() { json!({}) } else { req.metadata },
        timezone: req.timezone,
    };
    let call = NewCall { row, timeline, transcript: text.transcript };
    let work = crate::worker::analysis_work(&call_id, "1", plan.max_attempts);
    store.insert_call(&call, &[work], now).await?;
    metrics::counter!("dialnexa_calls_total", "entry_point" => "test", "status" => status.as_str()).increment(1);
    tracing::info!(call_id = %call_id, agent_id = %route.agent_id, version = route.agent_version, reason = %reason, "test call stored");
    Ok(call_id)
}
