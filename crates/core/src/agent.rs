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
    /// What an outbound phone call does when an answering machine picks up (absent: hang up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<VoicemailPolicy>,
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
    /// What the agent says when the model fails or is too slow; `{{variables}}` are filled in.
    #[serde(default = "default_fallback_line")]
    pub fallback_line: String,
    /// How long to wait for the model's first token, and at most between two pieces of a
    /// streamed answer, before saying `fallback_line`.
    #[serde(default = "default_llm_timeout_ms")]
    pub llm_timeout_ms: u64,
    /// Numbers the `transfer_call` tool may transfer to (E.164). Empty: the model is not
    /// offered `transfer_call` at all, so a caller cannot talk it into dialling anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer_numbers: Vec<String>,
    /// The agent version's own HTTP tools, offered to the model next to the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<HttpTool>,
    /// What an outbound phone call does when an answering machine picks up (absent: hang up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<VoicemailPolicy>,
}

/// An agent version's answer to an answering machine on an outbound call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailPolicy {
    pub action: VoicemailAction,
    /// Said after the beep with `leave_message` (`{{variables}}` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// Hang up at once (`voicemail_reached`).
    HangUp,
    /// Wait for the greeting's beep, say `message`, hang up (`voicemail_reached`).
    LeaveMessage,
    /// Talk as if a person had answered.
    Continue,
}

impl VoicemailAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HangUp => "hang_up",
            Self::LeaveMessage => "leave_message",
            Self::Continue => "continue",
        }
    }
}

impl VoicemailPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.action, &self.message) {
            (VoicemailAction::LeaveMessage, None) => Err(ConfigError::new("voicemail.message", "leave_message needs the message to leave")),
            (VoicemailAction::LeaveMessage, Some(m)) => check_spoken(m, "voicemail.message"),
            (_, Some(_)) => Err(ConfigError::new("voicemail.message", "only leave_message says a message")),
            (_, None) => Ok(()),
        }
    }
}

/// What an `llm` agent says when its model fails or times out, unless configured.
pub const DEFAULT_FALLBACK_LINE: &str = "Sorry, I'm having trouble right now. Could you say that again?";
/// Names of the tools every `llm` agent has; HTTP tools cannot take them.
pub const BUILTIN_TOOLS: [&str; 3] = ["end_call", "transfer_call", "record_field"];
pub const MAX_HTTP_TOOLS: usize = 20;
pub const MAX_TRANSFER_NUMBERS: usize = 20;
/// Largest JSON schema of one tool's parameters, in bytes of JSON.
pub const MAX_TOOL_PARAMETERS_BYTES: usize = 16 * 1024;

fn default_fallback_line() -> String {
    DEFAULT_FALLBACK_LINE.to_owned()
}
fn default_llm_timeout_ms() -> u64 {
    5_000
}

/// An HTTP endpoint the model may call. The arguments the model gives (checked only by the
/// model against `parameters`) go in the query string of a `GET` or `DELETE` and as the JSON
/// body otherwise; the response text (capped) goes back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTool {
    /// Lower-case letters, digits and '_', not a built-in tool's name.
    pub name: String,
    /// Tells the model when to use the tool.
    pub description: String,
    /// JSON schema of the arguments: an object schema.
    #[serde(default = "default_tool_parameters")]
    pub parameters: serde_json::Value,
    #[serde(default)]
    pub method: HttpMethod,
    /// `http://` or `https://`, without credentials.
    pub url: String,
    /// Extra request headers. Configs are shown by the API, so secrets are never written
    /// here: a value refers to one as `${NAME}` (e.g. `"Bearer ${CRM_TOKEN}"`), filled in at
    /// call time from the server's secrets. Credential headers must use a reference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_tool_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// Arguments travel in the query string rather than a JSON body.
    pub fn uses_query(self) -> bool {
        matches!(self, Self::Get | Self::Delete)
    }
}

fn default_tool_parameters() -> serde_json::Value {
    serde_json::json!({ "type": "object", "properties": {} })
}
fn default_tool_timeout_ms() -> u64 {
    5_000
}

