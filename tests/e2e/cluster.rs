//! Several vodtask processes on one PostgreSQL database and one shared media
//! directory, as real processes: whichever node a call reaches, it behaves
//! as on one server. Tasks created on one node run on another and are
//! described and cancelled through a third; events pulled through one node
//! are confirmed through another; a stream on one node gets the events
//! committed on another; a node killed while holding a stream's leases
//! loses none of its events.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use vodtask_e2e::pg::{Database, Instance};
use vodtask_e2e::queue::*;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

/// One database and one media directory that the nodes of a test share.
struct Shared {
    dir: tempfile::TempDir,
    database: String,
    /// Dropped when the test ends, when the test made it.
    _made: Option<Database>,
    media: String,
}

impl Shared {
    /// On a database of its own on the test server.
    fn new() -> Shared {
        let db = Database::create();
        let mut shared = Shared::on(db.url.clone());
        shared._made = Some(db);
        shared
    }

    /// On the database at `url`.
    fn on(database: String) -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let media = format!("file://{}", dir.path().join("media").display());
        Shared {
            dir,
            database,
            _made: None,
            media,
        }
    }

    /// A clip of `seconds` made with ffmpeg and uploaded through `node`;
    /// its file id.
    async fn upload_clip(
        &self,
        node: &Server,
        key: &str,
        seconds: u32,
        size: (u32, u32),
    ) -> String {
        let clip = make_clip(self.dir.path(), "in.mp4", seconds, size.0, size.1);
        let (file_id, _) = upload(&mut node.media_as(key).await, &clip, "in.mp4")
            .await
            .unwrap();
        file_id
    }

    /// An API node without workers.
    fn api(&self, name: &str) -> Server {
        self.node(name, &["--workers", "0"])
    }

    /// An API node (with workers unless `extra` says otherwise).
    fn node(&self, name: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--database", &self.database, "--storage", &self.media];
        args.extend(extra);
        Server::start(&self.dir.path().join(name), &args)
    }

    /// A worker node (`vodtask worker`: tasks and callbacks, no API) with
    /// one worker and `extra` flags; its file URLs point at `api`'s file
    /// server.
    fn worker(&self, name: &str, api: &Server, extra: &[&str]) -> Server {
        let public_url = format!("http://{}", api.http_addr);
        let mut args = vec![
            "--database",
            &self.database,
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
    let file_id = c.shared.upload_clip(&c.a, &c.key, 60, (640, 360)).await;
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
    let file_id = shared.upload_clip(&api, &key, 30, (640, 360)).await;
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

/// What the consumer of the crash test knows: events whose confirm answered
/// CONFIRMED (they must never come back), events whose confirm got no
/// answer (a node or the database died on the way: confirmed or not), and
/// per key (a task, or the file of an upload) the sequences it settled.
#[derive(Default)]
struct Ledger {
    confirmed: HashSet<String>,
    unanswered: HashSet<String>,
    settled: HashMap<String, BTreeSet<i64>>,
    /// Keys whose last event (a procedure's FINISH, an upload's one) was settled.
    ended: HashSet<String>,
}

fn key_of(d: &pb::EventDelivery) -> String {
    let e = d.event.as_ref().unwrap();
    if e.task_id.is_empty() {
        file_of(d)
    } else {
        e.task_id.clone()
    }
}

impl Ledger {
    /// A delivery: never one confirmed before, never ahead of its task's order.
    fn delivered(&mut self, d: &pb::EventDelivery) {
        let e = d.event.as_ref().unwrap();
        assert!(
            !self.confirmed.contains(&e.event_id),
            "event {} came back after its confirm returned CONFIRMED",
            e.event_id
        );
        let settled = self.settled.entry(key_of(d)).or_default();
        if self.unanswered.remove(&e.event_id) {
            // Back, so that confirm never committed.
            settled.remove(&e.task_sequence);
        }
        assert!(
            e.task_sequence == 1 || settled.contains(&(e.task_sequence - 1)),
            "event {} (#{} of {}) delivered before #{} was settled",
            e.event_id,
            e.task_sequence,
            key_of(d),
            e.task_sequence - 1
        );
    }

    /// The answer to its confirm: None when none came.
    fn answered(&mut self, d: &pb::EventDelivery, status: Option<i32>) {
        let e = d.event.as_ref().unwrap();
        match status {
            Some(s) if s == pb::HandleStatus::Confirmed as i32 => {
                self.confirmed.insert(e.event_id.clone());
            }
            Some(_) => return, // expired: it comes back
            None => {
                self.unanswered.insert(e.event_id.clone());
            }
        }
        self.settled
            .entry(key_of(d))
            .or_default()
            .insert(e.task_sequence);
        if e.event_type != "ProcedureStateChanged" || envelope_of(d)["data"]["status"] == "FINISH" {
            self.ended.insert(key_of(d));
        }
    }
}

fn envelope_of(d: &pb::EventDelivery) -> serde_json::Value {
    serde_json::from_str(&d.event.as_ref().unwrap().content_json).unwrap()
}

/// A procedure in CHANGE mode, whose every subtask start and end is an
/// event of the task (five in all), in order.
fn procedure(file_id: &str) -> pb::CreateTaskRequest {
    let subtasks = [
        pb::subtask_spec::Kind::Transcode(pb::TranscodeSubtask { definition: 100010 }),
        pb::subtask_spec::Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
            definition: 10,
            position_type: pb::PositionType::Percent as i32,
            position: 50.0,
        }),
    ];
    pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::Procedure(pb::ProcedureSpec {
                file_id: file_id.into(),
                subtasks: subtasks
                    .into_iter()
                    .map(|k| pb::SubtaskSpec { kind: Some(k) })
                    .collect(),
                notify_mode: pb::NotifyMode::Change as i32,
            })),
        }),
        ..Default::default()
    }
}

