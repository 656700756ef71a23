//! Phone numbers and their inbound and outbound agents.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_core::{AgentId, PhoneNumber};
use dialnexa_store::{PhoneNumberRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{page, rfc3339, split_page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, QueryPairs, invalid_cursor};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumberIn {
    /// E.164, e.g. +15550100000.
    pub phone_number: String,
    pub inbound_agent_id: Option<String>,
    /// A published version; absent: the latest published at call time.
    pub inbound_agent_version: Option<u32>,
    pub outbound_agent_id: Option<String>,
    pub outbound_agent_version: Option<u32>,
    /// Default true.
    pub active: Option<bool>,
    pub nickname: Option<String>,
    /// An http(s) URL asked at each inbound call for variables or another published agent
    /// version (docs/telephony.md, "Dynamic routing").
    pub inbound_hook_url: Option<String>,
}

/// Fields to change; `null` clears an agent or version.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneNumberPatch {
    pub inbound_agent_id: Option<String>,
    pub inbound_agent_version: Option<u32>,
    pub outbound_agent_id: Option<String>,
    pub outbound_agent_version: Option<u32>,
    pub active: Option<bool>,
    pub nickname: Option<String>,
    pub inbound_hook_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberOut {
    pub phone_number: String,
    pub inbound_agent_id: Option<String>,
    pub inbound_agent_version: Option<u32>,
    pub outbound_agent_id: Option<String>,
    pub outbound_agent_version: Option<u32>,
    pub active: bool,
    pub nickname: Option<String>,
    pub inbound_hook_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PhoneNumberRecord> for PhoneNumberOut {
    fn from(n: PhoneNumberRecord) -> Self {
        PhoneNumberOut {
            phone_number: n.phone_number.to_string(),
            inbound_agent_id: n.inbound_agent_id.map(|a| a.to_string()),
            inbound_agent_version: n.inbound_agent_version,
            outbound_agent_id: n.outbound_agent_id.map(|a| a.to_string()),
            outbound_agent_version: n.outbound_agent_version,
            active: n.active,
            nickname: n.nickname,
            inbound_hook_url: n.inbound_hook_url,
            created_at: rfc3339(n.created_at),
            updated_at: rfc3339(n.updated_at),
        }
    }
}

pub fn parse_number(raw: &str, path: &str) -> ApiResult<PhoneNumber> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::unprocessable("invalid_phone_number", e.to_string()).with_details(json!({ "path": path })))
}

/// An agent (and version) a number points at must exist, and a version must be published.
async fn check_agent(store: &dyn Store, which: &str, agent: Option<&str>, version: Option<u32>) -> ApiResult<Option<AgentId>> {
    let Some(raw) = agent else {
        if version.is_some() {
            return Err(ApiError::field(&format!("{which}_agent_version"), format!("a version needs {which}_agent_id")));
        }
        return Ok(None);
    };
    let not_found = || {
        ApiError::unprocessable("agent_not_found", format!("{which}_agent_id: agent {} does not exist", raw.chars().take(60).collect::<String>()))
            .with_details(json!({ "path": format!("{which}_agent_id") }))
    };
    let id = AgentId::parse(raw).map_err(|_| not_found())?;
    let agent = match store.get_agent(&id).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if let Some(v) = version
        && !agent.published_versions.contains(&v)
    {
        return Err(ApiError::unprocessable(
            "agent_version_not_published",
            format!("{which}_agent_version: agent '{}' has no published version {v}", agent.name),
        )
        .with_details(json!({ "path": format!("{which}_agent_version"), "published_versions": agent.published_versions })));
    }
    Ok(Some(id))
}

/// Add a phone number.
#[utoipa::path(post, path = "/v1/phone-numbers", tag = "phone numbers", request_body = PhoneNumberIn,
    responses((status = 201, body = PhoneNumberOut), (status = 409, description = "the number exists"), (status = 422, description = "invalid_phone_number, agent_not_found, agent_version_not_published")))]
pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<PhoneNumberIn>) -> ApiResult<(StatusCode, Json<PhoneNumberOut>)> {
    let number = parse_number(&body.phone_number, "phone_number")?;
    let store = state.store.as_ref();
    let inbound = check_agent(store, "inbound", body.inbound_agent_id.as_deref(), body.inbound_agent_version).await?;
    let outbound = check_agent(store, "outbound", body.outbound_agent_id.as_deref(), body.outbound_agent_version).await?;
    check_nickname(body.nickname.as_deref())?;
    check_hook(body.inbound_hook_url.as_deref())?;
    let now = jiff::Timestamp::now();
    let record = PhoneNumberRecord {
        phone_number: number,
        inbound_agent_id: inbound,
        inbound_agent_version: body.inbound_agent_version,
        outbound_agent_id: outbound,
        outbound_agent_version: body.outbound_agent_version,
        active: body.active.unwrap_or(true),
        nickname: body.nickname,
        inbound_hook_url: body.inbound_hook_url,
        created_at: now,
        updated_at: now,
    };
    state.store.create_number(&record).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", format!("{} already exists", record.phone_number)),
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

fn check_hook(url: Option<&str>) -> ApiResult<()> {
    if let Some(u) = url {
        let ok = u.len() <= 2000 && (u.starts_with("https://") || u.starts_with("http://")) && reqwest::Url::parse(u).is_ok_and(|p| p.host_str().is_some());
        if !ok {
            return Err(ApiError::field("inbound_hook_url", "an http(s) URL of at most 2000 characters"));
        }
    }
    Ok(())
}

fn check_nickname(n: Option<&str>) -> ApiResult<()> {
    if n.is_some_and(|n| n.chars().count() > 120 || n.chars().any(char::is_control)) {
        return Err(ApiError::field("nickname", "at most 120 characters, no control characters"));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/phone-numbers", tag = "phone numbers", params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, description = "{phone_numbers, next_cursor}")))]
pub async fn list(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    q.only(&["limit", "cursor"])?;
    let limit = q.limit()?;
    let after = q.get("cursor").map(|c| PhoneNumber::parse(c).map_err(|_| invalid_cursor())).transpose()?;
    let rows = state.store.list_numbers(after.as_ref(), limit + 1).await?;
    let (rows, more) = split_page(rows, limit);
    let next = more.then(|| rows.last().map(|n| n.phone_number.to_string())).flatten();
    let out: Vec<PhoneNumberOut> = rows.into_iter().map(PhoneNumberOut::from).collect();
    Ok(Json(page("phone_numbers", &out, next)))
}

async fn load(state: &AppState, raw: &str) -> ApiResult<PhoneNumberRecord> {
    let number = PhoneNumber::parse(raw).map_err(|_| ApiError::not_found("phone number"))?;
    state.store.get_number(&number).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("phone number"),
        other => other.into(),
    })
}

#[utoipa::path(get, path = "/v1/phone-numbers/{phone_number}", tag = "phone numbers", responses((status = 200, body = PhoneNumberOut), (status = 404)))]
pub async fn get_one(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Json<PhoneNumberOut>> {
    Ok(Json(load(&state, &raw).await?.into()))
}

const PATCHABLE: [&str; 7] =
    ["inbound_agent_id", "inbound_agent_version", "outbound_agent_id", "outbound_agent_version", "active", "nickname", "inbound_hook_url"];

/// Change a number's agents, versions, nickname or active flag.
#[utoipa::path(patch, path = "/v1/phone-numbers/{phone_number}", tag = "phone numbers", request_body = PhoneNumberPatch, responses((status = 200, body = PhoneNumberOut), (status = 404), (status = 422)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<PhoneNumberOut>> {
    let mut rec = load(&state, &raw).await?;
    for key in body.keys() {
        if !PATCHABLE.contains(&key.as_str()) {
            return Err(ApiError::field(key, format!("unknown field; patchable: {}", PATCHABLE.join(", "))));
        }
    }
    let text = |k: &str| -> ApiResult<Option<Option<String>>> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(ApiError::field(k, "must be a string or null")),
        }
    };
    let version = |k: &str| -> ApiResult<Option<Option<u32>>> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => {
                v.as_u64().and_then(|n| u32::try_from(n).ok()).map(|n| Some(Some(n))).ok_or_else(|| ApiError::field(k, "must be a version number or null"))
            }
        }
    };
    for which in ["inbound", "outbound"] {
        let id_key = format!("{which}_agent_id");
        let v_key = format!("{which}_agent_version");
        let (cur_id, cur_v) =
            if which == "inbound" { (&rec.inbound_agent_id, rec.inbound_agent_version) } else { (&rec.outbound_agent_id, rec.outbound_agent_version) };
        let new_id = match text(&id_key)? {
            None => cur_id.as_ref().map(|a| a.to_string()),
            Some(v) => v,
        };
        let changed_agent = new_id.as_deref() != cur_id.as_ref().map(|a| a.as_str());
        // A pinned version belongs to its agent: a new agent without a version means "latest".
        let new_v = match version(&v_key)? {
            None if changed_agent => None,
            None => cur_v,
            Some(v) => v,
        };
        let checked = check_agent(state.store.as_ref(), which, new_id.as_deref(), new_v).await?;
        if which == "inbound" {
            rec.inbound_agent_id = checked;
            rec.inbound_agent_version = new_v;
        } else {
            rec.outbound_agent_id = checked;
            rec.outbound_agent_version = new_v;
        }
    }
    match body.get("active") {
        None => {}
        Some(Value::Bool(b)) => rec.active = *b,
        Some(_) => return Err(ApiError::field("active", "must be true or false")),
    }
    if let Some(u) = text("inbound_hook_url")? {
        check_hook(u.as_deref())?;
        rec.inbound_hook_url = u;
    }
    if let Some(n) = text("nickname")? {
        check_nickname(n.as_deref())?;
        rec.nickname = n;
    }
    rec.updated_at = jiff::Timestamp::now();
    state.store.update_number(&rec).await?;
    Ok(Json(rec.into()))
}

#[utoipa::path(delete, path = "/v1/phone-numbers/{phone_number}", tag = "phone numbers", responses((status = 204), (status = 404)))]
pub async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<StatusCode> {
    let rec = load(&state, &raw).await?;
    state.store.delete_number(&rec.phone_number).await?;
    Ok(StatusCode::NO_CONTENT)
}
