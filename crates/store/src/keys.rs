//! API keys (hashed at rest) and the idempotency records of `Idempotency-Key`.

use sqlx::Row;

use crate::db::{SqlStore, conflict_on_unique, get, ms, ts, ts_opt};
use crate::{ApiKeyRecord, IdempotencyBegin, Result};

pub(crate) async fn insert_api_key(s: &SqlStore, k: &ApiKeyRecord) -> Result<()> {
    sqlx::query("INSERT INTO api_keys (key_id, name, key_hash, hint, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&k.key_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.hint)
        .bind(ms(k.created_at))
        .bind(k.revoked_at.map(ms))
        .execute(&s.pool)
        .await
        .map_err(|e| conflict_on_unique(e, "API key already exists"))?;
    Ok(())
}

pub(crate) async fn find_api_key(s: &SqlStore, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
    let row = sqlx::query("SELECT key_id, name, key_hash, hint, created_at, revoked_at FROM api_keys WHERE key_hash = $1")
        .bind(key_hash)
        .fetch_optional(&s.pool)
        .await?;
    row.map(|r| {
        Ok(ApiKeyRecord {
            key_id: get(&r, "key_id")?,
            name: get(&r, "name")?,
            key_hash: get(&r, "key_hash")?,
            hint: get(&r, "hint")?,
            created_at: ts(get(&r, "created_at")?)?,
            revoked_at: ts_opt(get(&r, "revoked_at")?)?,
        })
    })
    .transpose()
}

pub(crate) async fn count_api_keys(s: &SqlStore) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetch_one(&s.pool).await?.try_get::<i64, _>(0)?)
}

/// Records older than this are forgotten: a replay after a day is a new request.
const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
/// A request still "running" after this long is presumed dead (its process crashed).
const IN_PROGRESS_TIMEOUT_MS: i64 = 5 * 60 * 1000;

pub(crate) async fn begin(s: &SqlStore, scope: &str, request_hash: &str, now: jiff::Timestamp) -> Result<IdempotencyBegin> {
    let now_ms = ms(now);
    let mut tx = s.begin_write().await?;
    let row = sqlx::query("SELECT request_hash, state, response_status, response_body, created_at FROM idempotency_keys WHERE scope_hash = $1")
        .bind(scope)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(r) = row {
        let created: i64 = get(&r, "created_at")?;
        let state: String = get(&r, "state")?;
        let stale = now_ms - created > IDEMPOTENCY_TTL_MS || (state == "running" && now_ms - created > IN_PROGRESS_TIMEOUT_MS);
        if !stale {
            let outcome = if get::<String>(&r, "request_hash")? != request_hash {
                IdempotencyBegin::Mismatch
            } else if state == "done" {
                let status: i64 = get(&r, "response_status")?;
                IdempotencyBegin::Replay { status: u16::try_from(status).unwrap_or(200), body: get::<Option<String>>(&r, "response_body")?.unwrap_or_default() }
            } else {
                IdempotencyBegin::InProgress
            };
            tx.commit().await?;
            return Ok(outcome);
        }
        sqlx::query("DELETE FROM idempotency_keys WHERE scope_hash = $1").bind(scope).execute(&mut *tx).await?;
    }
    sqlx::query("INSERT INTO idempotency_keys (scope_hash, request_hash, state, created_at) VALUES ($1, $2, 'running', $3)")
        .bind(scope)
        .bind(request_hash)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, "idempotency key in use"))?;
    tx.commit().await?;
    Ok(IdempotencyBegin::New)
}

pub(crate) async fn finish(s: &SqlStore, scope: &str, status: u16, body: &str) -> Result<()> {
    sqlx::query("UPDATE idempotency_keys SET state = 'done', response_status = $2, response_body = $3 WHERE scope_hash = $1")
        .bind(scope)
        .bind(i64::from(status))
        .bind(body)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(crate) async fn abort(s: &SqlStore, scope: &str) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope_hash = $1 AND state = 'running'").bind(scope).execute(&s.pool).await?;
    Ok(())
}
