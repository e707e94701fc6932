//! The Python handler of `Client.consume`, run on the event loop in batches.
//!
//! The client's `consume` (crates/vodtask-client) calls `Handler::handle` on
//! a tokio worker thread for every event. Calling the Python handler there
//! takes the GIL on that thread once per event, and handing its coroutine to
//! the event loop costs a `call_soon_threadsafe` (a self-pipe write and a
//! loop wake-up) per event. Under load the GIL then goes back and forth
//! between the tokio workers and the loop thread, and a worker that asks for
//! it while the loop runs Python code waits for the loop to let go, up to
//! the switch interval (5 ms). Only `concurrency` events are in flight, so
//! that per-event latency is what limits consume's rate.
//!
//! So `handle` only queues the event, and the event that finds no drain
//! pending wakes the loop by writing one byte into a socket whose other end
//! the loop watches (`add_reader`): no tokio thread takes the GIL. It wakes
//! it after the tokio thread has run whatever else was ready (one yield), so
//! that the events that came in with it join the drain. (A tokio worker
//! that asks for the GIL while the loop thread runs Python blocks, the
//! tasks behind it included, until the loop lets go; `call_soon_threadsafe`,
//! which needs the GIL, stays only for loops that cannot watch fds.) The loop's reader calls the handler for every event
//! queued by then and starts each coroutine as a task whose done callback
//! sends the outcome back through a oneshot channel; on 3.12+ the task starts
//! eagerly, and one that finishes at once sends it without a callback. Under
//! load, one wake-up of the loop serves a batch of events. `consume` itself
//! (the concurrency limit, acking and nacking, keep-alives, stopping) stays
//! in the client.

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::oneshot;
use vodtask_client::pb;

use crate::events::Event;

/// What a handler's run comes to: `Err` (the exception's text) nacks.
type Outcome = Result<(), String>;

/// A Python `async def handler(event)` as the client's Handler: returning
/// acks, raising nacks. It runs on the event loop that called `consume`, in
/// the context that was current then.
pub struct PyHandler {
    shared: Arc<Shared>,
    /// The fd of the socket the loop watches for wake-ups (`Shared::wake`);
    /// dropping the handler stops that.
    watched_fd: Option<RawFd>,
}

struct Shared {
    handler: Py<PyAny>,
    locals: TaskLocals,
    queue: Mutex<Queue>,
    /// One byte into this socket wakes the loop, which watches its other end
    /// (`add_reader`), without the GIL.
    wake: Option<UnixStream>,
    /// Set once the loop watches the other end; until then (for ever on a
    /// loop that cannot watch fds, like the Windows proactor loop) the loop
    /// is woken with `call_soon_threadsafe`.
    watched: AtomicBool,
}

#[derive(Default)]
struct Queue {
    events: Vec<(pb::Event, oneshot::Sender<Outcome>)>,
    /// A drain is scheduled on the loop and has not taken `events` yet, so
    /// the events queued meanwhile need no wake-up of their own.
    drain_scheduled: bool,
}

impl PyHandler {
    /// Called on the loop's thread (by `Client.consume`).
    pub fn new(py: Python<'_>, handler: Py<PyAny>, locals: TaskLocals) -> PyResult<Self> {
        let sockets = UnixStream::pair().ok().filter(|(watched, wake)| {
            watched.set_nonblocking(true).is_ok() && wake.set_nonblocking(true).is_ok()
        });
        let (watched, wake) = sockets.unzip();
        let shared = Arc::new(Shared {
            handler,
            locals,
            queue: Mutex::new(Queue::default()),
            wake,
            watched: AtomicBool::new(false),
        });
        let mut watched_fd = None;
        if let Some(socket) = watched {
            let fd = socket.as_raw_fd();
            let reader = Reader {
                shared: Arc::clone(&shared),
                socket,
            };
            let added = shared
                .locals
                .event_loop(py)
                .call_method1(intern!(py, "add_reader"), (fd, Py::new(py, reader)?));
            if added.is_ok() {
                shared.watched.store(true, Ordering::Release);
                watched_fd = Some(fd);
            }
        }
        Ok(PyHandler { shared, watched_fd })
    }
}

