//! HTTP callbacks (PUSH mode) end to end: the real binary POSTs to a real
//! receiver in this test; signatures are checked by the reference Python
//! `standardwebhooks` package.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vodtask_e2e::receiver::{Received, Receiver, Reply};
use vodtask_e2e::v1 as pb;
use vodtask_e2e::v1::event_service_client::EventServiceClient;
use vodtask_e2e::*;

type Events = EventServiceClient<InterceptedService<Channel, Auth>>;

const ALLOW_LOOPBACK: [&str; 4] = ["--workers", "0", "--allow-callback-cidr", "127.0.0.1/32"];

async fn push_to(
    events: &mut Events,
    url: &str,
    schedule: &[i64],
    timeout: i32,
) -> pb::EventConfig {
    events
        .modify_event_config(pb::ModifyEventConfigRequest {
            mode: pb::DeliveryMode::Push as i32,
            notification_url: Some(url.to_string()),
            retry_schedule_seconds: schedule.to_vec(),
            callback_timeout_seconds: Some(timeout),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// A server that may call loopback, its default app in PUSH mode towards a
/// receiver that answers `script` in order, then `then`.
struct Pushing {
    dir: tempfile::TempDir,
    server: Server,
    key: String,
    receiver: Receiver,
    events: Events,
}

async fn pushing(script: &[Reply], then: Reply, schedule: &[i64], timeout: i32) -> Pushing {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &ALLOW_LOOPBACK);
    let key = server.default_key();
    let receiver = Receiver::start(script, then).await;
    let mut events = server.events().await;
    push_to(&mut events, &receiver.url(), schedule, timeout).await;
    Pushing {
        dir,
        server,
        key,
        receiver,
        events,
    }
}

/// Uploads a small file as `key`'s app: one NewFileUpload event.
async fn upload_one(server: &Server, key: &str, dir: &std::path::Path, name: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, b"not media, but a file").unwrap();
    let mut media = server.media_as(key).await;
    upload(&mut media, &file, name).await.unwrap().0
}

async fn attempts(events: &mut Events, event_id: &str) -> Vec<pb::CallbackAttempt> {
    events
        .list_callback_attempts(pb::ListCallbackAttemptsRequest {
            event_id: event_id.to_string(),
            task_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .attempts
}

/// Waits until nothing is ready, in flight or delayed.
async fn wait_until_delivered(events: &Events, what: &str) {
    eventually(what, || {
        let mut events = events.clone();
        async move { queue_is_empty(&mut events).await.then_some(()) }
    })
    .await;
}

/// Waits until the dead-letter list holds at least `n` events.
async fn wait_dead_letters(events: &Events, n: usize) -> Vec<pb::Event> {
    eventually(&format!("{n} dead-lettered events"), || {
        let mut events = events.clone();
        async move {
            let page = events
                .list_dead_letter_events(pb::ListDeadLetterEventsRequest::default())
                .await
                .unwrap()
                .into_inner();
            (page.events.len() >= n).then_some(page.events)
        }
    })
    .await
}

async fn queue_is_empty(events: &mut Events) -> bool {
    let s = events
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .unwrap()
        .into_inner();
    (s.ready, s.in_flight, s.delayed) == (0, 0, 0)
}

/// Verifies a received callback with the reference Python library.
fn python_verifies(secret: &str, r: &Received) -> bool {
    let script = "import sys, standardwebhooks\n\
                  wh = standardwebhooks.Webhook(sys.argv[1])\n\
                  wh.verify(sys.stdin.read(), {'webhook-id': sys.argv[2], \
                  'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]})\n";
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

#[tokio::test]
async fn callbacks_are_signed_verified_by_the_reference_library_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &ALLOW_LOOPBACK);
    let key = server.default_key();
    let receiver = Receiver::start(&[], Reply::Status(200)).await;
    let mut events = server.events().await;
    let config = push_to(&mut events, &receiver.url(), &[0, 1], 5).await;
    let first_secret = config.signing_secret.clone();
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");

    let file_id = upload_one(&server, &key, dir.path(), "a.bin").await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.envelope()["eventType"], "NewFileUpload");
    assert_eq!(r.envelope()["data"]["fileId"], file_id);
    assert_eq!(
        r.header("webhook-id"),
        r.envelope()["eventId"].as_str().unwrap()
    );
    assert!(
        python_verifies(&first_secret, r),
        "standardwebhooks rejected it"
    );
    let event_id = r.header("webhook-id").to_string();
    let logged = eventually("the attempt in the log", || {
        let mut events = events.clone();
        let event_id = event_id.clone();
        async move {
            let a = attempts(&mut events, &event_id).await;
            (!a.is_empty()).then_some(a)
        }
    })
    .await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].outcome, pb::AttemptOutcome::Delivered as i32);
    assert_eq!(logged[0].http_status, 200);
    assert_eq!(logged[0].response, "answered 200");
    wait_until_delivered(&events, "the delivered event confirmed").await;

    // Rotation: during the overlap each callback carries both signatures,
    // and a receiver holding either secret accepts it.
    let rotated = events
        .rotate_signing_secret(pb::RotateSigningSecretRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.signing_secret, first_secret);
    assert!(rotated.previous_secret_expire_time.is_some());
    upload_one(&server, &key, dir.path(), "b.bin").await;
    let got = receiver.wait_for(2).await;
    let r = &got[1];
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    assert!(python_verifies(&first_secret, r));
    assert!(python_verifies(&rotated.signing_secret, r));
    let current = events
        .get_event_config(pb::GetEventConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.signing_secret, rotated.signing_secret);
}

