//! The cost of running media work through vodtask. Two figures:
//!
//! 1. Overhead: the same transcode run directly with ffmpeg and through
//!    vodtask (upload once, then CreateTask → TranscodeComplete received by a
//!    waiting PullEvents), alternating, on the same source. The direct run
//!    uses the very command line vodtask runs
//!    (`vodtask_core::exec::transcode_command_line`).
//! 2. Concurrency: N transcodes submitted at once to a server with N
//!    workers, for growing N: each task's ffmpeg time (begin → finish)
//!    against one task alone, and the pool's throughput.
//! 3. Upload: one large file streamed through UploadMedia from disk, in
//!    1 MiB messages: MB/s, and the server's peak resident memory before
//!    and after (it should not grow with the file).
//!
//! `--storage file,s3,s3-copy` runs the overhead and the upload once per
//! media storage, side by side in one run: the data dir, an S3 bucket in a
//! local moto server (ffmpeg reading presigned URLs), and the same with
//! inputs copied to the scratch dir first.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;
use vodtask_proto::v1 as pb;

use crate::harness::measure::median;
use crate::harness::queue;
use crate::harness::report::Table;
use crate::harness::server::{self, EventClient, Server, ServerArgs, TaskClient};

/// The longest one task may take.
const TASK_DEADLINE: Duration = Duration::from_secs(3600);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Length of the generated source, in seconds (1280x720, 25 fps, with audio).
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Output definitions of the transcode.
    #[arg(long, value_delimiter = ',', default_value = "100010,100030")]
    definitions: Vec<i32>,
    /// Runs of each kind in the overhead comparison (alternating).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Concurrency levels (workers = tasks submitted at once).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    concurrency: Vec<usize>,
    /// Size of the uploaded file, in MiB (random bytes).
    #[arg(long, default_value_t = 1024)]
    upload_mib: u64,
    /// Media storages to compare: `file` (the data dir), `s3` (a local moto
    /// server; inputs read through presigned URLs), `s3-copy` (the same,
    /// inputs copied to the scratch dir first).
    #[arg(long, value_delimiter = ',', default_value = "file")]
    storage: Vec<Storage>,
    /// Which measurements to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "overhead,concurrency,upload"
    )]
    parts: Vec<Part>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    File,
    S3,
    S3Copy,
}

impl Storage {
    fn label(self) -> &'static str {
        match self {
            Storage::File => "file://",
            Storage::S3 => "s3",
            Storage::S3Copy => "s3, inputs copied first",
        }
    }

    /// The `serve` flags of this storage, given the moto server.
    fn flags(self, moto: Option<&Moto>) -> anyhow::Result<Vec<String>> {
        let s3 = |inputs: &str| -> anyhow::Result<Vec<String>> {
            let moto = moto.context("no S3 server")?;
            Ok([
                "--storage",
                "s3://vodtask-bench/media",
                "--s3-endpoint",
                &moto.endpoint,
                "--s3-path-style",
                "--s3-inputs",
                inputs,
            ]
            .map(String::from)
            .to_vec())
        };
        match self {
            Storage::File => Ok(Vec::new()),
            Storage::S3 => s3("presign"),
            Storage::S3Copy => s3("copy"),
        }
    }
}

/// A local S3-compatible server (moto's server mode, from PyPI), with the
/// bucket `vodtask-bench`; killed when dropped.
struct Moto {
    _child: tokio::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> anyhow::Result<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start moto_server (pip install 'moto[server]')")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("moto_server did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "PUT"])
            .arg(format!("{endpoint}/vodtask-bench"))
            .status()
            .await
            .context("curl")?;
        if !status.success() {
            bail!("cannot create the bucket in moto");
        }
        Ok(Moto {
            _child: child,
            endpoint,
        })
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Overhead,
    Concurrency,
    Upload,
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let moto = if args.storage.iter().any(|s| *s != Storage::File) {
        // moto takes any credentials; the S3 client wants some.
        args.server.env.extend(
            [
                ("AWS_ACCESS_KEY_ID", "bench"),
                ("AWS_SECRET_ACCESS_KEY", "bench"),
                ("AWS_REGION", "us-east-1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Some(Moto::start().await?)
    } else {
        None
    };
    let moto = moto.as_ref();
    let transcodes =
        args.parts.contains(&Part::Overhead) || args.parts.contains(&Part::Concurrency);
    let source = dir.path().join("source.mp4");
    if transcodes {
        make_source(&source, args.seconds).await?;
        println!(
            "source: {} s of 1280x720 testsrc + sine, definitions {:?}",
            args.seconds, args.definitions
        );
    }
    if args.parts.contains(&Part::Overhead) {
        overhead(&args, &source, dir.path(), moto).await?;
    }
    if args.parts.contains(&Part::Concurrency) {
        concurrency(&args, &source).await?;
    }
    if args.parts.contains(&Part::Upload) {
        let path = dir.path().join("large.bin");
        write_random(&path, args.upload_mib << 20).await?;
        // How inputs are read does not matter to an upload: one run per
        // backend.
        let mut backends = Vec::new();
        for storage in &args.storage {
            let backend = match storage {
                Storage::S3Copy => Storage::S3,
                other => *other,
            };
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        for storage in backends {
            upload_large(&args, &path, storage, moto).await?;
        }
    }
    Ok(())
}

/// One `--upload-mib` file streamed from disk through UploadMedia.
async fn upload_large(
    args: &Args,
    path: &Path,
    storage: Storage,
    moto: Option<&Moto>,
) -> anyhow::Result<()> {
    let flags = storage.flags(moto)?;
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::with(&args.server, &flags, async |server| {
        let pid = server.pid().context("the server's pid")?;
        let before = peak_rss_kib(pid)?;
        let mut media = server.media_client().await?;
        let started = Instant::now();
        server::upload_file(&mut media, path, "large.bin").await?;
        let seconds = started.elapsed().as_secs_f64();
        let after = peak_rss_kib(pid)?;
        let mib = args.upload_mib as f64;
        println!(
            "\nupload ({} MiB from disk, 1 MiB messages, {})",
            args.upload_mib,
            storage.label()
        );
        println!(
            "  time                   {seconds:>8.2} s = {:.0} MiB/s",
            mib / seconds
        );
        println!(
            "  server peak RSS        {:>8.1} MiB before, {:.1} MiB after   (target: flat)",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
        Ok(())
    })
    .await
}

/// Incompressible bytes, written in 1 MiB blocks.
async fn write_random(path: &Path, bytes: u64) -> anyhow::Result<()> {
    use rand::RngCore;
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("create {}", path.display()))?;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        rand::rng().fill_bytes(&mut block);
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])
            .await
            .context("write the upload source")?;
        left -= n as u64;
    }
    file.flush().await.context("write the upload source")?;
    Ok(())
}

