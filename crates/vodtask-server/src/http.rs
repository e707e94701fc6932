//! The HTTP edge: media files (GET and HEAD with Range, Content-Type by
//! extension) and a health check for load balancers.
//!
//! File URLs need no key and are opened by browsers, so no file may run
//! script there: every file answer says `nosniff` and carries a sandboxing
//! CSP, and a file whose type is not media (an uploaded `.html` or `.svg`)
//! is served as an `application/octet-stream` attachment.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use vodtask_transport::{Admission, HTTP_REFUSAL, ServerTls, connections};

/// How the HTTP port treats its connections.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// A request's headers must arrive within this (slowloris).
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the server is unhealthy, if it is (`/healthz` answers 503 then).
pub type HealthCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Serves files and `/healthz` on `listener`, in TLS when `tls` is given
/// (HTTP/1.1 and HTTP/2 either way; see `vodtask_transport::ALPN_HTTP`).
pub async fn serve(
    media_dir: &Path,
    listener: TcpListener,
    limits: HttpLimits,
    tls: Option<ServerTls>,
    health: HealthCheck,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(media_dir, health);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connections = connections(
        listener,
        Admission {
            max_connections: limits.max_connections,
            idle_timeout: limits.idle_timeout,
            // A TLS client could not read a plain-text 503: it is closed.
            refusal: if tls.is_some() { b"" } else { HTTP_REFUSAL },
        },
        tls,
    );
    futures::pin_mut!(connections, shutdown);
    let graceful = GracefulShutdown::new();
    loop {
        let conn = tokio::select! {
            conn = connections.next() => conn,
            () = &mut shutdown => break,
        };
        let Some(Ok(io)) = conn else { break };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

fn router(media_dir: &Path, health: HealthCheck) -> Router {
    let files = Router::new()
        .fallback_service(ServeDir::new(media_dir))
        .layer(middleware::from_fn(file_headers));
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let failure = health();
                async move {
                    match failure {
                        None => (StatusCode::OK, "ok\n".to_owned()).into_response(),
                        Some(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("failed: {reason}\n"),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .nest("/files", files)
}

/// The types a file may be served as inline: media, and bytes no browser
/// renders. Anything else is a download.
fn inline_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    (essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence.starts_with("image/"))
        && essence != "image/svg+xml"
        || matches!(
            essence,
            "application/vnd.apple.mpegurl" | "text/vtt" | "application/octet-stream"
        )
}

/// HLS types as players expect them (RFC 8216; the general MIME table says
/// `audio/x-mpegurl` and `video/vnd.dlna.mpeg-tts`), and the headers that
/// keep a file from running script in a browser.
async fn file_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let hls = if path.ends_with(".m3u8") {
        Some("application/vnd.apple.mpegurl")
    } else if path.ends_with(".ts") {
        Some("video/mp2t")
    } else {
        None
    };
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if let Some(kind) = hls
        && headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    let served_as = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !served_as.is_empty() && !inline_type(served_as) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_types_are_served_inline() {
        for inline in [
            "video/mp4",
            "video/mp2t",
            "application/vnd.apple.mpegurl",
            "image/jpeg",
            "text/vtt",
            "audio/mpeg",
        ] {
            assert!(inline_type(inline), "{inline}");
        }
        for download in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "application/javascript",
            "text/xml",
            "application/pdf",
        ] {
            assert!(!inline_type(download), "{download}");
        }
    }
}
