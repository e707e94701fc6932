//! Crashes and shutdowns: acknowledged writes survive kill -9, running work
//! is recovered, SIGTERM gives running tasks back to the queue.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

#[tokio::test]
async fn kill9_right_after_create_loses_nothing() {
    let Fixture {
        clip,
        mut server,
        mut tasks,
        file_id,
        _dir,
        ..
    } = Fixture::start(2, 320, 240, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    server.kill9();

    server.restart();
    let (mut media, mut tasks) = (server.media().await, server.tasks().await);
    let described = media
        .describe_media(pb::DescribeMediaRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.md5, md5_hex(&clip), "the upload survived intact");
    let task = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&task);
}

#[tokio::test]
async fn a_task_running_at_kill9_runs_again_after_restart_with_one_ffmpeg() {
    let Fixture {
        mut server,
        mut tasks,
        file_id,
        _dir,
        ..
    } = Fixture::start(30, 640, 360, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    wait_processing(&mut tasks, &id).await;
    let old_pid = server.pid();
    let orphans = eventually("the first run's ffmpeg", || async {
        let found = ffmpeg_children(old_pid);
        (!found.is_empty()).then_some(found)
    })
    .await;
    server.kill9();
    // The parent-death signal takes ffmpeg along with the server.
    let killed_at = std::time::Instant::now();
    while orphans.iter().any(|&pid| is_running(pid)) {
        assert!(
            killed_at.elapsed() < std::time::Duration::from_secs(1),
            "ffmpeg {orphans:?} outlived the server by a second"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    // The second line: a process recorded in the data dir's ledger of
    // children (as one would be had the signal not reached it) is killed
    // by the next start, because its pid and start time still match.
    let mut leftover = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let ledger = server.data_dir.join("children");
    std::fs::write(
        ledger.join(leftover.id().to_string()),
        start_time(leftover.id()).unwrap().to_string(),
    )
    .unwrap();

    server.restart();
    let status = leftover.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the recorded leftover was killed"
    );
    let mut tasks = server.tasks().await;
    wait_processing(&mut tasks, &id).await;
    let running = eventually("the second run's ffmpeg", || async {
        let found = ffmpeg_children(server.pid());
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(running.len(), 1, "the restart runs exactly one ffmpeg");
    let task = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&task);
    assert_eq!(task.attempt, 2, "the recovered run counts as a new attempt");
}

/// Alive and not a zombie (a container's pid 1 may never reap one).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Field 22 of /proc/PID/stat: when the kernel started the process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[tokio::test]
async fn sigterm_gives_running_tasks_back_and_they_finish_after_restart() {
    let Fixture {
        mut server,
        mut tasks,
        file_id,
        _dir,
        ..
    } = Fixture::start(60, 640, 360, &[]).await;
    let id = create(&mut tasks, transcode(&file_id, &[100010])).await;
    wait_processing(&mut tasks, &id).await;
    let pid = server.pid();
    eventually("ffmpeg to run", || async {
        (!ffmpeg_children(pid).is_empty()).then_some(())
    })
    .await;

    let status = server.terminate().await;
    assert!(status.success(), "vodtask exited with {status}");
    assert!(
        ffmpeg_children(pid).is_empty(),
        "ffmpeg outlived the server"
    );

    // Inspect the stored state before any worker can take the task again.
    server.args_for_next_start(&["--workers", "0"]);
    server.restart();
    let mut tasks = server.tasks().await;
    let task = describe(&mut tasks, &id).await;
    assert_eq!(
        task.status,
        pb::TaskStatus::Waiting as i32,
        "back in the queue"
    );
    assert_eq!(task.attempt, 1, "a graceful hand-back is not a new attempt");
    server.terminate().await;

    server.args_for_next_start(&[]);
    server.restart();
    let mut tasks = server.tasks().await;
    let task = wait_ended(&mut tasks, &id).await;
    assert_finished_ok(&task);
}

#[tokio::test]
async fn a_data_dir_serves_one_process_only() {
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(&dir.path().join("data"), &[]);
    let out = std::process::Command::new(vodtask_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another vodtask process"),
        "{stderr}"
    );
}

/// What a crash between placing a file and recording it leaves: the
/// file's objects, and the record written before them (here written by
/// hand, as a process that died would have). The next start removes them;
/// a recorded file stays.
#[tokio::test]
async fn media_a_crash_left_without_a_row_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, b"kept").unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--workers", "0"]);
    let mut media = server.media().await;
    let (kept, url) = upload(&mut media, &blob, "blob.bin").await.unwrap();
    server.kill9();
    let orphan_id = "12345678901234567890";
    let orphan = data.join("media").join(orphan_id);
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("source.mp4"), b"half an upload").unwrap();
    let db = rusqlite::Connection::open(data.join("vodtask.db")).unwrap();
    db.execute(
        "INSERT INTO media_leftovers (file_id, owner, since, deleting) VALUES (?1, 'a-dead-process', 0, 0)",
        [orphan_id],
    )
    .unwrap();
    drop(db);

    server.restart();
    assert!(!orphan.exists(), "the orphan is swept");
    assert!(
        data.join("media").join(&kept).is_dir(),
        "a recorded file stays"
    );
    let url = url.replace(
        &url[..url.find("/files/").unwrap()],
        &format!("http://{}", server.http_addr),
    );
    let got = http_client().get(&url).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"kept");
}