/// The process's peak resident set so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

/// The same transcode directly and through a server on each storage, in
/// rotating order within each round.
async fn overhead(
    args: &Args,
    source: &Path,
    dir: &Path,
    moto: Option<&Moto>,
) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for &storage in &args.storage {
        let mut flags = vec!["--workers".to_string(), "1".to_string()];
        flags.extend(storage.flags(moto)?);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        servers.push(Server::start(&args.server, &flags).await?);
    }
    let measured = async {
        let mut sides = Vec::new();
        for server in &servers {
            let file_id = upload(server, source).await?;
            let (tasks, mut events) = (server.task_client().await?, server.event_client().await?);
            // Drain the upload's event so that only completions are waited for.
            drain(&mut events).await?;
            sides.push((file_id, tasks, events));
        }
        let line = vodtask_core::exec::transcode_command_line(source, 720, &args.definitions, dir)?;
        // runs[0] is ffmpeg directly, runs[1 + i] through storage i.
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); 1 + sides.len()];
        // One warm-up round, so that page caches and ffmpeg's libraries are
        // loaded for all.
        for round in 0..=args.rounds {
            let n = runs.len();
            for k in 0..n {
                // Rotate which goes first, so drift in the machine hits all.
                let side = (k + round as usize) % n;
                let seconds = if side == 0 {
                    direct(&line).await?
                } else {
                    let (file_id, tasks, events) = &mut sides[side - 1];
                    through_vodtask(tasks, events, file_id, &args.definitions).await?
                };
                if round > 0 {
                    runs[side].push(seconds);
                }
            }
            if round > 0 {
                let last: Vec<String> = runs
                    .iter()
                    .map(|r| format!("{:.3}", r.last().copied().unwrap_or_default()))
                    .collect();
                eprintln!("  round {round}: {}", last.join(" / "));
            }
        }
        let plain = median(&runs[0]).unwrap_or_default();
        println!(
            "\noverhead ({} rounds, medians; CreateTask -> TranscodeComplete pulled)",
            args.rounds
        );
        let mut table = Table::new(&["", "s", "overhead"]);
        table.row([
            "ffmpeg directly".to_string(),
            format!("{plain:.3}"),
            String::new(),
        ]);
        for (i, storage) in args.storage.iter().enumerate() {
            let s = median(&runs[1 + i]).unwrap_or_default();
            table.row([
                format!("vodtask, {}", storage.label()),
                format!("{s:.3}"),
                format!("{:+.3} s = {:+.2} %", s - plain, (s / plain - 1.0) * 100.0),
            ]);
        }
        table.print();
        anyhow::Ok(())
    }
    .await;
    for server in servers {
        server.stop().await?;
    }
    measured
}

async fn concurrency(args: &Args, source: &Path) -> anyhow::Result<()> {
    println!(
        "\nconcurrency (N tasks submitted at once, N workers; per-task ffmpeg time from begin to finish)"
    );
    let mut table = Table::new(&["N", "mean task s", "vs N=1", "tasks/min"]);
    let mut alone = None;
    for &n in &args.concurrency {
        let workers = n.to_string();
        let (mean, wall) = Server::with(&args.server, &["--workers", &workers], async |server| {
            at_once(server, source, n, &args.definitions).await
        })
        .await?;
        let base = *alone.get_or_insert(mean);
        table.row([
            n.to_string(),
            format!("{mean:.2}"),
            format!("{:.2}x", mean / base),
            format!("{:.1}", n as f64 / wall.as_secs_f64() * 60.0),
        ]);
    }
    table.print();
    Ok(())
}

