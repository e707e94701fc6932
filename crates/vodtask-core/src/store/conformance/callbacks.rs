//! The HTTP callback attempt log, settling with an attempt, the endpoint's
//! failing-since time, and the apps in PUSH mode.

use std::time::Duration;

use super::support::*;
use crate::callbacks::{AttemptOutcome, AttemptsOf, CallbackAttempt};
use crate::events::{DeliveryMode, EventConfig};
use crate::ids::AppId;
use crate::store::{Settled, Stored};

/// An attempt at `secs`, answered with `status` (None: no answer).
fn attempt(n: u32, secs: i64, status: Option<u16>, outcome: AttemptOutcome) -> CallbackAttempt {
    CallbackAttempt {
        event_id: String::new(),
        attempt: n,
        time: at(secs),
        url: "https://hooks.example/vod".into(),
        http_status: status,
        error: if status.is_none() {
            "connection refused".into()
        } else {
            String::new()
        },
        duration: Duration::from_micros(1_234_567),
        response: status.map_or(String::new(), |s| format!("body of {s}")),
        outcome,
        next_attempt: (outcome == AttemptOutcome::Failed).then(|| at(secs + 30)),
    }
}

/// An attempt as read back: with its event's id.
fn logged(a: &CallbackAttempt, event_id: &str) -> CallbackAttempt {
    CallbackAttempt {
        event_id: event_id.to_string(),
        ..a.clone()
    }
}

/// An attempt without settle is logged and leaves its event pending.
pub async fn record_attempt_without_settle_leaves_the_event_pending(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 1, 0).await.remove(0);
    let a1 = attempt(1, 10, Some(500), AttemptOutcome::Failed);
    store
        .record_attempt(app, e.seq, a1.clone(), None)
        .await
        .expect("record_attempt");
    assert_eq!(state(&*store, app, e.seq).await, Some(Stored::Pending));
    assert_eq!(seqs(&pending(&*store, app).await), vec![e.seq]);
    let id = e.event.event_id.as_str();
    assert_eq!(
        store.last_attempt(app, e.seq).await.expect("last_attempt"),
        Some(logged(&a1, id))
    );
    assert_eq!(
        store
            .callback_attempts(app, AttemptsOf::Event(id.to_string()))
            .await
            .expect("callback_attempts"),
        vec![logged(&a1, id)]
    );
}

/// With settle, the attempt settles its event in the same write; an event
/// settled already keeps its first outcome, and the attempt is logged.
pub async fn record_attempt_settles_in_the_same_write(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 2, 0).await;
    let delivered = attempt(1, 10, Some(200), AttemptOutcome::Delivered);
    store
        .record_attempt(app, e[0].seq, delivered.clone(), Some(Settled::Confirmed))
        .await
        .expect("record_attempt");
    assert_eq!(state(&*store, app, e[0].seq).await, Some(Stored::Confirmed));

    let mut given_up = attempt(3, 20, Some(503), AttemptOutcome::Failed);
    given_up.next_attempt = None;
    assert!(given_up.is_final());
    store
        .record_attempt(app, e[1].seq, given_up.clone(), Some(Settled::DeadLettered))
        .await
        .expect("record_attempt");
    assert_eq!(
        state(&*store, app, e[1].seq).await,
        Some(Stored::DeadLettered)
    );
    let dead = store
        .dead_letter_events(app, 10, None)
        .await
        .expect("dead_letter_events");
    assert_eq!(
        dead.events
            .iter()
            .map(|d| d.event_id.clone())
            .collect::<Vec<_>>(),
        vec![e[1].event.event_id.clone()]
    );
    assert!(pending(&*store, app).await.is_empty());

    let late = attempt(2, 30, Some(410), AttemptOutcome::Gone);
    store
        .record_attempt(app, e[0].seq, late.clone(), Some(Settled::DeadLettered))
        .await
        .expect("record_attempt");
    assert_eq!(state(&*store, app, e[0].seq).await, Some(Stored::Confirmed));
    let id = e[0].event.event_id.as_str();
    assert_eq!(
        store
            .callback_attempts(app, AttemptsOf::Event(id.to_string()))
            .await
            .expect("callback_attempts"),
        vec![logged(&delivered, id), logged(&late, id)]
    );
}

/// last_attempt: the event's latest attempt; None for an event never tried
/// or unknown.
pub async fn last_attempt_is_the_latest(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let e = ended_tasks(&*store, app, 2, 0).await;
    let id = e[0].event.event_id.as_str();
    let tries = [
        attempt(1, 10, None, AttemptOutcome::Failed),
        attempt(2, 40, Some(502), AttemptOutcome::Failed),
        attempt(3, 100, Some(204), AttemptOutcome::Delivered),
    ];
    for (i, a) in tries.iter().enumerate() {
        store
            .record_attempt(app, e[0].seq, a.clone(), None)
            .await
            .expect("record_attempt");
        assert_eq!(
            store
                .last_attempt(app, e[0].seq)
                .await
                .expect("last_attempt"),
            Some(logged(a, id)),
            "after attempt {}",
            i + 1
        );
    }
    assert_eq!(
        store
            .last_attempt(app, e[1].seq)
            .await
            .expect("last_attempt"),
        None
    );
    assert_eq!(
        store
            .last_attempt(app, e[1].seq + 1000)
            .await
            .expect("last_attempt"),
        None
    );
}

