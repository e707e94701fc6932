//! Store-level tests of what the end-to-end tests cannot force: stale
//! fencing tokens, retention and the counters staying exact.

use std::time::Duration;

use super::SqliteStore;
use crate::app::KeyHash;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{MediaFile, SourceType};
use crate::store::{LeaseState, Orphans, Outcome, Store};
use crate::task::query::HourRange;
use crate::task::{NewTask, TaskRequest, TaskSpec, TaskStatus, TranscodeSpec, errcode};
use crate::time;

async fn store_with_app() -> (tempfile::TempDir, SqliteStore, AppId) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let app = store
        .create_app("a", &KeyHash::of("k"), time::now())
        .await
        .unwrap();
    // Tasks need their source file in the app's library.
    let source = MediaFile {
        file_id: FileId::from_stored("1".into()),
        app_id: app.id,
        file_name: "in.mp4".into(),
        stored_name: "source.mp4".into(),
        size: 1,
        md5: String::new(),
        create_time: time::now(),
        source_type: SourceType::ClientUpload,
        source_context: String::new(),
        source_task_id: None,
        metadata: Err("not probed".into()),
    };
    store.insert_media(&source, None).await.unwrap();
    (dir, store, app.id)
}

async fn queue(store: &SqliteStore, app: AppId, priority: i32) -> TaskId {
    let spec = TaskSpec::Transcode(TranscodeSpec {
        file_id: FileId::from_stored("1".into()),
        definitions: vec![100010],
    });
    let request = TaskRequest::new(spec, priority, String::new(), String::new()).unwrap();
    let id = TaskId::generate(request.spec.task_type());
    store
        .insert_task(NewTask {
            id: id.clone(),
            app_id: app,
            request,
            create_time: time::now(),
        })
        .await
        .unwrap();
    id
}

fn done() -> Outcome {
    Outcome::Finished {
        err_code: 0,
        message: String::new(),
        output: None,
        new_media: Vec::new(),
    }
}

async fn count(store: &SqliteStore, app: AppId, status: TaskStatus) -> i64 {
    let o = store.overview(app, HourRange::default()).await.unwrap();
    o.by_status
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn a_stale_fencing_token_cannot_write() {
    let (_dir, store, app) = store_with_app().await;
    let id = queue(&store, app, 0).await;
    let now = time::now();
    let first = store
        .claim_next(now + Duration::from_secs(30), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.task.id, id);

    // The worker "dies": its lease expires and the task is recovered.
    let later = now + Duration::from_secs(31);
    let recovered = store
        .recover(Orphans::ExpiredBefore(later), 3, later)
        .await
        .unwrap();
    assert_eq!(recovered.requeued, 1);
    let second = store
        .claim_next(later + Duration::from_secs(30), later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.task.attempt, 2);
    assert!(second.lease.token > first.lease.token);

    // The zombie wakes up: none of its writes land.
    assert_eq!(
        store.heartbeat(&first.lease, 50, later).await.unwrap(),
        LeaseState::Lost
    );
    assert!(!store.finish(&first.lease, done(), later).await.unwrap());
    assert!(!store.release(&first.lease).await.unwrap());
    assert_eq!(
        store.heartbeat(&second.lease, 10, later).await.unwrap(),
        LeaseState::Held {
            cancel_requested: false
        }
    );
    assert!(store.finish(&second.lease, done(), later).await.unwrap());
    let task = store.get_task(app, &id, false).await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.progress, task.attempt),
        (TaskStatus::Finish, 100, 2)
    );
}

#[tokio::test]
async fn too_many_recoveries_end_the_task() {
    let (_dir, store, app) = store_with_app().await;
    let id = queue(&store, app, 0).await;
    for _ in 0..3 {
        let now = time::now();
        store.claim_next(now, now).await.unwrap().unwrap();
        store.recover(Orphans::All, 2, now).await.unwrap();
    }
    let task = store.get_task(app, &id, false).await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.err_code),
        (TaskStatus::Finish, errcode::WORKER_LOST)
    );
    assert_eq!(count(&store, app, TaskStatus::Finish).await, 1);
    assert_eq!(count(&store, app, TaskStatus::Processing).await, 0);
}

#[tokio::test]
async fn claims_follow_priority_then_fifo() {
    let (_dir, store, app) = store_with_app().await;
    let low = queue(&store, app, -5).await;
    let first_high = queue(&store, app, 7).await;
    let mid = queue(&store, app, 0).await;
    let second_high = queue(&store, app, 7).await;
    let mut order = Vec::new();
    let now = time::now();
    while let Some(claim) = store.claim_next(now, now).await.unwrap() {
        order.push(claim.task.id);
    }
    assert_eq!(order, [first_high, second_high, mid, low]);
}

#[tokio::test]
async fn retention_deletes_ended_tasks_and_their_counts() {
    let (_dir, store, app) = store_with_app().await;
    let ended = queue(&store, app, 0).await;
    let waiting = queue(&store, app, 0).await;
    let now = time::now();
    let claim = store.claim_next(now, now).await.unwrap().unwrap();
    assert_eq!(claim.task.id, ended);
    store.finish(&claim.lease, done(), now).await.unwrap();

    assert_eq!(
        store.purge_finished(now).await.unwrap(),
        0,
        "finished at `now`, not before"
    );
    assert_eq!(
        store
            .purge_finished(now + Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert!(store.get_task(app, &ended, false).await.unwrap().is_none());
    assert!(
        store
            .get_task(app, &waiting, false)
            .await
            .unwrap()
            .is_some()
    );
    let o = store.overview(app, HourRange::default()).await.unwrap();
    assert_eq!((o.total(), o.queue_depth), (1, 1));
}

#[tokio::test]
async fn a_cancel_requested_before_a_crash_aborts_on_recovery() {
    let (_dir, store, app) = store_with_app().await;
    let id = queue(&store, app, 0).await;
    let now = time::now();
    store.claim_next(now, now).await.unwrap().unwrap();
    let task = store.cancel_task(app, &id, now).await.unwrap();
    assert_eq!(
        (task.status, task.cancel_requested),
        (TaskStatus::Processing, true)
    );
    store.recover(Orphans::All, 3, now).await.unwrap();
    let task = store.get_task(app, &id, false).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Aborted);
    assert_eq!(count(&store, app, TaskStatus::Aborted).await, 1);
}
