//! The HTTP edge: media files (GET and HEAD with Range, Content-Type by
//! extension) and a health check for load balancers.

use std::future::Future;
use std::path::Path;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

pub async fn serve(
    media_dir: &Path,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest_service("/files", ServeDir::new(media_dir));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
