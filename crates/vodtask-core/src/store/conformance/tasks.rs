//! Tasks: insert, claim with fencing, progress, finish, redo, cancel,
//! release, recover.

use super::support::*;
use crate::error::Error;
use crate::ids::{FileId, TaskId};
use crate::store::{Lease, LeaseState, Orphans, Recovered};
use crate::task::Outcome;
use crate::task::{
    AttemptRecord, Inserted, NewTask, TaskOutput, TaskRequest, TaskStatus, TaskType, errcode,
};

const HELD: LeaseState = LeaseState::Held {
    cancel_requested: false,
};

/// insert_task stores a WAITING task as asked; get_task reads it back.
pub async fn insert_then_get_round_trips(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let file = upload(&*store, app, "f1").await;
    let request = TaskRequest::new(snapshot(&file), 3, "sess-1".into(), "ctx ü".into())
        .expect("valid request");
    let id = TaskType::SnapshotByTimeOffset.new_id();
    let inserted = store
        .insert_task(NewTask {
            id: id.clone(),
            app_id: app,
            request: request.clone(),
            create_time: at(5),
        })
        .await
        .expect("insert_task");
    assert_eq!(inserted, Inserted::Created(id.clone()));

    let t = task(&*store, app, &id).await;
    assert_eq!(t.id, id);
    assert_eq!(t.app_id, app);
    assert_eq!(t.status, TaskStatus::Waiting);
    assert_eq!((t.err_code, t.message.as_str()), (0, ""));
    assert_eq!((t.progress, t.attempt), (0, 1));
    assert_eq!(t.create_time, at(5));
    assert_eq!((t.begin_process_time, t.finish_time), (None, None));
    assert_eq!(t.priority, 3);
    assert_eq!(t.session_id.as_deref(), Some("sess-1"));
    assert_eq!(t.session_context, "ctx ü");
    assert_eq!(t.spec, request.spec);
    assert_eq!(t.file_id, Some(file), "the task's file is its input");
    assert_eq!(t.output, None);
    assert!(!t.cancel_requested);
    assert!(t.previous_attempts.is_empty());

    let unknown = TaskId::from_stored("snapshot-00000000000000000000000000000000".into());
    assert!(
        store
            .get_task(app, &unknown, true)
            .await
            .expect("get_task")
            .is_none()
    );
}

/// NOT_FOUND when an input file is not in the app's library (missing, or
/// another app's), and nothing is written.
pub async fn insert_with_an_unknown_input_is_not_found(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let fb = upload(&*store, b, "fb").await;
    let missing = FileId::from_stored("404".into());
    for spec in [
        transcode(&missing),
        transcode(&fb),
        concat(&fa, &fb),
        concat(&missing, &fa),
        delete(&[&fa, &missing]),
    ] {
        let r = store.insert_task(new_task(a, spec.clone(), 0, at(0))).await;
        assert!(is_not_found(&r), "{spec:?}: {r:?}");
    }
    assert!(list_all(&*store, a, &query()).await.is_empty());
    assert_eq!(count(&*store, a, TaskStatus::Waiting).await, 0);
    assert!(
        store
            .claim_next(at(30), at(0))
            .await
            .expect("claim_next")
            .is_none()
    );
}

/// A session id used before: the same request answers the first task, a
/// different one is ALREADY_EXISTS; another app has its own session ids.
pub async fn insert_with_a_used_session_id(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let fb = upload(&*store, b, "fb").await;
    let with_session = |app, file: &FileId, priority| {
        let request = TaskRequest::new(transcode(file), priority, "s-1".into(), "c".into())
            .expect("valid request");
        NewTask {
            id: TaskType::Transcode.new_id(),
            app_id: app,
            request,
            create_time: at(0),
        }
    };
    let first = with_session(a, &fa, 1);
    let first_id = first.id.clone();
    assert_eq!(
        store.insert_task(first).await.expect("first"),
        Inserted::Created(first_id.clone())
    );
    assert_eq!(
        store
            .insert_task(with_session(a, &fa, 1))
            .await
            .expect("same request"),
        Inserted::Existing(first_id.clone())
    );
    let r = store.insert_task(with_session(a, &fa, 2)).await;
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
    let other = with_session(b, &fb, 1);
    let other_id = other.id.clone();
    assert_eq!(
        store.insert_task(other).await.expect("other app"),
        Inserted::Created(other_id)
    );
    assert_eq!(list_all(&*store, a, &query()).await, vec![first_id]);
}

