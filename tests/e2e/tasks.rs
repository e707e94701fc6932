//! Task APIs end to end: real binary, real ffmpeg, outputs checked with ffprobe.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use tonic::Code;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

#[tokio::test]
async fn transcode_outputs_have_the_definition_size_and_source_duration() {
    let Fixture {
        clip,
        mut media,
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(3, 640, 480, &[]).await;
    let (_, _, source_duration) = probe_video(clip.to_str().unwrap());

    let id = create(&mut tasks, transcode(&file_id, &[100010, 100030])).await;
    assert!(id.starts_with("transcode-"), "{id}");
    let task = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&task);
    assert_eq!(task.attempt, 1);
    assert!(task.begin_process_time.is_some() && task.finish_time.is_some());

    let Some(pb::task_output::Kind::Transcode(out)) = task.output.and_then(|o| o.kind) else {
        panic!("no transcode output");
    };
    assert_eq!(out.play_set.len(), 2);
    for (item, expected) in out.play_set.iter().zip([(480, 360), (640, 480)]) {
        // 100010 is 360p; 100030 (720p) must not upscale the 480p source.
        let (w, h, duration) = probe_video(&item.url);
        assert_eq!((w, h), expected, "definition {}", item.definition);
        assert_eq!((item.vwidth as u64, item.vheight as u64), expected);
        assert!(
            (duration - source_duration).abs() < 0.1,
            "{duration} vs {source_duration}"
        );
        let described = media
            .describe_media(pb::DescribeMediaRequest {
                file_id: item.file_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(described.source_type, pb::SourceType::TaskOutput as i32);
        assert_eq!(described.source_task_id, id);
        assert_eq!(described.size, item.size);
    }
}

#[tokio::test]
async fn progress_moves_from_0_to_100() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(40, 640, 360, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100020])).await;

    let seen = std::sync::Mutex::new(Vec::new());
    let task = eventually("the transcode to end", || {
        let mut tasks = tasks.clone();
        let (id, seen) = (id.clone(), &seen);
        async move {
            let t = describe(&mut tasks, &id).await;
            seen.lock().unwrap().push(t.progress);
            (t.status == pb::TaskStatus::Finish as i32).then_some(t)
        }
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert_finished_ok(&task);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {seen:?}"
    );
    assert!(
        seen.iter().any(|p| *p > 0 && *p < 100),
        "no progress between 0 and 100: {seen:?}"
    );
}

/// A clip whose colour changes every second: red, green, blue.
fn colour_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("colours.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=320x240:d=1:r=25[a];color=c=green:s=320x240:d=1:r=25[b];color=c=blue:s=320x240:d=1:r=25[c];[a][b][c]concat=n=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        path.to_str().expect("utf-8 path"),
    ]);
    path
}

/// The average colour of a picture as (r, g, b).
fn average_rgb(url: &str) -> (u8, u8, u8) {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            url,
            "-vf",
            "scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stdout.len() == 3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.stdout[0], out.stdout[1], out.stdout[2])
}

#[tokio::test]
async fn snapshots_are_taken_at_their_time_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::with_clip(dir, clip, &[]).await;

    let id = create(&mut tasks, snapshot(&file_id, 10, &[500, 1500, 2500])).await;
    let task = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&task);
    let Some(pb::task_output::Kind::SnapshotByTimeOffset(out)) = task.output.and_then(|o| o.kind)
    else {
        panic!("no snapshot output");
    };
    let dominant = |(r, g, b): (u8, u8, u8)| {
        if r > g && r > b {
            "red"
        } else if g > r && g > b {
            "green"
        } else {
            "blue"
        }
    };
    let colours: Vec<_> = out
        .pictures
        .iter()
        .map(|p| dominant(average_rgb(&p.url)))
        .collect();
    assert_eq!(colours, ["red", "green", "blue"]);
    for p in &out.pictures {
        assert_eq!(p.status, 0);
        assert_eq!(
            probe_video(&p.url).0,
            320,
            "definition 10 keeps the source resolution"
        );
    }

    // Definition 20 is 360p but never upscales; an offset past the end fails alone.
    let id = create(&mut tasks, snapshot(&file_id, 20, &[1000, 3500])).await;
    let task = wait_ended(&mut tasks, &id).await;
    assert_eq!(task.status, pb::TaskStatus::Finish as i32);
    assert_eq!(task.err_code, -44002, "{}", task.message);
    let Some(pb::task_output::Kind::SnapshotByTimeOffset(out)) = task.output.and_then(|o| o.kind)
    else {
        panic!("no snapshot output");
    };
    assert_eq!(out.pictures[0].status, 0);
    assert_eq!(probe_video(&out.pictures[0].url).1, 240);
    assert_eq!(out.pictures[1].status, -44002);
    assert!(out.pictures[1].url.is_empty());
}

