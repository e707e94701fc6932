//! Messages of the contract as JSON trees, for the Python and Node packages:
//! the proto descriptors drive the conversion both ways, so a new field
//! needs no code here or in the bindings' Rust.
//!
//! The mapping is proto3's JSON mapping with three changes that suit a
//! language binding better than a wire format: enums by their short name
//! (`FINISH`, not `TASK_STATUS_FINISH`), 64-bit integers as numbers, and
//! every field present in output (unset messages and unset `optional`
//! scalars as null; of a oneof only its set member). Timestamps are RFC 3339
//! strings in UTC. Input takes either spelling of a name, an enum by short
//! name, full name or number, and a time as RFC 3339 or epoch seconds; an
//! error names the field's path (`spec.transcode.file_id: expected a
//! string, got number`).

mod call;
mod tree;

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

use crate::error::{Error, Result};

/// How a JSON tree spells field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNames {
    /// The proto's own names, snake_case (`task_id`): Python.
    Proto,
    /// The proto JSON names, lowerCamelCase (`taskId`): JavaScript.
    Json,
}

/// A message as a JSON tree.
pub fn to_json<M: prost::Message + prost::Name>(message: &M, names: FieldNames) -> Value {
    let dynamic = descriptor(&M::full_name())
        .and_then(|desc| {
            DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
                .map_err(|e| Error::InvalidInput(format!("{}: {e}", M::full_name())))
        })
        .expect("a generated message decodes with its own descriptor");
    tree::message_to_json(&dynamic, names)
}

/// A JSON tree as a message; the error names the first field that does not fit.
pub fn from_json<M: prost::Message + prost::Name + Default>(
    value: &Value,
    names: FieldNames,
) -> Result<M> {
    let dynamic = tree::message_from_json(descriptor(&M::full_name())?, value, names)?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", M::full_name())))
}

/// The contract's descriptors, decoded once.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(vodtask_proto::FILE_DESCRIPTOR_SET)
            .expect("vodtask-proto embeds a valid descriptor set")
    })
}

fn descriptor(full_name: &str) -> Result<MessageDescriptor> {
    pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| Error::InvalidInput(format!("{full_name}: not a message of the contract")))
}

#[cfg(test)]
mod tests;
