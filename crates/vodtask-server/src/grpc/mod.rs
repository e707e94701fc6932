//! The gRPC edge: vodtask.v1 services plus health and reflection.

mod auth;
mod convert;
mod events;
mod media;
mod request_errors;
mod status;
mod tasks;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use vodtask_core::Engine;
use vodtask_proto::v1::event_service_server::EventServiceServer;
use vodtask_proto::v1::media_service_server::MediaServiceServer;
use vodtask_proto::v1::task_service_server::TaskServiceServer;

/// Largest accepted UploadMedia message: a chunk of 16 MiB with the few
/// bytes of its field's framing. Other messages keep tonic's 4 MiB.
const MAX_UPLOAD_MESSAGE_BYTES: usize = (16 << 20) + 64;

/// How the gRPC port treats its connections.
#[derive(Debug, Clone)]
pub struct GrpcLimits {
    pub max_connections: usize,
    /// Closes connections that move no byte this long: a handshake never
    /// finished, a silent peer. Keepalive pings keep a healthy idle channel
    /// from reaching it.
    pub idle_timeout: Duration,
    /// How often an idle connection is pinged, and how long the answer may
    /// take before the connection is dropped as dead.
    pub keepalive: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(20),
        }
    }
}

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
        .max_decoding_message_size(MAX_UPLOAD_MESSAGE_BYTES);
    let routes = Routes::new(tasks).add_service(media).add_service(events);
    // tonic's own answers to requests it cannot read are restated the way
    // vodtask states its errors (request_errors.rs), in both modes.
    Routes::from(
        routes
            .into_axum_router()
            .layer(tower::util::MapResponseLayer::new(
                request_errors::restate::<axum::body::Body>,
            )),
    )
}

/// Serves the API on `listener`, in TLS when `tls` is given (HTTP/2 by
/// ALPN; the caller sets the protocols, see `vodtask_transport::ALPN_GRPC`).
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    limits: GrpcLimits,
    tls: Option<vodtask_transport::ServerTls>,
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
    // A failed engine (see Engine::failure) is reported before the process
    // exits, so that a load balancer stops sending calls at once.
    let failed = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine.failed().await;
            health_reporter
                .set_not_serving::<TaskServiceServer<tasks::Tasks>>()
                .await;
            health_reporter
                .set_not_serving::<MediaServiceServer<media::Media>>()
                .await;
            health_reporter
                .set_not_serving::<EventServiceServer<events::Events>>()
                .await;
            health_reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vodtask_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vodtask_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let admission = vodtask_transport::Admission {
        max_connections: limits.max_connections,
        idle_timeout: limits.idle_timeout,
        // Before its handshake an HTTP/2 client reads no answer: it is
        // simply closed.
        refusal: b"",
    };
    let served = Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive))
        .add_routes(routes(engine))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            vodtask_transport::incoming(listener, admission, tls),
            shutdown,
        )
        .await;
    failed.abort();
    served?;
    Ok(())
}
