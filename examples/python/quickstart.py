"""vodtask from Python: upload a clip, transcode it, follow the task to its
end, verify a webhook. Runs the engine in this process, or talks to a server
when VODTASK_URL and VODTASK_API_KEY are set (see bindings/python/README.md)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import subprocess
import tempfile
import time
from pathlib import Path

import vodtask


async def main() -> None:
    work = Path(tempfile.mkdtemp())
    clip = work / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=duration=2:size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=duration=2",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)],
        check=True,
    )

    if "VODTASK_URL" in os.environ:  # a server, e.g. `bash scripts/serve.sh`
        client = await vodtask.connect(
            os.environ["VODTASK_URL"], api_key=os.environ["VODTASK_API_KEY"]
        )
    else:  # or the engine in this process, on a data dir of its own
        client = await vodtask.open(work / "data")

    async with client:
        uploaded = await client.upload_file(clip)
        print(uploaded)
        print(await client.describe_media(uploaded.file_id))

        # MP4 360p and HLS 360p; the task id comes back at once.
        task_id = await client.create_task(vodtask.transcode(uploaded.file_id, [100010, 100210]))

        # Follow this task to its end: its state now, then each change.
        # Waiting for one task takes nothing from the app's event queue, so
        # any number of copies of this script can run at once against one
        # server. (Events are for work on every task of the app, each event
        # handled by one of its consumers: see `consume` in transcode_app.py.)
        async for state in client.watch_task(task_id):
            print("task:", state.status, state.progress)
        task = await asyncio.wait_for(client.wait_task(task_id), 120)  # as it ended
        print(task)
        assert task.status == vodtask.TaskStatus.FINISH and task.err_code == 0, task.message
        # Typed results: the output of a transcode is `output.transcode`.
        assert task.output is not None and task.output.transcode is not None
        for item in task.output.transcode.play_set:
            print(item.definition, item.url)

        # Errors are classes with the gRPC code and the server's message.
        try:
            await client.create_task(vodtask.transcode(uploaded.file_id, [5]))
        except vodtask.InvalidArgument as e:
            print(e.code, e.message)

    # A webhook (PUSH mode) as vodtask signs it, the Standard Webhooks way;
    # a receiver checks it with the app's signing secret
    # (`(await client.event_config()).signing_secret`).
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    body = b'{"version":"4.0","eventType":"TranscodeComplete","eventId":"ev-1","taskSequence":1,"data":{"vodTaskId":"transcode-1"}}'
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret[len("whsec_"):])
    signature = hmac.new(key, b"ev-1." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "ev-1",
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(signature).decode(),
    }
    event = vodtask.verify_webhook(secret, headers, body)
    # `data` is the dataclass of the event type, in snake_case.
    if isinstance(event.data, vodtask.TranscodeCompleteData):
        print(event, event.data.vod_task_id)
    try:
        vodtask.verify_webhook(secret, headers, body.replace(b"ev-1", b"ev-2"))
    except vodtask.VodtaskError as e:
        print("rejected:", e.code, e.message)


if __name__ == "__main__":
    asyncio.run(main())
