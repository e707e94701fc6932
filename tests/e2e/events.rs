//! The reliable event queue end to end: long poll, leases, competing
//! consumers, streams with credits, per-task order, dead letters, crashes.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use vodtask_e2e::queue::*;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

async fn configure(events: &mut Events, visibility: i32, max_deliveries: i32) {
    events
        .modify_event_config(pb::ModifyEventConfigRequest {
            visibility_timeout_seconds: Some(visibility),
            max_deliveries: Some(max_deliveries),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn id(d: &pb::EventDelivery) -> String {
    d.event.as_ref().unwrap().event_id.clone()
}

fn envelope(d: &pb::EventDelivery) -> serde_json::Value {
    serde_json::from_str(&d.event.as_ref().unwrap().content_json).unwrap()
}

async fn state(events: &mut Events) -> pb::DescribeEventsStateResponse {
    events
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// `max_in_flight` 0: the server's default.
async fn subscribe(events: &mut Events, max_in_flight: i32) -> Stream {
    events
        .subscribe_events(pb::SubscribeEventsRequest { max_in_flight })
        .await
        .unwrap()
        .into_inner()
}

/// Uploads `n` tiny files: each upload commits one NewFileUpload event.
async fn uploads(server: &Server, dir: &std::path::Path, n: usize) -> Vec<String> {
    upload_blobs(&mut server.media().await, dir, n).await
}

#[tokio::test]
async fn long_poll_holds_then_returns_as_soon_as_an_event_commits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;

    let start = Instant::now();
    assert!(pull(&mut events, 16, 1).await.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "returned after {:?}",
        start.elapsed()
    );

    let waiting = tokio::spawn({
        let mut events = events.clone();
        async move {
            let start = Instant::now();
            let got = pull(&mut events, 16, 20).await;
            (got, start.elapsed())
        }
    });
    // Give the poll time to start waiting, then commit an event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = uploads(&server, dir.path(), 1).await;
    let (got, elapsed) = waiting.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        elapsed < Duration::from_secs(10),
        "the poll should not sit out its 20 s: {elapsed:?}"
    );
    let env = envelope(&got[0]);
    assert_eq!(env["version"], "4.0");
    assert_eq!(env["eventType"], "NewFileUpload");
    assert_eq!(env["data"]["fileId"], ids[0].as_str());
    assert_eq!(env["eventId"], id(&got[0]).as_str());
    let text = &got[0].event.as_ref().unwrap().content_json;
    assert!(
        text.starts_with(r#"{"version":"4.0","eventType":"NewFileUpload""#),
        "{text}"
    );
}

#[tokio::test]
async fn an_unconfirmed_event_comes_back_with_a_new_handle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    configure(&mut events, 1, 10).await;
    uploads(&server, dir.path(), 1).await;

    let first = pull(&mut events, 16, 0).await;
    assert_eq!(first.len(), 1);
    assert!(
        pull(&mut events, 16, 0).await.is_empty(),
        "invisible while leased"
    );
    let second = pull(&mut events, 16, 20).await;
    assert_eq!(second.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(id(&second[0]), id(&first[0]));
    assert_ne!(second[0].msg_handle, first[0].msg_handle);
    assert_eq!(second[0].event.as_ref().unwrap().delivery_count, 2);

    let expired = confirm(&mut events, std::slice::from_ref(&first[0].msg_handle)).await;
    assert_eq!(expired, [pb::HandleStatus::Expired as i32]);
    let ok = confirm(
        &mut events,
        &[second[0].msg_handle.clone(), "garbage".into()],
    )
    .await;
    assert_eq!(
        ok,
        [
            pb::HandleStatus::Confirmed as i32,
            pb::HandleStatus::Unknown as i32
        ]
    );
    let again = confirm(&mut events, std::slice::from_ref(&second[0].msg_handle)).await;
    assert_eq!(again, [pb::HandleStatus::AlreadyConfirmed as i32]);
    assert!(
        pull(&mut events, 16, 2).await.is_empty(),
        "a confirmed event never comes back"
    );
}

#[tokio::test]
async fn competing_consumers_never_hold_the_same_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    uploads(&server, dir.path(), 40).await;
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let mut events = server.events().await;
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = pull(&mut events, 3, 0).await;
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.iter().map(id));
            }
        }));
    }
    let a = consumers.remove(0).await.unwrap();
    let b = consumers.remove(0).await.unwrap();
    let (sa, sb): (HashSet<_>, HashSet<_>) = (a.iter().collect(), b.iter().collect());
    assert!(
        sa.is_disjoint(&sb),
        "an event was with both consumers at once"
    );
    assert_eq!(sa.len() + sb.len(), 40);
    assert_eq!(
        a.len() + b.len(),
        40,
        "nothing delivered twice while leased"
    );
}

