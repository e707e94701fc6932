//! Runs one ffmpeg process: progress from `-progress pipe:1`, a capped tail
//! of stderr for error messages, and a real kill on cancellation.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::children::{Children, command};

/// The ffmpeg binary, and the ledger its runs are recorded in.
pub(crate) struct Ffmpeg {
    pub program: PathBuf,
    pub children: Children,
    /// Stripped from error messages (see `without_data_dir`).
    pub data_dir: PathBuf,
}

/// How much of ffmpeg's stderr is kept for the task's message.
const STDERR_TAIL: usize = 2048;

/// What every ffmpeg run starts with: quiet, no prompts, progress on stdout.
pub const BASE_ARGS: [&str; 10] = [
    "-hide_banner",
    "-nostdin",
    "-y",
    "-loglevel",
    "error",
    "-nostats",
    // Progress twice as often as ffmpeg's default 0.5 s.
    "-stats_period",
    "0.25",
    "-progress",
    "pipe:1",
];

#[derive(Debug)]
pub enum RunError {
    Cancelled,
    Failed(String),
}

/// Runs ffmpeg with `args` (inputs and outputs). `on_progress` receives the
/// fraction done (0.0..=1.0) of a source `duration_seconds` long.
pub(crate) async fn run(
    ffmpeg: &Ffmpeg,
    args: Vec<OsString>,
    duration_seconds: f64,
    on_progress: &(dyn Fn(f64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let started = std::time::Instant::now();
    let mut tracked = ffmpeg
        .children
        .spawn(
            command(&ffmpeg.program)
                .args(BASE_ARGS)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| RunError::Failed(format!("cannot run {}: {e}", ffmpeg.program.display())))?;
    let child = &mut tracked.child;

    let stderr = child.stderr.take();
    let stderr_tail = tokio::spawn(async move {
        let mut tail = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
        String::from_utf8_lossy(&tail).trim().to_string()
    });

    let stdout = child.stdout.take();
    let progress = async move {
        if let Some(stdout) = stdout {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(us) = line
                    .strip_prefix("out_time_us=")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    && duration_seconds > 0.0
                {
                    on_progress((us / 1e6 / duration_seconds).clamp(0.0, 1.0));
                }
            }
        }
    };

    tokio::select! {
        _ = cancel.cancelled() => {
            // SIGKILL, then reap, so that no ffmpeg outlives a cancelled task.
            let _ = child.kill().await;
            stderr_tail.abort();
            Err(RunError::Cancelled)
        }
        status = async { progress.await; child.wait().await } => {
            let tail = stderr_tail.await.unwrap_or_default();
            let tail = match ffmpeg.data_dir.to_str() {
                Some(dir) if !dir.is_empty() => without_data_dir(&tail, dir),
                _ => tail,
            };
            let tail = crate::media::probe::redact_signed_urls(&tail);
            let code = status.as_ref().ok().and_then(|s| s.code());
            tracing::debug!(seconds = started.elapsed().as_secs_f64(), exit_code = code, "ffmpeg ended");
            match status {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(RunError::Failed(if tail.is_empty() { format!("ffmpeg exited with {s}") } else { tail })),
                Err(e) => Err(RunError::Failed(format!("waiting for ffmpeg: {e}"))),
            }
        }
    }
}

/// ffmpeg names the files it read and wrote by their paths in the data dir,
/// and its message reaches apps (a task's `message`), which need not learn
/// where the server keeps its data: each such path becomes its file name.
fn without_data_dir(text: &str, data_dir: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(data_dir) {
        out.push_str(&rest[..at]);
        let path = &rest[at..];
        let end = path
            .find(|c: char| c.is_whitespace() || matches!(c, ':' | '\'' | '"' | ','))
            .unwrap_or(path.len());
        out.push_str(path[..end].rsplit('/').next().unwrap_or_default());
        rest = &path[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_the_data_dir_become_file_names() {
        let text = "/srv/vt/media/123/in.mp4: Invalid data found\n\
                    Error opening output '/srv/vt/tmp/run-9/out.mp4': No space left";
        assert_eq!(
            without_data_dir(text, "/srv/vt"),
            "in.mp4: Invalid data found\nError opening output 'out.mp4': No space left"
        );
        assert_eq!(
            without_data_dir("no paths here", "/srv/vt"),
            "no paths here"
        );
    }
}
