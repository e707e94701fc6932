//! Databases for servers on PostgreSQL. With `VODTASK_TEST_DATABASE=postgres`
//! every `Server` of the harness keeps its state in a database of its own
//! (created on the server `VODTASK_TEST_POSTGRES` names, by default the
//! local one, and dropped when the test ends) instead of SQLite in its data
//! dir, so that the same end-to-end tests run on both stores
//! (scripts/test.sh does so for the task and event suites).

use std::process::Command;

/// The server the tests use unless `VODTASK_TEST_POSTGRES` says.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether this test run keeps state in PostgreSQL.
pub fn requested() -> bool {
    std::env::var("VODTASK_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

fn server_url() -> String {
    std::env::var("VODTASK_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

/// A database created for one test, dropped (its connections ended) when
/// this is dropped.
pub struct Database {
    pub url: String,
    name: String,
    server: String,
}

fn psql(server: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", server, "-c", sql])
        .output()
        .map_err(|e| format!("run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Database {
    pub fn create() -> Database {
        let server = server_url();
        let name = format!("vt_{}", crate::unique_name());
        psql(&server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name} on {server}: {e}"));
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("VODTASK_TEST_POSTGRES {server:?} names no database"),
        };
        Database { url, name, server }
    }

    /// Runs `sql` in this database.
    pub fn run(&self, sql: &str) {
        psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// A PostgreSQL server of the test's own: a cluster made by the installed
/// PostgreSQL's `initdb` in a temporary directory, listening on a free port
/// of 127.0.0.1, so that a test can crash and restart it without disturbing
/// anything else. Stopped and removed when this is dropped.
pub struct Instance {
    dir: tempfile::TempDir,
    port: u16,
}

/// Where Debian puts the server's programs (`initdb`, `pg_ctl`), unless
/// `VODTASK_TEST_PG_BIN` says.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Instance {
    pub fn start() -> Instance {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL refuses to run as root: then its files and processes
        // belong to the `postgres` user.
        if running_as_root() {
            let chown = Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .unwrap();
            assert!(
                chown.success(),
                "chown the instance's directory to postgres"
            );
        }
        let instance = Instance {
            dir,
            port: crate::free_port(),
        };
        instance.pg(
            "initdb",
            &["-D", &instance.data(), "-U", "postgres", "-A", "trust"],
        );
        instance.start_again();
        instance
    }

    /// The instance's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`:
    /// no checkpoint, every connection cut); its next start recovers from
    /// the write-ahead log.
    pub fn crash(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of the server's programs, as `postgres` when we are root.
    fn pg(&self, program: &str, args: &[&str]) {
        self.try_pg(program, args)
            .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    }

    fn try_pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let bin_dir = std::env::var("VODTASK_TEST_PG_BIN").unwrap_or_else(|_| PG_BIN.into());
        let program = format!("{bin_dir}/{program}");
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(args)
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Already stopped, when the test failed while it was down.
        let data = self.data();
        let _ = self.try_pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
