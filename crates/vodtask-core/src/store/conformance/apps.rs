//! Apps: create, find by key, revoke, list, count.

use super::support::*;
use crate::app::KeyHash;
use crate::error::Error;
use crate::store::AppRecord;

/// Each app gets its own id and is found by its key, until revoked.
pub async fn create_and_find_by_key(store: Dyn) {
    let a = store
        .create_app("alpha", &KeyHash::of("key-a"), at(1))
        .await
        .expect("create_app");
    let b = store
        .create_app("beta", &KeyHash::of("key-b"), at(2))
        .await
        .expect("create_app");
    assert_eq!(a.name, "alpha");
    assert_eq!(b.name, "beta");
    assert_ne!(a.id, b.id);
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-a"))
            .await
            .expect("app_by_key"),
        Some(a.clone())
    );
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-b"))
            .await
            .expect("app_by_key"),
        Some(b)
    );
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("alpha"))
            .await
            .expect("app_by_key"),
        None,
        "a name is not a key"
    );
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-c"))
            .await
            .expect("app_by_key"),
        None
    );
}

/// A second app of the same name is ALREADY_EXISTS, and is not created.
pub async fn app_names_are_unique(store: Dyn) {
    store
        .create_app("alpha", &KeyHash::of("key-a"), at(1))
        .await
        .expect("create_app");
    let r = store
        .create_app("alpha", &KeyHash::of("key-other"), at(2))
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
    assert_eq!(store.app_count().await.expect("app_count"), 1);
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-other"))
            .await
            .expect("app_by_key"),
        None
    );
}

/// A revoked app's key finds nothing; revoking twice keeps the first time;
/// other apps are untouched.
pub async fn revoke_keeps_the_first_time(store: Dyn) {
    store
        .create_app("alpha", &KeyHash::of("key-a"), at(1))
        .await
        .expect("create_app");
    let b = store
        .create_app("beta", &KeyHash::of("key-b"), at(2))
        .await
        .expect("create_app");
    let revoked = store.revoke_app("alpha", at(10)).await.expect("revoke_app");
    assert_eq!(
        revoked,
        AppRecord {
            name: "alpha".into(),
            create_time: at(1),
            revoke_time: Some(at(10)),
        }
    );
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-a"))
            .await
            .expect("app_by_key"),
        None
    );
    let again = store.revoke_app("alpha", at(20)).await.expect("revoke_app");
    assert_eq!(again.revoke_time, Some(at(10)));
    assert_eq!(
        store
            .app_by_key(&KeyHash::of("key-b"))
            .await
            .expect("app_by_key"),
        Some(b)
    );
}

pub async fn revoke_of_an_unknown_app_is_not_found(store: Dyn) {
    let r = store.revoke_app("ghost", at(1)).await;
    assert!(is_not_found(&r), "{r:?}");
    new_app(&*store, "alpha").await;
    let r = store.revoke_app("ghost", at(1)).await;
    assert!(is_not_found(&r), "{r:?}");
}

/// list_apps shows every app with its times, revoked ones included, and
/// app_count counts them all (a revoked app's name stays taken).
pub async fn list_apps_and_count_include_revoked(store: Dyn) {
    assert_eq!(store.app_count().await.expect("app_count"), 0);
    assert!(store.list_apps().await.expect("list_apps").is_empty());
    for (name, secs) in [("alpha", 1), ("beta", 2), ("gamma", 3)] {
        store
            .create_app(name, &KeyHash::of(name), at(secs))
            .await
            .expect("create_app");
    }
    store.revoke_app("beta", at(5)).await.expect("revoke_app");
    let mut apps = store.list_apps().await.expect("list_apps");
    apps.sort_by(|x, y| x.name.cmp(&y.name));
    let record = |name: &str, created, revoked: Option<i64>| AppRecord {
        name: name.into(),
        create_time: at(created),
        revoke_time: revoked.map(at),
    };
    assert_eq!(
        apps,
        vec![
            record("alpha", 1, None),
            record("beta", 2, Some(5)),
            record("gamma", 3, None),
        ]
    );
    assert_eq!(store.app_count().await.expect("app_count"), 3);
    let r = store
        .create_app("beta", &KeyHash::of("new-key"), at(6))
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
}
