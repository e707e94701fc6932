"""The acceptance example (examples/python/transcode_app.py), killed with
SIGKILL between a side effect and its ack and started again: every event
ends up handled and acked, and the app's ledger shows that no event's side
effect happened twice."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import vodtask
from conftest import DEADLINE, REPO, Server

APP = REPO / "examples" / "python" / "transcode_app.py"
# Longer than it takes the test to see an `effect` line and kill the app,
# so the kill always lands before that event's ack.
SLOW = "5"


class App:
    """One run of the example, its stdout read line by line."""

    def __init__(self, state_dir: Path, server: Optional[Server]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VODTASK_")}
        if server is not None:
            env |= {"VODTASK_URL": server.grpc_url, "VODTASK_API_KEY": server.api_key}
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), str(state_dir), "--slow", SLOW],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_of(self, *prefixes: str) -> str:
        """The next line that starts with one of `prefixes`."""
        deadline = time.monotonic() + DEADLINE
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefixes):
                return line
        self.proc.kill()
        _, err = self.proc.communicate()
        pytest.fail(f"no line starting with {prefixes}; stdout: {self.seen}; stderr: {err}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=DEADLINE)

    def exit_code(self) -> int:
        return self.proc.wait(timeout=DEADLINE)


def ledger(state_dir: Path) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Side effects and deliveries per eventId, and each effect's event type."""
    db = sqlite3.connect(state_dir / "ledger.sqlite3")
    try:
        effects = dict(db.execute("SELECT event_id, COUNT(*) FROM effects GROUP BY event_id"))
        deliveries = dict(db.execute("SELECT event_id, COUNT(*) FROM deliveries GROUP BY event_id"))
        types = dict(db.execute("SELECT event_id, event_type FROM effects"))
        for (detail,) in db.execute("SELECT detail FROM effects WHERE event_type = 'TranscodeComplete'"):
            assert json.loads(detail)["status"] == 0
    finally:
        db.close()
    return effects, deliveries, types


def run_with_kills(state_dir: Path, server: Optional[Server]) -> tuple[str, list[str]]:
    """Runs the app, SIGKILLs it at every `effect` line (that event not yet
    acked: the handler waits SLOW seconds first) and starts it again, until
    it ends by itself. Returns the task id and the killed events' ids."""
    killed: list[str] = []
    for _ in range(5):
        app = App(state_dir, server)
        line = app.next_of("effect ", "done ")
        if line.startswith("effect "):
            app.kill()
            killed.append(line.split()[2])
            continue
        assert app.exit_code() == 0, app.seen
        assert killed, "the app was never killed"
        return line.split()[1], killed
    pytest.fail(f"the app never finished; killed at {killed}")


async def check(state_dir: Path, task_id: str, killed: list[str], client: vodtask.Client) -> None:
    """One side effect per event, though each killed one came again; every
    event acked; the task done."""
    effects, deliveries, types = ledger(state_dir)
    assert set(effects.values()) == {1}, effects
    assert sorted(types.values()) == ["NewFileUpload", "TranscodeComplete"], types
    for event_id in killed:
        assert deliveries[event_id] >= 2, (event_id, deliveries)

    state = await client.events_state()
    assert (state.ready, state.in_flight, state.delayed, state.dead_lettered) == (0, 0, 0, 0)
    task = await client.describe_task(task_id)
    assert task.status == vodtask.TaskStatus.FINISH and task.err_code == 0, task.message


async def test_killed_mid_way_in_process_every_event_is_handled_once(tmp_path: Path) -> None:
    # The engine runs in the app's process and dies with it, likely mid-transcode.
    state_dir = tmp_path / "app"
    task_id, killed = run_with_kills(state_dir, None)
    async with await vodtask.open(state_dir / "vodtask-data", workers=0) as client:
        await check(state_dir, task_id, killed, client)


async def test_killed_mid_way_against_a_server_every_event_is_handled_once(
    server: Server, tmp_path: Path
) -> None:
    state_dir = tmp_path / "app"
    task_id, killed = run_with_kills(state_dir, server)
    async with await vodtask.connect(server.grpc_url, api_key=server.api_key) as client:
        await check(state_dir, task_id, killed, client)
