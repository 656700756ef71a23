//! How a call started.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The six entry points of the product brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryPoint {
    Inbound,
    Outbound,
    Batch,
    Workflow,
    Web,
    Test,
}

impl EntryPoint {
    pub const ALL: [EntryPoint; 6] = [Self::Inbound, Self::Outbound, Self::Batch, Self::Workflow, Self::Web, Self::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Batch => "batch",
            Self::Workflow => "workflow",
            Self::Web => "web",
            Self::Test => "test",
        }
    }

    /// Which way the audio flows for calls of this entry point.
    pub fn direction(self) -> Direction {
        match self {
            Self::Inbound => Direction::Inbound,
            Self::Outbound | Self::Batch | Self::Workflow => Direction::Outbound,
            Self::Web | Self::Test => Direction::Web,
        }
    }
}

impl fmt::Display for EntryPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entry point '{0}' (expected one of inbound, outbound, batch, workflow, web, test)")]
pub struct UnknownEntryPoint(pub String);

impl FromStr for EntryPoint {
    type Err = UnknownEntryPoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| UnknownEntryPoint(s.chars().take(40).collect()))
    }
}

/// `inbound` and `outbound` are phone calls; `web` covers browser and test calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Web,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Web => "web",
        }
    }
}
