//! Harness for the end-to-end tests: starts the real `vodtask` binary on its
//! own data dir and free ports, gives authenticated gRPC clients, makes test
//! clips with ffmpeg, and waits for conditions with deadlines.

#![allow(clippy::unwrap_used)]

pub mod origin;
pub mod pg;
pub mod queue;
pub mod receiver;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::event_service_client::EventServiceClient;
use vodtask_proto::v1::media_service_client::MediaServiceClient;
use vodtask_proto::v1::task_service_client::TaskServiceClient;

pub use vodtask_proto::v1;

/// How long any single condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The `vodtask` binary cargo built next to this test executable
/// (`target/<profile>/vodtask`), or `$VODTASK_BIN`.
pub fn vodtask_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("VODTASK_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("vodtask");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

pub struct Server {
    child: Option<Child>,
    pub grpc_addr: String,
    pub http_addr: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// The open-file limit the server runs under (`ulimit -n`), if lowered.
    open_files: Option<u64>,
    /// Where its media are, with `VODTASK_TEST_STORAGE=s3`.
    pub s3: Option<s3::S3Server>,
    /// Where its state is, with `VODTASK_TEST_DATABASE=postgres`.
    pub database: Option<pg::Database>,
    /// `serve`, or `worker` (no ports).
    command: &'static str,
}

impl Server {
    /// Starts a server on `data_dir` with extra `serve` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(data_dir, extra, None)
    }

    /// Starts a server whose open-file limit (soft and hard) is `open_files`.
    pub fn start_with_open_files(data_dir: &Path, extra: &[&str], open_files: u64) -> Server {
        Server::start_with(data_dir, extra, Some(open_files))
    }

    /// Starts `vodtask worker` on `data_dir` with its flags (a
    /// `--database` among them): a node that runs tasks and serves no API.
    pub fn start_worker(data_dir: &Path, args: &[&str]) -> Server {
        let mut server = Server {
            child: None,
            grpc_addr: String::new(),
            http_addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            open_files: None,
            s3: None,
            database: None,
            command: "worker",
        };
        server.spawn();
        server
    }

    fn start_with(data_dir: &Path, extra: &[&str], open_files: Option<u64>) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut server = Server {
            command: "serve",
            child: None,
            grpc_addr: String::new(),
            http_addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            args,
            open_files,
            s3: None,
            database: None,
        };
        if s3::requested() && !server.args.iter().any(|a| a == "--storage") {
            let moto = s3::S3Server::start();
            server.args.extend(s3::S3Server::serve_args(&moto.endpoint));
            server.s3 = Some(moto);
        }
        if pg::requested() && !server.args.iter().any(|a| a == "--database") {
            server.database = Some(pg::Database::create());
        }
        server.spawn();
        server
    }

    /// Free ports, unless the test chose its own (`--listen` in the args,
    /// to reconnect to the same address after a restart).
    fn default_listen(&self) -> Vec<&'static str> {
        let mut listen = Vec::new();
        if self.command != "serve" {
            return listen;
        }
        if !self.args.iter().any(|a| a == "--listen") {
            listen.extend(["--listen", "127.0.0.1:0"]);
        }
        if !self.args.iter().any(|a| a == "--http-listen") {
            listen.extend(["--http-listen", "127.0.0.1:0"]);
        }
        listen
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("server log");
        let mut command = match self.open_files {
            None => Command::new(vodtask_bin()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"ulimit -n "$1" && shift && exec "$@""#, "sh"])
                    .arg(n.to_string())
                    .arg(vodtask_bin());
                sh
            }
        };
        let mut child = command
            .arg(self.command)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(self.default_listen())
            .args(self.database_args())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(s3::ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start vodtask");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("vodtask printed its addresses");
        if self.command != "serve" {
            assert!(
                line.starts_with("vodtask worker running"),
                "{line:?} (see {})",
                self.data_dir.with_extension("log").display()
            );
            self.child = Some(child);
            return;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| {
                    panic!(
                        "no {name} in {line:?} (see {})",
                        self.data_dir.with_extension("log").display()
                    )
                })
                .to_string()
        };
        self.grpc_addr = field("grpc=");
        self.http_addr = field("http=");
        self.child = Some(child);
    }

    /// `--database` of `VODTASK_TEST_DATABASE=postgres`, for admin
    /// commands run beside the server.
    pub fn database_args(&self) -> Vec<String> {
        match &self.database {
            Some(db) => vec!["--database".into(), db.url.clone()],
            None => Vec::new(),
        }
    }

    /// Makes another app with `vodtask apps create`; returns its key.
    pub fn create_app(&self, name: &str) -> String {
        let out = Command::new(vodtask_bin())
            .args(["apps", "create", name, "--data-dir"])
            .arg(&self.data_dir)
            .args(self.database_args())
            .output()
            .expect("vodtask apps create");
        assert!(out.status.success(), "apps create failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The key of the `default` app, written on first start.
    pub fn default_key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("default.key"))
            .expect("default.key")
            .trim()
            .to_string()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn tasks(&self) -> TaskServiceClient<InterceptedService<Channel, Auth>> {
        self.tasks_as(&self.default_key()).await
    }

    pub async fn tasks_as(
        &self,
        key: &str,
    ) -> TaskServiceClient<InterceptedService<Channel, Auth>> {
        TaskServiceClient::with_interceptor(self.channel().await, Auth::bearer(key))
    }

    pub async fn events(&self) -> EventServiceClient<InterceptedService<Channel, Auth>> {
        self.events_as(&self.default_key()).await
    }

    pub async fn events_as(
        &self,
        key: &str,
    ) -> EventServiceClient<InterceptedService<Channel, Auth>> {
        EventServiceClient::with_interceptor(self.channel().await, Auth::bearer(key))
    }

    pub async fn media(&self) -> MediaServiceClient<InterceptedService<Channel, Auth>> {
        self.media_as(&self.default_key()).await
    }

    pub async fn media_as(
        &self,
        key: &str,
    ) -> MediaServiceClient<InterceptedService<Channel, Auth>> {
        MediaServiceClient::with_interceptor(self.channel().await, Auth::bearer(key))
            .max_encoding_message_size((16 << 20) + 64)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit. Async, so that this
    /// test's gRPC connections keep being served while the server drains.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "vodtask did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the extra `serve` flags used by the next `restart` (the
    /// storage flags of `VODTASK_TEST_STORAGE=s3` stay).
    pub fn args_for_next_start(&mut self, extra: &[&str]) {
        self.args = extra.iter().map(|s| s.to_string()).collect();
        if let Some(moto) = &self.s3
            && !self.args.iter().any(|a| a == "--storage")
        {
            self.args.extend(s3::S3Server::serve_args(&moto.endpoint));
        }
    }

    /// Starts the same server again on the same data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Auth {
    pub fn bearer(key: &str) -> Auth {
        Auth(Some(format!("Bearer {key}").parse().expect("ascii key")))
    }

    pub fn none() -> Auth {
        Auth(None)
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Tasks = TaskServiceClient<InterceptedService<Channel, Auth>>;
type Media = MediaServiceClient<InterceptedService<Channel, Auth>>;

/// The setup most tests share: a fresh server on its own temp dir, clients
/// of the `default` app, and one test clip uploaded. Destructure it binding
/// `_dir` and `server` (or `server: _server`): a field left to `..` is
/// dropped at once, which deletes the dir or stops the server.
pub struct Fixture {
    /// Owns the data dir and the clip; dropping it deletes them.
    pub _dir: tempfile::TempDir,
    pub clip: PathBuf,
    pub server: Server,
    pub media: Media,
    pub tasks: Tasks,
    pub file_id: String,
}

impl Fixture {
    /// A `seconds`-long `width`x`height` clip, and a server started with `args`.
    pub async fn start(seconds: u32, width: u32, height: u32, args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let clip = make_clip(dir.path(), "clip.mp4", seconds, width, height);
        Fixture::with_clip(dir, clip, args).await
    }

    /// Uploads `clip` (a file inside `dir`) to a server started with `args`.
    pub async fn with_clip(dir: tempfile::TempDir, clip: PathBuf, args: &[&str]) -> Fixture {
        let server = Server::start(&dir.path().join("data"), args);
        let (mut media, tasks) = (server.media().await, server.tasks().await);
        let (file_id, _) = upload(&mut media, &clip, "clip.mp4")
            .await
            .expect("upload the clip");
        Fixture {
            _dir: dir,
            clip,
            server,
            media,
            tasks,
            file_id,
        }
    }
}

/// A port free at the time of the call, for a server that must come back
/// on the same address.
/// A name no other test of this run uses (for databases, buckets…).
pub fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs ffmpeg and panics with its stderr when it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An H.264/AAC MP4 of the lavfi test pattern.
pub fn make_clip(dir: &Path, name: &str, seconds: u32, width: u32, height: u32) -> PathBuf {
    let path = dir.join(name);
    let video = format!("testsrc=duration={seconds}:size={width}x{height}:rate=25");
    let audio = format!("sine=frequency=440:duration={seconds}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().expect("utf-8 path"),
    ]);
    path
}

/// ffprobe's JSON (format and streams) of a path or URL.
pub fn ffprobe(input: &str) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            input,
        ])
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// (width, height, duration seconds) of the first video stream; a still
/// picture has duration 0.
pub fn probe_video(input: &str) -> (u64, u64, f64) {
    let json = ffprobe(input);
    let video = json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .cloned()
        .expect("a video stream");
    let duration = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        video["width"].as_u64().expect("width"),
        video["height"].as_u64().expect("height"),
        duration,
    )
}

