//! Route resolution over HTTP: the same function calls use.

use axum::Json;
use axum::extract::State;
use dialnexa_core::route::{Route, RouteError, RouteRequest, resolve as resolve_route};
use dialnexa_core::{AgentId, EntryPoint};
use dialnexa_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIn {
    /// inbound, outbound, batch, workflow, web or test.
    pub entry_point: String,
    /// inbound: the dialled number; outbound, batch, workflow: the number called from.
    pub phone_number: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<u32>,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    pub node_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteOut {
    pub entry_point: String,
    pub phone_number: Option<String>,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    pub node_id: Option<String>,
    pub agent_id: String,
    pub agent_name: String,
    pub agent_version: u32,
    pub config_hash: String,
    /// A sentence that says why this version was chosen.
    pub explanation: String,
}

impl From<Route> for RouteOut {
    fn from(r: Route) -> Self {
        RouteOut {
            entry_point: r.entry_point.to_string(),
            phone_number: r.phone_number.map(|p| p.to_string()),
            batch_id: r.batch_id,
            workflow_id: r.workflow_id,
            node_id: r.node_id,
            agent_id: r.agent_id.to_string(),
            agent_name: r.agent_name,
            agent_version: r.agent_version,
            config_hash: r.config_hash,
            explanation: r.explanation,
        }
    }
}

/// A route error as the API answers it: 422 with its specific code.
pub fn route_error(e: RouteError) -> ApiError {
    let code = e.code();
    let details = match &e {
        RouteError::MissingInput { field, .. } => json!({ "path": field }),
        _ => json!({}),
    };
    ApiError::unprocessable(code, e.to_string()).with_details(details)
}

pub fn parse_entry_point(raw: &str) -> ApiResult<EntryPoint> {
    raw.parse().map_err(|e: dialnexa_core::entry::UnknownEntryPoint| ApiError::field("entry_point", e.to_string()))
}

/// An agent id that does not parse cannot exist: the same answer as an unknown one.
pub fn request_agent_id(raw: Option<&str>) -> ApiResult<Option<AgentId>> {
    raw.map(|r| {
        AgentId::parse(r).map_err(|_| {
            ApiError::unprocessable("agent_not_found", format!("agent {} does not exist", r.chars().take(60).collect::<String>()))
                .with_details(json!({ "path": "agent_id" }))
        })
    })
    .transpose()
}

/// Load what the router needs and resolve.
pub async fn resolve_with(store: &dyn Store, req: &RouteRequest) -> ApiResult<Route> {
    let numbers: Vec<_> = req.phone_number.iter().cloned().collect();
    let agents: Vec<_> = req.agent_id.iter().cloned().collect();
    let snapshot = store.route_snapshot(&numbers, &agents).await?;
    resolve_route(req, &snapshot).map_err(route_error)
}

/// Which agent version a call with these inputs would use, and why.
#[utoipa::path(post, path = "/v1/routes/resolve", tag = "routes", request_body = ResolveIn,
    responses((status = 200, body = RouteOut), (status = 422, description = "no_inbound_agent, no_outbound_agent, phone_number_inactive, phone_number_not_found, agent_not_found, agent_version_not_published")))]
pub async fn resolve(State(state): State<AppState>, ApiJson(body): ApiJson<ResolveIn>) -> ApiResult<Json<RouteOut>> {
    let req = RouteRequest {
        entry_point: Some(parse_entry_point(&body.entry_point)?),
        phone_number: body.phone_number.as_deref().map(|p| super::numbers::parse_number(p, "phone_number")).transpose()?,
        agent_id: request_agent_id(body.agent_id.as_deref())?,
        agent_version: body.agent_version,
        batch_id: body.batch_id,
        workflow_id: body.workflow_id,
        node_id: body.node_id,
    };
    Ok(Json(resolve_with(state.store.as_ref(), &req).await?.into()))
}
