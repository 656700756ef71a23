//! DialNexa persistence.
//!
//! SQLite (embedded default) and PostgreSQL (several nodes, one database) sit behind one
//! [`Store`] trait, implemented once by [`SqlStore`] over sqlx's `Any` driver. The SQL is
//! shared where it is portable; the few dialect-specific statements (job claiming, write
//! transactions) sit side by side in the module that needs them.
//!
//! Error policy: [`StoreError::NotFound`] and [`StoreError::Conflict`] are facts the API
//! answers with; everything else is internal and is logged, never shown.

mod agents;
mod calls;
mod carrier;
mod db;
pub mod handoffs;
mod keys;
mod migrate;
mod numbers;
pub mod queue;
pub mod testing;
mod types;

pub use db::{Backend, SqlStore, redact_url};
pub use queue::{Claimed, Completion, NewWork, RetrySchedule, WorkFailure};
pub use types::*;

use async_trait::async_trait;
use dialnexa_core::route::Snapshot;
use dialnexa_core::{AgentId, Annotation, CallId, PhoneNumber};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing is being worked on right now (e.g. a handoff with a live work item).
    #[error("in progress: {0}")]
    InProgress(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything DialNexa keeps. One implementation per SQL dialect family; the
/// conformance suite in `tests/` runs on SQLite and on PostgreSQL.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Cheap liveness query for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // API keys and idempotency
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn count_api_keys(&self) -> Result<i64>;
    async fn idempotency_begin(&self, scope_hash: &str, request_hash: &str, now: jiff::Timestamp) -> Result<IdempotencyBegin>;
    async fn idempotency_finish(&self, scope_hash: &str, status: u16, body: &str) -> Result<()>;
    async fn idempotency_abort(&self, scope_hash: &str) -> Result<()>;

    // Agents
    async fn create_agent(&self, agent_id: &AgentId, name: &str, draft: &NewVersion, now: jiff::Timestamp) -> Result<AgentRecord>;
    async fn list_agents(&self, after: Option<&AgentId>, limit: u32) -> Result<Vec<AgentRecord>>;
    async fn get_agent(&self, agent_id: &AgentId) -> Result<AgentRecord>;
    async fn find_agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>>;
    async fn update_draft(&self, agent_id: &AgentId, draft: &NewVersion, now: jiff::Timestamp) -> Result<VersionRecord>;
    /// Publish the draft: it becomes immutable and a copy opens as the next draft.
    async fn publish(&self, agent_id: &AgentId, now: jiff::Timestamp) -> Result<VersionRecord>;
    async fn get_version(&self, agent_id: &AgentId, version: u32) -> Result<VersionRecord>;

    // Phone numbers
    async fn create_number(&self, number: &PhoneNumberRecord) -> Result<()>;
    async fn list_numbers(&self, after: Option<&PhoneNumber>, limit: u32) -> Result<Vec<PhoneNumberRecord>>;
    async fn get_number(&self, number: &PhoneNumber) -> Result<PhoneNumberRecord>;
    async fn update_number(&self, number: &PhoneNumberRecord) -> Result<()>;
    async fn delete_number(&self, number: &PhoneNumber) -> Result<()>;
    /// The numbers and agents route resolution needs, read in one go.
    async fn route_snapshot(&self, numbers: &[PhoneNumber], agents: &[AgentId]) -> Result<Snapshot>;

    // Calls and evidence
    /// Write a call with its evidence and the work it causes, in one transaction.
    async fn insert_call(&self, call: &NewCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()>;
    async fn get_call(&self, call_id: &CallId) -> Result<CallDetail>;
    async fn list_calls(&self, filter: &CallFilter, after: Option<&CallCursor>, limit: u32) -> Result<Vec<CallRow>>;
    async fn distinct_agent_versions(&self, filter: &CallFilter) -> Result<Vec<(AgentId, u32)>>;
    async fn add_annotation(&self, annotation: &Annotation) -> Result<()>;
    async fn list_annotations(&self, filter: &AnnotationFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<Annotation>>;

    /// A single-use token that lets a browser join a web call until `expires_at`.
    async fn add_web_token(&self, call_id: &CallId, token_hash: &str, expires_at: jiff::Timestamp) -> Result<()>;
    async fn use_web_token(&self, token_hash: &str, now: jiff::Timestamp) -> Result<std::result::Result<CallId, TokenRefusal>>;
    async fn set_call_status(&self, call_id: &CallId, status: &str, started_at: Option<jiff::Timestamp>, event: &dialnexa_core::TimelineEvent) -> Result<()>;
    /// Close live calls a stopped process left `ongoing` (single node only).
    async fn sweep_interrupted(&self, now: jiff::Timestamp) -> Result<Vec<CallId>>;
    /// A live call ends: final state, evidence and work, in one transaction.
    async fn finish_live_call(&self, call_id: &CallId, finished: &FinishedCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()>;
    /// A phone call and its carrier leg, in one transaction.
    async fn insert_phone_call(&self, call: &NewCall, leg: &CarrierLeg, now: jiff::Timestamp) -> Result<()>;
    /// The leg with this carrier call id.
    async fn find_carrier_leg(&self, carrier: &str, carrier_sid: &str) -> Result<Option<CarrierLeg>>;
    async fn get_carrier_leg(&self, call_id: &CallId) -> Result<Option<CarrierLeg>>;
    /// The carrier answered the create with its call id (and a first status).
    async fn set_carrier_sid(&self, call_id: &CallId, carrier_sid: &str, raw_status: &str, rank: u8, now: jiff::Timestamp) -> Result<()>;
    /// Apply a carrier status when it moves the leg forward; true when it did.
    async fn advance_carrier_leg(&self, call_id: &CallId, raw_status: &str, rank: u8, answered_by: Option<&str>, now: jiff::Timestamp) -> Result<bool>;
    /// Merge keys into the leg's details (objects one level deep), in one locked transaction;
    /// the merged details.
    async fn merge_carrier_details(&self, call_id: &CallId, patch: &serde_json::Value, now: jiff::Timestamp) -> Result<serde_json::Value>;
    /// Open phone calls created before `before`, oldest first, with their call status.
    async fn open_carrier_legs(&self, before: jiff::Timestamp, limit: u32) -> Result<Vec<(CarrierLeg, String)>>;
    /// Add events to a call's timeline.
    async fn add_call_events(&self, call_id: &CallId, events: &[dialnexa_core::TimelineEvent]) -> Result<()>;
    /// Replace a call's transfer data (and say why on its timeline).
    async fn set_call_transfer(&self, call_id: &CallId, transfer: &serde_json::Value, event: &dialnexa_core::TimelineEvent) -> Result<()>;
    /// Outbound phone calls from this number that have not ended.
    async fn count_open_calls_from(&self, number: &str) -> Result<i64>;
    /// Set the call's `analysis` object (pending, failed ...) without other changes.
    async fn set_call_analysis(&self, call_id: &CallId, analysis: &serde_json::Value, now: jiff::Timestamp) -> Result<()>;
    /// Write an analysis onto its call, complete the work item that produced it and enqueue
    /// the work it causes, in one transaction fenced by the item's lease: a worker that lost
    /// its lease writes nothing (`Completion::Stale`).
    async fn finish_analysis(&self, item: &Claimed, call_id: &CallId, update: &AnalysisUpdate, plan: &Plan, now: jiff::Timestamp) -> Result<Completion>;
    /// Request a new analysis: mark it pending and enqueue the work, in one transaction.
    async fn request_analysis(&self, call_id: &CallId, pending: &serde_json::Value, work: &NewWork, now: jiff::Timestamp) -> Result<()>;

    // Integrations and handoffs
    async fn create_integration(&self, integration: &IntegrationRecord) -> Result<()>;
    async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>>;
    async fn get_integration(&self, id: &str) -> Result<IntegrationRecord>;
    async fn get_handoff(&self, id: &str) -> Result<HandoffRecord>;
    async fn list_handoffs(&self, filter: &HandoffFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<HandoffRecord>>;
    async fn handoff_attempts(&self, id: &str) -> Result<Vec<HandoffAttemptRecord>>;
    /// Mark the handoff `sending` under `item`'s fence; `false`: the lease was lost or the handoff settled, send nothing.
    async fn handoff_sending(&self, item: &Claimed, id: &str, now: jiff::Timestamp) -> Result<bool>;
    async fn finish_delivery(
        &self,
        item: &Claimed,
        id: &str,
        attempt: &HandoffAttemptRecord,
        result: &HandoffResult,
        step: &QueueStep,
        now: jiff::Timestamp,
    ) -> Result<Completion>;
    #[allow(clippy::too_many_arguments)]
    async fn settle_handoff(
        &self,
        item: &Claimed,
        id: &str,
        status: &str,
        reason: &str,
        review: Option<&NewReview>,
        call_id: &CallId,
        now: jiff::Timestamp,
    ) -> Result<Completion>;
    async fn requeue_handoff(&self, id: &str, allowed: &[&str], work: &NewWork, reason: &str, now: jiff::Timestamp) -> Result<HandoffRecord>;
    async fn recent_match(
        &self,
        integration_id: &str,
        action: &str,
        category: &str,
        keys: &[String],
        exclude: &CallId,
        since: jiff::Timestamp,
    ) -> Result<Vec<HandoffRecord>>;
    async fn list_reviews(&self, status: Option<&str>, call_id: Option<&CallId>, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<ReviewItemRecord>>;
    async fn get_review(&self, id: &str) -> Result<ReviewItemRecord>;
    async fn decide_review(
        &self,
        id: &str,
        approve: bool,
        note: Option<&str>,
        by: &str,
        work: Option<&NewWork>,
        now: jiff::Timestamp,
    ) -> Result<ReviewItemRecord>;
    async fn list_follow_ups(&self, kind: Option<&str>, status: Option<&str>, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<FollowUpRecord>>;
    async fn get_follow_up(&self, id: &str) -> Result<FollowUpRecord>;
    /// Close an open follow-up and write `plan` (what closing it sets off) in the same transaction.
    async fn complete_follow_up(&self, id: &str, note: Option<&str>, plan: &Plan, now: jiff::Timestamp) -> Result<FollowUpRecord>;
    async fn recurring(&self, since: jiff::Timestamp, limit: u32) -> Result<Vec<RecurringReason>>;
    /// Plan handoffs outside an analysis (e.g. closing a promise), in one transaction.
    async fn plan_handoffs(&self, call_id: &CallId, plan: &Plan, now: jiff::Timestamp) -> Result<()>;
    /// Put a claimed item back without spending an attempt.
    /// Put the item back until `until` without spending an attempt; the attempt is kept as `deferred` with `note`.
    async fn defer(&self, item: &Claimed, until: jiff::Timestamp, note: &str, now: jiff::Timestamp) -> Result<Completion>;

    // Work queue
    async fn enqueue(&self, work: &[NewWork], now: jiff::Timestamp) -> Result<usize>;
    /// Claim up to `limit` due items of the given kinds, rescuing expired leases first.
    async fn claim(&self, kinds: &[&str], worker: &str, limit: u32, lease: std::time::Duration, now: jiff::Timestamp) -> Result<Vec<Claimed>>;
    async fn heartbeat(&self, item: &Claimed, lease: std::time::Duration, now: jiff::Timestamp) -> Result<bool>;
    async fn complete(&self, item: &Claimed, now: jiff::Timestamp) -> Result<Completion>;
    async fn fail(&self, item: &Claimed, failure: &WorkFailure, schedule: &RetrySchedule, now: jiff::Timestamp) -> Result<Completion>;
    async fn work_item(&self, id: &str) -> Result<WorkItemRecord>;
    async fn work_attempts(&self, id: &str) -> Result<Vec<WorkAttemptRecord>>;
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        keys::insert_api_key(self, key).await
    }
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        keys::find_api_key(self, key_hash).await
    }
    async fn count_api_keys(&self) -> Result<i64> {
        keys::count_api_keys(self).await
    }
    async fn idempotency_begin(&self, scope_hash: &str, request_hash: &str, now: jiff::Timestamp) -> Result<IdempotencyBegin> {
        keys::begin(self, scope_hash, request_hash, now).await
    }
    async fn idempotency_finish(&self, scope_hash: &str, status: u16, body: &str) -> Result<()> {
        keys::finish(self, scope_hash, status, body).await
    }
    async fn idempotency_abort(&self, scope_hash: &str) -> Result<()> {
        keys::abort(self, scope_hash).await
    }
    async fn create_agent(&self, agent_id: &AgentId, name: &str, draft: &NewVersion, now: jiff::Timestamp) -> Result<AgentRecord> {
        agents::create_agent(self, agent_id, name, draft, now).await
    }
    async fn list_agents(&self, after: Option<&AgentId>, limit: u32) -> Result<Vec<AgentRecord>> {
        agents::list_agents(self, after, limit).await
    }
    async fn get_agent(&self, agent_id: &AgentId) -> Result<AgentRecord> {
        agents::get_agent(self, agent_id).await
    }
    async fn find_agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>> {
        agents::find_agent_by_name(self, name).await
    }
    async fn update_draft(&self, agent_id: &AgentId, draft: &NewVersion, now: jiff::Timestamp) -> Result<VersionRecord> {
        agents::update_draft(self, agent_id, draft, now).await
    }
    async fn publish(&self, agent_id: &AgentId, now: jiff::Timestamp) -> Result<VersionRecord> {
        agents::publish(self, agent_id, now).await
    }
    async fn get_version(&self, agent_id: &AgentId, version: u32) -> Result<VersionRecord> {
        agents::get_version(self, agent_id, version).await
    }
    async fn create_number(&self, number: &PhoneNumberRecord) -> Result<()> {
        numbers::create(self, number).await
    }
    async fn list_numbers(&self, after: Option<&PhoneNumber>, limit: u32) -> Result<Vec<PhoneNumberRecord>> {
        numbers::list(self, after, limit).await
    }
    async fn get_number(&self, number: &PhoneNumber) -> Result<PhoneNumberRecord> {
        numbers::get_one(self, number).await
    }
    async fn update_number(&self, number: &PhoneNumberRecord) -> Result<()> {
        numbers::update(self, number).await
    }
    async fn delete_number(&self, number: &PhoneNumber) -> Result<()> {
        numbers::delete(self, number).await
    }
    async fn route_snapshot(&self, numbers: &[PhoneNumber], agents: &[AgentId]) -> Result<Snapshot> {
        numbers::route_snapshot(self, numbers, agents).await
    }
    async fn insert_call(&self, call: &NewCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()> {
        calls::insert_call(self, call, work, now).await
    }
    async fn get_call(&self, call_id: &CallId) -> Result<CallDetail> {
        calls::get_call(self, call_id).await
    }
    async fn list_calls(&self, filter: &CallFilter, after: Option<&CallCursor>, limit: u32) -> Result<Vec<CallRow>> {
        calls::list_calls(self, filter, after, limit).await
    }
    async fn distinct_agent_versions(&self, filter: &CallFilter) -> Result<Vec<(AgentId, u32)>> {
        calls::distinct_agent_versions(self, filter).await
    }
    async fn add_annotation(&self, annotation: &Annotation) -> Result<()> {
        calls::add_annotation(self, annotation).await
    }
    async fn list_annotations(&self, filter: &AnnotationFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<Annotation>> {
        calls::list_annotations(self, filter, after, limit).await
    }
    async fn add_web_token(&self, call_id: &CallId, token_hash: &str, expires_at: jiff::Timestamp) -> Result<()> {
        calls::add_web_token(self, call_id, token_hash, expires_at).await
    }
    async fn use_web_token(&self, token_hash: &str, now: jiff::Timestamp) -> Result<std::result::Result<CallId, TokenRefusal>> {
        calls::use_web_token(self, token_hash, now).await
    }
    async fn set_call_status(&self, call_id: &CallId, status: &str, started_at: Option<jiff::Timestamp>, event: &dialnexa_core::TimelineEvent) -> Result<()> {
        calls::set_call_status(self, call_id, status, started_at, event).await
    }
    async fn sweep_interrupted(&self, now: jiff::Timestamp) -> Result<Vec<CallId>> {
        calls::sweep_interrupted(self, now).await
    }
    async fn insert_phone_call(&self, call: &NewCall, leg: &CarrierLeg, now: jiff::Timestamp) -> Result<()> {
        carrier::insert_phone_call(self, call, leg, now).await
    }
    async fn find_carrier_leg(&self, carrier_name: &str, carrier_sid: &str) -> Result<Option<CarrierLeg>> {
        carrier::find_leg(self, carrier_name, carrier_sid).await
    }
    async fn get_carrier_leg(&self, call_id: &CallId) -> Result<Option<CarrierLeg>> {
        carrier::get_leg(self, call_id).await
    }
    async fn set_carrier_sid(&self, call_id: &CallId, carrier_sid: &str, raw_status: &str, rank: u8, now: jiff::Timestamp) -> Result<()> {
        carrier::set_sid(self, call_id, carrier_sid, raw_status, rank, now).await
    }
    async fn advance_carrier_leg(&self, call_id: &CallId, raw_status: &str, rank: u8, answered_by: Option<&str>, now: jiff::Timestamp) -> Result<bool> {
        carrier::advance(self, call_id, raw_status, rank, answered_by, now).await
    }
    async fn merge_carrier_details(&self, call_id: &CallId, patch: &serde_json::Value, now: jiff::Timestamp) -> Result<serde_json::Value> {
        carrier::merge_details(self, call_id, patch, now).await
    }
    async fn open_carrier_legs(&self, before: jiff::Timestamp, limit: u32) -> Result<Vec<(CarrierLeg, String)>> {
        carrier::open_legs(self, before, limit).await
    }
    async fn add_call_events(&self, call_id: &CallId, events: &[dialnexa_core::TimelineEvent]) -> Result<()> {
        carrier::add_events(self, call_id, events).await
    }
    async fn set_call_transfer(&self, call_id: &CallId, transfer: &serde_json::Value, event: &dialnexa_core::TimelineEvent) -> Result<()> {
        carrier::set_transfer(self, call_id, transfer, event).await
    }
    async fn count_open_calls_from(&self, number: &str) -> Result<i64> {
        carrier::count_open_from(self, number).await
    }
    async fn finish_live_call(&self, call_id: &CallId, finished: &FinishedCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()> {
        calls::finish_live_call(self, call_id, finished, work, now).await
    }
    async fn set_call_analysis(&self, call_id: &CallId, analysis: &serde_json::Value, now: jiff::Timestamp) -> Result<()> {
        calls::set_call_analysis(self, call_id, analysis, now).await
    }
    async fn finish_analysis(&self, item: &Claimed, call_id: &CallId, update: &AnalysisUpdate, plan: &Plan, now: jiff::Timestamp) -> Result<Completion> {
        calls::finish_analysis(self, item, call_id, update, plan, now).await
    }
    async fn request_analysis(&self, call_id: &CallId, pending: &serde_json::Value, work: &NewWork, now: jiff::Timestamp) -> Result<()> {
        calls::request_analysis(self, call_id, pending, work, now).await
    }
    async fn create_integration(&self, integration: &IntegrationRecord) -> Result<()> {
        handoffs::create_integration(self, integration).await
    }
    async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>> {
        handoffs::list_integrations(self).await
    }
    async fn get_integration(&self, id: &str) -> Result<IntegrationRecord> {
        handoffs::get_integration(self, id).await
    }
    async fn get_handoff(&self, id: &str) -> Result<HandoffRecord> {
        handoffs::get_handoff(self, id).await
    }
    async fn list_handoffs(&self, filter: &HandoffFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<HandoffRecord>> {
        handoffs::list_handoffs(self, filter, after, limit).await
    }
    async fn handoff_attempts(&self, id: &str) -> Result<Vec<HandoffAttemptRecord>> {
        handoffs::handoff_attempts(self, id).await
    }
    async fn handoff_sending(&self, item: &Claimed, id: &str, now: jiff::Timestamp) -> Result<bool> {
        handoffs::handoff_sending(self, item, id, now).await
    }
    async fn finish_delivery(
        &self,
        item: &Claimed,
        id: &str,
        attempt: &HandoffAttemptRecord,
        result: &HandoffResult,
        step: &QueueStep,
        now: jiff::Timestamp,
    ) -> Result<Completion> {
        handoffs::finish_delivery(self, item, id, attempt, result, step, now).await
    }
    async fn settle_handoff(
        &self,
        item: &Claimed,
        id: &str,
        status: &str,
        reason: &str,
        review: Option<&NewReview>,
        call_id: &CallId,
        now: jiff::Timestamp,
    ) -> Result<Completion> {
        handoffs::settle_handoff(self, item, id, status, reason, review, call_id, now).await
    }
    async fn requeue_handoff(&self, id: &str, allowed: &[&str], work: &NewWork, reason: &str, now: jiff::Timestamp) -> Result<HandoffRecord> {
        handoffs::requeue_handoff(self, id, allowed, work, reason, now).await
    }
    async fn recent_match(
        &self,
        integration_id: &str,
        action: &str,
        category: &str,
        keys: &[String],
        exclude: &CallId,
        since: jiff::Timestamp,
    ) -> Result<Vec<HandoffRecord>> {
        handoffs::recent_match(self, integration_id, action, category, keys, exclude, since).await
    }
    async fn list_reviews(&self, status: Option<&str>, call_id: Option<&CallId>, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<ReviewItemRecord>> {
        handoffs::list_reviews(self, status, call_id, after, limit).await
    }
    async fn get_review(&self, id: &str) -> Result<ReviewItemRecord> {
        handoffs::get_review(self, id).await
    }
    async fn decide_review(
        &self,
        id: &str,
        approve: bool,
        note: Option<&str>,
        by: &str,
        work: Option<&NewWork>,
        now: jiff::Timestamp,
    ) -> Result<ReviewItemRecord> {
        handoffs::decide_review(self, id, approve, note, by, work, now).await
    }
    async fn list_follow_ups(&self, kind: Option<&str>, status: Option<&str>, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<FollowUpRecord>> {
        handoffs::list_follow_ups(self, kind, status, after, limit).await
    }
    async fn get_follow_up(&self, id: &str) -> Result<FollowUpRecord> {
        handoffs::get_follow_up(self, id).await
    }
    async fn complete_follow_up(&self, id: &str, note: Option<&str>, plan: &Plan, now: jiff::Timestamp) -> Result<FollowUpRecord> {
        handoffs::complete_follow_up(self, id, note, plan, now).await
    }
    async fn recurring(&self, since: jiff::Timestamp, limit: u32) -> Result<Vec<RecurringReason>> {
        handoffs::recurring(self, since, limit).await
    }
    async fn plan_handoffs(&self, call_id: &CallId, plan: &Plan, now: jiff::Timestamp) -> Result<()> {
        let mut tx = self.begin_write().await?;
        handoffs::write_plan(&mut tx, call_id, plan, now).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn defer(&self, item: &Claimed, until: jiff::Timestamp, note: &str, now: jiff::Timestamp) -> Result<Completion> {
        queue::defer(self, item, until, note, now).await
    }
    async fn enqueue(&self, work: &[NewWork], now: jiff::Timestamp) -> Result<usize> {
        queue::enqueue(self, work, now).await
    }
    async fn claim(&self, kinds: &[&str], worker: &str, limit: u32, lease: std::time::Duration, now: jiff::Timestamp) -> Result<Vec<Claimed>> {
        queue::claim(self, kinds, worker, limit, lease, now).await
    }
    async fn heartbeat(&self, item: &Claimed, lease: std::time::Duration, now: jiff::Timestamp) -> Result<bool> {
        queue::heartbeat(self, item, lease, now).await
    }
    async fn complete(&self, item: &Claimed, now: jiff::Timestamp) -> Result<Completion> {
        queue::complete(self, item, now).await
    }
    async fn fail(&self, item: &Claimed, failure: &WorkFailure, schedule: &RetrySchedule, now: jiff::Timestamp) -> Result<Completion> {
        queue::fail(self, item, failure, schedule, now).await
    }
    async fn work_item(&self, id: &str) -> Result<WorkItemRecord> {
        queue::work_item(self, id).await
    }
    async fn work_attempts(&self, id: &str) -> Result<Vec<WorkAttemptRecord>> {
        queue::work_attempts(self, id).await
    }
}