#[tokio::test]
async fn a_stream_respects_its_credit_and_a_broken_stream_releases_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    uploads(&server, dir.path(), 5).await;

    let mut stream = subscribe(&mut events, 2).await;
    let d1 = next_delivery(&mut stream).await;
    let d2 = next_delivery(&mut stream).await;
    assert_ne!(id(&d1), id(&d2));
    let s = state(&mut events).await;
    assert_eq!(
        (s.in_flight, s.ready),
        (2, 3),
        "no more than max_in_flight leased to the stream"
    );

    assert_eq!(
        confirm(&mut events, std::slice::from_ref(&d1.msg_handle)).await,
        [pb::HandleStatus::Confirmed as i32]
    );
    let d3 = next_delivery(&mut stream).await;
    assert!(![id(&d1), id(&d2)].contains(&id(&d3)));

    // The stream dies with d2 and d3 unconfirmed: another stream gets them
    // at once, long before their 30 s lease would end.
    drop(stream);
    let mut other = subscribe(&mut events, 16).await;
    let mut seen = HashSet::new();
    while !(seen.contains(&id(&d2)) && seen.contains(&id(&d3))) {
        let d = tokio::time::timeout(Duration::from_secs(20), next_delivery(&mut other))
            .await
            .expect("the broken stream's events were released to the other stream");
        seen.insert(id(&d));
    }
}

#[tokio::test]
async fn a_lone_stream_gets_its_events_again_when_it_lets_their_leases_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    configure(&mut events, 1, 10).await;
    uploads(&server, dir.path(), 2).await;

    let mut stream = subscribe(&mut events, 2).await;
    // One deadline for all: heartbeats alone must not keep the test going.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut next = async || {
        tokio::time::timeout_at(deadline, next_delivery(&mut stream))
            .await
            .expect("the deliveries, and not only heartbeats, within 30 s")
    };
    // Its whole credit out and nothing confirmed; no other consumer takes
    // from the queue. The leases run out after 1 s, which must give the
    // stream its credit back by itself.
    let first = [next().await, next().await];
    let again = [next().await, next().await];
    let ids = |ds: &[pb::EventDelivery]| ds.iter().map(id).collect::<HashSet<_>>();
    assert_eq!(ids(&again), ids(&first), "the same two events came back");
    for (old, new) in first.iter().zip(&again) {
        assert_ne!(old.msg_handle, new.msg_handle);
    }
    let handles: Vec<String> = again.iter().map(|d| d.msg_handle.clone()).collect();
    assert_eq!(
        confirm(&mut events, &handles).await,
        [pb::HandleStatus::Confirmed as i32; 2]
    );
    assert_eq!(
        confirm(&mut events, std::slice::from_ref(&first[0].msg_handle)).await,
        [pb::HandleStatus::AlreadyConfirmed as i32],
        "the first handle's event was confirmed through its second delivery"
    );
}

#[tokio::test]
async fn a_nack_gives_a_stream_its_credit_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    uploads(&server, dir.path(), 2).await;

    let mut stream = subscribe(&mut events, 1).await;
    let mut next_item = async || {
        tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("an item within 30 s")
            .unwrap()
            .unwrap()
            .item
            .unwrap()
    };
    let pb::subscribe_events_response::Item::Delivery(first) = next_item().await else {
        panic!("the stream's first item is a delivery")
    };
    // Its one credit is out. Given back by a nack, it must bring the next
    // delivery at once: not at the stream's next heartbeat (5 s after its
    // last delivery), when it would look at its credit anyway.
    events
        .nack_events(pb::NackEventsRequest {
            msg_handles: vec![first.msg_handle.clone()],
            delay_seconds: Some(0),
        })
        .await
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(4), next_item())
        .await
        .expect("a delivery well before the heartbeat is due");
    assert!(matches!(
        item,
        pb::subscribe_events_response::Item::Delivery(_)
    ));
}

