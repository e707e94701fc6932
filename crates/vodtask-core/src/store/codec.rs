//! What every store writes the same way, whatever its SQL: JSON columns,
//! status codes, and the columns a task's `Change` sets.

use super::EventPage;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::FileId;
use crate::task::{Change, LeaseUpdate, Recoveries, TaskStatus};
use crate::time::{Timestamp, to_micros};

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Storage(format!("unreadable row: {what}").into())
}

pub(crate) fn status(code: i64) -> Result<TaskStatus> {
    TaskStatus::from_code(code).ok_or_else(|| corrupt(format!("task status {code}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(corrupt)
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("serialize: {e}")))
}

/// The error of recording a file whose write was given up.
pub(crate) fn given_up_write(file: &FileId) -> Error {
    Error::Unavailable(format!(
        "file {file}: its write was given up and its objects removed \
         (the writing process was taken for dead); write it again"
    ))
}

/// A page of at most `limit` events from up to `limit + 1` `(seq, event)`
/// rows in seq order: a row past the limit means there is a next page.
pub(crate) fn event_page(rows: Vec<(i64, Event)>, limit: u32) -> EventPage {
    let more = rows.len() > limit as usize;
    let events: Vec<(i64, Event)> = rows.into_iter().take(limit as usize).collect();
    EventPage {
        next_after: if more {
            events.last().map(|(s, _)| *s)
        } else {
            None
        },
        events: events.into_iter().map(|(_, e)| e).collect(),
    }
}

/// One `SET` of a change on the `tasks` row.
pub(crate) enum Assign {
    Int(&'static str, Option<i64>),
    Text(&'static str, Option<String>),
    Bool(&'static str, bool),
    /// A whole `column = expression` with no value.
    Expr(&'static str),
}

/// The columns `c` sets besides the status (none: nothing to write).
pub(crate) fn assignments(c: &Change) -> Result<Vec<Assign>> {
    let micros = |t: Option<Timestamp>| t.map(to_micros);
    let mut out = Vec::new();
    if let Some(v) = c.err_code {
        out.push(Assign::Int("err_code", Some(v.into())));
    }
    if let Some(v) = &c.message {
        out.push(Assign::Text("message", Some(v.clone())));
    }
    if let Some(v) = c.progress {
        out.push(Assign::Int("progress", Some(v.into())));
    }
    if let Some(t) = c.begin_process_time {
        out.push(Assign::Int("begin_process_time", micros(t)));
    }
    if let Some(t) = c.finish_time {
        out.push(Assign::Int("finish_time", micros(t)));
    }
    if let Some(output) = &c.output {
        let json = output.as_ref().map(to_json).transpose()?;
        out.push(Assign::Text("output_json", json));
    }
    if let Some(v) = c.cancel_requested {
        out.push(Assign::Bool("cancel_requested", v));
    }
    match c.lease {
        Some(LeaseUpdate::Take { until }) => {
            out.push(Assign::Int("lease_expires", micros(Some(until))));
            out.push(Assign::Expr("lease_token = lease_token + 1"));
        }
        Some(LeaseUpdate::Drop) => out.push(Assign::Int("lease_expires", None)),
        None => {}
    }
    if c.next_attempt {
        out.push(Assign::Expr("attempt = attempt + 1"));
    }
    match c.recoveries {
        Some(Recoveries::Reset) => out.push(Assign::Expr("recoveries = 0")),
        Some(Recoveries::OneMore) => out.push(Assign::Expr("recoveries = recoveries + 1")),
        None => {}
    }
    Ok(out)
}
