//! What each change of a task writes besides its status, decided here once
//! for every store. A store applies a [`Change`] to one task in one
//! transaction: the fields, then the status through its [`Transition`]
//! (guarded by the statuses it may leave, and for a running task by its
//! lease token), the counters, and when the task ends its completion event
//! (`events::envelope::task_ended` of the task as written).

use super::{TaskOutput, TaskStatus, Transition, errcode};
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::time::Timestamp;

/// A status change and the fields it writes. A field left None keeps its
/// value; `Some(None)` clears an optional one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub transition: Transition,
    /// The attempt number grows by one: the task runs again as a new
    /// attempt (redo, recovery after a lost worker).
    pub next_attempt: bool,
    pub recoveries: Option<Recoveries>,
    pub err_code: Option<i32>,
    pub message: Option<String>,
    pub progress: Option<u8>,
    pub begin_process_time: Option<Option<Timestamp>>,
    pub finish_time: Option<Option<Timestamp>>,
    pub output: Option<Option<TaskOutput>>,
    pub cancel_requested: Option<bool>,
    pub lease: Option<LeaseUpdate>,
}

/// How many times in a row the task's worker was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recoveries {
    Reset,
    OneMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// A new lease until this time, under the next fencing token.
    Take { until: Timestamp },
    /// No lease any more.
    Drop,
}

/// What CancelTask does, by the task's status.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// A waiting task ends ABORTED at once.
    Now(Change),
    /// A running task is flagged; its worker stops it (and the flag is
    /// also honoured by a release or a recovery).
    Flag,
    /// An ended task stays as it is.
    Nothing,
}

/// What becomes of a running task whose worker is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    /// Cancel was requested: it ends ABORTED.
    Aborted,
    /// Queued again, as a new attempt.
    Requeued,
    /// Lost too often: it ends FINISH with `WORKER_LOST`.
    Failed,
}

impl Change {
    fn new(transition: Transition) -> Change {
        Change {
            transition,
            next_attempt: false,
            recoveries: None,
            err_code: None,
            message: None,
            progress: None,
            begin_process_time: None,
            finish_time: None,
            output: None,
            cancel_requested: None,
            lease: None,
        }
    }

    /// A worker claims a waiting task.
    pub fn claim(now: Timestamp, lease_until: Timestamp) -> Change {
        Change {
            lease: Some(LeaseUpdate::Take { until: lease_until }),
            begin_process_time: Some(Some(now)),
            progress: Some(0),
            cancel_requested: Some(false),
            output: Some(None),
            ..Change::new(Transition::Start)
        }
    }

    /// The work ended; `err_code` 0 is success (and 100 % progress).
    pub fn finish(
        err_code: i32,
        message: String,
        output: Option<TaskOutput>,
        now: Timestamp,
    ) -> Change {
        Change {
            err_code: Some(err_code),
            message: Some(message),
            output: Some(output),
            finish_time: Some(Some(now)),
            lease: Some(LeaseUpdate::Drop),
            progress: (err_code == 0).then_some(100),
            // A cancel that came too late is moot: the task ended anyway.
            cancel_requested: Some(false),
            ..Change::new(Transition::Finish)
        }
    }

    /// CancelTask, by the task's status.
    pub fn cancel(status: TaskStatus, now: Timestamp) -> Cancel {
        match status {
            TaskStatus::Waiting => Cancel::Now(Change {
                message: Some("cancelled by CancelTask".into()),
                finish_time: Some(Some(now)),
                ..Change::new(Transition::Abort)
            }),
            TaskStatus::Processing => Cancel::Flag,
            TaskStatus::Finish | TaskStatus::Aborted => Cancel::Nothing,
        }
    }

    /// A running task whose cancel was requested, stopped.
    pub fn abort_running(now: Timestamp) -> Change {
        Change {
            message: Some("cancelled by CancelTask while running".into()),
            finish_time: Some(Some(now)),
            lease: Some(LeaseUpdate::Drop),
            cancel_requested: Some(false),
            ..Change::new(Transition::Abort)
        }
    }

    /// The worker gives the task back (graceful shutdown): queued again,
    /// the same attempt; unless its cancel was requested meanwhile.
    pub fn release(cancel_requested: bool, now: Timestamp) -> Change {
        if cancel_requested {
            return Change::abort_running(now);
        }
        Change {
            progress: Some(0),
            lease: Some(LeaseUpdate::Drop),
            begin_process_time: Some(None),
            ..Change::new(Transition::Requeue)
        }
    }

