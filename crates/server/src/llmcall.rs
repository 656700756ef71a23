//! `llm` agents in live calls (adapter over the voice crate's LLM runtime).

use std::collections::BTreeMap;

use dialnexa_core::agent::LlmAgentConfig;
use dialnexa_voice::live::LiveAgent;

use crate::state::AppState;

pub fn agent(_state: &AppState, _config: LlmAgentConfig, _variables: BTreeMap<String, String>) -> Result<Box<dyn LiveAgent>, String> {
    Err("llm agents are not available in web calls yet".into())
}
