//! `serve --demo`: the demo agent "Support line" (version 1 published) and the demo number
//! +15550100000 routed to it for inbound and outbound, created when absent.

use dialnexa_core::{AgentId, PhoneNumber};
use dialnexa_store::{PhoneNumberRecord, Store, StoreError};

use crate::api::agents::checked_config;
use crate::error::{ApiError, ApiResult};

pub const DEMO_AGENT_NAME: &str = "Support line";
pub const DEMO_NUMBER: &str = "+15550100000";

pub async fn seed(store: &dyn Store, now: jiff::Timestamp) -> ApiResult<()> {
    let agent = match store.find_agent_by_name(DEMO_AGENT_NAME).await? {
        Some(a) => a,
        None => {
            let config: serde_json::Value = serde_json::from_str(dialnexa_voice::DEMO_AGENT_CONFIG).map_err(|e| {
                tracing::error!(error = %e, "demo agent JSON");
                ApiError::internal()
            })?;
            let draft = checked_config(&config)?;
            store.create_agent(&AgentId::generate(), DEMO_AGENT_NAME, &draft, now).await?
        }
    };
    if agent.published_versions.is_empty() {
        store.publish(&agent.agent_id, now).await?;
        tracing::info!(agent_id = %agent.agent_id, "demo agent published as version 1");
    }
    let number = PhoneNumber::parse(DEMO_NUMBER).map_err(|_| ApiError::internal())?;
    match store.get_number(&number).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            store
                .create_number(&PhoneNumberRecord {
                    phone_number: number,
                    inbound_agent_id: Some(agent.agent_id.clone()),
                    inbound_agent_version: Some(1),
                    outbound_agent_id: Some(agent.agent_id.clone()),
                    outbound_agent_version: Some(1),
                    active: true,
                    nickname: Some("Demo support line".into()),
                    inbound_hook_url: None,
                    created_at: now,
                    updated_at: now,
                })
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
