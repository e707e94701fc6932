//! Following one task (WatchTask) until it ends, across broken streams: a
//! reconnect calls WatchTask again, which starts from the task's current
//! state, and a state already passed on is not passed on twice.

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vodtask_proto::v1 as pb;

use crate::client::Client;
use crate::consumer::{FIRST_RETRY, LAST_RETRY, transient};
use crate::error::{Error, Result};

/// The states of one task, ending with the state it ended in; from
/// [`Client::watch_task`].
pub struct TaskWatch {
    rx: mpsc::Receiver<Result<TaskState>>,
    stop: CancellationToken,
}

/// One state of a watched task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub task: pb::Task,
    /// The last state: the task ended (FINISH or ABORTED).
    pub ended: bool,
}

impl TaskWatch {
    pub(crate) fn start(client: Client, task_id: String) -> TaskWatch {
        let (tx, rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        tokio::spawn(follow(client, task_id, tx, stop.clone()));
        TaskWatch { rx, stop }
    }

    /// The next state; None after the last one (or after an error).
    pub async fn next(&mut self) -> Option<Result<TaskState>> {
        self.rx.recv().await
    }

    /// Stops following the task.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

impl Drop for TaskWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn follow(
    client: Client,
    task_id: String,
    tx: mpsc::Sender<Result<TaskState>>,
    stop: CancellationToken,
) {
    let mut last: Option<pb::Task> = None;
    let mut retry = FIRST_RETRY;
    loop {
        let request = pb::WatchTaskRequest {
            task_id: task_id.clone(),
        };
        let mut tasks = client.tasks.clone();
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = tasks.watch_task(request) => opened,
        };
        let failure = match opened {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        m = stream.message() => m,
                    };
                    match message {
                        Ok(Some(pb::WatchTaskResponse {
                            task: Some(task),
                            ended,
                        })) => {
                            retry = FIRST_RETRY;
                            if last.as_ref() == Some(&task) && !ended {
                                continue;
                            }
                            last = Some(task.clone());
                            if tx.send(Ok(TaskState { task, ended })).await.is_err() || ended {
                                return;
                            }
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        match failure {
            Some(status) if !transient(status.code()) => {
                let _ = tx.send(Err(status.into())).await;
                return;
            }
            Some(status) => tracing::warn!("task watch broke: {status}; reconnecting"),
            None => tracing::warn!("task watch ended before the task did; reconnecting"),
        }
        let jitter = rand::rng().random_range(0.5..1.5);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry.mul_f64(jitter)) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

impl Client {
    /// Follows one task: its state now, then each change of status,
    /// progress or subtasks, ending with the state in which it ended.
    /// Reconnects by itself after a broken stream.
    pub fn watch_task(&self, task_id: &str) -> TaskWatch {
        TaskWatch::start(self.clone(), task_id.to_string())
    }

    /// Waits until the task ends (FINISH or ABORTED) and returns it, as it
    /// ended. Whether it succeeded is its `err_code`. Other consumers of the
    /// app's events are not affected: nothing is taken from the queue.
    pub async fn wait_task(&self, task_id: &str) -> Result<pb::Task> {
        let mut watch = self.watch_task(task_id);
        while let Some(state) = watch.next().await {
            let state = state?;
            if state.ended {
                return Ok(state.task);
            }
        }
        Err(Error::Transport(format!(
            "the watch of task {task_id} ended before the task did"
        )))
    }
}