/// A piece of a header value: literal text or a `${NAME}` secret reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPart<'a> {
    Text(&'a str),
    Secret(&'a str),
}

/// Split a header value into text and `${NAME}` references (names: upper-case letters,
/// digits and '_', starting with a letter).
pub fn parse_header_value(value: &str) -> Result<Vec<HeaderPart<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find("${") {
        if open > 0 {
            out.push(HeaderPart::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find('}').ok_or("'${' without a closing '}'")?;
        let name = &after[..close];
        let ok = name.len() <= 64
            && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(format!("'${{{}}}' is not a secret name: upper-case letters, digits and '_'", name.chars().take(64).collect::<String>()));
        }
        out.push(HeaderPart::Secret(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(HeaderPart::Text(rest));
    }
    Ok(out)
}

/// Header names that carry credentials (their values must come from secrets).
fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "cookie"].contains(&n.as_str()) || ["key", "token", "secret", "auth", "password", "session", "signature"].iter().any(|w| n.contains(w))
}

impl HttpTool {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if !crate::flow::is_identifier(&self.name) {
            return Err(ConfigError::new(format!("{at}.name"), "tool names are lower-case letters, digits and '_', starting with a letter (at most 64)"));
        }
        if BUILTIN_TOOLS.contains(&self.name.as_str()) {
            return Err(ConfigError::new(format!("{at}.name"), format!("'{}' is a built-in tool ({})", self.name, BUILTIN_TOOLS.join(", "))));
        }
        let description = self.description.trim();
        if description.is_empty() || description.chars().count() > 1000 {
            return Err(ConfigError::new(format!("{at}.description"), "must say when to use the tool, in 1 to 1000 characters"));
        }
        self.check_parameters(&format!("{at}.parameters"))?;
        self.check_url(&format!("{at}.url"))?;
        for (name, value) in &self.headers {
            let hat = format!("{at}.headers.{name}");
            let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || name.len() > 100 || !name.chars().all(token_char) {
                return Err(ConfigError::new(hat, "not a valid header name"));
            }
            if ["host", "content-length", "transfer-encoding", "connection"].contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(hat, "this header is set by DialNexa"));
            }
            if value.len() > 2000 || value.chars().any(char::is_control) {
                return Err(ConfigError::new(hat, "at most 2000 characters, no control characters"));
            }
            let parts = parse_header_value(value).map_err(|e| ConfigError::new(hat.clone(), e))?;
            if is_credential_name(name) {
                let has_secret = parts.iter().any(|p| matches!(p, HeaderPart::Secret(_)));
                // Around the references only a scheme word ("Bearer", "Basic") may be written.
                let literal: String = parts.iter().filter_map(|p| if let HeaderPart::Text(t) = p { Some(*t) } else { None }).collect();
                let literal_ok = literal.trim().chars().all(|c| c.is_ascii_alphabetic()) && literal.trim().len() <= 20;
                if !has_secret || !literal_ok {
                    return Err(ConfigError::new(
                        hat,
                        "a credential header takes its secret from the server, written as ${NAME} (e.g. \"Bearer ${CRM_TOKEN}\"); configs are shown by the API and must hold no secrets",
                    ));
                }
            }
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            return Err(ConfigError::new(format!("{at}.timeout_ms"), "must be between 100 and 30000"));
        }
        Ok(())
    }

    fn check_parameters(&self, at: &str) -> Result<(), ConfigError> {
        let p = &self.parameters;
        if serde_json::to_string(p).map(|s| s.len()).unwrap_or(usize::MAX) > MAX_TOOL_PARAMETERS_BYTES {
            return Err(ConfigError::new(at, format!("at most {MAX_TOOL_PARAMETERS_BYTES} bytes of JSON")));
        }
        let Some(obj) = p.as_object() else {
            return Err(ConfigError::new(at, "must be a JSON schema object"));
        };
        if obj.get("type").and_then(serde_json::Value::as_str) != Some("object") {
            return Err(ConfigError::new(format!("{at}.type"), "must be \"object\": the arguments are a JSON object"));
        }
        let properties = match obj.get("properties") {
            None => None,
            Some(serde_json::Value::Object(m)) => Some(m),
            Some(_) => return Err(ConfigError::new(format!("{at}.properties"), "must be an object of property name → schema")),
        };
        if let Some(props) = properties {
            for (name, schema) in props {
                if !schema.is_object() {
                    return Err(ConfigError::new(format!("{at}.properties.{name}"), "must be a JSON schema object"));
                }
            }
        }
        match obj.get("required") {
            None => {}
            Some(serde_json::Value::Array(list)) => {
                for (k, r) in list.iter().enumerate() {
                    let known = r.as_str().is_some_and(|n| properties.is_some_and(|props| props.contains_key(n)));
                    if !known {
                        return Err(ConfigError::new(format!("{at}.required[{k}]"), "must name a property in properties"));
                    }
                }
            }
            Some(_) => return Err(ConfigError::new(format!("{at}.required"), "must be a list of property names")),
        }
        Ok(())
    }

    fn check_url(&self, at: &str) -> Result<(), ConfigError> {
        let url = self.url.as_str();
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let Some(rest) = rest.filter(|_| url.len() <= 2000 && !url.chars().any(|c| c.is_control() || c.is_whitespace())) else {
            return Err(ConfigError::new(at, "must be an http:// or https:// URL of at most 2000 characters, without spaces"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(ConfigError::new(at, "has no host"));
        }
        if authority.contains('@') {
            return Err(ConfigError::new(at, "must not hold credentials; use a header with a ${NAME} secret"));
        }
        if let Some((_, query)) = rest.split_once('?') {
            let query = query.split('#').next().unwrap_or_default();
            for pair in query.split('&') {
                let key = pair.split('=').next().unwrap_or_default();
                if is_credential_name(key) {
                    return Err(ConfigError::new(
                        at,
                        format!("query parameter '{}' looks like a credential; use a header with a ${{NAME}} secret", key.chars().take(40).collect::<String>()),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl LlmAgentConfig {
    /// Check what serde cannot: every fault is reported with its path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_common(&self.language, self.max_turns, self.max_duration_ms)?;
        check_variable_names(&self.variables)?;
        self.analysis.resolve("analysis")?;
        if self.prompt.trim().is_empty() {
            return Err(ConfigError::new("prompt", "must not be empty"));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ConfigError::new("temperature", "must be between 0 and 2"));
        }
        if let Some(m) = &self.model
            && (m.trim().is_empty() || m.len() > 200)
        {
            return Err(ConfigError::new("model", "must be a model name of 1 to 200 characters"));
        }
        if let Some(b) = &self.begin_message {
            check_spoken(b, "begin_message")?;
        }
        check_spoken(&self.fallback_line, "fallback_line")?;
        if let Some(v) = &self.voicemail {
            v.validate()?;
        }
        if !(500..=120_000).contains(&self.llm_timeout_ms) {
            return Err(ConfigError::new("llm_timeout_ms", "must be between 500 and 120000"));
        }
        if self.transfer_numbers.len() > MAX_TRANSFER_NUMBERS {
            return Err(ConfigError::new("transfer_numbers", format!("at most {MAX_TRANSFER_NUMBERS} numbers")));
        }
        for (i, n) in self.transfer_numbers.iter().enumerate() {
            let at = format!("transfer_numbers[{i}]");
            let parsed = crate::phone::PhoneNumber::parse(n).map_err(|e| ConfigError::new(at.clone(), e.to_string()))?;
            if parsed.as_str() != n {
                return Err(ConfigError::new(at, format!("write it in E.164 as {parsed}")));
            }
            if self.transfer_numbers[..i].contains(n) {
                return Err(ConfigError::new(at, "listed twice"));
            }
        }
        if self.tools.len() > MAX_HTTP_TOOLS {
            return Err(ConfigError::new("tools", format!("at most {MAX_HTTP_TOOLS} tools")));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let at = format!("tools[{i}]");
            tool.validate(&at)?;
            if self.tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(ConfigError::new(format!("{at}.name"), format!("tool '{}' is defined twice", tool.name)));
            }
        }
        Ok(())
    }
}

/// Text the agent says: not empty, not huge, well-formed `{{variables}}`.
fn check_spoken(text: &str, at: &str) -> Result<(), ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(at, "must not be empty"));
    }
    if text.chars().count() > 1000 {
        return Err(ConfigError::new(at, "at most 1000 characters"));
    }
    crate::flow::parse_template(text).map_err(|e| ConfigError::new(at, e))?;
    Ok(())
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
                if let Some(v) = &cfg.voicemail {
                    v.validate()?;
                }
                Ok(AgentConfig::Flow(cfg))
            }
            "llm" => {
                let cfg: LlmAgentConfig = parse_struct(value)?;
                cfg.validate()?;
                Ok(AgentConfig::Llm(cfg))
            }
            other => Err(ConfigError::new("kind", format!("unknown kind '{}' (expected flow or llm)", other.chars().take(40).collect::<String>()))),
        }
    }

    /// The voicemail policy (absent: hang up).
    pub fn voicemail(&self) -> Option<&VoicemailPolicy> {
        match self {
            Self::Flow(c) => c.voicemail.as_ref(),
            Self::Llm(c) => c.voicemail.as_ref(),
        }
    }

    pub fn max_duration_ms(&self) -> u64 {
        match self {
            Self::Flow(c) => c.max_duration_ms,
            Self::Llm(c) => c.max_duration_ms,
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
