//! vodtask's core: the offline media task model, the durable store, the
//! scheduler and the ffmpeg executors. It knows nothing of gRPC or of the
//! language bindings; those are edges that call [`Engine`].

pub mod admin;
pub mod app;
pub mod callbacks;
mod data_dir;
mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod ids;
pub mod limits;
pub mod media;
pub mod outbound;
mod queue;
pub mod store;
pub mod task;
pub mod time;
mod vital;

pub use callbacks::{CircuitState, EndpointHealth};
pub use engine::{
    DEFAULT_APP, Engine, EngineConfig, StreamItem, Subscription, TaskUpdate, WeakEngine, create_app,
};
pub use error::{Error, Result};