/// FAILED_PRECONDITION for a delete of a file a waiting or running task
/// reads; once that task ended, the delete is taken.
pub async fn insert_of_a_delete_of_a_file_in_use_fails_precondition(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let reader = queue(&*store, app, &f, at(0)).await;
    let r = store
        .insert_task(new_task(app, delete(&[&f]), 0, at(1)))
        .await;
    assert!(is_failed_precondition(&r), "waiting reader: {r:?}");
    let c = claim_of(&*store, &reader, at(2)).await;
    let r = store
        .insert_task(new_task(app, delete(&[&f]), 0, at(3)))
        .await;
    assert!(is_failed_precondition(&r), "running reader: {r:?}");
    assert_eq!(list_all(&*store, app, &query()).await, vec![reader]);
    finish(&*store, &c.lease, done(), at(4)).await;
    insert(&*store, app, delete(&[&f]), 0, at(5)).await;
}

/// Claims take the highest priority first, then the oldest, across apps;
/// the claimed task is PROCESSING since `now`.
pub async fn claim_follows_priority_then_fifo(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let fb = upload(&*store, b, "fb").await;
    let low = insert(&*store, a, transcode(&fa), -5, at(1)).await;
    let first_high = insert(&*store, a, snapshot(&fa), 7, at(2)).await;
    let mid = insert(&*store, a, transcode(&fa), 0, at(3)).await;
    let second_high = insert(&*store, b, transcode(&fb), 7, at(4)).await;
    let other_mid = insert(&*store, b, sprites(&fb), 0, at(5)).await;
    let top = insert(&*store, a, clip(&fa), 10, at(6)).await;

    let mut order = Vec::new();
    for i in 0..6 {
        let now = at(100 + i);
        let c = claim(&*store, now).await;
        assert_eq!(c.task.status, TaskStatus::Processing);
        assert_eq!(c.task.begin_process_time, Some(now));
        assert_eq!(c.lease.task_id, c.task.id);
        let stored = task(&*store, c.task.app_id, &c.task.id).await;
        assert_eq!(stored.status, TaskStatus::Processing);
        assert_eq!(stored.begin_process_time, Some(now));
        order.push(c.task.id);
    }
    assert_eq!(
        order,
        [top, first_high, second_high, mid, other_mid, low],
        "priority, then first in first out"
    );
    assert!(
        store
            .claim_next(at(200), at(150))
            .await
            .expect("claim_next")
            .is_none(),
        "nothing left to claim"
    );
    assert_eq!(count(&*store, a, TaskStatus::Processing).await, 4);
    assert_eq!(count(&*store, b, TaskStatus::Processing).await, 2);
    assert_eq!(count(&*store, a, TaskStatus::Waiting).await, 0);
}

/// Each claim of a task hands out a larger fencing token than any before.
pub async fn claim_tokens_grow_with_every_claim(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let mut last: Option<i64> = None;
    for i in 0..3 {
        let c = claim_of(&*store, &id, at(10 * i)).await;
        if let Some(prev) = last {
            assert!(c.lease.token > prev, "token {} after {prev}", c.lease.token);
        }
        last = Some(c.lease.token);
        match i {
            0 => assert!(store.release(&c.lease).await.expect("release")),
            1 => {
                let r = store
                    .recover(Orphans::All, 5, at(10 * i + 1))
                    .await
                    .expect("recover");
                assert_eq!(r.requeued, 1);
            }
            _ => {
                finish(&*store, &c.lease, done(), at(10 * i + 1)).await;
            }
        }
    }
    store.redo_task(app, &id, at(50)).await.expect("redo");
    let c = claim_of(&*store, &id, at(60)).await;
    assert!(
        Some(c.lease.token) > last,
        "a redone task's claim fences the old runs too"
    );
}

