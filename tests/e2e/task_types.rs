//! Every task type of the seed through the real binary on clips made with
//! ffmpeg: what each one writes (checked with ffprobe), the event each one
//! sends (through PullEvents), and their failures.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vodtask_e2e::origin::Origin;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::v1::event_service_client::EventServiceClient;
use vodtask_e2e::*;

type Events = EventServiceClient<InterceptedService<Channel, Auth>>;

fn request(kind: pb::task_spec::Kind) -> pb::CreateTaskRequest {
    pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec { kind: Some(kind) }),
        ..Default::default()
    }
}

fn clip_request(file_id: &str, start: f64, end: f64) -> pb::CreateTaskRequest {
    request(pb::task_spec::Kind::Clip(pb::ClipSpec {
        file_id: file_id.into(),
        start_time_offset: start,
        end_time_offset: end,
    }))
}

fn procedure(
    file_id: &str,
    subtasks: Vec<pb::subtask_spec::Kind>,
    mode: pb::NotifyMode,
) -> pb::CreateTaskRequest {
    request(pb::task_spec::Kind::Procedure(pb::ProcedureSpec {
        file_id: file_id.into(),
        subtasks: subtasks
            .into_iter()
            .map(|k| pb::SubtaskSpec { kind: Some(k) })
            .collect(),
        notify_mode: mode as i32,
    }))
}

fn transcode_subtask(definition: i32) -> pb::subtask_spec::Kind {
    pb::subtask_spec::Kind::Transcode(pb::TranscodeSubtask { definition })
}

fn cover_subtask(percent: f64) -> pb::subtask_spec::Kind {
    pb::subtask_spec::Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
        definition: 10,
        position_type: pb::PositionType::Percent as i32,
        position: percent,
    })
}

fn cover_at(seconds: f64) -> pb::subtask_spec::Kind {
    pb::subtask_spec::Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
        definition: 10,
        position_type: pb::PositionType::Time as i32,
        position: seconds,
    })
}

/// Pulls (confirming everything) until `n` events of `event_type` about
/// `task_id` arrived; returns their envelopes in arrival order.
async fn events_of(events: &mut Events, event_type: &str, task_id: &str, n: usize) -> Vec<Value> {
    events_where(events, n, |e| {
        e.event_type == event_type && e.task_id == task_id
    })
    .await
}

/// Pulls (confirming everything) until `n` events `wanted` arrived; returns
/// their envelopes in arrival order.
async fn events_where(
    events: &mut Events,
    n: usize,
    wanted: impl Fn(&pb::Event) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    let mut found = Vec::new();
    while found.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {n} events; got {found:?}"
        );
        let got = events
            .pull_events(pb::PullEventsRequest {
                max_events: 100,
                wait_seconds: Some(2),
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        let handles: Vec<String> = got.iter().map(|d| d.msg_handle.clone()).collect();
        for d in got {
            let e = d.event.unwrap();
            if wanted(&e) {
                found.push(serde_json::from_str(&e.content_json).unwrap());
            }
        }
        if !handles.is_empty() {
            events
                .confirm_events(pb::ConfirmEventsRequest {
                    msg_handles: handles,
                })
                .await
                .unwrap();
        }
    }
    found
}

async fn event_of(events: &mut Events, event_type: &str, task_id: &str) -> Value {
    events_of(events, event_type, task_id, 1).await.remove(0)
}

/// A clip with video only (testsrc2), for inputs without audio.
fn make_silent_clip(
    dir: &std::path::Path,
    name: &str,
    seconds: u32,
    w: u32,
    h: u32,
) -> std::path::PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=duration={seconds}:size={w}x{h}:rate=30"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
    path
}