#[tokio::test]
async fn session_id_deduplicates_both_ways() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;

    let mut request = transcode(&file_id, &[100010]);
    request.session_id = "order-42".into();
    request.session_context = "ctx".into();
    let first = create(&mut tasks, request.clone()).await;
    let again = create(&mut tasks, request.clone()).await;
    assert_eq!(
        first, again,
        "the same request under the same session returns the original task"
    );

    request.priority = 5;
    let err = tasks.create_task(request).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("session_id"), "{}", err.message());

    let task = describe(&mut tasks, &first).await;
    assert_eq!(task.session_id, "order-42");
    assert_eq!(task.session_context, "ctx");
}

#[tokio::test]
async fn redo_runs_again_under_the_same_id_and_keeps_the_old_result() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(2, 320, 240, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let first = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&first);

    let redone = tasks
        .redo_task(pb::RedoTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redone.task_id, id);
    assert_eq!(redone.attempt, 2);
    let second = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&second);
    assert_eq!(second.attempt, 2);
    assert_eq!(second.previous_attempts.len(), 1);
    let old = &second.previous_attempts[0];
    assert_eq!((old.attempt, old.err_code), (1, 0));
    assert_eq!(old.output, first.output, "the first result stays readable");
    assert_ne!(
        second.output, first.output,
        "the new result replaced it (new output files)"
    );

    let unknown = tasks
        .redo_task(pb::RedoTaskRequest {
            task_id: "transcode-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn redo_of_an_unfinished_task_is_refused() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let err = tasks
        .redo_task(pb::RedoTaskRequest { task_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("task_id"), "{}", err.message());
}

#[tokio::test]
async fn cancel_stops_the_running_ffmpeg() {
    let Fixture {
        server,
        mut tasks,
        file_id,
        _dir,
        ..
    } = Fixture::start(120, 640, 360, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100020])).await;
    cancel_running(&mut tasks, &id, server.pid()).await;
    let again = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.status,
        pb::TaskStatus::Aborted as i32,
        "cancel is idempotent"
    );
    assert!(again.output.is_none());
}

