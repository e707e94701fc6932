//! Any unary RPC of the contract by name, with JSON trees for the request
//! and the response: one generic call serves every binding's methods.

use prost::Message;
use prost::bytes::Buf;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use serde_json::Value;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::{FieldNames, pool, tree};
use crate::client::Client;
use crate::error::{Error, Result};

impl Client {
    /// Calls the unary RPC `method` ("DescribeTask", "ListDeadLetterEvents",
    /// ...) with `request` and returns its response, both as JSON trees
    /// spelled as `names` says (see [`crate::json`]). The streaming RPCs have
    /// their own methods: `upload_file`, `subscribe`/`consume`, `watch_task`.
    pub async fn call_json(
        &self,
        method: &str,
        request: &Value,
        names: FieldNames,
    ) -> Result<Value> {
        let method_desc = find_method(method)?;
        let message = tree::message_from_json(method_desc.input(), request, names)?;
        let path = format!(
            "/{}/{}",
            method_desc.parent_service().full_name(),
            method_desc.name()
        )
        .parse()
        .map_err(|_| Error::InvalidInput(format!("method: {method:?} is not a valid path")))?;
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let codec = DynamicCodec {
            output: method_desc.output(),
        };
        let response = grpc
            .unary(tonic::Request::new(message), path, codec)
            .await?;
        Ok(tree::message_to_json(response.get_ref(), names))
    }
}

fn find_method(name: &str) -> Result<MethodDescriptor> {
    let found = pool()
        .services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .find(|m| m.name() == name);
    match found {
        Some(m) if m.is_client_streaming() || m.is_server_streaming() => Err(Error::InvalidInput(
            format!("method: {name} streams; the client has its own call for it"),
        )),
        Some(m) => Ok(m),
        None => Err(Error::InvalidInput(format!(
            "method: {name:?} is not an RPC of the vodtask contract"
        ))),
    }
}

/// Encodes and decodes `DynamicMessage`s, which, unlike generated messages,
/// need their descriptor to decode.
struct DynamicCodec {
    output: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.output.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        DynamicMessage::decode(self.0.clone(), bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))
    }
}
