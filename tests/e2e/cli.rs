//! The `vodtask` command line as a new user meets it: `apps` on the right
//! (and the wrong) data dir, keys revoked on a running server, and flags
//! whose mistakes are named at start.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use tonic::Code;
use vodtask_e2e::{Server, eventually, v1 as pb, vodtask_bin};

fn vodtask(args: &[&str], data_dir: &Path) -> Output {
    Command::new(vodtask_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn apps_create_refuses_a_data_dir_that_is_not_one_unless_init() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("vodtask-data");
    let out = vodtask(&["apps", "create", "billing"], &missing);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("does not exist") && message.contains("--init"),
        "{message}"
    );
    assert!(!missing.exists(), "nothing was created");

    let not_data = dir.path().join("elsewhere");
    std::fs::create_dir(&not_data).unwrap();
    let out = vodtask(&["apps", "create", "billing"], &not_data);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a vodtask data dir"),
        "{}",
        stderr(&out)
    );

    let out = vodtask(&["apps", "create", "billing", "--init"], &missing);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("in {}", missing.display())),
        "{}",
        stderr(&out)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .starts_with("vt_")
    );
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--workers", "0"]);
    let key = server.create_app("billing");
    let mut billing = server.tasks_as(&key).await;
    billing
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .expect("a new key works at once");

    let out = vodtask(&["apps", "list"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names, ["default", "billing"], "{listed}");
    assert!(!listed.contains("revoked"), "{listed}");

    let out = vodtask(&["apps", "revoke", "billing"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually("the revoked key to be refused", || {
        let mut billing = billing.clone();
        async move {
            let r = billing
                .get_task_overview(pb::GetTaskOverviewRequest::default())
                .await;
            matches!(r, Err(e) if e.code() == Code::Unauthenticated).then_some(())
        }
    })
    .await;
    let mut default = server.tasks().await;
    default
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .expect("other apps go on");
    let listed = String::from_utf8(vodtask(&["apps", "list"], &data).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("billing\t") && l.contains("\trevoked ")),
        "{listed}"
    );
    let out = vodtask(&["apps", "revoke", "nobody"], &data);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no app named \"nobody\""),
        "{}",
        stderr(&out)
    );
}

/// `vodtask serve` with `args` fails at start; returns what it said.
fn serve_fails(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(vodtask_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    stderr(&out)
}

#[tokio::test]
async fn mistakes_in_flags_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let message = serve_fails(&file, &[]);
    assert!(message.contains("is not a directory"), "{message}");

    let data = dir.path().join("data");
    let message = serve_fails(&data, &["--ffmpeg", "/nonexistent/ffmpeg"]);
    assert!(
        message.contains("ffmpeg at /nonexistent/ffmpeg: cannot run it"),
        "{message}"
    );
    let message = serve_fails(&data, &["--lease", "100y"]);
    assert!(message.contains("must be within"), "{message}");

    // A host name is resolved, not refused as "invalid socket address".
    let server = Server::start(&data, &["--listen", "localhost:0", "--workers", "0"]);
    let mut tasks = server.tasks().await;
    tasks
        .get_task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .expect("serving on a name");
}

/// `--database`: a second server on the same database starts beside the
/// first, a key made by `apps create --database` works on both at once,
/// and mistakes (another scheme, `--sync normal`, a schema from a newer
/// vodtask) are named.
#[tokio::test]
async fn servers_share_a_database_and_its_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = vodtask_e2e::pg::Database::create();
    let first = Server::start(
        &dir.path().join("a"),
        &["--database", &db.url, "--workers", "0"],
    );
    let second = Server::start(
        &dir.path().join("b"),
        &["--database", &db.url, "--workers", "0"],
    );
    let out = Command::new(vodtask_bin())
        .args(["apps", "create", "beside", "--database", &db.url])
        .args(["--data-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    for server in [&first, &second] {
        server
            .tasks_as(&key)
            .await
            .get_task_overview(pb::GetTaskOverviewRequest::default())
            .await
            .expect("a key made beside the servers works at once");
    }

    let other = dir.path().join("c");
    let message = serve_fails(&other, &["--database", "mysql://db/vodtask"]);
    assert!(
        message.contains("--database: expected postgres://"),
        "{message}"
    );
    let message = serve_fails(&other, &["--database", &db.url, "--sync", "normal"]);
    assert!(
        message.contains("--sync: only for the embedded SQLite store"),
        "{message}"
    );
    let message = serve_fails(&other, &["--database-pool", "4"]);
    assert!(
        message.contains("--database-pool: only with --database"),
        "{message}"
    );

    drop((first, second));
    db.run("UPDATE vodtask_schema SET version = 999");
    let message = serve_fails(&other, &["--database", &db.url]);
    assert!(
        message.contains("its schema is version 999, written by a newer vodtask"),
        "{message}"
    );
}

/// The README's grpcurl session, run as written (the server's free port in
/// place of 50051): upload, transcode followed with WatchTask to FINISH
/// with errCode 0, play and snapshot URLs, lists and the overview.
#[tokio::test]
async fn the_readme_grpcurl_session_runs_as_written() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let session = readme
        .split("## A session with grpcurl")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the session's sh block");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("vodtask-data"), &[]);
    let script = session.replace("localhost:50051", &server.grpc_addr);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("\"status\": \"TASK_STATUS_FINISH\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"errCode\": 0"), "{stdout}");
    let urls = |prefix: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(" http://"))
            .count()
    };
    assert_eq!(
        urls("1000"),
        3,
        "two renditions (100010, 100030) and a snapshot at 1000 ms: {stdout}"
    );
    assert_eq!(urls("5000"), 1, "{stdout}");

    // Logs name each run's outcome, without colour when not on a terminal.
    let log = std::fs::read_to_string(dir.path().join("vodtask-data.log")).unwrap();
    assert!(
        log.contains("task run ended") && log.contains("outcome=\"succeeded\" err_code=0"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "no ANSI colour in a log file");
}
