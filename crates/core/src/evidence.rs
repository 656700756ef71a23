//! The evidence of a call: what lets anyone explain it afterward.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AnnotationId, CallId};

/// One thing that happened, in order: route chosen, status changes, flow nodes, transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When it happened (RFC 3339, UTC).
    pub at: jiff::Timestamp,
    /// Milliseconds since the call began.
    pub offset_ms: u64,
    /// A stable snake_case kind (`route_resolved`, `status_changed`, `node_entered`, ...).
    pub kind: String,
    /// A sentence a person can read.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Caller,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Caller => "caller",
        }
    }
}

/// One turn of the conversation with its timing relative to the start of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    pub index: u32,
    pub role: Role,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Where in the transcript a value came from: turn index and character offsets
/// (`start` inclusive, `end` exclusive, counted in Unicode scalar values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub turn: u32,
    pub start: u32,
    pub end: u32,
}

/// A field learned from the call, grounded in the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractedField {
    pub value: serde_json::Value,
    /// 0..1.
    pub confidence: f64,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationKind {
    Note,
    PromptSuggestion,
    Correction,
}

impl AnnotationKind {
    pub const ALL: [AnnotationKind; 3] = [Self::Note, Self::PromptSuggestion, Self::Correction];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::PromptSuggestion => "prompt_suggestion",
            Self::Correction => "correction",
        }
    }
}

impl fmt::Display for AnnotationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnnotationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown annotation kind '{}' (expected note, prompt_suggestion or correction)", s.chars().take(40).collect::<String>()))
    }
}

/// A person's note on a call or on one of its turns, for prompt improvement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub annotation_id: AnnotationId,
    pub call_id: CallId,
    pub agent_id: Option<crate::ids::AgentId>,
    pub agent_version: Option<u32>,
    pub turn_index: Option<u32>,
    pub kind: AnnotationKind,
    pub text: String,
    pub suggestion: Option<String>,
    pub created_at: jiff::Timestamp,
}
