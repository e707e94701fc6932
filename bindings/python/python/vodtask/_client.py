"""The async `Client`: each method builds the request as a dict, hands it to
the native client's generic `call` (JSON text both ways) and decodes the
answer into the dataclass of `_types.py`. Streams, uploads and the event
consumer are native (`_vodtask`); `Event`, `Delivery`, `Subscription` and
`StopToken` come from there as they are.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, TypeVar, Union

from . import _vodtask
from ._codec import ConvertError, convert, decoder, dumps, encode, register
from ._types import (
    CallbackAttempt,
    DeliveryMode,
    EventConfig,
    EventsState,
    MediaInfo,
    NotifyMode,
    ProcedurePlan,
    RotatedSecret,
    SortOrder,
    SubtaskSpec,
    Task,
    TaskOverview,
    TaskPage,
    TaskSortBy,
    TaskSpec,
    TaskStatus,
    TaskType,
    UploadResult,
)
from ._vodtask import Event, StopToken, Subscription

T = TypeVar("T")

Subtask = Union[SubtaskSpec, Mapping[str, Mapping[str, Any]]]
"""A SubtaskSpec, or its dict form: `{"transcode": {"definition": 100010}}`,
`{"snapshot_by_time_offset": {"definition": 10, "time_offsets_ms": [0]}}`,
`{"image_sprites": {"definition": 10}}`, `{"cover_by_snapshot":
{"definition": 10, "position_type": "PERCENT", "position": 50}}`."""

SpecDict = Mapping[str, Any]
"""A TaskSpec's dict form (`spec.to_dict()`): `{"transcode": {"file_id": ..., "definitions": [100010]}}`."""

Time = Union[datetime.datetime, float]
"""A datetime (naive: local time) or seconds since the epoch."""

Path = Union[str, "os.PathLike[str]"]


def invalid(message: str) -> _vodtask.InvalidArgument:
    """An InvalidArgument with `.code` and `.message`, as the native ones."""
    error = _vodtask.InvalidArgument(message)
    error.code = "INVALID_ARGUMENT"
    error.message = message
    return error


def _checked(call: str, tp: Any, value: Any, path: str) -> Any:
    try:
        return convert(tp, value, path)
    except ConvertError as e:
        raise invalid(f"{call}: {e}") from None


