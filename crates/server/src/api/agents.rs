//! Agents and versions: a draft changes, a published version never does.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_core::AgentId;
use dialnexa_core::agent::{AgentConfig, MAX_CONFIG_BYTES, check_agent_name};
use dialnexa_store::{AgentRecord, NewVersion, VersionRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{page, rfc3339, split_page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, invalid_cursor};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIn {
    pub name: String,
    /// The agent config (docs/agents.md); it becomes draft version 1.
    #[schema(value_type = Object)]
    pub config: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftIn {
    #[schema(value_type = Object)]
    pub config: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    pub agent_id: String,
    pub name: String,
    pub draft_version: u32,
    pub published_versions: Vec<u32>,
    pub latest_published_version: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<AgentRecord> for AgentOut {
    fn from(a: AgentRecord) -> Self {
        AgentOut {
            agent_id: a.agent_id.to_string(),
            name: a.name,
            draft_version: a.draft_version,
            latest_published_version: a.published_versions.iter().max().copied(),
            published_versions: a.published_versions,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOut {
    pub agent_id: String,
    pub version: u32,
    /// `draft` or `published`.
    pub status: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub config_hash: String,
    pub created_at: String,
    pub published_at: Option<String>,
}

impl From<VersionRecord> for VersionOut {
    fn from(v: VersionRecord) -> Self {
        VersionOut {
            agent_id: v.agent_id.to_string(),
            version: v.version,
            status: v.status.as_str().to_owned(),
            kind: v.kind,
            config: v.config,
            config_hash: v.config_hash,
            created_at: rfc3339(v.created_at),
            published_at: v.published_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishOut {
    pub agent_id: String,
    pub version: u32,
    pub config_hash: String,
    pub published_at: String,
}

/// Parse a config into the version to store, or 422 `invalid_agent_config` with the path.
pub fn checked_config(config: &Value) -> ApiResult<NewVersion> {
    if config.to_string().len() > MAX_CONFIG_BYTES {
        return Err(
            ApiError::unprocessable("invalid_agent_config", format!("config: larger than {MAX_CONFIG_BYTES} bytes")).with_details(json!({ "path": "config" }))
        );
    }
    let parsed = AgentConfig::parse(config).map_err(|e| {
        let path = if e.path == "config" || e.path.starts_with("config.") { e.path.clone() } else { format!("config.{}", e.path) };
        ApiError::unprocessable("invalid_agent_config", format!("{path}: {}", e.message)).with_details(json!({ "path": path }))
    })?;
    Ok(NewVersion { kind: parsed.kind().to_owned(), config: parsed.to_value(), config_hash: parsed.config_hash() })
}

/// An id in a path that does not parse names nothing: 404.
pub fn path_agent_id(raw: &str) -> ApiResult<AgentId> {
    AgentId::parse(raw).map_err(|_| ApiError::not_found("agent"))
}

fn not_found_as(e: dialnexa_store::StoreError, what: &str) -> ApiError {
    match e {
        dialnexa_store::StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

/// Create an agent; its config becomes draft version 1.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentIn,
    responses((status = 201, body = AgentOut), (status = 422, description = "invalid_agent_config with details.path")))]
pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<AgentIn>) -> ApiResult<(StatusCode, Json<AgentOut>)> {
    check_agent_name(&body.name).map_err(|e| ApiError::field("name", e.message))?;
    let draft = checked_config(&body.config)?;
    let agent = state.store.create_agent(&AgentId::generate(), body.name.trim(), &draft, jiff::Timestamp::now()).await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

/// List agents (by id, in creation order).
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, description = "{agents, next_cursor}")))]
pub async fn list(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["limit", "cursor"])?;
    let limit = q.limit()?;
    let after = q.get("cursor").map(|c| AgentId::parse(c).map_err(|_| invalid_cursor())).transpose()?;
    let rows = state.store.list_agents(after.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|a| a.agent_id.to_string())).flatten();
    let out: Vec<AgentOut> = rows.into_iter().map(AgentOut::from).collect();
    Ok(Json(page("agents", &out, next)))
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}", tag = "agents", responses((status = 200, body = AgentOut), (status = 404)))]
pub async fn get_one(State(state): State<AppState>, Path(agent_id): Path<String>) -> ApiResult<Json<AgentOut>> {
    let id = path_agent_id(&agent_id)?;
    Ok(Json(state.store.get_agent(&id).await.map_err(|e| not_found_as(e, "agent"))?.into()))
}

/// Replace the draft's config.
#[utoipa::path(put, path = "/v1/agents/{agent_id}/draft", tag = "agents", request_body = DraftIn, responses((status = 200, body = VersionOut), (status = 404), (status = 422)))]
pub async fn update_draft(State(state): State<AppState>, Path(agent_id): Path<String>, ApiJson(body): ApiJson<DraftIn>) -> ApiResult<Json<VersionOut>> {
    let id = path_agent_id(&agent_id)?;
    let draft = checked_config(&body.config)?;
    Ok(Json(state.store.update_draft(&id, &draft, jiff::Timestamp::now()).await.map_err(|e| not_found_as(e, "agent"))?.into()))
}

/// Publish the draft: it becomes an immutable version and a copy opens as the next draft.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/publish", tag = "agents", responses((status = 200, body = PublishOut), (status = 404)))]
pub async fn publish(State(state): State<AppState>, Path(agent_id): Path<String>) -> ApiResult<Json<PublishOut>> {
    let id = path_agent_id(&agent_id)?;
    let v = state.store.publish(&id, jiff::Timestamp::now()).await.map_err(|e| not_found_as(e, "agent"))?;
    Ok(Json(PublishOut {
        agent_id: v.agent_id.to_string(),
        version: v.version,
        config_hash: v.config_hash,
        published_at: v.published_at.map(rfc3339).unwrap_or_default(),
    }))
}

#[utoipa::path(get, path = "/v1/agents/{agent_id}/versions/{version}", tag = "agents", responses((status = 200, body = VersionOut), (status = 404)))]
pub async fn get_version(State(state): State<AppState>, Path((agent_id, version)): Path<(String, String)>) -> ApiResult<Json<VersionOut>> {
    let id = path_agent_id(&agent_id)?;
    let version: u32 = version.parse().map_err(|_| ApiError::not_found("version"))?;
    Ok(Json(state.store.get_version(&id, version).await.map_err(|e| not_found_as(e, "version"))?.into()))
}
