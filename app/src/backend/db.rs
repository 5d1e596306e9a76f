//! Database handle over sqlx's `Any` driver: embedded SQLite (default) or PostgreSQL.
//!
//! Portable SQL rules (both engines run the same queries):
//! - placeholders are `$1, $2, ...` (SQLite accepts them too);
//! - times are `BIGINT` unix seconds, ids are `TEXT` (UUID v4) made in Rust, booleans are
//!   `BIGINT` 0/1 (the Any driver decodes these the same on both engines);
//! - queries are plain async fns taking `&mut AnyConnection` (a `Tx` derefs to one) so the
//!   caller owns the transaction; a write and its audit row commit together.
//!
//! SQLite runs with a single pooled connection: writes are serialised (no
//! `SQLITE_BUSY_SNAPSHOT` upgrades), so never hold a `Tx` while acquiring from the pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use super::error::Result;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Conn = sqlx::AnyConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub engine: Engine,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// `url` is `sqlite://PATH` (file created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            return Err(super::error::BackendError::Invalid(
                "database_url must start with sqlite:// or postgres://".into(),
            ));
        };
        let pool = match engine {
            Engine::Sqlite => {
                let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
                let opts = AnyConnectOptions::from_str(&url)?;
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Engine::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?
            }
        };
        Ok(Db { pool, engine })
    }

    /// SQLite database file under `dir` (created with its parent folder).
    pub fn sqlite_url_for(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("patch-manager.db").display())
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }
}

/// Unix seconds of the wall clock. Only edges (handlers, CLI, workers) call this; everything
/// below takes `now` as a parameter.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// True when the error is a unique-constraint violation (either engine).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
