//! The HTTP edge: media files (GET and HEAD with Range, Content-Type by
//! extension) and a health check for load balancers.

use std::future::Future;
use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

pub async fn serve(
    media_dir: &Path,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let files = Router::new()
        .fallback_service(ServeDir::new(media_dir))
        .layer(middleware::from_fn(streaming_types));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/files", files);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// HLS types as players expect them (RFC 8216); the general MIME table
/// says `audio/x-mpegurl` and `video/vnd.dlna.mpeg-tts`.
async fn streaming_types(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let hls = if path.ends_with(".m3u8") {
        Some("application/vnd.apple.mpegurl")
    } else if path.ends_with(".ts") {
        Some("video/mp2t")
    } else {
        None
    };
    let mut response = next.run(req).await;
    if let Some(kind) = hls
        && response.headers().contains_key(CONTENT_TYPE)
        && response.status().is_success()
    {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    response
}
