//! Agents and their versions. A published version is never updated: every statement that
//! writes `agent_versions` names `status = 'draft'`.

use sqlx::Row;
use sqlx::any::AnyRow;

use dialnexa_core::AgentId;
use dialnexa_core::agent::VersionStatus;

use crate::db::{SqlStore, get, json, ms, ts, ts_opt, u32_of};
use crate::{AgentRecord, NewVersion, Result, StoreError, VersionRecord};

const AGENT_COLS: &str = "a.agent_id, a.name, a.draft_version, a.created_at, a.updated_at";

async fn published_versions(s: &SqlStore, ids: &[String]) -> Result<Vec<(String, u32)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let params: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql =
        format!("SELECT agent_id, version FROM agent_versions WHERE status = 'published' AND agent_id IN ({}) ORDER BY agent_id, version", params.join(", "));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    q.fetch_all(&s.pool).await?.iter().map(|r| Ok((get(r, "agent_id")?, u32_of(get(r, "version")?, "version")?))).collect()
}

async fn agents_from_rows(s: &SqlStore, rows: Vec<AnyRow>) -> Result<Vec<AgentRecord>> {
    let ids: Vec<String> = rows.iter().map(|r| get(r, "agent_id")).collect::<Result<_>>()?;
    let published = published_versions(s, &ids).await?;
    rows.iter()
        .map(|r| {
            let id: String = get(r, "agent_id")?;
            Ok(AgentRecord {
                published_versions: published.iter().filter(|(a, _)| *a == id).map(|(_, v)| *v).collect(),
                agent_id: AgentId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                name: get(r, "name")?,
                draft_version: u32_of(get(r, "draft_version")?, "draft_version")?,
                created_at: ts(get(r, "created_at")?)?,
                updated_at: ts(get(r, "updated_at")?)?,
            })
        })
        .collect()
}

fn version_from_row(r: &AnyRow) -> Result<VersionRecord> {
    let status: String = get(r, "status")?;
    Ok(VersionRecord {
        agent_id: AgentId::parse(&get::<String>(r, "agent_id")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: u32_of(get(r, "version")?, "version")?,
        status: if status == "published" { VersionStatus::Published } else { VersionStatus::Draft },
        kind: get(r, "kind")?,
        config: json(&get::<String>(r, "config")?, "config")?,
        config_hash: get(r, "config_hash")?,
        created_at: ts(get(r, "created_at")?)?,
        published_at: ts_opt(get(r, "published_at")?)?,
    })
}

const VERSION_COLS: &str = "agent_id, version, status, kind, config, config_hash, created_at, published_at";

pub(crate) async fn create_agent(s: &SqlStore, id: &AgentId, name: &str, draft: &NewVersion, now: jiff::Timestamp) -> Result<AgentRecord> {
    let mut tx = s.begin_write().await?;
    sqlx::query("INSERT INTO agents (agent_id, name, draft_version, created_at, updated_at) VALUES ($1, $2, 1, $3, $3)")
        .bind(id.as_str())
        .bind(name)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    insert_draft(&mut tx, id, 1, draft, now).await?;
    tx.commit().await?;
    get_agent(s, id).await
}

async fn insert_draft(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: &AgentId, version: u32, draft: &NewVersion, now: jiff::Timestamp) -> Result<()> {
    sqlx::query("INSERT INTO agent_versions (agent_id, version, status, kind, config, config_hash, created_at) VALUES ($1, $2, 'draft', $3, $4, $5, $6)")
        .bind(id.as_str())
        .bind(i64::from(version))
        .bind(&draft.kind)
        .bind(draft.config.to_string())
        .bind(&draft.config_hash)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn list_agents(s: &SqlStore, after: Option<&AgentId>, limit: u32) -> Result<Vec<AgentRecord>> {
    let rows = match after {
        Some(a) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLS} FROM agents a WHERE a.agent_id > $1 ORDER BY a.agent_id LIMIT $2")))
                .bind(a.as_str())
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLS} FROM agents a ORDER BY a.agent_id LIMIT $1")))
                .bind(i64::from(limit))
                .fetch_all(&s.pool)
                .await?
        }
    };
    agents_from_rows(s, rows).await
}