#[tokio::test]
async fn clip_cuts_within_a_tenth_of_a_second_and_reports_clip_complete() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(6, 320, 240, &[]).await;
    let mut events = server.events().await;
    let id = create(&mut tasks, clip_request(&file_id, 1.2, 3.7)).await;
    assert!(id.starts_with("clip-"), "{id}");
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Clip(out)) = t.output.unwrap().kind else {
        panic!("clip output")
    };
    let file = out.file.unwrap();
    assert_eq!(file.file_type, pb::FileType::Mp4 as i32);
    let (w, h, duration) = probe_video(&file.url);
    assert_eq!((w, h), (320, 240));
    assert!((duration - 2.5).abs() <= 0.1, "clip lasts {duration} s");

    let e = event_of(&mut events, "ClipComplete", &id).await;
    let data = &e["data"];
    assert_eq!(data["vodTaskId"], id.as_str());
    assert_eq!(data["status"], 0);
    assert_eq!(data["srcFileId"], file_id.as_str());
    assert_eq!(data["fileInfo"]["fileType"], "mp4");
    assert_eq!(data["fileInfo"]["fileId"], file.file_id.as_str());
    assert_eq!(data["fileInfo"]["fileUrl"], file.url.as_str());

    // The clip is a file of its own; ListTasks by its id finds the task
    // that wrote it, and by the source's id the task that read it.
    for f in [&file.file_id, &file_id] {
        let page = tasks
            .list_tasks(pb::ListTasksRequest {
                file_id: f.clone(),
                task_type: pb::TaskType::Clip as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.tasks.len(), 1, "tasks of {f}");
        assert_eq!(page.tasks[0].task_id, id);
    }

    // Starting past the end fails with its code.
    let late = create(&mut tasks, clip_request(&file_id, 9.0, 12.0)).await;
    let t = wait_ended(&mut tasks, &late).await;
    assert_eq!(t.err_code, -47003, "{}", t.message);
    let e = event_of(&mut events, "ClipComplete", &late).await;
    assert_eq!(e["data"]["status"], -47003);
    assert_eq!(e["data"]["fileInfo"]["fileId"], "");
}

#[tokio::test]
async fn concat_joins_mixed_sizes_into_mp4_and_a_playable_hls() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_clip(dir.path(), "a.mp4", 3, 320, 240);
    let b = make_silent_clip(dir.path(), "b.mp4", 2, 160, 90);
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut media, mut tasks, mut events) = (
        server.media().await,
        server.tasks().await,
        server.events().await,
    );
    let (fa, _) = upload(&mut media, &a, "a.mp4").await.unwrap();
    let (fb, _) = upload(&mut media, &b, "b.mp4").await.unwrap();

    let id = create(
        &mut tasks,
        request(pb::task_spec::Kind::Concat(pb::ConcatSpec {
            file_ids: vec![fa.clone(), fb.clone()],
            output_types: vec![pb::FileType::Mp4 as i32, pb::FileType::M3u8 as i32],
        })),
    )
    .await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Concat(out)) = t.output.unwrap().kind else {
        panic!("concat output")
    };
    assert_eq!(out.files.len(), 2);
    let (mp4, hls) = (&out.files[0], &out.files[1]);
    assert_eq!(mp4.file_type, pb::FileType::Mp4 as i32);
    assert_eq!(hls.file_type, pb::FileType::M3u8 as i32);
    for f in [mp4, hls] {
        let (w, h, duration) = probe_video(&f.url);
        assert_eq!((w, h), (320, 240), "{}: scaled to the first input", f.url);
        assert!(
            (duration - 5.0).abs() <= 0.2,
            "{} lasts {duration} s",
            f.url
        );
    }
    // The audio runs through the silent part.
    let audio = ffprobe(&mp4.url)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .cloned()
        .expect("an audio stream");
    let audio_len: f64 = audio["duration"].as_str().unwrap().parse().unwrap();
    assert!((audio_len - 5.0).abs() <= 0.2, "audio lasts {audio_len} s");

    // HLS is served with the types players expect.
    let http = http_client();
    let playlist = http.get(&hls.url).send().await.unwrap();
    assert_eq!(
        playlist.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let text = playlist.text().await.unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    let segment = text.lines().find(|l| l.ends_with(".ts")).unwrap();
    let segment_url = format!("{}/{segment}", hls.url.rsplit_once('/').unwrap().0);
    let seg = http.get(&segment_url).send().await.unwrap();
    assert_eq!(seg.status(), 200);
    assert_eq!(seg.headers()["content-type"], "video/mp2t");

    let e = event_of(&mut events, "ConcatComplete", &id).await;
    let info = e["data"]["fileInfo"].as_array().unwrap();
    assert_eq!(e["data"]["status"], 0);
    assert_eq!(info.len(), 2);
    assert_eq!(info[0]["fileType"], "mp4");
    assert_eq!(info[0]["fileId"], mp4.file_id.as_str());
    assert_eq!(info[1]["fileType"], "m3u8");
    assert_eq!(info[1]["fileUrl"], hls.url.as_str());

    // RedoTask runs it again under the same id, with new files.
    let redone = tasks
        .redo_task(pb::RedoTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redone.attempt, 2);
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Concat(again)) = t.output.unwrap().kind else {
        panic!("concat output")
    };
    assert_ne!(again.files[0].file_id, mp4.file_id);
}

