//! Language conversion only: protobuf messages to Python values (dicts in
//! the proto's snake_case, datetimes, enum names) and Python values
//! (task specs, subtasks, enum names) to protobuf messages. Rules about
//! what is valid stay in the server; here a value is refused only when it
//! cannot be converted, with the field named.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use vodtask_client::pb;

use crate::errors::invalid;

/// A string shown the way Python's `repr` shows it, for `__repr__`s.
pub struct Q<'a>(pub &'a str);

impl std::fmt::Debug for Q<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("'")?;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\'' => f.write_str("\\'")?,
                '\n' => f.write_str("\\n")?,
                c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("'")
    }
}

/// `True` / `False`.
pub fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `FILE_TYPE_MP4` → `MP4`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// An enum name given in Python (`"mp4"`, `"MP4"`) to its value.
fn enum_value(
    field: &str,
    given: &str,
    prefix: &str,
    parse: impl Fn(&str) -> Option<i32>,
) -> PyResult<i32> {
    parse(&format!("{prefix}{}", given.to_ascii_uppercase()))
        .ok_or_else(|| invalid(format!("{field}: unknown value {given:?}")))
}

pub fn file_type(field: &str, given: &str) -> PyResult<i32> {
    enum_value(field, given, "FILE_TYPE_", |s| {
        pb::FileType::from_str_name(s).map(|v| v as i32)
    })
}

pub fn notify_mode(field: &str, given: &str) -> PyResult<i32> {
    enum_value(field, given, "NOTIFY_MODE_", |s| {
        pb::NotifyMode::from_str_name(s).map(|v| v as i32)
    })
}

pub fn delivery_mode(field: &str, given: &str) -> PyResult<i32> {
    enum_value(field, given, "DELIVERY_MODE_", |s| {
        pb::DeliveryMode::from_str_name(s).map(|v| v as i32)
    })
}

fn position_type(field: &str, given: &str) -> PyResult<i32> {
    enum_value(field, given, "POSITION_TYPE_", |s| {
        pb::PositionType::from_str_name(s).map(|v| v as i32)
    })
}

fn file_type_name(v: i32) -> String {
    pb::FileType::try_from(v)
        .map_or_else(|_| v.to_string(), |t| short(t.as_str_name(), "FILE_TYPE_"))
}

pub fn handle_status_name(s: pb::HandleStatus) -> String {
    short(s.as_str_name(), "HANDLE_STATUS_")
}

/// A protobuf timestamp as an aware UTC `datetime`, None when unset.
pub fn datetime<'py>(
    py: Python<'py>,
    t: Option<&prost_types::Timestamp>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(t) = t else {
        return Ok(py.None().into_bound(py));
    };
    let dt = py.import("datetime")?;
    let utc = dt.getattr("timezone")?.getattr("utc")?;
    let secs = t.seconds as f64 + f64::from(t.nanos) / 1e9;
    dt.getattr("datetime")?
        .call_method1("fromtimestamp", (secs, utc))
}

/// A Python `datetime` (aware, or naive in local time) or a number of
/// seconds since the epoch, as a protobuf timestamp.
pub fn timestamp(field: &str, v: &Bound<'_, PyAny>) -> PyResult<prost_types::Timestamp> {
    let secs: f64 = if v.hasattr("timestamp")? {
        v.call_method0("timestamp")?.extract()?
    } else {
        v.extract()
            .map_err(|_| invalid(format!("{field}: a datetime or seconds since the epoch")))?
    };
    if !secs.is_finite() {
        return Err(invalid(format!("{field}: not a finite time")));
    }
    let whole = secs.floor();
    Ok(prost_types::Timestamp {
        seconds: whole as i64,
        nanos: ((secs - whole) * 1e9) as i32,
    })
}

pub fn time_range(
    field: &str,
    after: Option<&Bound<'_, PyAny>>,
    before: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<pb::TimeRange>> {
    if after.is_none() && before.is_none() {
        return Ok(None);
    }
    Ok(Some(pb::TimeRange {
        after: after
            .map(|a| timestamp(&format!("{field}_after"), a))
            .transpose()?,
        before: before
            .map(|b| timestamp(&format!("{field}_before"), b))
            .transpose()?,
    }))
}

/// A dict read field by field: unknown keys are refused by name.
pub struct Fields<'py> {
    dict: Bound<'py, PyDict>,
    path: String,
}

