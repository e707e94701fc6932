//! Task specs, one function per type of `proto/vodtask/v1/tasks.proto`
//! with the proto's field names as keyword arguments. `create_task` also
//! takes the same thing as a dict, `{"transcode": {"file_id": ...}}`, which
//! is read by calling these functions.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use vodtask_client::pb;
use vodtask_client::pb::task_spec::Kind;

use crate::convert::{self, Fields};
use crate::errors::invalid;
use crate::types::TaskSpec;

fn spec(kind: Kind) -> TaskSpec {
    TaskSpec {
        inner: pb::TaskSpec { kind: Some(kind) },
    }
}

fn procedure_plan(
    subtasks: Option<&Bound<'_, PyAny>>,
    notify_mode: &str,
    path: &str,
) -> PyResult<Option<pb::ProcedurePlan>> {
    let Some(subtasks) = subtasks.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    Ok(Some(pb::ProcedurePlan {
        subtasks: convert::subtasks(subtasks, path)?,
        notify_mode: convert::notify_mode("notify_mode", notify_mode)?,
    }))
}

pub fn plan(
    subtasks: Option<&Bound<'_, PyAny>>,
    notify_mode: &str,
) -> PyResult<Option<pb::ProcedurePlan>> {
    procedure_plan(subtasks, notify_mode, "procedure")
}

/// Transcodes a file to one output per definition (MP4 100010..100040,
/// HLS 100210..100240).
#[pyfunction]
pub fn transcode(file_id: String, definitions: Vec<i32>) -> TaskSpec {
    spec(Kind::Transcode(pb::TranscodeSpec {
        file_id,
        definitions,
    }))
}

/// One JPEG per offset (definition 10: source size; 20: 360p).
#[pyfunction]
pub fn snapshot_by_time_offset(
    file_id: String,
    definition: i32,
    time_offsets_ms: Vec<i64>,
) -> TaskSpec {
    spec(Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
        file_id,
        definition,
        time_offsets_ms,
    }))
}

/// Joins 2..20 files in order; one output per type ("MP4", "M3U8").
#[pyfunction]
#[pyo3(signature = (file_ids, output_types=vec!["MP4".to_string()]))]
pub fn concat(file_ids: Vec<String>, output_types: Vec<String>) -> PyResult<TaskSpec> {
    let output_types = output_types
        .iter()
        .enumerate()
        .map(|(i, t)| convert::file_type(&format!("output_types[{i}]"), t))
        .collect::<PyResult<_>>()?;
    Ok(spec(Kind::Concat(pb::ConcatSpec {
        file_ids,
        output_types,
    })))
}

/// The part between two offsets in seconds, as a new MP4 file.
#[pyfunction]
pub fn clip(file_id: String, start_time_offset: f64, end_time_offset: f64) -> TaskSpec {
    spec(Kind::Clip(pb::ClipSpec {
        file_id,
        start_time_offset,
        end_time_offset,
    }))
}

/// Thumbnails tiled into sprite images with a WebVTT index.
#[pyfunction]
pub fn image_sprites(file_id: String, definition: i32) -> TaskSpec {
    spec(Kind::ImageSprites(pb::ImageSpritesSpec {
        file_id,
        definition,
    }))
}

/// Downloads an http(s) URL into the library; `procedure` (a list of
/// subtasks) starts on the new file.
#[pyfunction]
#[pyo3(signature = (media_url, file_name="".to_string(), source_context="".to_string(), timeout_seconds=0, procedure=None, notify_mode="FINISH"))]
pub fn pull_upload(
    media_url: String,
    file_name: String,
    source_context: String,
    timeout_seconds: i32,
    procedure: Option<&Bound<'_, PyAny>>,
    notify_mode: &str,
) -> PyResult<TaskSpec> {
    Ok(spec(Kind::PullUpload(pb::PullUploadSpec {
        media_url,
        file_name,
        source_context,
        timeout_seconds,
        procedure: procedure_plan(procedure, notify_mode, "procedure")?,
    })))
}

/// Removes 1..100 files and their renditions.
#[pyfunction]
pub fn delete_media(file_ids: Vec<String>) -> TaskSpec {
    spec(Kind::DeleteMedia(pb::DeleteMediaSpec { file_ids }))
}

/// Subtasks on one file, e.g. `[{"transcode": {"definition": 100010}},
/// {"snapshot_by_time_offset": {"definition": 10, "time_offsets_ms": [0]}},
/// {"image_sprites": {"definition": 10}}, {"cover_by_snapshot":
/// {"definition": 10, "position_type": "PERCENT", "position": 50}}]`;
/// `notify_mode` "FINISH", "CHANGE" or "NONE".
#[pyfunction]
#[pyo3(signature = (file_id, subtasks, notify_mode="FINISH"))]
pub fn procedure(
    file_id: String,
    subtasks: &Bound<'_, PyAny>,
    notify_mode: &str,
) -> PyResult<TaskSpec> {
    Ok(spec(Kind::Procedure(pb::ProcedureSpec {
        file_id,
        subtasks: convert::subtasks(subtasks, "subtasks")?,
        notify_mode: convert::notify_mode("notify_mode", notify_mode)?,
    })))
}

const KINDS: [&str; 8] = [
    "transcode",
    "snapshot_by_time_offset",
    "concat",
    "clip",
    "image_sprites",
    "pull_upload",
    "delete_media",
    "procedure",
];

/// A TaskSpec, or a dict with one key naming the type whose value holds
/// the keyword arguments of that type's function.
pub fn from_python(spec: &Bound<'_, PyAny>) -> PyResult<pb::TaskSpec> {
    if let Ok(s) = spec.cast::<TaskSpec>() {
        return Ok(s.get().inner.clone());
    }
    let outer = Fields::new(spec, "spec", &KINDS)?;
    let dict = spec.cast::<PyDict>()?;
    if dict.len() != 1 {
        return Err(invalid(format!(
            "spec: exactly one of {} is needed",
            KINDS.join(", ")
        )));
    }
    let module = spec.py().import("vodtask._vodtask")?;
    for name in KINDS {
        let Some(args) = outer.any(name)? else {
            continue;
        };
        let kwargs = args
            .cast::<PyDict>()
            .map_err(|_| invalid(format!("spec.{name}: expected a dict")))?;
        let made = module
            .getattr(name)?
            .call((), Some(kwargs))
            .map_err(|e| invalid(format!("spec.{name}: {e}")))?;
        return Ok(made.cast::<TaskSpec>()?.get().inner.clone());
    }
    Err(invalid("spec: empty"))
}
