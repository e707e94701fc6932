//! The event envelope (vodtask_core::events::envelope): the JSON every
//! delivery path sends, built from text the outside controls (a task's
//! session_context, an upload's file name and source context, task and
//! subtask messages, ffprobe's codec and container names, URLs, event ids).
//!
//! The input builds (with `arbitrary`) a task of any type, ended FINISH or
//! ABORTED, with or without an output, and a media file with or without
//! metadata, all strings with any characters (NUL, controls, quotes,
//! backslashes, U+2028, non-BMP...); then `task_ended`, `procedure_state`
//! and `file_uploaded` make drafts that `Draft::seal` turns into text.
//!
//! Checked: no panic; the text is one line of valid JSON that serde_json
//! parses back; the envelope fields are the ones given (version, eventType,
//! eventId, taskSequence, eventTime as RFC 3339); `data` reads back equal to
//! the draft's; and the outside-controlled strings come back unchanged in
//! their fields (sessionContext, message, fileName, sourceContext, fileUrl,
//! and the subtask messages of a procedure).

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vodtask_core::events::envelope::{self, Draft};
use vodtask_core::ids::{AppId, FileId, TaskId};
use vodtask_core::media::{MediaFile, MediaMetadata, MediaStream, SourceType};
use vodtask_core::task::procedure::{
    CoverPosition, NotifyMode, ProcedurePlan, ProcedureSpec, SubtaskOutput, SubtaskSpec,
    SubtaskState, SubtaskStatus,
};
use vodtask_core::task::{
    ClipSpec, ConcatSpec, DeleteSpec, FileType, OutputFile, PlayItem, PullSpec, SnapshotPicture,
    SnapshotSpec, SpriteSet, SpritesSpec, Task, TaskOutput, TaskSpec, TaskStatus, TranscodeSpec,
};
use vodtask_core::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = one(&mut u);
});

fn one(u: &mut Unstructured) -> Result<()> {
    let media = media(u)?;
    let task = task(u)?;
    let event_id = text(u)?;
    let time = timestamp(u)?;
    let seq: i64 = u.arbitrary()?;

    if let Some(draft) = envelope::task_ended(&task, media.as_ref()) {
        let data = check(&draft, &event_id, time, seq);
        assert_eq!(data["vodTaskId"], task.id.as_str());
        assert_eq!(data["sessionContext"], task.session_context.as_str());
        let message = if task.status == TaskStatus::Aborted && task.message.is_empty() {
            "cancelled"
        } else {
            task.message.as_str()
        };
        assert_eq!(data["message"], message);
        if let (TaskSpec::Transcode(_), Some(m)) = (&task.spec, &media) {
            assert_eq!(data["fileName"], m.file_name.as_str());
        }
        if let TaskSpec::Procedure(_) = &task.spec {
            procedure_fields(&data, &task, media.as_ref());
        }
    }
    let state = text(u)?;
    let message = text(u)?;
    let err_code: i32 = u.arbitrary()?;
    let draft = envelope::procedure_state(&task, media.as_ref(), &state, err_code, &message);
    let data = check(&draft, &event_id, time, seq);
    assert_eq!(data["status"], state.as_str());
    assert_eq!(data["message"], message.as_str());
    assert_eq!(data["errCode"], err_code);
    procedure_fields(&data, &task, media.as_ref());

    if let Some(m) = &media {
        let url = text(u)?;
        let procedure = text(u)?;
        let draft = envelope::file_uploaded(m, &url, &procedure);
        let data = check(&draft, &event_id, time, seq);
        assert_eq!(data["fileId"], m.file_id.as_str());
        assert_eq!(data["fileName"], m.file_name.as_str());
        assert_eq!(data["sourceContext"], m.source_context.as_str());
        assert_eq!(data["fileUrl"], url.as_str());
        assert_eq!(data["procedureTaskId"], procedure.as_str());
    }
    Ok(())
}

