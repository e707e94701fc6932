"""Task specs, one function per task type of proto/vodtask/v1/tasks.proto
with the proto's field names as arguments; each returns a TaskSpec. The
arguments are checked against the spec's dataclass (a wrong type raises
InvalidArgument naming the function and the field); the rules about
values stay with the server."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any, Optional, Union

from ._client import Subtask, _checked
from ._types import FileType, NotifyMode, TaskSpec

_SPEC_TYPES = typing.get_type_hints(TaskSpec)


def _spec(kind: str, **fields: Any) -> TaskSpec:
    spec_type = typing.get_args(_SPEC_TYPES[kind])[0]  # Optional[XSpec] -> XSpec
    return TaskSpec(**{kind: _checked(kind, spec_type, fields, "")})


def _plan(subtasks: Optional[Iterable[Subtask]], notify_mode: Union[NotifyMode, str]) -> Optional[dict[str, Any]]:
    if subtasks is None:
        return None
    return {"subtasks": subtasks, "notify_mode": notify_mode}


def transcode(file_id: str, definitions: Sequence[int]) -> TaskSpec:
    """One output per definition (MP4 100010..100040, HLS 100210..100240)."""
    return _spec("transcode", file_id=file_id, definitions=definitions)


def snapshot_by_time_offset(file_id: str, definition: int, time_offsets_ms: Sequence[int]) -> TaskSpec:
    """One JPEG per offset (definition 10: source size; 20: 360p)."""
    return _spec("snapshot_by_time_offset", file_id=file_id, definition=definition, time_offsets_ms=time_offsets_ms)


def concat(file_ids: Sequence[str], output_types: Sequence[Union[FileType, str]] = (FileType.MP4,)) -> TaskSpec:
    """Joins 2..20 files in order; one output per type ("MP4", "M3U8")."""
    return _spec("concat", file_ids=file_ids, output_types=output_types)


def clip(file_id: str, start_time_offset: float, end_time_offset: float) -> TaskSpec:
    """The part between two offsets in seconds, as a new MP4 file."""
    return _spec("clip", file_id=file_id, start_time_offset=start_time_offset, end_time_offset=end_time_offset)


def image_sprites(file_id: str, definition: int) -> TaskSpec:
    """Thumbnails tiled into sprite images with a WebVTT index."""
    return _spec("image_sprites", file_id=file_id, definition=definition)


def pull_upload(
    media_url: str,
    file_name: str = "",
    source_context: str = "",
    timeout_seconds: int = 0,
    procedure: Optional[Iterable[Subtask]] = None,
    notify_mode: Union[NotifyMode, str] = NotifyMode.FINISH,
) -> TaskSpec:
    """Downloads an http(s) URL into the library; `procedure` (a list of
    subtasks) starts on the new file."""
    return _spec(
        "pull_upload",
        media_url=media_url,
        file_name=file_name,
        source_context=source_context,
        timeout_seconds=timeout_seconds,
        procedure=_plan(procedure, notify_mode),
    )


def delete_media(file_ids: Sequence[str]) -> TaskSpec:
    """Removes 1..100 files and their renditions."""
    return _spec("delete_media", file_ids=file_ids)


def procedure(
    file_id: str, subtasks: Iterable[Subtask], notify_mode: Union[NotifyMode, str] = NotifyMode.FINISH
) -> TaskSpec:
    """Subtasks on one file, e.g. `[{"transcode": {"definition": 100010}},
    {"snapshot_by_time_offset": {"definition": 10, "time_offsets_ms": [0]}},
    {"image_sprites": {"definition": 10}}, {"cover_by_snapshot":
    {"definition": 10, "position_type": "PERCENT", "position": 50}}]`;
    `notify_mode` "FINISH", "CHANGE" or "NONE"."""
    return _spec("procedure", file_id=file_id, subtasks=subtasks, notify_mode=notify_mode)

