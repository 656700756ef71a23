//! Phone calls' legs at their carrier (`carrier_calls`): the carrier's call id, its raw
//! status (which only moves forward), machine detection, and details of the leg.

use dialnexa_core::CallId;
use sqlx::any::AnyRow;

use crate::db::{SqlStore, get, ms, ts};
use crate::{CarrierLeg, NewCall, Result, StoreError};

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const COLS: &str = "call_id, carrier, carrier_sid, raw_status, status_rank, answered_by, ringing_at, answered_at, details, created_at, updated_at";

fn leg_from(r: &AnyRow) -> Result<CarrierLeg> {
    Ok(CarrierLeg {
        call_id: CallId::parse(&get::<String>(r, "call_id")?).map_err(corrupt)?,
        carrier: get(r, "carrier")?,
        carrier_sid: get(r, "carrier_sid")?,
        raw_status: get(r, "raw_status")?,
        status_rank: u8::try_from(get::<i64>(r, "status_rank")?).unwrap_or(0),
        answered_by: get(r, "answered_by")?,
        ringing_at: get::<Option<i64>>(r, "ringing_at")?.map(ts).transpose()?,
        answered_at: get::<Option<i64>>(r, "answered_at")?.map(ts).transpose()?,
        details: serde_json::from_str(&get::<String>(r, "details")?).map_err(corrupt)?,
        created_at: ts(get(r, "created_at")?)?,
        updated_at: ts(get(r, "updated_at")?)?,
    })
}

/// A phone call and its carrier leg, in one transaction.
pub(crate) async fn insert_phone_call(s: &SqlStore, call: &NewCall, leg: &CarrierLeg, now: jiff::Timestamp) -> Result<()> {
    let mut tx = s.begin_write().await?;
    crate::calls::insert_call_in(&mut tx, call, &[], now).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO carrier_calls ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")))
        .bind(leg.call_id.as_str())
        .bind(&leg.carrier)
        .bind(leg.carrier_sid.as_deref())
        .bind(&leg.raw_status)
        .bind(i64::from(leg.status_rank))
        .bind(leg.answered_by.as_deref())
        .bind(leg.ringing_at.map(ms))
        .bind(leg.answered_at.map(ms))
        .bind(leg.details.to_string())
        .bind(ms(leg.created_at))
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::db::conflict_on_unique(e, "the carrier call is already recorded"))?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn find_leg(s: &SqlStore, carrier: &str, sid: &str) -> Result<Option<CarrierLeg>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM carrier_calls WHERE carrier = $1 AND carrier_sid = $2")))
        .bind(carrier)
        .bind(sid)
        .fetch_optional(&s.pool)
        .await?;
    r.as_ref().map(leg_from).transpose()
}

pub(crate) async fn get_leg(s: &SqlStore, id: &CallId) -> Result<Option<CarrierLeg>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM carrier_calls WHERE call_id = $1"))).bind(id.as_str()).fetch_optional(&s.pool).await?;
    r.as_ref().map(leg_from).transpose()
}