#[tokio::test]
async fn failures_are_retried_on_schedule_until_one_succeeds() {
    let Pushing {
        dir,
        server,
        receiver,
        events,
        ..
    } = pushing(
        &[Reply::Status(500), Reply::Redirect, Reply::Hang],
        Reply::Status(200),
        &[0, 1, 1, 1],
        1,
    )
    .await;
    upload_one(&server, &server.default_key(), dir.path(), "a.bin").await;

    let got = receiver.wait_for(4).await;
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "the 302 was not followed"
    );
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == got[0].header("webhook-id"))
    );
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(850), "retried after {gap:?}");
    }
    let event_id = got[0].header("webhook-id").to_string();
    let log = eventually("four attempts logged", || {
        let mut events = events.clone();
        let event_id = event_id.clone();
        async move {
            let a = attempts(&mut events, &event_id).await;
            (a.len() == 4).then_some(a)
        }
    })
    .await;
    let summary: Vec<(i32, i32, i32)> = log
        .iter()
        .map(|a| (a.attempt, a.outcome, a.http_status))
        .collect();
    let (failed, delivered) = (
        pb::AttemptOutcome::Failed as i32,
        pb::AttemptOutcome::Delivered as i32,
    );
    assert_eq!(
        summary,
        vec![
            (1, failed, 500),
            (2, failed, 302),
            (3, failed, 0),
            (4, delivered, 200)
        ]
    );
    assert!(
        log[2].error.contains("no answer within 1 s"),
        "{}",
        log[2].error
    );
    assert!(log[0].next_attempt_time.is_some() && log[3].next_attempt_time.is_none());
}

#[tokio::test]
async fn a_retry_planned_before_a_crash_comes_once_when_due() {
    let Pushing {
        dir,
        mut server,
        receiver,
        events,
        ..
    } = pushing(&[Reply::Status(503)], Reply::Status(200), &[0, 4], 5).await;
    upload_one(&server, &server.default_key(), dir.path(), "a.bin").await;
    let first = receiver.wait_for(1).await[0].clone();
    let event_id = first.header("webhook-id").to_string();
    eventually("the failed attempt logged", || {
        let mut events = events.clone();
        let event_id = event_id.clone();
        async move { (!attempts(&mut events, &event_id).await.is_empty()).then_some(()) }
    })
    .await;

    server.kill9();
    server.restart();
    let mut events = server.events().await;
    let got = receiver.wait_for(2).await;
    let gap = got[1].at - first.at;
    assert!(
        gap >= Duration::from_millis(3500),
        "the retry came after {gap:?}, before it was due"
    );
    wait_until_delivered(&events, "the event confirmed").await;
    assert_eq!(receiver.received().len(), 2, "the retry came exactly once");
    let log = attempts(&mut events, &event_id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].outcome, pb::AttemptOutcome::Delivered as i32);
}

