//! Where media bytes live. Every byte of every media file (uploads, pulled
//! sources, task outputs with their HLS segments and sprite images) goes
//! through here, keyed `<file_id>/<name>`; nothing else in vodtask opens,
//! renames or removes a media file. The library above it decides what a
//! file is (its id, its name, its size and MD5, its probe); the storage
//! only keeps bytes.
//!
//! One backend today, a local directory (`local.rs`); an object store
//! (S3-compatible) comes next and will share this vocabulary: a streamed
//! write that is invisible until finished, the adoption of a task's
//! finished local outputs, where ffmpeg reads an object, and the removal of
//! a file's every object.

mod local;

pub use local::{LocalStorage, LocalWriter};
