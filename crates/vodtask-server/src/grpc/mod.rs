//! The gRPC edge: vodtask.v1 services plus health and reflection.

mod auth;
mod convert;
mod events;
mod media;
mod status;
mod tasks;

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use vodtask_core::Engine;
use vodtask_proto::v1::event_service_server::EventServiceServer;
use vodtask_proto::v1::media_service_server::MediaServiceServer;
use vodtask_proto::v1::task_service_server::TaskServiceServer;

/// Largest accepted gRPC message (an upload chunk, mostly).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The vodtask.v1 services over `engine`: what the server serves on its
/// port, and what an embedded client calls in process.
pub fn routes(engine: Engine) -> Routes {
    let events = EventServiceServer::new(events::Events {
        engine: engine.clone(),
    });
    let tasks = TaskServiceServer::new(tasks::Tasks {
        engine: engine.clone(),
    });
    let media = MediaServiceServer::new(media::Media { engine })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    Routes::new(tasks).add_service(media).add_service(events)
}

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

    Server::builder()
        .add_routes(routes(engine))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(vodtask_transport::incoming(listener), shutdown)
        .await?;
    Ok(())
}