/// Uploads a file in 256 KiB chunks; returns (file_id, file_url).
pub async fn upload(
    media: &mut MediaServiceClient<InterceptedService<Channel, Auth>>,
    path: &Path,
    file_name: &str,
) -> Result<(String, String), tonic::Status> {
    let bytes = std::fs::read(path).expect("read upload");
    let mut messages = vec![pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Header(
            pb::UploadMediaHeader {
                file_name: file_name.to_string(),
                source_context: String::new(),
                procedure: None,
            },
        )),
    }];
    for chunk in bytes.chunks(256 * 1024) {
        messages.push(pb::UploadMediaRequest {
            part: Some(pb::upload_media_request::Part::Chunk(chunk.to_vec())),
        });
    }
    let r = media
        .upload_media(tokio_stream::iter(messages))
        .await?
        .into_inner();
    Ok((r.file_id, r.file_url))
}

pub fn transcode(file_id: &str, definitions: &[i32]) -> pb::CreateTaskRequest {
    pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::Transcode(pb::TranscodeSpec {
                file_id: file_id.to_string(),
                definitions: definitions.to_vec(),
            })),
        }),
        ..Default::default()
    }
}

pub fn snapshot(file_id: &str, definition: i32, offsets: &[i64]) -> pb::CreateTaskRequest {
    pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::SnapshotByTimeOffset(
                pb::SnapshotByTimeOffsetSpec {
                    file_id: file_id.to_string(),
                    definition,
                    time_offsets_ms: offsets.to_vec(),
                },
            )),
        }),
        ..Default::default()
    }
}

