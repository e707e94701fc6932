//! The event queue as the tests drive it: pull, confirm, a stream's next
//! delivery, and uploads that each commit one NewFileUpload event.

use std::path::Path;

use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::event_service_client::EventServiceClient;
use vodtask_proto::v1::media_service_client::MediaServiceClient;

use crate::{Auth, DEADLINE, upload};

pub type Events = EventServiceClient<InterceptedService<Channel, Auth>>;
pub type Stream = tonic::Streaming<pb::SubscribeEventsResponse>;

pub async fn pull(events: &mut Events, max: i32, wait: i32) -> Vec<pb::EventDelivery> {
    events
        .pull_events(pb::PullEventsRequest {
            max_events: max,
            wait_seconds: Some(wait),
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

/// The status of each handle.
pub async fn confirm(events: &mut Events, handles: &[String]) -> Vec<i32> {
    events
        .confirm_events(pb::ConfirmEventsRequest {
            msg_handles: handles.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// The stream's next delivery, heartbeats skipped; panics after `DEADLINE`.
pub async fn next_delivery(stream: &mut Stream) -> pb::EventDelivery {
    loop {
        let item = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("a delivery in time")
            .unwrap()
            .unwrap()
            .item
            .unwrap();
        if let pb::subscribe_events_response::Item::Delivery(d) = item {
            return d;
        }
    }
}

/// Uploads `n` tiny files (made in `dir`); each commits one NewFileUpload
/// event. Returns their file ids.
pub async fn upload_blobs(
    media: &mut MediaServiceClient<InterceptedService<Channel, Auth>>,
    dir: &Path,
    n: usize,
) -> Vec<String> {
    let file = dir.join("blob.bin");
    std::fs::write(&file, b"not media, but a file").unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(upload(media, &file, &format!("f{i}.bin")).await.unwrap().0);
    }
    ids
}
