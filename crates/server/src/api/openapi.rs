//! The OpenAPI document, generated from the handlers' annotations and the DTO types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::*;

/// The error envelope of every non-2xx answer.
#[derive(serde::Serialize, ToSchema)]
pub struct ErrorOut {
    pub error: ErrorBody,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `invalid_agent_config`.
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("A DialNexa API key")).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "DialNexa API", version = "1.0.0", description = "Self-hosted AI voice agents: agents, phone numbers, routes and calls that explain themselves."),
    paths(
        health::healthz, health::readyz, health::metrics,
        agents::create, agents::list, agents::get_one, agents::update_draft, agents::publish, agents::get_version,
        numbers::create, numbers::list, numbers::get_one, numbers::patch, numbers::delete,
        routes::resolve,
        calls::create_test, calls::list, calls::get_one, calls::rerun_analysis, export::export, recording::recording,
        crate::webcall::create_web, crate::webcall::stream, crate::webcall::end,
        crate::telephony::outbound::create, crate::telephony::voice, crate::telephony::status, crate::telephony::dial_action, crate::telephony::media::stream,
        annotations::create, annotations::list,
        integrations::create, integrations::list, integrations::get_one, integrations::recommended_rules,
        handoffs::list, handoffs::get_one, handoffs::retry, handoffs::list_reviews, handoffs::approve, handoffs::reject,
        handoffs::list_follow_ups, handoffs::complete_follow_up, handoffs::recurring,
        document,
    ),
    components(schemas(ErrorOut, ErrorBody)),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    tags((name = "agents"), (name = "phone numbers"), (name = "routes"), (name = "calls"), (name = "handoffs"), (name = "telephony"), (name = "operations"))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
