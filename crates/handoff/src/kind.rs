//! The integrations DialNexa hands off to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    OpengraphIo,
    Heartbeat,
    Slack,
    Jira,
    Zendesk,
    GoogleSheets,
    Hubspot,
    Datadog,
    Webhook,
}

impl IntegrationKind {
    pub const ALL: [IntegrationKind; 9] =
        [Self::OpengraphIo, Self::Heartbeat, Self::Slack, Self::Jira, Self::Zendesk, Self::GoogleSheets, Self::Hubspot, Self::Datadog, Self::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpengraphIo => "opengraph_io",
            Self::Heartbeat => "heartbeat",
            Self::Slack => "slack",
            Self::Jira => "jira",
            Self::Zendesk => "zendesk",
            Self::GoogleSheets => "google_sheets",
            Self::Hubspot => "hubspot",
            Self::Datadog => "datadog",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for IntegrationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            format!("unknown integration kind '{}' (expected one of {})", s.chars().take(40).collect::<String>(), Self::ALL.map(|k| k.as_str()).join(", "))
        })
    }
}
