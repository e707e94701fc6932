//! The task state machine. Every status change in vodtask is one of the
//! `Transition`s below; stores apply them with the `from` set as a guard, so
//! an illegal change cannot be written, whatever races happen.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    Waiting,
    Processing,
    /// Ended; the error code says whether it succeeded.
    Finish,
    /// Cancelled.
    Aborted,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Waiting,
        TaskStatus::Processing,
        TaskStatus::Finish,
        TaskStatus::Aborted,
    ];

    /// Stable number used by the stores (and equal to the proto enum value).
    pub fn code(self) -> i64 {
        match self {
            TaskStatus::Waiting => 1,
            TaskStatus::Processing => 2,
            TaskStatus::Finish => 3,
            TaskStatus::Aborted => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        TaskStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Finish | TaskStatus::Aborted)
    }
}

/// Every legal status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A worker claims a queued task.
    Start,
    /// The work ended, successfully or not.
    Finish,
    /// CancelTask on a queued task, or a running task whose worker stopped.
    Abort,
    /// The worker gave the task back (graceful shutdown) or its lease expired
    /// (the worker died): queued again.
    Requeue,
    /// RedoTask: a finished task runs again under the same id.
    Redo,
}

impl Transition {
    pub fn from(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Transition::Start => &[Waiting],
            Transition::Finish => &[Processing],
            Transition::Abort => &[Waiting, Processing],
            Transition::Requeue => &[Processing],
            Transition::Redo => &[Finish, Aborted],
        }
    }

    pub fn to(self) -> TaskStatus {
        match self {
            Transition::Start => TaskStatus::Processing,
            Transition::Finish => TaskStatus::Finish,
            Transition::Abort => TaskStatus::Aborted,
            Transition::Requeue | Transition::Redo => TaskStatus::Waiting,
        }
    }

    pub fn allowed_from(self, status: TaskStatus) -> bool {
        self.from().contains(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(TaskStatus::from_code(0), None);
    }

    #[test]
    fn terminal_tasks_only_leave_by_redo() {
        let all = [
            Transition::Start,
            Transition::Finish,
            Transition::Abort,
            Transition::Requeue,
            Transition::Redo,
        ];
        for t in all {
            let from_terminal =
                t.allowed_from(TaskStatus::Finish) || t.allowed_from(TaskStatus::Aborted);
            assert_eq!(from_terminal, t == Transition::Redo, "{t:?}");
        }
    }

    #[test]
    fn a_running_task_cannot_be_redone_or_started_again() {
        assert!(!Transition::Redo.allowed_from(TaskStatus::Processing));
        assert!(!Transition::Start.allowed_from(TaskStatus::Processing));
        assert!(Transition::Abort.allowed_from(TaskStatus::Processing));
    }
}
