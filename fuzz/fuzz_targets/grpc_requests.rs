//! Request decoding and validation of every unary RPC (and UploadMedia),
//! through the server's service stack in process.
//!
//! Input: the first byte picks the method (`METHODS[byte % len]`), the rest
//! is the protobuf request, sent as one gRPC frame. For UploadMedia the rest
//! is a list of frames, each `u16 big-endian length` + bytes.
//!
//! Placeholder ids in the input (`vodtask_fuzz::FILE_A` etc., used by the
//! seeds) are replaced by ids of this process's engine first, so that seeds
//! reach past "not found".
//!
//! Checked: no panic anywhere (libfuzzer-sys aborts on a panic in any
//! thread); every answer carries a grpc-status within 0..=16; an OK answer
//! decodes as the method's response message; with VODTASK_FUZZ_STRICT=1,
//! no INTERNAL or UNKNOWN answer (see `vodtask_fuzz::strict`).
//!
//! Two rewrites keep an input from doing slow or outside work, both by
//! appending a field to the raw bytes (the last occurrence of a protobuf
//! field wins), so the raw decoding is still what the server sees:
//! PullEvents' wait is forced to 0 s (its default is 5 s), and a
//! ModifyEventConfig notification_url that could reach a real host is
//! replaced by a documentation address the outbound policy refuses, so that
//! PUSH mode never makes a network connection.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vodtask_core::outbound::AddressPolicy;
use vodtask_fuzz::{METHODS, MODIFY_EVENT_CONFIG, PULL_EVENTS, UPLOAD_MEDIA, code, harness};
use vodtask_proto::v1 as pb;

/// Refused by the default outbound policy (TEST-NET-1, documentation).
const SAFE_URL: &str = "http://192.0.2.1/fuzz";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let index = usize::from(selector) % METHODS.len();
    let path = METHODS[index];
    let h = harness();
    static SAFE: std::sync::Once = std::sync::Once::new();
    SAFE.call_once(|| assert!(!could_connect(SAFE_URL), "{SAFE_URL} must be refused"));
    let mut rest = rest.to_vec();
    h.substitute(&mut rest);
    let frames = if path == UPLOAD_MEDIA {
        split_frames(&rest)
    } else if path == PULL_EVENTS {
        vec![no_wait(&rest)]
    } else if path == MODIFY_EVENT_CONFIG {
        vec![no_outbound(&rest)]
    } else {
        vec![rest]
    };
    let reply = h.call(path, &frames);
    assert!(
        (0..=16).contains(&reply.code),
        "{path}: grpc-status {} is not a gRPC code",
        reply.code
    );
    if reply.code == code::OK {
        let body = reply.body.clone().unwrap_or_default();
        if let Err(e) = decode_response(index, body) {
            panic!("{path}: the OK answer does not decode: {e}");
        }
    }
});

/// UploadMedia: up to 8 frames of `u16 BE length` + bytes.
fn split_frames(mut rest: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while rest.len() >= 2 && frames.len() < 8 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        frames.push(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    frames
}

/// PullEvents with a wait of 0 s whenever the request would wait (unset
/// means 5 s); out-of-range waits are left for the server to refuse.
fn no_wait(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    if let Ok(r) = pb::PullEventsRequest::decode(raw)
        && r.wait_seconds.is_none_or(|w| (1..=20).contains(&w))
    {
        // Field 2 (wait_seconds), varint 0.
        out.extend_from_slice(&[0x10, 0x00]);
    }
    out
}

/// ModifyEventConfig without a notification_url that could reach a real
/// host (a name, or an address the default policy permits).
fn no_outbound(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    if let Ok(r) = pb::ModifyEventConfigRequest::decode(raw)
        && let Some(u) = r.notification_url
        && could_connect(&u)
    {
        // Field 2 (notification_url), length-delimited.
        out.push(0x12);
        out.push(SAFE_URL.len() as u8);
        out.extend_from_slice(SAFE_URL.as_bytes());
    }
    out
}

fn could_connect(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    match url.host() {
        None => false,
        Some(url::Host::Domain(_)) => true,
        Some(url::Host::Ipv4(ip)) => AddressPolicy::default().permits(ip.into()),
        Some(url::Host::Ipv6(ip)) => AddressPolicy::default().permits(ip.into()),
    }
}

fn decode_response(index: usize, body: bytes::Bytes) -> Result<(), prost::DecodeError> {
    fn d<M: Message + Default>(b: bytes::Bytes) -> Result<(), prost::DecodeError> {
        M::decode(b).map(drop)
    }
    match METHODS[index].rsplit('/').next().unwrap_or_default() {
        "CreateTask" => d::<pb::CreateTaskResponse>(body),
        "DescribeTask" | "RedoTask" | "CancelTask" => d::<pb::Task>(body),
        "ListTasks" => d::<pb::ListTasksResponse>(body),
        "GetTaskOverview" => d::<pb::GetTaskOverviewResponse>(body),
        "DescribeMedia" => d::<pb::MediaInfo>(body),
        "UploadMedia" => d::<pb::UploadMediaResponse>(body),
        "PullEvents" => d::<pb::PullEventsResponse>(body),
        "ConfirmEvents" | "ExtendEvents" | "NackEvents" => d::<pb::SettleEventsResponse>(body),
        "ListDeadLetterEvents" => d::<pb::ListDeadLetterEventsResponse>(body),
        "RedriveEvents" => d::<pb::RedriveEventsResponse>(body),
        "DescribeEventsState" => d::<pb::DescribeEventsStateResponse>(body),
        "GetEventConfig" | "ModifyEventConfig" => d::<pb::EventConfig>(body),
        "RotateSigningSecret" => d::<pb::RotateSigningSecretResponse>(body),
        "ListCallbackAttempts" => d::<pb::ListCallbackAttemptsResponse>(body),
        "ResendEvents" => d::<pb::ResendEventsResponse>(body),
        other => panic!("no response type for {other}"),
    }
}
