//! The walk between a `DynamicMessage` and a JSON tree, both ways.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as Field,
};
use serde_json::{Map, Number, Value};

use super::FieldNames;
use crate::error::{Error, Result};

const TIMESTAMP: &str = "google.protobuf.Timestamp";

pub(super) fn message_to_json(message: &DynamicMessage, names: FieldNames) -> Value {
    let desc = message.descriptor();
    if desc.full_name() == TIMESTAMP {
        return timestamp_to_json(message);
    }
    let mut out = Map::new();
    for field in desc.fields() {
        let set = message.has_field(&field);
        let in_real_oneof = field
            .containing_oneof()
            .is_some_and(|oneof| !oneof.is_synthetic());
        let value = if set || !(field.supports_presence()) {
            field_to_json(&field, &message.get_field(&field), names)
        } else if in_real_oneof {
            continue;
        } else {
            Value::Null
        };
        out.insert(name_of(&field, names).to_string(), value);
    }
    Value::Object(out)
}

fn name_of(field: &FieldDescriptor, names: FieldNames) -> &str {
    match names {
        FieldNames::Proto => field.name(),
        FieldNames::Json => field.json_name(),
    }
}

fn field_to_json(field: &FieldDescriptor, value: &Field, names: FieldNames) -> Value {
    match value {
        Field::List(items) => Value::Array(
            items
                .iter()
                .map(|item| scalar_to_json(&field.kind(), item, names))
                .collect(),
        ),
        Field::Map(entries) => {
            let Kind::Message(entry) = field.kind() else {
                return Value::Null;
            };
            let value_kind = entry.map_entry_value_field().kind();
            let mut out: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| (map_key_text(k), scalar_to_json(&value_kind, v, names)))
                .collect();
            // A HashMap has no order; a stable one makes output comparable.
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(out.into_iter().collect())
        }
        single => scalar_to_json(&field.kind(), single, names),
    }
}

fn scalar_to_json(kind: &Kind, value: &Field, names: FieldNames) -> Value {
    match value {
        Field::Bool(b) => Value::Bool(*b),
        Field::I32(n) => Value::from(*n),
        Field::I64(n) => Value::from(*n),
        Field::U32(n) => Value::from(*n),
        Field::U64(n) => Value::from(*n),
        Field::F32(n) => Number::from_f64(f64::from(*n)).map_or(Value::Null, Value::Number),
        Field::F64(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Field::String(s) => Value::String(s.clone()),
        Field::Bytes(b) => Value::String(BASE64.encode(b)),
        Field::EnumNumber(n) => match kind {
            Kind::Enum(desc) => enum_to_json(desc, *n),
            _ => Value::from(*n),
        },
        Field::Message(m) => message_to_json(m, names),
        Field::List(_) | Field::Map(_) => Value::Null,
    }
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// `TASK_STATUS_FINISH` of `TaskStatus` is `FINISH`.
fn enum_prefix(desc: &EnumDescriptor) -> String {
    let mut prefix = String::new();
    for (i, c) in desc.name().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            prefix.push('_');
        }
        prefix.push(c.to_ascii_uppercase());
    }
    prefix.push('_');
    prefix
}

fn enum_to_json(desc: &EnumDescriptor, number: i32) -> Value {
    match desc.get_value(number) {
        Some(value) => {
            let prefix = enum_prefix(desc);
            let name = value.name();
            Value::String(name.strip_prefix(&prefix).unwrap_or(name).to_string())
        }
        // A value newer than this client's contract.
        None => Value::from(number),
    }
}

fn timestamp_to_json(message: &DynamicMessage) -> Value {
    match message.transcode_to::<prost_types::Timestamp>() {
        Ok(mut ts) => {
            ts.normalize();
            Value::String(ts.to_string())
        }
        Err(_) => Value::Null,
    }
}

// --- from JSON -------------------------------------------------------------

pub(super) fn message_from_json(
    desc: MessageDescriptor,
    value: &Value,
    names: FieldNames,
) -> Result<DynamicMessage> {
    message_at(desc, value, names, &Path::root())
}