def _time(call: str, name: str, value: Optional[Time]) -> Any:
    if value is None or isinstance(value, datetime.datetime):
        return encode(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise invalid(f"{call}: {name}: expected a datetime or seconds since the epoch, got {type(value).__name__}")


def _range(call: str, name: str, after: Optional[Time], before: Optional[Time]) -> Optional[dict[str, Any]]:
    if after is None and before is None:
        return None
    return {"after": _time(call, f"{name}_after", after), "before": _time(call, f"{name}_before", before)}


def _plan(call: str, procedure: Optional[Iterable[Subtask]], notify_mode: Union[NotifyMode, str]) -> Optional[str]:
    """An upload's procedure as the JSON text of a ProcedurePlan."""
    if procedure is None:
        return None
    plan = ProcedurePlan(
        subtasks=_checked(call, list[SubtaskSpec], procedure, "procedure"),
        notify_mode=_checked(call, NotifyMode, notify_mode, "notify_mode"),
    )
    return json.dumps(encode(plan))


@dataclass(frozen=True)
class DeadLetterPage:
    """One page of `dead_letter_events`; an empty `next_page_token` means no more."""

    events: list[Event]
    next_page_token: str


@dataclass(frozen=True)
class CallbackAttemptList:
    attempts: list[CallbackAttempt]


# The native Event, in pages of dead letters.
register(Event, lambda tree: Event._from_json(json.dumps(tree)))


class Client:
    """A vodtask client: `await vodtask.connect(url, api_key=...)` (a server)
    or `await vodtask.open(data_dir)` (the engine in this process). Every
    method is a coroutine except the iterators (`watch_task`, `list_tasks`,
    `subscribe`); `async with client:` closes it."""

    def __init__(self, native: _vodtask.NativeClient) -> None:
        self._native = native

    async def _call(self, call: str, method: str, request: Mapping[str, Any], result: type[T]) -> T:
        decoded: T = decoder(result)(json.loads(await self._call_json(call, method, request)))
        return decoded

    def _call_json(self, call: str, method: str, request: Mapping[str, Any]) -> Awaitable[str]:
        """The answer to `method` as JSON text; `call` (the method's Python
        name) starts the message of a request that does not convert."""
        try:
            text = dumps(call, request)
        except ConvertError as e:
            raise invalid(str(e)) from None
        return self._native.call(call, method, text)

    @property
    def is_embedded(self) -> bool:
        """Whether this client runs the engine in process (`vodtask.open`)."""
        return self._native.is_embedded

    async def close(self) -> None:
        """Embedded: stops the engine (running tasks go back to the queue) and
        its file server. The client cannot be used afterwards; closing twice
        does nothing."""
        await self._native.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return repr(self._native)

    # --- media ---------------------------------------------------------------

    async def upload_file(
        self,
        path: Path,
        *,
        file_name: Optional[str] = None,
        source_context: str = "",
        procedure: Optional[Iterable[Subtask]] = None,
        notify_mode: Union[NotifyMode, str] = NotifyMode.FINISH,
    ) -> UploadResult:
        """Uploads a file from disk (FileNotFoundError if there is none);
        `procedure` (a list of subtasks) starts on the new file."""
        plan = _plan("upload_file", procedure, notify_mode)
        answer = await self._native.upload_file(os.fspath(path), file_name, source_context, plan)
        result: UploadResult = decoder(UploadResult)(json.loads(answer))
        return result

    async def upload_bytes(
        self,
        data: bytes,
        file_name: str,
        *,
        source_context: str = "",
        procedure: Optional[Iterable[Subtask]] = None,
        notify_mode: Union[NotifyMode, str] = NotifyMode.FINISH,
    ) -> UploadResult:
        plan = _plan("upload_bytes", procedure, notify_mode)
        answer = await self._native.upload_bytes(data, file_name, source_context, plan)
        result: UploadResult = decoder(UploadResult)(json.loads(answer))
        return result

    async def describe_media(self, file_id: str) -> MediaInfo:
        return await self._call("describe_media", "DescribeMedia", {"file_id": file_id}, MediaInfo)

    # --- tasks ---------------------------------------------------------------

    async def create_task(
        self,
        spec: Union[TaskSpec, SpecDict],
        *,
        priority: int = 0,
        session_id: str = "",
        session_context: str = "",
    ) -> str:
        """Queues a task; returns its id. `spec`: a TaskSpec
        (`vodtask.transcode(...)`...) or its dict form."""
        request = {"spec": spec, "priority": priority, "session_id": session_id, "session_context": session_context}
        answer = await self._call_json("create_task", "CreateTask", request)
        task_id: str = json.loads(answer)["task_id"]
        return task_id

    async def describe_task(self, task_id: str) -> Task:
        return await self._call("describe_task", "DescribeTask", {"task_id": task_id}, Task)

    async def redo_task(self, task_id: str) -> Task:
        """Runs a FINISH or ABORTED task again under the same id (attempt + 1)."""
        return await self._call("redo_task", "RedoTask", {"task_id": task_id}, Task)

    async def cancel_task(self, task_id: str) -> Task:
        return await self._call("cancel_task", "CancelTask", {"task_id": task_id}, Task)

    async def wait_task(self, task_id: str) -> Task:
        """Waits until the task ends and returns it as it ended (FINISH or
        ABORTED; `err_code` 0 is success). It takes nothing from the app's
        event queue, so every copy of an app can wait for its own task."""
        task: Task = decoder(Task)(json.loads(await self._native.wait_task(task_id)))
        return task

    def watch_task(self, task_id: str) -> TaskWatch:
        """The task now, then at each change of status, progress or subtasks,
        until it ends: `async for task in client.watch_task(task_id)`."""
        return TaskWatch(self._native.watch_task(task_id))

    def _list_request(self, call: str, **given: Any) -> dict[str, Any]:
        request = {
            "status": _checked(call, Optional[TaskStatus], given["status"], "status"),
            "task_type": _checked(call, Optional[TaskType], given["task_type"], "task_type"),
            "file_id": given["file_id"],
            "create_time": _range(call, "created", given["created_after"], given["created_before"]),
            "finish_time": _range(call, "finished", given["finished_after"], given["finished_before"]),
            "sort_by": _checked(call, TaskSortBy, given["sort_by"], "sort_by"),
            "order": _checked(call, SortOrder, given["order"], "order"),
            "limit": _checked(call, int, given["page_size"], "page_size"),
            "scroll_token": given.get("scroll_token", ""),
        }
        return {k: v for k, v in request.items() if v is not None}

    def list_tasks(
        self,
        *,
        status: Union[TaskStatus, str, None] = None,
        task_type: Union[TaskType, str, None] = None,
        file_id: str = "",
        created_after: Optional[Time] = None,
        created_before: Optional[Time] = None,
        finished_after: Optional[Time] = None,
        finished_before: Optional[Time] = None,
        sort_by: Union[TaskSortBy, str] = TaskSortBy.CREATE_TIME,
        order: Union[SortOrder, str] = SortOrder.DESC,
        page_size: int = 10,
    ) -> TaskIterator:
        """Every task that matches, newest first by default, fetched
        `page_size` at a time as the iteration goes: `async for task in
        client.list_tasks()`. One page at a time: `list_tasks_page`."""
        request = self._list_request("list_tasks", **_arguments(locals()))
        return TaskIterator(self, request)

    async def list_tasks_page(
        self,
        *,
        status: Union[TaskStatus, str, None] = None,
        task_type: Union[TaskType, str, None] = None,
        file_id: str = "",
        created_after: Optional[Time] = None,
        created_before: Optional[Time] = None,
        finished_after: Optional[Time] = None,
        finished_before: Optional[Time] = None,
        sort_by: Union[TaskSortBy, str] = TaskSortBy.CREATE_TIME,
        order: Union[SortOrder, str] = SortOrder.DESC,
        page_size: int = 10,
        scroll_token: str = "",
    ) -> TaskPage:
        """One page of tasks; pass its `scroll_token` (with the same filters)
        for the next. An empty `scroll_token` in the page: no more."""
        request = self._list_request("list_tasks_page", **_arguments(locals()))
        return await self._call("list_tasks_page", "ListTasks", request, TaskPage)

    async def task_overview(self) -> TaskOverview:
        answer = json.loads(await self._call_json("task_overview", "GetTaskOverview", {}))
        # The proto's lists of (status, count) read better as mappings.
        answer["by_status"] = {c["status"]: c["count"] for c in answer.get("by_status") or []}
        answer["by_type"] = {c["task_type"]: c["count"] for c in answer.get("by_type") or []}
        overview: TaskOverview = decoder(TaskOverview)(answer)
        return overview

    # --- events --------------------------------------------------------------

    async def event_config(self) -> EventConfig:
        return await self._call("event_config", "GetEventConfig", {}, EventConfig)

    async def modify_event_config(
        self,
        *,
        mode: Union[DeliveryMode, str, None] = None,
        notification_url: Optional[str] = None,
        event_types: Optional[Mapping[str, bool]] = None,
        visibility_timeout_seconds: Optional[int] = None,
        max_deliveries: Optional[int] = None,
        retention_seconds: Optional[int] = None,
        callback_timeout_seconds: Optional[int] = None,
        retry_schedule_seconds: Optional[Sequence[int]] = None,
        disable_after_seconds: Optional[int] = None,
        endpoint_enabled: Optional[bool] = None,
    ) -> EventConfig:
        """Changes only what is given; returns the new EventConfig."""
        given = _arguments(locals())
        given["mode"] = _checked("modify_event_config", Optional[DeliveryMode], mode, "mode")
        request = {k: v for k, v in given.items() if v is not None}
        return await self._call("modify_event_config", "ModifyEventConfig", request, EventConfig)

    async def events_state(self) -> EventsState:
        return await self._call("events_state", "DescribeEventsState", {}, EventsState)

    async def dead_letter_events(self, *, limit: int = 0, page_token: str = "") -> DeadLetterPage:
        """One page of the dead-letter list (`limit` 0 means 100); pass its
        `next_page_token` for the next, empty at the end."""
        request = {"limit": limit, "page_token": page_token}
        return await self._call("dead_letter_events", "ListDeadLetterEvents", request, DeadLetterPage)

    async def redrive_events(self, event_ids: Optional[Iterable[str]] = None) -> int:
        """Puts dead-lettered events back in the queue with a fresh delivery
        count: the named ones, or every one without `event_ids`. Returns how
        many went back."""
        if event_ids is None:
            request: dict[str, Any] = {"all": True}
        else:
            request = {"event_ids": _checked("redrive_events", list[str], event_ids, "event_ids")}
        answer = await self._call_json("redrive_events", "RedriveEvents", request)
        redriven: int = json.loads(answer)["redriven"]
        return redriven

    async def resend_events(self, event_ids: Iterable[str]) -> int:
        """Delivers events again now, whatever their state (1..1000 ids).
        Returns how many of them exist."""
        request = {"event_ids": _checked("resend_events", list[str], event_ids, "event_ids")}
        answer = await self._call_json("resend_events", "ResendEvents", request)
        resent: int = json.loads(answer)["resent"]
        return resent

    async def callback_attempts(
        self, *, event_id: Optional[str] = None, task_id: Optional[str] = None
    ) -> list[CallbackAttempt]:
        """PUSH mode: the HTTP callback attempts of one event, or of every
        event of a task (exactly one of the two)."""
        if (event_id is None) == (task_id is None):
            raise invalid("callback_attempts: give exactly one of event_id, task_id")
        request = {"event_id": event_id or "", "task_id": task_id or ""}
        answer = await self._call("callback_attempts", "ListCallbackAttempts", request, CallbackAttemptList)
        return answer.attempts

    async def rotate_signing_secret(self, *, overlap_seconds: Optional[int] = None) -> RotatedSecret:
        """PUSH mode: a new signing secret; the old one keeps signing for
        `overlap_seconds` (by default a day; 0 ends it now)."""
        request = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
        return await self._call("rotate_signing_secret", "RotateSigningSecret", request, RotatedSecret)

    def subscribe(self, max_in_flight: int = 16) -> Subscription:
        """A reliable event stream: `async for d in client.subscribe(): ...;
        await d.ack()`. Reconnects by itself; `close()` ends it."""
        return self._native.subscribe(max_in_flight)

    def consume(
        self,
        handler: Callable[[Event], Awaitable[object]],
        *,
        concurrency: int = 16,
        max_in_flight: Optional[int] = None,
        stop: Optional[StopToken] = None,
    ) -> Awaitable[None]:
        """Runs `await handler(event)` on every event, `concurrency` at once:
        returning acks, raising nacks (with backoff). Returns after
        `stop.stop()` once the running handlers are done; raises for a
        failure reconnecting cannot cure (e.g. a bad key)."""
        return self._native.consume(handler, concurrency=concurrency, max_in_flight=max_in_flight, stop=stop)


def _arguments(scope: dict[str, Any]) -> dict[str, Any]:
    """A method's keyword arguments, from its `locals()`."""
    return {k: v for k, v in scope.items() if k not in ("self", "__class__")}


class TaskIterator:
    """Tasks from `Client.list_tasks`, fetched a page at a time."""

    def __init__(self, client: Client, request: dict[str, Any]) -> None:
        self._client = client
        self._request = request
        self._buffer: list[Task] = []
        self._done = False

    def __aiter__(self) -> TaskIterator:
        return self

    async def __anext__(self) -> Task:
        while not self._buffer and not self._done:
            page = await self._client._call("list_tasks", "ListTasks", self._request, TaskPage)
            self._done = not page.scroll_token
            self._request["scroll_token"] = page.scroll_token
            self._buffer.extend(reversed(page.tasks))
        if not self._buffer:
            raise StopAsyncIteration
        return self._buffer.pop()


class TaskWatch:
    """A task's states from `Client.watch_task`; ends after the state in
    which the task ended. Reconnects by itself after a broken stream."""

    def __init__(self, native: _vodtask.TaskStateStream) -> None:
        self._native = native

    def __aiter__(self) -> TaskWatch:
        return self

    async def __anext__(self) -> Task:
        task: Task = decoder(Task)(json.loads(await self._native.__anext__()))
        return task

    def close(self) -> None:
        """Stops following the task (the iteration stops)."""
        self._native.close()


async def connect(
    url: str,
    *,
    api_key: str,
    timeout: float = 60.0,
    connect_timeout: float = 5.0,
    ca_cert: Union[str, os.PathLike[str], bytes, None] = None,
) -> Client:
    """Connects to a vodtask server: `http://HOST:PORT`, or `https://` for a
    server with --tls-cert. `ca_cert`: a CA trusted besides the system's
    roots: the path of a PEM file, or the PEM itself (bytes, or text with
    its -----BEGIN line)."""
    native = await _vodtask.connect(
        url, api_key=api_key, timeout=timeout, connect_timeout=connect_timeout, ca_cert=ca_cert
    )
    return Client(native)


async def open(  # noqa: A001 - vodtask.open, kept out of __all__
    data_dir: Path,
    *,
    api_key: Optional[str] = None,
    workers: Optional[int] = None,
    http_listen: Optional[str] = None,
    sync: Literal["full", "normal"] = "full",
) -> Client:
    """Opens (or creates) a data dir and runs the engine in this process.
    One process per data dir; `await client.close()` (or `async with`) when done."""
    native = await _vodtask.open(
        os.fspath(data_dir), api_key=api_key, workers=workers, http_listen=http_listen, sync=sync
    )
    return Client(native)
