//! Events: the outbox (an event exists iff the change that makes it was
//! written), per-task order, settling, dead letters, redrive, resend,
//! retention and the counts beyond the queue's window.

use std::time::Duration;

use super::support::*;
use crate::callbacks::{AttemptOutcome, CallbackAttempt};
use crate::events::{DeliveryMode, EventConfig, EventType};
use crate::ids::{AppId, FileId, TaskId};
use crate::store::{Lease, LeaseState, Orphans, Revive, Settled, Store, Stored, Tail};
use crate::task::Outcome;
use crate::task::errcode;

/// A task's completion event is written by the transition that ends it,
/// and by nothing before: not insert, claim, heartbeat, a step without an
/// event, release, a recovery that requeues, nor redo.
pub async fn completion_event_is_written_with_the_end_only(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    assert!(pending(&*store, app).await.is_empty(), "after insert");
    let c = claim_of(&*store, &id, at(1)).await;
    store
        .heartbeat(&c.lease, 10, at(60))
        .await
        .expect("heartbeat");
    store
        .record_step(&c.lease, 20, &play_set(&f), Vec::new(), None)
        .await
        .expect("record_step");
    assert!(store.release(&c.lease).await.expect("release"));
    assert!(pending(&*store, app).await.is_empty(), "after release");
    claim_of(&*store, &id, at(2)).await;
    store
        .recover(Orphans::All, 5, at(3))
        .await
        .expect("recover");
    assert!(pending(&*store, app).await.is_empty(), "after requeue");

    let c = claim_of(&*store, &id, at(4)).await;
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(play_set(&f)),
            new_media: Vec::new(),
            follow_up: None,
        },
        at(10),
    )
    .await;
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.order_key, id.as_str());
    assert_eq!(e.event.task_id, id.as_str());
    assert_eq!(e.event.event_type, EventType::TranscodeComplete.as_str());
    assert_eq!(e.event.task_sequence, 1);
    assert_eq!(e.event.event_time, at(10), "the end's time");
    assert_eq!(e.event.deliveries, 0);
    let v = envelope(e);
    assert_eq!(v["data"]["vodTaskId"], id.as_str());
    assert_eq!(v["data"]["status"], 0);

    store.redo_task(app, &id, at(11)).await.expect("redo");
    assert_eq!(pending(&*store, app).await.len(), 1, "after redo");
    let c = claim_of(&*store, &id, at(12)).await;
    finish(
        &*store,
        &c.lease,
        failed(errcode::TRANSCODE_FAILED, "x"),
        at(20),
    )
    .await;
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event.task_sequence, 2);
    assert_eq!(events[1].event.event_time, at(20));
    assert_ne!(events[0].event.event_id, events[1].event.event_id);
    assert_eq!(
        envelope(&events[1])["data"]["status"],
        errcode::TRANSCODE_FAILED
    );
}

/// A finish with a stale lease writes neither the end nor its event, in any
/// form of outcome.
pub async fn a_stale_finish_writes_no_event(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let id = queue(&*store, app, &f, at(0)).await;
    let first = claim_of(&*store, &id, at(0)).await;
    let r = store
        .recover(Orphans::ExpiredBefore(at(31)), 3, at(31))
        .await
        .expect("recover");
    assert_eq!(r.requeued, 1);
    let second = claim_of(&*store, &id, at(32)).await;
    for outcome in [
        done(),
        failed(errcode::INTERNAL_IO, "zombie"),
        Outcome::Aborted,
        Outcome::Deleted {
            files: vec![f.clone()],
        },
    ] {
        assert!(
            store
                .finish(&first.lease, outcome, at(33))
                .await
                .expect("finish")
                .is_none()
        );
    }
    assert!(pending(&*store, app).await.is_empty());
    assert!(store.get_media(app, &f).await.expect("get_media").is_some());
    finish(
        &*store,
        &second.lease,
        failed(errcode::TRANSCODE_FAILED, "real"),
        at(40),
    )
    .await;
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.task_sequence, 1);
    assert_eq!(
        envelope(&events[0])["data"]["status"],
        errcode::TRANSCODE_FAILED
    );
}

