//! Connections, dialects and the small helpers every query module uses.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The one [`crate::Store`] implementation: sqlx `Any` over SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

/// Remove the password from a database URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl SqlStore {
    /// Connect and migrate. `url` is `sqlite://PATH` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Connect(format!("unsupported database URL '{}': use sqlite://PATH or postgres://...", redact_url(url))));
        };
        let url = match backend {
            // Create the file when absent.
            Backend::Sqlite if !url.contains("mode=") => format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }),
            _ => url.to_owned(),
        };
        let options = match backend {
            // One writer per SQLite file: a small pool, writes serialised by BEGIN IMMEDIATE.
            Backend::Sqlite => AnyPoolOptions::new().max_connections(4).min_connections(1),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL + FULL: every commit is synced; busy_timeout waits for the writer.
                        sqlx::raw_sql("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| StoreError::Connect(format!("{} ({})", redact_url(&url), e)))?;
        let store = SqlStore { pool, backend };
        crate::migrate::run(&store).await?;
        Ok(store)
    }

    /// A write transaction: `BEGIN IMMEDIATE` on SQLite takes the write lock up front, so a
    /// read-then-write never fails with SQLITE_BUSY halfway.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A pragma's current value (SQLite only), for tests and diagnostics.
    pub async fn sqlite_pragma(&self, name: &str) -> Result<String> {
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(StoreError::Corrupt("bad pragma name".into()));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}"))).fetch_one(&self.pool).await?;
        if let Ok(v) = row.try_get::<i64, _>(0) {
            return Ok(v.to_string());
        }
        Ok(row.try_get::<String, _>(0)?)
    }
}

impl Backend {
    /// `FOR UPDATE` on PostgreSQL (a row lock until the transaction ends); SQLite's
    /// `BEGIN IMMEDIATE` already makes the transaction the only writer.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

pub(crate) fn ms(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Result<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

pub(crate) fn ts_opt(ms: Option<i64>) -> Result<Option<jiff::Timestamp>> {
    ms.map(ts).transpose()
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(row: &'r AnyRow, col: &str) -> Result<T> {
    row.try_get(col).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn parse<T: FromStr>(value: &str, what: &str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("{what} '{value}'")))
}

pub(crate) fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn u32_of(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v}")))
}

/// Unique-constraint violations become conflicts the API can answer with.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(what.to_owned());
    }
    StoreError::Database(e)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
