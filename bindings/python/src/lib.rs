//! The Python package `vodtask`: a thin pyo3 binding over the Rust client
//! (`crates/vodtask-client`). It converts values between the languages and
//! nothing else; every rule lives in the client and the server. Every call
//! returns an awaitable (pyo3-async-runtimes on a tokio runtime).

mod aio;
mod client;
mod consume;
mod convert;
mod errors;
mod specs;
mod types;

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
    m.add_function(wrap_pyfunction!(specs::transcode, m)?)?;
    m.add_function(wrap_pyfunction!(specs::snapshot_by_time_offset, m)?)?;
    m.add_function(wrap_pyfunction!(specs::concat, m)?)?;
    m.add_function(wrap_pyfunction!(specs::clip, m)?)?;
    m.add_function(wrap_pyfunction!(specs::image_sprites, m)?)?;
    m.add_function(wrap_pyfunction!(specs::pull_upload, m)?)?;
    m.add_function(wrap_pyfunction!(specs::delete_media, m)?)?;
    m.add_function(wrap_pyfunction!(specs::procedure, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Subscription>()?;
    m.add_class::<client::TaskWatch>()?;
    m.add_class::<client::TaskIterator>()?;
    m.add_class::<client::StopToken>()?;
    m.add_class::<types::TaskStatus>()?;
    m.add_class::<types::TaskType>()?;
    m.add_class::<types::TaskSpec>()?;
    m.add_class::<types::Task>()?;
    m.add_class::<types::UploadResult>()?;
    m.add_class::<types::MediaInfo>()?;
    m.add_class::<types::Event>()?;
    m.add_class::<types::Delivery>()?;
    m.add_class::<types::WebhookEvent>()?;
    m.add_class::<types::EventConfig>()?;
    m.add_class::<types::EventsState>()?;
    m.add_class::<types::TaskOverview>()?;
    Ok(())
}
