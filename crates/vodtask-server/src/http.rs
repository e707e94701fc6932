//! The HTTP edge: media files (GET and HEAD with Range, Content-Type by
//! extension) and a health check for load balancers. Files in a local
//! directory are served from it as they are; files in an object store are
//! streamed from it (Range passed through) or, with `--file-urls
//! presign`, redirected to a presigned URL, and only when their row exists.
//!
//! File URLs need no key and are opened by browsers, so no file may run
//! script there: every file answer says `nosniff` and carries a sandboxing
//! CSP, and a file whose type is not media (an uploaded `.html` or `.svg`)
//! is served as an `application/octet-stream` attachment.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION,
    RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
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
use vodtask_core::media::{Served, content_type};
use vodtask_core::{Engine, WeakEngine};
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
/// Holds the engine only weakly once started, so that it does not keep the
/// data dir's lock past the engine's own life.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    limits: HttpLimits,
    tls: Option<ServerTls>,
    health: HealthCheck,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(&engine, health);
    drop(engine);
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

fn router(engine: &Engine, health: HealthCheck) -> Router {
    let files = match engine.media_dir() {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir)),
        None => Router::new()
            .route("/{file_id}/{name}", get(from_storage))
            .with_state(engine.downgrade()),
    }
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

/// One object of an object store, as ServeDir would serve a file: 206 with
/// Content-Range for one satisfiable range, 416 for an unsatisfiable one,
/// the whole object otherwise (several ranges included).
async fn from_storage(
    State(engine): State<WeakEngine>,
    UrlPath((file_id, name)): UrlPath<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(engine) = engine.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let asked = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| http_range_header::parse_range_header(v).ok());
    let unsatisfiable = AtomicBool::new(false);
    let served = engine
        .serve_file(&file_id, &name, method == Method::HEAD, |size| {
            let asked = asked.as_ref()?;
            match asked.validate(size) {
                Ok(ranges) => match ranges.as_slice() {
                    [one] => Some(*one.start()..one.end() + 1),
                    _ => None,
                },
                Err(_) => {
                    unsatisfiable.store(true, Ordering::Relaxed);
                    None
                }
            }
        })
        .await;
    let body = match served {
        Ok(Served::Redirect(url)) => {
            return (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, url)]).into_response();
        }
        Ok(Served::Body(body)) => body,
        Err(vodtask_core::Error::NotFound(_)) => return StatusCode::NOT_FOUND.into_response(),
        Err(e @ vodtask_core::Error::Unavailable(_)) => {
            tracing::warn!("serving {file_id}/{name}: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Err(e) => {
            tracing::error!("serving {file_id}/{name}: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if unsatisfiable.load(Ordering::Relaxed) {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(CONTENT_RANGE, format!("bytes */{}", body.size))],
        )
            .into_response();
    }
    let partial = body.range.start > 0 || body.range.end < body.size;
    let mut response = Response::new(Body::from_stream(body.stream));
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type(&name)) {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        CONTENT_LENGTH,
        HeaderValue::from(body.range.end - body.range.start),
    );
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!(
            "bytes {}-{}/{}",
            body.range.start,
            body.range.end.saturating_sub(1),
            body.size
        );
        if let Ok(v) = HeaderValue::from_str(&range) {
            response.headers_mut().insert(CONTENT_RANGE, v);
        }
    }
    response
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

/// Every file answer's type by its name (`vodtask_core::media::content_type`,
/// which gives HLS the types players expect), and the headers that keep a
/// file from running script in a browser.
async fn file_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Dot-names are not media (a `file:///` storage keeps partial writes
    // in `.partial/`): never served.
    let dot_name = |segment: &str| {
        segment.starts_with('.')
            || segment
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("%2e"))
    };
    if path.split('/').any(dot_name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let by_name = HeaderValue::from_str(&content_type(path));
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if let Ok(kind) = by_name
        && headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, kind);
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
