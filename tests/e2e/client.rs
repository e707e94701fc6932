//! The Rust client (crates/vodtask-client) in both modes: against the real
//! binary over gRPC, and with the engine opened in the test's process.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use vodtask_client::{Client, ConnectOptions, ConsumeOptions, Error, OpenOptions, pb};
use vodtask_e2e::*;

/// Uploads a clip, transcodes it and consumes events until the
/// TranscodeComplete was handled; returns the event types handled, in order.
async fn transcode_and_consume(client: &Client, clip: &std::path::Path) -> Vec<String> {
    let uploaded = client.upload_file(clip, None, "ctx", None).await.unwrap();
    let task_id = client
        .create_task(transcode(&uploaded.file_id, &[100010]))
        .await
        .unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let stop = vodtask_client::CancellationToken::new();
    let consumer = {
        let (handled, stop) = (Arc::clone(&handled), stop.clone());
        let task_id = task_id.clone();
        move |event: pb::Event| {
            let (handled, stop, task_id) = (Arc::clone(&handled), stop.clone(), task_id.clone());
            async move {
                handled.lock().unwrap().push(event.event_type.clone());
                if event.event_type == "TranscodeComplete" && event.task_id == task_id {
                    stop.cancel();
                }
                Ok(())
            }
        }
    };
    let run = client.consume(consumer, ConsumeOptions::default(), stop.clone());
    tokio::time::timeout(DEADLINE, run)
        .await
        .expect("TranscodeComplete within the deadline")
        .unwrap();
    let t = client.describe_task(&task_id).await.unwrap();
    assert_finished_ok(&t);
    // Everything handled was acked.
    let state = client.events_state().await.unwrap();
    assert_eq!((state.ready, state.in_flight), (0, 0), "{state:?}");
    handled.lock().unwrap().clone()
}

/// An embedded client on `dir`/data that runs no tasks, for tests that need
/// only uploads and their events.
async fn embedded_without_workers(dir: &std::path::Path) -> Client {
    Client::open(
        dir.join("data"),
        OpenOptions {
            workers: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn remote_client_submits_and_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 2, 320, 240);
    let server = Server::start(&dir.path().join("data"), &[]);
    let client = Client::connect(
        &format!("http://{}", server.grpc_addr),
        ConnectOptions::new(server.default_key()),
    )
    .await
    .unwrap();
    assert!(!client.is_embedded());
    let handled = transcode_and_consume(&client, &clip).await;
    assert_eq!(handled, ["NewFileUpload", "TranscodeComplete"]);
}

#[tokio::test]
async fn embedded_client_runs_the_engine_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 2, 320, 240);
    let client = Client::open(dir.path().join("data"), OpenOptions::default())
        .await
        .unwrap();
    assert!(client.is_embedded());
    let handled = transcode_and_consume(&client, &clip).await;
    assert_eq!(handled, ["NewFileUpload", "TranscodeComplete"]);
    // The outputs are served over HTTP by the embedded file server.
    let uploaded = client
        .upload_file(&clip, Some("again.mp4"), "", None)
        .await
        .unwrap();
    let got = http_client().get(&uploaded.file_url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    // While a client holds the engine, the data dir is locked; closed and
    // dropped, it opens again.
    let again = Client::open(dir.path().join("data"), OpenOptions::default()).await;
    assert!(again.is_err(), "the first client holds the data dir lock");
    client.close().await;
    drop(client);
    let reopened = Client::open(dir.path().join("data"), OpenOptions::default())
        .await
        .unwrap();
    reopened.close().await;
}

