//! Integrations, handoffs and their attempts, review items, follow-ups, recurring reasons.
//!
//! Exactly once in effect starts here: a handoff's idempotency key (call + integration +
//! action) is unique, planned handoffs commit with the analysis that decided them, and each
//! delivery attempt is written in the same transaction as its fenced queue step.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use dialnexa_core::CallId;

use crate::db::{SqlStore, conflict_on_unique, get, json, ms, ts, ts_opt, u32_of};
use crate::queue::{Claimed, Completion, NewWork, fence_holds, insert_work};
use crate::{
    FollowUpRecord, HandoffAttemptRecord, HandoffFilter, HandoffRecord, HandoffResult, IntegrationRecord, Plan, QueueStep, RecurringReason, Result,
    ReviewItemRecord, StoreError,
};

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const INTEGRATION_COLS: &str = "integration_id, kind, name, config, rules, active, created_at, updated_at";

fn integration_from(r: &AnyRow) -> Result<IntegrationRecord> {
    Ok(IntegrationRecord {
        integration_id: get(r, "integration_id")?,
        kind: get(r, "kind")?,
        name: get(r, "name")?,
        config: json(&get::<String>(r, "config")?, "config")?,
        rules: json(&get::<String>(r, "rules")?, "rules")?,
        active: get::<i64>(r, "active")? != 0,
        created_at: ts(get(r, "created_at")?)?,
        updated_at: ts(get(r, "updated_at")?)?,
    })
}

pub(crate) async fn create_integration(s: &SqlStore, i: &IntegrationRecord) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO integrations ({INTEGRATION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")))
        .bind(&i.integration_id)
        .bind(&i.kind)
        .bind(&i.name)
        .bind(i.config.to_string())
        .bind(i.rules.to_string())
        .bind(i64::from(i.active))
        .bind(ms(i.created_at))
        .bind(ms(i.updated_at))
        .execute(&s.pool)
        .await
        .map_err(|e| conflict_on_unique(e, "integration already exists"))?;
    Ok(())
}

pub(crate) async fn list_integrations(s: &SqlStore) -> Result<Vec<IntegrationRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {INTEGRATION_COLS} FROM integrations ORDER BY created_at, integration_id")))
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(integration_from)
        .collect()
}

pub(crate) async fn get_integration(s: &SqlStore, id: &str) -> Result<IntegrationRecord> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {INTEGRATION_COLS} FROM integrations WHERE integration_id = $1")))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    integration_from(&r)
}

