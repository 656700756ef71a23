//! Agents and their versioned configuration.
//!
//! A config is parsed, not validated: `AgentConfig::parse` turns JSON into a typed config
//! or a `ConfigError` that names the path of the fault (`flow.nodes[2].next`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisConfig, AnalysisSchema};
use crate::flow::FlowGraph;

/// A fault in an agent config, with the JSON path where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// The largest config accepted, in bytes of JSON.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
pub const MAX_AGENT_NAME_CHARS: usize = 120;

/// Version status: a draft can change; a published version never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    Draft,
    Published,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
        }
    }
}

/// The configuration of one agent version.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentConfig {
    Flow(FlowAgentConfig),
    Llm(LlmAgentConfig),
}

/// A scripted agent: a graph of nodes, run offline and deterministically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowAgentConfig {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
    /// Default values of `{{variables}}`; a call's own variables override them.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Bound on agent turns, so no flow loops forever.
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    #[serde(default = "default_max_duration_ms")]
    pub max_duration_ms: u64,
    /// What post-call analysis looks for (default: both built-in schemas).
    #[serde(default)]
    pub analysis: AnalysisConfig,
    pub flow: FlowGraph,
}

/// An agent driven by an OpenAI-compatible chat-completions model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmAgentConfig {
    pub kind: String,
    /// The system prompt; `{{variables}}` are filled in at call time.
    pub prompt: String,
    /// What the agent says first; without it the model speaks first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    #[serde(default = "default_max_duration_ms")]
    pub max_duration_ms: u64,
    #[serde(default)]
    pub analysis: AnalysisConfig,
}

fn default_language() -> String {
    "en-US".to_owned()
}
fn default_max_turns() -> u32 {
    50
}
fn default_max_duration_ms() -> u64 {
    30 * 60 * 1000
}

/// Upper bound of `max_turns`.
pub const MAX_TURNS_LIMIT: u32 = 1000;

fn parse_struct<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "config".to_owned() } else { path };
        ConfigError::new(path, e.into_inner().to_string())
    })
}

fn check_variable_names(vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for name in vars.keys() {
        if !crate::flow::is_identifier(name) {
            return Err(ConfigError::new(format!("variables.{name}"), "variable names are lower-case letters, digits and '_', starting with a letter"));
        }
    }
    Ok(())
}

fn check_common(language: &str, max_turns: u32, max_duration_ms: u64) -> Result<(), ConfigError> {
    if language.is_empty() || language.len() > 35 {
        return Err(ConfigError::new("language", "must be a language tag such as en-US"));
    }
    if max_turns == 0 || max_turns > MAX_TURNS_LIMIT {
        return Err(ConfigError::new("max_turns", format!("must be between 1 and {MAX_TURNS_LIMIT}")));
    }
    if !(1_000..=4 * 3_600_000).contains(&max_duration_ms) {
        return Err(ConfigError::new("max_duration_ms", "must be between 1000 and 14400000 (4 hours)"));
    }
    Ok(())
}

impl AgentConfig {
    /// Parse and check a config: unknown fields, broken references and bad values are
    /// refused with the path of the fault.
    pub fn parse(value: &serde_json::Value) -> Result<AgentConfig, ConfigError> {
        let obj = value.as_object().ok_or_else(|| ConfigError::new("config", "must be a JSON object"))?;
        let kind = match obj.get("kind") {
            Some(serde_json::Value::String(k)) => k.as_str(),
            Some(_) => return Err(ConfigError::new("kind", "must be a string: flow or llm")),
            None => return Err(ConfigError::new("kind", "missing field `kind` (flow or llm)")),
        };
        match kind {
            "flow" => {
                let cfg: FlowAgentConfig = parse_struct(value)?;
                check_common(&cfg.language, cfg.max_turns, cfg.max_duration_ms)?;
                check_variable_names(&cfg.variables)?;
                cfg.flow.validate(&cfg.variables, "flow")?;
                cfg.analysis.resolve("analysis")?;
                Ok(AgentConfig::Flow(cfg))
            }
            "llm" => {
                let cfg: LlmAgentConfig = parse_struct(value)?;
                check_common(&cfg.language, cfg.max_turns, cfg.max_duration_ms)?;
                check_variable_names(&cfg.variables)?;
                cfg.analysis.resolve("analysis")?;
                if cfg.prompt.trim().is_empty() {
                    return Err(ConfigError::new("prompt", "must not be empty"));
                }
                if let Some(t) = cfg.temperature
                    && !(0.0..=2.0).contains(&t)
                {
                    return Err(ConfigError::new("temperature", "must be between 0 and 2"));
                }
                Ok(AgentConfig::Llm(cfg))
            }
            other => Err(ConfigError::new("kind", format!("unknown kind '{}' (expected flow or llm)", other.chars().take(40).collect::<String>()))),
        }
    }

    /// The analysis schema of this config (validated by `parse`).
    pub fn analysis_schema(&self) -> Result<AnalysisSchema, ConfigError> {
        match self {
            Self::Flow(c) => c.analysis.resolve("analysis"),
            Self::Llm(c) => c.analysis.resolve("analysis"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Flow(_) => "flow",
            Self::Llm(_) => "llm",
        }
    }

    /// The normalised config (defaults filled in), as stored and hashed.
    pub fn to_value(&self) -> serde_json::Value {
        let v = match self {
            Self::Flow(c) => serde_json::to_value(c),
            Self::Llm(c) => serde_json::to_value(c),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// SHA-256 of the normalised config: equal configs hash equal.
    pub fn config_hash(&self) -> String {
        format!("sha256:{}", crate::hash::canonical_json_hash(&self.to_value()))
    }
}

impl fmt::Display for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} agent config", self.kind())
    }
}

/// Agent names are shown in explanations and used by the CLI to find an agent.
pub fn check_agent_name(name: &str) -> Result<(), ConfigError> {
    let t = name.trim();
    if t.is_empty() {
        return Err(ConfigError::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_AGENT_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ConfigError::new("name", format!("at most {MAX_AGENT_NAME_CHARS} characters, no control characters")));
    }
    Ok(())
}
