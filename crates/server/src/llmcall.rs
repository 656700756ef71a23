//! `llm` agents in live calls: the client built from `--llm URL` (key in
//! `DIALNEXA_LLM_API_KEY`, secrets for HTTP tools in `DIALNEXA_SECRET_<NAME>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use dialnexa_core::agent::LlmAgentConfig;
use dialnexa_voice::live::{LiveAgent, LlmAgent};
use dialnexa_voice::llm_agent::{LlmClient, LlmSession, secrets_from_env};

use crate::state::AppState;

pub fn agent(state: &AppState, config: LlmAgentConfig, variables: BTreeMap<String, String>) -> Result<Box<dyn LiveAgent>, String> {
    let url = state.config.llm_url.clone().ok_or("llm agents need --llm URL (DIALNEXA_LLM_URL)")?;
    let model = config.model.clone().unwrap_or_else(|| state.config.llm_model.clone());
    let client = LlmClient::new(url, state.config.llm_api_key.clone(), model).map_err(|e| e.to_string())?.with_secrets(secrets_from_env());
    let session = LlmSession::new(Arc::new(config), variables, client).map_err(|e| e.to_string())?;
    Ok(Box::new(LlmAgent::new(session)))
}
