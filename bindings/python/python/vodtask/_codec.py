"""The one generic converter between JSON trees and the dataclasses of
`_types.py` and `_event_data.py`, driven by their type hints: dataclasses,
Optional[X], list[X], dict[K, V], str enums, datetimes (RFC 3339 strings),
int, float, str, bool.

- `decoder(cls)`: a function from a tree the native module produced to `cls`.
  Lenient, as a reader of a newer server must be: unknown keys are ignored,
  a missing or null key gives the field's zero value ("", 0, [], {}, None),
  an enum value this package does not know stays a plain string. Compiled
  once per type, as a tree of closures.
- `convert(tp, value, path)`: what a user passed (dicts, strings for enums,
  the dataclasses themselves) to `tp`. Strict: a wrong type or an unknown
  key raises ConvertError naming the path.
- `encode(value)`: a dataclass (or anything holding them) as a tree for
  json.dumps, in the proto's names; None fields are left out (unset).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Union

Decode = Callable[[Any], Any]

_UTC = datetime.timezone.utc
_NONE_TYPE = type(None)


class ConvertError(Exception):
    """A value given to a call that does not fit; the message starts with its path."""


def camel(name: str) -> str:
    """`vod_task_id` -> `vodTaskId`: the envelope's spelling of a field."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time ("2026-12-07T12:14:52.123Z", any offset, 0..9
    fractional digits) as an aware UTC datetime. By hand because
    `fromisoformat` reads neither `Z` nor 9 digits before Python 3.11."""
    rest = text[19:]
    micros = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        micros = int((rest[1:end] + "00000")[:6])
        rest = rest[end:]
    if rest in ("Z", "z", ""):
        tz = _UTC
    else:
        sign = -1 if rest[0] == "-" else 1
        offset = datetime.timedelta(hours=int(rest[1:3]), minutes=int(rest[4:6]))
        tz = datetime.timezone(sign * offset)
    parsed = datetime.datetime(
        int(text[0:4]), int(text[5:7]), int(text[8:10]),
        int(text[11:13]), int(text[14:16]), int(text[17:19]), micros, tz,
    )  # fmt: skip
    return parsed if tz is _UTC else parsed.astimezone(_UTC)


def _optional_inner(tp: Any) -> Any:
    """X for Optional[X], else None."""
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not _NONE_TYPE]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _hints(cls: type) -> dict[str, Any]:
    hints: dict[str, Any] = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# --- decoding (trees from the native module) ----------------------------------

_decoders: dict[tuple[Any, bool], Decode] = {}
# Types the codec does not build itself (the native Event), by their decoder.
_custom: dict[Any, Decode] = {}


def register(tp: Any, decode: Decode) -> None:
    """Decodes `tp` with `decode` (for classes that are not dataclasses)."""
    _custom[tp] = decode


def decoder(tp: Any, camel: bool = False) -> Decode:
    """The function that decodes a tree into `tp`; `camel`: the tree spells
    keys in camelCase (event data)."""
    key = (tp, camel)
    found = _decoders.get(key)
    if found is None:
        found = _decoders[key] = _compile(tp, camel)
    return found


def zero(tp: Any) -> Any:
    """The value of a field the tree leaves out or sets to null."""
    origin = typing.get_origin(tp)
    if origin is Union:
        return None
    if origin is list:
        return []
    if origin is dict:
        return {}
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return tp.__members__.get("UNSPECIFIED", "")
        if dataclasses.is_dataclass(tp):
            return decoder(tp)({})
        if tp in (str, int, float, bool):
            return tp()
    return None


def _compile(tp: Any, camel_keys: bool) -> Decode:
    if tp in _custom:
        return _custom[tp]
    inner = _optional_inner(tp)
    if inner is not None:
        decode_inner = decoder(inner, camel_keys)
        return lambda v: None if v is None else decode_inner(v)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        decode_item = decoder(item_type, camel_keys)
        return lambda v: [decode_item(x) for x in v] if v else []
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        decode_key = decoder(key_type, camel_keys)
        decode_value = decoder(value_type, camel_keys)
        return lambda v: {decode_key(k): decode_value(x) for k, x in v.items()} if v else {}
    if not isinstance(tp, type):
        return lambda v: v  # Any
    if dataclasses.is_dataclass(tp):
        return _compile_dataclass(tp, camel_keys)
    if issubclass(tp, enum.Enum):
        members = {m.value: m for m in tp}
        return lambda v: members.get(v, v)
    if tp is datetime.datetime:
        return lambda v: None if v is None else parse_time(v)
    if tp is float:
        return float
    return lambda v: v  # str, int, bool: JSON has them as they are


def _compile_dataclass(cls: type, camel_keys: bool) -> Decode:
    # Fields are compiled on first use, so that a type may refer to itself.
    fields: list[tuple[str, str, Decode, Any]] = []

    def decode(tree: Any) -> Any:
        if tree is None:
            return None
        if not fields:
            for name, hint in _hints(cls).items():
                key = camel(name) if camel_keys else name
                fields.append((name, key, decoder(hint, camel_keys), hint))
        values = {}
        get = tree.get
        for name, key, decode_field, hint in fields:
            value = get(key)
            values[name] = zero(hint) if value is None else decode_field(value)
        return cls(**values)

    return decode


# --- converting what users pass -----------------------------------------------


def _kind(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def convert(tp: Any, value: Any, path: str) -> Any:
    """`value` as `tp`, checked; ConvertError names `path` if it does not fit."""
    inner = _optional_inner(tp)
    if inner is not None:
        return None if value is None else convert(inner, value, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise ConvertError(f"{path}: expected a list, got {type(value).__name__}")
        return [convert(item_type, x, f"{path}[{i}]") for i, x in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConvertError(f"{path}: expected a dict, got {type(value).__name__}")
        return {
            convert(key_type, k, path): convert(value_type, x, f"{path}.{k}")
            for k, x in value.items()
        }
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _convert_enum(tp, value, path)
    if tp is datetime.datetime:
        if isinstance(value, datetime.datetime):
            return value
        raise ConvertError(f"{path}: expected a datetime, got {type(value).__name__}")
    # bool is an int to Python, never to the contract.
    fits = isinstance(value, tp) and not (tp is not bool and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not fits:
        raise ConvertError(f"{path}: expected {_kind(tp)}, got {type(value).__name__}")
    return value


def _convert_dataclass(cls: type, value: Any, path: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConvertError(f"{path}: expected a {cls.__name__} or a dict, got {type(value).__name__}")
    hints = _hints(cls)
    prefix = f"{path}." if path else ""
    for key in value:
        if key not in hints:
            raise ConvertError(f"{prefix}{key}: unknown field; expected one of {', '.join(hints)}")
    values = {
        name: zero(hint) if value.get(name) is None else convert(hint, value[name], prefix + name)
        for name, hint in hints.items()
    }
    return cls(**values)


def _convert_enum(cls: type[enum.Enum], value: Any, path: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        # "FINISH", "finish", or the proto's full name "TASK_STATUS_FINISH".
        name = value.upper()
        member = cls.__members__.get(name)
        for candidate in cls.__members__:
            if member is None and name.endswith("_" + candidate):
                member = cls.__members__[candidate]
        if member is not None:
            return member
    names = ", ".join(m for m in cls.__members__ if m != "UNSPECIFIED")
    raise ConvertError(f"{path}: expected one of {names}, got {value!r}")


# --- encoding -----------------------------------------------------------------


def encode(value: Any) -> Any:
    """A tree for json.dumps: dataclasses as dicts (None fields left out),
    enums as their names, datetimes as RFC 3339 (naive ones in local time)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: encode(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not None
        }
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo is not None else value.astimezone()
        return aware.isoformat()
    if isinstance(value, Mapping):
        return {encode(k): encode(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        return [encode(v) for v in value]
    return value  # json.dumps refuses it (`dumps` below names the call)


def dumps(call: str, request: Any) -> str:
    """The request as JSON text; a value JSON has no form for is a ConvertError."""
    try:
        return json.dumps(encode(request))
    except (TypeError, ValueError) as e:
        raise ConvertError(f"{call}: {e}") from None
