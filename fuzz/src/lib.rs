//! What the fuzz targets share: one engine per process, on a temporary data
//! dir, behind the server's own service stack (`vodtask_server::grpc::routes`,
//! as the client's embedded mode calls it), and a way to send it raw gRPC
//! frames and read the status back.
//!
//! The engine runs no workers (no ffmpeg ever starts) and its ffmpeg and
//! ffprobe are stub scripts (see `stub_tools`), so nothing slow runs. State
//! grows across inputs (tasks, files, events); that is fine.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use tower::ServiceExt;
use vodtask_core::store::SyncMode;
use vodtask_core::{Engine, EngineConfig};
use vodtask_proto::v1 as pb;

/// gRPC status codes the targets look at.
pub mod code {
    pub const OK: i32 = 0;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const INTERNAL: i32 = 13;
}

/// Every unary RPC of vodtask.v1, by path, plus the client-streaming
/// UploadMedia (sent a few frames). SubscribeEvents (server streaming, it
/// never ends by itself) is left out. The first byte of a `grpc_requests`
/// input picks one: `byte % METHODS.len()`.
pub const METHODS: &[&str] = &[
    "/vodtask.v1.TaskService/CreateTask",
    "/vodtask.v1.TaskService/DescribeTask",
    "/vodtask.v1.TaskService/ListTasks",
    "/vodtask.v1.TaskService/GetTaskOverview",
    "/vodtask.v1.TaskService/RedoTask",
    "/vodtask.v1.TaskService/CancelTask",
    "/vodtask.v1.MediaService/DescribeMedia",
    "/vodtask.v1.EventService/PullEvents",
    "/vodtask.v1.EventService/ConfirmEvents",
    "/vodtask.v1.EventService/ExtendEvents",
    "/vodtask.v1.EventService/NackEvents",
    "/vodtask.v1.EventService/ListDeadLetterEvents",
    "/vodtask.v1.EventService/RedriveEvents",
    "/vodtask.v1.EventService/DescribeEventsState",
    "/vodtask.v1.EventService/GetEventConfig",
    "/vodtask.v1.EventService/ModifyEventConfig",
    "/vodtask.v1.EventService/RotateSigningSecret",
    "/vodtask.v1.EventService/ListCallbackAttempts",
    "/vodtask.v1.EventService/ResendEvents",
    "/vodtask.v1.MediaService/UploadMedia",
];

pub const UPLOAD_MEDIA: &str = "/vodtask.v1.MediaService/UploadMedia";
pub const PULL_EVENTS: &str = "/vodtask.v1.EventService/PullEvents";
pub const MODIFY_EVENT_CONFIG: &str = "/vodtask.v1.EventService/ModifyEventConfig";

/// Placeholders the seed corpus uses for ids of the harness's engine (whose
/// ids are random per process): `substitute` swaps them for real ones of
/// the same length, so the protobuf around them stays valid.
pub const FILE_A: &str = "11111111111111111111";
pub const FILE_B: &str = "22222222222222222222";
pub const TASK_WAITING: &str = "transcode-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const TASK_ABORTED: &str = "transcode-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// `VODTASK_FUZZ_STRICT=1`: an INTERNAL (13) or UNKNOWN (2) answer is a
/// finding (the target panics). Off by default: today malformed protobuf
/// answers INTERNAL (tonic's decode error), which is expected to become
/// INVALID_ARGUMENT; once it has, turn this on.
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT
        .get_or_init(|| std::env::var("VODTASK_FUZZ_STRICT").is_ok_and(|v| v == "1" || v == "true"))
}

/// `VODTASK_FUZZ_EXACT_FLOATS=1`: floats that go through JSON (the store
/// keeps specs, outputs and media metadata as JSON) must come back
/// bit-exact. Off by default: serde_json as vodtask builds it (without its
/// `float_roundtrip` feature) may read a float back a little off (1 ULP for
/// ordinary values, a few at extreme exponents), so by default such a
/// difference is let through.
pub fn exact_floats() -> bool {
    static EXACT: OnceLock<bool> = OnceLock::new();
    *EXACT.get_or_init(|| {
        std::env::var("VODTASK_FUZZ_EXACT_FLOATS").is_ok_and(|v| v == "1" || v == "true")
    })
}

