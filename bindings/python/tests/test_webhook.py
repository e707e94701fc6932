"""verify_webhook against a real signed callback from the server."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import queue
import threading
import time
from collections.abc import Iterator
from typing import Optional

import pytest

import vodtask
from conftest import DEADLINE, Server

Received = tuple[list[tuple[str, str]], bytes]


class Receiver(http.server.ThreadingHTTPServer):
    received: queue.Queue[Received]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.put((list(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    srv = Receiver(("127.0.0.1", 0), Handler)
    srv.received = queue.Queue()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


async def test_a_signed_callback_verifies_and_a_tampered_one_does_not(
    push_server: Server, receiver: Receiver
) -> None:
    client = await vodtask.connect(push_server.grpc_url, api_key=push_server.api_key)
    port = receiver.server_address[1]
    config = await client.modify_event_config(
        mode="PUSH", notification_url=f"http://127.0.0.1:{port}/hook"
    )
    assert config.mode == "PUSH"
    secret = config.signing_secret
    assert secret.startswith("whsec_")

    uploaded = await client.upload_bytes(b"bytes", "blob.bin")
    headers, body = await asyncio.to_thread(receiver.received.get, True, DEADLINE)

    event = vodtask.verify_webhook(secret, headers, body)
    assert event.event_type == "NewFileUpload"
    assert isinstance(event.data, vodtask.NewFileUploadData)
    assert event.data.file_id == uploaded.file_id
    assert event.content_json == body.decode()
    # A mapping and text work too.
    assert vodtask.verify_webhook(secret, dict(headers), body.decode()).event_id == event.event_id

    tampered = body.replace(b"blob.bin", b"blob.bix")
    with pytest.raises(vodtask.InvalidArgument) as e:
        vodtask.verify_webhook(secret, headers, tampered)
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(vodtask.InvalidArgument):
        vodtask.verify_webhook(secret, [], body)
    with pytest.raises(vodtask.InvalidArgument):
        vodtask.verify_webhook("nope", headers, body)
    await client.close()


async def next_callback(receiver: Receiver) -> Received:
    return await asyncio.to_thread(receiver.received.get, True, DEADLINE)


async def delivered_attempts(
    client: vodtask.Client, *, event_id: Optional[str] = None, task_id: Optional[str] = None
) -> list[vodtask.CallbackAttempt]:
    """The callback attempts once one of them is recorded as delivered."""
    deadline = time.monotonic() + DEADLINE
    while True:
        attempts = await client.callback_attempts(event_id=event_id, task_id=task_id)
        if any(a.outcome is vodtask.AttemptOutcome.DELIVERED for a in attempts):
            return attempts
        assert time.monotonic() < deadline, f"no delivered attempt in time: {attempts}"
        await asyncio.sleep(0.02)


async def test_callback_attempts_typed_data_and_a_rotated_secret(push_server: Server, receiver: Receiver) -> None:
    client = await vodtask.connect(push_server.grpc_url, api_key=push_server.api_key)
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    config = await client.modify_event_config(mode="push", notification_url=url)
    assert config.mode is vodtask.DeliveryMode.PUSH
    old_secret = config.signing_secret

    uploaded = await client.upload_bytes(b"not media", "blob.bin")
    headers, body = await next_callback(receiver)
    uploaded_event = vodtask.verify_webhook(old_secret, headers, body)
    (attempt,) = await delivered_attempts(client, event_id=uploaded_event.event_id)
    assert (attempt.event_id, attempt.attempt, attempt.url, attempt.http_status) == (
        uploaded_event.event_id, 1, url, 200,
    )  # fmt: skip
    assert isinstance(attempt.time, datetime.datetime)

    # A task's events, by the task: FileDeleted, typed.
    task_id = await client.create_task(vodtask.delete_media([uploaded.file_id]))
    headers, body = await next_callback(receiver)
    deleted = vodtask.verify_webhook(old_secret, headers, body)
    assert isinstance(deleted.data, vodtask.FileDeletedData)
    assert (deleted.data.vod_task_id, deleted.data.status) == (task_id, 0)
    assert uploaded.file_id in [f.file_id for f in deleted.data.file_info]
    attempts = await delivered_attempts(client, task_id=task_id)
    assert {a.event_id for a in attempts} == {deleted.event_id}

    # During the overlap both secrets verify the callbacks.
    rotated = await client.rotate_signing_secret(overlap_seconds=3600)
    assert rotated.signing_secret != old_secret
    assert rotated.previous_secret_expire_time is not None
    assert rotated.previous_secret_expire_time > datetime.datetime.now(datetime.timezone.utc)
    await client.upload_bytes(b"more", "more.bin")
    headers, body = await next_callback(receiver)
    assert vodtask.verify_webhook(rotated.signing_secret, headers, body).event_type == "NewFileUpload"
    assert vodtask.verify_webhook(old_secret, headers, body).event_type == "NewFileUpload"
    await client.close()