impl<'py> Fields<'py> {
    pub fn new(obj: &Bound<'py, PyAny>, path: &str, allowed: &[&str]) -> PyResult<Self> {
        let dict = obj
            .cast::<PyDict>()
            .map_err(|_| invalid(format!("{path}: expected a dict")))?
            .clone();
        for key in dict.keys() {
            let key: String = key
                .extract()
                .map_err(|_| invalid(format!("{path}: keys must be strings")))?;
            if !allowed.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "{path}.{key}: unknown field (known: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Fields {
            dict,
            path: path.to_string(),
        })
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub fn any(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.dict.get_item(key)?.filter(|v| !v.is_none()))
    }

    pub fn opt<T>(&self, key: &str) -> PyResult<Option<T>>
    where
        T: pyo3::conversion::FromPyObjectOwned<'py>,
    {
        match self.any(key)? {
            None => Ok(None),
            Some(v) => v.extract::<T>().map(Some).map_err(|e| {
                let e: PyErr = e.into();
                invalid(format!("{}: {e}", self.path(key)))
            }),
        }
    }

    pub fn req<T>(&self, key: &str) -> PyResult<T>
    where
        T: pyo3::conversion::FromPyObjectOwned<'py>,
    {
        self.opt(key)?
            .ok_or_else(|| invalid(format!("{}: required", self.path(key))))
    }
}

/// `{"transcode": {"definition": 100010}}` and the like, as the proto's
/// SubtaskSpec.
pub fn subtask(v: &Bound<'_, PyAny>, path: &str) -> PyResult<pb::SubtaskSpec> {
    use pb::subtask_spec::Kind;
    const KINDS: [&str; 4] = [
        "transcode",
        "snapshot_by_time_offset",
        "image_sprites",
        "cover_by_snapshot",
    ];
    let outer = Fields::new(v, path, &KINDS)?;
    if outer.dict.len() != 1 {
        return Err(invalid(format!(
            "{path}: exactly one of {} is needed",
            KINDS.join(", ")
        )));
    }
    let mut kind = None;
    for name in KINDS {
        let Some(inner) = outer.any(name)? else {
            continue;
        };
        let p = outer.path(name);
        kind = Some(match name {
            "transcode" => {
                let f = Fields::new(&inner, &p, &["definition"])?;
                Kind::Transcode(pb::TranscodeSubtask {
                    definition: f.req("definition")?,
                })
            }
            "snapshot_by_time_offset" => {
                let f = Fields::new(&inner, &p, &["definition", "time_offsets_ms"])?;
                Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSubtask {
                    definition: f.req("definition")?,
                    time_offsets_ms: f.req("time_offsets_ms")?,
                })
            }
            "image_sprites" => {
                let f = Fields::new(&inner, &p, &["definition"])?;
                Kind::ImageSprites(pb::ImageSpritesSubtask {
                    definition: f.req("definition")?,
                })
            }
            _ => {
                let f = Fields::new(&inner, &p, &["definition", "position_type", "position"])?;
                let position_type = match f.opt::<String>("position_type")? {
                    Some(s) => position_type(&f.path("position_type"), &s)?,
                    None => 0,
                };
                Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
                    definition: f.req("definition")?,
                    position_type,
                    position: f.opt("position")?.unwrap_or(0.0),
                })
            }
        });
    }
    Ok(pb::SubtaskSpec { kind })
}

pub fn subtasks(v: &Bound<'_, PyAny>, path: &str) -> PyResult<Vec<pb::SubtaskSpec>> {
    let mut out = Vec::new();
    for (i, item) in v
        .try_iter()
        .map_err(|_| invalid(format!("{path}: expected a list of subtasks")))?
        .enumerate()
    {
        out.push(subtask(&item?, &format!("{path}[{i}]"))?);
    }
    Ok(out)
}

type Dict<'py> = Bound<'py, PyDict>;

fn output_file<'py>(py: Python<'py>, f: &pb::OutputFile) -> PyResult<Dict<'py>> {
    let d = PyDict::new(py);
    d.set_item("file_type", file_type_name(f.file_type))?;
    d.set_item("file_id", &f.file_id)?;
    d.set_item("url", &f.url)?;
    d.set_item("duration_seconds", f.duration_seconds)?;
    d.set_item("size", f.size)?;
    Ok(d)
}

fn play_item<'py>(py: Python<'py>, p: &pb::PlayItem) -> PyResult<Dict<'py>> {
    let d = PyDict::new(py);
    d.set_item("definition", p.definition)?;
    d.set_item("file_id", &p.file_id)?;
    d.set_item("url", &p.url)?;
    d.set_item("vbitrate", p.vbitrate)?;
    d.set_item("vwidth", p.vwidth)?;
    d.set_item("vheight", p.vheight)?;
    d.set_item("duration_seconds", p.duration_seconds)?;
    d.set_item("size", p.size)?;
    Ok(d)
}

