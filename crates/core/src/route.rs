//! Route resolution: which agent version a call uses, and a sentence that says why.
//!
//! A pure function over a snapshot of numbers and agents (DESIGN.md §2):
//! - inbound → the number's inbound agent and version;
//! - outbound → an explicit override, else the number's outbound agent and version;
//! - batch → the selected number must have an outbound agent attached;
//! - workflow (Voice Call node) → an active number with an outbound agent configured;
//! - web and test → the agent named in the request.
//!
//! A number without a pinned version uses the agent's latest published version.

use serde::{Deserialize, Serialize};

use crate::entry::EntryPoint;
use crate::ids::AgentId;
use crate::phone::PhoneNumber;

/// What the router knows of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub agent_id: AgentId,
    pub name: String,
    /// Published versions with their config hashes, in any order.
    pub published: Vec<(u32, String)>,
}

impl AgentInfo {
    fn latest(&self) -> Option<&(u32, String)> {
        self.published.iter().max_by_key(|(v, _)| *v)
    }
    fn published(&self, version: u32) -> Option<&(u32, String)> {
        self.published.iter().find(|(v, _)| *v == version)
    }
}

/// What the router knows of a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberInfo {
    pub phone_number: PhoneNumber,
    pub active: bool,
    pub inbound_agent_id: Option<AgentId>,
    pub inbound_agent_version: Option<u32>,
    pub outbound_agent_id: Option<AgentId>,
    pub outbound_agent_version: Option<u32>,
}

/// The snapshot the router reads.
pub trait RouteLookup {
    fn number(&self, number: &PhoneNumber) -> Option<&NumberInfo>;
    fn agent(&self, agent_id: &AgentId) -> Option<&AgentInfo>;
}

/// A request to route a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRequest {
    pub entry_point: Option<EntryPoint>,
    /// inbound: the number dialled; outbound, batch, workflow: the number dialled from.
    pub phone_number: Option<PhoneNumber>,
    pub agent_id: Option<AgentId>,
    pub agent_version: Option<u32>,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    pub node_id: Option<String>,
}

/// The chosen agent version and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub entry_point: EntryPoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumber>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub agent_id: AgentId,
    pub agent_name: String,
    pub agent_version: u32,
    pub config_hash: String,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{message}")]
    MissingInput { field: &'static str, message: String },
    #[error("{0} is not a DialNexa phone number")]
    PhoneNumberNotFound(PhoneNumber),
    #[error("{0} is inactive, so it takes and places no calls")]
    PhoneNumberInactive(PhoneNumber),
    #[error("{0} has no inbound agent, so inbound calls to it are refused")]
    NoInboundAgent(PhoneNumber),
    #[error("{number} has no outbound agent, so {what} cannot call from it")]
    NoOutboundAgent { number: PhoneNumber, what: &'static str },
    #[error("agent {0} does not exist")]
    AgentNotFound(AgentId),
    #[error("{0}")]
    AgentVersionNotPublished(String),
}

impl RouteError {
    /// The stable error code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingInput { .. } => "validation_failed",
            Self::PhoneNumberNotFound(_) => "phone_number_not_found",
            Self::PhoneNumberInactive(_) => "phone_number_inactive",
            Self::NoInboundAgent(_) => "no_inbound_agent",
            Self::NoOutboundAgent { .. } => "no_outbound_agent",
            Self::AgentNotFound(_) => "agent_not_found",
            Self::AgentVersionNotPublished(_) => "agent_version_not_published",
        }
    }
}