/// Whether `got` may stand for `want` (see `exact_floats`): equal, or,
/// unless exact floats are asked for, the same sign and within 8 ULP or a
/// relative 1e-14 (far below any real conversion bug, such as a trip
/// through f32, at 1e-7).
pub fn float_close(got: f64, want: f64) -> bool {
    if got == want || (got.is_nan() && want.is_nan()) {
        return true;
    }
    !exact_floats()
        && got.is_finite()
        && want.is_finite()
        && got.is_sign_negative() == want.is_sign_negative()
        && (got.to_bits().abs_diff(want.to_bits()) <= 8
            || (got - want).abs() <= 1e-14 * got.abs().max(want.abs()))
}

/// The answer to one call.
#[derive(Debug)]
pub struct Reply {
    pub code: i32,
    pub message: String,
    /// The response message's bytes (without the 5-byte prefix), if any.
    pub body: Option<Bytes>,
}

pub struct Harness {
    rt: tokio::runtime::Runtime,
    routes: tonic::service::Routes,
    auth: http::HeaderValue,
    pub engine: Engine,
    pub data_dir: PathBuf,
    /// Files uploaded at start, which tasks can name.
    pub files: Vec<String>,
    /// Tasks created at start (one WAITING, one ABORTED).
    pub tasks: Vec<String>,
    internal_seen: std::sync::atomic::AtomicU64,
    /// Per method, per code (17: any other), for VODTASK_FUZZ_STATS.
    answers: Vec<std::sync::atomic::AtomicU64>,
    calls: std::sync::atomic::AtomicU64,
}

/// The process's harness, made on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(Harness::new)
}