/// A worker whose task was given to another (release and claim again, or
/// lease expiry and recovery) can no longer write anything.
pub async fn a_stale_token_cannot_write(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let first = claim_of(&*store, &id, at(1)).await;
    assert!(store.release(&first.lease).await.expect("release"));
    assert_eq!(
        store
            .heartbeat(&first.lease, 5, at(100))
            .await
            .expect("heartbeat"),
        LeaseState::Lost,
        "released, not yet claimed again"
    );
    let second = claim_of(&*store, &id, at(2)).await;
    assert!(second.lease.token > first.lease.token);

    let stale = &first.lease;
    assert_eq!(
        store
            .heartbeat(stale, 50, at(100))
            .await
            .expect("heartbeat"),
        LeaseState::Lost
    );
    let zombie_file = output_of(app, &id, "zombie", at(3));
    assert_eq!(
        store
            .record_step(
                stale,
                60,
                &play_set(&zombie_file.file_id),
                vec![zombie_file.clone()],
                Some(step_draft(&id, 1)),
            )
            .await
            .expect("record_step"),
        LeaseState::Lost
    );
    assert!(
        store
            .finish(stale, done(), at(4))
            .await
            .expect("finish")
            .is_none()
    );
    assert!(!store.release(stale).await.expect("release"));

    let t = task(&*store, app, &id).await;
    assert_eq!(t.status, TaskStatus::Processing, "the new worker's task");
    assert_eq!((t.progress, t.output), (0, None), "no stale progress");
    assert!(
        store
            .get_media(app, &zombie_file.file_id)
            .await
            .expect("get_media")
            .is_none(),
        "no stale media"
    );
    assert!(pending(&*store, app).await.is_empty(), "no stale event");

    // A lease for a task that does not exist holds nothing either.
    let forged = Lease {
        task_id: TaskId::from_stored("transcode-ffffffffffffffffffffffffffffffff".into()),
        token: second.lease.token,
    };
    assert_eq!(
        store.heartbeat(&forged, 1, at(5)).await.expect("heartbeat"),
        LeaseState::Lost
    );

    // The current holder writes.
    assert_eq!(
        store
            .heartbeat(&second.lease, 10, at(100))
            .await
            .expect("heartbeat"),
        HELD
    );
    finish(&*store, &second.lease, done(), at(6)).await;
    let t = task(&*store, app, &id).await;
    assert_eq!((t.status, t.attempt), (TaskStatus::Finish, 1));
}

/// Once a task ended, even its last holder's token is stale.
pub async fn an_ended_task_takes_no_more_writes(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    finish(&*store, &c.lease, done(), at(2)).await;
    let before = task(&*store, app, &id).await;
    let events_before = pending(&*store, app).await.len();

    assert_eq!(
        store
            .heartbeat(&c.lease, 5, at(100))
            .await
            .expect("heartbeat"),
        LeaseState::Lost
    );
    assert_eq!(
        store
            .record_step(
                &c.lease,
                5,
                &play_set(&f),
                Vec::new(),
                Some(step_draft(&id, 9))
            )
            .await
            .expect("record_step"),
        LeaseState::Lost
    );
    assert!(
        store
            .finish(&c.lease, failed(errcode::INTERNAL_IO, "late"), at(3))
            .await
            .expect("finish")
            .is_none()
    );
    assert!(!store.release(&c.lease).await.expect("release"));
    assert_eq!(task(&*store, app, &id).await, before);
    assert_eq!(pending(&*store, app).await.len(), events_before);
    assert_eq!(count(&*store, app, TaskStatus::Finish).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 0);
}

/// heartbeat writes progress and extends the lease; record_step writes
/// progress, the output so far, new files and an event together.
pub async fn progress_is_written_by_heartbeat_and_record_step(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = store
        .claim_next(at(10), at(0))
        .await
        .expect("claim_next")
        .expect("a task");
    assert_eq!(
        store
            .heartbeat(&c.lease, 40, at(100))
            .await
            .expect("heartbeat"),
        HELD
    );
    assert_eq!(task(&*store, app, &id).await.progress, 40);
    assert_eq!(
        store
            .recover(Orphans::ExpiredBefore(at(60)), 3, at(60))
            .await
            .expect("recover"),
        Recovered::default(),
        "the heartbeat extended the lease past 60"
    );

    let part = output_of(app, &id, "part1", at(61));
    let so_far = play_set(&part.file_id);
    assert_eq!(
        store
            .record_step(
                &c.lease,
                70,
                &so_far,
                vec![part.clone()],
                Some(step_draft(&id, 1))
            )
            .await
            .expect("record_step"),
        HELD
    );
    let t = task(&*store, app, &id).await;
    assert_eq!((t.status, t.progress), (TaskStatus::Processing, 70));
    assert_eq!(t.output, Some(so_far));
    assert_eq!(
        store
            .get_media(app, &part.file_id)
            .await
            .expect("get_media"),
        Some(part.clone())
    );
    let by_part = crate::task::query::TaskQuery {
        file_id: Some(part.file_id.clone()),
        ..query()
    };
    assert_eq!(
        list_all(&*store, app, &by_part).await,
        vec![id.clone()],
        "a task is listed by the files it wrote"
    );
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1, "the step's event");
    assert_eq!(events[0].order_key, id.as_str());
    assert_eq!(events[0].event.task_id, id.as_str());
    assert_eq!(events[0].event.task_sequence, 1);
    assert_eq!(events[0].event.event_type, "ProcedureStateChanged");
    assert_eq!(envelope(&events[0])["data"]["step"], 1);

    // Without media or event: only progress and output.
    let later = play_set(&f);
    assert_eq!(
        store
            .record_step(&c.lease, 80, &later, Vec::new(), None)
            .await
            .expect("record_step"),
        HELD
    );
    let t = task(&*store, app, &id).await;
    assert_eq!((t.progress, t.output), (80, Some(later)));
    assert_eq!(pending(&*store, app).await.len(), 1);
}

