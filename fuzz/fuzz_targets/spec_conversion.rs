//! The task-spec conversion (the server's `convert::spec`, crate-private)
//! and the core's spec validation, driven through CreateTask.
//!
//! The conversion is `pub(crate)` in vodtask-server, so it is reached the
//! way a client reaches it: the input is turned (with `arbitrary`) into a
//! well-formed `pb::CreateTaskRequest`, mostly near-valid (existing file
//! ids, known definitions, in-range numbers, with odd values mixed in), so
//! that most inputs get past decoding and into every branch of the
//! conversion and the validation, which raw protobuf bytes (grpc_requests)
//! rarely do.
//!
//! Checked: no panic; the answer is OK or a client error (INVALID_ARGUMENT,
//! NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS), never INTERNAL or
//! UNKNOWN (the request is valid protobuf, so this holds with or without
//! VODTASK_FUZZ_STRICT); and an accepted task reads back (DescribeTask)
//! with the same spec, once the documented defaults are applied (pull
//! timeout 0 → 3600, notify mode UNSPECIFIED → FINISH, cover position type
//! UNSPECIFIED → TIME), and the same priority, session id and context;
//! floats within a few ULP unless VODTASK_FUZZ_EXACT_FLOATS=1 (see
//! `vodtask_fuzz::exact_floats`).

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vodtask_fuzz::{Harness, code, harness};
use vodtask_proto::v1 as pb;

const TRANSCODE_DEFINITIONS: &[i32] = &[
    100010, 100020, 100030, 100040, 100210, 100220, 100230, 100240,
];

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut u = Unstructured::new(data);
    let Ok(req) = request(&mut u, h) else {
        return;
    };
    let reply =
        match h.unary::<_, pb::CreateTaskResponse>("/vodtask.v1.TaskService/CreateTask", &req) {
            Ok(created) => created,
            Err(r) => {
                assert!(
                    [
                        code::INVALID_ARGUMENT,
                        5, // NOT_FOUND: a file that does not exist
                        9, // FAILED_PRECONDITION
                        6, // ALREADY_EXISTS: a session id used by another request
                        8, // RESOURCE_EXHAUSTED
                    ]
                    .contains(&r.code),
                    "CreateTask answered {} ({:?}) to {req:?}",
                    r.code,
                    r.message
                );
                return;
            }
        };
    let task: pb::Task = h
        .unary(
            "/vodtask.v1.TaskService/DescribeTask",
            &pb::DescribeTaskRequest {
                task_id: reply.task_id.clone(),
            },
        )
        .unwrap_or_else(|r| {
            panic!(
                "DescribeTask of the new task {} answered {} ({:?})",
                reply.task_id, r.code, r.message
            )
        });
    let want = normalized(req.spec.clone());
    let mut got = task.input.clone();
    if let (Some(g), Some(w)) = (got.as_mut(), want.as_ref()) {
        snap_floats(g, w);
    }
    assert_eq!(
        got, want,
        "the spec does not read back as it was sent (request {req:?})"
    );
    assert_eq!(task.priority, req.priority, "priority");
    assert_eq!(task.session_id, req.session_id, "session_id");
    assert_eq!(task.session_context, req.session_context, "session_context");
});

/// The spec as the server documents it is stored: defaults filled in.
fn normalized(spec: Option<pb::TaskSpec>) -> Option<pb::TaskSpec> {
    use pb::task_spec::Kind;
    let mut spec = spec?;
    match spec.kind.as_mut() {
        Some(Kind::PullUpload(p)) => {
            if p.timeout_seconds == 0 {
                p.timeout_seconds = 3600;
            }
            if let Some(plan) = p.procedure.as_mut() {
                plan.notify_mode = notify(plan.notify_mode);
                plan.subtasks.iter_mut().for_each(subtask);
            }
        }
        Some(Kind::Procedure(p)) => {
            p.notify_mode = notify(p.notify_mode);
            p.subtasks.iter_mut().for_each(subtask);
        }
        _ => {}
    }
    Some(spec)
}

