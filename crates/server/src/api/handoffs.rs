//! Handoffs, the review queue, follow-ups and recurring reasons.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_core::CallId;
use dialnexa_store::{FollowUpRecord, HandoffFilter, HandoffRecord, ReviewItemRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{page, rfc3339, split_page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{OptionalJson, QueryPairs, invalid_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub attempt: u32,
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The HTTP exchanges (request line without secrets, status, latency, response excerpt).
    #[schema(value_type = Vec<Object>)]
    pub exchanges: Value,
    /// A rate limit: counted against the rate-limit budget, not the attempts meant for errors.
    pub rate_limited: bool,
    /// The `Retry-After` the destination asked for, in ms.
    pub retry_after_ms: Option<u64>,
    /// What was done about it, e.g. "Retry-After 86400 s capped at 3600 s".
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffOut {
    pub handoff_id: String,
    pub call_id: String,
    pub integration_id: String,
    pub integration_kind: String,
    pub action: String,
    pub idempotency_key: String,
    /// planned | held_for_review | sending | retrying | sent | skipped | deduplicated | failed | dead
    pub status: String,
    /// Why, in a sentence.
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub attempts: Vec<AttemptOut>,
    pub next_attempt_at: Option<String>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// What was (or will be) sent.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: String,
    pub updated_at: String,
}

pub async fn handoff_out(state: &AppState, h: HandoffRecord) -> ApiResult<HandoffOut> {
    let attempts = state
        .store
        .handoff_attempts(&h.handoff_id)
        .await?
        .into_iter()
        .map(|a| AttemptOut {
            attempt: a.attempt,
            at: rfc3339(a.at),
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
            exchanges: a.exchanges,
            rate_limited: a.rate_limited,
            retry_after_ms: a.retry_after_ms,
            note: a.note,
        })
        .collect();
    Ok(HandoffOut {
        handoff_id: h.handoff_id,
        call_id: h.call_id.to_string(),
        integration_id: h.integration_id,
        integration_kind: h.integration_kind,
        action: h.action,
        idempotency_key: h.idempotency_key,
        status: h.status,
        reason: h.reason,
        rule: h.rule_name,
        attempts,
        next_attempt_at: h.next_attempt_at.map(rfc3339),
        external_id: h.external_id,
        external_url: h.external_url,
        evidence: h.evidence,
        payload: h.payload,
        created_at: rfc3339(h.created_at),
        updated_at: rfc3339(h.updated_at),
    })
}

/// All of a call's handoffs, for the call detail.
pub async fn for_call(state: &AppState, call_id: &CallId) -> ApiResult<Vec<HandoffOut>> {
    let rows = state.store.list_handoffs(&HandoffFilter { call_id: Some(call_id.clone()), ..Default::default() }, None, 1000).await?;
    let mut out = Vec::with_capacity(rows.len());
    for h in rows {
        out.push(handoff_out(state, h).await?);
    }
    Ok(out)
}

const STATUSES: [&str; 9] = ["planned", "held_for_review", "sending", "retrying", "sent", "skipped", "deduplicated", "failed", "dead"];

#[utoipa::path(get, path = "/v1/handoffs", tag = "handoffs",
    params(("call_id" = Option<String>, Query), ("status" = Option<String>, Query), ("integration_id" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{handoffs, next_cursor}"), (status = 422)))]
pub async fn list(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["call_id", "status", "integration_id", "limit", "cursor"])?;
    let filter = HandoffFilter {
        call_id: q.parsed("call_id", |v| CallId::parse(v).map_err(|e| e.to_string()))?,
        status: q.parsed("status", |v| {
            if STATUSES.contains(&v) { Ok(v.to_owned()) } else { Err(format!("unknown value; expected one of {}", STATUSES.join(", "))) }
        })?,
        integration_id: q.parsed("integration_id", |v| if v.is_empty() || v.len() > 100 { Err("1 to 100 characters".into()) } else { Ok(v.to_owned()) })?,
    };
    let limit = q.limit()?;
    let after = q
        .get("cursor")
        .map(|c| {
            let (ms, id) = c.split_once('.').ok_or_else(invalid_cursor)?;
            Ok::<_, ApiError>((ms.parse::<i64>().map_err(|_| invalid_cursor())?, id.to_owned()))
        })
        .transpose()?;
    let rows = state.store.list_handoffs(&filter, after.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|h| format!("{}.{}", h.created_at.as_millisecond(), h.handoff_id))).flatten();
    let mut out = vec![];
    for h in rows {
        out.push(handoff_out(&state, h).await?);
    }
    Ok(Json(page("handoffs", &out, next)))
}

async fn load(state: &AppState, id: &str) -> ApiResult<HandoffRecord> {
    state.store.get_handoff(id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("handoff"),
        other => other.into(),
    })
}

#[utoipa::path(get, path = "/v1/handoffs/{handoff_id}", tag = "handoffs", responses((status = 200, body = HandoffOut), (status = 404)))]
pub async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<HandoffOut>> {
    let h = load(&state, &id).await?;
    Ok(Json(handoff_out(&state, h).await?))
}

/// Send a failed, dead or retrying handoff again now. A handoff has at most one work item:
/// a retry of one whose attempt is queued brings that attempt forward; one being delivered
/// right now is refused (409 `handoff_in_progress`).
#[utoipa::path(post, path = "/v1/handoffs/{handoff_id}/retry", tag = "handoffs", responses((status = 202, body = HandoffOut), (status = 404),
    (status = 409, description = "handoff_not_retryable, or handoff_in_progress while an attempt is running")))]
pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<HandoffOut>)> {
    let h = load(&state, &id).await?;
    let work = crate::handoffs::resend_work(&state, &h, false);
    let h = state
        .store
        .requeue_handoff(&h.handoff_id, &["failed", "dead", "retrying"], &work, "retry requested through the API", state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(why) => {
                ApiError::new(StatusCode::CONFLICT, "handoff_not_retryable", format!("{why}: only failed, dead or retrying handoffs can be retried"))
            }
            StoreError::InProgress(why) => ApiError::new(StatusCode::CONFLICT, "handoff_in_progress", format!("{why}; its outcome decides what comes next")),
            other => other.into(),
        })?;
    Ok((StatusCode::ACCEPTED, Json(handoff_out(&state, h).await?)))
}

/// `created_at ms.id` keyset cursors of the review queue and follow-ups.
fn keyset(q: &QueryPairs) -> ApiResult<Option<(i64, String)>> {
    q.get("cursor")
        .map(|c| {
            let (ms, id) = c.split_once('.').ok_or_else(invalid_cursor)?;
            Ok::<_, ApiError>((ms.parse::<i64>().map_err(|_| invalid_cursor())?, id.to_owned()))
        })
        .transpose()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItemOut {
    pub review_id: String,
    pub call_id: String,
    pub handoff_id: Option<String>,
    /// low_confidence_match | sensitive_request | high_value_customer | changes_money_access_legal_or_commitment | missing_required_field
    pub reason: String,
    pub detail: String,
    /// open | approved | rejected
    pub status: String,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub created_at: String,
}

impl From<ReviewItemRecord> for ReviewItemOut {
    fn from(r: ReviewItemRecord) -> Self {
        ReviewItemOut {
            review_id: r.review_id,
            call_id: r.call_id.to_string(),
            handoff_id: r.handoff_id,
            reason: r.reason,
            detail: r.detail,
            status: r.status,
            note: r.note,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
        }
    }
}

#[utoipa::path(get, path = "/v1/review-items", tag = "handoffs",
    params(("status" = Option<String>, Query, description = "open, approved or rejected"), ("call_id" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{review_items, next_cursor}, oldest first")))]
pub async fn list_reviews(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["status", "call_id", "limit", "cursor"])?;
    let status =
        q.parsed("status", |v| if ["open", "approved", "rejected"].contains(&v) { Ok(v.to_owned()) } else { Err("open, approved or rejected".into()) })?;
    let call_id = q.parsed("call_id", |v| CallId::parse(v).map_err(|e| e.to_string()))?;
    let limit = q.limit()?;
    let rows = state.store.list_reviews(status.as_deref(), call_id.as_ref(), keyset(&q)?.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|r| format!("{}.{}", r.created_at.as_millisecond(), r.review_id))).flatten();
    let out: Vec<ReviewItemOut> = rows.into_iter().map(ReviewItemOut::from).collect();
    Ok(Json(page("review_items", &out, next)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    pub note: Option<String>,
}

async fn decide(state: &AppState, id: &str, approve: bool, note: Option<String>, caller: &crate::auth::Caller) -> ApiResult<ReviewItemOut> {
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::field("note", "at most 2000 characters"));
    }
    let item = state.store.get_review(id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("review item"),
        other => other.into(),
    })?;
    let work = match (&item.handoff_id, approve) {
        (Some(h), true) => Some(crate::handoffs::resend_work(state, &load(state, h).await?, true)),
        _ => None,
    };
    let r = state.store.decide_review(id, approve, note.as_deref(), &caller.key_id, work.as_ref(), state.clock.now()).await.map_err(|e| match e {
        StoreError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "conflict", why),
        StoreError::NotFound => ApiError::not_found("review item"),
        other => other.into(),
    })?;
    Ok(r.into())
}

