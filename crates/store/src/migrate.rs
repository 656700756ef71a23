//! Forward-only migrations, one folder per dialect, embedded in the binary.

use sqlx::Row;

use crate::Result;
use crate::db::{Backend, SqlStore};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "call_timezone",
        sqlite: include_str!("../migrations/sqlite/0002_call_timezone.sql"),
        postgres: include_str!("../migrations/postgres/0002_call_timezone.sql"),
    },
    Migration {
        version: 3,
        name: "handoffs",
        sqlite: include_str!("../migrations/sqlite/0003_handoffs.sql"),
        postgres: include_str!("../migrations/postgres/0003_handoffs.sql"),
    },
    Migration {
        version: 4,
        name: "web_calls",
        sqlite: include_str!("../migrations/sqlite/0004_web_calls.sql"),
        postgres: include_str!("../migrations/postgres/0004_web_calls.sql"),
    },
    Migration {
        version: 5,
        name: "delivery",
        sqlite: include_str!("../migrations/sqlite/0005_delivery.sql"),
        postgres: include_str!("../migrations/postgres/0005_delivery.sql"),
    },
    Migration {
        version: 6,
        name: "carrier",
        sqlite: include_str!("../migrations/sqlite/0006_carrier.sql"),
        postgres: include_str!("../migrations/postgres/0006_carrier.sql"),
    },
    Migration {
        version: 7,
        name: "number_hook",
        sqlite: include_str!("../migrations/sqlite/0007_number_hook.sql"),
        postgres: include_str!("../migrations/postgres/0007_number_hook.sql"),
    },
];

pub(crate) async fn run(store: &SqlStore) -> Result<()> {
    let mut tx = store.begin_write().await?;
    if store.backend == Backend::Postgres {
        // Several nodes may start at once; one migrates, the others wait for it.
        sqlx::query("SELECT pg_advisory_xact_lock(7245019)").execute(&mut *tx).await?;
    }
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: Vec<i64> =
        sqlx::query("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<_, _>>()?;
    for m in MIGRATIONS {
        if applied.contains(&m.version) {
            continue;
        }
        let sql = match store.backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        tracing::info!(version = m.version, name = m.name, "applying migration");
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(jiff::Timestamp::now().as_millisecond())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