pub(crate) async fn get_agent(s: &SqlStore, id: &AgentId) -> Result<AgentRecord> {
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLS} FROM agents a WHERE a.agent_id = $1"))).bind(id.as_str()).fetch_all(&s.pool).await?;
    agents_from_rows(s, rows).await?.pop().ok_or(StoreError::NotFound)
}

pub(crate) async fn find_agent_by_name(s: &SqlStore, name: &str) -> Result<Option<AgentRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLS} FROM agents a WHERE a.name = $1 ORDER BY a.created_at LIMIT 1")))
        .bind(name)
        .fetch_all(&s.pool)
        .await?;
    Ok(agents_from_rows(s, rows).await?.pop())
}

pub(crate) async fn update_draft(s: &SqlStore, id: &AgentId, draft: &NewVersion, now: jiff::Timestamp) -> Result<VersionRecord> {
    let mut tx = s.begin_write().await?;
    let row =
        sqlx::query("SELECT draft_version FROM agents WHERE agent_id = $1").bind(id.as_str()).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
    let version: i64 = row.try_get(0)?;
    sqlx::query("UPDATE agent_versions SET kind = $3, config = $4, config_hash = $5 WHERE agent_id = $1 AND version = $2 AND status = 'draft'")
        .bind(id.as_str())
        .bind(version)
        .bind(&draft.kind)
        .bind(draft.config.to_string())
        .bind(&draft.config_hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE agents SET updated_at = $2 WHERE agent_id = $1").bind(id.as_str()).bind(ms(now)).execute(&mut *tx).await?;
    tx.commit().await?;
    get_version(s, id, u32_of(version, "version")?).await
}

pub(crate) async fn publish(s: &SqlStore, id: &AgentId, now: jiff::Timestamp) -> Result<VersionRecord> {
    let mut tx = s.begin_write().await?;
    let row =
        sqlx::query("SELECT draft_version FROM agents WHERE agent_id = $1").bind(id.as_str()).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
    let version: i64 = row.try_get(0)?;
    let draft =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {VERSION_COLS} FROM agent_versions WHERE agent_id = $1 AND version = $2 AND status = 'draft'")))
            .bind(id.as_str())
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("agent {id} has no draft {version}")))?;
    let draft = version_from_row(&draft)?;
    sqlx::query("UPDATE agent_versions SET status = 'published', published_at = $3 WHERE agent_id = $1 AND version = $2 AND status = 'draft'")
        .bind(id.as_str())
        .bind(version)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    let next = u32_of(version + 1, "version")?;
    insert_draft(&mut tx, id, next, &NewVersion { kind: draft.kind, config: draft.config, config_hash: draft.config_hash }, now).await?;
    sqlx::query("UPDATE agents SET draft_version = $2, updated_at = $3 WHERE agent_id = $1")
        .bind(id.as_str())
        .bind(i64::from(next))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    get_version(s, id, u32_of(version, "version")?).await
}

pub(crate) async fn get_version(s: &SqlStore, id: &AgentId, version: u32) -> Result<VersionRecord> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {VERSION_COLS} FROM agent_versions WHERE agent_id = $1 AND version = $2")))
        .bind(id.as_str())
        .bind(i64::from(version))
        .fetch_optional(&s.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    version_from_row(&row)
}

/// Published versions with hashes, for route resolution.
pub(crate) async fn published_with_hashes(s: &SqlStore, ids: &[String]) -> Result<Vec<(String, String, u32, String)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let params: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT a.agent_id, a.name, v.version, v.config_hash FROM agents a LEFT JOIN agent_versions v ON v.agent_id = a.agent_id AND v.status = 'published' WHERE a.agent_id IN ({})",
        params.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    let mut out = vec![];
    for r in q.fetch_all(&s.pool).await? {
        let version: Option<i64> = get(&r, "version")?;
        let hash: Option<String> = get(&r, "config_hash")?;
        // An agent with no published version still appears, with version 0 as a marker.
        out.push((get(&r, "agent_id")?, get(&r, "name")?, version.map(|v| u32_of(v, "version")).transpose()?.unwrap_or(0), hash.unwrap_or_default()));
    }
    Ok(out)
}
