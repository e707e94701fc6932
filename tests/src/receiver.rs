//! A real HTTP receiver for callback tests: answers each request as scripted
//! and records what it got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// 302 to another path of this receiver (which a callback must not follow).
    Redirect,
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn envelope(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

struct Inner {
    script: Mutex<VecDeque<Reply>>,
    then: Reply,
    log: Mutex<Vec<Received>>,
    /// Requests being answered now, and the most there ever were.
    in_flight: Mutex<(usize, usize)>,
}

/// Counts a request as in flight until dropped (a hanging request is
/// dropped when the caller gives up and closes the connection).
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: &Arc<Inner>) -> InFlight {
        let mut n = inner.in_flight.lock().expect("in flight");
        n.0 += 1;
        n.1 = n.1.max(n.0);
        InFlight(Arc::clone(inner))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.in_flight.lock() {
            n.0 -= 1;
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    /// Answers with `script` in order, then always with `then`.
    pub async fn start(script: &[Reply], then: Reply) -> Receiver {
        let inner = Arc::new(Inner {
            script: Mutex::new(script.iter().copied().collect()),
            then,
            log: Mutex::new(Vec::new()),
            in_flight: Mutex::new((0, 0)),
        });
        let app = Router::new()
            .route("/hook", post(answer))
            .route("/elsewhere", post(answer))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.log.lock().expect("log").clone()
    }

    /// The most requests this receiver was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.in_flight.lock().expect("in flight").1
    }

    /// Waits until at least `n` requests came.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        crate::eventually(&format!("{n} callbacks"), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let _counted = InFlight::new(&inner);
    let reply = {
        let mut script = inner.script.lock().expect("script");
        script.pop_front().unwrap_or(inner.then)
    };
    inner.log.lock().expect("log").push(Received {
        at: Instant::now(),
        path: uri.path().to_string(),
        headers,
        body,
    });
    match reply {
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).expect("status");
            (status, format!("answered {code}")).into_response()
        }
        Reply::Redirect => {
            (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")], "").into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}