/// Pick the agent version for a call.
pub fn resolve(req: &RouteRequest, lookup: &impl RouteLookup) -> Result<Route, RouteError> {
    let entry_point = req.entry_point.ok_or(RouteError::MissingInput { field: "entry_point", message: "entry_point is required".into() })?;
    let mut route = match entry_point {
        EntryPoint::Inbound => {
            let number = active_number(req, lookup, "inbound calls need the dialled phone_number")?;
            let agent_id = number.inbound_agent_id.as_ref().ok_or_else(|| RouteError::NoInboundAgent(number.phone_number.clone()))?;
            let (agent, version, hash, how) = pick_version(lookup, agent_id, number.inbound_agent_version)?;
            let explanation = format!("{} is assigned inbound agent '{}' {how}", number.phone_number, agent.name);
            Route::new(entry_point, agent, version, hash, explanation).with_number(number)
        }
        EntryPoint::Outbound => {
            let number = active_number(req, lookup, "outbound calls need the from phone_number")?;
            if let Some(override_id) = &req.agent_id {
                let (agent, version, hash, how) = pick_version(lookup, override_id, req.agent_version)?;
                let default = match &number.outbound_agent_id {
                    Some(id) => match lookup.agent(id) {
                        Some(a) => format!("instead of the number's outbound agent '{}'", a.name),
                        None => "instead of the number's outbound agent".to_owned(),
                    },
                    None => "; the number has no outbound agent of its own".to_owned(),
                };
                let sep = if default.starts_with(';') { "" } else { " " };
                let explanation = format!("Outbound call from {} uses the requested agent '{}' {how}{sep}{default}", number.phone_number, agent.name);
                Route::new(entry_point, agent, version, hash, explanation).with_number(number)
            } else {
                let agent_id = number
                    .outbound_agent_id
                    .as_ref()
                    .ok_or_else(|| RouteError::NoOutboundAgent { number: number.phone_number.clone(), what: "an outbound call" })?;
                let (agent, version, hash, how) = pick_version(lookup, agent_id, number.outbound_agent_version)?;
                let explanation = format!("{} is assigned outbound agent '{}' {how}", number.phone_number, agent.name);
                Route::new(entry_point, agent, version, hash, explanation).with_number(number)
            }
        }
        EntryPoint::Batch => {
            refuse_override(req, "batch calls use the selected number's outbound agent; agent_id cannot be set")?;
            let number = active_number(req, lookup, "batch calls need the selected from phone_number")?;
            let agent_id =
                number.outbound_agent_id.as_ref().ok_or_else(|| RouteError::NoOutboundAgent { number: number.phone_number.clone(), what: "a batch" })?;
            let (agent, version, hash, how) = pick_version(lookup, agent_id, number.outbound_agent_version)?;
            let batch = req.batch_id.as_deref().map(|b| format!("Batch {b}")).unwrap_or_else(|| "The batch".to_owned());
            let explanation = format!("{batch} dials from {}, whose outbound agent is '{}' {how}", number.phone_number, agent.name);
            Route::new(entry_point, agent, version, hash, explanation).with_number(number)
        }
        EntryPoint::Workflow => {
            refuse_override(req, "workflow Voice Call nodes use the number's outbound agent; agent_id cannot be set")?;
            let number = active_number(req, lookup, "workflow Voice Call nodes need an active from phone_number")?;
            let agent_id = number
                .outbound_agent_id
                .as_ref()
                .ok_or_else(|| RouteError::NoOutboundAgent { number: number.phone_number.clone(), what: "a workflow Voice Call node" })?;
            let (agent, version, hash, how) = pick_version(lookup, agent_id, number.outbound_agent_version)?;
            let node = match (&req.workflow_id, &req.node_id) {
                (Some(w), Some(n)) => format!("Voice Call node '{n}' of workflow {w}"),
                (Some(w), None) => format!("A Voice Call node of workflow {w}"),
                (None, Some(n)) => format!("Voice Call node '{n}'"),
                (None, None) => "A workflow Voice Call node".to_owned(),
            };
            let node = capitalise(&node);
            let explanation = format!("{node} calls from {}, whose outbound agent is '{}' {how}", number.phone_number, agent.name);
            Route::new(entry_point, agent, version, hash, explanation).with_number(number)
        }
        EntryPoint::Web | EntryPoint::Test => {
            let agent_id =
                req.agent_id.as_ref().ok_or(RouteError::MissingInput { field: "agent_id", message: format!("{entry_point} calls need agent_id") })?;
            let (agent, version, hash, how) = pick_version(lookup, agent_id, req.agent_version)?;
            let kind = if entry_point == EntryPoint::Web { "Web call" } else { "Test call" };
            let explanation = format!("{kind} requested agent '{}' {how}", agent.name);
            Route::new(entry_point, agent, version, hash, explanation)
        }
    };
    route.batch_id = req.batch_id.clone().filter(|_| entry_point == EntryPoint::Batch);
    route.workflow_id = req.workflow_id.clone().filter(|_| entry_point == EntryPoint::Workflow);
    route.node_id = req.node_id.clone().filter(|_| entry_point == EntryPoint::Workflow);
    Ok(route)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn refuse_override(req: &RouteRequest, message: &str) -> Result<(), RouteError> {
    if req.agent_id.is_some() || req.agent_version.is_some() {
        return Err(RouteError::MissingInput { field: "agent_id", message: message.to_owned() });
    }
    Ok(())
}

fn active_number<'a>(req: &RouteRequest, lookup: &'a impl RouteLookup, missing: &str) -> Result<&'a NumberInfo, RouteError> {
    let wanted = req.phone_number.as_ref().ok_or_else(|| RouteError::MissingInput { field: "phone_number", message: missing.to_owned() })?;
    let number = lookup.number(wanted).ok_or_else(|| RouteError::PhoneNumberNotFound(wanted.clone()))?;
    if !number.active {
        return Err(RouteError::PhoneNumberInactive(number.phone_number.clone()));
    }
    Ok(number)
}

