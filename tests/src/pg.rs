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
