"""verify_webhook against a real signed callback from the server."""

from __future__ import annotations

import asyncio
import http.server
import queue
import threading
from collections.abc import Iterator

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
    assert event.data["fileId"] == uploaded.file_id
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
