//! Phone numbers and the snapshot route resolution reads.

use sqlx::any::AnyRow;

use dialnexa_core::route::{AgentInfo, NumberInfo, Snapshot};
use dialnexa_core::{AgentId, PhoneNumber};

use crate::db::{SqlStore, conflict_on_unique, get, ms, parse, ts, u32_of};
use crate::{PhoneNumberRecord, Result, StoreError};

const COLS: &str = "phone_number, inbound_agent_id, inbound_agent_version, outbound_agent_id, outbound_agent_version, active, nickname, created_at, updated_at, inbound_hook_url";

fn agent_id(v: Option<String>) -> Result<Option<AgentId>> {
    v.map(|s| AgentId::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
}

fn from_row(r: &AnyRow) -> Result<PhoneNumberRecord> {
    Ok(PhoneNumberRecord {
        phone_number: parse(&get::<String>(r, "phone_number")?, "phone number")?,
        inbound_agent_id: agent_id(get(r, "inbound_agent_id")?)?,
        inbound_agent_version: get::<Option<i64>>(r, "inbound_agent_version")?.map(|v| u32_of(v, "version")).transpose()?,
        outbound_agent_id: agent_id(get(r, "outbound_agent_id")?)?,
        outbound_agent_version: get::<Option<i64>>(r, "outbound_agent_version")?.map(|v| u32_of(v, "version")).transpose()?,
        active: get::<i64>(r, "active")? != 0,
        nickname: get(r, "nickname")?,
        inbound_hook_url: get(r, "inbound_hook_url")?,
        created_at: ts(get(r, "created_at")?)?,
        updated_at: ts(get(r, "updated_at")?)?,
    })
}

pub(crate) async fn create(s: &SqlStore, n: &PhoneNumberRecord) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO phone_numbers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")))
        .bind(n.phone_number.as_str())
        .bind(n.inbound_agent_id.as_ref().map(|a| a.as_str()))
        .bind(n.inbound_agent_version.map(i64::from))
        .bind(n.outbound_agent_id.as_ref().map(|a| a.as_str()))
        .bind(n.outbound_agent_version.map(i64::from))
        .bind(i64::from(n.active))
        .bind(n.nickname.as_deref())
        .bind(ms(n.created_at))
        .bind(ms(n.updated_at))
        .bind(n.inbound_hook_url.as_deref())
        .execute(&s.pool)
        .await
        .map_err(|e| conflict_on_unique(e, "phone number already exists"))?;
    Ok(())
}

pub(crate) async fn list(s: &SqlStore, after: Option<&PhoneNumber>, limit: u32) -> Result<Vec<PhoneNumberRecord>> {
    let rows = match after {
        Some(a) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM phone_numbers WHERE phone_number > $1 ORDER BY phone_number LIMIT $2")))
                .bind(a.as_str())
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM phone_numbers ORDER BY phone_number LIMIT $1")))
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get_one(s: &SqlStore, n: &PhoneNumber) -> Result<PhoneNumberRecord> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM phone_numbers WHERE phone_number = $1")))
        .bind(n.as_str())
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(crate) async fn update(s: &SqlStore, n: &PhoneNumberRecord) -> Result<()> {
    let done = sqlx::query(
        "UPDATE phone_numbers SET inbound_agent_id = $2, inbound_agent_version = $3, outbound_agent_id = $4, outbound_agent_version = $5, active = $6, nickname = $7, updated_at = $8, inbound_hook_url = $9 WHERE phone_number = $1",
    )
    .bind(n.phone_number.as_str())
    .bind(n.inbound_agent_id.as_ref().map(|a| a.as_str()))
    .bind(n.inbound_agent_version.map(i64::from))
    .bind(n.outbound_agent_id.as_ref().map(|a| a.as_str()))
    .bind(n.outbound_agent_version.map(i64::from))
    .bind(i64::from(n.active))
    .bind(n.nickname.as_deref())
    .bind(ms(n.updated_at))
    .bind(n.inbound_hook_url.as_deref())
    .execute(&s.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn delete(s: &SqlStore, n: &PhoneNumber) -> Result<()> {
    let done = sqlx::query("DELETE FROM phone_numbers WHERE phone_number = $1").bind(n.as_str()).execute(&s.pool).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn route_snapshot(s: &SqlStore, numbers: &[PhoneNumber], agents: &[AgentId]) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let mut agent_ids: Vec<String> = agents.iter().map(|a| a.as_str().to_owned()).collect();
    for n in numbers {
        match get_one(s, n).await {
            Ok(rec) => {
                agent_ids.extend(rec.inbound_agent_id.iter().chain(rec.outbound_agent_id.iter()).map(|a| a.as_str().to_owned()));
                snap.numbers.push(NumberInfo {
                    phone_number: rec.phone_number,
                    active: rec.active,
                    inbound_agent_id: rec.inbound_agent_id,
                    inbound_agent_version: rec.inbound_agent_version,
                    outbound_agent_id: rec.outbound_agent_id,
                    outbound_agent_version: rec.outbound_agent_version,
                });
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    agent_ids.sort();
    agent_ids.dedup();
    for (id, name, version, hash) in crate::agents::published_with_hashes(s, &agent_ids).await? {
        let agent_id = AgentId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let entry = match snap.agents.iter_mut().position(|a| a.agent_id == agent_id) {
            Some(i) => &mut snap.agents[i],
            None => {
                snap.agents.push(AgentInfo { agent_id, name, published: vec![] });
                let last = snap.agents.len() - 1;
                &mut snap.agents[last]
            }
        };
        if version > 0 {
            entry.published.push((version, hash));
        }
    }
    Ok(snap)
}
