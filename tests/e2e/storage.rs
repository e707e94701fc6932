//! Media on S3-compatible storage, against a real S3 server (moto) and a
//! fault proxy in front of it: every byte in the bucket, file URLs in each
//! mode, deletes that empty the bucket, kill -9 while objects are being
//! written, outages, and configuration refused at start. (The task-type
//! and media suites also run whole against S3: scripts/test.sh.)

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tonic::Code;
use vodtask_e2e::s3::{BUCKET, Fault, FaultProxy, PREFIX, S3Server};
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

/// A server whose media are in `moto`, reached through `endpoint`, with
/// `extra` flags.
fn start_on_s3(data: &Path, endpoint: &str, extra: &[&str]) -> Server {
    let mut args = S3Server::serve_args(endpoint);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

/// The file ids that have objects in the bucket.
fn stored_files(moto: &S3Server) -> std::collections::BTreeSet<String> {
    moto.keys()
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{PREFIX}/")))
        .filter_map(|k| k.split('/').next())
        .map(String::from)
        .collect()
}

fn delete_request(file_id: &str) -> pb::CreateTaskRequest {
    pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::DeleteMedia(pb::DeleteMediaSpec {
                file_ids: vec![file_id.to_string()],
            })),
        }),
        ..Default::default()
    }
}

fn play_set(t: &pb::Task) -> Vec<pb::PlayItem> {
    match t.output.clone().and_then(|o| o.kind) {
        Some(pb::task_output::Kind::Transcode(out)) => out.play_set,
        other => panic!("a transcode output, got {other:?}"),
    }
}

#[tokio::test]
async fn every_byte_is_in_the_bucket_and_a_delete_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 3, 320, 240);
    let moto = S3Server::start();
    let data = dir.path().join("data");
    let server = start_on_s3(&data, &moto.endpoint, &[]);
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, url) = upload(&mut media, &clip, "clip.mp4").await.unwrap();
    assert_eq!(
        moto.keys_of(&file_id),
        [format!("{PREFIX}/{file_id}/source.mp4")]
    );
    // Through vodtask's HTTP port, which streams the object, Range too.
    let got = http_client()
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 206);
    let whole = std::fs::read(&clip).unwrap();
    assert_eq!(
        got.headers()["content-range"],
        format!("bytes 100-199/{}", whole.len()).as_str()
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), &whole[100..200]);
    let head = http_client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        whole.len().to_string().as_str()
    );
    assert_eq!(head.headers()["content-type"], "video/mp4");
    let beyond = http_client()
        .get(&url)
        .header("range", format!("bytes={}-", whole.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let described = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.md5, md5_hex(&clip));
    assert!(described.metadata.is_some(), "ffprobe read it from S3");

    let id = create(&mut tasks, transcode(&file_id, &[100010, 100210])).await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let outputs = play_set(&t);
    for item in &outputs {
        let (w, h, duration) = probe_video(&item.url);
        assert_eq!((w, h), (320, 240), "{}", item.url);
        assert!((duration - 3.0).abs() < 0.3, "{duration}");
        assert!(!moto.keys_of(&item.file_id).is_empty());
    }
    let hls = outputs.iter().find(|i| i.url.ends_with(".m3u8")).unwrap();
    assert!(
        moto.keys_of(&hls.file_id)
            .iter()
            .any(|k| k.ends_with("seg_00000.ts")),
        "the segments are objects of the playlist's file"
    );
    // The data dir holds no media.
    assert!(!data.join("media").exists());

    let del = create(&mut tasks, delete_request(&file_id)).await;
    assert_finished_ok(&wait_ended(&mut tasks, &del).await);
    eventually("the bucket to be empty", || async {
        stored_files(&moto).is_empty().then_some(())
    })
    .await;
    let gone = http_client().get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn presigned_and_public_file_urls_play() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 2, 320, 240);
    let moto = S3Server::start();

    let server = start_on_s3(
        &dir.path().join("presign"),
        &moto.endpoint,
        &["--file-urls", "presign", "--presign-ttl", "10m"],
    );
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, url) = upload(&mut media, &clip, "clip.mp4").await.unwrap();
    let _ = http_client(); // installs the TLS crypto provider
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&moto.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=600"), "{location}");
    let got = http_client().get(&url).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), std::fs::read(&clip).unwrap());
    let id = create(&mut tasks, transcode(&file_id, &[100210])).await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let playlist = &play_set(&t)[0].url;
    // The playlist is served (its relative segment links would lose a
    // signature); the segments redirect.
    let answer = no_redirects.get(playlist).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(probe_video(playlist).0, 320);
    drop(server);

    // A public base: the URL is the base and the object key (here moto's
    // own, which serves unsigned GETs like a public bucket).
    moto.make_public();
    let base = format!("{}/{BUCKET}", moto.endpoint);
    let server = start_on_s3(
        &dir.path().join("public"),
        &moto.endpoint,
        &["--file-urls", "public", "--public-url-base", &base],
    );
    let mut media = server.media().await;
    let (file_id, url) = upload(&mut media, &clip, "clip.mp4").await.unwrap();
    assert_eq!(url, format!("{base}/{PREFIX}/{file_id}/source.mp4"));
    assert_eq!(probe_video(&url).0, 320);
}