/// Where in the request a value is, spelled as the caller spells it.
#[derive(Clone)]
struct Path(String);

impl Path {
    fn root() -> Path {
        Path(String::new())
    }

    fn field(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    fn error(&self, rule: impl std::fmt::Display) -> Error {
        if self.0.is_empty() {
            Error::InvalidInput(format!("request: {rule}"))
        } else {
            Error::InvalidInput(format!("{}: {rule}", self.0))
        }
    }

    fn expected(&self, what: &str, got: &Value) -> Error {
        self.error(format!("expected {what}, got {}", type_name(got)))
    }

    /// For numeric fields: a number of the wrong kind is shown as itself.
    fn expected_number(&self, what: &str, got: &Value) -> Error {
        self.error(format!("expected {what}, got {}", describe(got)))
    }
}

/// A JSON value as an error message names it: its type, or for a number of
/// the wrong kind, the number.
fn describe(value: &Value) -> Cow<'static, str> {
    match value {
        Value::Number(n) => n.to_string().into(),
        other => type_name(other).into(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn message_at(
    desc: MessageDescriptor,
    value: &Value,
    names: FieldNames,
    path: &Path,
) -> Result<DynamicMessage> {
    if desc.full_name() == TIMESTAMP {
        return timestamp_from_json(desc, value, path);
    }
    let Value::Object(object) = value else {
        return Err(path.expected("an object", value));
    };
    let mut message = DynamicMessage::new(desc.clone());
    let mut oneof_set: HashMap<String, String> = HashMap::new();
    for (key, item) in object {
        let field = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key))
            .ok_or_else(|| {
                let known: Vec<String> = desc
                    .fields()
                    .map(|f| name_of(&f, names).to_string())
                    .collect();
                path.field(key).error(format!(
                    "unknown field; expected one of {}",
                    known.join(", ")
                ))
            })?;
        if item.is_null() {
            continue;
        }
        let at = path.field(name_of(&field, names));
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            let this = name_of(&field, names).to_string();
            if let Some(other) = oneof_set.insert(oneof.name().to_string(), this.clone()) {
                return Err(
                    path_or_request(path).error(format!("only one of {other}, {this} may be set"))
                );
            }
        }
        let converted = field_from_json(&field, item, names, &at)?;
        message.set_field(&field, converted);
    }
    Ok(message)
}

/// The path of the message itself, for errors about more than one field.
fn path_or_request(path: &Path) -> Path {
    if path.0.is_empty() {
        Path("request".into())
    } else {
        path.clone()
    }
}

fn field_from_json(
    field: &FieldDescriptor,
    value: &Value,
    names: FieldNames,
    path: &Path,
) -> Result<Field> {
    if field.is_map() {
        let Value::Object(object) = value else {
            return Err(path.expected("an object", value));
        };
        let Kind::Message(entry) = field.kind() else {
            return Err(path.error("not a map field"));
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let mut map = HashMap::with_capacity(object.len());
        for (key, item) in object {
            let at = path.field(key);
            let key =
                map_key_from_text(&key_kind, key).ok_or_else(|| at.error("not a valid key"))?;
            map.insert(key, scalar_from_json(&value_kind, item, names, &at)?);
        }
        return Ok(Field::Map(map));
    }
    if field.is_list() {
        let Value::Array(items) = value else {
            return Err(path.expected("an array", value));
        };
        let kind = field.kind();
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| scalar_from_json(&kind, item, names, &path.index(i)))
            .collect::<Result<Vec<_>>>()
            .map(Field::List);
    }
    scalar_from_json(&field.kind(), value, names, path)
}

