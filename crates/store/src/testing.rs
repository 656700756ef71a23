//! Fresh databases for tests: a temporary SQLite file, or a PostgreSQL schema of its own
//! in the run's database (`DIALNEXA_TEST_DATABASE_URL`, else `DATABASE_URL`, else the
//! local server with trust auth).

use crate::db::SqlStore;
use crate::{Backend, Result, StoreError};

pub fn postgres_base_url() -> String {
    std::env::var("DIALNEXA_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database URL nobody else uses. For SQLite the file lives in `dir`.
pub async fn fresh_url(backend: Backend, dir: &std::path::Path) -> Result<String> {
    match backend {
        Backend::Sqlite => Ok(format!("sqlite://{}", dir.join("dialnexa.db").display())),
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let base = postgres_base_url();
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(std::time::Duration::from_secs(10))
                .connect(&base)
                .await
                .map_err(|e| StoreError::Connect(format!("{} ({e}); is PostgreSQL running? scripts/test starts it", crate::db::redact_url(&base))))?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await?;
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        }
    }
}

/// A migrated store on a fresh database.
pub async fn fresh_store(backend: Backend, dir: &std::path::Path) -> Result<SqlStore> {
    SqlStore::connect(&fresh_url(backend, dir).await?).await
}
