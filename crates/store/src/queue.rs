//! The durable work queue (DESIGN.md §3).
//!
//! Work lives in the same database as the calls and is written in the same transaction as
//! the change that causes it. A claim takes a lease and bumps the item's fencing number
//! (`lease_seq`); completions, failures and heartbeats only count when they carry the
//! current fencing number, so a worker whose lease expired and was rescued changes nothing.
//! Every attempt is kept in `work_attempts`.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::db::{Backend, SqlStore, get, json, ms, ts, ts_opt, u32_of};
use crate::{Result, StoreError, WorkAttemptRecord, WorkItemRecord};

/// Work to enqueue.
#[derive(Debug, Clone)]
pub struct NewWork {
    pub kind: String,
    pub payload: serde_json::Value,
    /// At most one item per key, ever: a second enqueue with the same key does nothing.
    pub dedup_key: Option<String>,
    pub max_attempts: u32,
    /// Run no earlier than this (now when `None`).
    pub run_at: Option<jiff::Timestamp>,
}

/// An item held under a lease.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    /// This attempt's number against `max_attempts`, from 1 (attempts that did not count,
    /// such as waits and rate limits, are not in it).
    pub attempt: u32,
    /// Every time the item was claimed, this one included: the number of its attempt record.
    pub tries: u32,
    pub max_attempts: u32,
    /// The fencing number of this lease.
    pub lease_seq: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// Will run again at this time.
    Retrying {
        at: jiff::Timestamp,
    },
    /// Retries ran out.
    Dead,
    /// Not worth retrying.
    Failed,
    /// The lease was lost (expired and rescued, or already finished): nothing changed.
    Stale,
}

#[derive(Debug, Clone)]
pub struct WorkFailure {
    pub error: String,
    pub retryable: bool,
    /// The service's `Retry-After`: obeyed as it is, up to the schedule's maximum.
    pub retry_after: Option<Duration>,
}

pub use dialnexa_core::retry::{RetryDelay, RetryHint, RetrySchedule};

/// Insert `w` unless its dedup key exists; the new item's id when it was inserted.
pub(crate) async fn insert_work(tx: &mut Transaction<'static, Any>, w: &NewWork, now: jiff::Timestamp) -> Result<Option<String>> {
    let id = dialnexa_core::WorkItemId::generate();
    let sql = "INSERT INTO work_items (id, kind, payload, dedup_key, state, attempts, max_attempts, run_at, lease_seq, created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, 0, $7, $7) ON CONFLICT (dedup_key) DO NOTHING";
    let done = sqlx::query(sql)
        .bind(id.as_str())
        .bind(&w.kind)
        .bind(w.payload.to_string())
        .bind(w.dedup_key.as_deref())
        .bind(i64::from(w.max_attempts.max(1)))
        .bind(ms(w.run_at.unwrap_or(now)))
        .bind(ms(now))
        .execute(&mut **tx)
        .await?;
    Ok((done.rows_affected() == 1).then(|| id.as_str().to_owned()))
}

pub(crate) async fn enqueue(s: &SqlStore, work: &[NewWork], now: jiff::Timestamp) -> Result<usize> {
    let mut tx = s.begin_write().await?;
    let mut n = 0;
    for w in work {
        n += usize::from(insert_work(&mut tx, w, now).await?.is_some());
    }
    tx.commit().await?;
    Ok(n)
}

fn claimed_from(r: &AnyRow) -> Result<Claimed> {
    let tries = u32_of(get(r, "attempts")?, "attempts")?;
    let free = u32_of(get(r, "free_attempts")?, "free_attempts")?;
    Ok(Claimed {
        id: get(r, "id")?,
        kind: get(r, "kind")?,
        payload: json(&get::<String>(r, "payload")?, "payload")?,
        attempt: tries.saturating_sub(free).max(1),
        tries,
        max_attempts: u32_of(get(r, "max_attempts")?, "max_attempts")?,
        lease_seq: get(r, "lease_seq")?,
    })
}

fn kinds_list(kinds: &[&str], first: usize) -> String {
    (0..kinds.len()).map(|i| format!("${}", first + i)).collect::<Vec<_>>().join(", ")
}

