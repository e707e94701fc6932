//! What every benchmark stands on: starting vodtask and its clients
//! (`server`), timing (`measure`, `cpu`), printing (`report`), and filling
//! and draining vodtask's event queue (`queue`).

pub mod cpu;
pub mod measure;
pub mod queue;
pub mod report;
pub mod server;