#[tokio::test]
async fn a_stream_sends_heartbeats_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    let mut stream = subscribe(&mut events, 0).await;
    let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        item.item,
        Some(pb::subscribe_events_response::Item::Heartbeat(_))
    ));
}

#[tokio::test]
async fn events_of_a_task_arrive_in_order_even_when_redelivered() {
    let Fixture {
        mut tasks,
        file_id,
        server,
        _dir,
        ..
    } = Fixture::start(1, 160, 120, &[]).await;
    let mut events = server.events().await;
    let id_ = create(&mut tasks, transcode(&file_id, &[100010])).await;
    wait_ended(&mut tasks, &id_).await;
    tasks
        .redo_task(pb::RedoTaskRequest {
            task_id: id_.clone(),
        })
        .await
        .unwrap();
    eventually("the redo to end", || {
        let mut tasks = tasks.clone();
        let id_ = id_.clone();
        async move {
            let t = describe(&mut tasks, &id_).await;
            (t.attempt == 2 && t.status == pb::TaskStatus::Finish as i32).then_some(())
        }
    })
    .await;
    // Drop the upload event; two TranscodeComplete events of one task remain.
    let upload_event = pull(&mut events, 16, 5).await;
    let first: Vec<_> = upload_event
        .iter()
        .filter(|d| d.event.as_ref().unwrap().task_id == id_)
        .cloned()
        .collect();
    let others: Vec<_> = upload_event
        .iter()
        .filter(|d| d.event.as_ref().unwrap().task_id != id_)
        .map(|d| d.msg_handle.clone())
        .collect();
    confirm(&mut events, &others).await;
    assert_eq!(first.len(), 1, "only the head of the task is deliverable");
    assert_eq!(first[0].event.as_ref().unwrap().task_sequence, 1);
    let env = envelope(&first[0]);
    assert_eq!(env["eventType"], "TranscodeComplete");
    assert_eq!(env["data"]["vodTaskId"], id_.as_str());
    assert_eq!(env["data"]["status"], 0);
    assert_eq!(env["data"]["playSet"][0]["definition"], 100010);

    // Nacked, the first event comes back before the second is ever sent.
    events
        .nack_events(pb::NackEventsRequest {
            msg_handles: vec![first[0].msg_handle.clone()],
            delay_seconds: Some(0),
        })
        .await
        .unwrap();
    let again = pull(&mut events, 16, 5).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.as_ref().unwrap().task_sequence, 1);
    confirm(&mut events, std::slice::from_ref(&again[0].msg_handle)).await;
    let second = pull(&mut events, 16, 5).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.as_ref().unwrap().task_sequence, 2);
    assert_eq!(envelope(&second[0])["taskSequence"], 2);
}

