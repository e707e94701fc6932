//! The two ways to reach vodtask behind one tower service: a gRPC channel
//! to a server, or the server's own service stack called in process
//! (`vodtask_server::grpc::routes`), so that both modes run the same
//! validation, the same code and the same errors.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tonic::body::Body;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::{Interceptor, Routes};
use tonic::transport::Channel;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub enum Transport {
    Remote(Channel),
    Embedded(Routes),
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Remote(c) => c.poll_ready(cx).map_err(Into::into),
            Transport::Embedded(r) => {
                Service::<http::Request<Body>>::poll_ready(r, cx).map_err(Into::into)
            }
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(c) => c.call(req).map(|r| r.map_err(Into::into)).boxed(),
            Transport::Embedded(r) => r.call(req).map(|r| r.map_err(Into::into)).boxed(),
        }
    }
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Auth(pub(crate) MetadataValue<Ascii>);

impl Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}