/// Write a plan inside the analysis transaction. A handoff whose key exists already (a
/// re-analysis) keeps its first state: nothing is planned twice.
pub(crate) async fn write_plan(tx: &mut Transaction<'static, Any>, call_id: &CallId, plan: &Plan, now: jiff::Timestamp) -> Result<()> {
    let now_ms = ms(now);
    for p in &plan.handoffs {
        let h = &p.handoff;
        let done = sqlx::query(
            "INSERT INTO handoffs (handoff_id, call_id, integration_id, integration_kind, action, idempotency_key, status, reason, payload, attempts, evidence, phase, rule_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, '{}', $10, $11, $12, $12) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&h.handoff_id)
        .bind(h.call_id.as_str())
        .bind(&h.integration_id)
        .bind(&h.integration_kind)
        .bind(&h.action)
        .bind(&h.idempotency_key)
        .bind(&h.status)
        .bind(&h.reason)
        .bind(h.payload.to_string())
        .bind(h.phase)
        .bind(h.rule_name.as_deref())
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            continue;
        }
        if let Some(r) = &p.review {
            sqlx::query(
                "INSERT INTO review_items (review_id, call_id, handoff_id, reason, detail, status, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6)",
            )
            .bind(&r.review_id)
            .bind(call_id.as_str())
            .bind(&h.handoff_id)
            .bind(&r.reason)
            .bind(&r.detail)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
        }
        if let Some(w) = &p.work {
            let inserted = insert_work(tx, w, now).await?;
            link_work(tx, &h.handoff_id, inserted).await?;
        }
    }
    for f in &plan.follow_ups {
        sqlx::query(
            "INSERT INTO follow_ups (follow_up_id, call_id, kind, status, detail, due_at, created_at, follow_up_key) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7) ON CONFLICT (follow_up_key) DO NOTHING",
        )
        .bind(&f.follow_up_id)
        .bind(call_id.as_str())
        .bind(&f.kind)
        .bind(f.detail.to_string())
        .bind(f.due_at.map(ms))
        .bind(now_ms)
        .bind(&f.key)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(k) = &plan.reason_key {
        sqlx::query("UPDATE calls SET reason_key = $2 WHERE call_id = $1").bind(call_id.as_str()).bind(k).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Record which work item carries the handoff now (at most one live item per handoff).
async fn link_work(tx: &mut Transaction<'static, Any>, handoff_id: &str, work_item_id: Option<String>) -> Result<()> {
    if let Some(w) = work_item_id {
        sqlx::query("UPDATE handoffs SET work_item_id = $2 WHERE handoff_id = $1").bind(handoff_id).bind(w).execute(&mut **tx).await?;
    }
    Ok(())
}

const HANDOFF_COLS: &str = "handoff_id, call_id, integration_id, integration_kind, action, idempotency_key, status, reason, payload, attempts, next_attempt_at, external_id, external_url, evidence, phase, rule_name, created_at, updated_at";

fn handoff_from(r: &AnyRow) -> Result<HandoffRecord> {
    Ok(HandoffRecord {
        handoff_id: get(r, "handoff_id")?,
        call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
        integration_id: get(r, "integration_id")?,
        integration_kind: get::<Option<String>>(r, "integration_kind")?.unwrap_or_default(),
        action: get(r, "action")?,
        idempotency_key: get(r, "idempotency_key")?,
        status: get(r, "status")?,
        reason: get(r, "reason")?,
        payload: get::<Option<String>>(r, "payload")?.map(|p| json(&p, "payload")).transpose()?.unwrap_or_default(),
        attempts: u32_of(get::<Option<i64>>(r, "attempts")?.unwrap_or(0), "attempts")?,
        next_attempt_at: ts_opt(get(r, "next_attempt_at")?)?,
        external_id: get(r, "external_id")?,
        external_url: get(r, "external_url")?,
        evidence: get::<Option<String>>(r, "evidence")?.map(|p| json(&p, "evidence")).transpose()?.unwrap_or_default(),
        phase: get::<Option<i64>>(r, "phase")?.unwrap_or(1),
        rule_name: get(r, "rule_name")?,
        created_at: ts(get(r, "created_at")?)?,
        updated_at: ts(get(r, "updated_at")?)?,
    })
}

pub(crate) async fn get_handoff(s: &SqlStore, id: &str) -> Result<HandoffRecord> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {HANDOFF_COLS} FROM handoffs WHERE handoff_id = $1")))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    handoff_from(&r)
}

pub(crate) async fn list_handoffs(s: &SqlStore, f: &HandoffFilter, after: Option<&(i64, String)>, limit: u32) -> Result<Vec<HandoffRecord>> {
    let mut conds: Vec<String> = vec![];
    let mut binds: Vec<String> = vec![];
    let mut push = |cond: &str, v: String, binds: &mut Vec<String>| {
        binds.push(v);
        conds.push(cond.replace('?', &format!("${}", binds.len())));
    };
    if let Some(c) = &f.call_id {
        push("call_id = ?", c.to_string(), &mut binds);
    }
    if let Some(st) = &f.status {
        push("status = ?", st.clone(), &mut binds);
    }
    if let Some(i) = &f.integration_id {
        push("integration_id = ?", i.clone(), &mut binds);
    }
    let mut int_binds: Vec<i64> = vec![];
    if let Some((at, id)) = after {
        let a = binds.len() + int_binds.len() + 1;
        // Bind order: text binds first, then the cursor's time, then its id.
        int_binds.push(*at);
        binds.push(id.clone());
        conds.push(format!("(created_at, handoff_id) > (${a}, ${})", a + 1));
    }
    let where_clause = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let lim = binds.len() + int_binds.len() + 1;
    let sql = format!("SELECT {HANDOFF_COLS} FROM handoffs {where_clause} ORDER BY created_at, handoff_id LIMIT ${lim}");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    let text_before_cursor = if after.is_some() { binds.len() - 1 } else { binds.len() };
    for b in &binds[..text_before_cursor] {
        q = q.bind(b.clone());
    }
    if let Some(at) = int_binds.first() {
        q = q.bind(*at);
        q = q.bind(binds[binds.len() - 1].clone());
    }
    q = q.bind(i64::from(limit));
    q.fetch_all(&s.pool).await?.iter().map(handoff_from).collect()
}

pub(crate) async fn handoff_attempts(s: &SqlStore, id: &str) -> Result<Vec<HandoffAttemptRecord>> {
    sqlx::query(
        "SELECT attempt, at, status_code, error, latency_ms, exchanges, rate_limited, retry_after_ms, note FROM handoff_attempts WHERE handoff_id = $1 ORDER BY attempt",
    )
        .bind(id)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HandoffAttemptRecord {
                attempt: u32_of(get(r, "attempt")?, "attempt")?,
                at: ts(get(r, "at")?)?,
                status_code: get::<Option<i64>>(r, "status_code")?.and_then(|c| u16::try_from(c).ok()),
                error: get(r, "error")?,
                latency_ms: u64::try_from(get::<i64>(r, "latency_ms")?).unwrap_or(0),
                exchanges: json(&get::<String>(r, "exchanges")?, "exchanges")?,
                rate_limited: get::<i64>(r, "rate_limited")? != 0,
                retry_after_ms: get::<Option<i64>>(r, "retry_after_ms")?.and_then(|v| u64::try_from(v).ok()),
                note: get(r, "note")?,
            })
        })
        .collect()
}

