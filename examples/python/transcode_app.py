"""An app that survives being killed: upload a clip, transcode it, consume
the events, and exit once the task's TranscodeComplete has been acked.

vodtask delivers each event at least once: an event whose ack did not land
(the app was killed after its side effect but before the ack) comes again.
So the app keeps its own ledger, keyed by eventId, and records an event's
side effect in the same SQLite transaction that checks the ledger: a
redelivered event is recognised and acked without doing its work twice.
Every step before consuming is safe to repeat too.

    python transcode_app.py STATE_DIR [--slow SECONDS]

STATE_DIR holds the ledger (ledger.sqlite3), the generated clip and, unless
VODTASK_URL and VODTASK_API_KEY name a server, the engine's data dir (the
engine then runs in this process). Try it: run with `--slow 5`, kill -9 it
right after it prints an `effect` line, run it again; it prints `duplicate`
for that event and still ends with `done`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import vodtask

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT NOT NULL, event_type TEXT NOT NULL,
                                       delivery_count INTEGER NOT NULL);
-- No UNIQUE on event_id on purpose: the ledger check, not a constraint,
-- is what keeps a side effect from happening twice, and a test counts.
CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, event_type TEXT NOT NULL,
                                   detail TEXT NOT NULL);
"""


class Ledger:
    def __init__(self, path: Path) -> None:
        # Autocommit; transactions are explicit. FULL: a recorded effect
        # survives a power cut, not only a killed process.
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def get(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def delivered(self, event: vodtask.Event) -> None:
        self.db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?)",
            (event.event_id, event.event_type, event.delivery_count),
        )

    def record_effect(self, event: vodtask.Event, detail: dict[str, Any]) -> bool:
        """Records the event's side effect unless it already happened; the
        check and the write are one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seen = self.db.execute(
                "SELECT 1 FROM effects WHERE event_id = ?", (event.event_id,)
            ).fetchone()
            if seen is None:
                self.db.execute(
                    "INSERT INTO effects VALUES (?, ?, ?)",
                    (event.event_id, event.event_type, json.dumps(detail)),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return seen is None

    def completion(self, task_id: str) -> Optional[int]:
        """The status of our task's TranscodeComplete, once recorded."""
        for (detail,) in self.db.execute(
            "SELECT detail FROM effects WHERE event_type = 'TranscodeComplete'"
        ):
            d = json.loads(detail)
            if d["taskId"] == task_id:
                return int(d["status"])
        return None


def make_clip(path: Path) -> None:
    """A 2 s test clip, written under another name and renamed, so that a
    crash never leaves half a clip behind."""
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=duration=2:size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=duration=2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(partial)],
        check=True,
    )
    partial.rename(path)


def side_effect(event: vodtask.Event) -> dict[str, Any]:
    """What the app does with an event: here, what it would write to its
    own catalogue."""
    data = event.data  # the dataclass of the event type
    if isinstance(data, vodtask.NewFileUploadData):
        return {"fileId": data.file_id}
    if isinstance(data, vodtask.TranscodeCompleteData):
        return {
            "taskId": data.vod_task_id,
            "status": data.status,
            "renditions": [p.url for p in data.play_set],
        }
    return {}


async def run(state_dir: Path, slow: float) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(state_dir / "ledger.sqlite3")
    clip = state_dir / "clip.mp4"
    if not clip.exists():
        make_clip(clip)

    if "VODTASK_URL" in os.environ:
        client = await vodtask.connect(
            os.environ["VODTASK_URL"], api_key=os.environ["VODTASK_API_KEY"]
        )
    else:
        client = await vodtask.open(state_dir / "vodtask-data")

    async with client:
        file_id = ledger.get("file_id")
        if file_id is None:
            # A crash before this is recorded uploads again: one more file
            # and one more NewFileUpload, both handled like any other.
            file_id = (await client.upload_file(clip)).file_id
            ledger.set("file_id", file_id)
            print("uploaded", file_id, flush=True)

        task_id = ledger.get("task_id")
        if task_id is None:
            # The session id makes a retry after a crash return the same task.
            task_id = await client.create_task(
                vodtask.transcode(file_id, [100010]), session_id=f"transcode-app-{file_id}"
            )
            ledger.set("task_id", task_id)
            print("task", task_id, flush=True)

        # Killed after the last ack landed: nothing is left to handle.
        status = ledger.completion(task_id)
        state = await client.events_state()
        if status is not None and state.ready + state.in_flight + state.delayed == 0:
            print(f"done {task_id} status={status}", flush=True)
            return 0 if status == 0 else 1

        stop = vodtask.StopToken()

        async def handler(event: vodtask.Event) -> None:
            ledger.delivered(event)
            print("delivery", event.event_type, event.event_id, event.delivery_count, flush=True)
            if ledger.record_effect(event, side_effect(event)):
                print("effect", event.event_type, event.event_id, flush=True)
                await asyncio.sleep(slow)  # downstream work still going on
            else:
                print("duplicate", event.event_id, flush=True)
            if event.event_type == "TranscodeComplete" and event.task_id == task_id:
                stop.stop()  # consume acks this event before it returns

        await client.consume(handler, concurrency=4, stop=stop)

    status = ledger.completion(task_id)
    print(f"done {task_id} status={status}", flush=True)
    return 0 if status == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--slow", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long after each side effect, before the ack")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.state_dir, args.slow)))


if __name__ == "__main__":
    main()