#[tokio::test]
async fn dead_letters_after_max_deliveries_and_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    configure(&mut events, 1, 2).await;
    uploads(&server, dir.path(), 1).await;

    for delivery in 1..=2 {
        let got = pull(&mut events, 16, 20).await;
        assert_eq!(got[0].event.as_ref().unwrap().delivery_count, delivery);
    }
    // The lease of the second (last) delivery runs out: dead-lettered.
    let dead = eventually("the event to be dead-lettered", || {
        let mut events = events.clone();
        async move {
            let _ = pull(&mut events, 16, 1).await;
            let list = events
                .list_dead_letter_events(pb::ListDeadLetterEventsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .events;
            (!list.is_empty()).then_some(list)
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    let s = state(&mut events).await;
    assert_eq!((s.ready, s.in_flight, s.dead_lettered), (0, 0, 1));

    let bad = events
        .redrive_events(pb::RedriveEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let n = events
        .redrive_events(pb::RedriveEventsRequest {
            event_ids: vec![dead[0].event_id.clone()],
            all: false,
        })
        .await
        .unwrap()
        .into_inner()
        .redriven;
    assert_eq!(n, 1);
    let back = pull(&mut events, 16, 5).await;
    assert_eq!(id(&back[0]), dead[0].event_id);
    assert_eq!(back[0].event.as_ref().unwrap().delivery_count, 1);
}

#[tokio::test]
async fn another_app_cannot_confirm_or_see_our_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--workers", "0"]);
    let key_b = server.create_app("b");
    let (mut a, mut b) = (server.events().await, server.events_as(&key_b).await);
    uploads(&server, dir.path(), 1).await;
    let got = pull(&mut a, 16, 5).await;
    assert!(pull(&mut b, 16, 0).await.is_empty());
    assert_eq!(
        confirm(&mut b, std::slice::from_ref(&got[0].msg_handle)).await,
        [pb::HandleStatus::Unknown as i32]
    );
    assert_eq!(
        state(&mut a).await.in_flight,
        1,
        "still with app A's consumer"
    );
    assert_eq!(
        confirm(&mut a, std::slice::from_ref(&got[0].msg_handle)).await,
        [pb::HandleStatus::Confirmed as i32]
    );
}

#[tokio::test]
async fn bad_queue_requests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    assert_invalid(
        events
            .pull_events(pb::PullEventsRequest {
                max_events: 1001,
                wait_seconds: None,
            })
            .await,
        "max_events",
    );
    assert_invalid(
        events
            .pull_events(pb::PullEventsRequest {
                max_events: 1,
                wait_seconds: Some(21),
            })
            .await,
        "wait_seconds",
    );
    assert_invalid(
        events
            .confirm_events(pb::ConfirmEventsRequest {
                msg_handles: vec![],
            })
            .await,
        "msg_handles",
    );
    assert_invalid(
        events
            .extend_events(pb::ExtendEventsRequest {
                msg_handles: vec!["x".into()],
                seconds: 0,
            })
            .await,
        "seconds",
    );
    assert_invalid(
        events
            .nack_events(pb::NackEventsRequest {
                msg_handles: vec!["x".into()],
                delay_seconds: Some(-1),
            })
            .await,
        "delay_seconds",
    );
    assert_invalid(
        events
            .modify_event_config(pb::ModifyEventConfigRequest {
                visibility_timeout_seconds: Some(0),
                ..Default::default()
            })
            .await,
        "visibility_timeout_seconds",
    );
    assert_invalid(
        events
            .modify_event_config(pb::ModifyEventConfigRequest {
                max_deliveries: Some(0),
                ..Default::default()
            })
            .await,
        "max_deliveries",
    );
    for url in [
        "ftp://example.com/hook",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        assert_invalid(
            events
                .modify_event_config(pb::ModifyEventConfigRequest {
                    notification_url: Some(url.into()),
                    ..Default::default()
                })
                .await,
            "notification_url",
        );
    }
    let push = |r: pb::ModifyEventConfigRequest| pb::ModifyEventConfigRequest {
        mode: pb::DeliveryMode::Push as i32,
        ..r
    };
    assert_invalid(
        events.modify_event_config(push(Default::default())).await,
        "notification_url",
    );
    let url = || Some("https://example.com/hook".to_string());
    for timeout in [0, 61] {
        assert_invalid(
            events
                .modify_event_config(push(pb::ModifyEventConfigRequest {
                    notification_url: url(),
                    callback_timeout_seconds: Some(timeout),
                    ..Default::default()
                }))
                .await,
            "callback_timeout_seconds",
        );
    }
    for schedule in [vec![0, -5], vec![0, 604_801], vec![1; 31]] {
        assert_invalid(
            events
                .modify_event_config(push(pb::ModifyEventConfigRequest {
                    notification_url: url(),
                    retry_schedule_seconds: schedule,
                    ..Default::default()
                }))
                .await,
            "retry_schedule_seconds",
        );
    }
    assert_invalid(
        events
            .rotate_signing_secret(pb::RotateSigningSecretRequest {
                overlap_seconds: Some(-1),
            })
            .await,
        "overlap_seconds",
    );
    assert_invalid(
        events
            .list_callback_attempts(pb::ListCallbackAttemptsRequest::default())
            .await,
        "event_id",
    );
    let mut types = HashMap::new();
    types.insert("Nope".to_string(), true);
    assert_invalid(
        events
            .modify_event_config(pb::ModifyEventConfigRequest {
                event_types: types,
                ..Default::default()
            })
            .await,
        "event_types",
    );
}

#[tokio::test]
async fn switched_off_event_types_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    let mut types = HashMap::new();
    types.insert("NewFileUpload".to_string(), false);
    let config = events
        .modify_event_config(pb::ModifyEventConfigRequest {
            event_types: types,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.event_types.get("NewFileUpload"), Some(&false));
    assert_eq!(config.event_types.get("TranscodeComplete"), Some(&true));
    uploads(&server, dir.path(), 2).await;
    assert!(pull(&mut events, 16, 1).await.is_empty());
}

/// While a consumer pulls and confirms, the server is killed with SIGKILL
/// several times. In the end every event was confirmed, and no event whose
/// ConfirmEvents had returned CONFIRMED ever came back.
#[tokio::test]
async fn kill9_during_consumption_loses_nothing_and_resurrects_nothing() {
    kill9_during_consumption(&["--workers", "0"]).await;
}

/// The same with `--sync normal`: commits are not fsynced one by one, and
/// what the OS has survives the process.
#[tokio::test]
async fn kill9_during_consumption_with_sync_normal_loses_nothing_and_resurrects_nothing() {
    kill9_during_consumption(&["--workers", "0", "--sync", "normal"]).await;
}

async fn kill9_during_consumption(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), args);
    let mut events = server.events().await;
    configure(&mut events, 2, 1000).await;
    let files: HashSet<String> = uploads(&server, dir.path(), 120)
        .await
        .into_iter()
        .collect();

    let mut confirmed: HashSet<String> = HashSet::new();
    let mut confirmed_files: HashSet<String> = HashSet::new();
    // Four kills at rounds drawn at random from 2..=14: every one of them
    // comes before the end, since a round takes at most 7 of the 120 events.
    let mut kill_rounds = std::collections::BTreeSet::new();
    while kill_rounds.len() < 4 {
        kill_rounds.insert(2 + rand::random::<u32>() % 13);
    }
    let mut kills = 0;
    let mut rounds = 0;
    while confirmed_files.len() < files.len() {
        rounds += 1;
        assert!(rounds < 2000, "consumption did not finish");
        let batch = match events
            .pull_events(pb::PullEventsRequest {
                max_events: 7,
                wait_seconds: Some(1),
            })
            .await
        {
            Ok(r) => r.into_inner().events,
            Err(_) => Vec::new(),
        };
        for d in &batch {
            assert!(
                !confirmed.contains(&id(d)),
                "event {} came back after its confirm returned",
                id(d)
            );
        }
        let handles: Vec<String> = batch.iter().map(|d| d.msg_handle.clone()).collect();
        // Kill at a moment chosen at random: before, or right after, a confirm.
        let kill_now = kill_rounds.contains(&rounds);
        let kill_before_confirm = rand::random::<bool>();
        let skip_confirm = handles.is_empty() || (kill_now && kill_before_confirm);
        let answer = if skip_confirm {
            None
        } else {
            let request = pb::ConfirmEventsRequest {
                msg_handles: handles,
            };
            events.confirm_events(request).await.ok()
        };
        for (d, res) in answer
            .map(|r| r.into_inner().results)
            .into_iter()
            .flat_map(|r| batch.iter().zip(r))
        {
            if res.status == pb::HandleStatus::Confirmed as i32 {
                confirmed.insert(id(d));
                confirmed_files.insert(envelope(d)["data"]["fileId"].as_str().unwrap().to_string());
            }
        }
        if kill_now {
            kills += 1;
            server.kill9();
            server.restart();
            events = server.events().await;
        }
    }
    assert_eq!(confirmed_files, files, "every event was confirmed");
    assert_eq!(kills, 4, "the test killed the server four times");
    let s = state(&mut events).await;
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead_lettered),
        (0, 0, 0, 0)
    );
}

