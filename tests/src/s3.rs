//! A real S3-compatible server for the tests (moto's server mode, from
//! PyPI; `scripts/install-deps.sh` installs it), and a fault proxy in
//! front of it that can hold or fail requests, for outage and crash tests.
//!
//! With `VODTASK_TEST_STORAGE=s3` every `Server` of the harness keeps its
//! media in a fresh moto server instead of its data dir, so that the same
//! end-to-end tests run against both backends (scripts/test.sh does so
//! for the task-type and media suites).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::{DEADLINE, free_port};

/// The bucket a harness server keeps its media in.
pub const BUCKET: &str = "vodtask-media";
/// The key prefix below it.
pub const PREFIX: &str = "files";

/// Whether this test run keeps media in S3 (`VODTASK_TEST_STORAGE=s3`).
pub fn requested() -> bool {
    std::env::var("VODTASK_TEST_STORAGE").is_ok_and(|v| v == "s3")
}

/// A moto server on a free port, killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts moto with `BUCKET` created.
    pub fn start() -> S3Server {
        S3Server::start_with(&[])
    }

    /// Starts moto that checks credentials (it knows none, so every key
    /// is refused) once `BUCKET` is created.
    pub fn start_checking_credentials() -> S3Server {
        S3Server::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "1")])
    }

    fn start_with(env: &[(&str, &str)]) -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]'; scripts/install-deps.sh)");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(start.elapsed() < DEADLINE, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.create_bucket(BUCKET);
        server
    }

    /// moto takes unsigned requests: plain HTTP is enough for the tests'
    /// own look at the bucket.
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.endpoint))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Lets anyone read the bucket's objects, as a bucket behind a CDN.
    pub fn make_public(&self) {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .args(["-H", "x-amz-acl: public-read", "-H", "content-length: 0"])
            .arg(format!("{}/{BUCKET}?acl", self.endpoint))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "public-read ACL"
        );
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (code, body) = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(code, 200, "create bucket {bucket}: {body}");
    }

    /// Every object key in `BUCKET`.
    pub fn keys(&self) -> Vec<String> {
        let (code, body) = self.request("GET", &format!("/{BUCKET}?list-type=2&max-keys=1000"));
        assert_eq!(code, 200, "list {BUCKET}: {body}");
        assert!(
            !body.contains("<IsTruncated>true"),
            "more than 1000 objects"
        );
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }

    /// The keys of one file's objects.
    pub fn keys_of(&self, file_id: &str) -> Vec<String> {
        let prefix = format!("{PREFIX}/{file_id}/");
        self.keys()
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect()
    }

    /// Unfinished multipart uploads in `BUCKET`.
    pub fn multipart_uploads(&self) -> usize {
        let (code, body) = self.request("GET", &format!("/{BUCKET}?uploads"));
        assert_eq!(code, 200, "list uploads: {body}");
        body.matches("<UploadId>").count()
    }

    /// The `serve` flags that keep media in this server, through
    /// `endpoint` (this server's, or a fault proxy's in front of it).
    pub fn serve_args(endpoint: &str) -> Vec<String> {
        [
            "--storage",
            &format!("s3://{BUCKET}/{PREFIX}"),
            "--s3-endpoint",
            endpoint,
            "--s3-path-style",
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The credentials and region a server needs for moto (which accepts any).
pub const ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "vodtask-test"),
    ("AWS_SECRET_ACCESS_KEY", "vodtask-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// What the fault proxy does to a request.
#[derive(Debug, Clone, Default)]
pub enum Fault {
    /// Forward it.
    #[default]
    Pass,
    /// Answer 503 without forwarding.
    Unavailable,
    /// Be unreachable: stop listening (connections are refused) and cut
    /// the open ones.
    Refuse,
    /// Hold writes (PUT and POST) that have `needle` in their path or query
    /// until the fault changes; everything else passes.
    HoldWrites { needle: String },
    /// Forward such writes (the object is written), then hold their answers
    /// until the fault changes: a crash now leaves complete objects whose
    /// writer never heard of them.
    HoldAnswers { needle: String },
}

/// An HTTP proxy in front of an S3 server, whose fault can be changed
/// while it runs; it counts the requests it held or failed.
#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    fault: watch::Sender<Fault>,
    stats: Arc<Mutex<Stats>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub held: usize,
    pub failed: usize,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    fault: watch::Receiver<Fault>,
    stats: Arc<Mutex<Stats>>,
}

impl FaultProxy {
    /// Runs on a thread and runtime of its own, so that it keeps serving
    /// while a test blocks (starting a server waits for its first line).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (fault, rx) = watch::channel(Fault::Pass);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let state = ProxyState {
            upstream: upstream.to_string(),
            client: crate::http_client(),
            fault: rx,
            stats: Arc::clone(&stats),
        };
        // The HTTP proxy listens inside; in front of it, a TCP forwarder
        // that can stop listening and cut connections (`Fault::Refuse`).
        let inner = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        inner.set_nonblocking(true).unwrap();
        let inner_addr = inner.local_addr().unwrap();
        let gate = fault.subscribe();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let inner = tokio::net::TcpListener::from_std(inner).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(state);
                tokio::spawn(async move {
                    let _ = axum::serve(inner, app).await;
                });
                let addr = listener.local_addr().unwrap();
                let mut outer = Some(tokio::net::TcpListener::from_std(listener).unwrap());
                let mut gate = gate;
                loop {
                    // While refusing, nothing listens: connections are refused.
                    let _ = gate.wait_for(|f| !matches!(f, Fault::Refuse)).await;
                    let listening = match outer.take() {
                        Some(l) => l,
                        None => match tokio::net::TcpListener::bind(addr).await {
                            Ok(l) => l,
                            Err(_) => {
                                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                                continue;
                            }
                        },
                    };
                    let template = gate.clone();
                    loop {
                        tokio::select! {
                            accepted = listening.accept() => {
                                let Ok((mut client, _)) = accepted else { break };
                                let mut cut = template.clone();
                                tokio::spawn(async move {
                                    let Ok(mut server) = tokio::net::TcpStream::connect(inner_addr).await else {
                                        return;
                                    };
                                    tokio::select! {
                                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                        _ = cut.wait_for(|f| matches!(f, Fault::Refuse)) => {}
                                    }
                                });
                            }
                            _ = gate.wait_for(|f| matches!(f, Fault::Refuse)) => break,
                        }
                    }
                }
            });
        });
        FaultProxy {
            endpoint,
            fault,
            stats,
        }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap()
    }
}