/// The reason a handoff gets when its work item dies of a lost lease.
const LOST_LEASE_DEAD: &str = "dead: the last delivery attempt lost its lease (the worker crashed or hung) and no attempts are left";

/// Expired leases: the attempt is recorded as lost and the item goes back to the queue,
/// or to `dead` when it has no attempts left (and a handoff it carried with it).
///
/// Lock order, here and on every finish path: the work item, then its attempts, then the
/// handoff. Rows another transaction holds are skipped, not waited for (their holder is
/// finishing them), so a late finisher and a rescuer never wait on each other in a cycle.
async fn rescue(tx: &mut Transaction<'static, Any>, backend: Backend, now: i64) -> Result<()> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE work_items SET state = CASE WHEN attempts - free_attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
         last_error = 'lease expired', lease_owner = NULL, lease_expires_at = NULL, run_at = $1, updated_at = $1, \
         finished_at = CASE WHEN attempts - free_attempts >= max_attempts THEN $1 ELSE NULL END \
         WHERE id IN (SELECT id FROM work_items WHERE state = 'running' AND lease_expires_at < $1 ORDER BY id{lock}) \
         RETURNING id, lease_seq, state"
    )))
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let mut rescued: Vec<(String, i64, String)> =
        rows.iter().map(|r| Ok((get::<String>(r, "id")?, get::<i64>(r, "lease_seq")?, get::<String>(r, "state")?))).collect::<Result<_>>()?;
    rescued.sort();
    for (id, seq, state) in &rescued {
        sqlx::query(
            "UPDATE work_attempts SET outcome = 'lease_expired', finished_at = $3, error = 'the worker lost its lease (crashed or hung)' \
             WHERE item_id = $1 AND lease_seq = $2 AND outcome IS NULL",
        )
        .bind(id)
        .bind(seq)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if state == "dead" {
            sqlx::query(
                "UPDATE handoffs SET status = 'dead', reason = COALESCE(reason, '') || '. ' || $2, next_attempt_at = NULL, updated_at = $3 \
                 WHERE work_item_id = $1 AND status IN ('planned', 'sending', 'retrying')",
            )
            .bind(id)
            .bind(LOST_LEASE_DEAD)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn claim(s: &SqlStore, kinds: &[&str], worker: &str, limit: u32, lease: Duration, now: jiff::Timestamp) -> Result<Vec<Claimed>> {
    if kinds.is_empty() || limit == 0 {
        return Ok(vec![]);
    }
    let now_ms = ms(now);
    let expires = now_ms + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = s.begin_write().await?;
    rescue(&mut tx, s.backend, now_ms).await?;
    let set = "state = 'running', attempts = attempts + 1, lease_seq = lease_seq + 1, lease_owner = $1, lease_expires_at = $2, updated_at = $3";
    let sql = match s.backend {
        // One writer at a time (BEGIN IMMEDIATE), so the subquery and update are atomic.
        Backend::Sqlite => format!(
            "UPDATE work_items SET {set} WHERE id IN (SELECT id FROM work_items WHERE state = 'queued' AND run_at <= $3 AND kind IN ({}) ORDER BY run_at, id LIMIT $4) \
             RETURNING id, kind, payload, attempts, free_attempts, max_attempts, lease_seq",
            kinds_list(kinds, 5)
        ),
        // Concurrent claimers skip each other's locked rows instead of waiting.
        Backend::Postgres => format!(
            "UPDATE work_items SET {set} WHERE id IN (SELECT id FROM work_items WHERE state = 'queued' AND run_at <= $3 AND kind IN ({}) ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, free_attempts, max_attempts, lease_seq",
            kinds_list(kinds, 5)
        ),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(worker).bind(expires).bind(now_ms).bind(i64::from(limit));
    for k in kinds {
        q = q.bind(*k);
    }
    let mut claimed = q.fetch_all(&mut *tx).await?.iter().map(claimed_from).collect::<Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    for c in &claimed {
        sqlx::query("INSERT INTO work_attempts (item_id, attempt, lease_seq, worker, started_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&c.id)
            .bind(i64::from(c.tries))
            .bind(c.lease_seq)
            .bind(worker)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

pub(crate) async fn heartbeat(s: &SqlStore, c: &Claimed, lease: Duration, now: jiff::Timestamp) -> Result<bool> {
    let expires = ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    let done = sqlx::query(
        "UPDATE work_items SET lease_expires_at = $3, updated_at = $4 WHERE id = $1 AND state = 'running' AND lease_seq = $2 AND lease_expires_at >= $4",
    )
    .bind(&c.id)
    .bind(c.lease_seq)
    .bind(expires)
    .bind(ms(now))
    .execute(&s.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn finish_attempt(tx: &mut Transaction<'static, Any>, c: &Claimed, outcome: &str, error: Option<&str>, now: i64) -> Result<()> {
    sqlx::query("UPDATE work_attempts SET outcome = $3, error = $4, finished_at = $5 WHERE item_id = $1 AND lease_seq = $2")
        .bind(&c.id)
        .bind(c.lease_seq)
        .bind(outcome)
        .bind(error)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The fence: the item must still be running under this very lease, and the lease must not
/// have run out (an expired lease may be rescued at any moment; its holder must stop).
const FENCE: &str = "id = $1 AND state = 'running' AND lease_seq = $2 AND lease_expires_at >= $3";

/// Whether `c` still holds its lease (inside `tx`, which then owns the row for SQLite's
/// single writer; on PostgreSQL the row is locked until the transaction ends).
pub(crate) async fn fence_holds(tx: &mut Transaction<'static, Any>, backend: Backend, c: &Claimed, now_ms: i64) -> Result<bool> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM work_items WHERE {FENCE}{}", backend.for_update())))
        .bind(&c.id)
        .bind(c.lease_seq)
        .bind(now_ms)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

/// Take a queue step inside `tx` (the fence must hold).
pub(crate) async fn step_in(tx: &mut Transaction<'static, Any>, c: &Claimed, step: &crate::QueueStep, now_ms: i64) -> Result<Completion> {
    let (state, run_at, error, outcome, finished, completion, free) = match step {
        crate::QueueStep::Complete => ("done", now_ms, None, "succeeded", Some(now_ms), Completion::Done, 0),
        crate::QueueStep::RetryAt { at, error } => ("queued", ms(*at), Some(error.as_str()), "retrying", None, Completion::Retrying { at: *at }, 0),
        crate::QueueStep::Finish { state, error } => {
            (*state, now_ms, Some(error.as_str()), "failed", Some(now_ms), if *state == "dead" { Completion::Dead } else { Completion::Failed }, 0)
        }
        crate::QueueStep::Defer { at, outcome, note } => ("queued", ms(*at), Some(note.as_str()), *outcome, None, Completion::Retrying { at: *at }, 1),
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE work_items SET state = $4, last_error = COALESCE($5, last_error), run_at = $6, finished_at = $7, free_attempts = free_attempts + $8, \
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 WHERE {FENCE}"
    )))
    .bind(&c.id)
    .bind(c.lease_seq)
    .bind(now_ms)
    .bind(state)
    .bind(error)
    .bind(run_at)
    .bind(finished)
    .bind(free)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(Completion::Stale);
    }
    finish_attempt(tx, c, outcome, error, now_ms).await?;
    Ok(completion)
}

/// Put a claimed item back without spending an attempt (it was not its turn yet). The
/// attempt stays on record as `deferred`, with why.
pub(crate) async fn defer(s: &SqlStore, c: &Claimed, until: jiff::Timestamp, note: &str, now: jiff::Timestamp) -> Result<Completion> {
    let mut tx = s.begin_write().await?;
    let step = crate::QueueStep::Defer { at: until, outcome: "deferred", note: note.to_owned() };
    let completion = step_in(&mut tx, c, &step, ms(now)).await?;
    if completion == Completion::Stale {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(completion)
}

/// Complete `c` inside `tx`; `false` when the fence does not hold (the caller rolls back).
pub(crate) async fn complete_in(tx: &mut Transaction<'static, Any>, c: &Claimed, now_ms: i64) -> Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE work_items SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3 WHERE {FENCE}"
    )))
    .bind(&c.id)
    .bind(c.lease_seq)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    finish_attempt(tx, c, "succeeded", None, now_ms).await?;
    Ok(true)
}

pub(crate) async fn complete(s: &SqlStore, c: &Claimed, now: jiff::Timestamp) -> Result<Completion> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE work_items SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3 WHERE {FENCE}"
    )))
    .bind(&c.id)
    .bind(c.lease_seq)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    finish_attempt(&mut tx, c, "succeeded", None, now_ms).await?;
    tx.commit().await?;
    Ok(Completion::Done)
}

pub(crate) async fn fail(s: &SqlStore, c: &Claimed, f: &WorkFailure, schedule: &RetrySchedule, now: jiff::Timestamp) -> Result<Completion> {
    let now_ms = ms(now);
    let error: String = f.error.chars().take(2000).collect();
    let (state, outcome, completion) = if !f.retryable {
        ("failed", "failed", Completion::Failed)
    } else if c.attempt >= c.max_attempts {
        ("dead", "failed", Completion::Dead)
    } else {
        let hint = RetryHint { retry_after: f.retry_after, throttled: f.retry_after.is_some() };
        let delay = schedule.delay(c.attempt, hint, rand::rng().random_range(-1.0..=1.0)).after;
        let at = now.checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::from_hours(24))).unwrap_or(now);
        ("queued", "retrying", Completion::Retrying { at })
    };
    let run_at = match completion {
        Completion::Retrying { at } => ms(at),
        _ => now_ms,
    };
    let finished = if state == "queued" { None } else { Some(now_ms) };
    let mut tx = s.begin_write().await?;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE work_items SET state = $4, last_error = $5, run_at = $6, finished_at = $7, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 WHERE {FENCE}"
    )))
    .bind(&c.id)
    .bind(c.lease_seq)
    .bind(now_ms)
    .bind(state)
    .bind(&error)
    .bind(run_at)
    .bind(finished)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Completion::Stale);
    }
    finish_attempt(&mut tx, c, outcome, Some(&error), now_ms).await?;
    // A handoff this item carries says so too (its delivery failed outside the connector,
    // e.g. a panic): never left `sending` with nobody working on it.
    let handoff_status = match completion {
        Completion::Retrying { .. } => "retrying",
        Completion::Dead => "dead",
        _ => "failed",
    };
    sqlx::query(
        "UPDATE handoffs SET status = $2, reason = COALESCE(reason, '') || '. ' || $3, next_attempt_at = $4, updated_at = $5 \
         WHERE work_item_id = $1 AND status IN ('planned', 'sending', 'retrying')",
    )
    .bind(&c.id)
    .bind(handoff_status)
    .bind(format!("attempt {} {}: {error}", c.attempt, if handoff_status == "retrying" { "failed, retrying" } else { "failed" }))
    .bind((handoff_status == "retrying").then_some(run_at))
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(completion)
}

