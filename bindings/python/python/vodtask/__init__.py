"""asyncio client for vodtask, a thin binding over the Rust client.

Connect to a server with ``await vodtask.connect(url, api_key=...)`` or run
the engine in this process with ``await vodtask.open(data_dir)``. Every call
of the client is awaitable; see README.md.
"""

import atexit

from ._vodtask import _quiesce
from ._vodtask import (
    AlreadyExists,
    Client,
    DeadlineExceeded,
    Delivery,
    Event,
    EventConfig,
    EventsState,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MediaInfo,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StopToken,
    Subscription,
    TaskWatch,
    Task,
    TaskIterator,
    TaskOverview,
    TaskSpec,
    TaskStatus,
    TaskType,
    Unauthenticated,
    Unavailable,
    UploadResult,
    VodtaskError,
    WebhookEvent,
    clip,
    concat,
    connect,
    delete_media,
    image_sprites,
    open,
    procedure,
    pull_upload,
    snapshot_by_time_offset,
    transcode,
    verify_webhook,
)

__all__ = [
    "AlreadyExists",
    "Client",
    "DeadlineExceeded",
    "Delivery",
    "Event",
    "EventConfig",
    "EventsState",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "MediaInfo",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "StopToken",
    "Subscription",
    "TaskWatch",
    "Task",
    "TaskIterator",
    "TaskOverview",
    "TaskSpec",
    "TaskStatus",
    "TaskType",
    "Unauthenticated",
    "Unavailable",
    "UploadResult",
    "VodtaskError",
    "WebhookEvent",
    "clip",
    "concat",
    "connect",
    "delete_media",
    "image_sprites",
    "open",
    "procedure",
    "pull_upload",
    "snapshot_by_time_offset",
    "transcode",
    "verify_webhook",
]

# Lets the runtime's threads deliver their last results before the
# interpreter finalizes (see src/aio.rs).
atexit.register(_quiesce)
