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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
}

/// Counts from `start` until `stop`.
pub struct Meter {
    server_pid: Option<u32>,
    server: Option<Duration>,
    client: Option<Duration>,
}

impl Meter {
    pub fn start(server_pid: Option<u32>) -> Meter {
        Meter {
            server_pid,
            server: server_pid.and_then(of),
            client: of(std::process::id()),
        }
    }

    /// None when a reading failed.
    pub fn stop(self) -> Option<Usage> {
        let server = since(self.server_pid?, self.server)?;
        let client = since(std::process::id(), self.client)?;
        Some(Usage { server, client })
    }
}