/// The crash test of the event queue, across nodes: two API+worker nodes
/// and a worker node on a PostgreSQL of the test's own. While procedures
/// run and a consumer pulls through one node and confirms through the
/// other, a node is killed with SIGKILL, then PostgreSQL itself crashes
/// and restarts (the nodes reconnect by themselves), then the worker node
/// is killed. In the end every event was confirmed, each task's in order,
/// none that was confirmed came back, and every procedure finished.
#[tokio::test]
async fn nodes_and_postgres_crash_while_events_flow_and_nothing_is_lost_or_comes_back() {
    let pg = Instance::start();
    let shared = Shared::on(pg.url());
    let lease = ["--workers", "1", "--lease", "2s"];
    let n1 = shared.node("n1", &lease);
    let mut n2 = shared.node("n2", &lease);
    let mut n3 = shared.worker("n3", &n1, &["--lease", "2s"]);
    let key = n1.default_key();
    n1.events_as(&key)
        .await
        .modify_event_config(pb::ModifyEventConfigRequest {
            visibility_timeout_seconds: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    let file_id = shared.upload_clip(&n1, &key, 4, (160, 120)).await;
    let mut expected = uploads(&n1, &key, shared.dir.path(), 40).await;
    expected.insert(file_id.clone());

    let mut ledger = Ledger::default();
    let mut procedures = Vec::new();
    let mut kills = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 3000, "consumption did not finish");
        let (mut from, mut to) = (n1.events_as(&key).await, n2.events_as(&key).await);
        if rounds % 2 == 0 {
            std::mem::swap(&mut from, &mut to);
        }
        // One procedure per round for the first eight, through either node.
        if rounds <= 8 {
            let node = if rounds % 2 == 0 { &n1 } else { &n2 };
            let id = create(&mut node.tasks_as(&key).await, procedure(&file_id)).await;
            expected.insert(id.clone());
            procedures.push(id);
        }
        let batch = match from
            .pull_events(pb::PullEventsRequest {
                max_events: 7,
                wait_seconds: Some(1),
            })
            .await
        {
            Ok(r) => r.into_inner().events,
            // A node restarting, or the database down: try again.
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                Vec::new()
            }
        };
        batch.iter().for_each(|d| ledger.delivered(d));
        let kill = [3, 6, 9].contains(&rounds);
        let answers = if batch.is_empty() || (kill && rand::random::<bool>()) {
            None
        } else {
            to.confirm_events(pb::ConfirmEventsRequest {
                msg_handles: batch.iter().map(|d| d.msg_handle.clone()).collect(),
            })
            .await
            .ok()
            .map(|r| r.into_inner().results)
        };
        if let Some(answers) = answers {
            for (d, a) in batch.iter().zip(answers) {
                ledger.answered(d, Some(a.status));
            }
        }
        match rounds {
            3 => {
                n2.kill9();
                n2.restart();
            }
            6 => {
                pg.crash();
                pg.start_again();
            }
            9 => {
                n3.kill9();
                n3.restart();
            }
            _ => {}
        }
        kills += usize::from(kill);
        if batch.is_empty() && ledger.ended.is_superset(&expected) {
            let s = from
                .describe_events_state(pb::DescribeEventsStateRequest {})
                .await
                .unwrap()
                .into_inner();
            if (s.ready, s.in_flight, s.delayed, s.dead_lettered) == (0, 0, 0, 0) {
                break;
            }
        }
    }
    assert_eq!(kills, 3);
    eprintln!(
        "{rounds} rounds; {} events confirmed, {} confirms unanswered",
        ledger.confirmed.len(),
        ledger.unanswered.len()
    );
    // Every key's events were settled from the first to the last.
    for (key, settled) in &ledger.settled {
        let last = *settled.last().unwrap();
        assert_eq!(settled.len() as i64, last, "{key}: {settled:?}");
    }
    let mut tasks = n1.tasks_as(&key).await;
    for id in &procedures {
        let t = describe(&mut tasks, id).await;
        assert_finished_ok(&t);
        eprintln!("{id}: attempt {}", t.attempt);
    }
}

