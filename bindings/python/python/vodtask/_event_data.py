"""`Event.data` per event type: the envelope's `data` (docs/events.md, "The
envelope"; built in crates/vodtask-core/src/events/envelope.rs) as frozen
dataclasses in snake_case. The envelope spells them in the platform's
camelCase (`vodTaskId`); the codec maps `vod_task_id` to it, so a new
field is one line here. A field an event does not carry (e.g. `play_set`
of a failed transcode) reads as its zero value ("", 0, [], None).

Every task event has `vod_task_id`, `status` (the task's err_code, or 70003
when it was cancelled), `message` and `session_context`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union


@dataclass(frozen=True)
class PlaySetItem:
    url: str
    definition: int
    vbitrate: int
    vheight: int
    vwidth: int


@dataclass(frozen=True)
class TranscodeCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_id: str
    file_name: str
    duration: float
    cover_url: str
    play_set: list[PlaySetItem]  # empty on failure


@dataclass(frozen=True)
class PicInfo:
    time_offset: int  # ms
    url: str
    status: int


@dataclass(frozen=True)
class CreateSnapshotByTimeOffsetCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_id: str
    definition: int
    pic_info: list[PicInfo]


@dataclass(frozen=True)
class EventFileInfo:
    file_type: str  # "mp4" or "m3u8"
    status: int
    message: str
    file_id: str
    file_url: str


@dataclass(frozen=True)
class ConcatCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_info: list[EventFileInfo]  # one per output type


@dataclass(frozen=True)
class ClipCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    src_file_id: str
    file_info: EventFileInfo


@dataclass(frozen=True)
class CreateImageSpriteCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_id: str
    definition: int
    total_count: int
    image_sprite_url: list[str]
    web_vtt_url: str


@dataclass(frozen=True)
class PullCompleteData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_id: str
    file_url: str
    procedure_task_id: str


@dataclass(frozen=True)
class DeletedFile:
    file_id: str


@dataclass(frozen=True)
class FileDeletedData:
    vod_task_id: str
    status: int
    message: str
    session_context: str
    file_info: list[DeletedFile]  # the files and renditions deleted; on failure the files asked for


@dataclass(frozen=True)
class VideoStreamInfo:
    bitrate: int
    height: int
    width: int
    codec: str
    fps: float


@dataclass(frozen=True)
class AudioStreamInfo:
    bitrate: int
    sampling_rate: int
    codec: str


@dataclass(frozen=True)
class ProcedureMetaData:
    size: int
    container: str
    bitrate: int
    height: int
    width: int
    md5: str
    duration: float
    video_stream_list: list[VideoStreamInfo]
    audio_stream_list: list[AudioStreamInfo]


@dataclass(frozen=True)
class ProcessTaskInput:
    """The fields of every subtask type; those of other types are zero."""

    definition: int
    time_offset: list[int]  # SnapshotByTimeOffset
    position_type: str  # CoverBySnapshot: "Time" or "Percent"
    position: float  # CoverBySnapshot


@dataclass(frozen=True)
class ProcessTaskOutput:
    """The fields of every subtask type; those of other types are zero."""

    url: str  # Transcode
    file_id: str
    definition: int
    size: int
    bitrate: int
    height: int
    width: int
    duration: float
    img_info: list[PicInfo]  # SnapshotByTimeOffset
    total_count: int  # ImageSprites
    image_urls: list[str]
    web_vtt_url: str
    image_url: str  # CoverBySnapshot


@dataclass(frozen=True)
class ProcessTask:
    task_type: str  # "Transcode", "SnapshotByTimeOffset", "ImageSprites", "CoverBySnapshot"
    status: str  # "WAITING", "PROCESSING", "SUCCESS", "FAIL"
    err_code: int
    message: str
    progress: int
    input: ProcessTaskInput
    output: ProcessTaskOutput


@dataclass(frozen=True)
class ProcedureStateChangedData:
    vod_task_id: str
    status: str  # "PROCESSING" (a subtask changed, notify mode CHANGE) or "FINISH"
    err_code: int
    message: str
    file_id: str
    session_context: str
    meta_data: Optional[ProcedureMetaData]
    process_task_list: list[ProcessTask]


@dataclass(frozen=True)
class NewFileUploadData:
    file_id: str
    file_name: str
    file_url: str
    cover_url: str
    source_type: str  # "ClientUpload"
    source_context: str
    procedure_task_id: str


EventData = Union[
    TranscodeCompleteData,
    CreateSnapshotByTimeOffsetCompleteData,
    ConcatCompleteData,
    ClipCompleteData,
    CreateImageSpriteCompleteData,
    PullCompleteData,
    FileDeletedData,
    ProcedureStateChangedData,
    NewFileUploadData,
    dict[str, Any],
]
"""`Event.data`: the dataclass of the event's type; for a type this package
does not know yet (a newer server), the envelope's `data` as parsed."""

DATA_TYPES: dict[str, type] = {
    "TranscodeComplete": TranscodeCompleteData,
    "CreateSnapshotByTimeOffsetComplete": CreateSnapshotByTimeOffsetCompleteData,
    "ConcatComplete": ConcatCompleteData,
    "ClipComplete": ClipCompleteData,
    "CreateImageSpriteComplete": CreateImageSpriteCompleteData,
    "PullComplete": PullCompleteData,
    "FileDeleted": FileDeletedData,
    "ProcedureStateChanged": ProcedureStateChangedData,
    "NewFileUpload": NewFileUploadData,
}


def decode_event_data(event_type: str, content_json: str) -> EventData:
    """Called by the native Event and WebhookEvent on the first read of `data`."""
    from ._codec import decoder

    data = json.loads(content_json).get("data")
    if not isinstance(data, dict):
        data = {}
    cls = DATA_TYPES.get(event_type)
    if cls is None:
        return data
    decoded: EventData = decoder(cls, camel=True)(data)
    return decoded
