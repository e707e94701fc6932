//! Background work the engine cannot do without (the claim loop, upkeep,
//! callback workers, the store's writer). A panic in any of it would leave
//! a server that answers calls but never runs a task or sends a callback
//! again, while its health check still says SERVING. So such a panic marks
//! the engine failed: the server reports NOT_SERVING and exits non-zero for
//! its supervisor to restart it, and an embedded engine's caller can ask.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::error::panic_message;

#[derive(Clone)]
pub(crate) struct Vital {
    failure: Arc<watch::Sender<Option<String>>>,
}

impl Vital {
    pub(crate) fn new() -> Vital {
        Vital {
            failure: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Runs `work` on `tracker`; a panic in it fails the engine.
    pub(crate) fn spawn<F>(&self, tracker: &TaskTracker, name: &'static str, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let vital = self.clone();
        tracker.spawn(async move {
            if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
                let what = panic_message(panic.as_ref());
                vital.fail(format!("{name} panicked: {what}"));
            }
        });
    }

    /// Marks the engine failed; the first reason is kept.
    pub(crate) fn fail(&self, reason: String) {
        tracing::error!("vodtask cannot go on: {reason}");
        self.failure.send_if_modified(|f| {
            let first = f.is_none();
            if first {
                *f = Some(reason);
            }
            first
        });
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Resolves with the reason once the engine has failed.
    pub(crate) async fn failed(&self) -> String {
        let mut rx = self.failure.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|f| f.clone());
        match reason {
            Some(reason) => reason,
            // The sender lives as long as `self`: unreachable, but a
            // future that never resolves is the honest answer.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_vital_work_fails_the_engine_with_its_reason() {
        let vital = Vital::new();
        let tracker = TaskTracker::new();
        vital.spawn(&tracker, "ok work", async {});
        tracker.close();
        tracker.wait().await;
        assert_eq!(vital.failure(), None, "work that returns is no failure");

        let tracker = TaskTracker::new();
        vital.spawn(&tracker, "the claim loop", async { panic!("a bug") });
        let reason = tokio::time::timeout(std::time::Duration::from_secs(10), vital.failed())
            .await
            .expect("failed() resolves");
        assert_eq!(reason, "the claim loop panicked: a bug");
        vital.fail("a second reason".into());
        assert_eq!(
            vital.failure().as_deref(),
            Some("the claim loop panicked: a bug")
        );
    }
}