#[tokio::test]
async fn image_sprites_tile_thumbnails_with_a_web_vtt_index() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "long.mp4", 53, 192, 108);
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::with_clip(dir, clip, &[]).await;
    let mut events = server.events().await;
    let id = create(
        &mut tasks,
        request(pb::task_spec::Kind::ImageSprites(pb::ImageSpritesSpec {
            file_id: file_id.clone(),
            definition: 20,
        })),
    )
    .await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::ImageSprites(out)) = t.output.unwrap().kind else {
        panic!("sprites output")
    };
    // One thumbnail every 2 s of 53 s: 0, 2, ... 52; 25 per 5x5 image.
    assert_eq!(out.total_count, 27);
    assert_eq!(out.image_urls.len(), 2);
    for url in &out.image_urls {
        let (w, h, _) = probe_video(url);
        assert_eq!((w, h), (5 * 160, 5 * 90), "{url}");
    }
    let http = http_client();
    let image = http.get(&out.image_urls[0]).send().await.unwrap();
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    let vtt = http.get(&out.web_vtt_url).send().await.unwrap();
    assert_eq!(vtt.headers()["content-type"], "text/vtt");
    let vtt = vtt.text().await.unwrap();
    assert!(vtt.starts_with("WEBVTT"));
    assert_eq!(vtt.matches("-->").count(), 27);
    assert!(
        vtt.contains("00:00:50.000 --> 00:00:52.000\nsprite_002.jpg#xywh=0,0,160,90"),
        "{vtt}"
    );

    let e = event_of(&mut events, "CreateImageSpriteComplete", &id).await;
    let data = &e["data"];
    assert_eq!(data["status"], 0);
    assert_eq!(data["fileId"], file_id.as_str());
    assert_eq!(data["definition"], 20);
    assert_eq!(data["totalCount"], 27);
    assert_eq!(data["imageSpriteUrl"].as_array().unwrap().len(), 2);
    assert_eq!(data["webVttUrl"], out.web_vtt_url.as_str());
}