    /// A running task whose worker is gone (`recoveries` times before).
    pub fn orphaned(
        cancel_requested: bool,
        recoveries: u32,
        max_recoveries: u32,
        now: Timestamp,
    ) -> (Orphan, Change) {
        if cancel_requested {
            return (Orphan::Aborted, Change::abort_running(now));
        }
        if recoveries >= max_recoveries {
            let message = format!(
                "the worker running this task was lost {} times",
                recoveries.saturating_add(1)
            );
            let change = Change {
                err_code: Some(errcode::WORKER_LOST),
                message: Some(message),
                finish_time: Some(Some(now)),
                lease: Some(LeaseUpdate::Drop),
                ..Change::new(Transition::Finish)
            };
            return (Orphan::Failed, change);
        }
        let change = Change {
            next_attempt: true,
            recoveries: Some(Recoveries::OneMore),
            progress: Some(0),
            lease: Some(LeaseUpdate::Drop),
            begin_process_time: Some(None),
            ..Change::new(Transition::Requeue)
        };
        (Orphan::Requeued, change)
    }

    /// RedoTask: an ended task runs again under the same id as a new
    /// attempt, from a clean slate (the store keeps the old attempt's
    /// result as history).
    pub fn redo(id: &TaskId, status: TaskStatus) -> Result<Change> {
        if !Transition::Redo.allowed_from(status) {
            return Err(Error::FailedPrecondition(format!(
                "task_id: task {id} is {status:?}; only a FINISH or ABORTED task can be redone"
            )));
        }
        Ok(Change {
            next_attempt: true,
            recoveries: Some(Recoveries::Reset),
            err_code: Some(0),
            message: Some(String::new()),
            progress: Some(0),
            begin_process_time: Some(None),
            finish_time: Some(None),
            output: Some(None),
            cancel_requested: Some(false),
            ..Change::new(Transition::Redo)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;

    #[test]
    fn an_orphan_is_requeued_until_it_was_lost_too_often() {
        let now = time::now();
        let (kind, change) = Change::orphaned(false, 0, 3, now);
        assert_eq!(kind, Orphan::Requeued);
        assert_eq!(change.transition, Transition::Requeue);
        assert!(change.next_attempt);
        let (kind, change) = Change::orphaned(false, 3, 3, now);
        assert_eq!(kind, Orphan::Failed);
        assert_eq!(change.err_code, Some(errcode::WORKER_LOST));
        assert_eq!(
            change.message.as_deref(),
            Some("the worker running this task was lost 4 times")
        );
        let (kind, change) = Change::orphaned(true, 3, 3, now);
        assert_eq!(kind, Orphan::Aborted);
        assert_eq!(change.transition, Transition::Abort);
    }

    #[test]
    fn only_a_success_completes_the_progress() {
        let now = time::now();
        assert_eq!(
            Change::finish(0, String::new(), None, now).progress,
            Some(100)
        );
        assert_eq!(Change::finish(-45001, "x".into(), None, now).progress, None);
    }

    #[test]
    fn redo_is_refused_unless_the_task_ended() {
        let id = TaskId::from_stored("t".into());
        let e = Change::redo(&id, TaskStatus::Waiting).expect_err("refused");
        assert!(
            e.to_string().contains("only a FINISH or ABORTED task"),
            "{e}"
        );
        let change = Change::redo(&id, TaskStatus::Aborted).expect("allowed");
        assert_eq!(change.output, Some(None));
        assert_eq!(change.recoveries, Some(Recoveries::Reset));
    }

    #[test]
    fn every_change_starts_from_a_status_it_may_leave() {
        let now = time::now();
        assert!(
            Change::claim(now, now)
                .transition
                .allowed_from(TaskStatus::Waiting)
        );
        let Cancel::Now(abort) = Change::cancel(TaskStatus::Waiting, now) else {
            panic!("a waiting task is aborted at once");
        };
        assert!(abort.transition.allowed_from(TaskStatus::Waiting));
        assert_eq!(Change::cancel(TaskStatus::Processing, now), Cancel::Flag);
        assert_eq!(Change::cancel(TaskStatus::Finish, now), Cancel::Nothing);
        let release = Change::release(false, now);
        assert!(release.transition.allowed_from(TaskStatus::Processing));
        assert_eq!(Change::release(true, now).transition, Transition::Abort);
    }
}