pub(crate) async fn work_item(s: &SqlStore, id: &str) -> Result<WorkItemRecord> {
    let r = sqlx::query("SELECT id, kind, payload, dedup_key, state, attempts, max_attempts, run_at, lease_seq, last_error FROM work_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(WorkItemRecord {
        id: get(&r, "id")?,
        kind: get(&r, "kind")?,
        payload: json(&get::<String>(&r, "payload")?, "payload")?,
        dedup_key: get(&r, "dedup_key")?,
        state: get(&r, "state")?,
        attempts: u32_of(get(&r, "attempts")?, "attempts")?,
        max_attempts: u32_of(get(&r, "max_attempts")?, "max_attempts")?,
        run_at: ts(get(&r, "run_at")?)?,
        lease_seq: get(&r, "lease_seq")?,
        last_error: get(&r, "last_error")?,
    })
}

pub(crate) async fn work_attempts(s: &SqlStore, id: &str) -> Result<Vec<WorkAttemptRecord>> {
    sqlx::query("SELECT attempt, lease_seq, worker, started_at, finished_at, outcome, error FROM work_attempts WHERE item_id = $1 ORDER BY attempt")
        .bind(id)
        .fetch_all(&s.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(WorkAttemptRecord {
                attempt: u32_of(get(r, "attempt")?, "attempt")?,
                lease_seq: get(r, "lease_seq")?,
                worker: get(r, "worker")?,
                started_at: ts(get(r, "started_at")?)?,
                finished_at: ts_opt(get(r, "finished_at")?)?,
                outcome: get(r, "outcome")?,
                error: get(r, "error")?,
            })
        })
        .collect()
}
