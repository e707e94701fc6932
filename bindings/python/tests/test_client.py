"""The package against a real server and with the engine in process."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import vodtask
from conftest import DEADLINE, Server


async def transcode_and_consume(client: vodtask.Client, clip: Path, spec_as_dict: bool) -> list[str]:
    """Uploads a clip, transcodes it to 360p and consumes events until its
    TranscodeComplete was handled; returns the event types handled."""
    uploaded = await client.upload_file(clip, source_context="ctx")
    assert isinstance(uploaded, vodtask.UploadResult)
    assert uploaded.file_id and uploaded.file_url.startswith("http://")
    media = await client.describe_media(uploaded.file_id)
    assert media.file_name == "in.mp4"
    assert media.size == clip.stat().st_size
    assert media.source_type == "CLIENT_UPLOAD"
    assert media.source_context == "ctx"
    assert media.source_type is vodtask.SourceType.CLIENT_UPLOAD
    metadata = media.metadata
    assert metadata is not None
    assert (metadata.width, metadata.height) == (320, 240)
    assert 1.5 < metadata.duration_seconds < 2.5
    assert {s.codec_type for s in metadata.streams} == {"video", "audio"}

    spec: vodtask.TaskSpec | dict[str, dict[str, object]]
    if spec_as_dict:
        spec = {"transcode": {"file_id": uploaded.file_id, "definitions": [100010]}}
    else:
        spec = vodtask.transcode(uploaded.file_id, [100010])
    task_id = await client.create_task(spec, session_context="sc")

    handled: list[vodtask.Event] = []
    stop = vodtask.StopToken()

    async def handler(event: vodtask.Event) -> None:
        handled.append(event)
        if event.event_type == "TranscodeComplete" and event.task_id == task_id:
            stop.stop()

    await asyncio.wait_for(client.consume(handler, concurrency=4, stop=stop), DEADLINE)
    assert stop.stopped

    task = await client.describe_task(task_id)
    assert task.status == vodtask.TaskStatus.FINISH, task
    assert task.err_code == 0, task.message
    assert task.task_type == vodtask.TaskType.TRANSCODE
    assert task.progress == 100
    assert task.session_context == "sc"
    assert task.file_id == uploaded.file_id
    assert task.input == vodtask.transcode(uploaded.file_id, [100010])
    assert isinstance(task.create_time, datetime.datetime)
    assert task.finish_time is not None and task.finish_time >= task.create_time
    output = task.output
    assert output is not None and output.transcode is not None
    (item,) = output.transcode.play_set
    assert item.definition == 100010
    assert item.vwidth > 0 and item.vheight > 0
    # The output is served over HTTP at its URL.
    with urllib.request.urlopen(item.url, timeout=DEADLINE) as got:
        assert got.status == 200
        assert got.read(12)[4:8] == b"ftyp"
    assert "TRANSCODE" in repr(task) and task_id in repr(task)

    done = handled[-1]
    data = done.data
    assert isinstance(data, vodtask.TranscodeCompleteData)
    assert (data.vod_task_id, data.status, data.session_context) == (task_id, 0, "sc")
    assert data.file_id == uploaded.file_id and data.file_name == "in.mp4"
    (rendition,) = data.play_set
    assert (rendition.definition, rendition.url) == (100010, item.url)
    # Parsed once, on first read.
    assert done.data is data
    uploaded_event = handled[0].data
    assert isinstance(uploaded_event, vodtask.NewFileUploadData)
    assert (uploaded_event.file_id, uploaded_event.source_context) == (uploaded.file_id, "ctx")
    assert f'"eventId":"{done.event_id}"' in done.content_json
    assert done.delivery_count == 1
    # Everything handled was acked.
    state = await client.events_state()
    assert (state.ready, state.in_flight) == (0, 0), state
    return [e.event_type for e in handled]


async def test_remote_client_uploads_transcodes_and_consumes(server: Server, clip: Path) -> None:
    client = await vodtask.connect(server.grpc_url, api_key=server.api_key)
    assert not client.is_embedded
    handled = await transcode_and_consume(client, clip, spec_as_dict=False)
    assert handled == ["NewFileUpload", "TranscodeComplete"]
    await client.close()


async def test_embedded_client_runs_the_engine_in_process(tmp_path: Path, clip: Path) -> None:
    data = tmp_path / "data"
    async with await vodtask.open(data) as client:
        assert client.is_embedded
        handled = await transcode_and_consume(client, clip, spec_as_dict=True)
        assert handled == ["NewFileUpload", "TranscodeComplete"]
        # While a client holds the engine the data dir is locked.
        with pytest.raises(vodtask.VodtaskError):
            await vodtask.open(data)
    # A closed client refuses calls.
    assert "closed=True" in repr(client)
    with pytest.raises(vodtask.Unavailable, match="client: closed"):
        await client.describe_task("x")
    # Closed, it opens again, with the same library.
    again = await vodtask.open(data, workers=0)
    overview = await again.task_overview()
    assert overview.total == 1
    assert overview.by_type[vodtask.TaskType.TRANSCODE] == 1
    await again.close()


async def test_errors_keep_their_code_and_name_the_field(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    try:
        with pytest.raises(vodtask.NotFound) as not_found:
            await client.describe_task("transcode-nope")
        assert not_found.value.code == "NOT_FOUND"
        assert isinstance(not_found.value, vodtask.VodtaskError)
        assert type(not_found.value).__module__ == "vodtask"

        with pytest.raises(vodtask.InvalidArgument) as bad:
            await client.create_task(vodtask.transcode("123", [5]))
        assert bad.value.code == "INVALID_ARGUMENT"
        assert bad.value.message.startswith("spec.transcode.definitions[0]"), bad.value.message
        assert str(bad.value) == bad.value.message

        with pytest.raises(vodtask.NotFound):
            await client.create_task(vodtask.transcode("12345678901234567890", [100010]))

        # Specs that cannot be converted are refused with the call and the field named.
        with pytest.raises(vodtask.InvalidArgument, match=r"^create_task: spec\.transcod: unknown field"):
            await client.create_task({"transcod": {"file_id": "1"}})
        with pytest.raises(vodtask.InvalidArgument) as wrong_type:
            await client.create_task({"transcode": {"file_id": 5, "definitions": [100010]}})
        assert wrong_type.value.message == "create_task: spec.transcode.file_id: expected a string, got number"
        assert wrong_type.value.code == "INVALID_ARGUMENT"
        with pytest.raises(vodtask.InvalidArgument, match=r"^procedure: subtasks\[0\]\.transcode\.definition: expected an integer, got str$"):
            vodtask.procedure("1", [{"transcode": {"definition": "100010"}}])
        with pytest.raises(vodtask.InvalidArgument, match=r"^concat: output_types\[0\]: expected one of MP4, M3U8, got 'AVI'$"):
            vodtask.concat(["1", "2"], ["AVI"])
        # A field left out is the proto's zero value, which the server refuses by name.
        with pytest.raises(vodtask.InvalidArgument, match=r"^spec\.procedure\.subtasks\[0\]\.transcode\.definition"):
            await client.create_task(vodtask.procedure("1", [{"transcode": {}}]))

        # The session rule: same session id, different request.
        blob = await client.upload_bytes(b"not media", "blob.bin")
        await client.create_task(vodtask.delete_media([blob.file_id]), session_id="s1")
        with pytest.raises(vodtask.AlreadyExists) as exists:
            await client.create_task(vodtask.delete_media([blob.file_id]), session_id="s1", priority=3)
        assert exists.value.code == "ALREADY_EXISTS"
    finally:
        await client.close()

    bad_key = await vodtask.open(tmp_path / "other", api_key="not-a-key", workers=0)
    with pytest.raises(vodtask.Unauthenticated) as unauthenticated:
        await bad_key.describe_task("x")
    assert unauthenticated.value.code == "UNAUTHENTICATED"
    await bad_key.close()


async def test_open_takes_sync_normal_and_refuses_an_unknown_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(vodtask.InvalidArgument, match=r"^sync: must be 'full' or 'normal', not \"fast\"$"):
        await vodtask.open(data, sync="fast")  # type: ignore[arg-type]
    # What a `normal` engine acknowledged is there when the data dir opens again.
    client = await vodtask.open(data, workers=0, sync="normal")
    blob = await client.upload_bytes(b"kept", "kept.bin")
    task_id = await client.create_task(vodtask.delete_media([blob.file_id]))
    await client.close()
    again = await vodtask.open(data, workers=0)
    assert (await again.describe_task(task_id)).status == vodtask.TaskStatus.WAITING
    await again.close()


async def test_an_unreachable_server_is_unavailable() -> None:
    with pytest.raises(vodtask.Unavailable) as e:
        await vodtask.connect("http://127.0.0.1:1", api_key="k", connect_timeout=2)
    assert e.value.code == "UNAVAILABLE"


async def test_subscribe_delivers_and_settles(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    uploaded = await client.upload_bytes(b"bytes", "blob.bin")
    subscription = client.subscribe(max_in_flight=4)
    deliveries = aiter_deliveries(subscription)

    first = await asyncio.wait_for(deliveries.__anext__(), DEADLINE)
    assert first.event.event_type == "NewFileUpload"
    assert isinstance(first.event.data, vodtask.NewFileUploadData)
    assert first.event.data.file_id == uploaded.file_id
    assert first.event is first.event
    assert first.event.delivery_count == 1
    assert "event_type='NewFileUpload'" in repr(first)
    assert f"event_id='{first.event.event_id}'" in repr(first.event)
    assert await first.nack(delay=0) is vodtask.HandleStatus.NACKED

    again = await asyncio.wait_for(deliveries.__anext__(), DEADLINE)
    assert again.event.event_id == first.event.event_id
    assert again.event.delivery_count == 2
    assert again.handle != first.handle
    assert await again.extend(60) == "EXTENDED"
    assert await again.ack() == "CONFIRMED"
    assert await again.ack() == "ALREADY_CONFIRMED"
    # The first delivery's handle is spent.
    assert await first.ack() != "CONFIRMED"

    subscription.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(deliveries.__anext__(), DEADLINE)
    state = await client.events_state()
    assert (state.ready, state.in_flight, state.delayed) == (0, 0, 0), state
    await client.close()


def aiter_deliveries(subscription: vodtask.Subscription) -> vodtask.Subscription:
    return subscription.__aiter__()


async def test_a_failing_handler_nacks_and_sees_the_event_again(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    await client.upload_bytes(b"bytes", "blob.bin")
    seen: list[int] = []
    stop = vodtask.StopToken()

    async def handler(event: vodtask.Event) -> None:
        seen.append(event.delivery_count)
        if event.delivery_count < 2:
            raise RuntimeError("not yet")
        stop.stop()

    await asyncio.wait_for(client.consume(handler, stop=stop), DEADLINE)
    # Delivered, nacked (backing off about a second), delivered again, acked.
    assert seen == [1, 2]
    state = await client.events_state()
    assert (state.ready, state.in_flight, state.delayed) == (0, 0, 0), state
    await client.close()


async def test_list_tasks_pages_through_every_task(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    blob = await client.upload_bytes(b"bytes", "blob.bin")
    created = [
        await client.create_task(vodtask.snapshot_by_time_offset(blob.file_id, 10, [i * 100]))
        for i in range(5)
    ]
    listed = [t.task_id async for t in client.list_tasks(page_size=2)]
    assert listed == created[::-1]
    oldest_first = [t.task_id async for t in client.list_tasks(order="asc", page_size=3)]
    assert oldest_first == created

    aborted = await client.cancel_task(created[0])
    assert aborted.status == vodtask.TaskStatus.ABORTED
    waiting = [t.task_id async for t in client.list_tasks(status=vodtask.TaskStatus.WAITING)]
    assert waiting == created[:0:-1]
    finished = [t.task_id async for t in client.list_tasks(sort_by="finish_time")]
    assert finished == [created[0]]
    none = [t async for t in client.list_tasks(task_type=vodtask.TaskType.CLIP)]
    assert none == []
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert [t async for t in client.list_tasks(created_after=future)] == []

    redone = await client.redo_task(created[0])
    assert (redone.status, redone.attempt) == (vodtask.TaskStatus.WAITING, 2)
    (attempt,) = redone.previous_attempts
    assert (attempt.attempt, attempt.status) == (1, vodtask.TaskStatus.ABORTED)
    with pytest.raises(vodtask.FailedPrecondition):
        await client.redo_task(created[1])

    overview = await client.task_overview()
    assert overview.total == 5
    assert overview.queue_depth == 5
    assert overview.by_status[vodtask.TaskStatus.WAITING] == 5
    assert overview.by_type[vodtask.TaskType.SNAPSHOT_BY_TIME_OFFSET] == 5
    await client.close()


async def test_event_config_reads_and_changes(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    config = await client.event_config()
    assert config.mode == "PULL" and config.mode is vodtask.DeliveryMode.PULL
    assert repr(config).startswith("EventConfig(mode=<DeliveryMode.PULL: 'PULL'>")
    assert config.event_types["TranscodeComplete"] is True
    changed = await client.modify_event_config(
        visibility_timeout_seconds=45, event_types={"NewFileUpload": False}
    )
    assert changed.visibility_timeout_seconds == 45
    assert changed.event_types["NewFileUpload"] is False
    assert (await client.event_config()).visibility_timeout_seconds == 45
    with pytest.raises(vodtask.InvalidArgument, match="visibility_timeout_seconds"):
        await client.modify_event_config(visibility_timeout_seconds=0)
    await client.close()


async def test_consume_returns_when_stopped_while_idle(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    stop = vodtask.StopToken()
    handled: list[vodtask.Event] = []
    got_one = asyncio.Event()

    async def handler(event: vodtask.Event) -> None:
        handled.append(event)
        got_one.set()

    consuming = asyncio.ensure_future(client.consume(handler, stop=stop))
    # An upload's event is handled first: consume is running.
    await client.upload_bytes(b"bytes", "blob.bin")
    await asyncio.wait_for(got_one.wait(), DEADLINE)
    assert not consuming.done()
    stop.stop()
    await asyncio.wait_for(consuming, DEADLINE)
    assert [e.event_type for e in handled] == ["NewFileUpload"]
    await client.close()


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID")


async def test_consume_runs_handlers_at_once_in_the_callers_context(tmp_path: Path) -> None:
    # The binding starts the handlers of the events that arrive together in
    # one go on the loop; each must still run once, as its own task, in a
    # copy of the context consume was called in, up to `concurrency` at once.
    client = await vodtask.open(tmp_path / "data", workers=0)
    uploads = 24
    for i in range(uploads):
        await client.upload_bytes(b"bytes", f"blob{i}.bin")
    REQUEST_ID.set("consumer")
    stop = vodtask.StopToken()
    seen: dict[str, int] = {}
    contexts: set[str] = set()
    tasks: set[asyncio.Task[object] | None] = set()
    running = 0
    most_running = 0

    async def handler(event: vodtask.Event) -> None:
        nonlocal running, most_running
        contexts.add(REQUEST_ID.get("unset"))
        # Set in this task's context only: other handlers do not see it.
        REQUEST_ID.set(event.event_id)
        tasks.add(asyncio.current_task())
        running += 1
        most_running = max(most_running, running)
        await asyncio.sleep(0.01)
        running -= 1
        seen[event.event_id] = seen.get(event.event_id, 0) + 1
        if len(seen) == uploads:
            stop.stop()

    await asyncio.wait_for(client.consume(handler, concurrency=8, stop=stop), DEADLINE)
    assert sorted(seen.values()) == [1] * uploads
    assert contexts == {"consumer"}
    assert None not in tasks and len(tasks) == sum(seen.values())
    assert 1 < most_running <= 8
    state = await client.events_state()
    assert (state.ready, state.in_flight, state.delayed) == (0, 0, 0), state
    await client.close()


def open_sockets() -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += fd.readlink().name.startswith("socket:")
        except OSError:
            pass  # closed while listed
    return count


async def consume_one(client: vodtask.Client) -> None:
    await client.upload_bytes(b"bytes", "blob.bin")
    stop = vodtask.StopToken()

    async def handler(event: vodtask.Event) -> None:
        stop.stop()

    await asyncio.wait_for(client.consume(handler, stop=stop), DEADLINE)


async def test_consume_closes_its_wake_up_socket_when_it_returns(tmp_path: Path) -> None:
    # consume wakes the loop through a socket pair whose one end the loop
    # watches; once consume has returned, the loop stops watching it and
    # both ends close.
    client = await vodtask.open(tmp_path / "data", workers=0)
    await consume_one(client)  # opens whatever the engine keeps open
    before = open_sockets()
    await consume_one(client)
    deadline = time.monotonic() + DEADLINE
    while open_sockets() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert open_sockets() == before
    await client.close()


class LoopWithoutReaders(asyncio.SelectorEventLoop):
    """A loop that cannot watch fds for its callers (as the proactor loop on
    Windows): consume must wake it with call_soon_threadsafe instead."""

    def add_reader(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_consume_runs_on_a_loop_that_cannot_watch_fds(tmp_path: Path) -> None:
    async def run() -> None:
        client = await vodtask.open(tmp_path / "data", workers=0)
        await consume_one(client)
        await consume_one(client)
        state = await client.events_state()
        assert (state.ready, state.in_flight, state.delayed) == (0, 0, 0), state
        await client.close()

    loop = LoopWithoutReaders()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


async def test_list_tasks_page_returns_one_page_and_its_token(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    blob = await client.upload_bytes(b"bytes", "blob.bin")
    created = [await client.create_task(vodtask.delete_media([blob.file_id])) for _ in range(3)]
    first = await client.list_tasks_page(page_size=2, order="asc")
    assert isinstance(first, vodtask.TaskPage)
    assert [t.task_id for t in first.tasks] == created[:2] and first.scroll_token
    second = await client.list_tasks_page(page_size=2, order="asc", scroll_token=first.scroll_token)
    assert [t.task_id for t in second.tasks] == created[2:] and second.scroll_token == ""
    # Strings work wherever an enum does, in any case.
    waiting = await client.list_tasks_page(status="waiting", task_type="DELETE_MEDIA", sort_by="create_time")
    assert len(waiting.tasks) == 3
    assert all(t.status is vodtask.TaskStatus.WAITING for t in waiting.tasks)
    with pytest.raises(vodtask.InvalidArgument) as bad:
        await client.list_tasks_page(status="DONE")
    assert bad.value.message == "list_tasks_page: status: expected one of WAITING, PROCESSING, FINISH, ABORTED, got 'DONE'"
    with pytest.raises(vodtask.InvalidArgument, match=r"^list_tasks: created_after: expected a datetime or seconds"):
        client.list_tasks(created_after="yesterday")  # type: ignore[arg-type]
    with pytest.raises(vodtask.InvalidArgument, match=r"^list_tasks_page: page_size: expected an integer, got str$"):
        await client.list_tasks_page(page_size="2")  # type: ignore[arg-type]
    with pytest.raises(vodtask.InvalidArgument, match=r"^modify_event_config: Object of type object is not JSON serializable$"):
        await client.modify_event_config(event_types={"NewFileUpload": object()})  # type: ignore[dict-item]
    with pytest.raises(vodtask.InvalidArgument) as not_a_string:
        await client.describe_task(5)  # type: ignore[arg-type]
    assert not_a_string.value.message == "describe_task: task_id: expected a string, got number"
    await client.close()


async def test_upload_file_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError) as raised:
        await client.upload_file(missing)
    assert raised.value.filename == str(missing)
    with pytest.raises(vodtask.InvalidArgument, match=r"^upload_bytes: procedure\[0\]: expected a SubtaskSpec or a dict"):
        await client.upload_bytes(b"x", "x.bin", procedure=["transcode"])  # type: ignore[list-item]
    await client.close()


async def next_delivery(deliveries: vodtask.Subscription) -> vodtask.Delivery:
    return await asyncio.wait_for(deliveries.__anext__(), DEADLINE)


async def test_dead_letters_redrive_resend_and_secret_rotation_in_process(tmp_path: Path) -> None:
    async with await vodtask.open(tmp_path / "data", workers=0) as client:
        await dead_letters_redrive_resend_and_secret_rotation(client)


async def test_dead_letters_redrive_resend_and_secret_rotation_against_a_server(server: Server) -> None:
    async with await vodtask.connect(server.grpc_url, api_key=server.api_key) as client:
        await dead_letters_redrive_resend_and_secret_rotation(client)


async def dead_letters_redrive_resend_and_secret_rotation(client: vodtask.Client) -> None:
    await client.modify_event_config(max_deliveries=1)
    uploaded = await client.upload_bytes(b"bytes", "blob.bin")
    subscription = client.subscribe(max_in_flight=1)
    deliveries = aiter_deliveries(subscription)

    # Its one delivery, given back: the next take dead-letters it.
    first = await next_delivery(deliveries)
    event_id = first.event.event_id
    assert await first.nack(delay=0) is vodtask.HandleStatus.NACKED
    deadline = time.monotonic() + DEADLINE
    while (await client.events_state()).dead_lettered != 1:
        assert time.monotonic() < deadline, "the event was not dead-lettered in time"
        await asyncio.sleep(0.02)
    page = await client.dead_letter_events()
    assert isinstance(page, vodtask.DeadLetterPage)
    assert [e.event_id for e in page.events] == [event_id] and page.next_page_token == ""
    (dead,) = page.events
    assert dead.event_type == "NewFileUpload" and dead.content_json == first.event.content_json
    assert isinstance(dead.data, vodtask.NewFileUploadData) and dead.data.file_id == uploaded.file_id
    assert isinstance(dead.event_time, datetime.datetime)

    # Back in the queue with a fresh count.
    assert await client.redrive_events() == 1
    assert (await client.dead_letter_events(limit=10)).events == []
    again = await next_delivery(deliveries)
    assert (again.event.event_id, again.event.delivery_count) == (event_id, 1)
    assert await again.ack() is vodtask.HandleStatus.CONFIRMED
    assert await client.redrive_events(["no-such-event"]) == 0

    # A confirmed event, sent again on request.
    assert await client.resend_events([event_id]) == 1
    resent = await next_delivery(deliveries)
    assert resent.event.event_id == event_id
    assert await resent.ack() is vodtask.HandleStatus.CONFIRMED
    with pytest.raises(vodtask.InvalidArgument, match="event_ids"):
        await client.resend_events([])
    subscription.close()

    assert await client.callback_attempts(event_id=event_id) == []  # a PULL app makes no callbacks
    for wrong in ({}, {"event_id": event_id, "task_id": "t"}):
        with pytest.raises(vodtask.InvalidArgument) as neither:
            await client.callback_attempts(**wrong)
        assert neither.value.message == "callback_attempts: give exactly one of event_id, task_id"

    before = (await client.event_config()).signing_secret
    rotated = await client.rotate_signing_secret(overlap_seconds=0)
    assert isinstance(rotated, vodtask.RotatedSecret)
    assert rotated.signing_secret.startswith("whsec_") and rotated.signing_secret != before
    assert (await client.event_config()).signing_secret == rotated.signing_secret