/// kill -9 while an uploaded object is complete in the bucket but its row
/// is not written: after the restart nothing of it is visible, and the
/// sweeper removes the object, from the record written before the upload.
#[tokio::test]
async fn kill9_after_an_upload_reached_the_bucket_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 2, 320, 240);
    let moto = S3Server::start();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let data = dir.path().join("data");
    let mut server = start_on_s3(&data, &proxy.endpoint, &["--workers", "0"]);
    let mut media = server.media().await;
    let (kept, _) = upload(&mut media, &clip, "kept.mp4").await.unwrap();

    proxy.set(Fault::HoldAnswers {
        needle: "/source.".into(),
    });
    let uploading = tokio::spawn(async move { upload(&mut media, &clip, "cut.mp4").await });
    eventually("the upload's object in the bucket", || async {
        (stored_files(&moto).len() == 2).then_some(())
    })
    .await;
    server.kill9();
    assert!(
        uploading.await.unwrap().is_err(),
        "the upload never answered"
    );
    proxy.set(Fault::Pass);
    let orphan: Vec<String> = stored_files(&moto)
        .into_iter()
        .filter(|f| *f != kept)
        .collect();
    assert_eq!(orphan.len(), 1);

    server.restart();
    eventually("the sweeper to remove the orphan", || async {
        (stored_files(&moto).into_iter().collect::<Vec<_>>() == [kept.clone()]).then_some(())
    })
    .await;
    let mut media = server.media().await;
    let e = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: orphan[0].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(moto.multipart_uploads(), 0);
}

/// kill -9 in the middle of a multipart upload (its second part held):
/// the upload was recorded before its first part, and after the restart
/// the sweeper aborts it; the bucket keeps neither objects nor parts.
#[tokio::test]
async fn kill9_during_a_multipart_upload_leaves_no_parts() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    let moto = S3Server::start();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let mut server = start_on_s3(
        &dir.path().join("data"),
        &proxy.endpoint,
        &["--workers", "0"],
    );
    let mut media = server.media().await;
    proxy.set(Fault::HoldWrites {
        needle: "partNumber=2".into(),
    });
    let uploading = tokio::spawn(async move { upload(&mut media, &big, "big.bin").await });
    eventually("the second part held", || async {
        (proxy.stats().held > 0).then_some(())
    })
    .await;
    assert_eq!(moto.multipart_uploads(), 1);
    server.kill9();
    assert!(uploading.await.unwrap().is_err());
    proxy.set(Fault::Pass);

    server.restart();
    eventually("the upload to be aborted", || async {
        (moto.multipart_uploads() == 0).then_some(())
    })
    .await;
    assert_eq!(moto.keys(), Vec::<String>::new());
}

/// kill -9 while a task's outputs are being uploaded: the task runs again
/// after the restart, and the first run's objects are swept; the bucket
/// ends with the source and the second run's outputs only.
#[tokio::test]
async fn kill9_during_an_output_upload_leaves_only_the_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 10, 320, 240);
    let moto = S3Server::start();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let data = dir.path().join("data");
    let mut server = start_on_s3(&data, &proxy.endpoint, &[]);
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, _) = upload(&mut media, &clip, "clip.mp4").await.unwrap();

    // The second HLS segment is written, and its answer held.
    proxy.set(Fault::HoldAnswers {
        needle: "/seg_00001.ts".into(),
    });
    let id = create(&mut tasks, transcode(&file_id, &[100210])).await;
    eventually("an output segment in the bucket", || async {
        moto.keys()
            .iter()
            .any(|k| k.ends_with("seg_00001.ts"))
            .then_some(())
    })
    .await;
    server.kill9();
    proxy.set(Fault::Pass);
    assert_eq!(
        stored_files(&moto).len(),
        2,
        "the source and a partial output"
    );

    server.restart();
    let mut tasks = server.tasks().await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&t);
    let output = play_set(&t)[0].clone();
    assert_eq!(probe_video(&output.url).0, 320);
    eventually("the first run's objects to be swept", || async {
        let expected: std::collections::BTreeSet<String> =
            [file_id.clone(), output.file_id.clone()].into();
        (stored_files(&moto) == expected).then_some(())
    })
    .await;
}