/// Every way a task ends writes one event, of its type, with its status:
/// success, failure, a cancel while waiting, an abort while running,
/// recovery giving up, a delete.
pub async fn each_kind_of_end_writes_its_event(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let gone = upload(&*store, app, "gone").await;

    let ok = queue(&*store, app, &f, at(0)).await;
    run_to_end(&*store, &ok, at(1), at(2)).await;

    let bad = insert(&*store, app, snapshot(&f), 0, at(3)).await;
    let c = claim_of(&*store, &bad, at(4)).await;
    finish(
        &*store,
        &c.lease,
        failed(errcode::SNAPSHOT_FAILED, "no"),
        at(5),
    )
    .await;

    let cancelled = insert(&*store, app, sprites(&f), 0, at(6)).await;
    store
        .cancel_task(app, &cancelled, at(7))
        .await
        .expect("cancel");

    let stopped = insert(&*store, app, clip(&f), 0, at(8)).await;
    let c = claim_of(&*store, &stopped, at(9)).await;
    store
        .cancel_task(app, &stopped, at(10))
        .await
        .expect("cancel");
    finish(&*store, &c.lease, Outcome::Aborted, at(11)).await;

    let lost = queue(&*store, app, &f, at(12)).await;
    claim_of(&*store, &lost, at(13)).await;
    let r = store
        .recover(Orphans::All, 0, at(14))
        .await
        .expect("recover");
    assert_eq!(r.failed, 1);

    let del = insert(&*store, app, delete(&[&gone]), 0, at(15)).await;
    let c = claim_of(&*store, &del, at(16)).await;
    finish(
        &*store,
        &c.lease,
        Outcome::Deleted {
            files: vec![gone.clone()],
        },
        at(17),
    )
    .await;

    let events = pending(&*store, app).await;
    let got: Vec<(String, String, serde_json::Value)> = events
        .iter()
        .map(|e| {
            (
                e.event.task_id.clone(),
                e.event.event_type.clone(),
                envelope(e)["data"]["status"].clone(),
            )
        })
        .collect();
    let want = |id: &TaskId, t: EventType, status: i32| {
        (
            id.as_str().to_string(),
            t.as_str().to_string(),
            serde_json::json!(status),
        )
    };
    assert_eq!(
        got,
        vec![
            want(&ok, EventType::TranscodeComplete, 0),
            want(
                &bad,
                EventType::CreateSnapshotByTimeOffsetComplete,
                errcode::SNAPSHOT_FAILED
            ),
            want(
                &cancelled,
                EventType::CreateImageSpriteComplete,
                errcode::ABORTED
            ),
            want(&stopped, EventType::ClipComplete, errcode::ABORTED),
            want(&lost, EventType::TranscodeComplete, errcode::WORKER_LOST),
            want(&del, EventType::FileDeleted, 0),
        ]
    );
    let times: Vec<_> = events.iter().map(|e| e.event.event_time).collect();
    assert_eq!(times, vec![at(2), at(5), at(7), at(11), at(14), at(17)]);
}

/// insert_media writes the file, its event and its follow-up task
/// together, or none of them.
pub async fn insert_media_writes_media_event_and_follow_up_together(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let m = upload_of(app, "up1", at(5));
    let follow = new_task(app, transcode(&m.file_id), 0, at(5));
    let follow_id = follow.id.clone();
    store
        .insert_media(&m, Some(upload_draft(&m)), Some(follow))
        .await
        .expect("insert_media");
    assert_eq!(
        store.get_media(app, &m.file_id).await.expect("get_media"),
        Some(m.clone())
    );
    assert_eq!(
        task(&*store, app, &follow_id).await.status,
        crate::task::TaskStatus::Waiting
    );
    let events = pending(&*store, app).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event.event_type, EventType::NewFileUpload.as_str());
    assert_eq!(e.order_key, format!("file:{}", m.file_id));
    assert_eq!(e.event.task_id, "", "a file's event has no task");
    assert_eq!(e.event.task_sequence, 1);
    assert_eq!(e.event.event_time, at(5), "the file's create time");
    assert_eq!(envelope(e)["data"]["fileId"], "up1");

    // The follow-up cannot be written: neither can the file nor its event.
    let m2 = upload_of(app, "up2", at(6));
    let broken = new_task(
        app,
        concat(&m2.file_id, &FileId::from_stored("404".into())),
        0,
        at(6),
    );
    let broken_id = broken.id.clone();
    let r = store
        .insert_media(&m2, Some(upload_draft(&m2)), Some(broken))
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        store
            .get_media(app, &m2.file_id)
            .await
            .expect("get_media")
            .is_none()
    );
    assert!(
        store
            .get_task(app, &broken_id, false)
            .await
            .expect("get_task")
            .is_none()
    );
    assert_eq!(pending(&*store, app).await.len(), 1);
    assert!(
        store
            .recorded_files(vec!["up2".into()])
            .await
            .expect("recorded_files")
            .is_empty()
    );
}

