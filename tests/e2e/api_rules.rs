//! Every bad field is INVALID_ARGUMENT with the field named in the message,
//! and never takes the server down.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use tonic::Code;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

fn expect_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let err = result.expect_err(&format!("{field}: the request should have been refused"));
    assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
    assert!(
        err.message().starts_with(field),
        "message {:?} should name {field}",
        err.message()
    );
}

#[tokio::test]
async fn bad_fields_are_named() {
    let Fixture {
        mut media,
        mut tasks,
        file_id,
        _dir,
        server: _server,
        ..
    } = Fixture::start(1, 160, 120, &["--workers", "0"]).await;

    let with = |f: &dyn Fn(&mut pb::CreateTaskRequest)| {
        let mut r = transcode(&file_id, &[100010]);
        f(&mut r);
        r
    };
    let create_cases: Vec<(pb::CreateTaskRequest, &str)> = vec![
        (with(&|r| r.priority = 11), "priority"),
        (with(&|r| r.priority = -11), "priority"),
        (with(&|r| r.session_id = "s".repeat(51)), "session_id"),
        (
            with(&|r| r.session_context = "c".repeat(1001)),
            "session_context",
        ),
        (with(&|r| r.spec = None), "spec"),
        (
            with(&|r| r.spec = Some(pb::TaskSpec { kind: None })),
            "spec",
        ),
        (transcode(&file_id, &[]), "spec.transcode.definitions"),
        (
            transcode(&file_id, &[100010, 5]),
            "spec.transcode.definitions[1]",
        ),
        (
            transcode(&file_id, &[100010, 100010]),
            "spec.transcode.definitions[1]",
        ),
        (transcode("", &[100010]), "spec.transcode.file_id"),
        (
            transcode("../etc/passwd", &[100010]),
            "spec.transcode.file_id",
        ),
        (
            snapshot(&file_id, 11, &[0]),
            "spec.snapshot_by_time_offset.definition",
        ),
        (
            snapshot(&file_id, 10, &[]),
            "spec.snapshot_by_time_offset.time_offsets_ms",
        ),
        (
            snapshot(&file_id, 10, &[0, -5]),
            "spec.snapshot_by_time_offset.time_offsets_ms[1]",
        ),
        (
            snapshot(&file_id, 10, &vec![0; 101]),
            "spec.snapshot_by_time_offset.time_offsets_ms",
        ),
    ];
    for (request, field) in create_cases {
        expect_invalid(tasks.create_task(request).await, field);
    }

    let list = |f: &dyn Fn(&mut pb::ListTasksRequest)| {
        let mut r = pb::ListTasksRequest::default();
        f(&mut r);
        r
    };
    let ts = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let list_cases: Vec<(pb::ListTasksRequest, &str)> = vec![
        (list(&|r| r.limit = 101), "limit"),
        (list(&|r| r.limit = -1), "limit"),
        (list(&|r| r.status = 99), "status"),
        (list(&|r| r.task_type = 99), "task_type"),
        (list(&|r| r.sort_by = 99), "sort_by"),
        (list(&|r| r.order = 99), "order"),
        (
            list(&|r| r.scroll_token = "not a token".into()),
            "scroll_token",
        ),
        (list(&|r| r.file_id = "a/b".into()), "file_id"),
        (
            list(&|r| {
                r.create_time = Some(pb::TimeRange {
                    after: ts(200),
                    before: ts(100),
                })
            }),
            "create_time",
        ),
        (
            list(&|r| {
                r.finish_time = Some(pb::TimeRange {
                    after: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    before: None,
                })
            }),
            "finish_time.after",
        ),
    ];
    for (request, field) in list_cases {
        expect_invalid(tasks.list_tasks(request).await, field);
    }

    // A token is bound to the filters it was issued for.
    for _ in 0..3 {
        tasks
            .create_task(transcode(&file_id, &[100010]))
            .await
            .unwrap();
    }
    let page = tasks
        .list_tasks(list(&|r| r.limit = 1))
        .await
        .unwrap()
        .into_inner();
    let token = page.scroll_token;
    assert!(!token.is_empty());
    expect_invalid(
        tasks
            .list_tasks(list(&|r| {
                r.limit = 1;
                r.order = pb::SortOrder::Asc as i32;
                r.scroll_token = token.clone();
            }))
            .await,
        "scroll_token",
    );

    expect_invalid(
        tasks
            .describe_task(pb::DescribeTaskRequest {
                task_id: String::new(),
            })
            .await,
        "task_id",
    );
    expect_invalid(
        tasks
            .cancel_task(pb::CancelTaskRequest {
                task_id: String::new(),
            })
            .await,
        "task_id",
    );
    expect_invalid(
        tasks
            .redo_task(pb::RedoTaskRequest {
                task_id: "x".repeat(200),
            })
            .await,
        "task_id",
    );
    expect_invalid(
        tasks
            .get_task_overview(pb::GetTaskOverviewRequest {
                create_time: Some(pb::TimeRange {
                    after: ts(200),
                    before: ts(100),
                }),
            })
            .await,
        "create_time",
    );
    expect_invalid(
        media
            .describe_media(pb::DescribeMediaRequest {
                file_id: String::new(),
            })
            .await,
        "file_id",
    );
    let unknown = tasks
        .create_task(transcode("12345", &[100010]))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().starts_with("file_id"),
        "{}",
        unknown.message()
    );

    // The server is still serving after all of that.
    tasks
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_uploads_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "in.mp4", 1, 160, 120);
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-upload-bytes", "20000"]);
    let mut media = server.media().await;

    expect_invalid(upload(&mut media, &clip, "").await, "header.file_name");
    expect_invalid(
        upload(&mut media, &clip, "a/b.mp4").await,
        "header.file_name",
    );
    expect_invalid(
        upload(&mut media, &clip, &"n".repeat(256)).await,
        "header.file_name",
    );
    expect_invalid(upload(&mut media, &empty, "empty.mp4").await, "chunk");

    let chunk_first = vec![pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Chunk(vec![1, 2, 3])),
    }];
    expect_invalid(
        media.upload_media(tokio_stream::iter(chunk_first)).await,
        "header",
    );
    let header = || pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Header(
            pb::UploadMediaHeader {
                file_name: "a.bin".into(),
                source_context: String::new(),
                procedure: None,
            },
        )),
    };
    expect_invalid(
        media
            .upload_media(tokio_stream::iter(vec![header(), header()]))
            .await,
        "header",
    );
    let long_context = vec![pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Header(
            pb::UploadMediaHeader {
                file_name: "a.bin".into(),
                source_context: "c".repeat(257),
                procedure: None,
            },
        )),
    }];
    expect_invalid(
        media.upload_media(tokio_stream::iter(long_context)).await,
        "header.source_context",
    );

    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 30000]).unwrap();
    let err = upload(&mut media, &big, "big.bin").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // A non-media file is accepted; ffprobe's reason is kept.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a video").unwrap();
    let (file_id, _) = upload(&mut media, &text, "notes.txt").await.unwrap();
    let info = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.metadata.is_none());
    assert!(!info.probe_error.is_empty());

    // A transcode of it ends FINISH with the probe error code, not a hang.
    let mut tasks = server.tasks().await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    let task = wait_ended(&mut tasks, &id).await;
    assert_eq!(
        (task.status, task.err_code),
        (pb::TaskStatus::Finish as i32, -43001),
        "{}",
        task.message
    );
    assert!(!task.message.is_empty());
}