/// A successful finish: FINISH, err_code 0, progress 100, the output, the
/// finish time, and the new files recorded with it.
pub async fn finish_records_the_end_outputs_and_new_media(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(10)).await;
    store
        .heartbeat(&c.lease, 55, at(100))
        .await
        .expect("heartbeat");
    let outs = [
        output_of(app, &id, "out1", at(20)),
        output_of(app, &id, "out2", at(20)),
    ];
    let output = play_set(&outs[0].file_id);
    let removed = finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: "ok".into(),
            output: Some(output.clone()),
            new_media: outs.to_vec(),
            follow_up: None,
        },
        at(20),
    )
    .await;
    assert!(removed.is_empty(), "a finish removes no file");
    let t = task(&*store, app, &id).await;
    assert_eq!(t.status, TaskStatus::Finish);
    assert_eq!((t.err_code, t.message.as_str()), (0, "ok"));
    assert_eq!(t.progress, 100);
    assert_eq!(t.output, Some(output));
    assert_eq!(t.begin_process_time, Some(at(10)));
    assert_eq!(t.finish_time, Some(at(20)));
    assert_eq!(t.attempt, 1);
    for m in &outs {
        assert_eq!(
            store.get_media(app, &m.file_id).await.expect("get_media"),
            Some(m.clone())
        );
    }
    let recorded = store
        .recorded_files(vec!["out1".into(), "out2".into(), "nope".into()])
        .await
        .expect("recorded_files");
    assert_eq!(recorded.len(), 2);
    assert!(recorded.contains("out1") && recorded.contains("out2"));
    assert_eq!(count(&*store, app, TaskStatus::Finish).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
}

/// A failed finish keeps the error code and message, and no output.
pub async fn finish_with_an_error_keeps_code_and_message(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(10)).await;
    finish(
        &*store,
        &c.lease,
        failed(errcode::TRANSCODE_FAILED, "ffmpeg exited 1"),
        at(15),
    )
    .await;
    let t = task(&*store, app, &id).await;
    assert_eq!(t.status, TaskStatus::Finish);
    assert_eq!(t.err_code, errcode::TRANSCODE_FAILED);
    assert_eq!(t.message, "ffmpeg exited 1");
    assert_eq!(t.output, None);
    assert_eq!(t.finish_time, Some(at(15)));
}

/// A delete's end removes the files' rows and their renditions' (what
/// tasks reading them wrote), and says which.
pub async fn finish_deleted_removes_files_and_their_renditions(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let src = upload(&*store, app, "src").await;
    let keep = upload(&*store, app, "keep").await;
    let t = queue(&*store, app, &src, at(0)).await;
    let c = claim_of(&*store, &t, at(1)).await;
    let rendition = output_of(app, &t, "rend", at(2));
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(play_set(&rendition.file_id)),
            new_media: vec![rendition.clone()],
            follow_up: None,
        },
        at(2),
    )
    .await;

    // A clip's output is media of its own, not a rendition.
    let cut = insert(&*store, app, clip(&src), 0, at(2)).await;
    let c = claim_of(&*store, &cut, at(2)).await;
    let clip_out = output_of(app, &cut, "clipped", at(2));
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: None,
            new_media: vec![clip_out.clone()],
            follow_up: None,
        },
        at(2),
    )
    .await;

    let del = insert(&*store, app, delete(&[&src]), 0, at(3)).await;
    let c = claim_of(&*store, &del, at(4)).await;
    let mut removed = finish(
        &*store,
        &c.lease,
        Outcome::Deleted {
            files: vec![src.clone()],
        },
        at(5),
    )
    .await;
    removed.sort();
    let mut expected = vec![src.clone(), rendition.file_id.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    for f in &expected {
        assert!(
            store.get_media(app, f).await.expect("get_media").is_none(),
            "{f} is gone"
        );
    }
    for kept in [&keep, &clip_out.file_id] {
        assert!(
            store
                .get_media(app, kept)
                .await
                .expect("get_media")
                .is_some(),
            "{kept} is kept"
        );
    }
    let d = task(&*store, app, &del).await;
    assert_eq!((d.status, d.err_code), (TaskStatus::Finish, 0));
    match d.output {
        Some(TaskOutput::DeleteMedia { mut deleted }) => {
            deleted.sort();
            assert_eq!(deleted, expected);
        }
        other => panic!("a delete's output names the files, got {other:?}"),
    }
}

