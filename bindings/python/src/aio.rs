//! Rust futures as Python awaitables, and a clean interpreter exit.
//!
//! pyo3-async-runtimes completes an awaitable from a tokio thread: it takes
//! the GIL, schedules the result on the event loop, and drops its
//! temporaries. If the program ends right after awaiting (the loop sees the
//! result while that thread still waits to take the GIL back), the
//! interpreter finalizes under it, the thread is made to exit, and the
//! process crashes (SIGSEGV). So every awaitable is counted while its Rust
//! future runs, and an `atexit` hook (`_quiesce`, registered by
//! `vodtask/__init__.py`) releases the GIL until none is left, then a moment
//! more, so that those threads finish first.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Counted {
    fn new() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `future_into_py`, counted.
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let counted = Counted::new();
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let _counted = counted;
        fut.await
    })
}

/// Waits (without the GIL, at most 2 s) until no awaitable's future runs,
/// then lets the threads that deliver their results finish.
#[pyfunction]
pub fn _quiesce(py: Python<'_>) {
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while RUNNING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
    });
}