/// Polls `check` every 20 ms until it yields a value; panics after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP client for the file server. reqwest is built without a default
/// TLS crypto provider (see the workspace Cargo.toml); this picks ring.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The call failed with INVALID_ARGUMENT naming `field` first.
pub fn assert_invalid<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{field}: {e:?}");
    assert!(e.message().starts_with(field), "{field}: {}", e.message());
}

/// CreateTask; returns the task id.
pub async fn create(tasks: &mut Tasks, request: pb::CreateTaskRequest) -> String {
    tasks
        .create_task(request)
        .await
        .expect("create task")
        .into_inner()
        .task_id
}

pub async fn describe(
    tasks: &mut TaskServiceClient<InterceptedService<Channel, Auth>>,
    task_id: &str,
) -> pb::Task {
    tasks
        .describe_task(pb::DescribeTaskRequest {
            task_id: task_id.to_string(),
        })
        .await
        .expect("describe")
        .into_inner()
}

/// Asserts that the task ended FINISH with err_code 0 and progress 100.
pub fn assert_finished_ok(t: &pb::Task) {
    assert_eq!(t.status, pb::TaskStatus::Finish as i32, "{t:?}");
    assert_eq!(t.err_code, 0, "{}", t.message);
    assert_eq!(t.progress, 100);
}

/// Waits until the task has ended (FINISH or ABORTED) and returns it.
pub async fn wait_ended(
    tasks: &mut TaskServiceClient<InterceptedService<Channel, Auth>>,
    task_id: &str,
) -> pb::Task {
    eventually(&format!("task {task_id} to end"), || {
        let mut tasks = tasks.clone();
        async move {
            let t = describe(&mut tasks, task_id).await;
            let ended = t.status == pb::TaskStatus::Finish as i32
                || t.status == pb::TaskStatus::Aborted as i32;
            ended.then_some(t)
        }
    })
    .await
}

/// Waits until the task is PROCESSING and returns it.
pub async fn wait_processing(
    tasks: &mut TaskServiceClient<InterceptedService<Channel, Auth>>,
    task_id: &str,
) -> pb::Task {
    eventually(&format!("task {task_id} to run"), || {
        let mut tasks = tasks.clone();
        async move {
            let t = describe(&mut tasks, task_id).await;
            (t.status == pb::TaskStatus::Processing as i32).then_some(t)
        }
    })
    .await
}

/// Cancels a running task whose ffmpeg is a child of the process `pid`
/// (the server that runs it, whichever node `tasks` talks to): waits for
/// that ffmpeg to run, cancels, and asserts that the call returned the
/// task ABORTED with its ffmpeg gone.
pub async fn cancel_running(
    tasks: &mut TaskServiceClient<InterceptedService<Channel, Auth>>,
    task_id: &str,
    pid: u32,
) {
    wait_processing(tasks, task_id).await;
    eventually("ffmpeg to run", || async {
        (!ffmpeg_children(pid).is_empty()).then_some(())
    })
    .await;
    let cancelled = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task_id.to_string(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(
        cancelled.status,
        pb::TaskStatus::Aborted as i32,
        "{cancelled:?}"
    );
    assert!(
        ffmpeg_children(pid).is_empty(),
        "ffmpeg still runs after CancelTask returned"
    );
}

/// Pids of ffmpeg processes whose parent is `parent`.
pub fn ffmpeg_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may hold spaces, so split at the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
        let ppid = tail
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "ffmpeg" && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// The md5 of a file, hex.
pub fn md5_hex(path: &Path) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(std::fs::read(path).expect("read")))
}
