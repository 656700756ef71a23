//! Integrations: where handoffs go, with their credentials (never returned) and rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialnexa_handoff::IntegrationKind;
use dialnexa_handoff::rules::{Rule, parse_rules, recommended};
use dialnexa_store::{IntegrationRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationIn {
    /// opengraph_io, heartbeat, slack, jira, zendesk, google_sheets, hubspot, datadog, webhook.
    pub kind: String,
    pub name: String,
    /// The service's credentials and options (docs/handoffs.md); `base_url` replaces the real one.
    #[schema(value_type = Object)]
    pub config: Value,
    /// When and what to hand off; absent or empty: the recommended rules.
    #[schema(value_type = Option<Vec<Object>>)]
    pub rules: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationOut {
    pub integration_id: String,
    pub kind: String,
    pub name: String,
    /// The rules in force (the recommended ones when none were given).
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Rule>,
    pub recommended_rules: bool,
    pub active: bool,
    pub created_at: String,
}

impl From<IntegrationRecord> for IntegrationOut {
    fn from(i: IntegrationRecord) -> Self {
        let kind: Option<IntegrationKind> = i.kind.parse().ok();
        let given = matches!(&i.rules, Value::Array(a) if !a.is_empty());
        let rules = kind.map(|k| crate::handoffs::rules_of(k, &i.rules)).unwrap_or_default();
        IntegrationOut {
            integration_id: i.integration_id,
            kind: i.kind,
            name: i.name,
            rules,
            recommended_rules: !given,
            active: i.active,
            created_at: rfc3339(i.created_at),
        }
    }
}

/// Add an integration. Credentials are checked for shape here and never shown again.
#[utoipa::path(post, path = "/v1/integrations", tag = "handoffs", request_body = IntegrationIn,
    responses((status = 201, body = IntegrationOut), (status = 422, description = "validation_failed, invalid_integration_config, invalid_rule (details.path)")))]
pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<IntegrationIn>) -> ApiResult<(StatusCode, Json<IntegrationOut>)> {
    let kind: IntegrationKind = body.kind.parse().map_err(|e: String| ApiError::field("kind", e))?;
    if body.name.trim().is_empty() || body.name.chars().count() > 120 {
        return Err(ApiError::field("name", "1 to 120 characters"));
    }
    if !body.config.is_object() {
        return Err(ApiError::unprocessable("invalid_integration_config", "config must be an object").with_details(json!({ "path": "config" })));
    }
    dialnexa_handoff::connectors::build(kind, &body.config, state.http.clone())
        .map_err(|f| ApiError::unprocessable("invalid_integration_config", format!("{}: {}", f.path, f.message)).with_details(json!({ "path": f.path })))?;
    let rules = match &body.rules {
        None | Some(Value::Null) => json!([]),
        Some(r) => {
            let parsed = parse_rules(kind, r)
                .map_err(|f| ApiError::unprocessable("invalid_rule", format!("{}: {}", f.path, f.message)).with_details(json!({ "path": f.path })))?;
            serde_json::to_value(parsed).unwrap_or(json!([]))
        }
    };
    let now = jiff::Timestamp::now();
    let rec = IntegrationRecord {
        integration_id: crate::handoffs::id("int"),
        kind: kind.as_str().into(),
        name: body.name.trim().into(),
        config: body.config,
        rules,
        active: true,
        created_at: now,
        updated_at: now,
    };
    state.store.create_integration(&rec).await?;
    Ok((StatusCode::CREATED, Json(rec.into())))
}

#[utoipa::path(get, path = "/v1/integrations", tag = "handoffs", responses((status = 200, description = "{integrations, next_cursor}")))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let out: Vec<IntegrationOut> = state.store.list_integrations().await?.into_iter().map(IntegrationOut::from).collect();
    Ok(Json(super::page("integrations", &out, None)))
}

#[utoipa::path(get, path = "/v1/integrations/{integration_id}", tag = "handoffs", responses((status = 200, body = IntegrationOut), (status = 404)))]
pub async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<IntegrationOut>> {
    match state.store.get_integration(&id).await {
        Ok(i) => Ok(Json(i.into())),
        Err(StoreError::NotFound) => Err(ApiError::not_found("integration")),
        Err(e) => Err(e.into()),
    }
}

/// The recommended rules of each kind (what an integration does without rules of its own).
#[utoipa::path(get, path = "/v1/integrations/recommended-rules", tag = "handoffs", responses((status = 200, description = "{kind: [rule]}")))]
pub async fn recommended_rules() -> Json<Value> {
    let m: serde_json::Map<String, Value> =
        IntegrationKind::ALL.iter().map(|k| (k.as_str().to_owned(), serde_json::to_value(recommended(*k)).unwrap_or_default())).collect();
    Json(Value::Object(m))
}