/// The carrier answered the create: its call id.
pub(crate) async fn set_sid(s: &SqlStore, id: &CallId, sid: &str, raw_status: &str, rank: u8, now: jiff::Timestamp) -> Result<()> {
    let done = sqlx::query(
        "UPDATE carrier_calls SET carrier_sid = $2, raw_status = CASE WHEN status_rank < $4 THEN $3 ELSE raw_status END, \
         status_rank = CASE WHEN status_rank < $4 THEN $4 ELSE status_rank END, updated_at = $5 WHERE call_id = $1",
    )
    .bind(id.as_str())
    .bind(sid)
    .bind(raw_status)
    .bind(i64::from(rank))
    .bind(ms(now))
    .execute(&s.pool)
    .await
    .map_err(|e| crate::db::conflict_on_unique(e, "the carrier call is already recorded"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A status from the carrier: applied only when it moves the leg forward (callbacks repeat
/// and reorder; a terminal status never changes). True when it did.
pub(crate) async fn advance(s: &SqlStore, id: &CallId, raw_status: &str, rank: u8, answered_by: Option<&str>, now: jiff::Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE carrier_calls SET raw_status = $2, status_rank = $3, answered_by = COALESCE($4, answered_by), \
         ringing_at = CASE WHEN $3 >= 3 AND ringing_at IS NULL THEN $5 ELSE ringing_at END, \
         answered_at = CASE WHEN $3 = 4 AND answered_at IS NULL THEN $5 ELSE answered_at END, updated_at = $5 \
         WHERE call_id = $1 AND status_rank < $3",
    )
    .bind(id.as_str())
    .bind(raw_status)
    .bind(i64::from(rank))
    .bind(answered_by)
    .bind(ms(now))
    .execute(&s.pool)
    .await?;
    if done.rows_affected() == 0 && answered_by.is_some() {
        sqlx::query("UPDATE carrier_calls SET answered_by = $2, updated_at = $3 WHERE call_id = $1 AND answered_by IS NULL")
            .bind(id.as_str())
            .bind(answered_by)
            .bind(ms(now))
            .execute(&s.pool)
            .await?;
    }
    Ok(done.rows_affected() > 0)
}

/// Merge keys into the leg's details (transfer, voicemail policy, ...).
pub(crate) async fn merge_details(s: &SqlStore, id: &CallId, patch: &serde_json::Value, now: jiff::Timestamp) -> Result<serde_json::Value> {
    let mut tx = s.begin_write().await?;
    let lock = s.backend.for_update();
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT details FROM carrier_calls WHERE call_id = $1{lock}")))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut details: serde_json::Value = serde_json::from_str(&get::<String>(&r, "details")?).map_err(corrupt)?;
    // Objects merge one level deep: {"warm_transfer": {"status": ..}} keeps its other keys.
    if let (Some(d), Some(p)) = (details.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            match (d.get_mut(k), v) {
                (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                    for (k2, v2) in new {
                        old.insert(k2.clone(), v2.clone());
                    }
                }
                _ => {
                    d.insert(k.clone(), v.clone());
                }
            }
        }
    }
    sqlx::query("UPDATE carrier_calls SET details = $2, updated_at = $3 WHERE call_id = $1")
        .bind(id.as_str())
        .bind(details.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(details)
}

/// Phone calls DialNexa still holds open (registered, ringing or ongoing) created before
/// `before`, oldest first: the ones reconciliation asks the carrier about.
pub(crate) async fn open_legs(s: &SqlStore, before: jiff::Timestamp, limit: u32) -> Result<Vec<(CarrierLeg, String)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {}, c.status AS call_status FROM carrier_calls k JOIN calls c ON c.call_id = k.call_id \
         WHERE c.status IN ('registered', 'ringing', 'ongoing') AND k.created_at < $1 ORDER BY k.created_at LIMIT $2",
        COLS.split(", ").map(|c| format!("k.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(ms(before))
    .bind(i64::from(limit))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(|r| Ok((leg_from(r)?, get::<String>(r, "call_status")?))).collect()
}

/// Add events to a call's timeline (what the carrier reported, a transfer's outcome).
pub(crate) async fn add_events(s: &SqlStore, id: &CallId, events: &[dialnexa_core::TimelineEvent]) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let r = sqlx::query("SELECT call_id FROM calls WHERE call_id = $1").bind(id.as_str()).fetch_optional(&mut *tx).await?;
    if r.is_none() {
        tx.rollback().await?;
        return Err(StoreError::NotFound);
    }
    crate::calls::append_events(&mut tx, id, events).await?;
    tx.commit().await?;
    Ok(())
}

/// A transfer's data changed after the call's agent left it (the dialed leg answered or not).
pub(crate) async fn set_transfer(s: &SqlStore, id: &CallId, transfer: &serde_json::Value, event: &dialnexa_core::TimelineEvent) -> Result<()> {
    let mut tx = s.begin_write().await?;
    let done = sqlx::query("UPDATE calls SET transfer = $2, updated_at = $3 WHERE call_id = $1")
        .bind(id.as_str())
        .bind(transfer.to_string())
        .bind(ms(event.at))
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(StoreError::NotFound);
    }
    crate::calls::append_events(&mut tx, id, std::slice::from_ref(event)).await?;
    tx.commit().await?;
    Ok(())
}

/// Outbound phone calls from `number` not ended yet (for its concurrency bound).
pub(crate) async fn count_open_from(s: &SqlStore, number: &str) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM calls c JOIN carrier_calls k ON k.call_id = c.call_id WHERE c.from_number = $1 AND c.direction = 'outbound' \
         AND c.status IN ('registered', 'ringing', 'ongoing')",
    )
    .bind(number)
    .fetch_one(&s.pool)
    .await?;
    get::<i64>(&r, "n")
}