/// A PUT or POST whose path or query has `needle`.
fn is_write_to(req: &Request, needle: &str) -> bool {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    matches!(req.method().as_str(), "PUT" | "POST") && target.contains(needle)
}

async fn forward(State(state): State<ProxyState>, req: Request) -> Response {
    let mut fault = state.fault.clone();
    loop {
        let now = fault.borrow_and_update().clone();
        match now {
            // Refused at the TCP level, in front of this.
            Fault::Pass | Fault::Refuse => break,
            Fault::Unavailable => {
                state.stats.lock().unwrap().failed += 1;
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "held down").into_response();
            }
            Fault::HoldWrites { needle } => {
                if !is_write_to(&req, &needle) {
                    break;
                }
                state.stats.lock().unwrap().held += 1;
                if fault.changed().await.is_err() {
                    break;
                }
            }
            Fault::HoldAnswers { .. } => break,
        }
    }
    let hold_answer = match &*fault.borrow_and_update() {
        Fault::HoldAnswers { needle } => is_write_to(&req, needle),
        _ => false,
    };
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return axum::http::StatusCode::BAD_REQUEST.into_response(),
    };
    let mut upstream = state
        .client
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .body(bytes);
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let body = answer.bytes().await.unwrap_or_default();
            if hold_answer {
                state.stats.lock().unwrap().held += 1;
                let _ = fault.changed().await;
            }
            response.body(Body::from(body)).unwrap()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}
