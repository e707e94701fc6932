//! The native module of the Python package `vodtask`: a thin pyo3 binding
//! over the Rust client (`crates/vodtask-client`). Messages cross as JSON
//! text in the proto's names (the client's `json` module converts them
//! through the proto descriptors); the package's Python code declares the
//! types and decodes them. Every call returns an awaitable
//! (pyo3-async-runtimes on a tokio runtime).

mod aio;
mod client;
mod consume;
mod errors;
mod events;

use pyo3::prelude::*;

#[pymodule]
fn _vodtask(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The runtime behind every awaitable: one tokio worker, where
    // pyo3-async-runtimes would start one per core. The work here is I/O
    // for one event loop; with two workers the one that finds nothing to do
    // parks and is woken again for nearly every event, and those context
    // switches cost more than the work. Set before the first call builds
    // the runtime.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(1).enable_all();
    pyo3_async_runtimes::tokio::init(runtime);
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(aio::_quiesce, m)?)?;
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    m.add_function(wrap_pyfunction!(client::open, m)?)?;
    m.add_function(wrap_pyfunction!(client::verify_webhook, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Subscription>()?;
    m.add_class::<client::TaskStateStream>()?;
    m.add_class::<client::StopToken>()?;
    m.add_class::<events::Event>()?;
    m.add_class::<events::Delivery>()?;
    m.add_class::<events::WebhookEvent>()?;
    Ok(())
}