/// Leases live in memory: after a crash every unconfirmed event is ready at
/// once, and handles from before it answer for what became of their event.
#[tokio::test]
async fn handles_from_before_a_crash_answer_expired_or_already_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    uploads(&server, dir.path(), 3).await;
    let got = pull(&mut events, 16, 5).await;
    assert_eq!(got.len(), 3);
    let confirmed = [got[0].msg_handle.clone()];
    assert_eq!(
        confirm(&mut events, &confirmed).await,
        vec![pb::HandleStatus::Confirmed as i32]
    );

    server.kill9();
    server.restart();
    let mut events = server.events().await;
    let s = state(&mut events).await;
    let old: Vec<String> = got.iter().map(|d| d.msg_handle.clone()).collect();
    if vodtask_e2e::pg::requested() {
        // Leases kept in the database are the consumer's, not the server
        // process's: they outlive its crash, and their handles still work.
        assert_eq!(
            (s.ready, s.in_flight),
            (0, 2),
            "leases survive in the database"
        );
        assert_eq!(
            confirm(&mut events, &old).await,
            vec![
                pb::HandleStatus::AlreadyConfirmed as i32,
                pb::HandleStatus::Confirmed as i32,
                pb::HandleStatus::Confirmed as i32,
            ]
        );
        return;
    }
    assert_eq!(
        (s.ready, s.in_flight),
        (2, 0),
        "leases do not survive a crash"
    );
    assert_eq!(
        confirm(&mut events, &old).await,
        vec![
            pb::HandleStatus::AlreadyConfirmed as i32,
            pb::HandleStatus::Expired as i32,
            pb::HandleStatus::Expired as i32,
        ]
    );
    let again = pull(&mut events, 16, 5).await;
    let mut ids: Vec<String> = again.iter().map(id).collect();
    ids.sort();
    let mut expected: Vec<String> = got[1..].iter().map(id).collect();
    expected.sort();
    assert_eq!(ids, expected, "the unconfirmed ones, with new handles");
    let fresh: Vec<String> = again.iter().map(|d| d.msg_handle.clone()).collect();
    assert!(fresh.iter().all(|h| !old.contains(h)));
    assert_eq!(
        confirm(&mut events, &fresh).await,
        vec![pb::HandleStatus::Confirmed as i32; 2]
    );
}

