//! Test fixture for the identity modules: a fresh database (engine from `PM_TEST_DATABASE`,
//! see `backend::testkit`) and a full `AppState` over it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::backend::state::AppState;
use crate::backend::testkit::{test_db, TestDb};

pub(crate) struct TestEnv {
    pub state: AppState,
    tdb: TestDb,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        let tdb = test_db().await;
        let state = tdb.state(1_700_000_000).await;
        TestEnv { state, tdb }
    }

    /// Closes the pool (and, on PostgreSQL, drops the database).
    pub async fn finish(self) {
        let TestEnv { state, tdb } = self;
        drop(state);
        tdb.cleanup().await;
    }
}
