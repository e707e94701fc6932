//! Several vodtask processes on one PostgreSQL database and one shared media
//! directory, as real processes: whichever node a call reaches, it behaves
//! as on one server. Tasks created on one node run on another and are
//! described and cancelled through a third; events pulled through one node
//! are confirmed through another; a stream on one node gets the events
//! committed on another; a node killed while holding a stream's leases
//! loses none of its events.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use vodtask_e2e::pg::Database;
use vodtask_e2e::queue::*;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

/// One database and one media directory that the nodes of a test share.
struct Shared {
    dir: tempfile::TempDir,
    db: Database,
    media: String,
}

impl Shared {
    fn new() -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let media = format!("file://{}", dir.path().join("media").display());
        Shared {
            dir,
            db: Database::create(),
            media,
        }
    }

    /// An API node without workers.
    fn api(&self, name: &str) -> Server {
        Server::start(
            &self.dir.path().join(name),
            &[
                "--database",
                &self.db.url,
                "--storage",
                &self.media,
                "--workers",
                "0",
            ],
        )
    }

    /// A worker node (`vodtask worker`: tasks and callbacks, no API) with
    /// one worker and `extra` flags; its file URLs point at `api`'s file
    /// server.
    fn worker(&self, name: &str, api: &Server, extra: &[&str]) -> Server {
        let public_url = format!("http://{}", api.http_addr);
        let mut args = vec![
            "--database",
            &self.db.url,
            "--storage",
            &self.media,
            "--workers",
            "1",
            "--public-url",
            &public_url,
        ];
        args.extend(extra);
        Server::start_worker(&self.dir.path().join(name), &args)
    }
}

/// Two API nodes (`a`, `b`) and a worker node (`w`).
struct Cluster {
    a: Server,
    b: Server,
    w: Server,
    key: String,
    shared: Shared,
}

impl Cluster {
    fn start() -> Cluster {
        let shared = Shared::new();
        let a = shared.api("a");
        let b = shared.api("b");
        let w = shared.worker("w", &a, &[]);
        // The first node made the default app; its key works on every node.
        let key = a.default_key();
        Cluster {
            a,
            b,
            w,
            key,
            shared,
        }
    }

    fn dir(&self) -> &Path {
        self.shared.dir.path()
    }
}

#[tokio::test]
async fn a_task_created_on_one_node_runs_on_another_and_is_cancelled_through_a_third() {
    let c = Cluster::start();
    let clip = make_clip(c.dir(), "in.mp4", 60, 640, 360);
    let mut media = c.a.media_as(&c.key).await;
    let (file_id, _) = upload(&mut media, &clip, "in.mp4").await.unwrap();
    let (mut on_a, mut on_b) = (c.a.tasks_as(&c.key).await, c.b.tasks_as(&c.key).await);

    let short = create(&mut on_a, snapshot(&file_id, 10, &[0, 1000])).await;
    let done = wait_ended(&mut on_b, &short).await;
    assert_finished_ok(&done);

    // Run by the worker node, cancelled through node B: the worker's
    // ffmpeg is killed before the call returns.
    let long = create(&mut on_a, transcode(&file_id, &[100020])).await;
    cancel_running(&mut on_b, &long, c.w.pid()).await;
    let redone = on_a
        .redo_task(pb::RedoTaskRequest {
            task_id: short.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redone.attempt, 2);
    assert_finished_ok(&wait_ended(&mut on_b, &short).await);
    let overview = on_b
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .unwrap()
        .into_inner();
    let total: i64 = overview.by_status.iter().map(|s| s.count).sum();
    assert_eq!(total, 2, "{overview:?}");
}

async fn uploads(server: &Server, key: &str, dir: &Path, n: usize) -> HashSet<String> {
    let mut media = server.media_as(key).await;
    upload_blobs(&mut media, dir, n).await.into_iter().collect()
}

/// Confirms one delivery; asserts that it was confirmed now.
async fn confirm_one(events: &mut Events, d: &pb::EventDelivery) {
    assert_eq!(
        confirm(events, std::slice::from_ref(&d.msg_handle)).await,
        [pb::HandleStatus::Confirmed as i32]
    );
}

fn file_of(d: &pb::EventDelivery) -> String {
    let envelope: serde_json::Value =
        serde_json::from_str(&d.event.as_ref().unwrap().content_json).unwrap();
    envelope["data"]["fileId"]
        .as_str()
        .unwrap_or_else(|| panic!("no FileId in {envelope}"))
        .to_string()
}

#[tokio::test]
async fn events_pulled_on_one_node_are_confirmed_on_another() {
    let c = Cluster::start();
    let files = uploads(&c.a, &c.key, c.dir(), 5).await;
    let mut on_a = c.a.events_as(&c.key).await;
    let mut on_b = c.b.events_as(&c.key).await;
    let got = pull(&mut on_a, 16, 5).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got.iter().map(file_of).collect::<HashSet<_>>(), files);
    let state = on_b
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((state.ready, state.in_flight), (0, 5), "{state:?}");
    let handles: Vec<String> = got.iter().map(|d| d.msg_handle.clone()).collect();
    assert_eq!(
        confirm(&mut on_b, &handles).await,
        [pb::HandleStatus::Confirmed as i32; 5]
    );
    assert_eq!(
        confirm(&mut on_a, &handles).await,
        [pb::HandleStatus::AlreadyConfirmed as i32; 5]
    );
}