/// A worker's step, with an event.
async fn step(store: &dyn Store, lease: &Lease, id: &TaskId, n: i64) {
    let file = FileId::from_stored("f".into());
    let state = store
        .record_step(
            lease,
            10,
            &play_set(&file),
            Vec::new(),
            Some(step_draft(id, n)),
        )
        .await
        .expect("record_step");
    assert!(matches!(state, LeaseState::Held { .. }), "{state:?}");
}

/// Events come in seq order; the events of one key (a task, a file) carry
/// task sequence 1, 2, 3… in that order, steps and ends alike.
pub async fn load_events_keeps_per_task_order(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let a = queue(&*store, app, &f, at(0)).await;
    let b = queue(&*store, app, &f, at(1)).await;
    let ca = claim_of(&*store, &a, at(2)).await;
    let cb = claim_of(&*store, &b, at(2)).await;
    step(&*store, &ca.lease, &a, 1).await;
    step(&*store, &cb.lease, &b, 1).await;
    step(&*store, &ca.lease, &a, 2).await;
    finish(&*store, &ca.lease, done(), at(10)).await;
    let m = upload_of(app, "up", at(11));
    store
        .insert_media(&m, Some(upload_draft(&m)), None)
        .await
        .expect("insert_media");
    finish(&*store, &cb.lease, done(), at(12)).await;
    store.redo_task(app, &a, at(13)).await.expect("redo");
    run_to_end(&*store, &a, at(14), at(15)).await;

    let events = pending(&*store, app).await;
    let s = seqs(&events);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "seq order: {s:?}");
    let file_key = format!("file:{}", m.file_id);
    let got: Vec<(&str, i64)> = events
        .iter()
        .map(|e| (e.order_key.as_str(), e.event.task_sequence))
        .collect();
    assert_eq!(
        got,
        vec![
            (a.as_str(), 1),
            (b.as_str(), 1),
            (a.as_str(), 2),
            (a.as_str(), 3),
            (file_key.as_str(), 1),
            (b.as_str(), 2),
            (a.as_str(), 4),
        ]
    );
    for e in &events {
        envelope(e);
    }
}

/// load_events returns pending events after `after`, at most `limit`;
/// settled ones are not pending.
pub async fn load_events_pages_by_seq(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 5, 0).await;
    let s = seqs(&e);
    let st: &dyn Store = &*store;
    let load = move |after, limit| async move {
        seqs(
            &st.load_events(app, after, limit)
                .await
                .expect("load_events"),
        )
    };
    assert_eq!(load(0, 2).await, s[..2]);
    assert_eq!(load(s[1], 2).await, s[2..4]);
    assert_eq!(load(s[3], 2).await, s[4..]);
    assert!(load(s[4], 2).await.is_empty());
    store
        .settle_events(app, vec![(s[2], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[3], 5)], Settled::DeadLettered)
        .await
        .expect("settle");
    assert_eq!(load(s[1], 2).await, vec![s[4]]);
    assert_eq!(load(0, 100).await, vec![s[0], s[1], s[4]]);
    assert_eq!(
        load(0, 100).await,
        seqs(&pending(&*store, app).await),
        "same answer twice"
    );
}

/// Settling an event that is settled already leaves the first outcome and
/// its delivery count; settling unknown seqs is no error.
pub async fn settling_is_idempotent(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 3, 0).await;
    let s = seqs(&e);
    let st: &dyn Store = &*store;
    let settle = move |seq, deliveries, outcome| async move {
        st.settle_events(app, vec![(seq, deliveries)], outcome)
            .await
            .expect("settle_events")
    };
    settle(s[0], 1, Settled::Confirmed).await;
    settle(s[0], 9, Settled::DeadLettered).await;
    settle(s[0], 2, Settled::Confirmed).await;
    assert_eq!(state(&*store, app, s[0]).await, Some(Stored::Confirmed));

    settle(s[1], 4, Settled::DeadLettered).await;
    settle(s[1], 7, Settled::DeadLettered).await;
    settle(s[1], 8, Settled::Confirmed).await;
    assert_eq!(state(&*store, app, s[1]).await, Some(Stored::DeadLettered));
    let dead = store
        .dead_letter_events(app, 10, None)
        .await
        .expect("dead_letter_events");
    assert_eq!(dead.events.len(), 1);
    assert_eq!(dead.events[0].event_id, e[1].event.event_id);
    assert_eq!(dead.events[0].deliveries, 4, "the first settle's count");

    store
        .settle_events(app, vec![(s[2] + 1000, 1), (-1, 1)], Settled::Confirmed)
        .await
        .expect("unknown seqs");
    store
        .settle_events(app, Vec::new(), Settled::Confirmed)
        .await
        .expect("no seqs");
    assert_eq!(state(&*store, app, s[2]).await, Some(Stored::Pending));
    assert_eq!(seqs(&pending(&*store, app).await), vec![s[2]]);
    // Several in one call.
    let more = ended_tasks(&*store, app, 2, 10).await;
    store
        .settle_events(
            app,
            vec![(s[2], 1), (more[0].seq, 2), (more[1].seq, 3)],
            Settled::Confirmed,
        )
        .await
        .expect("settle_events");
    assert!(pending(&*store, app).await.is_empty());
}

