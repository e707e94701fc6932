//! The gRPC edge: vodtask.v1 services plus health and reflection.

mod auth;
mod convert;
mod events;
mod media;
mod status;
mod tasks;

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use vodtask_core::Engine;
use vodtask_proto::v1::event_service_server::EventServiceServer;
use vodtask_proto::v1::media_service_server::MediaServiceServer;
use vodtask_proto::v1::task_service_server::TaskServiceServer;

/// Largest accepted gRPC message (an upload chunk, mostly).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<TaskServiceServer<tasks::Tasks>>()
        .await;
    health_reporter
        .set_serving::<MediaServiceServer<media::Media>>()
        .await;
    health_reporter
        .set_serving::<EventServiceServer<events::Events>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vodtask_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vodtask_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let events = EventServiceServer::new(events::Events {
        engine: engine.clone(),
    });
    let tasks = TaskServiceServer::new(tasks::Tasks {
        engine: engine.clone(),
    });
    let media = MediaServiceServer::new(media::Media { engine })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);

    Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tasks)
        .add_service(media)
        .add_service(events)
        .serve_with_incoming_shutdown(
            // Small unary answers must not wait for Nagle's algorithm.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
