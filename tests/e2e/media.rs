//! The media library, the HTTP file server, apps and keys, health.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use tonic::Code;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

#[tokio::test]
async fn upload_is_described_with_what_ffprobe_says() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 2, 320, 240);
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut media = server.media().await;
    let (file_id, url) = upload(&mut media, &clip, "My Clip.MP4").await.unwrap();
    assert!(
        url.starts_with(&format!("http://{}/files/{file_id}/", server.http_addr)),
        "{url}"
    );

    let info = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.file_name, "My Clip.MP4");
    assert_eq!(info.file_url, url);
    assert_eq!(info.size as u64, std::fs::metadata(&clip).unwrap().len());
    assert_eq!(info.md5, md5_hex(&clip));
    assert_eq!(info.source_type, pb::SourceType::ClientUpload as i32);
    let meta = info.metadata.expect("ffprobe metadata");
    assert!(meta.container.contains("mp4"), "{}", meta.container);
    assert!(
        (meta.duration_seconds - 2.0).abs() < 0.1,
        "{}",
        meta.duration_seconds
    );
    assert_eq!((meta.width, meta.height), (320, 240));
    assert!(meta.bitrate > 0);
    let codecs: Vec<_> = meta
        .streams
        .iter()
        .map(|s| (s.codec_type.as_str(), s.codec.as_str()))
        .collect();
    assert_eq!(codecs, [("video", "h264"), ("audio", "aac")]);
    assert!((meta.streams[0].fps - 25.0).abs() < 0.01);
    assert!(meta.streams[1].sample_rate > 0);
}

#[tokio::test]
async fn files_are_served_with_range_and_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 1, 160, 120);
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut media = server.media().await;
    let (_, url) = upload(&mut media, &clip, "in.mp4").await.unwrap();
    let bytes = std::fs::read(&clip).unwrap();
    let http = http_client();

    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "video/mp4");
    assert_eq!(full.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let part = http
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100..200]);

    let missing = http
        .get(format!("http://{}/files/0/source.mp4", server.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let traversal = http
        .get(format!("http://{}/files/../vodtask.db", server.http_addr))
        .send()
        .await
        .unwrap();
    assert_ne!(traversal.status(), 200);
    let health = http
        .get(format!("http://{}/healthz", server.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn apps_see_only_their_own_tasks_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clip = make_clip(dir.path(), "in.mp4", 1, 160, 120);
    let server = Server::start(&data, &["--workers", "0"]);
    let mode = std::fs::metadata(data.join("default.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "default.key is readable by its owner only"
    );

    // Created while the server runs; the key is the only line on stdout.
    let out = std::process::Command::new(vodtask_bin())
        .args(["apps", "create", "other", "--data-dir"])
        .arg(&data)
        .args(server.database_args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let other_key = stdout.trim().to_string();
    let dup = std::process::Command::new(vodtask_bin())
        .args(["apps", "create", "other", "--data-dir"])
        .arg(&data)
        .args(server.database_args())
        .output()
        .unwrap();
    assert!(!dup.status.success(), "app names are unique");

    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, _) = upload(&mut media, &clip, "in.mp4").await.unwrap();
    let task_id = create(&mut tasks, transcode(&file_id, &[100010])).await;

    let (mut other_media, mut other_tasks) = (
        server.media_as(&other_key).await,
        server.tasks_as(&other_key).await,
    );
    let err = other_tasks
        .describe_task(pb::DescribeTaskRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = other_tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = other_media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = other_tasks
        .create_task(transcode(&file_id, &[100010]))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "another app's file cannot be used"
    );
    let listed = other_tasks
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.tasks.is_empty());
    let overview = other_tasks
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overview.total, 0);
    let own = tasks
        .describe_task(pb::DescribeTaskRequest { task_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        own.status,
        pb::TaskStatus::Waiting as i32,
        "the other app's cancel did nothing"
    );
}

#[tokio::test]
async fn calls_without_a_valid_key_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let channel = server.channel().await;
    let mut anonymous = vodtask_e2e::v1::task_service_client::TaskServiceClient::with_interceptor(
        channel,
        Auth::none(),
    );
    let err = anonymous
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("authorization"), "{}", err.message());
    let mut wrong = server.tasks_as("vt_not-a-key").await;
    let err = wrong
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut health = HealthClient::new(server.channel().await);
    for service in ["vodtask.v1.TaskService", "vodtask.v1.MediaService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }
}
