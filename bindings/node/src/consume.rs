//! The JS handler of `Client.consume`, called and settled in batches.
//!
//! The client's `consume` (crates/vodtask-client) calls `Handler::handle` on
//! a tokio worker for every event. Here `handle` only queues the event; the
//! event that finds no call on its way makes one, after the tokio thread has
//! run whatever else was ready (one yield), so that the events that came in
//! with it join the call. When the JS thread runs it, it takes every event
//! queued by then: index.js starts their handlers fire-and-forget, each
//! with an id (`(ids, events) => void`). It settles each handler's outcome
//! itself and hands back the outcomes of one turn of the event loop in one
//! `settle` call. So one threadsafe-function call and one wake-up serve a
//! batch each way, and the acks share a ConfirmEvents (awaiting each
//! handler's Promise from Rust would cost two wake-ups of a tokio worker
//! per event).
//! `consume` itself (the concurrency limit, acking and nacking, keep-alives,
//! stopping) stays in the client.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use napi::bindgen_prelude::{JsValuesTupleIntoVec, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use tokio::sync::oneshot;
use vodtask_client::pb;

/// An event as index.js receives it from a consumer or a subscription: the
/// JS `Event` is this plus `data`, which index.js parses from
/// `content_json` with JSON.parse when first read. Built field by field
/// rather than through the generic JSON tree (lib.rs): this is the hot path
/// of consume (docs/benchmarks.md, consumers), and the envelope's text
/// would otherwise be copied into the tree and out again.
#[napi(object)]
pub struct RawEvent {
    /// The same on every redelivery: deduplicate by it.
    pub event_id: String,
    pub event_type: String,
    /// Empty for events not about a task (NewFileUpload).
    pub task_id: String,
    /// RFC 3339, as the JSON trees spell times.
    pub event_time: Option<String>,
    pub task_sequence: i64,
    /// The envelope as sent, byte-identical in every delivery path.
    pub content_json: String,
    pub delivery_count: i32,
}

pub fn raw_event(e: pb::Event) -> RawEvent {
    RawEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        task_id: e.task_id,
        event_time: e.event_time.map(|t| t.to_string()),
        task_sequence: e.task_sequence,
        content_json: e.content_json,
        delivery_count: e.delivery_count,
    }
}

/// What a handler's run comes to: `Err` (the error's text) nacks.
type Outcome = Result<(), String>;

/// `(ids, events) => void`, called on the JS thread with the events queued
/// so far; each outcome comes back through `Outcomes::settle` by its id.
pub type JsCall = ThreadsafeFunction<Batch, (), Batch, napi::Status, false>;

/// The handlers that were called and have not settled yet, and the events
/// waiting for the JS thread.
#[derive(Default)]
pub struct Outcomes {
    next_id: AtomicU32,
    pending: Mutex<HashMap<u32, oneshot::Sender<Outcome>>>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    events: Vec<(u32, RawEvent)>,
    /// A call is on its way to the JS thread and has not taken `events`
    /// yet, so the events queued meanwhile need no call of their own.
    call_on_its_way: bool,
}

/// One call's events, taken from the queue when the JS thread converts
/// them into the call's arguments.
pub struct Batch {
    outcomes: Arc<Outcomes>,
    taken: bool,
}

impl JsValuesTupleIntoVec for Batch {
    fn into_vec(mut self, env: sys::napi_env) -> napi::Result<Vec<sys::napi_value>> {
        self.taken = true;
        let events = self.outcomes.take_queued();
        let (ids, events): (Vec<u32>, Vec<RawEvent>) = events.into_iter().unzip();
        // napi-rs calls this on the JS thread, with its env.
        let env = Env::from_raw(env);
        let args = ids
            .clone()
            .into_unknown(&env)
            .and_then(|ids| Ok(vec![ids.raw(), events.into_unknown(&env)?.raw()]));
        if let Err(e) = &args {
            self.outcomes
                .fail(&ids, &format!("cannot hand the event to JS: {e}"));
        }
        args
    }
}

impl Drop for Batch {
    /// A call that could not be made (the function is closing) would leave
    /// the queued events waiting for ever, and keep every later event from
    /// making a call: fail them. A call that ran must not touch the queue:
    /// the events there are a later call's.
    fn drop(&mut self) {
        if !self.taken {
            let ids: Vec<u32> = self
                .outcomes
                .take_queued()
                .iter()
                .map(|(id, _)| *id)
                .collect();
            self.outcomes.fail(&ids, "the handler could not be called");
        }
    }
}

impl Outcomes {
    // Nothing panics while holding these locks; what they guard stays
    // consistent.
    fn pending(&self) -> MutexGuard<'_, HashMap<u32, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queued events, for the call that takes them.
    fn take_queued(&self) -> Vec<(u32, RawEvent)> {
        let mut queue = self.queue();
        queue.call_on_its_way = false;
        std::mem::take(&mut queue.events)
    }

    /// Settles the handlers `ids` as failed, for `reason`.
    fn fail(&self, ids: &[u32], reason: &str) {
        self.settle(ids, vec![Some(reason.to_string()); ids.len()]);
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
        let first = {
            let mut queue = self.outcomes.queue();
            queue.events.push((id, raw_event(event)));
            !std::mem::replace(&mut queue.call_on_its_way, true)
        };
        let call = first.then(|| Call {
            call: Arc::clone(&self.call),
            outcomes: Arc::clone(&self.outcomes),
        });
        Box::pin(async move {
            if let Some(call) = call {
                // The call waits until this thread has nothing else to run:
                // the events that arrived with this one (a read of the
                // stream holds several) join it, and the JS thread wakes
                // once for all of them.
                tokio::task::yield_now().await;
                drop(call);
            }
            outcome.await.unwrap_or_else(|_| {
                Err("the consumer was dropped before the handler settled".into())
            })
        })
    }
}

/// The threadsafe-function call that takes the queued events, made when
/// dropped: a handler future dropped before its deferred call (consume
/// stopping) still makes it, so the queued events are not stranded and
/// later events can make calls of their own.
struct Call {
    call: Arc<JsCall>,
    outcomes: Arc<Outcomes>,
}

impl Drop for Call {
    fn drop(&mut self) {
        let batch = Batch {
            outcomes: Arc::clone(&self.outcomes),
            taken: false,
        };
        // A call that cannot be made drops its batch, which fails the
        // queued events.
        let _ = self
            .call
            .call(batch, ThreadsafeFunctionCallMode::NonBlocking);
    }
}