#[tokio::test]
async fn errors_keep_their_code_and_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let client = embedded_without_workers(dir.path()).await;
    let e = client.describe_task("transcode-nope").await.unwrap_err();
    assert_eq!(e.code_name(), "NOT_FOUND", "{e}");
    let e = client
        .create_task(transcode("123", &[5]))
        .await
        .unwrap_err();
    assert_eq!(e.code_name(), "INVALID_ARGUMENT");
    let Error::Status { message, .. } = e else {
        panic!("a status")
    };
    assert!(
        message.starts_with("spec.transcode.definitions[0]"),
        "{message}"
    );

    let bad_key = Client::open(
        tempfile::tempdir().unwrap().path().join("data"),
        OpenOptions {
            api_key: Some("not-a-key".into()),
            workers: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = bad_key.describe_task("x").await.unwrap_err();
    assert_eq!(e.code_name(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_failing_handler_nacks_and_sees_the_event_again() {
    let dir = tempfile::tempdir().unwrap();
    let client = embedded_without_workers(dir.path()).await;
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, b"bytes").unwrap();
    client.upload_file(&blob, None, "", None).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = vodtask_client::CancellationToken::new();
    let handler = {
        let (seen, stop) = (Arc::clone(&seen), stop.clone());
        move |event: pb::Event| {
            let (seen, stop) = (Arc::clone(&seen), stop.clone());
            async move {
                seen.lock().unwrap().push(event.delivery_count);
                if event.delivery_count < 2 {
                    return Err("not yet".to_string());
                }
                stop.cancel();
                Ok(())
            }
        }
    };
    tokio::time::timeout(
        DEADLINE,
        client.consume(handler, ConsumeOptions::default(), stop),
    )
    .await
    .expect("the redelivery within the deadline")
    .unwrap();
    // Delivered once, nacked (backing off about a second), delivered again.
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
    let state = client.events_state().await.unwrap();
    assert_eq!((state.ready, state.in_flight, state.delayed), (0, 0, 0));
}

#[tokio::test]
async fn a_slow_handler_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let client = embedded_without_workers(dir.path()).await;
    client
        .modify_event_config(pb::ModifyEventConfigRequest {
            mode: pb::DeliveryMode::Pull as i32,
            visibility_timeout_seconds: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, b"bytes").unwrap();
    client.upload_file(&blob, None, "", None).await.unwrap();

    let (started, handler_started) = tokio::sync::oneshot::channel();
    let started = Arc::new(Mutex::new(Some(started)));
    let release = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = vodtask_client::CancellationToken::new();
    let handler = {
        let (started, release, seen, stop) = (
            Arc::clone(&started),
            Arc::clone(&release),
            Arc::clone(&seen),
            stop.clone(),
        );
        move |event: pb::Event| {
            let (started, release, seen, stop) = (
                Arc::clone(&started),
                Arc::clone(&release),
                Arc::clone(&seen),
                stop.clone(),
            );
            async move {
                seen.lock().unwrap().push(event.delivery_count);
                if let Some(started) = started.lock().unwrap().take() {
                    let _ = started.send(());
                }
                release.notified().await;
                stop.cancel();
                Ok(())
            }
        }
    };
    let consuming = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .consume(handler, ConsumeOptions::default(), stop)
                .await
        }
    });
    tokio::time::timeout(DEADLINE, handler_started)
        .await
        .expect("the handler started within the deadline")
        .unwrap();
    // For two and a half leases a competing consumer finds nothing: consume
    // extends the lease of the running handler.
    let competing = client.pull_events(10, 10).await.unwrap();
    assert!(
        competing.is_empty(),
        "the event of a running handler was handed to another consumer"
    );
    release.notify_one();
    tokio::time::timeout(DEADLINE, consuming)
        .await
        .expect("consume returned within the deadline")
        .unwrap()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [1], "handled once, acked");
    let state = client.events_state().await.unwrap();
    assert_eq!((state.ready, state.in_flight, state.delayed), (0, 0, 0));
}

#[tokio::test]
async fn a_subscription_reconnects_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, b"bytes").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start(&dir.path().join("data"), &["--listen", &listen]);
    let client = Client::connect(
        &format!("http://{listen}"),
        ConnectOptions::new(server.default_key()),
    )
    .await
    .unwrap();
    let mut subscription = client.subscribe(16);
    let first = client.upload_file(&blob, None, "", None).await.unwrap();
    let d = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(d.event.content_json.contains(&first.file_id));
    assert_eq!(d.ack().await.unwrap(), pb::HandleStatus::Confirmed);

    server.kill9();
    server.restart();
    // The channel reconnects to the same address by itself; the
    // subscription opens a new stream and the next event arrives on it.
    let second = eventually("an upload after the restart", || async {
        client.upload_file(&blob, None, "", None).await.ok()
    })
    .await;
    let d = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("a delivery after the restart")
        .unwrap()
        .unwrap();
    assert!(
        d.event.content_json.contains(&second.file_id),
        "{:?}",
        d.event
    );
    assert_eq!(d.ack().await.unwrap(), pb::HandleStatus::Confirmed);
}

#[test]
fn webhooks_are_verified() {
    // A wrong secret format is refused with a clear error.
    let e = vodtask_client::verify_webhook("nope", &[], b"{}").unwrap_err();
    assert_eq!(e.code_name(), "INVALID_ARGUMENT");
}