/// Mark a handoff `sending` before its request goes out (so a crash leaves a trace), under
/// the work item's fence: `false` when the lease was lost or the handoff was settled
/// meanwhile, and then nothing may be sent.
pub(crate) async fn handoff_sending(s: &SqlStore, item: &Claimed, id: &str, now: jiff::Timestamp) -> Result<bool> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    if !fence_holds(&mut tx, s.backend, item, now_ms).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let done = sqlx::query("UPDATE handoffs SET status = 'sending', updated_at = $2 WHERE handoff_id = $1 AND status IN ('planned', 'retrying', 'sending')")
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Record an attempt, update the handoff and take the queue step, in one fenced transaction.
pub(crate) async fn finish_delivery(
    s: &SqlStore,
    item: &Claimed,
    id: &str,
    attempt: &HandoffAttemptRecord,
    result: &HandoffResult,
    step: &QueueStep,
    now: jiff::Timestamp,
) -> Result<Completion> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    if !fence_holds(&mut tx, s.backend, item, now_ms).await? {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    let completion = crate::queue::step_in(&mut tx, item, step, now_ms).await?;
    if completion == Completion::Stale {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    sqlx::query(
        "INSERT INTO handoff_attempts (handoff_id, attempt, at, status_code, error, latency_ms, exchanges, rate_limited, retry_after_ms, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (handoff_id, attempt) DO NOTHING",
    )
    .bind(id)
    .bind(i64::from(attempt.attempt))
    .bind(ms(attempt.at))
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.error.as_deref())
    .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
    .bind(attempt.exchanges.to_string())
    .bind(i64::from(attempt.rate_limited))
    .bind(attempt.retry_after_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
    .bind(attempt.note.as_deref())
    .execute(&mut *tx)
    .await?;
    // Only from `sending`: the transition this attempt began with `handoff_sending`.
    let done = sqlx::query(
        "UPDATE handoffs SET status = $2, reason = $3, external_id = COALESCE($4, external_id), external_url = COALESCE($5, external_url), evidence = COALESCE($6, evidence), \
         next_attempt_at = $7, attempts = $8, updated_at = $9 WHERE handoff_id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(&result.status)
    .bind(result.reason.as_deref())
    .bind(result.external_id.as_deref())
    .bind(result.external_url.as_deref())
    .bind(result.evidence.as_ref().map(|e| e.to_string()))
    .bind(result.next_attempt_at.map(ms))
    .bind(i64::from(attempt.attempt))
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    tx.commit().await?;
    Ok(completion)
}

#[allow(clippy::too_many_arguments)]
/// Settle a handoff without an attempt (held for review, skipped at send time), completing
/// its work item in the same fenced transaction.
pub(crate) async fn settle_handoff(
    s: &SqlStore,
    item: &Claimed,
    id: &str,
    status: &str,
    reason: &str,
    review: Option<&crate::NewReview>,
    call_id: &CallId,
    now: jiff::Timestamp,
) -> Result<Completion> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    if !crate::queue::complete_in(&mut tx, item, now_ms).await? {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    let done = sqlx::query(
        "UPDATE handoffs SET status = $2, reason = $3, next_attempt_at = NULL, updated_at = $4 WHERE handoff_id = $1 AND status IN ('planned', 'retrying', 'sending')",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        // Settled by someone else meanwhile: the item is done, the handoff keeps its state.
        tx.commit().await?;
        return Ok(Completion::Done);
    }
    if let Some(r) = review {
        sqlx::query("INSERT INTO review_items (review_id, call_id, handoff_id, reason, detail, status, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6)")
            .bind(&r.review_id)
            .bind(call_id.as_str())
            .bind(id)
            .bind(&r.reason)
            .bind(&r.detail)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Completion::Done)
}

/// Send a handoff again (manual retry): planned, with new work. At most one work item ever
/// carries a handoff: while one is queued the retry joins it (it runs now); while one is
/// running the retry is refused (`InProgress`).
pub(crate) async fn requeue_handoff(s: &SqlStore, id: &str, allowed: &[&str], work: &NewWork, reason: &str, now: jiff::Timestamp) -> Result<HandoffRecord> {
    let mut tx = s.begin_write().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT status, work_item_id FROM handoffs WHERE handoff_id = $1{}", s.backend.for_update())))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let status: String = get(&r, "status")?;
    let current: Option<String> = get(&r, "work_item_id")?;
    if let Some(w) = &current {
        let live =
            sqlx::query("SELECT state, run_at FROM work_items WHERE id = $1 AND state IN ('queued', 'running')").bind(w).fetch_optional(&mut *tx).await?;
        if let Some(live) = live {
            let state: String = get(&live, "state")?;
            if state == "running" {
                tx.rollback().await?;
                return Err(StoreError::InProgress(format!("the handoff is {status} and is being delivered right now")));
            }
            // Queued (a scheduled retry): the retry joins that item and brings it forward.
            sqlx::query("UPDATE work_items SET run_at = $2, updated_at = $2 WHERE id = $1 AND state = 'queued'")
                .bind(w)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE handoffs SET reason = COALESCE(reason, '') || '. ' || $2, next_attempt_at = $3, updated_at = $3 WHERE handoff_id = $1")
                .bind(id)
                .bind(format!("{reason}: the queued attempt runs now"))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return get_handoff(s, id).await;
        }
    }
    if !allowed.contains(&status.as_str()) {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the handoff is {status}")));
    }
    let done =
        sqlx::query("UPDATE handoffs SET status = 'planned', reason = $2, next_attempt_at = NULL, updated_at = $3 WHERE handoff_id = $1 AND status = $4")
            .bind(id)
            .bind(reason)
            .bind(ms(now))
            .bind(&status)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::Conflict("the handoff changed meanwhile; try again".into()));
    }
    let inserted = insert_work(&mut tx, work, now).await?;
    link_work(&mut tx, id, inserted).await?;
    tx.commit().await?;
    get_handoff(s, id).await
}

