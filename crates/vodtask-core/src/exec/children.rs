//! ffmpeg and ffprobe processes die with vodtask.
//!
//! Two lines of defence. First, each child asks the kernel to SIGKILL it
//! when its parent dies (Linux's parent-death signal, set between fork and
//! exec), so that `kill -9` of vodtask takes its ffmpeg runs along at once.
//! The kernel ties that signal to the thread that forked the child; children
//! are spawned from tokio's worker threads, which live as long as the
//! runtime. Second, every running ffmpeg has an entry in
//! `<data-dir>/children/` naming its pid and the time the kernel started
//! it; a restarted vodtask kills the processes whose entry still matches
//! (never by name, and never a recycled pid) before it runs anything.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};

use crate::error::{Error, Result};

/// A command that is killed with its parent, and when dropped.
pub(crate) fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.kill_on_drop(true);
    die_with_parent(&mut command);
    command
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two raw system calls
    // (prctl, getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the prctl took effect.
            if rustix::process::getppid() != Some(parent) {
                return Err(io::Error::other(
                    "vodtask exited while starting this process",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// The ledger of running children in a data dir.
#[derive(Debug, Clone)]
pub struct Children {
    dir: PathBuf,
}

impl Children {
    pub fn open(data_dir: &Path) -> Result<Children> {
        let dir = data_dir.join("children");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(Children { dir })
    }

    /// Spawns `command` and records the child until it is dropped.
    pub(crate) fn spawn(&self, command: &mut Command) -> io::Result<Tracked> {
        let child = command.spawn()?;
        let entry = child.id().and_then(|pid| {
            let started = start_time(pid)?;
            let path = self.dir.join(pid.to_string());
            match std::fs::write(&path, started.to_string()) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!("cannot record child {pid} in {}: {e}", self.dir.display());
                    None
                }
            }
        });
        Ok(Tracked { child, entry })
    }

    /// Kills what a previous process on this data dir left running, and
    /// forgets every entry. Returns how many processes it killed.
    pub fn kill_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut killed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let recorded = std::fs::read_to_string(&path).ok();
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok());
            if let (Some(pid), Some(recorded)) = (pid, recorded)
                && start_time(pid).is_some_and(|t| t.to_string() == recorded.trim())
                && kill(pid)
            {
                tracing::warn!(pid, "killed an ffmpeg a previous vodtask left running");
                killed += 1;
            }
            let _ = std::fs::remove_file(&path);
        }
        killed
    }
}

/// A running child with its ledger entry, removed when the child is dropped
/// (by then it has exited or been killed: `kill_on_drop`).
pub(crate) struct Tracked {
    pub child: Child,
    entry: Option<PathBuf>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(path) = &self.entry {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// When the kernel started `pid` (clock ticks since boot, field 22 of
/// /proc/PID/stat): with the pid, it names one process for good.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; it ends at the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// SIGKILL, then waits (up to a second) until the process is gone.
fn kill(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    if rustix::process::kill_process(pid, Signal::KILL).is_err() {
        return false;
    }
    let until = std::time::Instant::now() + Duration::from_secs(1);
    // Not our child: it is gone when its /proc entry is (init reaps it).
    while std::path::Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_names_a_running_process() {
        let me = std::process::id();
        let t = start_time(me).expect("our own start time");
        assert_eq!(start_time(me), Some(t), "stable");
        assert_eq!(start_time(u32::MAX), None);
    }

    #[tokio::test]
    async fn leftovers_are_killed_only_when_their_start_time_matches() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let children = Children::open(dir.path()).expect("open");
        // As after a crash: a child running, its entry in the ledger.
        let mut sleep = command(Path::new("sleep"));
        sleep.arg("60");
        let mut tracked = children.spawn(&mut sleep).expect("spawn");
        let pid = tracked.child.id().expect("pid");
        let entry = dir.path().join("children").join(pid.to_string());
        assert!(entry.exists(), "recorded while it runs");
        // An entry whose pid now names another process (a recycled pid)
        // does not get that process killed.
        let other = dir
            .path()
            .join("children")
            .join(std::process::id().to_string());
        std::fs::write(&other, "1").expect("write");

        assert_eq!(children.kill_leftovers(), 1, "only the matching child");
        let status = tracked.child.wait().await.expect("wait");
        assert_eq!(status.signal(), Some(9), "SIGKILL");
        assert!(
            !entry.exists() && !other.exists(),
            "every entry is forgotten"
        );
    }

    #[tokio::test]
    async fn an_entry_goes_when_its_child_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let children = Children::open(dir.path()).expect("open");
        let mut t = command(Path::new("true"));
        let mut tracked = children.spawn(&mut t).expect("spawn");
        let pid = tracked.child.id().expect("pid");
        tracked.child.wait().await.expect("wait");
        drop(tracked);
        assert!(!dir.path().join("children").join(pid.to_string()).exists());
    }
}