/// Floats within a few ULP of what was sent count as sent (unless
/// VODTASK_FUZZ_EXACT_FLOATS=1): the store keeps a spec as JSON, and
/// serde_json as vodtask builds it may read a float back a little off.
fn snap_floats(got: &mut pb::TaskSpec, want: &pb::TaskSpec) {
    use pb::task_spec::Kind;
    let snap = |g: &mut f64, w: f64| {
        if vodtask_fuzz::float_close(*g, w) {
            *g = w;
        }
    };
    let subtasks = |g: &mut [pb::SubtaskSpec], w: &[pb::SubtaskSpec]| {
        for (g, w) in g.iter_mut().zip(w) {
            if let (
                Some(pb::subtask_spec::Kind::CoverBySnapshot(g)),
                Some(pb::subtask_spec::Kind::CoverBySnapshot(w)),
            ) = (g.kind.as_mut(), w.kind.as_ref())
            {
                snap(&mut g.position, w.position);
            }
        }
    };
    match (got.kind.as_mut(), want.kind.as_ref()) {
        (Some(Kind::Clip(g)), Some(Kind::Clip(w))) => {
            snap(&mut g.start_time_offset, w.start_time_offset);
            snap(&mut g.end_time_offset, w.end_time_offset);
        }
        (Some(Kind::Procedure(g)), Some(Kind::Procedure(w))) => {
            subtasks(&mut g.subtasks, &w.subtasks);
        }
        (Some(Kind::PullUpload(g)), Some(Kind::PullUpload(w))) => {
            if let (Some(g), Some(w)) = (g.procedure.as_mut(), w.procedure.as_ref()) {
                subtasks(&mut g.subtasks, &w.subtasks);
            }
        }
        _ => {}
    }
}

fn notify(mode: i32) -> i32 {
    if mode == pb::NotifyMode::Unspecified as i32 {
        pb::NotifyMode::Finish as i32
    } else {
        mode
    }
}

fn subtask(s: &mut pb::SubtaskSpec) {
    if let Some(pb::subtask_spec::Kind::CoverBySnapshot(c)) = s.kind.as_mut()
        && c.position_type == pb::PositionType::Unspecified as i32
    {
        c.position_type = pb::PositionType::Time as i32;
    }
}

fn request(u: &mut Unstructured, h: &Harness) -> Result<pb::CreateTaskRequest> {
    Ok(pb::CreateTaskRequest {
        spec: if u.ratio(1, 20)? {
            None
        } else {
            Some(pb::TaskSpec {
                kind: task_kind(u, h)?,
            })
        },
        priority: if u.ratio(7, 8)? {
            u.int_in_range(-10..=10)?
        } else {
            u.arbitrary()?
        },
        session_id: match u.int_in_range(0..=3)? {
            0 | 1 => String::new(),
            2 => format!("s{}", u.int_in_range(0..=3)?),
            _ => text(u, 60)?,
        },
        session_context: text(u, 1100)?,
    })
}

fn task_kind(u: &mut Unstructured, h: &Harness) -> Result<Option<pb::task_spec::Kind>> {
    use pb::task_spec::Kind;
    Ok(Some(match u.int_in_range(0..=8)? {
        0 => Kind::Transcode(pb::TranscodeSpec {
            file_id: file_id(u, h)?,
            definitions: list(u, 18, transcode_definition)?,
        }),
        1 => Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
            file_id: file_id(u, h)?,
            definition: small_definition(u)?,
            time_offsets_ms: list(u, 102, offset)?,
        }),
        2 => Kind::Concat(pb::ConcatSpec {
            file_ids: list(u, 22, |u| file_id(u, h))?,
            output_types: list(u, 3, |u| enum_value(u, 2))?,
        }),
        3 => Kind::Clip(pb::ClipSpec {
            file_id: file_id(u, h)?,
            start_time_offset: seconds(u)?,
            end_time_offset: seconds(u)?,
        }),
        4 => Kind::ImageSprites(pb::ImageSpritesSpec {
            file_id: file_id(u, h)?,
            definition: small_definition(u)?,
        }),
        5 => Kind::PullUpload(pb::PullUploadSpec {
            media_url: match u.int_in_range(0..=3)? {
                0 => "https://example.com/video.mp4".into(),
                1 => format!("http://192.0.2.1/{}", text(u, 40)?),
                2 => "http://[::1]:8080/a".into(),
                _ => text(u, 2100)?,
            },
            file_name: match u.int_in_range(0..=2)? {
                0 => String::new(),
                1 => "clip.mp4".into(),
                _ => text(u, 300)?,
            },
            source_context: text(u, 300)?,
            timeout_seconds: if u.ratio(3, 4)? {
                u.int_in_range(0..=86_401)?
            } else {
                u.arbitrary()?
            },
            procedure: if u.arbitrary()? { Some(plan(u)?) } else { None },
        }),
        6 => Kind::DeleteMedia(pb::DeleteMediaSpec {
            file_ids: list(u, 102, |u| file_id(u, h))?,
        }),
        7 => {
            let p = plan(u)?;
            Kind::Procedure(pb::ProcedureSpec {
                file_id: file_id(u, h)?,
                subtasks: p.subtasks,
                notify_mode: p.notify_mode,
            })
        }
        _ => return Ok(None),
    }))
}

