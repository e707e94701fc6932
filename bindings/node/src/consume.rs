//! The JS handler of `Client.consume`, settled from JS in batches.
//!
//! The client's `consume` (crates/vodtask-client) calls `Handler::handle` on
//! a tokio worker for every event. Awaiting the handler's Promise from Rust
//! costs two hops back per event (the call's return value, then the
//! Promise's settling), each waking a tokio worker on its own, and the acks
//! then trickle into ConfirmEvents a few at a time. So the handler is called
//! fire-and-forget with an id, index.js settles its outcome and hands back
//! the outcomes of one turn of the event loop in one `settle` call: one
//! wake-up serves a batch, and their acks share a ConfirmEvents. `consume`
//! itself (the concurrency limit, acking and nacking, keep-alives, stopping)
//! stays in the client.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use tokio::sync::oneshot;
use vodtask_client::pb;

use crate::convert::{self, RawEvent};

/// What a handler's run comes to: `Err` (the error's text) nacks.
type Outcome = Result<(), String>;

/// `(id, event) => void`, called on the JS thread; the outcome comes back
/// through `Outcomes::settle` with the same id.
pub type JsCall =
    ThreadsafeFunction<FnArgs<(u32, RawEvent)>, (), FnArgs<(u32, RawEvent)>, napi::Status, false>;

/// The handlers that were called and have not settled yet.
#[derive(Default)]
pub struct Outcomes {
    next_id: AtomicU32,
    pending: Mutex<HashMap<u32, oneshot::Sender<Outcome>>>,
}

impl Outcomes {
    fn pending(&self) -> MutexGuard<'_, HashMap<u32, oneshot::Sender<Outcome>>> {
        // Nothing panics while holding the lock; the map stays consistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles the handlers `ids`; `reasons[i]` is set where the i-th failed.
    /// Ids that are not pending (settled already) are ignored.
    pub fn settle(&self, ids: &[u32], reasons: Vec<Option<String>>) {
        let mut reasons = reasons.into_iter();
        let done: Vec<_> = {
            let mut pending = self.pending();
            ids.iter()
                .map(|id| (pending.remove(id), reasons.next().flatten()))
                .collect()
        };
        for (done, reason) in done {
            if let Some(done) = done {
                let _ = done.send(reason.map_or(Ok(()), Err));
            }
        }
    }
}

/// A JS handler as the client's Handler: returning (or resolving) acks,
/// throwing (or rejecting) nacks.
pub struct JsHandler {
    pub call: Arc<JsCall>,
    pub outcomes: Arc<Outcomes>,
}

impl vodtask_client::Handler for JsHandler {
    fn handle(&self, event: pb::Event) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        let (done, outcome) = oneshot::channel();
        // Ids wrap around; at most max_in_flight of them are pending.
        let id = self.outcomes.next_id.fetch_add(1, Ordering::Relaxed);
        self.outcomes.pending().insert(id, done);
        let status = self.call.call(
            (id, convert::raw_event(event)).into(),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
        if status != napi::Status::Ok {
            self.outcomes.pending().remove(&id);
            let reason = format!("cannot call the handler: {status}");
            return Box::pin(async move { Err(reason) });
        }
        Box::pin(async move {
            outcome.await.unwrap_or_else(|_| {
                Err("the consumer was dropped before the handler settled".into())
            })
        })
    }
}