/// Seals `draft` and parses it back; returns the parsed `data`.
fn check(draft: &Draft, event_id: &str, time: Timestamp, seq: i64) -> Value {
    let text = draft.seal(event_id, time, seq);
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "the envelope is not one line: {text:?}"
    );
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("the envelope is not JSON ({e}): {text:?}"),
    };
    let keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "version",
            "eventType",
            "eventId",
            "eventTime",
            "taskSequence",
            "data"
        ],
        "field order"
    );
    assert_eq!(v["version"], "4.0");
    assert_eq!(v["eventType"], draft.event_type.as_str());
    assert_eq!(v["eventId"], event_id);
    assert_eq!(v["taskSequence"], seq);
    let shown = v["eventTime"].as_str().expect("eventTime is a string");
    let parsed = chrono::DateTime::parse_from_rfc3339(shown)
        .unwrap_or_else(|e| panic!("eventTime {shown:?} is not RFC 3339: {e}"));
    assert_eq!(parsed.timestamp_millis(), time.timestamp_millis());
    assert!(
        same(&v["data"], &draft.data),
        "data changed through the text:\n{:?}\n{:?}",
        v["data"],
        draft.data
    );
    // Sealing is deterministic: every delivery path sends the same bytes.
    assert_eq!(draft.seal(event_id, time, seq), text);
    v["data"].clone()
}

/// Equal, but for floats within a few ULP unless VODTASK_FUZZ_EXACT_FLOATS=1:
/// the envelope writes the shortest text that reads back exactly (ryu),
/// but serde_json without its `float_roundtrip` feature (as vodtask builds
/// it, and as this check reads it) may read it back a little off. Strings,
/// keys and their order must match exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => vodtask_fuzz::float_close(x, y),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}

fn procedure_fields(data: &Value, task: &Task, media: Option<&MediaFile>) {
    assert_eq!(data["sessionContext"], task.session_context.as_str());
    if let Some(TaskOutput::Procedure { subtasks }) = &task.output {
        let list = data["processTaskList"].as_array().expect("processTaskList");
        assert_eq!(list.len(), subtasks.len());
        for (s, j) in subtasks.iter().zip(list) {
            assert_eq!(j["message"], s.message.as_str());
        }
    }
    if let Some(Ok(m)) = media.map(|m| &m.metadata) {
        let meta = &data["metaData"];
        assert_eq!(meta["container"], m.container.as_str());
        let videos = meta["videoStreamList"].as_array().expect("videoStreamList");
        let want: Vec<&MediaStream> = m
            .streams
            .iter()
            .filter(|s| s.codec_type == "video")
            .collect();
        assert_eq!(videos.len(), want.len());
        for (s, j) in want.iter().zip(videos) {
            assert_eq!(j["codec"], s.codec.as_str());
        }
    }
}

// ---- builders ----

/// Any characters, biased towards the ones JSON must escape.
fn text(u: &mut Unstructured) -> Result<String> {
    let n = u.int_in_range(0..=40)?;
    let mut s = String::new();
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        let c = match u.int_in_range(0..=7)? {
            0 => *u.choose(&['"', '\\', '/', '\u{0}', '\u{1f}', '\u{7f}', '\n', '\t'])?,
            1 => *u.choose(&['\u{2028}', '\u{2029}', '\u{feff}', '\u{fffd}', '\u{10ffff}'])?,
            2 => *u.choose(&['\u{d7ff}', '\u{e000}', '😀', 'é', '<', '>', '&', '\''])?,
            _ => u.arbitrary()?,
        };
        s.push(c);
    }
    Ok(s)
}

fn file_id(u: &mut Unstructured) -> Result<FileId> {
    Ok(FileId::from_stored(text(u)?))
}

fn float(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0..=3)? {
        0 => f64::from(u.int_in_range(0..=100_000u32)?) / 10.0,
        1 => -0.0,
        // Finite values only: JSON has no NaN or infinity (serde_json writes
        // them as null, and then `data` would not read back equal).
        _ => {
            let f = f64::from_bits(u.arbitrary()?);
            if f.is_finite() { f } else { 0.5 }
        }
    })
}

fn timestamp(u: &mut Unstructured) -> Result<Timestamp> {
    // Years 1970..9999: what RFC 3339 can show (event times are "now").
    let secs = u.int_in_range(0..=253_402_300_799i64)?;
    let nanos = u.int_in_range(0..=999_999_999u32)?;
    Ok(chrono::DateTime::from_timestamp(secs, nanos).expect("in range"))
}

