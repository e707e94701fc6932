"""The messages of the contract (proto/vodtask/v1/*.proto) as frozen
dataclasses and its enums as `enum.Enum`s: one line per field, in the
proto's names. The codec (`_codec.py`) reads and writes them from their
type hints, so a new proto field needs one line here and nothing else.

Times are aware UTC datetimes (None when unset); 64-bit integers are ints.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any, Optional

from ._codec import encode


class ProtoEnum(str, enum.Enum):
    """A proto enum: each member's value is its short name ("FINISH"), so a
    member equals that string and a string is accepted wherever the enum is.
    A value a newer server sends and this package does not know yet comes
    as the plain string."""

    # The same text on every Python version (3.12 changed how f-strings
    # show enums that mix in str).
    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class Message:
    """Base of every message: `to_dict()` gives the message as the dicts
    the calls accept (proto names; enums, times as strings; unset fields left out)."""

    def to_dict(self) -> dict[str, Any]:
        encoded: dict[str, Any] = encode(self)
        return encoded


class OneOf(Message):
    """A message that is a proto `oneof`: exactly one field is set."""

    @property
    def kind(self) -> Optional[str]:
        """The name of the field that is set, e.g. "transcode"."""
        for name, value in vars(self).items():
            if value is not None:
                return name
        return None


# --- enums ------------------------------------------------------------------


class TaskStatus(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    WAITING = "WAITING"
    PROCESSING = "PROCESSING"
    FINISH = "FINISH"  # ended; err_code says whether it succeeded (0)
    ABORTED = "ABORTED"  # cancelled before it could finish


class TaskType(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    TRANSCODE = "TRANSCODE"
    SNAPSHOT_BY_TIME_OFFSET = "SNAPSHOT_BY_TIME_OFFSET"
    CONCAT = "CONCAT"
    CLIP = "CLIP"
    IMAGE_SPRITES = "IMAGE_SPRITES"
    PULL_UPLOAD = "PULL_UPLOAD"
    DELETE_MEDIA = "DELETE_MEDIA"
    PROCEDURE = "PROCEDURE"


class FileType(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    MP4 = "MP4"
    M3U8 = "M3U8"


class NotifyMode(ProtoEnum):
    """When ProcedureStateChanged is sent."""

    UNSPECIFIED = "UNSPECIFIED"
    FINISH = "FINISH"
    CHANGE = "CHANGE"
    NONE = "NONE"


class PositionType(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    TIME = "TIME"
    PERCENT = "PERCENT"


class SubtaskStatus(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    WAITING = "WAITING"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"


class TaskSortBy(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    CREATE_TIME = "CREATE_TIME"
    FINISH_TIME = "FINISH_TIME"


class SortOrder(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    ASC = "ASC"
    DESC = "DESC"


class SourceType(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    CLIENT_UPLOAD = "CLIENT_UPLOAD"
    TASK_OUTPUT = "TASK_OUTPUT"
    PULL = "PULL"


class HandleStatus(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    CONFIRMED = "CONFIRMED"
    ALREADY_CONFIRMED = "ALREADY_CONFIRMED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"
    EXTENDED = "EXTENDED"
    NACKED = "NACKED"


class DeliveryMode(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    PULL = "PULL"
    PUSH = "PUSH"


class CircuitState(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class AttemptOutcome(ProtoEnum):
    UNSPECIFIED = "UNSPECIFIED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    GONE = "GONE"


# --- task specs (tasks.proto) -------------------------------------------------


@dataclass(frozen=True)
class TranscodeSpec(Message):
    file_id: str
    definitions: list[int]


@dataclass(frozen=True)
class SnapshotByTimeOffsetSpec(Message):
    file_id: str
    definition: int
    time_offsets_ms: list[int]


@dataclass(frozen=True)
class ConcatSpec(Message):
    file_ids: list[str]
    output_types: list[FileType]


@dataclass(frozen=True)
class ClipSpec(Message):
    file_id: str
    start_time_offset: float
    end_time_offset: float


@dataclass(frozen=True)
class ImageSpritesSpec(Message):
    file_id: str
    definition: int


@dataclass(frozen=True)
class TranscodeSubtask(Message):
    definition: int


@dataclass(frozen=True)
class SnapshotByTimeOffsetSubtask(Message):
    definition: int
    time_offsets_ms: list[int]


@dataclass(frozen=True)
class ImageSpritesSubtask(Message):
    definition: int


@dataclass(frozen=True)
class CoverBySnapshotSubtask(Message):
    definition: int
    position_type: PositionType
    position: float


@dataclass(frozen=True)
class SubtaskSpec(OneOf):
    transcode: Optional[TranscodeSubtask] = None
    snapshot_by_time_offset: Optional[SnapshotByTimeOffsetSubtask] = None
    image_sprites: Optional[ImageSpritesSubtask] = None
    cover_by_snapshot: Optional[CoverBySnapshotSubtask] = None


@dataclass(frozen=True)
class ProcedurePlan(Message):
    subtasks: list[SubtaskSpec]
    notify_mode: NotifyMode


@dataclass(frozen=True)
class PullUploadSpec(Message):
    media_url: str
    file_name: str
    source_context: str
    timeout_seconds: int
    procedure: Optional[ProcedurePlan]


@dataclass(frozen=True)
class DeleteMediaSpec(Message):
    file_ids: list[str]


@dataclass(frozen=True)
class ProcedureSpec(Message):
    file_id: str
    subtasks: list[SubtaskSpec]
    notify_mode: NotifyMode


@dataclass(frozen=True)
class TaskSpec(OneOf):
    """What a task does; made by `vodtask.transcode(...)` and the other spec
    functions. `to_dict()` is the dict form `create_task` also accepts."""

    transcode: Optional[TranscodeSpec] = None
    snapshot_by_time_offset: Optional[SnapshotByTimeOffsetSpec] = None
    concat: Optional[ConcatSpec] = None
    clip: Optional[ClipSpec] = None
    image_sprites: Optional[ImageSpritesSpec] = None
    pull_upload: Optional[PullUploadSpec] = None
    delete_media: Optional[DeleteMediaSpec] = None
    procedure: Optional[ProcedureSpec] = None


# --- task outputs -------------------------------------------------------------


@dataclass(frozen=True)
class OutputFile(Message):
    file_type: FileType
    file_id: str
    url: str
    duration_seconds: float
    size: int


@dataclass(frozen=True)
class PlayItem(Message):
    definition: int
    file_id: str
    url: str
    vbitrate: int
    vwidth: int
    vheight: int
    duration_seconds: float
    size: int


@dataclass(frozen=True)
class TranscodeOutput(Message):
    play_set: list[PlayItem]


@dataclass(frozen=True)
class SnapshotPicture(Message):
    time_offset_ms: int
    status: int  # 0 = taken; otherwise why not
    message: str
    file_id: str
    url: str


@dataclass(frozen=True)
class SnapshotByTimeOffsetOutput(Message):
    pictures: list[SnapshotPicture]


@dataclass(frozen=True)
class ConcatOutput(Message):
    files: list[OutputFile]


@dataclass(frozen=True)
class ClipOutput(Message):
    file: Optional[OutputFile]


@dataclass(frozen=True)
class ImageSpritesOutput(Message):
    file_id: str
    definition: int
    total_count: int
    image_urls: list[str]
    web_vtt_url: str


@dataclass(frozen=True)
class PullUploadOutput(Message):
    file_id: str
    file_url: str
    size: int
    procedure_task_id: str


@dataclass(frozen=True)
class DeleteMediaOutput(Message):
    deleted_file_ids: list[str]


@dataclass(frozen=True)
class CoverOutput(Message):
    file_id: str
    url: str


@dataclass(frozen=True)
class SubtaskOutput(OneOf):
    transcode: Optional[PlayItem] = None
    snapshot_by_time_offset: Optional[SnapshotByTimeOffsetOutput] = None
    image_sprites: Optional[ImageSpritesOutput] = None
    cover_by_snapshot: Optional[CoverOutput] = None


@dataclass(frozen=True)
class Subtask(Message):
    input: Optional[SubtaskSpec]
    status: SubtaskStatus
    err_code: int
    message: str
    progress: int
    begin_time: Optional[datetime.datetime]
    finish_time: Optional[datetime.datetime]
    output: Optional[SubtaskOutput]


@dataclass(frozen=True)
class ProcedureOutput(Message):
    subtasks: list[Subtask]


@dataclass(frozen=True)
class TaskOutput(OneOf):
    """Keyed by the task type: `task.output.transcode.play_set`."""

    transcode: Optional[TranscodeOutput] = None
    snapshot_by_time_offset: Optional[SnapshotByTimeOffsetOutput] = None
    concat: Optional[ConcatOutput] = None
    clip: Optional[ClipOutput] = None
    image_sprites: Optional[ImageSpritesOutput] = None
    pull_upload: Optional[PullUploadOutput] = None
    delete_media: Optional[DeleteMediaOutput] = None
    procedure: Optional[ProcedureOutput] = None


# --- tasks --------------------------------------------------------------------


@dataclass(frozen=True)
class TaskAttempt(Message):
    attempt: int
    status: TaskStatus
    err_code: int
    message: str
    begin_process_time: Optional[datetime.datetime]
    finish_time: Optional[datetime.datetime]
    output: Optional[TaskOutput]


@dataclass(frozen=True)
class Task(Message):
    task_id: str
    task_type: TaskType
    status: TaskStatus
    err_code: int  # 0 = success: FINISH alone is not success
    message: str
    progress: int  # 0..100
    attempt: int  # 1 for the first run; + 1 per redo and per recovery after a crash
    create_time: Optional[datetime.datetime]
    begin_process_time: Optional[datetime.datetime]
    finish_time: Optional[datetime.datetime]
    priority: int
    session_id: str
    session_context: str
    file_id: str
    input: Optional[TaskSpec]
    output: Optional[TaskOutput]
    cancel_requested: bool
    previous_attempts: list[TaskAttempt]  # oldest first; empty in list_tasks


@dataclass(frozen=True)
class TimeRange(Message):
    after: Optional[datetime.datetime]
    before: Optional[datetime.datetime]


@dataclass(frozen=True)
class TaskPage(Message):
    """One page of `list_tasks_page`; an empty `scroll_token` means no more."""

    tasks: list[Task]
    scroll_token: str


@dataclass(frozen=True)
class TaskOverview(Message):
    total: int
    by_status: dict[TaskStatus, int]
    by_type: dict[TaskType, int]
    queue_depth: int  # WAITING tasks (all time)
    running: int  # PROCESSING tasks (all time)
    counted_create_time: Optional[TimeRange]


# --- media (media.proto) ------------------------------------------------------


@dataclass(frozen=True)
class UploadResult(Message):
    file_id: str
    file_url: str
    procedure_task_id: str  # set when the upload asked for a procedure


@dataclass(frozen=True)
class MediaStream(Message):
    index: int
    codec_type: str  # "video", "audio", ...
    codec: str
    bitrate: int
    width: int
    height: int
    fps: float
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class MediaMetadata(Message):
    container: str
    duration_seconds: float
    width: int
    height: int
    bitrate: int
    streams: list[MediaStream]


@dataclass(frozen=True)
class MediaInfo(Message):
    file_id: str
    file_name: str
    file_url: str
    size: int
    md5: str
    create_time: Optional[datetime.datetime]
    source_type: SourceType
    source_context: str
    metadata: Optional[MediaMetadata]  # None when ffprobe could not read the file
    probe_error: str
    source_task_id: str


# --- events (events.proto) ----------------------------------------------------


@dataclass(frozen=True)
class EventsState(Message):
    ready: int
    in_flight: int
    delayed: int
    dead_lettered: int
    oldest_unconfirmed_age_seconds: float


@dataclass(frozen=True)
class EndpointHealth(Message):
    circuit: CircuitState
    consecutive_failures: int
    failing_since: Optional[datetime.datetime]
    last_failure_time: Optional[datetime.datetime]
    last_failure: str


@dataclass(frozen=True)
class EventConfig(Message):
    mode: DeliveryMode
    notification_url: str
    event_types: dict[str, bool]  # every event type and whether it is sent
    visibility_timeout_seconds: int
    max_deliveries: int
    retention_seconds: int
    signing_secret: str  # PUSH: the secret (whsec_...) callbacks are signed with
    previous_secret_expire_time: Optional[datetime.datetime]
    callback_timeout_seconds: int
    retry_schedule_seconds: list[int]
    disable_after_seconds: int
    endpoint_disabled_time: Optional[datetime.datetime]
    endpoint_health: Optional[EndpointHealth]


@dataclass(frozen=True)
class RotatedSecret(Message):
    signing_secret: str
    previous_secret_expire_time: Optional[datetime.datetime]


@dataclass(frozen=True)
class CallbackAttempt(Message):
    event_id: str
    attempt: int  # 1, 2, 3... within a round of the retry schedule
    time: Optional[datetime.datetime]
    url: str
    http_status: int  # 0 when there was no HTTP answer (see error)
    error: str
    duration_seconds: float
    response: str  # the first 2 KiB of the answer
    outcome: AttemptOutcome
    next_attempt_time: Optional[datetime.datetime]