const REVIEW_COLS: &str = "review_id, call_id, handoff_id, reason, detail, status, note, decided_by, decided_at, created_at";

fn review_from(r: &AnyRow) -> Result<ReviewItemRecord> {
    Ok(ReviewItemRecord {
        review_id: get(r, "review_id")?,
        call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
        handoff_id: get(r, "handoff_id")?,
        reason: get(r, "reason")?,
        detail: get(r, "detail")?,
        status: get(r, "status")?,
        note: get(r, "note")?,
        decided_by: get(r, "decided_by")?,
        decided_at: ts_opt(get(r, "decided_at")?)?,
        created_at: ts(get(r, "created_at")?)?,
    })
}

pub(crate) async fn get_review(s: &SqlStore, id: &str) -> Result<ReviewItemRecord> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE review_id = $1")))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    review_from(&r)
}

/// Review items oldest first, after the keyset cursor `(created_at ms, review_id)`.
pub(crate) async fn list_reviews(
    s: &SqlStore,
    status: Option<&str>,
    call_id: Option<&CallId>,
    after: Option<&(i64, String)>,
    limit: u32,
) -> Result<Vec<ReviewItemRecord>> {
    // Empty strings match everything: one statement for every combination of filters.
    let sql = format!(
        "SELECT {REVIEW_COLS} FROM review_items WHERE ($1 = '' OR status = $1) AND ($2 = '' OR call_id = $2) \
         AND (created_at > $3 OR (created_at = $3 AND review_id > $4)) ORDER BY created_at, review_id LIMIT $5"
    );
    let (at, after_id) = after.cloned().unwrap_or((i64::MIN, String::new()));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status.unwrap_or(""))
        .bind(call_id.map(|c| c.as_str()).unwrap_or(""))
        .bind(at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(review_from)
        .collect()
}