fn media(u: &mut Unstructured) -> Result<Option<MediaFile>> {
    if u.ratio(1, 4)? {
        return Ok(None);
    }
    let metadata = if u.arbitrary()? {
        let streams = (0..u.int_in_range(0..=4)?)
            .map(|_| {
                Ok(MediaStream {
                    index: u.arbitrary()?,
                    codec_type: if u.arbitrary()? {
                        (*u.choose(&["video", "audio"])?).to_string()
                    } else {
                        text(u)?
                    },
                    codec: text(u)?,
                    bitrate: u.arbitrary()?,
                    width: u.arbitrary()?,
                    height: u.arbitrary()?,
                    fps: float(u)?,
                    sample_rate: u.arbitrary()?,
                    channels: u.arbitrary()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MediaMetadata {
            container: text(u)?,
            duration_seconds: float(u)?,
            width: u.arbitrary()?,
            height: u.arbitrary()?,
            bitrate: u.arbitrary()?,
            streams,
        })
    } else {
        Err(text(u)?)
    };
    Ok(Some(MediaFile {
        file_id: file_id(u)?,
        app_id: AppId(1),
        file_name: text(u)?,
        stored_name: text(u)?,
        size: u.arbitrary()?,
        md5: text(u)?,
        create_time: timestamp(u)?,
        source_type: SourceType::ClientUpload,
        source_context: text(u)?,
        source_task_id: None,
        metadata,
    }))
}

fn subtask_spec(u: &mut Unstructured) -> Result<SubtaskSpec> {
    Ok(match u.int_in_range(0..=3)? {
        0 => SubtaskSpec::Transcode {
            definition: u.arbitrary()?,
        },
        1 => SubtaskSpec::SnapshotByTimeOffset {
            definition: u.arbitrary()?,
            time_offsets_ms: u.arbitrary()?,
        },
        2 => SubtaskSpec::ImageSprites {
            definition: u.arbitrary()?,
        },
        _ => SubtaskSpec::CoverBySnapshot {
            definition: u.arbitrary()?,
            position: if u.arbitrary()? {
                CoverPosition::Time(float(u)?)
            } else {
                CoverPosition::Percent(float(u)?)
            },
        },
    })
}

fn plan(u: &mut Unstructured) -> Result<ProcedurePlan> {
    Ok(ProcedurePlan {
        subtasks: (0..u.int_in_range(0..=4)?)
            .map(|_| subtask_spec(u))
            .collect::<Result<_>>()?,
        notify_mode: *u.choose(&[NotifyMode::Finish, NotifyMode::Change, NotifyMode::Never])?,
    })
}

fn play_item(u: &mut Unstructured) -> Result<PlayItem> {
    Ok(PlayItem {
        definition: u.arbitrary()?,
        file_id: file_id(u)?,
        url: text(u)?,
        vbitrate: u.arbitrary()?,
        vwidth: u.arbitrary()?,
        vheight: u.arbitrary()?,
        duration_seconds: float(u)?,
        size: u.arbitrary()?,
    })
}

fn pictures(u: &mut Unstructured) -> Result<Vec<SnapshotPicture>> {
    (0..u.int_in_range(0..=3)?)
        .map(|_| {
            Ok(SnapshotPicture {
                time_offset_ms: u.arbitrary()?,
                status: u.arbitrary()?,
                message: text(u)?,
                file_id: if u.arbitrary()? {
                    Some(file_id(u)?)
                } else {
                    None
                },
                url: text(u)?,
            })
        })
        .collect()
}

fn sprites(u: &mut Unstructured) -> Result<SpriteSet> {
    Ok(SpriteSet {
        file_id: file_id(u)?,
        definition: u.arbitrary()?,
        total_count: u.arbitrary()?,
        image_urls: (0..u.int_in_range(0..=3)?)
            .map(|_| text(u))
            .collect::<Result<_>>()?,
        web_vtt_url: text(u)?,
    })
}

fn output_file(u: &mut Unstructured) -> Result<OutputFile> {
    Ok(OutputFile {
        file_type: *u.choose(&[FileType::Mp4, FileType::M3u8])?,
        file_id: file_id(u)?,
        url: text(u)?,
        duration_seconds: float(u)?,
        size: u.arbitrary()?,
    })
}

fn task(u: &mut Unstructured) -> Result<Task> {
    let kind = u.int_in_range(0..=7)?;
    let spec = match kind {
        0 => TaskSpec::Transcode(TranscodeSpec {
            file_id: file_id(u)?,
            definitions: u.arbitrary()?,
        }),
        1 => TaskSpec::SnapshotByTimeOffset(SnapshotSpec {
            file_id: file_id(u)?,
            definition: u.arbitrary()?,
            time_offsets_ms: u.arbitrary()?,
        }),
        2 => TaskSpec::Concat(ConcatSpec {
            file_ids: vec![file_id(u)?, file_id(u)?],
            output_types: vec![FileType::Mp4, FileType::M3u8],
        }),
        3 => TaskSpec::Clip(ClipSpec {
            file_id: file_id(u)?,
            start_time_offset: float(u)?,
            end_time_offset: float(u)?,
        }),
        4 => TaskSpec::ImageSprites(SpritesSpec {
            file_id: file_id(u)?,
            definition: u.arbitrary()?,
        }),
        5 => TaskSpec::PullUpload(PullSpec {
            media_url: text(u)?,
            file_name: if u.arbitrary()? { Some(text(u)?) } else { None },
            source_context: text(u)?,
            timeout_seconds: u.arbitrary()?,
            procedure: if u.arbitrary()? { Some(plan(u)?) } else { None },
        }),
        6 => TaskSpec::DeleteMedia(DeleteSpec {
            file_ids: (0..u.int_in_range(1..=3)?)
                .map(|_| file_id(u))
                .collect::<Result<_>>()?,
        }),
        _ => TaskSpec::Procedure(ProcedureSpec {
            file_id: file_id(u)?,
            plan: plan(u)?,
        }),
    };
    let output = if u.arbitrary()? {
        Some(match kind {
            0 => TaskOutput::Transcode {
                play_set: (0..u.int_in_range(0..=3)?)
                    .map(|_| play_item(u))
                    .collect::<Result<_>>()?,
            },
            1 => TaskOutput::SnapshotByTimeOffset {
                pictures: pictures(u)?,
            },
            2 => TaskOutput::Concat {
                files: vec![output_file(u)?, output_file(u)?],
            },
            3 => TaskOutput::Clip {
                file: output_file(u)?,
            },
            4 => TaskOutput::ImageSprites(sprites(u)?),
            5 => TaskOutput::PullUpload {
                file_id: file_id(u)?,
                file_url: text(u)?,
                size: u.arbitrary()?,
                procedure_task_id: if u.arbitrary()? { Some(text(u)?) } else { None },
            },
            6 => TaskOutput::DeleteMedia {
                deleted: (0..u.int_in_range(0..=3)?)
                    .map(|_| file_id(u))
                    .collect::<Result<_>>()?,
            },
            _ => {
                let TaskSpec::Procedure(p) = &spec else {
                    unreachable!()
                };
                let subtasks = p
                    .plan
                    .subtasks
                    .iter()
                    .map(|s| subtask_state(u, s.clone()))
                    .collect::<Result<_>>()?;
                TaskOutput::Procedure { subtasks }
            }
        })
    } else {
        None
    };
    let status = if u.arbitrary()? {
        TaskStatus::Finish
    } else {
        TaskStatus::Aborted
    };
    Ok(Task {
        id: TaskId::from_stored(text(u)?),
        app_id: AppId(1),
        status,
        err_code: if u.arbitrary()? { 0 } else { u.arbitrary()? },
        message: text(u)?,
        progress: u.int_in_range(0..=100)?,
        attempt: 1,
        create_time: timestamp(u)?,
        begin_process_time: None,
        finish_time: Some(timestamp(u)?),
        priority: 0,
        session_id: None,
        session_context: text(u)?,
        file_id: if u.arbitrary()? {
            Some(file_id(u)?)
        } else {
            None
        },
        spec,
        output,
        cancel_requested: false,
        previous_attempts: Vec::new(),
    })
}

fn subtask_state(u: &mut Unstructured, spec: SubtaskSpec) -> Result<SubtaskState> {
    let output = if u.arbitrary()? {
        Some(match &spec {
            SubtaskSpec::Transcode { .. } => SubtaskOutput::Transcode(play_item(u)?),
            SubtaskSpec::SnapshotByTimeOffset { .. } => SubtaskOutput::SnapshotByTimeOffset {
                pictures: pictures(u)?,
            },
            SubtaskSpec::ImageSprites { .. } => SubtaskOutput::ImageSprites(sprites(u)?),
            SubtaskSpec::CoverBySnapshot { .. } => SubtaskOutput::CoverBySnapshot {
                file_id: file_id(u)?,
                url: text(u)?,
            },
        })
    } else {
        None
    };
    Ok(SubtaskState {
        spec,
        status: *u.choose(&[
            SubtaskStatus::Waiting,
            SubtaskStatus::Processing,
            SubtaskStatus::Success,
            SubtaskStatus::Fail,
        ])?,
        err_code: u.arbitrary()?,
        message: text(u)?,
        progress: u.int_in_range(0..=100)?,
        begin_time: None,
        finish_time: None,
        output,
    })
}