#[tokio::test]
async fn hls_transcode_plays_through_ffprobe() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(9, 640, 360, &[]).await;
    let mut events = server.events().await;
    let id = create(&mut tasks, transcode(&file_id, &[100210, 100010])).await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Transcode(out)) = t.output.unwrap().kind else {
        panic!("transcode output")
    };
    let hls = out
        .play_set
        .iter()
        .find(|p| p.definition == 100210)
        .unwrap();
    assert!(hls.url.ends_with("/index.m3u8"), "{}", hls.url);
    let (w, h, duration) = probe_video(&hls.url);
    assert_eq!((w, h), (640, 360));
    assert!((duration - 9.0).abs() <= 0.2, "{duration}");
    let playlist = http_client()
        .get(&hls.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // 4 s segments: 9 s make three.
    assert_eq!(playlist.matches(".ts").count(), 3, "{playlist}");
    let e = event_of(&mut events, "TranscodeComplete", &id).await;
    let urls: Vec<&str> = e["data"]["playSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert!(urls.contains(&hls.url.as_str()), "{urls:?}");
}

#[tokio::test]
async fn pull_downloads_into_the_library_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "remote.mp4", 2, 320, 240);
    let bytes = std::fs::read(&clip).unwrap();
    let origin = Origin::start(HashMap::from([("remote.mp4".to_string(), bytes)])).await;
    let server = Server::start(
        &dir.path().join("data"),
        &["--allow-outbound-cidr", "127.0.0.1/32"],
    );
    let (mut media, mut tasks, mut events) = (
        server.media().await,
        server.tasks().await,
        server.events().await,
    );
    let pull = |url: String, timeout: i32| {
        request(pb::task_spec::Kind::PullUpload(pb::PullUploadSpec {
            media_url: url,
            source_context: "from the origin".into(),
            timeout_seconds: timeout,
            ..Default::default()
        }))
    };

    // Through a redirect, into the library.
    let id = create(&mut tasks, pull(origin.url("/redirect/remote.mp4"), 0)).await;
    assert!(id.starts_with("pull-"), "{id}");
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::PullUpload(out)) = t.output.unwrap().kind else {
        panic!("pull output")
    };
    assert_eq!(t.file_id, out.file_id);
    let info = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: out.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.source_type, pb::SourceType::Pull as i32);
    assert_eq!(info.file_name, "remote.mp4");
    assert_eq!(info.source_context, "from the origin");
    assert_eq!(info.md5, md5_hex(&clip));
    assert_eq!(info.source_task_id, id);
    let e = event_of(&mut events, "PullComplete", &id).await;
    assert_eq!(e["data"]["status"], 0);
    assert_eq!(e["data"]["fileId"], out.file_id.as_str());
    assert_eq!(e["data"]["fileUrl"], out.file_url.as_str());
    assert_eq!(e["data"]["procedureTaskId"], "");

    // A pull that starts a procedure on the file it brings.
    let with_procedure = create(
        &mut tasks,
        request(pb::task_spec::Kind::PullUpload(pb::PullUploadSpec {
            media_url: origin.url("/files/remote.mp4"),
            procedure: Some(pb::ProcedurePlan {
                subtasks: vec![pb::SubtaskSpec {
                    kind: Some(cover_subtask(50.0)),
                }],
                notify_mode: pb::NotifyMode::Finish as i32,
            }),
            ..Default::default()
        })),
    )
    .await;
    let e = event_of(&mut events, "PullComplete", &with_procedure).await;
    let procedure_id = e["data"]["procedureTaskId"].as_str().unwrap().to_string();
    assert!(procedure_id.starts_with("procedure-"), "{e}");
    let p = wait_ended(&mut tasks, &procedure_id).await;
    assert_finished_ok(&p);
    assert_eq!(p.file_id, e["data"]["fileId"].as_str().unwrap());

    // A 404, and a server too slow for the timeout.
    let missing = create(&mut tasks, pull(origin.url("/missing"), 0)).await;
    let t = wait_ended(&mut tasks, &missing).await;
    assert_eq!(t.err_code, -46001, "{}", t.message);
    assert!(t.message.contains("404"), "{}", t.message);
    let e = event_of(&mut events, "PullComplete", &missing).await;
    assert_eq!(e["data"]["status"], -46001);
    assert_eq!(e["data"]["fileId"], "");

    let started = Instant::now();
    let slow = create(&mut tasks, pull(origin.url("/slow"), 2)).await;
    let t = wait_ended(&mut tasks, &slow).await;
    assert_eq!(t.err_code, -46002, "{}", t.message);
    assert!(started.elapsed().as_secs_f64() >= 2.0);
    assert!(t.file_id.is_empty());
}

#[tokio::test]
async fn pull_refuses_internal_addresses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(HashMap::from([("x.mp4".to_string(), vec![1; 10])])).await;
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut tasks = server.tasks().await;
    for url in [
        origin.url("/files/x.mp4"),
        format!("http://localhost:{}/files/x.mp4", origin.addr.port()),
    ] {
        let id = create(
            &mut tasks,
            request(pb::task_spec::Kind::PullUpload(pb::PullUploadSpec {
                media_url: url.clone(),
                ..Default::default()
            })),
        )
        .await;
        let t = wait_ended(&mut tasks, &id).await;
        assert_eq!(t.err_code, -46004, "{url}: {}", t.message);
    }
}