/// A URL the address policy refuses is refused when it is saved, naming
/// the policy and the flag, and the app stays in PULL mode. (Where the
/// connection is made the same policy is checked again on every DNS answer:
/// crates/vodtask-core/tests/callback_sender.rs.)
#[tokio::test]
async fn internal_addresses_are_refused_without_the_allow_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let receiver = Receiver::start(&[], Reply::Status(200)).await;
    let mut events = server.events().await;
    let port = receiver.addr.port();
    let urls = [
        receiver.url(),
        format!("http://localhost:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[2002:7f00:1::]/hook".to_string(),
    ];
    for url in &urls {
        let e = events
            .modify_event_config(pb::ModifyEventConfigRequest {
                mode: pb::DeliveryMode::Push as i32,
                notification_url: Some(url.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{url}: {e:?}");
        assert!(
            e.message()
                .starts_with("notification_url: the outbound address policy refuses")
                && e.message().contains("--allow-outbound-cidr"),
            "{url}: {}",
            e.message()
        );
        // A name's addresses are not disclosed (an IP literal is the caller's own).
        if url.contains("localhost") {
            assert!(!e.message().contains("127.0.0.1") && !e.message().contains("::1"));
        }
    }
    let config = events
        .get_event_config(pb::GetEventConfigRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.mode,
        pb::DeliveryMode::Pull as i32,
        "nothing was saved"
    );
    upload_one(&server, &server.default_key(), dir.path(), "f.bin").await;
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

/// GetEventConfig shows why the endpoint's last callback failed.
#[tokio::test]
async fn the_last_failure_and_its_reason_are_shown() {
    let Pushing {
        dir,
        server,
        key,
        receiver,
        events,
    } = pushing(&[Reply::Status(503)], Reply::Status(200), &[0, 60], 5).await;
    upload_one(&server, &key, dir.path(), "a.bin").await;
    receiver.wait_for(1).await;
    let health = eventually("the failure in the endpoint's health", || {
        let mut events = events.clone();
        async move {
            let config = events
                .get_event_config(pb::GetEventConfigRequest::default())
                .await
                .ok()?
                .into_inner();
            config
                .endpoint_health
                .filter(|h| !h.last_failure.is_empty())
        }
    })
    .await;
    assert_eq!(health.last_failure, "HTTP 503");
    assert!(health.last_failure_time.is_some());
}

#[tokio::test]
async fn gone_and_given_up_events_are_dead_lettered_and_redrive_sends_them_again() {
    let Pushing {
        dir,
        server,
        key,
        receiver,
        mut events,
    } = pushing(
        &[Reply::Status(410), Reply::Status(500), Reply::Status(500)],
        Reply::Status(200),
        &[0, 1],
        5,
    )
    .await;
    upload_one(&server, &key, dir.path(), "a.bin").await;
    receiver.wait_for(1).await;
    upload_one(&server, &key, dir.path(), "b.bin").await;
    receiver.wait_for(3).await;
    let dead = wait_dead_letters(&events, 2).await;
    let gone = attempts(&mut events, &dead[0].event_id).await;
    assert_eq!(gone.len(), 1, "410 stops the retries");
    assert_eq!(gone[0].outcome, pb::AttemptOutcome::Gone as i32);
    assert_eq!(attempts(&mut events, &dead[1].event_id).await.len(), 2);

    let redriven = events
        .redrive_events(pb::RedriveEventsRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .redriven;
    assert_eq!(redriven, 2);
    receiver.wait_for(5).await;
    wait_until_delivered(&events, "both delivered").await;
    let again = attempts(&mut events, &dead[1].event_id).await;
    assert_eq!(
        again.last().map(|a| (a.attempt, a.outcome)),
        Some((1, pb::AttemptOutcome::Delivered as i32))
    );
}

#[tokio::test]
async fn a_task_s_events_are_sent_in_order() {
    // The upload's event is delivered first; then the task's first event
    // fails once.
    let Pushing {
        dir,
        server,
        key,
        receiver,
        ..
    } = pushing(
        &[Reply::Status(200), Reply::Status(500)],
        Reply::Status(200),
        &[0, 1],
        5,
    )
    .await;
    let file_id = upload_one(&server, &key, dir.path(), "source.bin").await;
    receiver.wait_for(1).await;
    let mut tasks = server.tasks().await;
    // A task that ends twice (cancelled, redone, cancelled): two events.
    let task_id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let cancel = || pb::CancelTaskRequest {
        task_id: task_id.clone(),
    };
    tasks.cancel_task(cancel()).await.unwrap();
    tasks
        .redo_task(pb::RedoTaskRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap();
    tasks.cancel_task(cancel()).await.unwrap();
    let got = receiver.wait_for(4).await;
    let of_task: Vec<(i64, String)> = got
        .iter()
        .map(Received::envelope)
        .filter(|e| e["data"]["vodTaskId"] == task_id.as_str())
        .map(|e| {
            (
                e["taskSequence"].as_i64().unwrap(),
                e["eventId"].to_string(),
            )
        })
        .collect();
    let sequences: Vec<i64> = of_task.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, vec![1, 1, 2], "the second waited for the first");
}

#[tokio::test]
async fn a_dead_endpoint_does_not_delay_another_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &ALLOW_LOOPBACK);
    let key_a = server.default_key();
    let key_b = server.create_app("b");
    let dead = Receiver::start(&[], Reply::Hang).await;
    let alive = Receiver::start(&[], Reply::Status(200)).await;
    let mut a = server.events_as(&key_a).await;
    let mut b = server.events_as(&key_b).await;
    push_to(&mut a, &dead.url(), &[0, 60], 10).await;
    push_to(&mut b, &alive.url(), &[0], 5).await;
    for i in 0..40 {
        upload_one(&server, &key_a, dir.path(), &format!("a{i}.bin")).await;
    }
    dead.wait_for(16).await;
    let started = std::time::Instant::now();
    upload_one(&server, &key_b, dir.path(), "b.bin").await;
    alive.wait_for(1).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "app b waited {:?} behind app a's dead endpoint",
        started.elapsed()
    );
}

async fn config(events: &mut Events) -> pb::EventConfig {
    events
        .get_event_config(pb::GetEventConfigRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_failing_endpoint_opens_the_circuit_then_gets_one_probe() {
    let Pushing {
        dir,
        server,
        key,
        receiver,
        events,
    } = pushing(&[], Reply::Status(500), &[0, 600], 5).await;
    for i in 0..20 {
        upload_one(&server, &key, dir.path(), &format!("f{i}.bin")).await;
    }
    let health = eventually("the circuit open", || {
        let mut events = events.clone();
        async move {
            let h = config(&mut events).await.endpoint_health.unwrap();
            (h.circuit == pb::CircuitState::Open as i32).then_some(h)
        }
    })
    .await;
    assert!(health.consecutive_failures >= 5);
    assert!(health.failing_since.is_some());
    let before = receiver.received();
    let opened = before.last().unwrap().at;
    // After the 5 s cooldown exactly one probe goes out; it fails, and the
    // circuit opens again.
    let got = receiver.wait_for(before.len() + 1).await;
    let probe = got.last().unwrap();
    assert!(
        probe.at - opened >= Duration::from_millis(4500),
        "the probe came {:?} after the circuit opened",
        probe.at - opened
    );
    eventually("the circuit open again", || {
        let mut events = events.clone();
        async move {
            let h = config(&mut events).await.endpoint_health.unwrap();
            (h.circuit == pb::CircuitState::Open as i32).then_some(())
        }
    })
    .await;
    assert_eq!(
        receiver.received().len(),
        before.len() + 1,
        "one probe only"
    );
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_until_enabled_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &ALLOW_LOOPBACK);
    let broken = Receiver::start(&[], Reply::Status(503)).await;
    let fixed = Receiver::start(&[], Reply::Status(200)).await;
    let mut events = server.events().await;
    push_to(&mut events, &broken.url(), &[0, 1, 1, 1, 1, 1, 1, 1], 5).await;
    events
        .modify_event_config(pb::ModifyEventConfigRequest {
            disable_after_seconds: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    upload_one(&server, &server.default_key(), dir.path(), "a.bin").await;
    let disabled = eventually("the endpoint disabled", || {
        let mut events = events.clone();
        async move { config(&mut events).await.endpoint_disabled_time }
    })
    .await;
    assert!(disabled.seconds > 0);
    let tries = broken.received().len();
    assert!(
        (3..=5).contains(&tries),
        "{tries} attempts before disabling"
    );

    // A new URL and enabled again: delivery resumes.
    let enabled = events
        .modify_event_config(pb::ModifyEventConfigRequest {
            notification_url: Some(fixed.url()),
            endpoint_enabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enabled.endpoint_disabled_time.is_none());
    fixed.wait_for(1).await;
    wait_until_delivered(&events, "the event delivered").await;
    assert_eq!(
        broken.received().len(),
        tries,
        "nothing went to the disabled endpoint"
    );
}

#[tokio::test]
async fn resend_sends_delivered_and_waiting_events_again_now() {
    // a: delivered at once; b: fails, its retry planned an hour later.
    let Pushing {
        dir,
        server,
        key,
        receiver,
        mut events,
    } = pushing(
        &[Reply::Status(200), Reply::Status(500)],
        Reply::Status(200),
        &[0, 3600],
        5,
    )
    .await;
    upload_one(&server, &key, dir.path(), "a.bin").await;
    let a = receiver.wait_for(1).await[0]
        .header("webhook-id")
        .to_string();
    upload_one(&server, &key, dir.path(), "b.bin").await;
    let b = receiver.wait_for(2).await[1]
        .header("webhook-id")
        .to_string();
    eventually("a confirmed and b's retry planned", || {
        let mut events = events.clone();
        let b = b.clone();
        async move {
            let s = events
                .describe_events_state(pb::DescribeEventsStateRequest {})
                .await
                .unwrap()
                .into_inner();
            let planned = attempts(&mut events, &b).await.len() == 1;
            ((s.ready, s.in_flight, s.delayed) == (0, 0, 1) && planned).then_some(())
        }
    })
    .await;

    let resent = events
        .resend_events(pb::ResendEventsRequest {
            event_ids: vec![a.clone(), b.clone(), "ev-nope".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .resent;
    assert_eq!(resent, 2);
    let got = receiver.wait_for(4).await;
    let mut again: Vec<&str> = got[2..].iter().map(|r| r.header("webhook-id")).collect();
    again.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(again, expected);
    wait_until_delivered(&events, "both delivered").await;
    let log_a = attempts(&mut events, &a).await;
    assert_eq!(
        log_a.iter().map(|x| x.attempt).collect::<Vec<_>>(),
        vec![1, 1],
        "a new round"
    );
    let log_b = attempts(&mut events, &b).await;
    assert_eq!(
        log_b.iter().map(|x| x.attempt).collect::<Vec<_>>(),
        vec![1, 2],
        "the retry, now"
    );
    assert_invalid(
        events
            .resend_events(pb::ResendEventsRequest { event_ids: vec![] })
            .await,
        "event_ids",
    );
}

#[tokio::test]
async fn apps_calling_the_same_url_share_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &ALLOW_LOOPBACK);
    let (key_a, key_b) = (server.default_key(), server.create_app("b"));
    let receiver = Receiver::start(&[], Reply::Hang).await;
    let mut apps = Vec::new();
    for key in [&key_a, &key_b] {
        let mut events = server.events_as(key).await;
        // The longest timeout: a hanging callback's event stays in flight
        // until it times out, and the uploads below may be slow on a busy
        // machine.
        push_to(&mut events, &receiver.url(), &[0, 3600], 60).await;
        apps.push(events);
    }
    for i in 0..50 {
        upload_one(&server, &key_a, dir.path(), &format!("a{i}.bin")).await;
        upload_one(&server, &key_b, dir.path(), &format!("b{i}.bin")).await;
    }
    // Each app may have 64 callbacks out and has taken all 50 of its events,
    // but the URL allows 64 in all: the other 36 wait for a slot.
    for events in &apps {
        eventually("all 50 events taken", || {
            let mut events = events.clone();
            async move {
                let s = events
                    .describe_events_state(pb::DescribeEventsStateRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                (s.in_flight == 50).then_some(())
            }
        })
        .await;
    }
    receiver.wait_for(64).await;
    assert_eq!(receiver.received().len(), 64);
    assert_eq!(receiver.max_in_flight(), 64);
}