/// A delete whose file a waiting task reads (queued after the delete) ends
/// FILE_IN_USE and removes nothing.
pub async fn finish_deleted_of_a_file_in_use_deletes_nothing(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let del = insert(&*store, app, delete(&[&f]), 5, at(0)).await;
    let reader = queue(&*store, app, &f, at(1)).await;
    let c = claim_of(&*store, &del, at(2)).await;
    let removed = finish(
        &*store,
        &c.lease,
        Outcome::Deleted {
            files: vec![f.clone()],
        },
        at(3),
    )
    .await;
    assert!(removed.is_empty());
    assert!(store.get_media(app, &f).await.expect("get_media").is_some());
    let d = task(&*store, app, &del).await;
    assert_eq!(
        (d.status, d.err_code),
        (TaskStatus::Finish, errcode::FILE_IN_USE)
    );
    assert_eq!(
        task(&*store, app, &reader).await.status,
        TaskStatus::Waiting
    );
}

/// A finish that cannot be written whole (its follow-up task names a file
/// that is not there) writes nothing: the task still runs, its files are
/// not recorded, no event.
pub async fn finish_is_all_or_nothing(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    let out = output_of(app, &id, "out", at(2));
    let follow_up = new_task(app, transcode(&FileId::from_stored("404".into())), 0, at(2));
    let r = store
        .finish(
            &c.lease,
            Outcome::Finished {
                err_code: 0,
                message: String::new(),
                output: Some(play_set(&out.file_id)),
                new_media: vec![out.clone()],
                follow_up: Some(Box::new(follow_up)),
            },
            at(2),
        )
        .await;
    assert!(r.is_err(), "{r:?}");
    let t = task(&*store, app, &id).await;
    assert_eq!((t.status, t.output), (TaskStatus::Processing, None));
    assert!(
        store
            .get_media(app, &out.file_id)
            .await
            .expect("get_media")
            .is_none()
    );
    assert!(pending(&*store, app).await.is_empty());
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Finish).await, 0);
    // The lease still holds, and a follow-up that can be written is.
    let follow_up = new_task(app, sprites(&out.file_id), 0, at(3));
    let follow_id = follow_up.id.clone();
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(play_set(&out.file_id)),
            new_media: vec![out.clone()],
            follow_up: Some(Box::new(follow_up)),
        },
        at(3),
    )
    .await;
    assert_eq!(task(&*store, app, &id).await.status, TaskStatus::Finish);
    assert_eq!(
        task(&*store, app, &follow_id).await.status,
        TaskStatus::Waiting
    );
}

/// Redo: back to WAITING with attempt + 1 and the run's fields cleared;
/// every earlier attempt is kept, in order, for DescribeTask.
pub async fn redo_keeps_the_history(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(10)).await;
    store
        .heartbeat(&c.lease, 50, at(100))
        .await
        .expect("heartbeat");
    finish(
        &*store,
        &c.lease,
        failed(errcode::TRANSCODE_FAILED, "boom"),
        at(20),
    )
    .await;

    let t = store.redo_task(app, &id, at(30)).await.expect("redo");
    assert_eq!(t.status, TaskStatus::Waiting);
    assert_eq!(t.attempt, 2);
    assert_eq!((t.err_code, t.message.as_str(), t.progress), (0, "", 0));
    assert_eq!((t.begin_process_time, t.finish_time), (None, None));
    assert_eq!(t.output, None);
    assert!(!t.cancel_requested);
    assert_eq!(t.create_time, at(0), "a redo keeps the create time");
    let first = AttemptRecord {
        attempt: 1,
        status: TaskStatus::Finish,
        err_code: errcode::TRANSCODE_FAILED,
        message: "boom".into(),
        begin_process_time: Some(at(10)),
        finish_time: Some(at(20)),
        output: None,
    };
    let t = task_with_attempts(&*store, app, &id).await;
    assert_eq!(t.previous_attempts, vec![first.clone()]);
    assert!(
        task(&*store, app, &id).await.previous_attempts.is_empty(),
        "without attempts asked for"
    );
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Finish).await, 0);

    let c = claim_of(&*store, &id, at(40)).await;
    assert_eq!(c.task.attempt, 2);
    let output = play_set(&f);
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(output.clone()),
            new_media: Vec::new(),
            follow_up: None,
        },
        at(50),
    )
    .await;
    store.redo_task(app, &id, at(60)).await.expect("redo");
    let t = task_with_attempts(&*store, app, &id).await;
    assert_eq!(t.attempt, 3);
    assert_eq!(
        t.previous_attempts,
        vec![
            first,
            AttemptRecord {
                attempt: 2,
                status: TaskStatus::Finish,
                err_code: 0,
                message: String::new(),
                begin_process_time: Some(at(40)),
                finish_time: Some(at(50)),
                output: Some(output),
            }
        ]
    );
    let overview = store
        .overview(app, Default::default())
        .await
        .expect("overview");
    assert_eq!(overview.total(), 1, "a redone task is counted once");
}