fn pictures<'py>(py: Python<'py>, o: &pb::SnapshotByTimeOffsetOutput) -> PyResult<Dict<'py>> {
    let list = PyList::empty(py);
    for p in &o.pictures {
        let d = PyDict::new(py);
        d.set_item("time_offset_ms", p.time_offset_ms)?;
        d.set_item("status", p.status)?;
        d.set_item("message", &p.message)?;
        d.set_item("file_id", &p.file_id)?;
        d.set_item("url", &p.url)?;
        list.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item("pictures", list)?;
    Ok(d)
}

fn sprites<'py>(py: Python<'py>, o: &pb::ImageSpritesOutput) -> PyResult<Dict<'py>> {
    let d = PyDict::new(py);
    d.set_item("file_id", &o.file_id)?;
    d.set_item("definition", o.definition)?;
    d.set_item("total_count", o.total_count)?;
    d.set_item("image_urls", &o.image_urls)?;
    d.set_item("web_vtt_url", &o.web_vtt_url)?;
    Ok(d)
}

fn subtask_spec<'py>(py: Python<'py>, s: &pb::SubtaskSpec) -> PyResult<Dict<'py>> {
    use pb::subtask_spec::Kind;
    let d = PyDict::new(py);
    let inner = PyDict::new(py);
    match &s.kind {
        Some(Kind::Transcode(t)) => {
            inner.set_item("definition", t.definition)?;
            d.set_item("transcode", inner)?;
        }
        Some(Kind::SnapshotByTimeOffset(t)) => {
            inner.set_item("definition", t.definition)?;
            inner.set_item("time_offsets_ms", &t.time_offsets_ms)?;
            d.set_item("snapshot_by_time_offset", inner)?;
        }
        Some(Kind::ImageSprites(t)) => {
            inner.set_item("definition", t.definition)?;
            d.set_item("image_sprites", inner)?;
        }
        Some(Kind::CoverBySnapshot(t)) => {
            inner.set_item("definition", t.definition)?;
            let pt = pb::PositionType::try_from(t.position_type).map_or_else(
                |_| "UNSPECIFIED".into(),
                |p| short(p.as_str_name(), "POSITION_TYPE_"),
            );
            inner.set_item("position_type", pt)?;
            inner.set_item("position", t.position)?;
            d.set_item("cover_by_snapshot", inner)?;
        }
        None => {}
    }
    Ok(d)
}

fn subtask_output<'py>(py: Python<'py>, o: &pb::SubtaskOutput) -> PyResult<Dict<'py>> {
    use pb::subtask_output::Kind;
    let d = PyDict::new(py);
    match &o.kind {
        Some(Kind::Transcode(p)) => d.set_item("transcode", play_item(py, p)?)?,
        Some(Kind::SnapshotByTimeOffset(s)) => {
            d.set_item("snapshot_by_time_offset", pictures(py, s)?)?
        }
        Some(Kind::ImageSprites(s)) => d.set_item("image_sprites", sprites(py, s)?)?,
        Some(Kind::CoverBySnapshot(c)) => {
            let inner = PyDict::new(py);
            inner.set_item("file_id", &c.file_id)?;
            inner.set_item("url", &c.url)?;
            d.set_item("cover_by_snapshot", inner)?
        }
        None => {}
    }
    Ok(d)
}

fn plan<'py>(
    py: Python<'py>,
    subtasks: &[pb::SubtaskSpec],
    notify_mode: i32,
) -> PyResult<(Bound<'py, PyList>, String)> {
    let list = PyList::empty(py);
    for s in subtasks {
        list.append(subtask_spec(py, s)?)?;
    }
    let mode = pb::NotifyMode::try_from(notify_mode).map_or_else(
        |_| notify_mode.to_string(),
        |m| short(m.as_str_name(), "NOTIFY_MODE_"),
    );
    Ok((list, mode))
}

