//! Calls: test calls, the history with its filters, and the detail with all evidence.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_core::{AgentId, CallId, CallStatus, EntryPoint, PhoneNumber};
use dialnexa_store::{CallCursor, CallDetail, CallFilter, CallRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::annotations::AnnotationOut;
use super::{page, rfc3339, split_page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, invalid_cursor};
use crate::state::AppState;
use crate::testcall::{self, TestCallRequest};

/// Triage categories (set by post-call analysis).
pub const CATEGORIES: [&str; 9] =
    ["incident", "bug", "setup_question", "product_confusion", "account_configuration", "known_limitation", "operational_request", "callback_request", "other"];
/// Handoff statuses (DESIGN.md §2).
pub const HANDOFF_STATUSES: [&str; 9] = ["planned", "held_for_review", "sending", "retrying", "sent", "skipped", "deduplicated", "failed", "dead"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCallIn {
    pub agent_id: String,
    /// A published version; absent: the latest published.
    pub agent_version: Option<u32>,
    /// One line per caller turn; the agent speaks first; when the lines run out the caller hangs up.
    pub caller_script: Vec<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    /// Values for `{{variables}}`, over the agent's defaults.
    pub variables: Option<BTreeMap<String, String>>,
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
    /// The caller's IANA timezone (default: the server's `default_timezone`).
    pub timezone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineOut {
    pub at: String,
    pub offset_ms: u64,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnOut {
    pub index: u32,
    /// `agent` or `caller`.
    pub role: String,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpanOut {
    pub turn: u32,
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOut {
    #[schema(value_type = Object)]
    pub value: Value,
    pub confidence: f64,
    pub span: SpanOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AudioCacheOut {
    pub hits: u64,
    pub misses: u64,
}

/// A call with all its evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallOut {
    pub call_id: String,
    pub entry_point: String,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<u32>,
    pub config_hash: Option<String>,
    /// `{entry_point, phone_number?, batch_id?, workflow_id?, node_id?, agent_name, explanation}`.
    #[schema(value_type = Object)]
    pub route: Value,
    pub status: String,
    pub disconnection_reason: Option<String>,
    /// Who ended the call: caller, agent, platform, provider or config.
    pub disconnection_owner: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub timeline: Vec<TimelineOut>,
    pub transcript: Vec<TurnOut>,
    /// `{status: none|recording|available|failed, url?, duration_ms?, reason?}`.
    #[schema(value_type = Object)]
    pub recording: Value,
    pub summary: Option<String>,
    pub extracted_fields: BTreeMap<String, FieldOut>,
    #[schema(value_type = Object)]
    pub analysis: Value,
    #[schema(value_type = Object)]
    pub transfer: Option<Value>,
    pub audio_cache: AudioCacheOut,
    pub annotations: Vec<AnnotationOut>,
    pub handoffs: Vec<super::handoffs::HandoffOut>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Phone calls: the carrier's side, `{carrier, carrier_call_sid, carrier_status, answered_by
    /// (human|machine|unknown), answered_by_raw, ringing_at, answered_at}`; null for web and test calls.
    #[schema(value_type = Object)]
    pub telephony: Option<Value>,
}

/// One row of the call history.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallSummaryOut {
    pub call_id: String,
    pub entry_point: String,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<u32>,
    pub status: String,
    pub disconnection_reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub category: Option<String>,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    pub route_explanation: Option<String>,
}

fn owner(reason: Option<&str>) -> Option<String> {
    reason.and_then(|r| r.parse::<dialnexa_core::DisconnectionReason>().ok()).map(|r| r.owner().to_owned())
}

fn analysis_of(row: &CallRow) -> Value {
    row.analysis.clone().unwrap_or_else(|| json!({ "status": "not_requested", "reason": "no post-call analysis has run for this call" }))
}

impl From<&CallRow> for CallSummaryOut {
    fn from(r: &CallRow) -> Self {
        CallSummaryOut {
            call_id: r.call_id.to_string(),
            entry_point: r.entry_point.clone(),
            direction: r.direction.clone(),
            from_number: r.from_number.clone(),
            to_number: r.to_number.clone(),
            agent_id: r.agent_id.as_ref().map(|a| a.to_string()),
            agent_version: r.agent_version,
            status: r.status.clone(),
            disconnection_reason: r.disconnection_reason.clone(),
            created_at: rfc3339(r.created_at),
            started_at: r.started_at.map(rfc3339),
            ended_at: r.ended_at.map(rfc3339),
            duration_ms: r.duration_ms,
            category: r.category.clone(),
            batch_id: r.batch_id.clone(),
            workflow_id: r.workflow_id.clone(),
            route_explanation: r.route.get("explanation").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

impl From<CallDetail> for CallOut {
    fn from(d: CallDetail) -> Self {
        let r = d.row;
        CallOut {
            call_id: r.call_id.to_string(),
            disconnection_owner: owner(r.disconnection_reason.as_deref()),
            analysis: analysis_of(&r),
            entry_point: r.entry_point,
            direction: r.direction,
            from_number: r.from_number,
            to_number: r.to_number,
            agent_id: r.agent_id.map(|a| a.to_string()),
            agent_version: r.agent_version,
            config_hash: r.config_hash,
            route: r.route,
            status: r.status,
            disconnection_reason: r.disconnection_reason,
            created_at: rfc3339(r.created_at),
            started_at: r.started_at.map(rfc3339),
            ended_at: r.ended_at.map(rfc3339),
            duration_ms: r.duration_ms,
            timeline: d.timeline.into_iter().map(|e| TimelineOut { at: rfc3339(e.at), offset_ms: e.offset_ms, kind: e.kind, detail: e.detail }).collect(),
            transcript: d
                .transcript
                .into_iter()
                .map(|t| TurnOut { index: t.index, role: t.role.as_str().to_owned(), text: t.text, start_ms: t.start_ms, end_ms: t.end_ms })
                .collect(),
            recording: serde_json::to_value(&r.recording).unwrap_or_default(),
            summary: r.summary,
            extracted_fields: r
                .extracted_fields
                .into_iter()
                .map(|(k, f)| {
                    (k, FieldOut { value: f.value, confidence: f.confidence, span: SpanOut { turn: f.span.turn, start: f.span.start, end: f.span.end } })
                })
                .collect(),
            transfer: r.transfer,
            audio_cache: AudioCacheOut { hits: r.audio_cache_hits, misses: r.audio_cache_misses },
            annotations: d.annotations.into_iter().map(AnnotationOut::from).collect(),
            handoffs: vec![],
            metadata: r.metadata,
            telephony: None,
        }
    }
}

pub fn analysis_plan(state: &AppState) -> testcall::AnalysisPlan {
    testcall::AnalysisPlan { engine: state.engine.name().to_owned(), max_attempts: state.config.analysis_max_attempts }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RerunOut {
    pub call_id: String,
    #[schema(value_type = Object)]
    pub analysis: Value,
}

/// Analyse the call again (after a config change, or with another engine).
#[utoipa::path(post, path = "/v1/calls/{call_id}/analysis/rerun", tag = "calls", responses((status = 202, body = RerunOut), (status = 404)))]
pub async fn rerun_analysis(State(state): State<AppState>, Path(call_id): Path<String>) -> ApiResult<(StatusCode, Json<RerunOut>)> {
    let call = load_detail(&state, &call_id).await?;
    let now = jiff::Timestamp::now();
    let plan = analysis_plan(&state);
    let pending = crate::worker::pending(now, &plan.engine);
    let key = uuid::Uuid::now_v7().simple().to_string();
    let work = crate::worker::analysis_work(&call.row.call_id, &key, plan.max_attempts);
    state.store.request_analysis(&call.row.call_id, &pending, &work, now).await?;
    Ok((StatusCode::ACCEPTED, Json(RerunOut { call_id: call.row.call_id.to_string(), analysis: pending })))
}

pub async fn load_detail(state: &AppState, raw: &str) -> ApiResult<CallDetail> {
    let id = CallId::parse(raw).map_err(|_| ApiError::not_found("call"))?;
    state.store.get_call(&id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("call"),
        other => other.into(),
    })
}

/// Run a test call: the agent against a caller script, stored with all its evidence.
#[utoipa::path(post, path = "/v1/calls/test", tag = "calls", request_body = TestCallIn,
    responses((status = 201, body = CallOut), (status = 422, description = "invalid_caller_script, agent_not_found, agent_version_not_published, agent_kind_not_supported")))]
pub async fn create_test(State(state): State<AppState>, ApiJson(body): ApiJson<TestCallIn>) -> ApiResult<(StatusCode, Json<CallOut>)> {
    let req = TestCallRequest {
        agent_id: super::routes::request_agent_id(Some(&body.agent_id))?,
        agent_version: body.agent_version,
        caller_script: body.caller_script,
        from_number: body.from_number.as_deref().map(|p| super::numbers::parse_number(p, "from_number")).transpose()?,
        to_number: body.to_number.as_deref().map(|p| super::numbers::parse_number(p, "to_number")).transpose()?,
        variables: body.variables.unwrap_or_default(),
        metadata: body.metadata.unwrap_or(Value::Null),
        timezone: body.timezone,
    };
    let call_id = testcall::run(state.store.as_ref(), req, &analysis_plan(&state), jiff::Timestamp::now()).await?;
    let detail = state.store.get_call(&call_id).await?;
    Ok((StatusCode::CREATED, Json(call_out(&state, detail).await?)))
}

pub const FILTERS: [&str; 11] = [
    "entry_point",
    "status",
    "agent_id",
    "agent_version",
    "phone_number",
    "batch_id",
    "workflow_id",
    "started_after",
    "started_before",
    "category",
    "handoff_status",
];

fn one_of(v: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&v) {
        Ok(v.to_owned())
    } else {
        Err(format!("unknown value '{}'; expected one of {}", v.chars().take(40).collect::<String>(), allowed.join(", ")))
    }
}

fn short_text(v: &str) -> Result<String, String> {
    if v.is_empty() || v.chars().count() > 200 { Err("must be 1 to 200 characters".into()) } else { Ok(v.to_owned()) }
}

fn timestamp(v: &str) -> Result<jiff::Timestamp, String> {
    v.parse::<jiff::Timestamp>().map_err(|_| "must be an RFC 3339 timestamp such as 2026-11-01T00:00:00Z".to_owned())
}

/// The list filters of API.md, each checked: an unknown value is a 422 `invalid_filter`.
pub fn parse_filter(q: &QueryPairs) -> ApiResult<CallFilter> {
    let entry_names: Vec<&str> = EntryPoint::ALL.iter().map(|e| e.as_str()).collect();
    let status_names: Vec<&str> = CallStatus::ALL.iter().map(|s| s.as_str()).collect();
    let f = CallFilter {
        entry_point: q.parsed("entry_point", |v| one_of(v, &entry_names))?,
        status: q.parsed("status", |v| one_of(v, &status_names))?,
        agent_id: q.parsed("agent_id", |v| AgentId::parse(v).map_err(|e| e.to_string()))?,
        agent_version: q.parsed("agent_version", |v| v.parse::<u32>().map_err(|_| "must be a version number".to_owned()))?,
        phone_number: q.parsed("phone_number", |v| PhoneNumber::parse(v).map_err(|e| e.to_string()))?,
        batch_id: q.parsed("batch_id", short_text)?,
        workflow_id: q.parsed("workflow_id", short_text)?,
        started_after: q.parsed("started_after", timestamp)?,
        started_before: q.parsed("started_before", timestamp)?,
        category: q.parsed("category", |v| one_of(v, &CATEGORIES))?,
        handoff_status: q.parsed("handoff_status", |v| one_of(v, &HANDOFF_STATUSES))?,
    };
    if let (Some(a), Some(b)) = (f.started_after, f.started_before)
        && a >= b
    {
        return Err(
            ApiError::unprocessable("invalid_filter", "started_after must be before started_before").with_details(json!({ "parameter": "started_after" }))
        );
    }
    Ok(f)
}

/// Cursors are `<created_at ms>.<call_id>` of the last row of the previous page.
pub fn encode_cursor(r: &CallRow) -> String {
    format!("{}.{}", r.created_at.as_millisecond(), r.call_id)
}

pub fn decode_cursor(raw: &str) -> ApiResult<CallCursor> {
    let (ms, id) = raw.split_once('.').ok_or_else(invalid_cursor)?;
    let created_at_ms: i64 = ms.parse().map_err(|_| invalid_cursor())?;
    let id = CallId::parse(id).map_err(|_| invalid_cursor())?;
    Ok(CallCursor { created_at_ms, call_id: id.to_string() })
}

/// The call history, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls",
    params(("entry_point" = Option<String>, Query), ("status" = Option<String>, Query), ("agent_id" = Option<String>, Query), ("agent_version" = Option<u32>, Query),
        ("phone_number" = Option<String>, Query, description = "from or to"), ("batch_id" = Option<String>, Query), ("workflow_id" = Option<String>, Query),
        ("started_after" = Option<String>, Query, description = "RFC 3339, inclusive"), ("started_before" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("category" = Option<String>, Query), ("handoff_status" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{calls: [CallSummary], next_cursor}"), (status = 422, description = "invalid_filter, invalid_cursor")))]
pub async fn list(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    let mut known = FILTERS.to_vec();
    known.extend(["limit", "cursor"]);
    q.only(&known)?;
    let filter = parse_filter(&q)?;
    let limit = q.limit()?;
    let after = q.get("cursor").map(decode_cursor).transpose()?;
    let rows = state.store.list_calls(&filter, after.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(encode_cursor)).flatten();
    let out: Vec<CallSummaryOut> = rows.iter().map(CallSummaryOut::from).collect();
    Ok(Json(page("calls", &out, next)))
}

/// A call with all its evidence.
#[utoipa::path(get, path = "/v1/calls/{call_id}", tag = "calls", responses((status = 200, body = CallOut), (status = 404)))]
pub async fn get_one(State(state): State<AppState>, Path(call_id): Path<String>) -> ApiResult<Json<CallOut>> {
    let detail = load_detail(&state, &call_id).await?;
    Ok(Json(call_out(&state, detail).await?))
}

/// The call detail with its handoffs in full (attempts included).
pub async fn call_out(state: &AppState, detail: CallDetail) -> ApiResult<CallOut> {
    let id = detail.row.call_id.clone();
    let mut out = CallOut::from(detail);
    out.handoffs = super::handoffs::for_call(state, &id).await?;
    if let Some(leg) = state.store.get_carrier_leg(&id).await? {
        out.telephony = Some(serde_json::json!({
            "carrier": leg.carrier,
            "carrier_call_sid": leg.carrier_sid,
            "carrier_status": leg.raw_status,
            "answered_by": leg.answered_by.as_deref().map(|a| dialnexa_voice::carrier::AnsweredBy::parse(a).as_str()),
            "answered_by_raw": leg.answered_by,
            "ringing_at": leg.ringing_at.map(|t| t.to_string()),
            "answered_at": leg.answered_at.map(|t| t.to_string()),
        }));
    }
    Ok(out)
}