/// event_states: each of the app's seqs with its state; unknown seqs are
/// absent.
pub async fn event_states_report_the_durable_state(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 3, 0).await;
    let s = seqs(&e);
    store
        .settle_events(app, vec![(s[0], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[1], 10)], Settled::DeadLettered)
        .await
        .expect("settle");
    let unknown = s[2] + 1000;
    let states = store
        .event_states(app, vec![s[0], s[1], s[2], unknown])
        .await
        .expect("event_states");
    assert_eq!(states.len(), 3);
    assert_eq!(states[&s[0]], Stored::Confirmed);
    assert_eq!(states[&s[1]], Stored::DeadLettered);
    assert_eq!(states[&s[2]], Stored::Pending);
    assert!(
        store
            .event_states(app, Vec::new())
            .await
            .expect("event_states")
            .is_empty()
    );
}

/// Dead letters come in seq order, `limit` per page, with their delivery
/// counts; `next_after` leads to the next page and is None on the last.
pub async fn dead_letters_page_in_seq_order(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 5, 0).await;
    let s = seqs(&e);
    store
        .settle_events(app, vec![(s[4], 5), (s[0], 1)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[3], 4), (s[1], 2)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[2], 3)], Settled::Confirmed)
        .await
        .expect("settle");
    let dead_ids = |idx: &[usize]| -> Vec<String> {
        idx.iter().map(|&i| e[i].event.event_id.clone()).collect()
    };
    let ids = |p: &crate::store::EventPage| -> Vec<String> {
        p.events.iter().map(|e| e.event_id.clone()).collect()
    };

    let first = store
        .dead_letter_events(app, 3, None)
        .await
        .expect("dead_letter_events");
    assert_eq!(ids(&first), dead_ids(&[0, 1, 3]));
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| e.deliveries)
            .collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    let after = first.next_after.expect("a next page");
    let second = store
        .dead_letter_events(app, 3, Some(after))
        .await
        .expect("dead_letter_events");
    assert_eq!(ids(&second), dead_ids(&[4]));
    assert_eq!(second.events[0].deliveries, 5);
    assert_eq!(second.next_after, None);

    let whole = store
        .dead_letter_events(app, 4, None)
        .await
        .expect("dead_letter_events");
    assert_eq!(ids(&whole), dead_ids(&[0, 1, 3, 4]));
    assert_eq!(whole.next_after, None, "exactly one full page");
    for (got, want) in whole.events.iter().zip([0, 1, 3, 4]) {
        assert_eq!(got.content_json, e[want].event.content_json);
        assert_eq!(got.task_id, e[want].event.task_id);
    }

    let mut paged = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store
            .dead_letter_events(app, 1, after)
            .await
            .expect("dead_letter_events");
        paged.extend(ids(&page));
        after = page.next_after;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(paged, dead_ids(&[0, 1, 3, 4]));
}