/// `n` transcodes submitted at once: the mean of their ffmpeg times (begin to
/// finish, in seconds) and the time until the last ended.
async fn at_once(
    server: &Server,
    source: &Path,
    n: usize,
    definitions: &[i32],
) -> anyhow::Result<(f64, Duration)> {
    let file_id = upload(server, source).await?;
    let mut tasks = server.task_client().await?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(create(&mut tasks, &file_id, definitions).await?);
    }
    let mut task_secs = Vec::new();
    for id in &ids {
        let t = wait_ended(&mut tasks, id).await?;
        if t.err_code != 0 {
            bail!("task {id} failed: {}", t.message);
        }
        let (Some(b), Some(f)) = (t.begin_process_time, t.finish_time) else {
            bail!("task {id} has no begin or finish time");
        };
        task_secs.push((f.seconds - b.seconds) as f64 + f64::from(f.nanos - b.nanos) / 1e9);
    }
    let mean = task_secs.iter().sum::<f64>() / task_secs.len() as f64;
    Ok((mean, started.elapsed()))
}

async fn make_source(path: &Path, seconds: u32) -> anyhow::Result<()> {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=duration={seconds}:size=1280x720:rate=25"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(path)
        .status()
        .await
        .context("run ffmpeg (is it installed?)")?;
    if !status.success() {
        bail!("ffmpeg could not make the source clip: {status}");
    }
    Ok(())
}

/// Runs ffmpeg with vodtask's command line; its progress output is read
/// and dropped, as vodtask reads it. Returns its seconds.
async fn direct(line: &[std::ffi::OsString]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = Command::new("ffmpeg")
        .args(line)
        .stdin(Stdio::null())
        .output()
        .await
        .context("run ffmpeg")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn through_vodtask(
    tasks: &mut TaskClient,
    events: &mut EventClient,
    file_id: &str,
    definitions: &[i32],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let id = create(tasks, file_id, definitions).await?;
    loop {
        let got = queue::pull(events, 16, 20).await?;
        let mut done = false;
        let mut handles = Vec::new();
        for d in got {
            handles.push(d.msg_handle);
            let e = d.event.context("delivery without event")?;
            done |= e.task_id == id && e.event_type == "TranscodeComplete";
        }
        let elapsed = started.elapsed().as_secs_f64();
        queue::confirm_all(events, handles).await?;
        if done {
            let received = std::time::SystemTime::now();
            let t = describe(tasks, &id).await?;
            if t.err_code != 0 {
                bail!("task {id} failed: {}", t.message);
            }
            // Where the time went, by the server's clock (the same machine).
            let at = |ts: &Option<prost_types::Timestamp>| {
                ts.as_ref()
                    .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
            };
            let received = received
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            eprintln!(
                "    queued {:.3} s, ran {:.3} s, delivered {:.3} s after the finish",
                at(&t.begin_process_time) - at(&t.create_time),
                at(&t.finish_time) - at(&t.begin_process_time),
                received - at(&t.finish_time)
            );
            return Ok(elapsed);
        }
        if started.elapsed() > TASK_DEADLINE {
            bail!("task {id} did not finish within {TASK_DEADLINE:?}");
        }
    }
}

async fn drain(events: &mut EventClient) -> anyhow::Result<()> {
    loop {
        let got = queue::pull(events, 1000, 1).await?;
        if got.is_empty() {
            return Ok(());
        }
        let handles = got.into_iter().map(|d| d.msg_handle).collect();
        queue::confirm_all(events, handles).await?;
    }
}

async fn create(
    tasks: &mut TaskClient,
    file_id: &str,
    definitions: &[i32],
) -> anyhow::Result<String> {
    let request = pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::Transcode(pb::TranscodeSpec {
                file_id: file_id.to_string(),
                definitions: definitions.to_vec(),
            })),
        }),
        ..Default::default()
    };
    Ok(tasks.create_task(request).await?.into_inner().task_id)
}

async fn describe(tasks: &mut TaskClient, id: &str) -> anyhow::Result<pb::Task> {
    Ok(tasks
        .describe_task(pb::DescribeTaskRequest {
            task_id: id.to_string(),
        })
        .await?
        .into_inner())
}

async fn wait_ended(tasks: &mut TaskClient, id: &str) -> anyhow::Result<pb::Task> {
    let started = Instant::now();
    loop {
        let t = describe(tasks, id).await?;
        if t.status == pb::TaskStatus::Finish as i32 || t.status == pb::TaskStatus::Aborted as i32 {
            return Ok(t);
        }
        if started.elapsed() > TASK_DEADLINE {
            bail!("task {id} did not end within {TASK_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upload(server: &Server, path: &Path) -> anyhow::Result<String> {
    let mut media = server.media_client().await?;
    server::upload_file(&mut media, path, "source.mp4").await
}
