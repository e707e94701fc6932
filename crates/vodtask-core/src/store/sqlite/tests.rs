//! Store-level tests of what the end-to-end tests cannot force: stale
//! fencing tokens, retention and the counters staying exact.

use std::time::Duration;

use super::{SqliteStore, SyncMode};
use crate::app::KeyHash;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{MediaFile, SourceType};
use crate::store::{LeaseState, Orphans, Store};
use crate::task::Outcome;
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
    store.insert_media(&source, None, None).await.unwrap();
    (dir, store, app.id)
}

async fn queue(store: &SqliteStore, app: AppId, priority: i32) -> TaskId {
    let spec = TaskSpec::Transcode(TranscodeSpec {
        file_id: FileId::from_stored("1".into()),
        definitions: vec![100010],
    });
    let request = TaskRequest::new(spec, priority, String::new(), String::new()).unwrap();
    let id = request.spec.task_type().new_id();
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
        follow_up: None,
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
    assert!(
        store
            .finish(&first.lease, done(), later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.release(&first.lease).await.unwrap());
    assert_eq!(
        store.heartbeat(&second.lease, 10, later).await.unwrap(),
        LeaseState::Held {
            cancel_requested: false
        }
    );
    assert!(
        store
            .finish(&second.lease, done(), later)
            .await
            .unwrap()
            .is_some()
    );
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

/// Runs the app's next queued task to FINISH (which writes its event).
async fn run_to_end(store: &SqliteStore) {
    let now = time::now();
    let claim = store
        .claim_next(now + Duration::from_secs(30), now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .finish(&claim.lease, done(), now)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn event_rows_settle_once_and_redrive_back() {
    use crate::store::{Revive, Settled, Stored};
    let (_dir, store, app) = store_with_app().await;
    // Two events of one task (a run and its redo), one of another.
    let a = queue(&store, app, 0).await;
    run_to_end(&store).await;
    store.redo_task(app, &a, time::now()).await.unwrap();
    run_to_end(&store).await;
    queue(&store, app, 0).await;
    run_to_end(&store).await;

    let pending = store.load_events(app, 0, 10).await.unwrap();
    let seqs: Vec<i64> = pending.iter().map(|p| p.seq).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order");
    assert_eq!(pending[0].order_key, pending[1].order_key);
    assert_eq!(
        (
            pending[0].event.task_sequence,
            pending[1].event.task_sequence
        ),
        (1, 2)
    );
    // The redo's event waits behind the first run's.
    let tail = store.event_tail(app, 0).await.unwrap();
    assert_eq!((tail.ready, tail.held, tail.dead_lettered), (2, 1, 0));
    assert_eq!(store.event_tail(app, seqs[0]).await.unwrap().ready, 1);

    store
        .settle_events(app, vec![(seqs[0], 1)], Settled::Confirmed)
        .await
        .unwrap();
    // Settling is idempotent: a confirmed event cannot be dead-lettered.
    store
        .settle_events(app, vec![(seqs[0], 9)], Settled::DeadLettered)
        .await
        .unwrap();
    store
        .settle_events(app, vec![(seqs[2], 10)], Settled::DeadLettered)
        .await
        .unwrap();
    let states = store.event_states(app, seqs.clone()).await.unwrap();
    assert_eq!(states[&seqs[0]], Stored::Confirmed);
    assert_eq!(states[&seqs[1]], Stored::Pending);
    assert_eq!(states[&seqs[2]], Stored::DeadLettered);
    // Another app sees none of them.
    let other = AppId(app.0 + 1);
    assert!(
        store
            .event_states(other, seqs.clone())
            .await
            .unwrap()
            .is_empty()
    );

    let dead = store.dead_letter_events(app, 10, None).await.unwrap();
    assert_eq!(dead.events.len(), 1);
    assert_eq!(dead.events[0].deliveries, 10);
    let back = store
        .revive_events(app, None, Revive::DeadLettered)
        .await
        .unwrap();
    assert_eq!(
        back.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![seqs[2]]
    );
    assert_eq!(back[0].event.deliveries, 0);
    let tail = store.event_tail(app, 0).await.unwrap();
    assert_eq!((tail.ready, tail.held, tail.dead_lettered), (2, 0, 0));
    assert_eq!(store.load_events(app, 0, 10).await.unwrap().len(), 2);
}

/// `--sync` reaches the writing connection (SQLite: 2 is FULL, 1 NORMAL).
#[tokio::test]
async fn the_sync_mode_is_the_writers_synchronous_setting() {
    for (mode, level) in [(SyncMode::Full, 2), (SyncMode::Normal, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(dir.path(), mode).unwrap();
        let got: i64 = store
            .writer
            .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(got, level, "{mode:?}");
    }
}