impl Drop for PyHandler {
    /// `consume` has ended: the loop stops watching the socket, which its
    /// reader closes as it goes.
    fn drop(&mut self) {
        let Some(fd) = self.watched_fd else { return };
        Python::attach(|py| {
            let event_loop = self.shared.locals.event_loop(py);
            // A closed loop dropped its readers already.
            let _ = event_loop
                .getattr(intern!(py, "remove_reader"))
                .and_then(|remove| {
                    event_loop.call_method1(intern!(py, "call_soon_threadsafe"), (remove, fd))
                });
        });
    }
}

impl vodtask_client::Handler for PyHandler {
    fn handle(&self, event: pb::Event) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        let (done, outcome) = oneshot::channel();
        let first = {
            let mut queue = self.shared.queue();
            queue.events.push((event, done));
            !std::mem::replace(&mut queue.drain_scheduled, true)
        };
        let wake = first.then(|| WakeLoop(Arc::clone(&self.shared)));
        Box::pin(async move {
            if let Some(wake) = wake {
                // The wake-up waits until this thread has nothing else to
                // run: the events that arrived with this one (a read of the
                // stream holds several) join the drain, and the loop wakes
                // once for all of them.
                tokio::task::yield_now().await;
                drop(wake);
            }
            outcome.await.unwrap_or_else(|_| {
                Err("the event loop that called consume stopped before running the handler".into())
            })
        })
    }
}

/// Wakes the loop to drain the queue when dropped: a handler future dropped
/// before its deferred wake-up (consume stopping) still wakes it, so the
/// queued events are not stranded and later events can wake it again.
struct WakeLoop(Arc<Shared>);

impl Drop for WakeLoop {
    fn drop(&mut self) {
        self.0.wake_loop();
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; if something did, the
        // queue itself is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_loop(self: &Arc<Self>) {
        match &self.wake {
            Some(socket) if self.watched.load(Ordering::Acquire) => {
                // The reader gone (the loop closed): nothing will drain.
                if let Err(e) = (&*socket).write(&[1])
                    && e.kind() != ErrorKind::WouldBlock
                {
                    self.fail_queued("the event loop that called consume is closed");
                }
            }
            _ => Shared::schedule_drain(self),
        }
    }

    /// On the loop thread: starts the handlers of the events queued so far.
    fn drain(&self, py: Python<'_>) {
        let events = {
            let mut queue = self.queue();
            queue.drain_scheduled = false;
            std::mem::take(&mut queue.events)
        };
        for (event, done) in events {
            self.start(py, event, done);
        }
    }

    /// Hands the loop a `Drain`, in the context `consume` was called in (as
    /// `asyncio.create_task` would). If the loop is closed, the drain is
    /// dropped unrun and fails the queued events (`Drain`'s `Drop`).
    fn schedule_drain(shared: &Arc<Shared>) {
        Python::attach(|py| {
            let scheduled = (|| -> PyResult<()> {
                let kwargs = PyDict::new(py);
                kwargs.set_item(intern!(py, "context"), shared.locals.context(py))?;
                let drain = Drain {
                    shared: Arc::clone(shared),
                    ran: false,
                };
                shared.locals.event_loop(py).call_method(
                    intern!(py, "call_soon_threadsafe"),
                    (drain,),
                    Some(&kwargs),
                )?;
                Ok(())
            })();
            if let Err(e) = scheduled {
                // Whatever the Drop of the unrun drain left (events queued
                // since) goes the same way; each later event tries anew.
                shared.fail_queued(&format!("cannot reach the event loop: {e}"));
            }
        });
    }

    fn fail_queued(&self, reason: &str) {
        let events = {
            let mut queue = self.queue();
            queue.drain_scheduled = false;
            std::mem::take(&mut queue.events)
        };
        for (_, done) in events {
            let _ = done.send(Err(reason.to_string()));
        }
    }