/// An ABORTED task can be redone too; its aborted attempt is kept.
pub async fn redo_of_an_aborted_task(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    store.cancel_task(app, &id, at(5)).await.expect("cancel");
    let t = store.redo_task(app, &id, at(6)).await.expect("redo");
    assert_eq!((t.status, t.attempt), (TaskStatus::Waiting, 2));
    let t = task_with_attempts(&*store, app, &id).await;
    assert_eq!(t.previous_attempts.len(), 1);
    let prev = &t.previous_attempts[0];
    assert_eq!((prev.attempt, prev.status), (1, TaskStatus::Aborted));
    assert_eq!(prev.finish_time, Some(at(5)));
    assert_eq!(count(&*store, app, TaskStatus::Aborted).await, 0);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 1);
    claim_of(&*store, &id, at(7)).await;
}

/// Only an ended task can be redone: WAITING and PROCESSING are
/// FAILED_PRECONDITION (and unchanged), an unknown id NOT_FOUND.
pub async fn redo_refuses_unended_and_unknown_tasks(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let r = store.redo_task(app, &id, at(1)).await;
    assert!(is_failed_precondition(&r), "waiting: {r:?}");
    let c = claim_of(&*store, &id, at(2)).await;
    let r = store.redo_task(app, &id, at(3)).await;
    assert!(is_failed_precondition(&r), "processing: {r:?}");
    let t = task_with_attempts(&*store, app, &id).await;
    assert_eq!((t.status, t.attempt), (TaskStatus::Processing, 1));
    assert!(t.previous_attempts.is_empty());
    assert_eq!(
        store
            .heartbeat(&c.lease, 1, at(50))
            .await
            .expect("heartbeat"),
        HELD,
        "the failed redo left the lease alone"
    );
    let unknown = TaskId::from_stored("transcode-00000000000000000000000000000000".into());
    let r = store.redo_task(app, &unknown, at(4)).await;
    assert!(is_not_found(&r), "{r:?}");
}

/// CancelTask on a WAITING task ends it ABORTED at once, and it is never
/// claimed.
pub async fn cancel_aborts_a_waiting_task_at_once(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let t = store.cancel_task(app, &id, at(5)).await.expect("cancel");
    assert_eq!(t.status, TaskStatus::Aborted);
    assert_eq!(t.finish_time, Some(at(5)));
    assert_eq!(task(&*store, app, &id).await, t);
    assert!(
        store
            .claim_next(at(30), at(6))
            .await
            .expect("claim_next")
            .is_none()
    );
    assert_eq!(count(&*store, app, TaskStatus::Aborted).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 0);

    let unknown = TaskId::from_stored("transcode-00000000000000000000000000000000".into());
    let r = store.cancel_task(app, &unknown, at(7)).await;
    assert!(is_not_found(&r), "{r:?}");
}

/// CancelTask on a PROCESSING task flags it for its worker, who sees the
/// flag on its next write and ends the task ABORTED.
pub async fn cancel_flags_a_running_task(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    let t = store.cancel_task(app, &id, at(5)).await.expect("cancel");
    assert_eq!(
        (t.status, t.cancel_requested),
        (TaskStatus::Processing, true)
    );
    assert_eq!(t.finish_time, None);
    let flagged = LeaseState::Held {
        cancel_requested: true,
    };
    assert_eq!(
        store
            .heartbeat(&c.lease, 20, at(100))
            .await
            .expect("heartbeat"),
        flagged
    );
    assert_eq!(
        store
            .record_step(&c.lease, 30, &play_set(&f), Vec::new(), None)
            .await
            .expect("record_step"),
        flagged
    );
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 1);
    finish(&*store, &c.lease, Outcome::Aborted, at(8)).await;
    let t = task(&*store, app, &id).await;
    assert_eq!(t.status, TaskStatus::Aborted);
    assert_eq!(t.finish_time, Some(at(8)));
    assert_eq!(count(&*store, app, TaskStatus::Aborted).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
}