fn map_key_from_text(kind: &Kind, text: &str) -> Option<MapKey> {
    Some(match kind {
        Kind::String => MapKey::String(text.to_string()),
        Kind::Bool => MapKey::Bool(text.parse().ok()?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(text.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(text.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(text.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(text.parse().ok()?),
        _ => return None,
    })
}

fn scalar_from_json(kind: &Kind, value: &Value, names: FieldNames, path: &Path) -> Result<Field> {
    let integer = |what: &str| -> Result<i128> {
        value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from))
            .ok_or_else(|| path.expected_number(what, value))
    };
    Ok(match kind {
        Kind::Bool => Field::Bool(
            value
                .as_bool()
                .ok_or_else(|| path.expected("a boolean", value))?,
        ),
        Kind::String => Field::String(
            value
                .as_str()
                .ok_or_else(|| path.expected("a string", value))?
                .to_string(),
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            let what = "a 32-bit integer";
            Field::I32(
                i32::try_from(integer(what)?).map_err(|_| path.expected_number(what, value))?,
            )
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            let what = "an integer";
            Field::I64(
                i64::try_from(integer(what)?).map_err(|_| path.expected_number(what, value))?,
            )
        }
        Kind::Uint32 | Kind::Fixed32 => {
            let what = "an integer in 0..4294967295";
            Field::U32(
                u32::try_from(integer(what)?).map_err(|_| path.expected_number(what, value))?,
            )
        }
        Kind::Uint64 | Kind::Fixed64 => {
            let what = "an integer in 0..18446744073709551615";
            Field::U64(
                u64::try_from(integer(what)?).map_err(|_| path.expected_number(what, value))?,
            )
        }
        Kind::Double => Field::F64(
            value
                .as_f64()
                .ok_or_else(|| path.expected_number("a number", value))?,
        ),
        #[allow(clippy::cast_possible_truncation)] // a float field is declared lossy
        Kind::Float => Field::F32(
            value
                .as_f64()
                .ok_or_else(|| path.expected_number("a number", value))? as f32,
        ),
        Kind::Bytes => {
            let text = value
                .as_str()
                .ok_or_else(|| path.expected("a base64 string", value))?;
            Field::Bytes(
                BASE64
                    .decode(text)
                    .map_err(|e| path.error(format!("not base64: {e}")))?
                    .into(),
            )
        }
        Kind::Enum(desc) => Field::EnumNumber(enum_from_json(desc, value, path)?),
        Kind::Message(desc) => Field::Message(message_at(desc.clone(), value, names, path)?),
    })
}

fn enum_from_json(desc: &EnumDescriptor, value: &Value, path: &Path) -> Result<i32> {
    let prefix = enum_prefix(desc);
    let found = match value {
        Value::String(name) => desc
            .get_value_by_name(name)
            .or_else(|| desc.get_value_by_name(&format!("{prefix}{name}"))),
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(|n| desc.get_value(n)),
        _ => None,
    };
    match found {
        Some(v) => Ok(v.number()),
        None => {
            let choices: Vec<String> = desc
                .values()
                .filter(|v| v.number() != 0)
                .map(|v| {
                    v.name()
                        .strip_prefix(&prefix)
                        .unwrap_or(v.name())
                        .to_string()
                })
                .collect();
            let got = match value {
                Value::String(s) => format!("{s:?}"),
                other => describe(other).into_owned(),
            };
            Err(path.error(format!("expected one of {}, got {got}", choices.join(", "))))
        }
    }
}

fn timestamp_from_json(
    desc: MessageDescriptor,
    value: &Value,
    path: &Path,
) -> Result<DynamicMessage> {
    let what = "an RFC 3339 string or seconds since the epoch";
    let ts = match value {
        Value::String(text) => text
            .parse::<prost_types::Timestamp>()
            .map_err(|_| path.error(format!("expected {what}, got {text:?}")))?,
        Value::Number(n) => {
            let seconds = n
                .as_f64()
                .filter(|s| s.is_finite())
                .ok_or_else(|| path.expected(what, value))?;
            let mut ts = prost_types::Timestamp {
                #[allow(clippy::cast_possible_truncation)] // finite, and far inside i64
                seconds: seconds.floor() as i64,
                #[allow(clippy::cast_possible_truncation)]
                nanos: ((seconds - seconds.floor()) * 1e9).round() as i32,
            };
            ts.normalize();
            ts
        }
        other => return Err(path.error(format!("expected {what}, got {}", type_name(other)))),
    };
    let mut message = DynamicMessage::new(desc);
    message
        .transcode_from(&ts)
        .map_err(|e| path.error(e.to_string()))?;
    Ok(message)
}