/// Redrive (Revive::DeadLettered): the dead letters named (or all) are
/// pending again with no deliveries; confirmed and pending events are not
/// touched.
pub async fn redrive_revives_dead_letters_only(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 4, 0).await;
    let s = seqs(&e);
    store
        .settle_events(app, vec![(s[0], 3), (s[1], 10)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[2], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    let id = |i: usize| e[i].event.event_id.clone();

    let mut back = store
        .revive_events(
            app,
            Some(vec![id(0), id(2), id(3), "ev-unknown".into()]),
            Revive::DeadLettered,
        )
        .await
        .expect("revive_events");
    back.sort_by_key(|p| p.seq);
    assert_eq!(seqs(&back), vec![s[0]]);
    assert_eq!(back[0].event.deliveries, 0);
    assert_eq!(back[0].order_key, e[0].order_key);
    assert_eq!(back[0].event.event_id, id(0));
    assert_eq!(back[0].event.content_json, e[0].event.content_json);
    assert_eq!(state(&*store, app, s[0]).await, Some(Stored::Pending));
    assert_eq!(state(&*store, app, s[1]).await, Some(Stored::DeadLettered));
    assert_eq!(state(&*store, app, s[2]).await, Some(Stored::Confirmed));
    assert_eq!(state(&*store, app, s[3]).await, Some(Stored::Pending));

    assert!(
        store
            .revive_events(app, Some(Vec::new()), Revive::DeadLettered)
            .await
            .expect("revive_events")
            .is_empty(),
        "no ids named: none revived (None is all)"
    );
    let mut back = store
        .revive_events(app, None, Revive::DeadLettered)
        .await
        .expect("revive_events");
    back.sort_by_key(|p| p.seq);
    assert_eq!(seqs(&back), vec![s[1]]);
    assert_eq!(back[0].event.deliveries, 0);
    let dead = store
        .dead_letter_events(app, 10, None)
        .await
        .expect("dead_letter_events");
    assert!(dead.events.is_empty());
    let now_pending = pending(&*store, app).await;
    assert_eq!(seqs(&now_pending), vec![s[0], s[1], s[3]]);
    assert!(now_pending.iter().all(|p| p.event.deliveries == 0));
    assert!(
        store
            .revive_events(app, None, Revive::DeadLettered)
            .await
            .expect("revive_events")
            .is_empty(),
        "nothing left to redrive"
    );
    assert_eq!(state(&*store, app, s[2]).await, Some(Stored::Confirmed));
}

/// Resend (Revive::Settled): confirmed and dead-lettered events named (or
/// all) are pending again with no deliveries.
pub async fn resend_revives_confirmed_and_dead_lettered(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 4, 0).await;
    let s = seqs(&e);
    store
        .settle_events(app, vec![(s[0], 3), (s[2], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    store
        .settle_events(app, vec![(s[1], 5)], Settled::DeadLettered)
        .await
        .expect("settle");

    let back = store
        .revive_events(
            app,
            Some(vec![
                e[0].event.event_id.clone(),
                e[3].event.event_id.clone(),
            ]),
            Revive::Settled,
        )
        .await
        .expect("revive_events");
    assert_eq!(seqs(&back), vec![s[0]]);
    assert_eq!(back[0].event.deliveries, 0);
    assert_eq!(state(&*store, app, s[0]).await, Some(Stored::Pending));

    let mut back = store
        .revive_events(app, None, Revive::Settled)
        .await
        .expect("revive_events");
    back.sort_by_key(|p| p.seq);
    assert_eq!(seqs(&back), vec![s[1], s[2]]);
    assert!(back.iter().all(|p| p.event.deliveries == 0));
    let states = store
        .event_states(app, s.clone())
        .await
        .expect("event_states");
    assert!(
        states.values().all(|st| *st == Stored::Pending),
        "{states:?}"
    );
    assert_eq!(seqs(&pending(&*store, app).await), s);
    assert!(
        store
            .revive_events(app, None, Revive::Settled)
            .await
            .expect("revive_events")
            .is_empty()
    );
}

/// pending_event_seqs: the seqs of the app's pending events among the ids;
/// settled, unknown and other apps' events are left out.
pub async fn pending_event_seqs_name_pending_events_only(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let e = ended_tasks(&*store, a, 4, 0).await;
    let other = ended_tasks(&*store, b, 1, 10).await;
    let s = seqs(&e);
    store
        .settle_events(a, vec![(s[1], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    store
        .settle_events(a, vec![(s[2], 1)], Settled::DeadLettered)
        .await
        .expect("settle");
    let mut ids: Vec<String> = e.iter().map(|p| p.event.event_id.clone()).collect();
    ids.push(other[0].event.event_id.clone());
    ids.push("ev-unknown".into());
    let mut got = store
        .pending_event_seqs(a, ids)
        .await
        .expect("pending_event_seqs");
    got.sort_unstable();
    assert_eq!(got, vec![s[0], s[3]]);
    assert!(
        store
            .pending_event_seqs(a, Vec::new())
            .await
            .expect("pending_event_seqs")
            .is_empty()
    );
}

/// purge_events deletes each app's events older than that app's retention
/// (kept at least that long, whatever their state), and their callback
/// attempts.
pub async fn purge_events_follows_each_apps_retention(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let hour = Duration::from_secs(3600);
    store
        .set_event_config(
            a,
            &EventConfig {
                retention: hour,
                ..EventConfig::default()
            },
        )
        .await
        .expect("set_event_config");
    let default_retention = EventConfig::default().retention.as_secs() as i64;
    let ea0 = ended_tasks(&*store, a, 1, 0).await.remove(0);
    let ea1 = ended_tasks(&*store, a, 1, 1800).await.remove(0);
    let m = upload_of(a, "up", at(100));
    store
        .insert_media(&m, Some(upload_draft(&m)), None)
        .await
        .expect("insert_media");
    let ea2 = pending(&*store, a)
        .await
        .into_iter()
        .find(|p| p.order_key == format!("file:{}", m.file_id))
        .expect("the upload's event");
    let eb0 = ended_tasks(&*store, b, 1, 0).await.remove(0);
    store
        .settle_events(a, vec![(ea0.seq, 1)], Settled::Confirmed)
        .await
        .expect("settle");
    store
        .settle_events(a, vec![(ea2.seq, 9)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .record_attempt(a, ea0.seq, attempt_at(1, 10), None)
        .await
        .expect("record_attempt");

    let st: &dyn Store = &*store;
    let purge = move |secs| async move { st.purge_events(at(secs)).await.expect("purge_events") };
    assert_eq!(purge(3600).await, 0, "exactly as old as the retention");
    assert_eq!(state(&*store, a, ea0.seq).await, Some(Stored::Confirmed));
    assert_eq!(purge(3601).await, 1);
    assert_eq!(state(&*store, a, ea0.seq).await, None);
    assert!(
        store
            .callback_attempts(
                a,
                crate::callbacks::AttemptsOf::Event(ea0.event.event_id.clone())
            )
            .await
            .expect("callback_attempts")
            .is_empty()
    );
    assert_eq!(
        store.last_attempt(a, ea0.seq).await.expect("last_attempt"),
        None
    );
    assert_eq!(purge(3700).await, 0);
    assert_eq!(purge(3701).await, 1, "the dead letter");
    assert!(
        store
            .dead_letter_events(a, 10, None)
            .await
            .expect("dead_letter_events")
            .events
            .is_empty()
    );
    assert_eq!(purge(5400).await, 0);
    assert_eq!(seqs(&pending(&*store, a).await), vec![ea1.seq]);
    assert_eq!(purge(5401).await, 1, "the pending one");
    assert!(pending(&*store, a).await.is_empty());
    assert_eq!(state(&*store, b, eb0.seq).await, Some(Stored::Pending));
    assert_eq!(purge(default_retention).await, 0);
    assert_eq!(purge(default_retention + 1).await, 1);
    assert!(pending(&*store, b).await.is_empty());
    assert_eq!(purge(10 * default_retention).await, 0);
}

fn attempt_at(n: u32, secs: i64) -> CallbackAttempt {
    CallbackAttempt {
        event_id: String::new(),
        attempt: n,
        time: at(secs),
        url: "https://hooks.example/vod".into(),
        http_status: Some(500),
        error: String::new(),
        duration: Duration::from_millis(12),
        response: "oops".into(),
        outcome: AttemptOutcome::Failed,
        next_attempt: Some(at(secs + 60)),
    }
}

/// event_tail: pending events after `after`, ready or held behind an
/// earlier pending event of their key; the app's dead letters and oldest
/// pending event. Exact through settles and revives.
pub async fn event_tail_counts_are_exact(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let t1 = queue(&*store, app, &f, at(0)).await;
    run_to_end(&*store, &t1, at(0), at(10)).await; // e1 (t1)
    store.redo_task(app, &t1, at(11)).await.expect("redo");
    run_to_end(&*store, &t1, at(12), at(20)).await; // e2 (t1), behind e1
    let t2 = queue(&*store, app, &f, at(21)).await;
    run_to_end(&*store, &t2, at(22), at(30)).await; // e3 (t2)
    let m = upload_of(app, "up", at(40));
    store
        .insert_media(&m, Some(upload_draft(&m)), None)
        .await
        .expect("insert_media"); // e4 (file)
    let t3 = queue(&*store, app, &f, at(41)).await;
    run_to_end(&*store, &t3, at(42), at(50)).await; // e5 (t3)
    store.redo_task(app, &t2, at(51)).await.expect("redo");
    run_to_end(&*store, &t2, at(52), at(60)).await; // e6 (t2), behind e3
    let e = pending(&*store, app).await;
    assert_eq!(e.len(), 6);
    let s = seqs(&e);
    store
        .settle_events(app, vec![(s[4], 10)], Settled::DeadLettered)
        .await
        .expect("settle");

    let st: &dyn Store = &*store;
    let tail = move |after| async move { st.event_tail(app, after).await.expect("event_tail") };
    let t = |ready, held, dead_lettered, oldest: Option<i64>| Tail {
        ready,
        held,
        dead_lettered,
        oldest_pending: oldest.map(at),
    };
    assert_eq!(tail(0).await, t(3, 2, 1, Some(10)));
    assert_eq!(tail(s[1]).await, t(2, 1, 1, Some(10)), "e3, e4; e6 held");
    assert_eq!(tail(s[3]).await, t(0, 1, 1, Some(10)), "e6 held");
    assert_eq!(tail(s[5]).await, t(0, 0, 1, Some(10)));

    store
        .settle_events(app, vec![(s[0], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    assert_eq!(tail(0).await, t(3, 1, 1, Some(20)), "e2 is ready now");
    store
        .settle_events(app, vec![(s[2], 10)], Settled::DeadLettered)
        .await
        .expect("settle");
    assert_eq!(tail(0).await, t(3, 0, 2, Some(20)), "e6 no longer held");
    store
        .revive_events(
            app,
            Some(vec![e[2].event.event_id.clone()]),
            Revive::DeadLettered,
        )
        .await
        .expect("revive_events");
    assert_eq!(
        tail(0).await,
        t(3, 1, 1, Some(20)),
        "e3 back in front of e6"
    );
    store
        .settle_events(
            app,
            vec![(s[1], 1), (s[2], 1), (s[3], 1), (s[5], 1)],
            Settled::Confirmed,
        )
        .await
        .expect("settle");
    assert_eq!(tail(0).await, t(0, 0, 1, None));
    let other = new_app(&*store, "b").await;
    assert_eq!(
        store.event_tail(other, 0).await.expect("event_tail"),
        Tail::default()
    );
}

/// An app without a config has the default; a config set is read back as
/// it was written, for that app only.
pub async fn event_config_defaults_and_round_trips(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    assert_eq!(
        store.event_config(a).await.expect("event_config"),
        EventConfig::default()
    );
    let config = EventConfig {
        mode: DeliveryMode::Push,
        notification_url: "https://hooks.example/vod".into(),
        disabled_types: vec![EventType::FileDeleted],
        visibility_timeout: Duration::from_secs(120),
        max_deliveries: 3,
        retention: Duration::from_secs(7200),
        callback_timeout: Duration::from_secs(9),
        retry_schedule: vec![Duration::ZERO, Duration::from_secs(5)],
        disable_after: Duration::from_secs(86_400),
        endpoint_disabled: Some(at(77)),
        ..EventConfig::default()
    };
    store
        .set_event_config(a, &config)
        .await
        .expect("set_event_config");
    assert_eq!(store.event_config(a).await.expect("event_config"), config);
    assert_eq!(
        store.event_config(b).await.expect("event_config"),
        EventConfig::default()
    );
    let back = EventConfig {
        mode: DeliveryMode::Pull,
        ..config
    };
    store
        .set_event_config(a, &back)
        .await
        .expect("set_event_config");
    assert_eq!(store.event_config(a).await.expect("event_config"), back);
}

/// The outbox listener hears of every committed write that added events,
/// by the time that write returns, whichever method wrote them; writes
/// that add none, lose their lease or fail tell it nothing.
pub async fn the_outbox_listener_hears_of_every_write_that_adds_events(store: Dyn) {
    use std::sync::{Arc, Mutex};
    let heard: Arc<Mutex<Vec<AppId>>> = Arc::default();
    let log = Arc::clone(&heard);
    store.listen_outbox(Arc::new(move |apps: &[AppId]| {
        log.lock().expect("the log").extend_from_slice(apps);
    }));
    let take = || std::mem::take(&mut *heard.lock().expect("the log"));

    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let f = upload(&*store, a, "f").await;
    let fb = upload(&*store, b, "fb").await;
    assert_eq!(take(), vec![], "apps and media without events");

    let id = queue(&*store, a, &f, at(0)).await;
    let c = claim_of(&*store, &id, at(1)).await;
    store
        .heartbeat(&c.lease, 10, at(100))
        .await
        .expect("heartbeat");
    store
        .record_step(&c.lease, 20, &play_set(&f), Vec::new(), None)
        .await
        .expect("record_step");
    assert_eq!(
        take(),
        vec![],
        "insert, claim, heartbeat, a step without event"
    );
    store
        .record_step(
            &c.lease,
            30,
            &play_set(&f),
            Vec::new(),
            Some(step_draft(&id, 1)),
        )
        .await
        .expect("record_step");
    assert_eq!(take(), vec![a], "a step with an event");
    assert!(store.release(&c.lease).await.expect("release"));
    let stale = c.lease;
    let c = claim_of(&*store, &id, at(2)).await;
    assert!(
        store
            .finish(&stale, done(), at(3))
            .await
            .expect("finish")
            .is_none()
    );
    assert_eq!(take(), vec![], "release, claim, a stale finish");
    finish(&*store, &c.lease, done(), at(4)).await;
    assert_eq!(take(), vec![a], "an end");

    let other = queue(&*store, b, &fb, at(5)).await;
    store.cancel_task(b, &other, at(6)).await.expect("cancel");
    assert_eq!(take(), vec![b], "a cancel of a waiting task");

    let m = upload_of(a, "up", at(7));
    store
        .insert_media(&m, Some(upload_draft(&m)), None)
        .await
        .expect("insert_media");
    assert_eq!(take(), vec![a], "an upload's event");
    let m2 = upload_of(a, "up2", at(8));
    let broken = new_task(a, transcode(&FileId::from_stored("404".into())), 0, at(8));
    assert!(
        store
            .insert_media(&m2, Some(upload_draft(&m2)), Some(broken))
            .await
            .is_err()
    );
    assert_eq!(take(), vec![], "a write that failed");

    let lost = queue(&*store, a, &f, at(9)).await;
    claim_of(&*store, &lost, at(10)).await;
    let r = store
        .recover(Orphans::All, 0, at(11))
        .await
        .expect("recover");
    assert_eq!(r.failed, 1);
    assert_eq!(take(), vec![a], "recovery giving up");

    let s = seqs(&pending(&*store, a).await);
    store
        .settle_events(a, vec![(s[0], 1)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .record_attempt(
            a,
            s[1],
            CallbackAttempt {
                event_id: String::new(),
                attempt: 1,
                time: at(12),
                url: "https://hooks.example/vod".into(),
                http_status: Some(200),
                error: String::new(),
                duration: Duration::from_millis(3),
                response: String::new(),
                outcome: AttemptOutcome::Delivered,
                next_attempt: None,
            },
            Some(Settled::Confirmed),
        )
        .await
        .expect("record_attempt");
    store.purge_events(at(13)).await.expect("purge_events");
    store.redo_task(a, &id, at(14)).await.expect("redo");
    assert_eq!(take(), vec![], "settles, attempts, retention, redo");
}

/// A consumer that loads `after` the last seq it saw, while tasks end and
/// files arrive concurrently, sees every event exactly once: an event never
/// becomes visible behind a seq already loaded past.
pub async fn a_loader_never_skips_an_event_under_concurrent_writes(store: Dyn) {
    use std::collections::HashSet;
    use std::sync::Arc;
    const TASKS: i64 = 80;
    const UPLOADS: i64 = 20;
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    for i in 0..TASKS {
        queue(&*store, app, &f, at(i)).await;
    }
    let mut writers: Vec<tokio::task::JoinHandle<()>> = (0..4)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                while let Some(c) = store
                    .claim_next(at(1000), at(100 + w))
                    .await
                    .expect("claim_next")
                {
                    finish(&*store, &c.lease, done(), at(200 + w)).await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let uploader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..UPLOADS {
                let m = upload_of(app, &format!("up{i}"), at(300 + i));
                store
                    .insert_media(&m, Some(upload_draft(&m)), None)
                    .await
                    .expect("insert_media");
                tokio::task::yield_now().await;
            }
        })
    };
    writers.push(uploader);

    let mut seen = HashSet::new();
    let mut after = 0;
    let mut load = async |after: &mut i64| {
        let batch = store
            .load_events(app, *after, 7)
            .await
            .expect("load_events");
        for p in &batch {
            assert!(p.seq > *after, "seq {} not after {after}", p.seq);
            *after = p.seq;
            assert!(seen.insert(p.event.event_id.clone()), "seen twice");
        }
        batch.len()
    };
    while !writers.iter().all(|w| w.is_finished()) {
        load(&mut after).await;
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.expect("a writer");
    }
    while load(&mut after).await > 0 {}
    let all: HashSet<String> = pending(&*store, app)
        .await
        .into_iter()
        .map(|p| p.event.event_id)
        .collect();
    assert_eq!(all.len() as i64, TASKS + UPLOADS);
    assert_eq!(seen, all, "the loader missed events");
}
