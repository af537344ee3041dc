//! Dashboard sessions on both backends: stored under the cookie's hash, found only while
//! live, ended by sign-out, pruned after expiry.

use gatehouse_core::TokenId;
use gatehouse_core::secret::SecretKey;
use gatehouse_store::{DashboardSession, DashboardSessionStore, Store};
use gatehouse_testkit::TestDb;

async fn sessions(db: &TestDb) {
    let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::connect(db.url(), key).await.unwrap_or_else(|e| panic!("{e}"));
    let token = TokenId::generate();
    let s = |id: &str, expires_at: i64, read_only: bool| DashboardSession {
        id_hash: id.to_owned(),
        token_id: token,
        read_only,
        created_at: 1_000,
        expires_at,
    };
    let ok = |r: Result<(), gatehouse_store::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(store.insert_dashboard_session(&s("live", 10_000, true)).await);
    ok(store.insert_dashboard_session(&s("old", 2_000, false)).await);
    assert!(store.insert_dashboard_session(&s("live", 10_000, false)).await.is_err(), "ids are unique");

    let found = store.dashboard_session("live", 5_000).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found, Some(s("live", 10_000, true)));
    assert_eq!(store.dashboard_session("old", 2_000).await.ok().flatten(), None, "expired at its end");
    assert_eq!(store.dashboard_session("nope", 5_000).await.ok().flatten(), None);

    assert_eq!(store.prune_dashboard_sessions(5_000).await.ok(), Some(1));
    assert_eq!(store.delete_dashboard_session("live").await.ok(), Some(true));
    assert_eq!(store.delete_dashboard_session("live").await.ok(), Some(false));
    assert_eq!(store.dashboard_session("live", 5_000).await.ok().flatten(), None, "signed out");
}

#[tokio::test]
async fn dashboard_sessions_sqlite() {
    sessions(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn dashboard_sessions_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    sessions(&db).await;
}
