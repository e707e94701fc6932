//! The store conformance suite on PostgreSQL: each case on a schema of its
//! own in the database `VODTASK_TEST_POSTGRES` names (by default the local
//! server's `postgres` database), dropped when the case ends.

use std::sync::Arc;

use super::testing::Schema;
use crate::store::conformance::Fixture;

async fn fresh() -> Fixture {
    let schema = Schema::create().await;
    let store = schema.open().await;
    Fixture::new(Arc::new(store), schema)
}

crate::store_conformance!(fresh());
