//! A real HTTP origin for pull tests: serves given files, a 404, a server
//! that trickles one byte a second, and a redirect.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::IntervalStream;

pub struct Origin {
    pub addr: std::net::SocketAddr,
}

impl Origin {
    /// Serves `files` at `/files/<name>`; `/missing` answers 404, `/slow`
    /// sends headers and then one byte a second, `/redirect/<name>` answers
    /// 302 to `/files/<name>`.
    pub async fn start(files: HashMap<String, Vec<u8>>) -> Origin {
        let app = Router::new()
            .route("/files/{name}", get(file))
            .route("/redirect/{name}", get(redirect))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .route("/slow", get(slow))
            .with_state(Arc::new(files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Origin { addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn file(
    State(files): State<Arc<HashMap<String, Vec<u8>>>>,
    Path(name): Path<String>,
) -> Response {
    match files.get(&name) {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "video/mp4")],
            Bytes::from(bytes.clone()),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(Path(name): Path<String>) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/files/{name}"))],
    )
        .into_response()
}

async fn slow() -> Response {
    let ticks = IntervalStream::new(tokio::time::interval(Duration::from_secs(1)))
        .map(|_| Ok::<_, Infallible>(Bytes::from_static(b"x")));
    (
        [(header::CONTENT_LENGTH, "1000000")],
        Body::from_stream(ticks),
    )
        .into_response()
}
