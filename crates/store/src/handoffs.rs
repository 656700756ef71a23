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
            insert_work(tx, w, now).await?;
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
    sqlx::query("SELECT attempt, at, status_code, error, latency_ms, exchanges FROM handoff_attempts WHERE handoff_id = $1 ORDER BY attempt")
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
            })
        })
        .collect()
}

/// Mark a handoff `sending` before its request goes out (so a crash leaves a trace).
pub(crate) async fn handoff_sending(s: &SqlStore, id: &str, now: jiff::Timestamp) -> Result<()> {
    sqlx::query("UPDATE handoffs SET status = 'sending', updated_at = $2 WHERE handoff_id = $1").bind(id).bind(ms(now)).execute(&s.pool).await?;
    Ok(())
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
    sqlx::query("INSERT INTO handoff_attempts (handoff_id, attempt, at, status_code, error, latency_ms, exchanges) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (handoff_id, attempt) DO NOTHING")
        .bind(id)
        .bind(i64::from(attempt.attempt))
        .bind(ms(attempt.at))
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
        .bind(attempt.exchanges.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE handoffs SET status = $2, reason = $3, external_id = COALESCE($4, external_id), external_url = COALESCE($5, external_url), evidence = COALESCE($6, evidence), \
         next_attempt_at = $7, attempts = $8, updated_at = $9 WHERE handoff_id = $1",
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
    sqlx::query("UPDATE handoffs SET status = $2, reason = $3, updated_at = $4 WHERE handoff_id = $1")
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
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

/// Send a handoff again (manual retry or an approved review): planned, with new work.
pub(crate) async fn requeue_handoff(s: &SqlStore, id: &str, allowed: &[&str], work: &NewWork, reason: &str, now: jiff::Timestamp) -> Result<HandoffRecord> {
    let mut tx = s.begin_write().await?;
    let r = sqlx::query("SELECT status FROM handoffs WHERE handoff_id = $1").bind(id).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
    let status: String = get(&r, "status")?;
    if !allowed.contains(&status.as_str()) {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the handoff is {status}")));
    }
    sqlx::query("UPDATE handoffs SET status = 'planned', reason = $2, next_attempt_at = NULL, updated_at = $3 WHERE handoff_id = $1")
        .bind(id)
        .bind(reason)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    insert_work(&mut tx, work, now).await?;
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

pub(crate) async fn list_reviews(s: &SqlStore, status: Option<&str>, call_id: Option<&CallId>, limit: u32) -> Result<Vec<ReviewItemRecord>> {
    let rows = match (status, call_id) {
        (_, Some(c)) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE call_id = $1 ORDER BY created_at, review_id LIMIT $2")))
                .bind(c.as_str())
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
        (Some(st), None) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE status = $1 ORDER BY created_at, review_id LIMIT $2")))
                .bind(st)
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
        (None, None) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items ORDER BY created_at, review_id LIMIT $1")))
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
    };
    rows.iter().map(review_from).collect()
}

/// Decide an open review item. Approving requeues its handoff (with `work`); rejecting skips it.
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
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE review_id = $1")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let item = review_from(&r)?;
    if item.status != "open" {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the review item is already {}", item.status)));
    }
    let status = if approve { "approved" } else { "rejected" };
    sqlx::query("UPDATE review_items SET status = $2, note = $3, decided_by = $4, decided_at = $5 WHERE review_id = $1")
        .bind(id)
        .bind(status)
        .bind(note)
        .bind(by)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    if let Some(h) = &item.handoff_id {
        if approve {
            let reason = format!("approved by {by}{}", note.map(|n| format!(": {n}")).unwrap_or_default());
            sqlx::query("UPDATE handoffs SET status = 'planned', reason = $2, updated_at = $3 WHERE handoff_id = $1 AND status = 'held_for_review'")
                .bind(h)
                .bind(&reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            if let Some(w) = work {
                insert_work(&mut tx, w, now).await?;
            }
        } else {
            let reason = format!("rejected by {by}{}", note.map(|n| format!(": {n}")).unwrap_or_default());
            sqlx::query("UPDATE handoffs SET status = 'skipped', reason = $2, updated_at = $3 WHERE handoff_id = $1 AND status = 'held_for_review'")
                .bind(h)
                .bind(&reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REVIEW_COLS} FROM review_items WHERE review_id = $1"))).bind(id).fetch_one(&s.pool).await?;
    review_from(&r)
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

pub(crate) async fn list_follow_ups(s: &SqlStore, kind: Option<&str>, status: Option<&str>, limit: u32) -> Result<Vec<FollowUpRecord>> {
    let k = kind.unwrap_or("%");
    let st = status.unwrap_or("%");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FOLLOW_COLS} FROM follow_ups WHERE kind LIKE $1 AND status LIKE $2 ORDER BY created_at, follow_up_id LIMIT $3"
    )))
    .bind(k)
    .bind(st)
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await?
    .iter()
    .map(follow_from)
    .collect()
}

pub(crate) async fn complete_follow_up(s: &SqlStore, id: &str, note: Option<&str>, now: jiff::Timestamp) -> Result<FollowUpRecord> {
    let mut tx = s.begin_write().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FOLLOW_COLS} FROM follow_ups WHERE follow_up_id = $1")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut f = follow_from(&r)?;
    if f.status != "open" {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!("the follow-up is already {}", f.status)));
    }
    if let (Some(n), serde_json::Value::Object(m)) = (note, &mut f.detail) {
        m.insert("completion_note".into(), serde_json::Value::String(n.to_owned()));
    }
    sqlx::query("UPDATE follow_ups SET status = 'done', completed_at = $2, detail = $3 WHERE follow_up_id = $1")
        .bind(id)
        .bind(ms(now))
        .bind(f.detail.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FOLLOW_COLS} FROM follow_ups WHERE follow_up_id = $1"))).bind(id).fetch_one(&s.pool).await?;
    follow_from(&r)
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
/// caller email or phone and the category: the record to update instead of creating anew.
pub(crate) async fn recent_match(
    s: &SqlStore,
    integration_id: &str,
    action: &str,
    category: &str,
    keys: &[String],
    exclude: &CallId,
    since: jiff::Timestamp,
) -> Result<Option<HandoffRecord>> {
    if keys.is_empty() {
        return Ok(None);
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
    for r in rows {
        let h = handoff_from(&r)?;
        let theirs = crate::handoffs::match_keys(&h.payload);
        if theirs.iter().any(|k| keys.contains(k)) {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// The keys two calls are matched on: customer, caller email and phone (lower-cased).
pub fn match_keys(payload: &serde_json::Value) -> Vec<String> {
    let caller = &payload["caller"];
    ["customer", "email", "phone"]
        .iter()
        .filter_map(|k| caller.get(*k).and_then(|v| v.as_str()).filter(|v| !v.trim().is_empty()).map(|v| format!("{k}:{}", v.trim().to_lowercase())))
        .collect()
}