/// CancelTask on an ended task leaves it as it is (whether the store
/// answers with the task or FAILED_PRECONDITION), and writes no event.
pub async fn cancel_of_an_ended_task_changes_nothing(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    run_to_end(&*store, &id, at(1), at(2)).await;
    let before = task(&*store, app, &id).await;
    let events = pending(&*store, app).await.len();
    match store.cancel_task(app, &id, at(3)).await {
        Ok(t) => assert_eq!(t, before),
        Err(Error::FailedPrecondition(_)) => {}
        Err(e) => panic!("cancel of a FINISH task: {e}"),
    }
    assert_eq!(task(&*store, app, &id).await, before);
    assert_eq!(pending(&*store, app).await.len(), events);
}

/// release gives the task back to the queue as it was before the claim:
/// WAITING, same attempt, no progress; no event.
pub async fn release_requeues_without_counting_an_attempt(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    store
        .heartbeat(&c.lease, 50, at(100))
        .await
        .expect("heartbeat");
    assert!(store.release(&c.lease).await.expect("release"));
    let t = task(&*store, app, &id).await;
    assert_eq!(t.status, TaskStatus::Waiting);
    assert_eq!((t.attempt, t.progress), (1, 0));
    assert_eq!(t.finish_time, None);
    assert!(pending(&*store, app).await.is_empty());
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
    let again = claim_of(&*store, &id, at(2)).await;
    assert_eq!(again.task.attempt, 1);
    assert_eq!(again.task.begin_process_time, Some(at(2)));
}

/// A release of a task whose cancel was requested ends it ABORTED rather
/// than queueing it again.
pub async fn release_of_a_cancelled_task_aborts_it(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    store.cancel_task(app, &id, at(2)).await.expect("cancel");
    assert!(store.release(&c.lease).await.expect("release"));
    assert_eq!(task(&*store, app, &id).await.status, TaskStatus::Aborted);
    assert_eq!(count(&*store, app, TaskStatus::Aborted).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 0);
    assert!(
        store
            .claim_next(at(30), at(3))
            .await
            .expect("claim_next")
            .is_none()
    );
}

/// recover(ExpiredBefore) requeues the running tasks whose lease ended
/// before the time, with attempt + 1, and leaves the others running.
pub async fn recover_requeues_expired_leases_only(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let short = queue(&*store, app, &f, at(0)).await;
    let long = queue(&*store, app, &f, at(1)).await;
    let waiting = queue(&*store, app, &f, at(2)).await;
    let c1 = store
        .claim_next(at(10), at(0))
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(c1.task.id, short);
    let c2 = store
        .claim_next(at(60), at(0))
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(c2.task.id, long);
    store
        .heartbeat(&c1.lease, 30, at(10))
        .await
        .expect("heartbeat");

    let r = store
        .recover(Orphans::ExpiredBefore(at(30)), 3, at(30))
        .await
        .expect("recover");
    assert_eq!(
        r,
        Recovered {
            requeued: 1,
            failed: 0
        }
    );
    let t = task(&*store, app, &short).await;
    assert_eq!(
        (t.status, t.attempt, t.progress),
        (TaskStatus::Waiting, 2, 0)
    );
    assert_eq!(t.begin_process_time, None);
    assert_eq!(
        task(&*store, app, &long).await.status,
        TaskStatus::Processing
    );
    assert_eq!(
        task(&*store, app, &waiting).await.status,
        TaskStatus::Waiting
    );
    assert_eq!(
        store
            .heartbeat(&c1.lease, 40, at(100))
            .await
            .expect("heartbeat"),
        LeaseState::Lost,
        "the recovered task's old lease is stale"
    );
    assert!(
        pending(&*store, app).await.is_empty(),
        "a requeue writes no event"
    );
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 2);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 1);

    // All: whatever runs.
    let r = store
        .recover(Orphans::All, 3, at(31))
        .await
        .expect("recover");
    assert_eq!(
        r,
        Recovered {
            requeued: 1,
            failed: 0
        }
    );
    assert_eq!(task(&*store, app, &long).await.attempt, 2);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 3);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
    assert_eq!(
        store
            .recover(Orphans::All, 3, at(32))
            .await
            .expect("recover"),
        Recovered::default()
    );
}