/// The store answering 503, or unreachable, for a while: a task's reads
/// and writes are retried and it finishes; for longer than
/// --s3-retry-timeout, an upload fails with UNAVAILABLE (not a hang) and a
/// task with 70004; nothing half-written is visible.
#[tokio::test]
async fn an_outage_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 2, 320, 240);
    let moto = S3Server::start();
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let server = start_on_s3(
        &dir.path().join("data"),
        &proxy.endpoint,
        &["--s3-retry-timeout", "3s"],
    );
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, _) = upload(&mut media, &clip, "clip.mp4").await.unwrap();

    // Down for less than the retry timeout: the task finishes.
    proxy.set(Fault::Unavailable);
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    eventually("a request refused", || async {
        (proxy.stats().failed > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Fault::Pass);
    assert_finished_ok(&wait_ended(&mut tasks, &id).await);

    // Unreachable (connections refused and cut) for less than the retry
    // timeout: the same.
    proxy.set(Fault::Refuse);
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Fault::Pass);
    assert_finished_ok(&wait_ended(&mut tasks, &id).await);

    // Down for longer: UNAVAILABLE, promptly.
    proxy.set(Fault::Unavailable);
    let started = std::time::Instant::now();
    let e = upload(&mut media, &clip, "down.mp4").await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("media storage"), "{}", e.message());
    assert!(started.elapsed() < Duration::from_secs(30));
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let t = wait_ended(&mut tasks, &id).await;
    assert_eq!(t.err_code, 70004, "{}", t.message);
    // Unreachable for longer: the same.
    proxy.set(Fault::Refuse);
    let e = upload(&mut media, &clip, "down.mp4").await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    proxy.set(Fault::Pass);
    let files = stored_files(&moto);
    assert_eq!(files.len(), 3, "the source and two outputs: {files:?}");
}

#[tokio::test]
async fn bad_storage_configuration_fails_at_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let moto = S3Server::start();
    let data = dir.path().join("data");
    let refused = |args: &[&str]| {
        let out = Command::new(vodtask_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(args)
            .envs(vodtask_e2e::s3::ENV)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = refused(&["--storage", "gs://bucket/media"]);
    assert!(
        said.contains("--storage") && said.contains("expected file:///path or s3://"),
        "{said}"
    );
    let said = refused(&["--storage", "s3://Bad_Bucket"]);
    assert!(
        said.contains("--storage") && said.contains("bucket name"),
        "{said}"
    );
    let endpoint = moto.endpoint.as_str();
    let said = refused(&[
        "--storage",
        "s3://no-such-bucket/x",
        "--s3-endpoint",
        endpoint,
        "--s3-path-style",
    ]);
    assert!(
        said.contains("--storage s3://no-such-bucket/x") && said.contains("cannot be listed"),
        "{said}"
    );
    let strict = S3Server::start_checking_credentials();
    let said = refused(&[
        "--storage",
        &format!("s3://{BUCKET}/x"),
        "--s3-endpoint",
        &strict.endpoint,
        "--s3-path-style",
    ]);
    assert!(
        said.contains("403 Forbidden") && said.contains("AWS_ACCESS_KEY_ID"),
        "{said}"
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    let said = refused(&[
        "--storage",
        &format!("s3://{BUCKET}/x"),
        "--s3-endpoint",
        &dead,
        "--s3-path-style",
        "--s3-retry-timeout",
        "1s",
    ]);
    assert!(said.contains("cannot be listed"), "{said}");
    let said = refused(&[
        "--storage",
        &format!("s3://{BUCKET}"),
        "--file-urls",
        "public",
    ]);
    assert!(
        said.contains("--file-urls public: needs --public-url-base"),
        "{said}"
    );
    let said = refused(&["--file-urls", "presign"]);
    assert!(
        said.contains("--file-urls: only for --storage s3://"),
        "{said}"
    );
    let said = refused(&["--s3-endpoint", "ftp://x"]);
    assert!(said.contains("--s3-endpoint"), "{said}");
}

/// A shared directory (`file:///path`) outside the data dir serves and
/// deletes like the default one.
#[tokio::test]
async fn a_storage_directory_outside_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", 2, 320, 240);
    let shared = dir.path().join("shared-media");
    let storage = format!("file://{}", shared.display());
    let server = Server::start(&dir.path().join("data"), &["--storage", &storage]);
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let (file_id, url) = upload(&mut media, &clip, "clip.mp4").await.unwrap();
    assert!(shared.join(&file_id).join("source.mp4").is_file());
    assert_eq!(probe_video(&url).0, 320);
    // Partial writes lie in the root's `.partial/`, never served.
    std::fs::write(shared.join(".partial").join("upload-1"), b"partial").unwrap();
    let base = &url[..url.find("/files/").unwrap()];
    for path in ["/files/.partial/upload-1", "/files/%2Epartial/upload-1"] {
        let got = http_client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 404, "{path}");
    }
    let del = create(&mut tasks, delete_request(&file_id)).await;
    assert_finished_ok(&wait_ended(&mut tasks, &del).await);
    assert!(!shared.join(&file_id).exists());
}