    /// On the loop thread: calls the handler and starts its coroutine as a
    /// task that settles `done` when it ends.
    fn start(&self, py: Python<'_>, event: pb::Event, done: oneshot::Sender<Outcome>) {
        let task = match self.call(py, event) {
            Ok(Some(task)) => task,
            // Not awaitable, or a task that finished in its first step.
            Ok(None) => {
                let _ = done.send(Ok(()));
                return;
            }
            Err(e) => {
                let _ = done.send(Err(e.to_string()));
                return;
            }
        };
        let settle = match Py::new(py, Settle { done: Some(done) }) {
            Ok(settle) => settle,
            // `done` went down with the Settle: the receiving side reports it.
            Err(_) => return,
        };
        if let Err(e) = task.call_method1(intern!(py, "add_done_callback"), (settle.clone_ref(py),))
            && let Some(done) = settle
                .try_borrow_mut(py)
                .ok()
                .and_then(|mut s| s.done.take())
        {
            let _ = done.send(Err(e.to_string()));
        }
    }

    /// Calls the handler and starts its coroutine: None when the handler is
    /// done already, else the task to wait for. Raises what the handler
    /// raised if it failed at once.
    fn call<'py>(&self, py: Python<'py>, event: pb::Event) -> PyResult<Option<Bound<'py, PyAny>>> {
        static ENSURE_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static IS_COROUTINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let result = self.handler.bind(py).call1((Event::new(event),))?;
        if !result.hasattr(intern!(py, "__await__"))? {
            return Ok(None);
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "loop"), self.locals.event_loop(py))?;
        // 3.12+: the task's first step runs now, as eager tasks do, inside
        // the task (current_task(), timeouts and task groups work). A
        // handler that finishes without suspending costs no loop turn and
        // no done callback.
        static EAGER_TASKS: OnceLock<bool> = OnceLock::new();
        let eager = *EAGER_TASKS.get_or_init(|| py.version_info() >= (3, 12))
            && IS_COROUTINE
                .import(py, "asyncio", "iscoroutine")?
                .call1((&result,))?
                .is_truthy()?;
        let task = if eager {
            kwargs.set_item(intern!(py, "eager_start"), true)?;
            TASK.import(py, "asyncio", "Task")?
                .call((result,), Some(&kwargs))?
        } else {
            ENSURE_FUTURE
                .import(py, "asyncio", "ensure_future")?
                .call((result,), Some(&kwargs))?
        };
        if task.call_method0(intern!(py, "done"))?.is_truthy()? {
            task.call_method0(intern!(py, "result"))?;
            return Ok(None);
        }
        Ok(Some(task))
    }
}

/// Starts the handlers of the events queued so far; scheduled by the event
/// that found none pending.
#[pyclass]
struct Drain {
    shared: Arc<Shared>,
    ran: bool,
}

#[pymethods]
impl Drain {
    fn __call__(&mut self, py: Python<'_>) {
        self.ran = true;
        self.shared.drain(py);
    }
}

/// The loop's reader of the wake-up socket: empties it, then drains. It
/// runs in the context that was current when `consume` was called (the
/// loop copied it at `add_reader`).
#[pyclass]
struct Reader {
    shared: Arc<Shared>,
    socket: UnixStream,
}

#[pymethods]
impl Reader {
    fn __call__(&mut self, py: Python<'_>) {
        // Emptied before the queue is taken: a wake-up written after this
        // read finds its event in this drain or makes the loop call again.
        let mut bytes = [0u8; 64];
        while matches!((&self.socket).read(&mut bytes), Ok(n) if n > 0) {}
        self.shared.drain(py);
    }
}

impl Drop for Drain {
    /// A drain the loop dropped unrun (the loop was closed) would leave the
    /// queued events waiting for ever, and keep every later event from
    /// scheduling another: fail them. A drain that ran must not touch the
    /// queue: the events there are a later drain's.
    fn drop(&mut self) {
        if !self.ran {
            self.shared
                .fail_queued("the event loop that called consume is closed");
        }
    }
}

/// A task's done callback: the handler's outcome, for the client to ack or
/// nack.
#[pyclass]
struct Settle {
    done: Option<oneshot::Sender<Outcome>>,
}

#[pymethods]
impl Settle {
    fn __call__(&mut self, task: &Bound<'_, PyAny>) {
        let outcome = task
            .call_method0(intern!(task.py(), "result"))
            .map(drop)
            .map_err(|e| e.to_string());
        if let Some(done) = self.done.take() {
            let _ = done.send(outcome);
        }
    }
}
