//! Calls, their evidence and annotations.

use sqlx::any::AnyRow;

use dialnexa_core::evidence::Role;
use dialnexa_core::{AgentId, Annotation, AnnotationId, CallId, CallStatus, TimelineEvent, TranscriptTurn};

use crate::db::{SqlStore, conflict_on_unique, get, json, ms, parse, ts, ts_opt, u32_of};
use crate::queue::{Claimed, Completion, NewWork, complete_in, insert_work};
use crate::{AnalysisUpdate, AnnotationFilter, CallCursor, CallDetail, CallFilter, CallRow, NewCall, RecordingInfo, Result, StoreError};

const COLS: &str = "call_id, entry_point, direction, from_number, to_number, agent_id, agent_version, config_hash, route, batch_id, workflow_id, status, disconnection_reason, created_at, started_at, ended_at, duration_ms, category, summary, extracted_fields, analysis, transfer, recording, audio_cache_hits, audio_cache_misses, metadata, updated_at, timezone";

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn opt_json(v: Option<String>, what: &str) -> Result<Option<serde_json::Value>> {
    v.map(|t| json(&t, what)).transpose()
}

fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v}")))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn row_from(r: &AnyRow) -> Result<CallRow> {
    Ok(CallRow {
        call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
        entry_point: get(r, "entry_point")?,
        direction: get(r, "direction")?,
        from_number: get(r, "from_number")?,
        to_number: get(r, "to_number")?,
        agent_id: get::<Option<String>>(r, "agent_id")?.map(|a| AgentId::parse(&a).map_err(corrupt)).transpose()?,
        agent_version: get::<Option<i64>>(r, "agent_version")?.map(|v| u32_of(v, "agent_version")).transpose()?,
        config_hash: get(r, "config_hash")?,
        route: json(&get::<String>(r, "route")?, "route")?,
        batch_id: get(r, "batch_id")?,
        workflow_id: get(r, "workflow_id")?,
        status: get(r, "status")?,
        disconnection_reason: get(r, "disconnection_reason")?,
        created_at: ts(get(r, "created_at")?)?,
        started_at: ts_opt(get(r, "started_at")?)?,
        ended_at: ts_opt(get(r, "ended_at")?)?,
        duration_ms: get::<Option<i64>>(r, "duration_ms")?.map(|v| u64_of(v, "duration_ms")).transpose()?,
        category: get(r, "category")?,
        summary: get(r, "summary")?,
        extracted_fields: serde_json::from_str(&get::<String>(r, "extracted_fields")?).map_err(corrupt)?,
        analysis: opt_json(get(r, "analysis")?, "analysis")?,
        transfer: opt_json(get(r, "transfer")?, "transfer")?,
        recording: serde_json::from_str::<RecordingInfo>(&get::<String>(r, "recording")?).map_err(corrupt)?,
        audio_cache_hits: u64_of(get(r, "audio_cache_hits")?, "audio_cache_hits")?,
        audio_cache_misses: u64_of(get(r, "audio_cache_misses")?, "audio_cache_misses")?,
        metadata: json(&get::<String>(r, "metadata")?, "metadata")?,
        timezone: get(r, "timezone")?,
    })
}