impl Harness {
    fn new() -> Harness {
        // A current-thread runtime: the engine's background tasks (upkeep,
        // queues) run while an input's call runs, and every input starts
        // from a quiet engine. The store has its own writer thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Kept for the process (libFuzzer ends it with exit()); run.sh points
        // TMPDIR at a directory it removes afterwards.
        let root = tempfile::Builder::new()
            .prefix("vodtask-fuzz-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let data_dir = root.join("data");
        let (ffmpeg, ffprobe) = stub_tools(&root);
        let mut config = EngineConfig::new(&data_dir);
        config.workers = 0;
        config.ffmpeg = ffmpeg;
        config.ffprobe = ffprobe;
        config.sync = SyncMode::Normal;
        config.max_upload_bytes = 1 << 20;
        let engine = rt.block_on(Engine::open(config)).expect("engine opens");
        let key = std::fs::read_to_string(data_dir.join("default.key")).expect("default.key");
        let auth = format!("Bearer {}", key.trim())
            .parse()
            .expect("header value");
        let routes = vodtask_server::grpc::routes(engine.clone());
        let mut h = Harness {
            rt,
            routes,
            auth,
            engine,
            data_dir,
            files: Vec::new(),
            tasks: Vec::new(),
            internal_seen: Default::default(),
            answers: (0..METHODS.len() * 18)
                .map(|_| Default::default())
                .collect(),
            calls: Default::default(),
        };
        h.populate();
        h
    }

    /// Two uploaded files and two tasks, so that valid ids exist.
    fn populate(&mut self) {
        for name in ["a.mp4", "b.mov"] {
            let frames = upload_frames(name, "seed", &[b"not really a video".as_slice()]);
            let r = self.call(UPLOAD_MEDIA, &frames);
            assert_eq!(r.code, code::OK, "seed upload: {}", r.message);
            let resp = pb::UploadMediaResponse::decode(r.body.expect("body")).expect("decode");
            self.files.push(resp.file_id);
        }
        for cancel in [false, true] {
            let req = pb::CreateTaskRequest {
                spec: Some(pb::TaskSpec {
                    kind: Some(pb::task_spec::Kind::Transcode(pb::TranscodeSpec {
                        file_id: self.files[0].clone(),
                        definitions: vec![100010],
                    })),
                }),
                ..Default::default()
            };
            let resp: pb::CreateTaskResponse = self
                .unary("/vodtask.v1.TaskService/CreateTask", &req)
                .expect("seed task");
            if cancel {
                let _: pb::Task = self
                    .unary(
                        "/vodtask.v1.TaskService/CancelTask",
                        &pb::CancelTaskRequest {
                            task_id: resp.task_id.clone(),
                        },
                    )
                    .expect("cancel seed task");
            }
            self.tasks.push(resp.task_id);
        }
    }

    /// Replaces the placeholder ids in `bytes` with this engine's ids.
    pub fn substitute(&self, bytes: &mut [u8]) {
        let pairs = [
            (FILE_A, &self.files[0]),
            (FILE_B, &self.files[1]),
            (TASK_WAITING, &self.tasks[0]),
            (TASK_ABORTED, &self.tasks[1]),
        ];
        for (placeholder, real) in pairs {
            let (p, r) = (placeholder.as_bytes(), real.as_bytes());
            if p.len() != r.len() {
                continue;
            }
            let mut i = 0;
            while i + p.len() <= bytes.len() {
                if &bytes[i..i + p.len()] == p {
                    bytes[i..i + p.len()].copy_from_slice(r);
                    i += p.len();
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Sends `messages`, each as one gRPC frame, in one POST to `path`.
    pub fn call(&self, path: &str, messages: &[Vec<u8>]) -> Reply {
        let mut body = Vec::with_capacity(messages.iter().map(|m| m.len() + 5).sum());
        for m in messages {
            body.push(0);
            body.extend_from_slice(&(m.len() as u32).to_be_bytes());
            body.extend_from_slice(m);
        }
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://vodtask.fuzz{path}"))
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", self.auth.clone())
            .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
            .expect("request");
        let routes = self.routes.clone();
        let reply = self.rt.block_on(async move {
            let response = routes.oneshot(request).await.expect("Routes is infallible");
            let (parts, body) = response.into_parts();
            if let Some(code) = parts.headers.get("grpc-status") {
                // Trailers-only: an error before any message.
                return Reply {
                    code: parse_code(code),
                    message: message_of(&parts.headers),
                    body: None,
                };
            }
            let collected = match body.collect().await {
                Ok(c) => c,
                Err(e) => panic!("{path}: the response body failed: {e}"),
            };
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let data = collected.to_bytes();
            let code = trailers
                .get("grpc-status")
                .map(parse_code)
                .unwrap_or_else(|| panic!("{path}: no grpc-status in headers or trailers"));
            let body = (data.len() >= 5).then(|| data.slice(5..));
            Reply {
                code,
                message: message_of(&trailers),
                body,
            }
        });
        if reply.code == code::INTERNAL || reply.code == code::UNKNOWN {
            self.note_internal(path, &reply);
        }
        self.count(path, reply.code);
        reply
    }

    /// `VODTASK_FUZZ_STATS=1`: the answers per method and code, printed
    /// after 2^14, 2^15... calls (to see how deep inputs get).
    fn count(&self, path: &str, code: i32) {
        use std::sync::atomic::Ordering::Relaxed;
        static ON: OnceLock<bool> = OnceLock::new();
        if !*ON.get_or_init(|| std::env::var("VODTASK_FUZZ_STATS").is_ok_and(|v| v == "1")) {
            return;
        }
        let Some(m) = METHODS.iter().position(|p| *p == path) else {
            return;
        };
        let code = usize::try_from(code).unwrap_or(17).min(17);
        self.answers[m * 18 + code].fetch_add(1, Relaxed);
        let n = self.calls.fetch_add(1, Relaxed) + 1;
        if n >= 1 << 14 && n.is_power_of_two() {
            let mut text = format!("vodtask-fuzz: answers after {n} calls (method: code=count):\n");
            for (i, method) in METHODS.iter().enumerate() {
                let counts: Vec<String> = (0..18)
                    .filter_map(|c| {
                        let k = self.answers[i * 18 + c].load(Relaxed);
                        (k > 0).then(|| format!("{c}={k}"))
                    })
                    .collect();
                text.push_str(&format!(
                    "  {}: {}\n",
                    method.rsplit('/').next().unwrap_or(method),
                    counts.join(" ")
                ));
            }
            eprint!("{text}");
        }
    }

    /// One unary call with a typed request and response.
    pub fn unary<Req: Message, Resp: Message + Default>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, Reply> {
        let r = self.call(path, &[req.encode_to_vec()]);
        if r.code != code::OK {
            return Err(r);
        }
        let body = r.body.clone().unwrap_or_default();
        Resp::decode(body).map_err(|e| Reply {
            code: -1,
            message: format!("{path}: the OK answer does not decode: {e}"),
            body: r.body,
        })
    }

    /// INTERNAL/UNKNOWN answers: a finding with VODTASK_FUZZ_STRICT=1.
    /// Otherwise counted; those from tonic's protobuf decoding (expected
    /// until the server answers INVALID_ARGUMENT to malformed messages) are
    /// printed now and then, any other one every time.
    fn note_internal(&self, path: &str, reply: &Reply) {
        if strict() {
            panic!(
                "{path} answered {} ({:?}) with VODTASK_FUZZ_STRICT=1",
                reply.code, reply.message
            );
        }
        let n = self
            .internal_seen
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let decoding = reply
            .message
            .starts_with("failed to decode Protobuf message");
        if !decoding || n < 3 || n.is_power_of_two() {
            eprintln!(
                "vodtask-fuzz: {path} answered {} ({:?}); {} such answers so far \
                 (a finding with VODTASK_FUZZ_STRICT=1)",
                reply.code,
                reply.message,
                n + 1
            );
        }
    }
}

/// Stand-ins for ffmpeg and ffprobe: the engine checks at open that both
/// answer `-version`. No task runs (no workers), so the ffmpeg stub never
/// does anything else; the ffprobe stub describes every upload as the same
/// small H.264/AAC MP4, so that uploads carry metadata.
fn stub_tools(root: &std::path::Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    const PROBE: &str = r#"{"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"10.010000","bit_rate":"800000"},"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":1280,"height":720,"avg_frame_rate":"30000/1001","bit_rate":"700000"},{"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":2,"bit_rate":"96000"}]}"#;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let write = |name: &str, script: String| {
        let path = bin.join(name);
        std::fs::write(&path, script).expect("stub tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("stub tool mode");
        path
    };
    (
        write("ffmpeg", "#!/bin/sh\nexit 0\n".into()),
        write("ffprobe", format!("#!/bin/sh\ncat <<'EOF'\n{PROBE}\nEOF\n")),
    )
}

fn parse_code(v: &http::HeaderValue) -> i32 {
    v.to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("grpc-status {v:?} is not a number"))
}

/// grpc-message, percent-decoded.
fn message_of(headers: &http::HeaderMap) -> String {
    let Some(raw) = headers.get("grpc-message") else {
        return String::new();
    };
    let raw = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            raw[i],
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The messages of an UploadMedia call: the header, then the chunks.
pub fn upload_frames(file_name: &str, source_context: &str, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    use pb::upload_media_request::Part;
    let mut frames = vec![
        pb::UploadMediaRequest {
            part: Some(Part::Header(pb::UploadMediaHeader {
                file_name: file_name.into(),
                source_context: source_context.into(),
                procedure: None,
            })),
        }
        .encode_to_vec(),
    ];
    for c in chunks {
        frames.push(
            pb::UploadMediaRequest {
                part: Some(Part::Chunk(c.to_vec())),
            }
            .encode_to_vec(),
        );
    }
    frames
}
