//! Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.
//!
//!     cargo +nightly run --manifest-path fuzz/Cargo.toml --features seed --bin seed
//!
//! grpc_requests: one valid request per method (prost-encoded), prefixed by
//! the method's selector byte. Their ids are placeholders that the target
//! replaces with ids of its engine (see `Harness::substitute`).
//! parsers and envelope: a few texts and byte strings. spec_conversion:
//! pseudo-random bytes of a few lengths (any bytes make a request).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use vodtask_fuzz::METHODS;
use vodtask_proto::v1 as pb;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    grpc(&root.join("grpc_requests"))?;
    parsers(&root.join("parsers"))?;
    envelope(&root.join("envelope"))?;
    spec_conversion(&root.join("spec_conversion"))?;
    Ok(())
}

/// Any bytes make a request; what matters is that there are enough of them
/// (libFuzzer grows input lengths slowly from an empty corpus).
fn spec_conversion(dir: &Path) -> std::io::Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, len) in [48usize, 96, 160, 256, 400, 640, 1024, 1600]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        write(dir, &format!("random-{i}-{len}"), &bytes)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn grpc(dir: &Path) -> std::io::Result<()> {
    use vodtask_fuzz::{FILE_A as FILE, FILE_B, TASK_ABORTED, TASK_WAITING as TASK};
    let ts = |s| prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    };
    let spec = |kind| pb::CreateTaskRequest {
        spec: Some(pb::TaskSpec { kind: Some(kind) }),
        priority: 1,
        session_id: String::new(),
        session_context: "{\"order\":42}".into(),
    };
    use pb::task_spec::Kind;
    let plan = pb::ProcedurePlan {
        subtasks: vec![
            pb::SubtaskSpec {
                kind: Some(pb::subtask_spec::Kind::Transcode(pb::TranscodeSubtask {
                    definition: 100010,
                })),
            },
            pb::SubtaskSpec {
                kind: Some(pb::subtask_spec::Kind::CoverBySnapshot(
                    pb::CoverBySnapshotSubtask {
                        definition: 10,
                        position_type: 2,
                        position: 50.0,
                    },
                )),
            },
        ],
        notify_mode: 2,
    };
    let mut seeds: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "CreateTask",
            "transcode".into(),
            spec(Kind::Transcode(pb::TranscodeSpec {
                file_id: FILE.into(),
                definitions: vec![100010, 100210],
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "snapshot".into(),
            spec(Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
                file_id: FILE.into(),
                definition: 10,
                time_offsets_ms: vec![0, 1000, 5000],
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "concat".into(),
            spec(Kind::Concat(pb::ConcatSpec {
                file_ids: vec![FILE.into(), FILE_B.into()],
                output_types: vec![1, 2],
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "clip".into(),
            spec(Kind::Clip(pb::ClipSpec {
                file_id: FILE.into(),
                start_time_offset: 1.5,
                end_time_offset: 10.0,
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "sprites".into(),
            spec(Kind::ImageSprites(pb::ImageSpritesSpec {
                file_id: FILE.into(),
                definition: 20,
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "pull".into(),
            spec(Kind::PullUpload(pb::PullUploadSpec {
                media_url: "https://example.com/a/video.mp4".into(),
                file_name: "video.mp4".into(),
                source_context: "ctx".into(),
                timeout_seconds: 60,
                procedure: Some(plan.clone()),
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "delete".into(),
            spec(Kind::DeleteMedia(pb::DeleteMediaSpec {
                file_ids: vec![FILE.into()],
            }))
            .encode_to_vec(),
        ),
        (
            "CreateTask",
            "procedure".into(),
            pb::CreateTaskRequest {
                session_id: "session-1".into(),
                ..spec(Kind::Procedure(pb::ProcedureSpec {
                    file_id: FILE.into(),
                    subtasks: plan.subtasks.clone(),
                    notify_mode: 1,
                }))
            }
            .encode_to_vec(),
        ),
        (
            "DescribeTask",
            "task".into(),
            pb::DescribeTaskRequest {
                task_id: TASK.into(),
            }
            .encode_to_vec(),
        ),
        (
            "ListTasks",
            "filters".into(),
            pb::ListTasksRequest {
                status: 1,
                task_type: 1,
                file_id: FILE.into(),
                create_time: Some(pb::TimeRange {
                    after: Some(ts(1_700_000_000)),
                    before: Some(ts(1_900_000_000)),
                }),
                finish_time: None,
                sort_by: 2,
                order: 1,
                limit: 5,
                scroll_token: URL_SAFE_NO_PAD.encode("1:1700000000000000:7:0123456789ab"),
            }
            .encode_to_vec(),
        ),
        (
            "GetTaskOverview",
            "range".into(),
            pb::GetTaskOverviewRequest {
                create_time: Some(pb::TimeRange {
                    after: Some(ts(1_700_000_000)),
                    before: None,
                }),
            }
            .encode_to_vec(),
        ),
        (
            "RedoTask",
            "task".into(),
            pb::RedoTaskRequest {
                task_id: TASK.into(),
            }
            .encode_to_vec(),
        ),
        (
            "RedoTask",
            "aborted".into(),
            pb::RedoTaskRequest {
                task_id: TASK_ABORTED.into(),
            }
            .encode_to_vec(),
        ),
        (
            "CancelTask",
            "task".into(),
            pb::CancelTaskRequest {
                task_id: TASK.into(),
            }
            .encode_to_vec(),
        ),
        (
            "DescribeMedia",
            "file".into(),
            pb::DescribeMediaRequest {
                file_id: FILE.into(),
            }
            .encode_to_vec(),
        ),
        (
            "PullEvents",
            "pull".into(),
            pb::PullEventsRequest {
                max_events: 10,
                wait_seconds: Some(0),
            }
            .encode_to_vec(),
        ),
        (
            "ConfirmEvents",
            "handles".into(),
            pb::ConfirmEventsRequest {
                msg_handles: vec![URL_SAFE_NO_PAD.encode("1.2.3"), "junk".into()],
            }
            .encode_to_vec(),
        ),
        (
            "ExtendEvents",
            "handles".into(),
            pb::ExtendEventsRequest {
                msg_handles: vec![URL_SAFE_NO_PAD.encode("1.2.3")],
                seconds: 60,
            }
            .encode_to_vec(),
        ),
        (
            "NackEvents",
            "handles".into(),
            pb::NackEventsRequest {
                msg_handles: vec![URL_SAFE_NO_PAD.encode("1.2.3")],
                delay_seconds: Some(5),
            }
            .encode_to_vec(),
        ),
        (
            "ListDeadLetterEvents",
            "page".into(),
            pb::ListDeadLetterEventsRequest {
                limit: 10,
                page_token: "12".into(),
            }
            .encode_to_vec(),
        ),
        (
            "RedriveEvents",
            "ids".into(),
            pb::RedriveEventsRequest {
                event_ids: vec!["ev-1".into()],
                all: false,
            }
            .encode_to_vec(),
        ),
        (
            "DescribeEventsState",
            "empty".into(),
            pb::DescribeEventsStateRequest {}.encode_to_vec(),
        ),
        (
            "GetEventConfig",
            "empty".into(),
            pb::GetEventConfigRequest {}.encode_to_vec(),
        ),
        (
            "ModifyEventConfig",
            "pull".into(),
            pb::ModifyEventConfigRequest {
                mode: 1,
                notification_url: Some("https://192.0.2.1/hook".into()),
                event_types: [("TranscodeComplete".to_string(), false)].into(),
                visibility_timeout_seconds: Some(30),
                max_deliveries: Some(5),
                retention_seconds: Some(86_400),
                callback_timeout_seconds: Some(5),
                retry_schedule_seconds: vec![0, 5, 60],
                disable_after_seconds: Some(3600),
                endpoint_enabled: Some(true),
            }
            .encode_to_vec(),
        ),
        (
            "RotateSigningSecret",
            "overlap".into(),
            pb::RotateSigningSecretRequest {
                overlap_seconds: Some(60),
            }
            .encode_to_vec(),
        ),
        (
            "ListCallbackAttempts",
            "event".into(),
            pb::ListCallbackAttemptsRequest {
                event_id: "ev-1".into(),
                task_id: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "ResendEvents",
            "ids".into(),
            pb::ResendEventsRequest {
                event_ids: vec!["ev-1".into()],
            }
            .encode_to_vec(),
        ),
    ];
    // UploadMedia: frames as `u16 BE length` + bytes.
    let mut upload = Vec::new();
    for frame in vodtask_fuzz::upload_frames("clip.mp4", "ctx", &[b"abc".as_slice(), b"def"]) {
        upload.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        upload.extend_from_slice(&frame);
    }
    seeds.push(("UploadMedia", "two-chunks".into(), upload));

    for (method, name, body) in seeds {
        let index = METHODS
            .iter()
            .position(|m| m.ends_with(&format!("/{method}")))
            .expect("known method");
        let mut bytes = vec![index as u8];
        bytes.extend_from_slice(&body);
        write(dir, &format!("{method}-{name}"), &bytes)?;
    }
    Ok(())
}

fn parsers(dir: &Path) -> std::io::Result<()> {
    let pad = |s: &str| {
        let mut v = vec![0u8; 64];
        v.extend_from_slice(s.as_bytes());
        v
    };
    write(dir, "handle", &pad(&URL_SAFE_NO_PAD.encode("7.42.9")))?;
    write(
        dir,
        "scroll-token",
        &pad(&URL_SAFE_NO_PAD.encode("1:5:7:abcdef012345")),
    )?;
    write(
        dir,
        "task-id",
        &pad("transcode-0190c6d1c2b37cc2a1d4a3f0e2b1c0d9"),
    )?;
    write(dir, "file-id", &pad("12345678901234567890"))?;
    write(dir, "url", &pad("https://example.com:8443/hook?x=1"))?;
    write(dir, "cidr", &pad("10.0.0.0/8"))?;
    write(
        dir,
        "secret",
        &pad("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )?;
    write(
        dir,
        "ffprobe",
        br#"{"format":{"format_name":"mov,mp4","duration":"10.5","bit_rate":"800000"},"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":1280,"height":720,"avg_frame_rate":"30000/1001","bit_rate":"700000"},{"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":2}]}"#,
    )?;
    Ok(())
}

fn envelope(dir: &Path) -> std::io::Result<()> {
    // Any bytes build a task; a few lengths and patterns to start from.
    write(dir, "zeros", &[0u8; 64])?;
    write(dir, "ones", &[0xffu8; 256])?;
    let mixed: Vec<u8> = (0..512u32).map(|i| (i * 37 % 251) as u8).collect();
    write(dir, "mixed", &mixed)?;
    write(
        dir,
        "text",
        "\"quoted\\\u{2028} 😀 \u{0}\n".repeat(8).as_bytes(),
    )?;
    Ok(())
}
