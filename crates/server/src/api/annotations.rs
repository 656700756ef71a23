//! Annotations: notes, prompt suggestions and corrections on calls and their turns.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_core::{AgentId, Annotation, AnnotationId, AnnotationKind};
use dialnexa_store::AnnotationFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{page, rfc3339, split_page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, invalid_cursor};
use crate::state::AppState;

pub const MAX_TEXT_CHARS: usize = 4000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotationIn {
    /// The transcript turn it is about; absent: the whole call.
    pub turn_index: Option<u32>,
    /// note, prompt_suggestion or correction.
    pub kind: String,
    pub text: String,
    /// The suggested wording (for prompt suggestions and corrections).
    pub suggestion: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnotationOut {
    pub annotation_id: String,
    pub call_id: String,
    pub agent_id: Option<String>,
    pub agent_version: Option<u32>,
    pub turn_index: Option<u32>,
    pub kind: String,
    pub text: String,
    pub suggestion: Option<String>,
    pub created_at: String,
}

impl From<Annotation> for AnnotationOut {
    fn from(a: Annotation) -> Self {
        AnnotationOut {
            annotation_id: a.annotation_id.to_string(),
            call_id: a.call_id.to_string(),
            agent_id: a.agent_id.map(|x| x.to_string()),
            agent_version: a.agent_version,
            turn_index: a.turn_index,
            kind: a.kind.as_str().to_owned(),
            text: a.text,
            suggestion: a.suggestion,
            created_at: rfc3339(a.created_at),
        }
    }
}

fn check_text(path: &str, text: &str) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::field(path, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::field(path, format!("at most {MAX_TEXT_CHARS} characters")));
    }
    Ok(())
}

/// Annotate a call or one of its turns.
#[utoipa::path(post, path = "/v1/calls/{call_id}/annotations", tag = "calls", request_body = AnnotationIn,
    responses((status = 201, body = AnnotationOut), (status = 404), (status = 422, description = "validation_failed, invalid_turn_index")))]
pub async fn create(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    ApiJson(body): ApiJson<AnnotationIn>,
) -> ApiResult<(StatusCode, Json<AnnotationOut>)> {
    let call = super::calls::load_detail(&state, &call_id).await?;
    let kind: AnnotationKind = body.kind.parse().map_err(|e: String| ApiError::field("kind", e))?;
    check_text("text", &body.text)?;
    if let Some(s) = &body.suggestion {
        check_text("suggestion", s)?;
    }
    if let Some(t) = body.turn_index
        && t as usize >= call.transcript.len()
    {
        return Err(ApiError::unprocessable(
            "invalid_turn_index",
            format!("turn_index {t} is not a turn of this call (it has {} turns)", call.transcript.len()),
        )
        .with_details(json!({ "path": "turn_index", "turns": call.transcript.len() })));
    }
    let annotation = Annotation {
        annotation_id: AnnotationId::generate(),
        call_id: call.row.call_id.clone(),
        agent_id: call.row.agent_id.clone(),
        agent_version: call.row.agent_version,
        turn_index: body.turn_index,
        kind,
        text: body.text,
        suggestion: body.suggestion,
        created_at: jiff::Timestamp::now(),
    };
    state.store.add_annotation(&annotation).await?;
    Ok((StatusCode::CREATED, Json(annotation.into())))
}

/// Annotations across calls, oldest first: the worklist for improving an agent version.
#[utoipa::path(get, path = "/v1/annotations", tag = "calls",
    params(("agent_id" = Option<String>, Query), ("agent_version" = Option<u32>, Query), ("kind" = Option<String>, Query), ("call_id" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{annotations, next_cursor}"), (status = 422)))]
pub async fn list(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["agent_id", "agent_version", "kind", "call_id", "limit", "cursor"])?;
    let filter = AnnotationFilter {
        agent_id: q.parsed("agent_id", |v| AgentId::parse(v).map_err(|e| e.to_string()))?,
        agent_version: q.parsed("agent_version", |v| v.parse::<u32>().map_err(|_| "must be a version number".to_owned()))?,
        kind: q.parsed("kind", |v| v.parse::<AnnotationKind>())?,
        call_id: q.parsed("call_id", |v| dialnexa_core::CallId::parse(v).map_err(|e| e.to_string()))?,
    };
    let limit = q.limit()?;
    let after = q
        .get("cursor")
        .map(|c| {
            let (ms, id) = c.split_once('.').ok_or_else(invalid_cursor)?;
            let ms: i64 = ms.parse().map_err(|_| invalid_cursor())?;
            AnnotationId::parse(id).map_err(|_| invalid_cursor())?;
            Ok::<_, ApiError>((ms, id.to_owned()))
        })
        .transpose()?;
    let rows = state.store.list_annotations(&filter, after.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|a| format!("{}.{}", a.created_at.as_millisecond(), a.annotation_id))).flatten();
    let out: Vec<AnnotationOut> = rows.into_iter().map(AnnotationOut::from).collect();
    Ok(Json(page("annotations", &out, next)))
}
