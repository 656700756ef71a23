//! One module per integration. Each has a `Config` (its credentials and options; `base_url`
//! replaces the service's real base URL; `Debug` never shows a secret), `ACTIONS`, and a
//! connector built from the config and the shared HTTP client.

pub mod datadog;
pub mod google_sheets;
pub mod heartbeat;
pub mod hubspot;
pub mod jira;
pub mod opengraph_io;
pub mod slack;
pub mod webhook;
pub mod zendesk;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::connector::Connector;
use crate::kind::IntegrationKind;

/// A fault in an integration's config, with the path of the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigFault {
    pub path: String,
    pub message: String,
}

fn parse<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigFault> {
    serde_json::from_value(config.clone()).map_err(|e| ConfigFault { path: "config".into(), message: e.to_string() })
}

fn fault(message: String) -> ConfigFault {
    // Validation messages start with the field name: "field: why".
    match message.split_once(": ") {
        Some((field, why)) if !field.contains(' ') => ConfigFault { path: format!("config.{field}"), message: why.to_owned() },
        _ => ConfigFault { path: "config".into(), message },
    }
}

/// The actions an integration can carry out.
pub fn actions(kind: IntegrationKind) -> &'static [&'static str] {
    match kind {
        IntegrationKind::OpengraphIo => opengraph_io::ACTIONS,
        IntegrationKind::Heartbeat => heartbeat::ACTIONS,
        IntegrationKind::Slack => slack::ACTIONS,
        IntegrationKind::Jira => jira::ACTIONS,
        IntegrationKind::Zendesk => zendesk::ACTIONS,
        IntegrationKind::GoogleSheets => google_sheets::ACTIONS,
        IntegrationKind::Hubspot => hubspot::ACTIONS,
        IntegrationKind::Datadog => datadog::ACTIONS,
        IntegrationKind::Webhook => webhook::ACTIONS,
    }
}

/// Check a config (when the integration is saved) and build its connector.
pub fn build(kind: IntegrationKind, config: &Value, client: reqwest::Client) -> Result<Arc<dyn Connector>, ConfigFault> {
    Ok(match kind {
        IntegrationKind::OpengraphIo => {
            let c: opengraph_io::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(opengraph_io::OpengraphIo::new(c, client))
        }
        IntegrationKind::Heartbeat => {
            let c: heartbeat::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(heartbeat::Heartbeat::new(c, client))
        }
        IntegrationKind::Slack => {
            let c: slack::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(slack::Slack::new(c, client))
        }
        IntegrationKind::Jira => {
            let c: jira::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(jira::Jira::new(c, client))
        }
        IntegrationKind::Zendesk => {
            let c: zendesk::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(zendesk::Zendesk::new(c, client))
        }
        IntegrationKind::GoogleSheets => {
            let c: google_sheets::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(google_sheets::GoogleSheets::new(c, client))
        }
        IntegrationKind::Hubspot => {
            let c: hubspot::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(hubspot::Hubspot::new(c, client))
        }
        IntegrationKind::Datadog => {
            let c: datadog::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(datadog::Datadog::new(c, client))
        }
        IntegrationKind::Webhook => {
            let c: webhook::Config = parse(config)?;
            c.validate().map_err(fault)?;
            Arc::new(webhook::Webhook::new(c, client))
        }
    })
}
