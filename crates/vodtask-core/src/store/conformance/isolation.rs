//! App isolation: an app sees none of another app's tasks, attempts,
//! media, events or callback attempts, and cannot change them.

use std::time::Duration;

use super::support::*;
use crate::callbacks::{AttemptOutcome, AttemptsOf, CallbackAttempt};
use crate::events::EventConfig;
use crate::store::{Revive, Settled, Stored, Tail};
use crate::task::TaskStatus;
use crate::task::query::HourRange;

/// App b neither sees nor changes app a's tasks or their earlier attempts,
/// and cannot start a task on a's file.
pub async fn apps_do_not_see_each_others_tasks(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let redone = queue(&*store, a, &fa, at(0)).await;
    run_to_end(&*store, &redone, at(1), at(2)).await;
    store.redo_task(a, &redone, at(3)).await.expect("redo");
    let running = queue(&*store, a, &fa, at(4)).await;
    claim_of(&*store, &redone, at(5)).await;
    let ended = queue(&*store, a, &fa, at(6)).await;
    claim_of(&*store, &running, at(7)).await;
    let before = [
        task_with_attempts(&*store, a, &redone).await,
        task_with_attempts(&*store, a, &running).await,
        task_with_attempts(&*store, a, &ended).await,
    ];

    for id in [&redone, &running, &ended] {
        assert!(
            store
                .get_task(b, id, true)
                .await
                .expect("get_task")
                .is_none()
        );
        let r = store.cancel_task(b, id, at(8)).await;
        assert!(is_not_found(&r), "cancel: {r:?}");
        let r = store.redo_task(b, id, at(8)).await;
        assert!(is_not_found(&r), "redo: {r:?}");
    }
    assert!(list_all(&*store, b, &query()).await.is_empty());
    let by_file = crate::task::query::TaskQuery {
        file_id: Some(fa.clone()),
        ..query()
    };
    assert!(list_all(&*store, b, &by_file).await.is_empty());
    let o = store
        .overview(b, HourRange::default())
        .await
        .expect("overview");
    assert_eq!((o.total(), o.queue_depth, o.running), (0, 0, 0));
    let r = store
        .insert_task(new_task(b, transcode(&fa), 0, at(9)))
        .await;
    assert!(is_not_found(&r), "a's file from b: {r:?}");

    let after = [
        task_with_attempts(&*store, a, &redone).await,
        task_with_attempts(&*store, a, &running).await,
        task_with_attempts(&*store, a, &ended).await,
    ];
    assert_eq!(before, after, "b changed nothing of a's");
    assert_eq!(count(&*store, a, TaskStatus::Processing).await, 2);
    assert_eq!(count(&*store, a, TaskStatus::Waiting).await, 1);
}

/// get_media answers only the file's own app.
pub async fn apps_do_not_see_each_others_media(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let fb = upload(&*store, b, "fb").await;
    assert!(store.get_media(b, &fa).await.expect("get_media").is_none());
    assert!(store.get_media(a, &fb).await.expect("get_media").is_none());
    assert_eq!(
        store
            .get_media(a, &fa)
            .await
            .expect("get_media")
            .map(|m| m.app_id),
        Some(a)
    );
}