#[tokio::test]
async fn an_extended_lease_keeps_the_event_with_its_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut events = server.events().await;
    configure(&mut events, 1, 10).await;
    uploads(&server, dir.path(), 1).await;
    let got = pull(&mut events, 16, 5).await;
    let handle = got[0].msg_handle.clone();
    let extended = events
        .extend_events(pb::ExtendEventsRequest {
            msg_handles: vec![handle.clone()],
            seconds: 60,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(extended[0].status, pb::HandleStatus::Extended as i32);
    // Well past the 1 s visibility timeout (and its backoff), nobody else gets it.
    assert!(pull(&mut events, 16, 4).await.is_empty());
    assert_eq!(state(&mut events).await.in_flight, 1);
    assert_eq!(
        confirm(&mut events, &[handle]).await,
        [pb::HandleStatus::Confirmed as i32]
    );
}

#[tokio::test]
async fn sigterm_ends_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--workers", "0", "--shutdown-grace", "120s"],
    );
    let mut events = server.events().await;
    let mut stream = subscribe(&mut events, 0).await;
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    let end = stream.next().await;
    match end {
        Some(Err(e)) => assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}"),
        None => {}
        Some(Ok(item)) => panic!("unexpected {item:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_task_reports_its_end_too() {
    let Fixture {
        mut tasks,
        file_id,
        server,
        _dir,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;
    let events = server.events().await;
    let mut request = snapshot(&file_id, 10, &[0]);
    request.session_context = "order-7".into();
    let task_id = create(&mut tasks, request).await;
    tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap();
    let got = eventually("the task's event", || {
        let mut events = events.clone();
        let task_id = task_id.clone();
        async move {
            let batch = pull(&mut events, 16, 1).await;
            batch
                .into_iter()
                .find(|d| d.event.as_ref().unwrap().task_id == task_id)
        }
    })
    .await;
    let env = envelope(&got);
    assert_eq!(env["eventType"], "CreateSnapshotByTimeOffsetComplete");
    assert_eq!(env["data"]["status"], 70003);
    assert_eq!(env["data"]["sessionContext"], "order-7");
    assert_eq!(env["data"]["definition"], 10);
}