/// callback_attempts lists an event's attempts, or all of a task's events'
/// attempts, in the order they were made.
pub async fn callback_attempts_by_event_and_by_task(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let t = queue(&*store, app, &f, at(0)).await;
    run_to_end(&*store, &t, at(1), at(2)).await;
    store.redo_task(app, &t, at(3)).await.expect("redo");
    run_to_end(&*store, &t, at(4), at(5)).await;
    let u = queue(&*store, app, &f, at(6)).await;
    run_to_end(&*store, &u, at(7), at(8)).await;
    let e = pending(&*store, app).await;
    assert_eq!(e.len(), 3);
    let (t1, t2, u1) = (&e[0], &e[1], &e[2]);

    let a1 = attempt(1, 10, None, AttemptOutcome::Failed);
    let a2 = attempt(2, 20, Some(410), AttemptOutcome::Gone);
    let b1 = attempt(1, 30, Some(200), AttemptOutcome::Delivered);
    let c1 = attempt(1, 40, Some(500), AttemptOutcome::Failed);
    for (ev, a) in [(t1, &a1), (u1, &c1), (t1, &a2), (t2, &b1)] {
        store
            .record_attempt(app, ev.seq, a.clone(), None)
            .await
            .expect("record_attempt");
    }
    let of = |which| {
        let st = &*store;
        async move {
            st.callback_attempts(app, which)
                .await
                .expect("callback_attempts")
        }
    };
    let (t1_id, t2_id, u1_id) = (
        t1.event.event_id.as_str(),
        t2.event.event_id.as_str(),
        u1.event.event_id.as_str(),
    );
    assert_eq!(
        of(AttemptsOf::Event(t1_id.into())).await,
        vec![logged(&a1, t1_id), logged(&a2, t1_id)]
    );
    assert_eq!(
        of(AttemptsOf::Event(t2_id.into())).await,
        vec![logged(&b1, t2_id)]
    );
    assert_eq!(
        of(AttemptsOf::Task(t.as_str().into())).await,
        vec![logged(&a1, t1_id), logged(&a2, t1_id), logged(&b1, t2_id)]
    );
    assert_eq!(
        of(AttemptsOf::Task(u.as_str().into())).await,
        vec![logged(&c1, u1_id)]
    );
    assert!(of(AttemptsOf::Event("ev-unknown".into())).await.is_empty());
    assert!(
        of(AttemptsOf::Task("transcode-unknown".into()))
            .await
            .is_empty()
    );
}

/// endpoint_failing_since: the first attempt after the endpoint last
/// answered (server errors, 429 and no answer are not answers), across the
/// app's events; None while it answers.
pub async fn endpoint_failing_since_tracks_the_last_answer(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let other = new_app(&*store, "b").await;
    let e = ended_tasks(&*store, app, 2, 0).await;
    let since = || {
        let st = &*store;
        async move {
            st.endpoint_failing_since(app)
                .await
                .expect("endpoint_failing_since")
        }
    };
    assert_eq!(since().await, None, "never tried");
    let steps: [(usize, i64, Option<u16>, Option<i64>); 8] = [
        (0, 10, Some(500), Some(10)),
        (0, 20, None, Some(10)),
        (1, 30, Some(429), Some(10)),
        (1, 40, Some(200), None),
        (0, 50, Some(503), Some(50)),
        (0, 60, Some(404), None),
        (1, 70, Some(502), Some(70)),
        (0, 80, Some(410), None),
    ];
    for (i, (ev, secs, status, expected)) in steps.into_iter().enumerate() {
        let outcome = match status {
            Some(s) if s < 300 => AttemptOutcome::Delivered,
            Some(410) => AttemptOutcome::Gone,
            _ => AttemptOutcome::Failed,
        };
        store
            .record_attempt(
                app,
                e[ev].seq,
                attempt(i as u32 + 1, secs, status, outcome),
                None,
            )
            .await
            .expect("record_attempt");
        assert_eq!(
            since().await,
            expected.map(at),
            "after {status:?} at {secs}"
        );
    }
    assert_eq!(
        store
            .endpoint_failing_since(other)
            .await
            .expect("endpoint_failing_since"),
        None
    );
}

/// push_apps: the apps whose config says PUSH, as configs change.
pub async fn push_apps_follow_the_config(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let c = new_app(&*store, "c").await;
    let push_apps = || {
        let st = &*store;
        async move {
            let mut apps = st.push_apps().await.expect("push_apps");
            apps.sort_by_key(|a| a.0);
            apps
        }
    };
    assert!(push_apps().await.is_empty(), "PULL by default");
    let push = EventConfig {
        mode: DeliveryMode::Push,
        notification_url: "https://hooks.example/vod".into(),
        ..EventConfig::default()
    };
    let set = |app: AppId, config: EventConfig| {
        let st = &*store;
        async move {
            st.set_event_config(app, &config)
                .await
                .expect("set_event_config")
        }
    };
    set(a, push.clone()).await;
    set(c, push.clone()).await;
    set(b, EventConfig::default()).await;
    assert_eq!(push_apps().await, vec![a, c]);
    set(
        a,
        EventConfig {
            mode: DeliveryMode::Pull,
            ..push
        },
    )
    .await;
    assert_eq!(push_apps().await, vec![c]);
}