#[tokio::test]
async fn cancel_of_a_waiting_task_aborts_it_at_once() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let task = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.status, pb::TaskStatus::Aborted as i32);
    assert!(task.finish_time.is_some());
    let redone = tasks
        .redo_task(pb::RedoTaskRequest { task_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (redone.status, redone.attempt),
        (pb::TaskStatus::Waiting as i32, 2)
    );
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_under_concurrent_inserts() {
    let Fixture {
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;
    let mut before = HashSet::new();
    for _ in 0..60 {
        before.insert(create(&mut tasks, transcode(&file_id, &[100010])).await);
    }

    for order in [pb::SortOrder::Desc, pb::SortOrder::Asc] {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            // Another client inserts between every two pages.
            for _ in 0..3 {
                tasks
                    .create_task(transcode(&file_id, &[100010]))
                    .await
                    .unwrap();
            }
            let page = tasks
                .list_tasks(pb::ListTasksRequest {
                    limit: 7,
                    order: order as i32,
                    scroll_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(page.tasks.len() <= 7);
            seen.extend(page.tasks.into_iter().map(|t| t.task_id));
            if page.scroll_token.is_empty() {
                break;
            }
            token = page.scroll_token;
        }
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{order:?}: a task was repeated");
        assert!(
            before.is_subset(&unique),
            "{order:?}: a task that existed before paging was skipped"
        );
    }
}

#[tokio::test]
async fn list_filters_and_overview_counts() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 1, 160, 120);
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_a, _) = upload(&mut media, &clip, "a.mp4").await.unwrap();
    let (file_b, _) = upload(&mut media, &clip, "b.mp4").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            create(
                &mut tasks,
                transcode(if i < 2 { &file_a } else { &file_b }, &[100010]),
            )
            .await,
        );
    }
    for _ in 0..3 {
        tasks
            .create_task(snapshot(&file_a, 10, &[0]))
            .await
            .unwrap();
    }
    tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: ids[0].clone(),
        })
        .await
        .unwrap();

    let list = |req: pb::ListTasksRequest| {
        let mut tasks = tasks.clone();
        async move { tasks.list_tasks(req).await.unwrap().into_inner().tasks }
    };
    let waiting = list(pb::ListTasksRequest {
        status: pb::TaskStatus::Waiting as i32,
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(waiting.len(), 7);
    let snapshots = list(pb::ListTasksRequest {
        task_type: pb::TaskType::SnapshotByTimeOffset as i32,
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(snapshots.len(), 3);
    let on_a = list(pb::ListTasksRequest {
        file_id: file_a.clone(),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(on_a.len(), 5);
    let finished = list(pb::ListTasksRequest {
        sort_by: pb::TaskSortBy::FinishTime as i32,
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        finished
            .iter()
            .map(|t| t.task_id.clone())
            .collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    let newest_first = list(pb::ListTasksRequest {
        limit: 100,
        ..Default::default()
    })
    .await;
    let created = |t: &pb::Task| t.create_time.map(|c| (c.seconds, c.nanos));
    assert!(
        newest_first
            .windows(2)
            .all(|w| created(&w[0]) >= created(&w[1]))
    );
    let future = prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    };
    let none = list(pb::ListTasksRequest {
        create_time: Some(pb::TimeRange {
            after: Some(future),
            before: None,
        }),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(none.is_empty());

    let overview = tasks
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .unwrap()
        .into_inner();
    let count = |s: pb::TaskStatus| {
        overview
            .by_status
            .iter()
            .find(|c| c.status == s as i32)
            .map_or(0, |c| c.count)
    };
    assert_eq!(overview.total, 8);
    assert_eq!(
        (
            count(pb::TaskStatus::Waiting),
            count(pb::TaskStatus::Aborted)
        ),
        (7, 1)
    );
    assert_eq!((overview.queue_depth, overview.running), (7, 0));
    let by_type = |t: pb::TaskType| {
        overview
            .by_type
            .iter()
            .find(|c| c.task_type == t as i32)
            .map_or(0, |c| c.count)
    };
    assert_eq!(
        (
            by_type(pb::TaskType::Transcode),
            by_type(pb::TaskType::SnapshotByTimeOffset)
        ),
        (5, 3)
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ranged = |after: i64, before: i64| pb::GetTaskOverviewRequest {
        create_time: Some(pb::TimeRange {
            after: Some(prost_types::Timestamp {
                seconds: after,
                nanos: 0,
            }),
            before: Some(prost_types::Timestamp {
                seconds: before,
                nanos: 0,
            }),
        }),
    };
    let recent = tasks
        .get_task_overview(ranged(now - 60, now + 60))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(recent.total, 8);
    let counted = recent.counted_create_time.unwrap();
    assert_eq!(
        counted.after.unwrap().seconds % 3600,
        0,
        "widened to whole hours"
    );
    let past = tasks
        .get_task_overview(ranged(now - 30 * 86400, now - 29 * 86400))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(past.total, 0);
}