/// A stream on node B gets what node A commits, at once (the wake-up
/// crosses nodes through the database) and whoever confirms it.
#[tokio::test]
async fn a_stream_on_one_node_gets_events_committed_on_another() {
    let c = Cluster::start();
    let mut on_b = c.b.events_as(&c.key).await;
    let mut stream = on_b
        .subscribe_events(pb::SubscribeEventsRequest { max_in_flight: 2 })
        .await
        .unwrap()
        .into_inner();
    let mut on_a = c.a.events_as(&c.key).await;
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        let sent = Instant::now();
        let file = uploads(&c.a, &c.key, c.dir(), 1).await;
        let committed = sent.elapsed();
        let d = next_delivery(&mut stream).await;
        slowest = slowest.max(sent.elapsed().saturating_sub(committed));
        assert_eq!(HashSet::from([file_of(&d)]), file, "round {round}");
        // Confirmed through the other node: the stream's credit comes back
        // through the database.
        confirm_one(&mut on_a, &d).await;
    }
    // Not a timing assertion (the machine is shared): what the log shows.
    eprintln!("slowest commit-to-delivery across nodes: {slowest:?}");
}

/// Node B holds a stream's leases when it is killed: the events come back
/// through node A once the leases run out, none lost and none twice
/// confirmed.
#[tokio::test]
async fn a_killed_node_s_leases_run_out_and_its_events_come_back_elsewhere() {
    let mut c = Cluster::start();
    let mut on_a = c.a.events_as(&c.key).await;
    on_a.modify_event_config(pb::ModifyEventConfigRequest {
        visibility_timeout_seconds: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let files = uploads(&c.a, &c.key, c.dir(), 6).await;
    let mut on_b = c.b.events_as(&c.key).await;
    let mut stream = on_b
        .subscribe_events(pb::SubscribeEventsRequest { max_in_flight: 3 })
        .await
        .unwrap()
        .into_inner();
    let mut confirmed = HashSet::new();
    let first = next_delivery(&mut stream).await;
    confirm_one(&mut on_b, &first).await;
    confirmed.insert(file_of(&first));
    // Three more are out with the stream when its node dies.
    eventually("the stream to hold three", || {
        let mut on_a = on_a.clone();
        async move {
            let s = on_a
                .describe_events_state(pb::DescribeEventsStateRequest {})
                .await
                .unwrap()
                .into_inner();
            (s.in_flight == 3).then_some(())
        }
    })
    .await;
    c.b.kill9();
    drop(stream);

    while confirmed.len() < files.len() {
        for d in pull(&mut on_a, 16, 5).await {
            confirm_one(&mut on_a, &d).await;
            assert!(confirmed.insert(file_of(&d)), "confirmed twice: {d:?}");
        }
    }
    assert_eq!(confirmed, files);
    let s = on_a
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.ready, s.in_flight, s.delayed), (0, 0, 0), "{s:?}");
}

/// A worker node killed mid-transcode: once its lease runs out, another
/// worker node runs the task again as attempt 2, to the end.
#[tokio::test]
async fn a_task_whose_worker_node_dies_finishes_on_another() {
    let shared = Shared::new();
    let api = shared.api("api");
    let mut workers = [
        shared.worker("w1", &api, &["--lease", "2s"]),
        shared.worker("w2", &api, &["--lease", "2s"]),
    ];
    let key = api.default_key();
    let clip = make_clip(shared.dir.path(), "in.mp4", 30, 640, 360);
    let (file_id, _) = upload(&mut api.media_as(&key).await, &clip, "in.mp4")
        .await
        .unwrap();
    let mut tasks = api.tasks_as(&key).await;
    let id = create(&mut tasks, transcode(&file_id, &[100020])).await;
    wait_processing(&mut tasks, &id).await;
    let running = eventually("ffmpeg to run on a worker node", || {
        let pids = [workers[0].pid(), workers[1].pid()];
        async move { pids.iter().position(|&p| !ffmpeg_children(p).is_empty()) }
    })
    .await;
    workers[running].kill9();
    let done = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&done);
    assert_eq!(done.attempt, 2, "{done:?}");
}