/// Decide an open review item. Approving requeues its handoff (with `work`); rejecting
/// skips it. Each change is a guarded transition: a second decision, or one racing the
/// first from another node, is refused and changes nothing.
pub(crate) async fn decide_review(
    s: &SqlStore,
    id: &str,
    approve: bool,
    note: Option<&str>,
    by: &str,
    work: Option<&NewWork>,
    now: jiff::Timestamp,
) -> Result<ReviewItemRecord> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE review_id = $1{}", s.backend.for_update())))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let item = review_from(&r)?;
    let status = if approve { "approved" } else { "rejected" };
    let done = sqlx::query("UPDATE review_items SET status = $2, note = $3, decided_by = $4, decided_at = $5 WHERE review_id = $1 AND status = 'open'")
        .bind(id)
        .bind(status)
        .bind(note)
        .bind(by)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the review item is already {}", item.status)));
    }
    if let Some(h) = &item.handoff_id {
        let (to, verb) = if approve { ("planned", "approved") } else { ("skipped", "rejected") };
        let reason = format!("{verb} by {by}{}", note.map(|n| format!(": {n}")).unwrap_or_default());
        let moved = sqlx::query("UPDATE handoffs SET status = $2, reason = $3, updated_at = $4 WHERE handoff_id = $1 AND status = 'held_for_review'")
            .bind(h)
            .bind(to)
            .bind(&reason)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        if approve
            && moved.rows_affected() == 1
            && let Some(w) = work
        {
            let inserted = insert_work(&mut tx, w, now).await?;
            link_work(&mut tx, h, inserted).await?;
        }
    }
    tx.commit().await?;
    get_review(s, id).await
}

const FOLLOW_COLS: &str = "follow_up_id, call_id, kind, status, detail, due_at, created_at, completed_at";

fn follow_from(r: &AnyRow) -> Result<FollowUpRecord> {
    Ok(FollowUpRecord {
        follow_up_id: get(r, "follow_up_id")?,
        call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
        kind: get(r, "kind")?,
        status: get(r, "status")?,
        detail: json(&get::<String>(r, "detail")?, "detail")?,
        due_at: ts_opt(get(r, "due_at")?)?,
        created_at: ts(get(r, "created_at")?)?,
        completed_at: ts_opt(get(r, "completed_at")?)?,
    })
}

/// Follow-ups oldest first, after the keyset cursor `(created_at ms, follow_up_id)`.
pub(crate) async fn list_follow_ups(
    s: &SqlStore,
    kind: Option<&str>,
    status: Option<&str>,
    after: Option<&(i64, String)>,
    limit: u32,
) -> Result<Vec<FollowUpRecord>> {
    let (at, after_id) = after.cloned().unwrap_or((i64::MIN, String::new()));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FOLLOW_COLS} FROM follow_ups WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR status = $2) \
         AND (created_at > $3 OR (created_at = $3 AND follow_up_id > $4)) ORDER BY created_at, follow_up_id LIMIT $5"
    )))
    .bind(kind.unwrap_or(""))
    .bind(status.unwrap_or(""))
    .bind(at)
    .bind(after_id)
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await?
    .iter()
    .map(follow_from)
    .collect()
}

pub(crate) async fn get_follow_up(s: &SqlStore, id: &str) -> Result<FollowUpRecord> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FOLLOW_COLS} FROM follow_ups WHERE follow_up_id = $1")))
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    follow_from(&r)
}