#[tokio::test]
async fn delete_removes_files_with_their_renditions_unless_in_use() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        mut media,
        file_id,
        ..
    } = Fixture::start(2, 320, 240, &[]).await;
    let mut events = server.events().await;
    let tr = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let t = wait_ended(&mut tasks, &tr).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Transcode(out)) = t.output.unwrap().kind else {
        panic!("transcode output")
    };
    let rendition = out.play_set[0].clone();
    let source_url = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .file_url;

    let del = create(
        &mut tasks,
        request(pb::task_spec::Kind::DeleteMedia(pb::DeleteMediaSpec {
            file_ids: vec![file_id.clone()],
        })),
    )
    .await;
    let t = wait_ended(&mut tasks, &del).await;
    assert_finished_ok(&t);
    let e = event_of(&mut events, "FileDeleted", &del).await;
    assert_eq!(e["data"]["status"], 0);
    let gone: Vec<&str> = e["data"]["fileInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileId"].as_str().unwrap())
        .collect();
    assert_eq!(gone, [file_id.as_str(), rendition.file_id.as_str()]);
    let http = http_client();
    for (f, url) in [
        (&file_id, &source_url),
        (&rendition.file_id, &rendition.url),
    ] {
        let e = media
            .describe_media(pb::DescribeMediaRequest { file_id: f.clone() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(http.get(url).send().await.unwrap().status(), 404, "{url}");
    }
    // The history stays: the transcode is still found by its file.
    let page = tasks
        .list_tasks(pb::ListTasksRequest {
            file_id: rendition.file_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.tasks.len(), 1);
    assert_eq!(page.tasks[0].task_id, tr);
}

#[tokio::test]
async fn a_file_a_waiting_task_uses_cannot_be_deleted() {
    let Fixture {
        _dir,
        server: _server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;
    create(&mut tasks, transcode(&file_id, &[100010])).await;
    let e = tasks
        .create_task(request(pb::task_spec::Kind::DeleteMedia(
            pb::DeleteMediaSpec {
                file_ids: vec![file_id.clone()],
            },
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains(&file_id), "{}", e.message());
}

#[tokio::test]
async fn a_corrupt_input_finishes_with_the_probe_code() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut media, mut tasks, mut events) = (
        server.media().await,
        server.tasks().await,
        server.events().await,
    );
    let (file_id, _) = upload(&mut media, &junk, "junk.mp4").await.unwrap();
    let id = create(&mut tasks, clip_request(&file_id, 0.0, 1.0)).await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_eq!(t.status, pb::TaskStatus::Finish as i32);
    assert_eq!(t.err_code, -43001, "{}", t.message);
    assert!(t.message.contains("ffprobe"), "{}", t.message);
    let e = event_of(&mut events, "ClipComplete", &id).await;
    assert_eq!(e["data"]["status"], -43001);

    let sprites = create(
        &mut tasks,
        request(pb::task_spec::Kind::ImageSprites(pb::ImageSpritesSpec {
            file_id: file_id.clone(),
            definition: 10,
        })),
    )
    .await;
    assert_eq!(wait_ended(&mut tasks, &sprites).await.err_code, -43001);
}

#[tokio::test]
async fn a_procedure_in_change_mode_reports_every_subtask_change() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(3, 320, 240, &[]).await;
    let mut events = server.events().await;
    let id = create(
        &mut tasks,
        procedure(
            &file_id,
            vec![transcode_subtask(100010), cover_subtask(50.0)],
            pb::NotifyMode::Change,
        ),
    )
    .await;
    assert!(id.starts_with("procedure-"), "{id}");
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let Some(pb::task_output::Kind::Procedure(out)) = t.output.unwrap().kind else {
        panic!("procedure output")
    };
    assert_eq!(out.subtasks.len(), 2);
    for s in &out.subtasks {
        assert_eq!(s.status, pb::SubtaskStatus::Success as i32, "{s:?}");
        assert_eq!(s.progress, 100);
        assert!(s.begin_time.is_some() && s.finish_time.is_some());
    }
    let Some(pb::subtask_output::Kind::CoverBySnapshot(cover)) =
        out.subtasks[1].output.clone().unwrap().kind
    else {
        panic!("cover output")
    };
    assert_eq!(probe_video(&cover.url).0, 320);

    // Two subtasks, each started and ended: four PROCESSING events, then
    // FINISH, in taskSequence order.
    let got = events_of(&mut events, "ProcedureStateChanged", &id, 5).await;
    let states: Vec<&str> = got
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "PROCESSING",
            "PROCESSING",
            "PROCESSING",
            "PROCESSING",
            "FINISH"
        ]
    );
    let sequences: Vec<i64> = got
        .iter()
        .map(|e| e["taskSequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    let last = &got[4]["data"];
    assert_eq!(last["errCode"], 0);
    assert_eq!(last["fileId"], file_id.as_str());
    assert_eq!(last["metaData"]["width"], 320);
    let list = last["processTaskList"].as_array().unwrap();
    assert_eq!(list[0]["taskType"], "Transcode");
    assert_eq!(list[0]["status"], "SUCCESS");
    assert_eq!(list[0]["input"]["definition"], 100010);
    assert!(list[0]["output"]["url"].as_str().unwrap().ends_with(".mp4"));
    assert_eq!(list[1]["taskType"], "CoverBySnapshot");
    assert_eq!(list[1]["output"]["imageUrl"], cover.url.as_str());
    // Every subtask is done by the end; on the way, each event shows one
    // more change.
    let done_in = |e: &Value| {
        e["data"]["processTaskList"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "SUCCESS")
            .count()
    };
    assert_eq!(done_in(&got[0]), 0);
    assert_eq!(done_in(&got[4]), 2);
}

#[tokio::test]
async fn a_procedure_in_finish_mode_sends_one_event_and_none_in_none_mode() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(2, 320, 240, &[]).await;
    let mut events = server.events().await;
    let sprites = pb::subtask_spec::Kind::ImageSprites(pb::ImageSpritesSubtask { definition: 10 });
    let finish = create(
        &mut tasks,
        procedure(
            &file_id,
            vec![cover_subtask(0.0), sprites.clone()],
            pb::NotifyMode::Unspecified,
        ),
    )
    .await;
    let silent = create(
        &mut tasks,
        procedure(&file_id, vec![cover_at(10.0)], pb::NotifyMode::None),
    )
    .await;
    assert_finished_ok(&wait_ended(&mut tasks, &finish).await);
    let t = wait_ended(&mut tasks, &silent).await;
    // A cover position past the end fails that subtask, and so the
    // procedure's code; FINISH still means it ended.
    assert_eq!(t.status, pb::TaskStatus::Finish as i32);
    assert_eq!(t.err_code, -44002, "{}", t.message);

    let got = event_of(&mut events, "ProcedureStateChanged", &finish).await;
    assert_eq!(got["data"]["status"], "FINISH");
    assert_eq!(got["taskSequence"], 1);
    // A marker event after both ended: once it arrives, anything the
    // silent procedure had sent would have arrived before it.
    let marker = create(&mut tasks, clip_request(&file_id, 0.0, 0.5)).await;
    wait_ended(&mut tasks, &marker).await;
    let start = Instant::now();
    let mut seen_silent = 0;
    loop {
        assert!(start.elapsed() < DEADLINE, "no marker event");
        let got = events
            .pull_events(pb::PullEventsRequest {
                max_events: 100,
                wait_seconds: Some(2),
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        let mut marker_seen = false;
        let mut handles = Vec::new();
        for d in got {
            handles.push(d.msg_handle.clone());
            let e = d.event.unwrap();
            seen_silent += usize::from(e.task_id == silent);
            marker_seen |= e.task_id == marker;
        }
        if !handles.is_empty() {
            events
                .confirm_events(pb::ConfirmEventsRequest {
                    msg_handles: handles,
                })
                .await
                .unwrap();
        }
        if marker_seen {
            break;
        }
    }
    assert_eq!(seen_silent, 0, "NONE mode sent an event");
}

#[tokio::test]
async fn cancelling_a_running_procedure_stops_its_subtasks() {
    let Fixture {
        _dir,
        server,
        mut tasks,
        file_id,
        ..
    } = Fixture::start(60, 1280, 720, &[]).await;
    let mut events = server.events().await;
    let id = create(
        &mut tasks,
        procedure(
            &file_id,
            vec![transcode_subtask(100040), transcode_subtask(100030)],
            pb::NotifyMode::Finish,
        ),
    )
    .await;
    wait_processing(&mut tasks, &id).await;
    let pid = server.pid();
    eventually("ffmpeg to run", || async {
        (!ffmpeg_children(pid).is_empty()).then_some(())
    })
    .await;
    let t = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, pb::TaskStatus::Aborted as i32, "{t:?}");
    eventually("ffmpeg to be gone", || async {
        ffmpeg_children(pid).is_empty().then_some(())
    })
    .await;
    let e = event_of(&mut events, "ProcedureStateChanged", &id).await;
    assert_eq!(e["data"]["status"], "FINISH");
    assert_eq!(e["data"]["errCode"], 70003);
}

#[tokio::test]
async fn an_upload_can_start_a_procedure() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 2, 320, 240);
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut media, mut tasks, mut events) = (
        server.media().await,
        server.tasks().await,
        server.events().await,
    );
    let header = pb::UploadMediaHeader {
        file_name: "in.mp4".into(),
        source_context: "ctx".into(),
        procedure: Some(pb::ProcedurePlan {
            subtasks: vec![pb::SubtaskSpec {
                kind: Some(cover_subtask(50.0)),
            }],
            notify_mode: pb::NotifyMode::Finish as i32,
        }),
    };
    let messages = vec![
        pb::UploadMediaRequest {
            part: Some(pb::upload_media_request::Part::Header(header)),
        },
        pb::UploadMediaRequest {
            part: Some(pb::upload_media_request::Part::Chunk(
                std::fs::read(&clip).unwrap(),
            )),
        },
    ];
    let r = media
        .upload_media(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert!(r.procedure_task_id.starts_with("procedure-"));
    let t = wait_ended(&mut tasks, &r.procedure_task_id).await;
    assert_finished_ok(&t);
    assert_eq!(t.file_id, r.file_id);
    assert_eq!(t.session_context, "ctx");
    // The upload's event, then the procedure's: the procedure's file must
    // exist before the procedure can start.
    let got = events_where(&mut events, 2, |e| {
        e.event_type == "NewFileUpload" || e.task_id == r.procedure_task_id
    })
    .await;
    assert_eq!(got[0]["eventType"], "NewFileUpload");
    assert_eq!(
        got[0]["data"]["procedureTaskId"],
        r.procedure_task_id.as_str()
    );
    assert_eq!(got[1]["eventType"], "ProcedureStateChanged");
    assert_eq!(got[1]["data"]["status"], "FINISH");
}