/// The version to use and how it was chosen ("version 3", "version 3 (its latest published version)").
fn pick_version<'a>(lookup: &'a impl RouteLookup, agent_id: &AgentId, pinned: Option<u32>) -> Result<(&'a AgentInfo, u32, String, String), RouteError> {
    let agent = lookup.agent(agent_id).ok_or_else(|| RouteError::AgentNotFound(agent_id.clone()))?;
    match pinned {
        Some(v) => {
            let (version, hash) =
                agent.published(v).ok_or_else(|| RouteError::AgentVersionNotPublished(format!("agent '{}' has no published version {v}", agent.name)))?;
            Ok((agent, *version, hash.clone(), format!("version {version}")))
        }
        None => {
            let (version, hash) =
                agent.latest().ok_or_else(|| RouteError::AgentVersionNotPublished(format!("agent '{}' has no published version yet", agent.name)))?;
            Ok((agent, *version, hash.clone(), format!("version {version} (no version pinned, so its latest published version)")))
        }
    }
}

impl Route {
    fn new(entry_point: EntryPoint, agent: &AgentInfo, version: u32, config_hash: String, explanation: String) -> Self {
        Route {
            entry_point,
            phone_number: None,
            batch_id: None,
            workflow_id: None,
            node_id: None,
            agent_id: agent.agent_id.clone(),
            agent_name: agent.name.clone(),
            agent_version: version,
            config_hash,
            explanation,
        }
    }

    fn with_number(mut self, number: &NumberInfo) -> Self {
        self.phone_number = Some(number.phone_number.clone());
        self
    }
}

/// A snapshot held in memory: what the store loads for one resolution, and what tests build.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub numbers: Vec<NumberInfo>,
    pub agents: Vec<AgentInfo>,
}

impl RouteLookup for Snapshot {
    fn number(&self, number: &PhoneNumber) -> Option<&NumberInfo> {
        self.numbers.iter().find(|n| &n.phone_number == number)
    }
    fn agent(&self, agent_id: &AgentId) -> Option<&AgentInfo> {
        self.agents.iter().find(|a| &a.agent_id == agent_id)
    }
}