/// Close an open follow-up and plan what that sets off (the owner told, webhooks), in one
/// transaction: either both happen or neither, and a second completion is refused.
pub(crate) async fn complete_follow_up(s: &SqlStore, id: &str, note: Option<&str>, plan: &Plan, now: jiff::Timestamp) -> Result<FollowUpRecord> {
    let mut tx = s.begin_write().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FOLLOW_COLS} FROM follow_ups WHERE follow_up_id = $1{}", s.backend.for_update())))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut f = follow_from(&r)?;
    if let (Some(n), serde_json::Value::Object(m)) = (note, &mut f.detail) {
        m.insert("completion_note".into(), serde_json::Value::String(n.to_owned()));
    }
    let done = sqlx::query("UPDATE follow_ups SET status = 'done', completed_at = $2, detail = $3 WHERE follow_up_id = $1 AND status = 'open'")
        .bind(id)
        .bind(ms(now))
        .bind(f.detail.to_string())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the follow-up is already {}", f.status)));
    }
    write_plan(&mut tx, &f.call_id, plan, now).await?;
    tx.commit().await?;
    get_follow_up(s, id).await
}

pub(crate) async fn recurring(s: &SqlStore, since: jiff::Timestamp, limit: u32) -> Result<Vec<RecurringReason>> {
    let rows = sqlx::query("SELECT reason_key, COUNT(*) AS n FROM calls WHERE reason_key IS NOT NULL AND created_at >= $1 GROUP BY reason_key ORDER BY n DESC, reason_key LIMIT $2")
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(&s.pool)
        .await?;
    let mut out = vec![];
    for r in rows {
        let reason: String = get(&r, "reason_key")?;
        let count: i64 = get(&r, "n")?;
        let examples = sqlx::query("SELECT call_id FROM calls WHERE reason_key = $1 AND created_at >= $2 ORDER BY created_at DESC, call_id DESC LIMIT 5")
            .bind(&reason)
            .bind(ms(since))
            .fetch_all(&s.pool)
            .await?
            .iter()
            .map(|r| get::<String>(r, "call_id"))
            .collect::<Result<Vec<_>>>()?;
        out.push(RecurringReason { reason, count: u64::try_from(count).unwrap_or(0), example_call_ids: examples });
    }
    Ok(out)
}

/// Recent sent handoffs of this integration and action for calls that share the customer,
/// caller email or phone and the category, newest first: the candidates a repeat may add
/// to (the handoff policy decides whether it is the same issue).
pub(crate) async fn recent_match(
    s: &SqlStore,
    integration_id: &str,
    action: &str,
    category: &str,
    keys: &[String],
    exclude: &CallId,
    since: jiff::Timestamp,
) -> Result<Vec<HandoffRecord>> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!(
        "SELECT {} FROM handoffs h JOIN calls c ON c.call_id = h.call_id \
         WHERE h.integration_id = $1 AND h.action = $2 AND h.status IN ('sent', 'deduplicated') AND c.category = $3 AND c.call_id <> $4 AND c.created_at >= $5 \
         ORDER BY h.created_at DESC LIMIT 200",
        HANDOFF_COLS.split(", ").map(|c| format!("h.{c}")).collect::<Vec<_>>().join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(integration_id)
        .bind(action)
        .bind(category)
        .bind(exclude.as_str())
        .bind(ms(since))
        .fetch_all(&s.pool)
        .await?;
    let mut out = vec![];
    for r in rows {
        let h = handoff_from(&r)?;
        let theirs = crate::handoffs::match_keys(&h.payload);
        if theirs.iter().any(|k| keys.contains(k)) {
            out.push(h);
        }
    }
    Ok(out)
}

/// The keys two calls are matched on: customer, caller email and phone (lower-cased).
pub fn match_keys(payload: &serde_json::Value) -> Vec<String> {
    let caller = &payload["caller"];
    ["customer", "email", "phone"]
        .iter()
        .filter_map(|k| caller.get(*k).and_then(|v| v.as_str()).filter(|v| !v.trim().is_empty()).map(|v| format!("{k}:{}", v.trim().to_lowercase())))
        .collect()
}