/// A task's output as `{"transcode": {"play_set": [...]}}` and the like.
pub fn task_output<'py>(py: Python<'py>, o: &pb::TaskOutput) -> PyResult<Dict<'py>> {
    use pb::task_output::Kind;
    let d = PyDict::new(py);
    let inner = PyDict::new(py);
    match &o.kind {
        Some(Kind::Transcode(t)) => {
            let list = PyList::empty(py);
            for p in &t.play_set {
                list.append(play_item(py, p)?)?;
            }
            inner.set_item("play_set", list)?;
            d.set_item("transcode", inner)?;
        }
        Some(Kind::SnapshotByTimeOffset(s)) => {
            d.set_item("snapshot_by_time_offset", pictures(py, s)?)?
        }
        Some(Kind::Concat(c)) => {
            let list = PyList::empty(py);
            for f in &c.files {
                list.append(output_file(py, f)?)?;
            }
            inner.set_item("files", list)?;
            d.set_item("concat", inner)?;
        }
        Some(Kind::Clip(c)) => {
            let file = match &c.file {
                Some(f) => output_file(py, f)?.into_any(),
                None => py.None().into_bound(py),
            };
            inner.set_item("file", file)?;
            d.set_item("clip", inner)?;
        }
        Some(Kind::ImageSprites(s)) => d.set_item("image_sprites", sprites(py, s)?)?,
        Some(Kind::PullUpload(p)) => {
            inner.set_item("file_id", &p.file_id)?;
            inner.set_item("file_url", &p.file_url)?;
            inner.set_item("size", p.size)?;
            inner.set_item("procedure_task_id", &p.procedure_task_id)?;
            d.set_item("pull_upload", inner)?;
        }
        Some(Kind::DeleteMedia(x)) => {
            inner.set_item("deleted_file_ids", &x.deleted_file_ids)?;
            d.set_item("delete_media", inner)?;
        }
        Some(Kind::Procedure(p)) => {
            let list = PyList::empty(py);
            for s in &p.subtasks {
                let sd = PyDict::new(py);
                let input = match &s.input {
                    Some(i) => subtask_spec(py, i)?.into_any(),
                    None => py.None().into_bound(py),
                };
                sd.set_item("input", input)?;
                let status = pb::SubtaskStatus::try_from(s.status).map_or_else(
                    |_| s.status.to_string(),
                    |st| short(st.as_str_name(), "SUBTASK_STATUS_"),
                );
                sd.set_item("status", status)?;
                sd.set_item("err_code", s.err_code)?;
                sd.set_item("message", &s.message)?;
                sd.set_item("progress", s.progress)?;
                sd.set_item("begin_time", datetime(py, s.begin_time.as_ref())?)?;
                sd.set_item("finish_time", datetime(py, s.finish_time.as_ref())?)?;
                let output = match &s.output {
                    Some(o) => subtask_output(py, o)?.into_any(),
                    None => py.None().into_bound(py),
                };
                sd.set_item("output", output)?;
                list.append(sd)?;
            }
            inner.set_item("subtasks", list)?;
            d.set_item("procedure", inner)?;
        }
        None => {}
    }
    Ok(d)
}

/// A task spec as the dict that `create_task` accepts.
pub fn task_spec<'py>(py: Python<'py>, s: &pb::TaskSpec) -> PyResult<Dict<'py>> {
    use pb::task_spec::Kind;
    let d = PyDict::new(py);
    let i = PyDict::new(py);
    let name = match &s.kind {
        Some(Kind::Transcode(t)) => {
            i.set_item("file_id", &t.file_id)?;
            i.set_item("definitions", &t.definitions)?;
            "transcode"
        }
        Some(Kind::SnapshotByTimeOffset(t)) => {
            i.set_item("file_id", &t.file_id)?;
            i.set_item("definition", t.definition)?;
            i.set_item("time_offsets_ms", &t.time_offsets_ms)?;
            "snapshot_by_time_offset"
        }
        Some(Kind::Concat(c)) => {
            i.set_item("file_ids", &c.file_ids)?;
            let types: Vec<String> = c.output_types.iter().map(|t| file_type_name(*t)).collect();
            i.set_item("output_types", types)?;
            "concat"
        }
        Some(Kind::Clip(c)) => {
            i.set_item("file_id", &c.file_id)?;
            i.set_item("start_time_offset", c.start_time_offset)?;
            i.set_item("end_time_offset", c.end_time_offset)?;
            "clip"
        }
        Some(Kind::ImageSprites(x)) => {
            i.set_item("file_id", &x.file_id)?;
            i.set_item("definition", x.definition)?;
            "image_sprites"
        }
        Some(Kind::PullUpload(p)) => {
            i.set_item("media_url", &p.media_url)?;
            i.set_item("file_name", &p.file_name)?;
            i.set_item("source_context", &p.source_context)?;
            i.set_item("timeout_seconds", p.timeout_seconds)?;
            match &p.procedure {
                Some(pp) => {
                    let (list, mode) = plan(py, &pp.subtasks, pp.notify_mode)?;
                    i.set_item("procedure", list)?;
                    i.set_item("notify_mode", mode)?;
                }
                None => i.set_item("procedure", py.None())?,
            }
            "pull_upload"
        }
        Some(Kind::DeleteMedia(x)) => {
            i.set_item("file_ids", &x.file_ids)?;
            "delete_media"
        }
        Some(Kind::Procedure(p)) => {
            i.set_item("file_id", &p.file_id)?;
            let (list, mode) = plan(py, &p.subtasks, p.notify_mode)?;
            i.set_item("subtasks", list)?;
            i.set_item("notify_mode", mode)?;
            "procedure"
        }
        None => return Ok(d),
    };
    d.set_item(name, i)?;
    Ok(d)
}

/// Parses JSON text into Python values with the standard library.
pub fn json_loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}