#[tokio::test]
async fn bad_specs_of_the_new_types_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "0"]);
    let mut tasks = server.tasks().await;
    let concat = |ids: Vec<&str>, types: Vec<i32>| {
        request(pb::task_spec::Kind::Concat(pb::ConcatSpec {
            file_ids: ids.into_iter().map(String::from).collect(),
            output_types: types,
        }))
    };
    let cases = [
        (concat(vec!["1"], vec![1]), "spec.concat.file_ids"),
        (concat(vec!["1", "2"], vec![]), "spec.concat.output_types"),
        (
            concat(vec!["1", "2"], vec![1, 7]),
            "spec.concat.output_types[1]",
        ),
        (concat(vec!["1", ""], vec![1]), "spec.concat.file_ids[1]"),
        (clip_request("1", 2.0, 1.0), "spec.clip.end_time_offset"),
        (clip_request("1", -1.0, 1.0), "spec.clip.start_time_offset"),
        (
            request(pb::task_spec::Kind::ImageSprites(pb::ImageSpritesSpec {
                file_id: "1".into(),
                definition: 7,
            })),
            "spec.image_sprites.definition",
        ),
        (
            request(pb::task_spec::Kind::PullUpload(pb::PullUploadSpec {
                media_url: "ftp://example.com/a.mp4".into(),
                ..Default::default()
            })),
            "spec.pull_upload.media_url",
        ),
        (
            request(pb::task_spec::Kind::PullUpload(pb::PullUploadSpec {
                media_url: "https://example.com/a.mp4".into(),
                timeout_seconds: 100_000,
                ..Default::default()
            })),
            "spec.pull_upload.timeout_seconds",
        ),
        (
            request(pb::task_spec::Kind::DeleteMedia(pb::DeleteMediaSpec {
                file_ids: vec![],
            })),
            "spec.delete_media.file_ids",
        ),
        (
            procedure("1", vec![], pb::NotifyMode::Finish),
            "spec.procedure.subtasks",
        ),
        (
            procedure(
                "1",
                vec![cover_subtask(50.0), transcode_subtask(5)],
                pb::NotifyMode::Finish,
            ),
            "spec.procedure.subtasks[1].transcode.definition",
        ),
        (
            procedure("1", vec![cover_subtask(150.0)], pb::NotifyMode::Finish),
            "spec.procedure.subtasks[0].cover_by_snapshot.position",
        ),
    ];
    for (req, field) in cases {
        assert_invalid(tasks.create_task(req).await, field);
    }
    // A missing input file is NOT_FOUND.
    let e = tasks
        .create_task(concat(vec!["123", "456"], vec![1]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}
