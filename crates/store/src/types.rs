//! Rows in and out of the store.

use std::collections::BTreeMap;

use dialnexa_core::agent::VersionStatus;
use dialnexa_core::{AgentId, AnnotationKind, CallId, ExtractedField, PhoneNumber, TimelineEvent, TranscriptTurn};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub name: String,
    /// SHA-256 of the key; the key itself is never stored.
    pub key_hash: String,
    /// The last four characters, to tell keys apart.
    pub hint: String,
    pub created_at: jiff::Timestamp,
    pub revoked_at: Option<jiff::Timestamp>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord").field("key_id", &self.key_id).field("name", &self.name).field("hint", &self.hint).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First time: run the request, then `idempotency_finish` or `idempotency_abort`.
    New,
    /// Seen with the same request: answer with what was answered then.
    Replay { status: u16, body: String },
    /// Seen with another request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// A version to write (draft).
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub kind: String,
    pub config: serde_json::Value,
    pub config_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentRecord {
    pub agent_id: AgentId,
    pub name: String,
    pub draft_version: u32,
    pub published_versions: Vec<u32>,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    pub agent_id: AgentId,
    pub version: u32,
    pub status: VersionStatus,
    pub kind: String,
    pub config: serde_json::Value,
    pub config_hash: String,
    pub created_at: jiff::Timestamp,
    pub published_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhoneNumberRecord {
    pub phone_number: PhoneNumber,
    pub inbound_agent_id: Option<AgentId>,
    pub inbound_agent_version: Option<u32>,
    pub outbound_agent_id: Option<AgentId>,
    pub outbound_agent_version: Option<u32>,
    pub active: bool,
    pub nickname: Option<String>,
    /// Asked at each inbound call (docs/telephony.md, "Dynamic routing").
    pub inbound_hook_url: Option<String>,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

/// Recording evidence: its own status, so a failed recording shows as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// `none` (text calls have no audio), `recording`, `available`, `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Content address (SHA-256) of the mixed WAV in the blob store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Content address of the two-channel WAV (caller left, agent right).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_channels: Option<String>,
}

/// The header row of a call: everything but the per-turn evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub call_id: CallId,
    pub entry_point: String,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub agent_id: Option<AgentId>,
    pub agent_version: Option<u32>,
    pub config_hash: Option<String>,
    /// The route as resolved (or refused), with its explanation.
    pub route: serde_json::Value,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    pub status: String,
    pub disconnection_reason: Option<String>,
    pub created_at: jiff::Timestamp,
    pub started_at: Option<jiff::Timestamp>,
    pub ended_at: Option<jiff::Timestamp>,
    pub duration_ms: Option<u64>,
    pub category: Option<String>,
    pub summary: Option<String>,
    pub extracted_fields: BTreeMap<String, ExtractedField>,
    pub analysis: Option<serde_json::Value>,
    pub transfer: Option<serde_json::Value>,
    pub recording: RecordingInfo,
    pub audio_cache_hits: u64,
    pub audio_cache_misses: u64,
    pub metadata: serde_json::Value,
    /// IANA name of the caller's timezone, when known.
    pub timezone: Option<String>,
}

/// A call to write, with its evidence.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub row: CallRow,
    pub timeline: Vec<TimelineEvent>,
    pub transcript: Vec<TranscriptTurn>,
}

/// A call with all its evidence.
#[derive(Debug, Clone)]
pub struct CallDetail {
    pub row: CallRow,
    pub timeline: Vec<TimelineEvent>,
    pub transcript: Vec<TranscriptTurn>,
    pub annotations: Vec<dialnexa_core::Annotation>,
}

/// Filters of `GET /v1/calls`; every one is an indexed equality or range.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub entry_point: Option<String>,
    pub status: Option<String>,
    pub agent_id: Option<AgentId>,
    pub agent_version: Option<u32>,
    pub phone_number: Option<PhoneNumber>,
    pub batch_id: Option<String>,
    pub workflow_id: Option<String>,
    /// Inclusive lower bound on the call's start (`created_at`).
    pub started_after: Option<jiff::Timestamp>,
    /// Exclusive upper bound on the call's start.
    pub started_before: Option<jiff::Timestamp>,
    pub category: Option<String>,
    pub handoff_status: Option<String>,
}

