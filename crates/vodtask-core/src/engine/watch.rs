//! WatchTask: one task's state, sent again whenever it changes, until the
//! task ends. A waiter for one task needs no share of the app's event
//! queue (whose consumers compete: one of several copies of an app would
//! take another's completion event).
//!
//! Whatever changes a task (a claim, progress, a procedure's step, the end,
//! cancel, redo, recovery) bumps one counter; each watcher wakes on it,
//! reads its task and sends it if what a watcher sees has changed. A
//! quarter-second poll covers anything that changes a task without the
//! bump (another process sharing the store).

use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;

use super::Engine;
use crate::error::Result;
use crate::ids::{AppId, TaskId};
use crate::task::{Task, TaskStatus};

const POLL: Duration = Duration::from_millis(250);

/// The counter bumped by every change of any task.
pub(crate) struct TaskChanges(watch::Sender<u64>);

impl TaskChanges {
    pub(crate) fn new() -> TaskChanges {
        TaskChanges(watch::Sender::new(0))
    }

    pub(crate) fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One message of a watch.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    pub task: Task,
    /// The task ended (FINISH or ABORTED): the watch's last message.
    pub ended: bool,
}

/// What a watcher sees change; times and other fields follow these.
fn seen(t: &Task) -> impl PartialEq + use<> {
    let subtasks = match &t.output {
        Some(crate::task::TaskOutput::Procedure { subtasks }) => {
            subtasks.iter().map(|s| (s.status, s.progress)).collect()
        }
        _ => Vec::new(),
    };
    (
        t.status,
        t.progress,
        t.attempt,
        t.err_code,
        t.cancel_requested,
        subtasks,
    )
}

impl Engine {
    /// The task's state now, then at each change, ending with the state in
    /// which it ended. A task that has ended already yields that state alone.
    pub fn watch_task(
        &self,
        app: AppId,
        id: TaskId,
    ) -> impl Stream<Item = Result<TaskUpdate>> + Send + 'static {
        struct State {
            engine: Engine,
            app: AppId,
            id: TaskId,
            changes: watch::Receiver<u64>,
            last: Option<Task>,
            done: bool,
        }
        let state = State {
            changes: self.inner.task_changes.0.subscribe(),
            engine: self.clone(),
            app,
            id,
            last: None,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            loop {
                s.changes.borrow_and_update();
                let task = match s.engine.describe_task(s.app, &s.id).await {
                    Ok(task) => task,
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                };
                let ended = matches!(task.status, TaskStatus::Finish | TaskStatus::Aborted);
                let changed = s.last.as_ref().is_none_or(|l| seen(l) != seen(&task));
                if changed || ended {
                    s.done = ended;
                    s.last = Some(task.clone());
                    return Some((Ok(TaskUpdate { task, ended }), s));
                }
                tokio::select! {
                    _ = s.changes.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = s.engine.inner.closing.cancelled() => {
                        s.done = true;
                        return Some((Err(crate::Error::ShuttingDown), s));
                    }
                }
            }
        })
    }
}