fn plan(u: &mut Unstructured) -> Result<pb::ProcedurePlan> {
    use pb::subtask_spec::Kind;
    Ok(pb::ProcedurePlan {
        subtasks: list(u, 22, |u| {
            Ok(pb::SubtaskSpec {
                kind: Some(match u.int_in_range(0..=4)? {
                    0 => Kind::Transcode(pb::TranscodeSubtask {
                        definition: transcode_definition(u)?,
                    }),
                    1 => Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSubtask {
                        definition: small_definition(u)?,
                        time_offsets_ms: list(u, 102, offset)?,
                    }),
                    2 => Kind::ImageSprites(pb::ImageSpritesSubtask {
                        definition: small_definition(u)?,
                    }),
                    3 => Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
                        definition: small_definition(u)?,
                        position_type: enum_value(u, 2)?,
                        position: seconds(u)?,
                    }),
                    _ => return Ok(pb::SubtaskSpec { kind: None }),
                }),
            })
        })?,
        notify_mode: enum_value(u, 3)?,
    })
}

/// Mostly a file that exists; sometimes one that does not, or is malformed.
fn file_id(u: &mut Unstructured, h: &Harness) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0..=4 => u.choose(&h.files)?.clone(),
        5 => "12345678901234567890".into(),
        6 => "../etc/passwd".into(),
        _ => text(u, 70)?,
    })
}

fn transcode_definition(u: &mut Unstructured) -> Result<i32> {
    if u.ratio(7, 8)? {
        Ok(*u.choose(TRANSCODE_DEFINITIONS)?)
    } else {
        u.arbitrary()
    }
}

/// Snapshot and sprite definitions: 10 and 20.
fn small_definition(u: &mut Unstructured) -> Result<i32> {
    Ok(match u.int_in_range(0..=4)? {
        0 | 1 => 10,
        2 | 3 => 20,
        _ => u.arbitrary()?,
    })
}

fn offset(u: &mut Unstructured) -> Result<i64> {
    if u.ratio(7, 8)? {
        u.int_in_range(0..=3_600_000)
    } else {
        u.arbitrary()
    }
}

fn seconds(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => f64::from(u.int_in_range(0..=100_000u32)?) / 10.0,
        3 => -0.0,
        _ => f64::from_bits(u.arbitrary()?), // NaN, infinities, subnormals
    })
}

/// A proto enum's known values 0..=max, sometimes an unknown one.
fn enum_value(u: &mut Unstructured, max: i32) -> Result<i32> {
    if u.ratio(7, 8)? {
        u.int_in_range(0..=max)
    } else {
        u.arbitrary()
    }
}

/// Any characters (NUL, control, non-BMP...), up to about `max` chars.
fn text(u: &mut Unstructured, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    let mut s = String::new();
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        s.push(u.arbitrary::<char>()?);
    }
    Ok(s)
}

fn list<T>(
    u: &mut Unstructured,
    max: usize,
    mut item: impl FnMut(&mut Unstructured) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        v.push(item(u)?);
    }
    Ok(v)
}