pub(crate) async fn insert_call(s: &SqlStore, call: &NewCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()> {
    let mut tx = s.begin_write().await?;
    insert_call_in(&mut tx, call, work, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn insert_call_in(tx: &mut sqlx::Transaction<'static, sqlx::Any>, call: &NewCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()> {
    let c = &call.row;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO calls ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
    )))
    .bind(c.call_id.as_str())
    .bind(&c.entry_point)
    .bind(&c.direction)
    .bind(c.from_number.as_deref())
    .bind(c.to_number.as_deref())
    .bind(c.agent_id.as_ref().map(|a| a.as_str()))
    .bind(c.agent_version.map(i64::from))
    .bind(c.config_hash.as_deref())
    .bind(c.route.to_string())
    .bind(c.batch_id.as_deref())
    .bind(c.workflow_id.as_deref())
    .bind(&c.status)
    .bind(c.disconnection_reason.as_deref())
    .bind(ms(c.created_at))
    .bind(c.started_at.map(ms))
    .bind(c.ended_at.map(ms))
    .bind(c.duration_ms.map(i64_of))
    .bind(c.category.as_deref())
    .bind(c.summary.as_deref())
    .bind(serde_json::to_string(&c.extracted_fields).map_err(corrupt)?)
    .bind(c.analysis.as_ref().map(|v| v.to_string()))
    .bind(c.transfer.as_ref().map(|v| v.to_string()))
    .bind(serde_json::to_string(&c.recording).map_err(corrupt)?)
    .bind(i64_of(c.audio_cache_hits))
    .bind(i64_of(c.audio_cache_misses))
    .bind(c.metadata.to_string())
    .bind(ms(now))
    .bind(c.timezone.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_on_unique(e, "call already exists"))?;
    for t in &call.transcript {
        sqlx::query("INSERT INTO call_turns (call_id, turn_index, role, text, start_ms, end_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(c.call_id.as_str())
            .bind(i64::from(t.index))
            .bind(t.role.as_str())
            .bind(&t.text)
            .bind(i64_of(t.start_ms))
            .bind(i64_of(t.end_ms))
            .execute(&mut **tx)
            .await?;
    }
    for (seq, e) in call.timeline.iter().enumerate() {
        sqlx::query("INSERT INTO call_events (call_id, seq, at, offset_ms, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(c.call_id.as_str())
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(ms(e.at))
            .bind(i64_of(e.offset_ms))
            .bind(&e.kind)
            .bind(&e.detail)
            .execute(&mut **tx)
            .await?;
    }
    for w in work {
        insert_work(tx, w, now).await?;
    }
    Ok(())
}

pub(crate) async fn get_call(s: &SqlStore, id: &CallId) -> Result<CallDetail> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM calls WHERE call_id = $1")))
        .bind(id.as_str())
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let row = row_from(&row)?;
    let transcript = sqlx::query("SELECT turn_index, role, text, start_ms, end_ms FROM call_turns WHERE call_id = $1 ORDER BY turn_index")
        .bind(id.as_str())
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TranscriptTurn {
                index: u32_of(get(r, "turn_index")?, "turn_index")?,
                role: if get::<String>(r, "role")? == "agent" { Role::Agent } else { Role::Caller },
                text: get(r, "text")?,
                start_ms: u64_of(get(r, "start_ms")?, "start_ms")?,
                end_ms: u64_of(get(r, "end_ms")?, "end_ms")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let timeline = sqlx::query("SELECT at, offset_ms, kind, detail FROM call_events WHERE call_id = $1 ORDER BY seq")
        .bind(id.as_str())
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TimelineEvent {
                at: ts(get(r, "at")?)?,
                offset_ms: u64_of(get(r, "offset_ms")?, "offset_ms")?,
                kind: get(r, "kind")?,
                detail: get(r, "detail")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let annotations = list_annotations(s, &AnnotationFilter { call_id: Some(id.clone()), ..Default::default() }, None, 10_000).await?;
    Ok(CallDetail { row, timeline, transcript, annotations })
}

/// A query under construction: conditions and their bound values, numbered in order.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Conditions {
    fn next(&self) -> String {
        format!("${}", self.binds.len() + 1)
    }
    fn text(&mut self, template: &str, v: impl Into<String>) {
        let p = self.next();
        self.sql.push(template.replace('?', &p));
        self.binds.push(Bind::Text(v.into()));
    }
    fn int(&mut self, template: &str, v: i64) {
        let p = self.next();
        self.sql.push(template.replace('?', &p));
        self.binds.push(Bind::Int(v));
    }
    fn where_clause(&self) -> String {
        if self.sql.is_empty() { String::new() } else { format!("WHERE {}", self.sql.join(" AND ")) }
    }
    fn bind_all<'q>(&'q self, mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for b in &self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t.as_str()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

fn filter_conditions(f: &CallFilter) -> Conditions {
    let mut c = Conditions::default();
    if let Some(v) = &f.entry_point {
        c.text("entry_point = ?", v);
    }
    if let Some(v) = &f.status {
        c.text("status = ?", v);
    }
    if let Some(v) = &f.agent_id {
        c.text("agent_id = ?", v.as_str());
    }
    if let Some(v) = f.agent_version {
        c.int("agent_version = ?", i64::from(v));
    }
    if let Some(v) = &f.phone_number {
        let p = c.next();
        c.sql.push(format!("(from_number = {p} OR to_number = {p})"));
        c.binds.push(Bind::Text(v.as_str().to_owned()));
    }
    if let Some(v) = &f.batch_id {
        c.text("batch_id = ?", v);
    }
    if let Some(v) = &f.workflow_id {
        c.text("workflow_id = ?", v);
    }
    if let Some(v) = f.started_after {
        c.int("started_at >= ?", ms(v));
    }
    if let Some(v) = f.started_before {
        c.int("started_at < ?", ms(v));
    }
    if let Some(v) = &f.category {
        c.text("category = ?", v);
    }
    if let Some(v) = &f.handoff_status {
        c.text("EXISTS (SELECT 1 FROM handoffs h WHERE h.call_id = calls.call_id AND h.status = ?)", v);
    }
    c
}

pub(crate) async fn list_calls(s: &SqlStore, f: &CallFilter, after: Option<&CallCursor>, limit: u32) -> Result<Vec<CallRow>> {
    let mut c = filter_conditions(f);
    if let Some(cur) = after {
        let a = c.next();
        c.binds.push(Bind::Int(cur.created_at_ms));
        let b = c.next();
        c.binds.push(Bind::Text(cur.call_id.clone()));
        c.sql.push(format!("(created_at, call_id) < ({a}, {b})"));
    }
    let lim = c.next();
    c.binds.push(Bind::Int(i64::from(limit)));
    let sql = format!("SELECT {COLS} FROM calls {} ORDER BY created_at DESC, call_id DESC LIMIT {lim}", c.where_clause());
    let q = c.bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)));
    q.fetch_all(&s.pool).await?.iter().map(row_from).collect()
}