/// App b sees none of a's events, in any state, and settling, reviving or
/// configuring from b leaves a's alone.
pub async fn apps_do_not_see_each_others_events(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let e = ended_tasks(&*store, a, 3, 0).await;
    let s = seqs(&e);
    store
        .settle_events(a, vec![(s[1], 4)], Settled::DeadLettered)
        .await
        .expect("settle");
    store
        .settle_events(a, vec![(s[2], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    let ids: Vec<String> = e.iter().map(|p| p.event.event_id.clone()).collect();

    assert!(pending(&*store, b).await.is_empty());
    assert!(
        store
            .event_states(b, s.clone())
            .await
            .expect("event_states")
            .is_empty()
    );
    assert!(
        store
            .dead_letter_events(b, 10, None)
            .await
            .expect("dead_letter_events")
            .events
            .is_empty()
    );
    assert!(
        store
            .pending_event_seqs(b, ids.clone())
            .await
            .expect("pending_event_seqs")
            .is_empty()
    );
    assert_eq!(
        store.event_tail(b, 0).await.expect("event_tail"),
        Tail::default()
    );

    // b's writes do not reach a's events.
    store
        .settle_events(b, vec![(s[0], 1)], Settled::Confirmed)
        .await
        .expect("settle");
    assert!(
        store
            .revive_events(b, None, Revive::Settled)
            .await
            .expect("revive_events")
            .is_empty()
    );
    assert!(
        store
            .revive_events(b, Some(ids.clone()), Revive::DeadLettered)
            .await
            .expect("revive_events")
            .is_empty()
    );
    store
        .set_event_config(
            b,
            &EventConfig {
                retention: Duration::from_secs(3600),
                ..EventConfig::default()
            },
        )
        .await
        .expect("set_event_config");
    assert_eq!(
        store.event_config(a).await.expect("event_config"),
        EventConfig::default()
    );
    store.purge_events(at(7200)).await.expect("purge_events");
    let states = store
        .event_states(a, s.clone())
        .await
        .expect("event_states");
    assert_eq!(states.get(&s[0]), Some(&Stored::Pending));
    assert_eq!(states.get(&s[1]), Some(&Stored::DeadLettered));
    assert_eq!(states.get(&s[2]), Some(&Stored::Confirmed));
}

/// App b sees none of a's callback attempts, and its endpoint state is its
/// own.
pub async fn apps_do_not_see_each_others_callback_attempts(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let ea = ended_tasks(&*store, a, 1, 0).await.remove(0);
    let eb = ended_tasks(&*store, b, 1, 10).await.remove(0);
    let failing = CallbackAttempt {
        event_id: String::new(),
        attempt: 1,
        time: at(20),
        url: "https://hooks.example/a".into(),
        http_status: Some(500),
        error: String::new(),
        duration: Duration::from_millis(5),
        response: String::new(),
        outcome: AttemptOutcome::Failed,
        next_attempt: Some(at(50)),
    };
    store
        .record_attempt(a, ea.seq, failing.clone(), None)
        .await
        .expect("record_attempt");
    let ok = CallbackAttempt {
        http_status: Some(200),
        outcome: AttemptOutcome::Delivered,
        next_attempt: None,
        time: at(30),
        ..failing.clone()
    };
    store
        .record_attempt(b, eb.seq, ok, Some(Settled::Confirmed))
        .await
        .expect("record_attempt");

    assert_eq!(
        store.last_attempt(b, ea.seq).await.expect("last_attempt"),
        None
    );
    assert!(
        store
            .callback_attempts(b, AttemptsOf::Event(ea.event.event_id.clone()))
            .await
            .expect("callback_attempts")
            .is_empty()
    );
    assert!(
        store
            .callback_attempts(b, AttemptsOf::Task(ea.event.task_id.clone()))
            .await
            .expect("callback_attempts")
            .is_empty()
    );
    assert_eq!(
        store
            .endpoint_failing_since(a)
            .await
            .expect("endpoint_failing_since"),
        Some(at(20)),
        "b's success is not a's endpoint answering"
    );
    assert_eq!(
        store
            .endpoint_failing_since(b)
            .await
            .expect("endpoint_failing_since"),
        None
    );

    // An attempt b records with a's seq does not settle a's event nor join
    // a's log (the store may also refuse it).
    let _ = store
        .record_attempt(b, ea.seq, failing.clone(), Some(Settled::Confirmed))
        .await;
    assert_eq!(state(&*store, a, ea.seq).await, Some(Stored::Pending));
    assert_eq!(
        store
            .callback_attempts(a, AttemptsOf::Event(ea.event.event_id.clone()))
            .await
            .expect("callback_attempts")
            .len(),
        1
    );
}