/// Three copies of an app each wait for their own task while a fourth
/// consumes the app's events: every waiter gets its task as it ended, and
/// the consumer's competing for events takes nothing from them.
#[tokio::test]
async fn concurrent_waiters_each_get_their_own_task() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 2, 320, 240);
    let server = Server::start(&dir.path().join("data"), &[]);
    let connect = || async {
        Client::connect(
            &format!("http://{}", server.grpc_addr),
            ConnectOptions::new(server.default_key()),
        )
        .await
        .unwrap()
    };
    let consumer = connect().await;
    let stop = vodtask_client::CancellationToken::new();
    let consuming = tokio::spawn({
        let stop = stop.clone();
        async move {
            consumer
                .consume(
                    |_event: pb::Event| async { Ok(()) },
                    ConsumeOptions::default(),
                    stop,
                )
                .await
        }
    });
    let mut copies = Vec::new();
    for _ in 0..3 {
        let client = connect().await;
        let clip = clip.clone();
        copies.push(tokio::spawn(async move {
            let uploaded = client.upload_file(&clip, None, "", None).await.unwrap();
            let task_id = client
                .create_task(transcode(&uploaded.file_id, &[100010]))
                .await
                .unwrap();
            let mut watch = client.watch_task(&task_id);
            let mut progress = Vec::new();
            let last = loop {
                let state = watch.next().await.expect("a state").unwrap();
                progress.push(state.task.progress);
                if state.ended {
                    break state.task;
                }
            };
            assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
            assert_eq!(
                client.wait_task(&task_id).await.unwrap(),
                last,
                "ended: one state"
            );
            (task_id, last)
        }));
    }
    for copy in copies {
        let (task_id, task) = tokio::time::timeout(DEADLINE, copy).await.unwrap().unwrap();
        assert_eq!(task.task_id, task_id);
        assert_finished_ok(&task);
        assert_eq!(task.progress, 100);
    }
    stop.cancel();
    consuming.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_watch_goes_on_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 20, 640, 360);
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start(&dir.path().join("data"), &["--listen", &listen]);
    let client = Client::connect(
        &format!("http://{listen}"),
        ConnectOptions::new(server.default_key()),
    )
    .await
    .unwrap();
    let uploaded = client.upload_file(&clip, None, "", None).await.unwrap();
    let task_id = client
        .create_task(transcode(&uploaded.file_id, &[100010]))
        .await
        .unwrap();
    let mut watch = client.watch_task(&task_id);
    let state = loop {
        let state = watch.next().await.unwrap().unwrap();
        if state.task.status == pb::TaskStatus::Processing as i32 {
            break state;
        }
    };
    assert!(!state.ended);
    server.kill9();
    server.restart();
    // The watch reconnects and follows the recovered run to its end.
    let last = tokio::time::timeout(DEADLINE * 2, async {
        loop {
            let state = watch.next().await.unwrap().unwrap();
            if state.ended {
                break state.task;
            }
        }
    })
    .await
    .unwrap();
    assert_finished_ok(&last);
    assert_eq!(last.attempt, 2);

    let e = client.wait_task("transcode-unknown").await.unwrap_err();
    assert_eq!(e.code_name(), "NOT_FOUND");
}

/// Dead letters, redrive, resend, callback attempts and secret rotation,
/// through the Rust client.
#[tokio::test]
async fn dead_letters_redrive_resend_attempts_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let client = embedded_without_workers(dir.path()).await;
    client
        .modify_event_config(pb::ModifyEventConfigRequest {
            max_deliveries: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .upload_bytes(b"not media".to_vec(), "a.bin", "", None)
        .await
        .unwrap();
    // Its one delivery, given back: the next take dead-letters it.
    let got = client.pull_events(1, 5).await.unwrap();
    assert_eq!(got.len(), 1);
    let event_id = got[0].event.as_ref().unwrap().event_id.clone();
    client
        .nack_events(vec![got[0].msg_handle.clone()], Some(0))
        .await
        .unwrap();
    assert!(client.pull_events(1, 0).await.unwrap().is_empty());
    let dead = client.dead_letter_events(0, "").await.unwrap();
    let ids: Vec<_> = dead.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, [event_id.as_str()]);
    assert_eq!(dead.next_page_token, "");

    assert_eq!(client.redrive_events(None).await.unwrap(), 1);
    assert!(
        client
            .dead_letter_events(0, "")
            .await
            .unwrap()
            .events
            .is_empty()
    );
    let again = client.pull_events(1, 5).await.unwrap();
    assert_eq!(again[0].event.as_ref().unwrap().event_id, event_id);
    client
        .confirm_events(vec![again[0].msg_handle.clone()])
        .await
        .unwrap();
    assert_eq!(
        client.resend_events(vec![event_id.clone()]).await.unwrap(),
        1
    );
    let resent = client.pull_events(1, 5).await.unwrap();
    assert_eq!(resent[0].event.as_ref().unwrap().event_id, event_id);

    let attempts = client
        .callback_attempts(vodtask_client::AttemptsOf::Event(&event_id))
        .await
        .unwrap();
    assert!(attempts.is_empty(), "a PULL app makes no callbacks");
    let e = client.resend_events(Vec::new()).await.expect_err("no ids");
    assert_eq!(e.code_name(), "INVALID_ARGUMENT");

    let before = client.event_config().await.unwrap().signing_secret;
    let rotated = client
        .rotate_signing_secret(Some(std::time::Duration::ZERO))
        .await
        .unwrap();
    assert_ne!(rotated.signing_secret, before);
    assert_eq!(
        client.event_config().await.unwrap().signing_secret,
        rotated.signing_secret
    );
}
