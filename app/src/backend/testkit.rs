//! Shared helpers for the backend's inline tests.
//!
//! `test_db()` gives a fresh, migrated database of the engine named by env `PM_TEST_DATABASE`:
//! `sqlite` (default; a file in a temp dir) or `postgres` (a uniquely named database on
//! `PM_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432`, dropped when the `TestDb`
//! is dropped, even if the test panicked).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::Connection;

use super::db::{Db, Engine};
use super::state::{AppState, Settings};

pub struct TestDb {
    pub db: Db,
    /// What `db` was connected with (a second pool on the same database: another replica).
    pub url: String,
    /// Temp dir for the SQLite file and for data dirs (CA, keys) of this test.
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

fn pg_base() -> String {
    std::env::var("PM_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub fn engine() -> Engine {
    match std::env::var("PM_TEST_DATABASE").as_deref() {
        Ok("postgres") | Ok("postgresql") | Ok("pg") => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

pub async fn test_db() -> TestDb {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, pg_name) = match engine() {
        Engine::Sqlite => (Db::sqlite_url_for(dir.path()), None),
        Engine::Postgres => {
            let name = format!("pm_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base()))
                .await
                .expect("connect to PostgreSQL (PM_TEST_DATABASE=postgres)");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
            let _ = admin.close().await;
            (format!("{}/{name}", pg_base()), Some(name))
        }
    };
    let db = Db::connect(&url).await.expect("connect test database");
    db.migrate().await.expect("migrate test database");
    TestDb { db, url, dir, pg_name }
}

impl TestDb {
    /// Settings whose data dir is inside this test's temp dir.
    pub fn settings(&self) -> Settings {
        Settings::for_data_dir(self.dir.path().join("data"))
    }

    /// A full `AppState` over this database (CA, registry and keys created in the temp dir).
    pub async fn state(&self, now: i64) -> AppState {
        AppState::init(self.settings(), self.db.clone(), now).await.expect("AppState::init")
    }

    /// Closes the pool; the PostgreSQL database itself is dropped by `Drop`.
    pub async fn cleanup(self) {
        self.db.pool.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime: use a separate thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base())).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}
