//! What keeps one caller from taking the server down, and errors that state
//! their rule: bounded settings, requests tonic cannot read, connection
//! limits and timeouts, and file answers that cannot run script.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use vodtask_e2e::{DEADLINE, Server, eventually, http_client, upload, v1 as pb};

/// reqwest is built without a default TLS crypto provider; `http_client`
/// installs ring.
fn builder() -> reqwest::ClientBuilder {
    let _ = http_client();
    reqwest::Client::builder()
}

fn expect_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), code, "{e:?}");
    assert_eq!(e.message(), message);
}

#[tokio::test]
async fn settings_beyond_their_bounds_are_refused_with_the_rule_they_break() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let mut events = server.events().await;
    let client = events.clone();
    let modify = move |r: pb::ModifyEventConfigRequest| {
        let mut events = client.clone();
        async move { events.modify_event_config(r).await }
    };
    // Once accepted, this retention made the purge overflow and stop every
    // write of every app.
    expect_status(
        modify(pb::ModifyEventConfigRequest {
            retention_seconds: Some(10_000_000_000_000),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "retention_seconds: must be within 3600..315360000, got 10000000000000",
    );
    expect_status(
        modify(pb::ModifyEventConfigRequest {
            retention_seconds: Some(-1),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "retention_seconds: must be within 3600..315360000, got -1",
    );
    for v in [-1, 0] {
        expect_status(
            modify(pb::ModifyEventConfigRequest {
                visibility_timeout_seconds: Some(v),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            &format!("visibility_timeout_seconds: must be within 1..43200, got {v}"),
        );
    }
    expect_status(
        modify(pb::ModifyEventConfigRequest {
            callback_timeout_seconds: Some(61),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "callback_timeout_seconds: must be within 1..60, got 61",
    );
    expect_status(
        modify(pb::ModifyEventConfigRequest {
            notification_url: Some(format!("https://example.com/{}", "a".repeat(3000))),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "notification_url: must be at most 2048 bytes",
    );
    expect_status(
        events
            .pull_events(pb::PullEventsRequest {
                max_events: 1001,
                wait_seconds: Some(0),
            })
            .await,
        Code::InvalidArgument,
        "max_events: must be within 1..1000 (0 means 16), got 1001",
    );

    // The longest retention works, through the purge that runs at start.
    modify(pb::ModifyEventConfigRequest {
        retention_seconds: Some(315_360_000),
        ..Default::default()
    })
    .await
    .expect("ten years");
    server.terminate().await;
    server.restart();
    let config = server
        .events()
        .await
        .modify_event_config(pb::ModifyEventConfigRequest {
            max_deliveries: Some(5),
            ..Default::default()
        })
        .await
        .expect("the server still writes after its start-up purge")
        .into_inner();
    assert_eq!(config.retention_seconds, 315_360_000);
    assert_eq!(config.max_deliveries, 5);
    let health = http_client()
        .get(format!("http://{}/healthz", server.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn ids_and_session_ids_with_control_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut tasks = server.tasks().await;
    expect_status(
        tasks
            .describe_task(pb::DescribeTaskRequest {
                task_id: "transcode-\0\x1b[31m".into(),
            })
            .await,
        Code::InvalidArgument,
        "task_id: must hold only printable ASCII characters without spaces",
    );
    let mut request = vodtask_e2e::transcode("12345678901234567890", &[100010]);
    request.session_id = "order\n42".into();
    expect_status(
        tasks.create_task(request).await,
        Code::InvalidArgument,
        "session_id: must not hold control characters",
    );
}

/// One gRPC call with `body` as the request's bytes, as a client with a
/// broken encoder would send it; returns the answer's status.
async fn raw_call(server: &Server, method: &str, body: &[u8]) -> tonic::Status {
    let client = builder().http2_prior_knowledge().build().unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(body);
    let answer = client
        .post(format!("http://{}/{method}", server.grpc_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", server.default_key()))
        .body(frame)
        .send()
        .await
        .unwrap();
    tonic::Status::from_header_map(answer.headers()).expect("a trailers-only answer")
}

#[tokio::test]
async fn requests_that_are_not_protobuf_are_invalid_arguments_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let describe = "vodtask.v1.TaskService/DescribeTask";
    // task_id (field 1, a string) holding bytes that are not UTF-8.
    let s = raw_call(&server, describe, &[0x0a, 0x02, 0xff, 0xfe]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message()
            .starts_with("request: not a valid protobuf message: ")
            && s.message().contains("DescribeTaskRequest.task_id"),
        "{}",
        s.message()
    );
    // Truncated: a string of 5 bytes with 1 present.
    let s = raw_call(&server, describe, &[0x0a, 0x05, b'a']).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // Wrong wire type: task_id as a varint.
    let s = raw_call(&server, describe, &[0x08, 0x01]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // A message over the 4 MiB limit of TaskService is the caller's
    // excess, not a range error.
    let mut tasks = server.tasks().await;
    let mut big = vodtask_e2e::transcode("12345678901234567890", &[100010]);
    big.session_context = "x".repeat(5_000_000);
    let e = tasks.create_task(big).await.expect_err("too large");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().starts_with("request: the message is too large"),
        "{}",
        e.message()
    );

    // An upload chunk of exactly 16 MiB fits, as documented.
    let file = dir.path().join("chunk.bin");
    std::fs::write(&file, vec![7u8; 16 << 20]).unwrap();
    let mut media = server.media().await;
    let header = pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Header(
            pb::UploadMediaHeader {
                file_name: "chunk.bin".into(),
                ..Default::default()
            },
        )),
    };
    let chunk = pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Chunk(
            std::fs::read(&file).unwrap(),
        )),
    };
    let uploaded = media
        .upload_media(tokio_stream::iter([header, chunk]))
        .await
        .expect("a 16 MiB chunk")
        .into_inner();
    assert!(!uploaded.file_id.is_empty());
}

#[tokio::test]
async fn files_that_are_not_media_are_downloads_and_no_file_runs_script() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut media = server.media().await;
    let page = dir.path().join("page.html");
    std::fs::write(&page, "<script>alert(document.cookie)</script>").unwrap();
    let picture = dir.path().join("picture.svg");
    std::fs::write(
        &picture,
        r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#,
    )
    .unwrap();
    let http = http_client();
    for (path, name) in [(&page, "page.html"), (&picture, "picture.svg")] {
        let (_, url) = upload(&mut media, path, name).await.expect("upload");
        let answer = http.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{url}");
        let h = answer.headers();
        assert_eq!(h["content-type"], "application/octet-stream", "{name}");
        assert_eq!(h["content-disposition"], "attachment", "{name}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{name}");
        assert_eq!(
            h["content-security-policy"], "default-src 'none'; sandbox",
            "{name}"
        );
    }
    // Media stays inline, with the same protections.
    let clip = vodtask_e2e::make_clip(dir.path(), "clip.mp4", 1, 160, 90);
    let (_, url) = upload(&mut media, &clip, "clip.mp4").await.expect("upload");
    let answer = http.get(&url).send().await.unwrap();
    let h = answer.headers();
    assert_eq!(h["content-type"], "video/mp4");
    assert!(h.get("content-disposition").is_none());
    assert_eq!(h["x-content-type-options"], "nosniff");
}

/// The server's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends at the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// How much CPU the server used over two seconds of wall time.
async fn cpu_share_over_two_seconds(pid: u32) -> f64 {
    let (cpu, wall) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    (cpu_time(pid) - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

async fn healthz(server: &Server) -> Option<u16> {
    let client = builder().timeout(Duration::from_secs(5)).build().ok()?;
    let answer = client
        .get(format!("http://{}/healthz", server.http_addr))
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

async fn grpc_call_works(server: &Server) {
    let mut tasks = server.tasks().await;
    tokio::time::timeout(
        Duration::from_secs(10),
        tasks.get_task_overview(pb::GetTaskOverviewRequest::default()),
    )
    .await
    .expect("a new gRPC call is answered in time")
    .expect("and succeeds");
}

#[tokio::test]
async fn slow_and_silent_connections_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_open_files(&dir.path().join("data"), &[], 1024);
    let mut held = Vec::new();
    for _ in 0..300 {
        // Slowloris: headers begun, never finished.
        let mut s = TcpStream::connect(&server.http_addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
        // Half an HTTP/2 preface, then silence.
        let mut s = TcpStream::connect(&server.grpc_addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        held.push(s);
    }
    assert_eq!(
        healthz(&server).await,
        Some(200),
        "/healthz answers beside 600 stuck connections"
    );
    grpc_call_works(&server).await;
    let share = cpu_share_over_two_seconds(server.pid()).await;
    assert!(
        share < 0.25,
        "the server is idle, not spinning: {share:.2} of a core"
    );
    drop(held);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-connections", "10"]);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(&server.http_addr).await.unwrap());
        held.push(TcpStream::connect(&server.grpc_addr).await.unwrap());
    }
    // The server admits in order; once it has taken the ten, the next one
    // is answered 503 and closed.
    let mut refused = eventually("an HTTP connection past the limit is refused", || async {
        let mut s = TcpStream::connect(&server.http_addr).await.ok()?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer)
    })
    .await;
    assert!(
        refused.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    refused.clear();
    // The gRPC port closes the extra connection without a word.
    let mut s = TcpStream::connect(&server.grpc_addr).await.unwrap();
    let n = tokio::time::timeout(DEADLINE, s.read_to_end(&mut refused))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(held);
    // Slots come back as connections close.
    eventually("/healthz once the held connections closed", || async {
        (healthz(&server).await == Some(200)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--idle-timeout", "1s", "--http-header-timeout", "1s"],
    );
    for addr in [&server.http_addr, &server.grpc_addr] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut rest = Vec::new();
        // Ends (EOF or reset) once the server gives up on it.
        let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{addr} kept a silent connection open"));
    }
    grpc_call_works(&server).await;
}

#[tokio::test]
async fn running_out_of_file_descriptors_does_not_spin_the_accept_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_open_files(
        &dir.path().join("data"),
        &["--max-connections", "1000"],
        160,
    );
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(TcpStream::connect(&server.http_addr).await.unwrap());
    }
    let share = cpu_share_over_two_seconds(server.pid()).await;
    assert!(
        share < 0.25,
        "accept backs off on EMFILE: {share:.2} of a core"
    );
    drop(held);
    eventually("/healthz once descriptors are free again", || async {
        (healthz(&server).await == Some(200)).then_some(())
    })
    .await;
    grpc_call_works(&server).await;
}