#[utoipa::path(post, path = "/v1/review-items/{review_id}/approve", tag = "handoffs", request_body = DecisionIn, responses((status = 200, body = ReviewItemOut), (status = 404), (status = 409)))]
pub async fn approve(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionIn>,
) -> ApiResult<Json<ReviewItemOut>> {
    Ok(Json(decide(&state, &id, true, body.and_then(|b| b.note), &caller).await?))
}

#[utoipa::path(post, path = "/v1/review-items/{review_id}/reject", tag = "handoffs", request_body = DecisionIn, responses((status = 200, body = ReviewItemOut), (status = 404), (status = 409)))]
pub async fn reject(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionIn>,
) -> ApiResult<Json<ReviewItemOut>> {
    Ok(Json(decide(&state, &id, false, body.and_then(|b| b.note), &caller).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpOut {
    pub follow_up_id: String,
    pub call_id: String,
    /// callback | promise
    pub kind: String,
    /// open | done
    pub status: String,
    /// callback: phone, preferred_time, timezone, owner, attempt_count, reason; promise: what, to_whom, by_when, channel, owner.
    #[schema(value_type = Object)]
    pub detail: Value,
    pub due_at: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl From<FollowUpRecord> for FollowUpOut {
    fn from(f: FollowUpRecord) -> Self {
        FollowUpOut {
            follow_up_id: f.follow_up_id,
            call_id: f.call_id.to_string(),
            kind: f.kind,
            status: f.status,
            detail: f.detail,
            due_at: f.due_at.map(rfc3339),
            created_at: rfc3339(f.created_at),
            completed_at: f.completed_at.map(rfc3339),
        }
    }
}

#[utoipa::path(get, path = "/v1/follow-ups", tag = "handoffs",
    params(("kind" = Option<String>, Query, description = "callback or promise"), ("status" = Option<String>, Query, description = "open or done"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{follow_ups, next_cursor}, oldest first")))]
pub async fn list_follow_ups(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["kind", "status", "limit", "cursor"])?;
    let kind = q.parsed("kind", |v| if ["callback", "promise"].contains(&v) { Ok(v.to_owned()) } else { Err("callback or promise".into()) })?;
    let status = q.parsed("status", |v| if ["open", "done"].contains(&v) { Ok(v.to_owned()) } else { Err("open or done".into()) })?;
    let limit = q.limit()?;
    let rows = state.store.list_follow_ups(kind.as_deref(), status.as_deref(), keyset(&q)?.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|f| format!("{}.{}", f.created_at.as_millisecond(), f.follow_up_id))).flatten();
    let out: Vec<FollowUpOut> = rows.into_iter().map(FollowUpOut::from).collect();
    Ok(Json(page("follow_ups", &out, next)))
}

/// Mark a callback or promise done. A kept promise closes the loop: the owner is told and
/// the integrating system hears of it, planned in the same transaction as the completion.
#[utoipa::path(post, path = "/v1/follow-ups/{follow_up_id}/complete", tag = "handoffs", request_body = DecisionIn, responses((status = 200, body = FollowUpOut), (status = 404), (status = 409)))]
pub async fn complete_follow_up(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionIn>,
) -> ApiResult<Json<FollowUpOut>> {
    let note = body.and_then(|b| b.note);
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::field("note", "at most 2000 characters"));
    }
    let not_found = |e: StoreError| match e {
        StoreError::NotFound => ApiError::not_found("follow-up"),
        StoreError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "conflict", why),
        other => other.into(),
    };
    let f = state.store.get_follow_up(&id).await.map_err(not_found)?;
    if f.status != "open" {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("the follow-up is already {}", f.status)));
    }
    let plan = if f.kind == "promise" { crate::handoffs::close_promise_plan(&state, &f, note.as_deref()).await? } else { Default::default() };
    let f = state.store.complete_follow_up(&id, note.as_deref(), &plan, state.clock.now()).await.map_err(not_found)?;
    Ok(Json(f.into()))
}

/// Call reasons ranked by count, with example calls: where callers keep getting stuck.
#[utoipa::path(get, path = "/v1/insights/recurring", tag = "handoffs", params(("since" = Option<String>, Query, description = "RFC 3339; default 30 days ago")),
    responses((status = 200, description = "{reasons: [{reason, count, example_call_ids}]}")))]
pub async fn recurring(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["since", "limit"])?;
    let since = q.parsed("since", |v| v.parse::<jiff::Timestamp>().map_err(|_| "must be an RFC 3339 timestamp".to_owned()))?;
    let since = since.unwrap_or_else(|| jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(24 * 30)).unwrap_or(jiff::Timestamp::UNIX_EPOCH));
    let rows = state.store.recurring(since, q.limit()?).await?;
    Ok(Json(json!({ "since": rfc3339(since), "reasons": rows })))
}
