//! CPU time used by processes over a measurement, from /proc. On a shared
//! machine a rate moves with whatever else runs; the CPU a side spends per
//! event does not, so it is printed beside the rates.

use std::time::Duration;

/// The kernel reports utime and stime in USER_HZ ticks, which Linux fixes at
/// 100 per second for /proc.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of process `pid` (all its threads, exited ones
/// included); None where /proc is not there or the process is gone.
pub fn of(pid: u32) -> Option<Duration> {
    from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time of the thread of process `pid` named `name`; None where it has
/// none of that name.
pub fn of_thread(pid: u32, name: &str) -> Option<Duration> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            from_stat(&std::fs::read_to_string(task.path().join("stat")).ok()?)
        })
}

/// utime plus stime from the text of a process's or a thread's `stat`.
fn from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; utime and stime are fields
    // 14 and 15, the 12th and 13th after its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// CPU time of process `pid` since it had used `then`; None where either
/// reading failed.
pub fn since(pid: u32, then: Option<Duration>) -> Option<Duration> {
    of(pid)?.checked_sub(then?)
}

/// The first process whose command name is `name`.
pub fn find(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim_end() == name).then_some(pid)
    })
}

/// CPU time of a server process and of this (client) process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub server: Duration,
    pub client: Duration,
    /// The part of `server` that a vodtask server's SQLite writer thread
    /// spent (its group commits); None for other servers.
    pub server_writer: Option<Duration>,
}

/// Counts from `start` until `stop`.
pub struct Meter {
    server_pid: Option<u32>,
    server: Option<Duration>,
    server_writer: Option<Duration>,
    client: Option<Duration>,
}

impl Meter {
    pub fn start(server_pid: Option<u32>) -> Meter {
        Meter {
            server_pid,
            server: server_pid.and_then(of),
            server_writer: server_pid.and_then(writer_of),
            client: of(std::process::id()),
        }
    }

    /// None when a reading failed.
    pub fn stop(self) -> Option<Usage> {
        let pid = self.server_pid?;
        let server = since(pid, self.server)?;
        let client = since(std::process::id(), self.client)?;
        let server_writer = writer_of(pid)
            .zip(self.server_writer)
            .and_then(|(now, then)| now.checked_sub(then));
        Some(Usage {
            server,
            client,
            server_writer,
        })
    }
}

fn writer_of(pid: u32) -> Option<Duration> {
    of_thread(pid, vodtask_core::store::sqlite::WRITER_THREAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (sqlite (w) x) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0";
        assert_eq!(from_stat(stat), Some(Duration::from_millis(2800)));
        assert_eq!(from_stat("4242 (truncated"), None);
    }

    #[test]
    fn this_process_s_threads_are_found_by_name() {
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        // A thread takes its name before it runs its closure.
        let thread = std::thread::Builder::new()
            .name("cpu-test-thread".into())
            .spawn(move || {
                let _ = started.send(());
                let _ = stopped.recv();
            })
            .expect("spawn");
        has_started.recv().expect("the thread started");
        let pid = std::process::id();
        assert!(of_thread(pid, "cpu-test-thread").is_some());
        assert!(of_thread(pid, "no-such-thread").is_none());
        drop(stop);
        thread.join().expect("join");
    }
}