pub(crate) async fn add_annotation(s: &SqlStore, a: &Annotation) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let exists = sqlx::query("SELECT 1 FROM calls WHERE call_id = $1").bind(a.call_id.as_str()).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    sqlx::query("INSERT INTO annotations (annotation_id, call_id, agent_id, agent_version, turn_index, kind, text, suggestion, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(a.annotation_id.as_str())
        .bind(a.call_id.as_str())
        .bind(a.agent_id.as_ref().map(|x| x.as_str()))
        .bind(a.agent_version.map(i64::from))
        .bind(a.turn_index.map(i64::from))
        .bind(a.kind.as_str())
        .bind(&a.text)
        .bind(a.suggestion.as_deref())
        .bind(ms(a.created_at))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_annotations(s: &SqlStore, f: &AnnotationFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<Annotation>> {
    let mut c = Conditions::default();
    if let Some(v) = &f.call_id {
        c.text("call_id = ?", v.as_str());
    }
    if let Some(v) = &f.agent_id {
        c.text("agent_id = ?", v.as_str());
    }
    if let Some(v) = f.agent_version {
        c.int("agent_version = ?", i64::from(v));
    }
    if let Some(v) = f.kind {
        c.text("kind = ?", v.as_str());
    }
    if let Some((at, id)) = after {
        let a = c.next();
        c.binds.push(Bind::Int(*at));
        let b = c.next();
        c.binds.push(Bind::Text(id.clone()));
        c.sql.push(format!("(created_at, annotation_id) > ({a}, {b})"));
    }
    let lim = c.next();
    c.binds.push(Bind::Int(i64::from(limit)));
    let sql = format!(
        "SELECT annotation_id, call_id, agent_id, agent_version, turn_index, kind, text, suggestion, created_at FROM annotations {} ORDER BY created_at, annotation_id LIMIT {lim}",
        c.where_clause()
    );
    let rows = c.bind_all(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_all(&s.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Annotation {
                annotation_id: AnnotationId::parse(&get::<String>(r, "annotation_id")?).map_err(corrupt)?,
                call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
                agent_id: get::<Option<String>>(r, "agent_id")?.map(|a| AgentId::parse(&a).map_err(corrupt)).transpose()?,
                agent_version: get::<Option<i64>>(r, "agent_version")?.map(|v| u32_of(v, "agent_version")).transpose()?,
                turn_index: get::<Option<i64>>(r, "turn_index")?.map(|v| u32_of(v, "turn_index")).transpose()?,
                kind: parse(&get::<String>(r, "kind")?, "annotation kind")?,
                text: get(r, "text")?,
                suggestion: get(r, "suggestion")?,
                created_at: ts(get(r, "created_at")?)?,
            })
        })
        .collect()
}

/// The (agent, version) pairs among the calls a filter selects: export names its field
/// columns from what those versions declare.
pub(crate) async fn distinct_agent_versions(s: &SqlStore, f: &CallFilter) -> Result<Vec<(AgentId, u32)>> {
    let c = filter_conditions(f);
    let extra = if c.sql.is_empty() { "WHERE agent_id IS NOT NULL" } else { "AND agent_id IS NOT NULL" };
    let sql = format!("SELECT DISTINCT agent_id, agent_version FROM calls {} {extra}", c.where_clause());
    let rows = c.bind_all(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_all(&s.pool).await?;
    let mut out = rows
        .iter()
        .filter_map(|r| {
            let id: Option<String> = get(r, "agent_id").ok()?;
            let v: Option<i64> = get(r, "agent_version").ok()?;
            Some((AgentId::parse(&id?).ok()?, u32::try_from(v?).ok()?))
        })
        .collect::<Vec<_>>();
    out.sort();
    Ok(out)
}

pub(crate) async fn set_call_analysis(s: &SqlStore, id: &CallId, analysis: &serde_json::Value, now: jiff::Timestamp) -> Result<()> {
    let done = sqlx::query("UPDATE calls SET analysis = $2, updated_at = $3 WHERE call_id = $1")
        .bind(id.as_str())
        .bind(analysis.to_string())
        .bind(ms(now))
        .execute(&s.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn finish_analysis(
    s: &SqlStore,
    item: &Claimed,
    id: &CallId,
    u: &AnalysisUpdate,
    plan: &crate::Plan,
    now: jiff::Timestamp,
) -> Result<Completion> {
    let mut tx = s.begin_write().await?;
    if !complete_in(&mut tx, item, ms(now)).await? {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    let done = sqlx::query("UPDATE calls SET analysis = $2, category = $3, summary = $4, extracted_fields = $5, updated_at = $6 WHERE call_id = $1")
        .bind(id.as_str())
        .bind(u.analysis.to_string())
        .bind(u.category.as_deref())
        .bind(u.summary.as_deref())
        .bind(serde_json::to_string(&u.extracted_fields).map_err(corrupt)?)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::NotFound);
    }
    crate::handoffs::write_plan(&mut tx, id, plan, now).await?;
    tx.commit().await?;
    Ok(Completion::Done)
}

pub(crate) async fn request_analysis(s: &SqlStore, id: &CallId, pending: &serde_json::Value, work: &NewWork, now: jiff::Timestamp) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let done = sqlx::query("UPDATE calls SET analysis = $2, updated_at = $3 WHERE call_id = $1")
        .bind(id.as_str())
        .bind(pending.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::NotFound);
    }
    insert_work(&mut tx, work, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn add_web_token(s: &SqlStore, call_id: &CallId, token_hash: &str, expires_at: jiff::Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO web_call_tokens (token_hash, call_id, expires_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(call_id.as_str())
        .bind(ms(expires_at))
        .execute(&s.pool)
        .await?;
    Ok(())
}

/// Use a token once: the call it opens, or why not. A token whose call is no longer waiting
/// for its browser (ended through the API, ...) is refused as `Expired`: it was revoked.
pub(crate) async fn use_web_token(s: &SqlStore, token_hash: &str, now: jiff::Timestamp) -> Result<std::result::Result<CallId, crate::TokenRefusal>> {
    let mut tx = s.begin_write().await?;
    let Some(r) = sqlx::query(
        "SELECT t.call_id, t.expires_at, t.used_at, c.status FROM web_call_tokens t LEFT JOIN calls c ON c.call_id = t.call_id WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?
    else {
        tx.rollback().await?;
        return Ok(Err(crate::TokenRefusal::Unknown));
    };
    let call_id = CallId::parse(&get::<String>(&r, "call_id")?).map_err(corrupt)?;
    if get::<Option<i64>>(&r, "used_at")?.is_some() {
        tx.rollback().await?;
        return Ok(Err(crate::TokenRefusal::AlreadyUsed));
    }
    let waiting = matches!(get::<Option<String>>(&r, "status")?.as_deref(), Some("registered" | "ringing"));
    if get::<i64>(&r, "expires_at")? < ms(now) || !waiting {
        tx.rollback().await?;
        return Ok(Err(crate::TokenRefusal::Expired));
    }
    let done = sqlx::query("UPDATE web_call_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
        .bind(token_hash)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Err(crate::TokenRefusal::AlreadyUsed));
    }
    tx.commit().await?;
    Ok(Ok(call_id))
}

/// The statuses a call may move to `to` from (the call state machine), as a SQL list:
/// `'registered', 'ringing'`. `None` for an unknown status or one nothing moves to.
fn predecessors(to: &str) -> Option<String> {
    let to: CallStatus = to.parse().ok()?;
    let from: Vec<String> = CallStatus::ALL.iter().filter(|s| s.can_become(to)).map(|s| format!("'{}'", s.as_str())).collect();
    (!from.is_empty()).then(|| from.join(", "))
}

/// Why a guarded status change changed nothing: the call is missing, or in a state it cannot
/// leave for `to`.
async fn refused_transition(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: &CallId, to: &str) -> Result<StoreError> {
    let r = sqlx::query("SELECT status FROM calls WHERE call_id = $1").bind(id.as_str()).fetch_optional(&mut **tx).await?;
    Ok(match r {
        None => StoreError::NotFound,
        Some(r) => {
            let from: String = get(&r, "status")?;
            let terminal = from.parse::<CallStatus>().is_ok_and(CallStatus::is_terminal);
            if terminal {
                StoreError::Conflict(format!("the call has already ended ({from}); it cannot become {}", to.chars().take(40).collect::<String>()))
            } else {
                StoreError::Conflict(format!("a call cannot go from {from} to {}", to.chars().take(40).collect::<String>()))
            }
        }
    })
}

/// Move a call along its states. Guarded in the statement itself: only from a status that
/// may become `status` (`registered → ringing → ongoing → ended`, or `not_connected` /
/// `error`), never back from a final one; otherwise `Conflict` and nothing changes.
pub(crate) async fn set_call_status(s: &SqlStore, id: &CallId, status: &str, started_at: Option<jiff::Timestamp>, event: &TimelineEvent) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let Some(from) = predecessors(status) else {
        let e = refused_transition(&mut tx, id, status).await?;
        tx.rollback().await?;
        return Err(e);
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET status = $2, started_at = COALESCE($3, started_at), updated_at = $4 WHERE call_id = $1 AND status IN ({from})"
    )))
    .bind(id.as_str())
    .bind(status)
    .bind(started_at.map(ms))
    .bind(ms(event.at))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        let e = refused_transition(&mut tx, id, status).await?;
        tx.rollback().await?;
        return Err(e);
    }
    append_events(&mut tx, id, std::slice::from_ref(event)).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn append_events(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: &CallId, events: &[TimelineEvent]) -> Result<()> {
    let r = sqlx::query("SELECT COALESCE(MAX(seq), -1) AS last FROM call_events WHERE call_id = $1").bind(id.as_str()).fetch_one(&mut **tx).await?;
    let first: i64 = get::<i64>(&r, "last")? + 1;
    for (seq, e) in (first..).zip(events.iter()) {
        sqlx::query("INSERT INTO call_events (call_id, seq, at, offset_ms, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.as_str())
            .bind(seq)
            .bind(ms(e.at))
            .bind(i64_of(e.offset_ms))
            .bind(&e.kind)
            .bind(&e.detail)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A live call ends: its final state, evidence and the work it causes, in one transaction.
/// The status change is guarded like [`set_call_status`] (a final status, from a status that
/// may become it); the call's unused web-call tokens are revoked with it.
pub(crate) async fn finish_live_call(s: &SqlStore, id: &CallId, f: &crate::FinishedCall, work: &[NewWork], now: jiff::Timestamp) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let final_status = f.status.parse::<CallStatus>().is_ok_and(CallStatus::is_terminal);
    let Some(from) = predecessors(&f.status).filter(|_| final_status) else {
        let e = refused_transition(&mut tx, id, &f.status).await?;
        tx.rollback().await?;
        return Err(match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!("{} is not a final call status", f.status.chars().take(40).collect::<String>())),
            other => other,
        });
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET status = $2, disconnection_reason = $3, started_at = COALESCE($4, started_at), ended_at = $5, duration_ms = $6, extracted_fields = $7, transfer = $8, recording = $9, \
         audio_cache_hits = $10, audio_cache_misses = $11, analysis = $12, updated_at = $13 WHERE call_id = $1 AND status IN ({from})"
    )))
    .bind(id.as_str())
    .bind(&f.status)
    .bind(&f.disconnection_reason)
    .bind(f.started_at.map(ms))
    .bind(ms(f.ended_at))
    .bind(i64_of(f.duration_ms))
    .bind(serde_json::to_string(&f.extracted_fields).map_err(corrupt)?)
    .bind(f.transfer.as_ref().map(|v| v.to_string()))
    .bind(serde_json::to_string(&f.recording).map_err(corrupt)?)
    .bind(i64_of(f.audio_cache_hits))
    .bind(i64_of(f.audio_cache_misses))
    .bind(f.analysis.as_ref().map(|v| v.to_string()))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        let e = refused_transition(&mut tx, id, &f.status).await?;
        tx.rollback().await?;
        return Err(e);
    }
    // A token not used yet can no longer open the call.
    sqlx::query("UPDATE web_call_tokens SET expires_at = $2 WHERE call_id = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(id.as_str())
        .bind(ms(now) - 1)
        .execute(&mut *tx)
        .await?;
    for t in &f.transcript {
        sqlx::query("INSERT INTO call_turns (call_id, turn_index, role, text, start_ms, end_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.as_str())
            .bind(i64::from(t.index))
            .bind(t.role.as_str())
            .bind(&t.text)
            .bind(i64_of(t.start_ms))
            .bind(i64_of(t.end_ms))
            .execute(&mut *tx)
            .await?;
    }
    append_events(&mut tx, id, &f.timeline).await?;
    for w in work {
        insert_work(&mut tx, w, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Close live calls left `ongoing` by a process that stopped: they become `error` with the
/// reason on their timeline. Only for a single node (the caller decides).
pub(crate) async fn sweep_interrupted(s: &SqlStore, now: jiff::Timestamp) -> Result<Vec<CallId>> {
    let mut tx = s.begin_write().await?;
    // Phone calls are not swept: the carrier knows how they ended, and reconciliation asks it.
    let rows = sqlx::query(
        "SELECT call_id FROM calls WHERE status = 'ongoing' AND entry_point IN ('web', 'inbound', 'outbound', 'batch', 'workflow') \
         AND call_id NOT IN (SELECT call_id FROM carrier_calls)",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut swept = vec![];
    for r in rows {
        let id = CallId::parse(&get::<String>(&r, "call_id")?).map_err(corrupt)?;
        sqlx::query("UPDATE calls SET status = 'error', disconnection_reason = 'error_internal', ended_at = $2, updated_at = $2 WHERE call_id = $1 AND status = 'ongoing'")
            .bind(id.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        let event = TimelineEvent {
            at: now,
            offset_ms: 0,
            kind: "interrupted".into(),
            detail: "the server stopped while the call was live; the call was closed at the next start and its live turns were lost".into(),
        };
        append_events(&mut tx, &id, std::slice::from_ref(&event)).await?;
        swept.push(id);
    }
    tx.commit().await?;
    Ok(swept)
}