/// PostgreSQL gone for ten seconds: calls answer UNAVAILABLE at once
/// instead of hanging, the worker waits, and when the database is back
/// everything resumes by itself: the running task finishes, new tasks
/// are taken, and the events of both arrive.
#[tokio::test]
async fn while_postgres_is_down_calls_fail_fast_and_everything_resumes_after() {
    let pg = Instance::start();
    let shared = Shared::on(pg.url());
    let node = shared.node("n", &["--workers", "1", "--lease", "2s"]);
    let key = node.default_key();
    let file_id = shared.upload_clip(&node, &key, 30, (640, 360)).await;
    let mut tasks = node.tasks_as(&key).await;
    let mut events = node.events_as(&key).await;
    let running = create(&mut tasks, transcode(&file_id, &[100020])).await;
    wait_processing(&mut tasks, &running).await;

    pg.crash();
    let down = Instant::now();
    let refused = |what: &str, r: Result<(), tonic::Status>, started: Instant| {
        let s = r.expect_err(what);
        assert_eq!(s.code(), tonic::Code::Unavailable, "{what}: {s:?}");
        assert!(s.message().contains("database"), "{what}: {s:?}");
        eprintln!("{what} answered UNAVAILABLE in {:?}", started.elapsed());
    };
    let t = Instant::now();
    let r = tasks
        .describe_task(pb::DescribeTaskRequest {
            task_id: running.clone(),
        })
        .await;
    refused("DescribeTask", r.map(drop), t);
    let t = Instant::now();
    let r = tasks.create_task(snapshot(&file_id, 10, &[0])).await;
    refused("CreateTask", r.map(drop), t);
    let t = Instant::now();
    let r = events
        .pull_events(pb::PullEventsRequest {
            max_events: 16,
            wait_seconds: Some(0),
        })
        .await;
    refused("PullEvents", r.map(drop), t);
    // The outage lasts ten seconds (this wait is the scenario, not a hope).
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    pg.start_again();

    let later = eventually("CreateTask to work again", || {
        let mut tasks = tasks.clone();
        let request = snapshot(&file_id, 10, &[0, 1000]);
        async move { tasks.create_task(request).await.ok() }
    })
    .await
    .into_inner()
    .task_id;
    assert_finished_ok(&wait_ended(&mut tasks, &running).await);
    assert_finished_ok(&wait_ended(&mut tasks, &later).await);
    // The upload's event and both tasks' events, none lost.
    let mut keys = HashSet::new();
    while keys.len() < 3 {
        for d in pull(&mut events, 16, 5).await {
            confirm_one(&mut events, &d).await;
            keys.insert(key_of(&d));
        }
    }
    assert_eq!(keys, HashSet::from([file_id, running, later]));
}