/// A task recovered more than `max_recoveries` times ends FINISH with
/// WORKER_LOST (and its completion event) instead of running again.
pub async fn recover_gives_up_after_max_recoveries(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    for round in 0..2 {
        let now = at(10 * round);
        claim_of(&*store, &id, now).await;
        let r = store.recover(Orphans::All, 2, now).await.expect("recover");
        assert_eq!(
            r,
            Recovered {
                requeued: 1,
                failed: 0
            },
            "round {round}"
        );
    }
    claim_of(&*store, &id, at(100)).await;
    let r = store
        .recover(Orphans::All, 2, at(101))
        .await
        .expect("recover");
    assert_eq!(
        r,
        Recovered {
            requeued: 0,
            failed: 1
        }
    );
    let t = task(&*store, app, &id).await;
    assert_eq!(
        (t.status, t.err_code),
        (TaskStatus::Finish, errcode::WORKER_LOST)
    );
    assert_eq!(t.attempt, 3);
    assert_eq!(t.finish_time, Some(at(101)));
    assert_eq!(count(&*store, app, TaskStatus::Finish).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 0);
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1, "the end's event");
    assert_eq!(envelope(&events[0])["data"]["status"], errcode::WORKER_LOST);
}

/// A running task whose cancel was requested before its worker was lost is
/// not run again: recovery ends it ABORTED.
pub async fn recover_aborts_a_cancelled_task(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    claim_of(&*store, &id, at(1)).await;
    store.cancel_task(app, &id, at(2)).await.expect("cancel");
    let r = store
        .recover(Orphans::All, 3, at(3))
        .await
        .expect("recover");
    assert_eq!(r.requeued, 0, "{r:?}");
    assert_eq!(task(&*store, app, &id).await.status, TaskStatus::Aborted);
    assert_eq!(count(&*store, app, TaskStatus::Aborted).await, 1);
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 0);
    assert!(
        store
            .claim_next(at(30), at(4))
            .await
            .expect("claim_next")
            .is_none()
    );
}

/// Claims made at the same time never hand out the same task: each queued
/// task is claimed exactly once.
pub async fn concurrent_claims_never_share_a_task(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let mut queued = Vec::new();
    for i in 0..60 {
        queued.push(queue(&*store, app, &f, at(i)).await);
    }
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(c) = store
                    .claim_next(at(1000), at(100))
                    .await
                    .expect("claim_next")
                {
                    got.push((c.task.id, c.lease.token));
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.expect("a claimer"));
    }
    let mut ids: Vec<TaskId> = claimed.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    queued.sort();
    assert_eq!(ids, queued, "every task claimed once");
    assert_eq!(count(&*store, app, TaskStatus::Processing).await, 60);
    assert_eq!(count(&*store, app, TaskStatus::Waiting).await, 0);
}

/// A worker that ends its task normally although a cancel came in too late
/// leaves it FINISH; the task no longer says a cancel is pending ("the
/// worker has not stopped yet" is over).
pub async fn a_finish_clears_a_pending_cancel(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    store.cancel_task(app, &id, at(2)).await.expect("cancel");
    finish(&*store, &c.lease, done(), at(3)).await;
    let t = task(&*store, app, &id).await;
    assert_eq!((t.status, t.err_code), (TaskStatus::Finish, 0));
    assert!(
        !t.cancel_requested,
        "a FINISH task has no cancel pending: {t:?}"
    );
}

/// A pull has no file until it ends; then the file it wrote is its file,
/// and lists by that file find it.
pub async fn finish_of_a_pull_names_its_file(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let spec = crate::task::TaskSpec::PullUpload(crate::task::PullSpec {
        media_url: "https://media.example.com/in/a.mp4".into(),
        file_name: None,
        source_context: String::new(),
        timeout_seconds: crate::task::DEFAULT_PULL_TIMEOUT_SECONDS,
        procedure: None,
    });
    let id = insert(&*store, app, spec, 0, at(0)).await;
    assert_eq!(task(&*store, app, &id).await.file_id, None);
    let c = claim_of(&*store, &id, at(1)).await;
    let pulled = crate::media::MediaFile {
        source_type: crate::media::SourceType::Pull,
        ..output_of(app, &id, "pulled", at(2))
    };
    let output = TaskOutput::PullUpload {
        file_id: pulled.file_id.clone(),
        file_url: "http://media.example/pulled/a.mp4".into(),
        size: pulled.size,
        procedure_task_id: None,
    };
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(output.clone()),
            new_media: vec![pulled.clone()],
            follow_up: None,
        },
        at(3),
    )
    .await;
    let t = task(&*store, app, &id).await;
    assert_eq!(t.file_id, Some(pulled.file_id.clone()));
    assert_eq!(t.output, Some(output));
    assert_eq!(
        store
            .get_media(app, &pulled.file_id)
            .await
            .expect("get_media"),
        Some(pulled.clone())
    );
    let q = crate::task::query::TaskQuery {
        file_id: Some(pulled.file_id.clone()),
        ..query()
    };
    assert_eq!(list_all(&*store, app, &q).await, vec![id.clone()]);
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.event_type, "PullComplete");
    assert_eq!(envelope(&events[0])["data"]["fileId"], "pulled");
}