/// Position after which the next page starts: (created_at ms, call_id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    pub created_at_ms: i64,
    pub call_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct AnnotationFilter {
    pub agent_id: Option<AgentId>,
    pub agent_version: Option<u32>,
    pub kind: Option<AnnotationKind>,
    pub call_id: Option<CallId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkItemRecord {
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: jiff::Timestamp,
    pub lease_seq: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkAttemptRecord {
    pub attempt: u32,
    pub lease_seq: i64,
    pub worker: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// What an analysis writes onto its call.
#[derive(Debug, Clone)]
pub struct AnalysisUpdate {
    /// The `analysis` object of the call detail (status, engine, findings ...).
    pub analysis: serde_json::Value,
    pub category: Option<String>,
    pub summary: Option<String>,
    /// The call's fields after merging the analysis in.
    pub extracted_fields: BTreeMap<String, ExtractedField>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrationRecord {
    pub integration_id: String,
    pub kind: String,
    pub name: String,
    /// Credentials included: never serialise this into an answer.
    #[serde(skip)]
    pub config: serde_json::Value,
    pub rules: serde_json::Value,
    pub active: bool,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

/// A handoff to create with the analysis that decided it.
#[derive(Debug, Clone)]
pub struct NewHandoff {
    pub handoff_id: String,
    pub call_id: CallId,
    pub integration_id: String,
    pub integration_kind: String,
    pub action: String,
    pub idempotency_key: String,
    pub status: String,
    pub reason: String,
    pub payload: serde_json::Value,
    /// 0: enrichment (runs first), 1: delivery.
    pub phase: i64,
    pub rule_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewReview {
    pub review_id: String,
    pub reason: String,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub follow_up_id: String,
    pub kind: String,
    pub detail: serde_json::Value,
    pub due_at: Option<jiff::Timestamp>,
    /// Unique: a re-analysis does not create the same follow-up twice.
    pub key: String,
}

/// One planned handoff, the review item that holds it (if any) and its delivery work.
#[derive(Debug, Clone)]
pub struct PlannedHandoff {
    pub handoff: NewHandoff,
    pub review: Option<NewReview>,
    pub work: Option<crate::queue::NewWork>,
}

/// What an analysis decides, committed with it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub handoffs: Vec<PlannedHandoff>,
    pub follow_ups: Vec<NewFollowUp>,
    /// The call's reason for recurring-issue insights (`incident: payments api`).
    pub reason_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoffRecord {
    pub handoff_id: String,
    pub call_id: CallId,
    pub integration_id: String,
    pub integration_kind: String,
    pub action: String,
    pub idempotency_key: String,
    pub status: String,
    pub reason: Option<String>,
    pub payload: serde_json::Value,
    pub attempts: u32,
    pub next_attempt_at: Option<jiff::Timestamp>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub evidence: serde_json::Value,
    pub phase: i64,
    pub rule_name: Option<String>,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoffAttemptRecord {
    pub attempt: u32,
    pub at: jiff::Timestamp,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The HTTP exchanges of this attempt, secrets redacted.
    pub exchanges: serde_json::Value,
    /// A rate limit (429, or 503 with `Retry-After`): counted against the rate-limit budget,
    /// not against the attempts meant for errors.
    pub rate_limited: bool,
    /// The `Retry-After` the destination sent, in ms.
    pub retry_after_ms: Option<u64>,
    /// What was done about it (e.g. "Retry-After 86400 s capped at 3600 s").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct HandoffFilter {
    pub call_id: Option<CallId>,
    pub status: Option<String>,
    pub integration_id: Option<String>,
}

/// How a delivery attempt ended, for the handoff row.
#[derive(Debug, Clone)]
pub struct HandoffResult {
    pub status: String,
    pub reason: Option<String>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub evidence: Option<serde_json::Value>,
    pub next_attempt_at: Option<jiff::Timestamp>,
}

/// What to do with the delivery's work item, in the same transaction.
#[derive(Debug, Clone)]
pub enum QueueStep {
    Complete,
    RetryAt {
        at: jiff::Timestamp,
        error: String,
    },
    /// Final: `failed` (not worth retrying) or `dead` (retries ran out).
    Finish {
        state: &'static str,
        error: String,
    },
    /// Run again at `at` without spending one of `max_attempts` (a rate limit within its own
    /// budget, a wait for enrichment). The attempt is kept with `outcome` and `note`.
    Defer {
        at: jiff::Timestamp,
        outcome: &'static str,
        note: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItemRecord {
    pub review_id: String,
    pub call_id: CallId,
    pub handoff_id: Option<String>,
    pub reason: String,
    pub detail: String,
    pub status: String,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<jiff::Timestamp>,
    pub created_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowUpRecord {
    pub follow_up_id: String,
    pub call_id: CallId,
    pub kind: String,
    pub status: String,
    pub detail: serde_json::Value,
    pub due_at: Option<jiff::Timestamp>,
    pub created_at: jiff::Timestamp,
    pub completed_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecurringReason {
    pub reason: String,
    pub count: u64,
    pub example_call_ids: Vec<String>,
}

/// Why a web-call token does not open its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
    AlreadyUsed,
}

/// The end of a live call: its final row fields and evidence.
#[derive(Debug, Clone)]
pub struct FinishedCall {
    pub status: String,
    pub disconnection_reason: String,
    pub started_at: Option<jiff::Timestamp>,
    pub ended_at: jiff::Timestamp,
    pub duration_ms: u64,
    pub extracted_fields: BTreeMap<String, ExtractedField>,
    pub transfer: Option<serde_json::Value>,
    pub recording: RecordingInfo,
    pub audio_cache_hits: u64,
    pub audio_cache_misses: u64,
    pub analysis: Option<serde_json::Value>,
    pub timeline: Vec<TimelineEvent>,
    pub transcript: Vec<TranscriptTurn>,
}

/// A phone call's leg at its carrier.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierLeg {
    pub call_id: CallId,
    /// `twilio`.
    pub carrier: String,
    /// The carrier's call id (`CA…`); none until the carrier has answered a create.
    pub carrier_sid: Option<String>,
    /// The carrier's own status name (`queued`, `ringing`, `in-progress`, `busy`, ...).
    pub raw_status: String,
    /// Its progress order: a status of a lower rank never replaces one of a higher.
    pub status_rank: u8,
    /// The carrier's machine-detection answer (`human`, `machine_end_beep`, ...).
    pub answered_by: Option<String>,
    pub ringing_at: Option<jiff::Timestamp>,
    pub answered_at: Option<jiff::Timestamp>,
    /// What the leg needs later: the voicemail policy, a transfer in progress, ...
    pub details: serde_json::Value,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
}
